"""Classify heart-sound recordings with a trained model: the ``spectnet predict`` API.

A recording goes through exactly what the model was trained on, read from the model file
itself (no params file needed): mono mix, the first ``max_duration_s`` seconds,
resampling to the model's rate (any input rate), the band-pass and spike removal,
Springer segmentation, S1-to-S1 beats of ``beat_length`` samples; then the model scores
every beat and the recording is abnormal when at least half of its beats are (the
authors' majority vote, ties to abnormal).

Example:
    >>> classifier = HeartSoundClassifier("models/physionet2016/learnable-16/seed1/best.pt")  # doctest: +SKIP
    >>> classifier.predict_file("a0001.wav")                                                 # doctest: +SKIP
    {'file': 'a0001.wav', 'label': 'abnormal', 'p_abnormal': 0.91, 'abnormal_beats': 0.94, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from spectnet.config import PreprocessConfig
from spectnet.errors import SpectNetError
from spectnet.experiments.heart_sounds import TASK
from spectnet.experiments.runs import default_device
from spectnet.preprocessing.audio import BadAudioError, read_audio_file
from spectnet.preprocessing.heart_sounds import BadRecordError, preprocess_signal
from spectnet.segmentation import SegmentationError, segment_heart_cycles
from spectnet.segmentation.cycles import extract_beats
from spectnet.training.checkpoint import load_model
from spectnet.training.trainer import class_probabilities

__all__ = ["HeartSoundClassifier", "PredictionError"]


class PredictionError(SpectNetError):
    """One recording cannot be classified; the message says why."""


@dataclass
class HeartSoundClassifier:
    """A trained heart-sound model with the preprocessing it was trained with.

    Args:
        model_path: a model file written by ``spectnet physionet train`` (``best.pt``).
        device: where the model runs (default: CUDA when available, else CPU).
    """

    model_path: str | Path
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        self.model, info = load_model(self.model_path, default_device(self.device))
        if info.get("task") != TASK:
            raise SpectNetError(f"{self.model_path}: not a heart-sound model "
                                f"(task {info.get('task')!r})")
        self.info = info
        self.classes = list(info["classes"])
        self.preprocess = PreprocessConfig.from_dict(info["preprocess"])
        self.emulate_underflow = bool(info["segmentation"]["emulate_underflow"])
        self.beat_length = int(info["beats"]["beat_length"])
        self.emulate_zero_last_beat = bool(info["beats"].get("emulate_zero_last_beat", False))

    def predict_signal(self, signal: np.ndarray, sample_rate: int) -> dict:
        """Classify one recording given as samples: ``(time,)`` or ``(time, channels)``.

        Raises:
            PredictionError: too short to filter or segment, or no complete cardiac cycle.
        """
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)  # mono mix
        try:
            x = preprocess_signal(x, int(sample_rate), self.preprocess)
            seg = segment_heart_cycles(x, self.preprocess.sample_rate,
                                       emulate_underflow=self.emulate_underflow)
        except (BadRecordError, SegmentationError) as exc:
            raise PredictionError(f"cannot segment: {exc}") from None
        beats, info = extract_beats(x, seg.states, self.beat_length,
                                    emulate_zero_last_beat=self.emulate_zero_last_beat)
        if info.n_beats == 0:
            raise PredictionError("no complete cardiac cycle (S1 to S1) found")
        batch = torch.as_tensor(np.asarray(beats, dtype=np.float32),
                                device=next(self.model.parameters()).device)
        with torch.no_grad():
            probabilities = class_probabilities(self.model, self.model(batch)).cpu().numpy()
        abnormal = self.classes.index("abnormal")
        abnormal_beats = float((probabilities.argmax(1) == abnormal).mean())
        return {"label": self.classes[abnormal] if abnormal_beats >= 0.5 else
                self.classes[1 - abnormal],
                "p_abnormal": float(probabilities[:, abnormal].mean()),
                "abnormal_beats": abnormal_beats, "n_beats": int(info.n_beats),
                "heart_rate_bpm": float(seg.heart_rate_bpm),
                "duration_s": float(x.size / self.preprocess.sample_rate)}

    def predict_file(self, path: str | Path) -> dict:
        """Classify one audio file (WAV, FLAC, OGG, ... at any rate, mono or stereo).

        Raises:
            PredictionError: unreadable audio, too short to segment, no complete cycle.
        """
        try:
            x, rate = read_audio_file(path)
        except BadAudioError as exc:
            raise PredictionError(f"unreadable: {exc}") from None
        return {"file": str(path), **self.predict_signal(x, rate)}

    def predict_files(self, paths: Iterable[str | Path]) -> Iterator[dict]:
        """One result per file, in order; a file that fails gives ``{"file", "error"}``
        and the others go on."""
        for path in paths:
            try:
                yield self.predict_file(path)
            except PredictionError as exc:
                yield {"file": str(path), "error": str(exc)}
