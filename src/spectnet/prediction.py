"""Classify heart-sound recordings with a trained model: the ``spectnet predict`` API.

A recording goes through exactly what the model was trained on, read from the model file
itself (no params file needed): mono mix, resampling to the model's rate (any input rate
whose Nyquist frequency covers the model's band), the band-pass and spike removal,
Springer segmentation, S1-to-S1 beats of ``beat_length`` samples; then the model scores
every beat and the recording is abnormal when at least half of its beats are (the
authors' majority vote, ties to abnormal).

The whole recording is classified: training kept the first ``max_duration_s`` seconds of
each recording, so a longer one is cut into equal windows of at most that length, each
preprocessed and segmented on its own, and the beats of all windows vote together
(``windows`` in the result; a window that cannot be segmented is named in ``skipped``).

The model is a model file (``best.pt``) run by torch, or its export (``spectnet export``:
``.onnx`` run by onnxruntime, ``.pt2`` by torch.export); the beats of several recordings
are scored together in batches (:meth:`HeartSoundClassifier.predict_files`).

Example:
    >>> classifier = HeartSoundClassifier("models/physionet2016/learnable-16/seed1/best.pt")  # doctest: +SKIP
    >>> classifier.predict_file("a0001.wav")                                                 # doctest: +SKIP
    {'file': 'a0001.wav', 'label': 'abnormal', 'p_abnormal': 0.91, 'abnormal_beats': 0.94, ...}
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from spectnet.config import PreprocessConfig
from spectnet.errors import SpectNetError
from spectnet.experiments.heart_sounds import TASK
from spectnet.preprocessing.audio import BadAudioError, read_audio_file
from spectnet.preprocessing.heart_sounds import (BadRecordError, clipped_fraction,
                                                 preprocess_signal)
from spectnet.segmentation import SegmentationError, segment_heart_cycles
from spectnet.segmentation.cycles import extract_beats

__all__ = ["HeartSoundClassifier", "PredictionError", "CLIPPED_WARNING_FRACTION"]

log = logging.getLogger(__name__)

#: A recording with at least this fraction of its samples at digital full scale is
#: reported as clipped (a warning in its result; it is still classified).
CLIPPED_WARNING_FRACTION = 1e-3
#: Beats scored per model call (larger batches were slower on CPU: cache).
SCORE_BATCH = 64
#: Beats gathered across recordings before they are scored.
GATHER_BEATS = 1024


class PredictionError(SpectNetError):
    """One recording cannot be classified; the message says why."""


def _device(device: str | torch.device | None) -> torch.device:
    """The torch device to run on, checked: a clear error instead of a CUDA traceback."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SpectNetError(f"--device {device}: not a torch device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpectNetError(f"--device {device}: no CUDA device is available here "
                            "(use --device cpu)")
    return device


def _open_model(path: Path, device: torch.device) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """``(score, info)``: ``score`` maps ``(n, beat_length)`` float32 beats to ``(n, classes)``
    probabilities; ``info`` is the model file's (or the export's) metadata."""
    if path.suffix in (".onnx", ".pt2"):
        from spectnet.export import read_export_metadata

        info = read_export_metadata(path)
        if path.suffix == ".onnx":
            import onnxruntime

            providers = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + ["CPUExecutionProvider"]
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3  # errors only: not its notes on constant folding
            session = onnxruntime.InferenceSession(str(path), options, providers=providers)
            name = session.get_inputs()[0].name
            return lambda beats: np.exp(session.run(None, {name: beats})[0]), info
        program = torch.export.load(str(path)).module().to(device)

        def score_program(beats):
            with torch.no_grad():
                return program(torch.from_numpy(beats).to(device)).exp().cpu().numpy()
        return score_program, info

    from spectnet.training.checkpoint import load_model
    from spectnet.training.trainer import class_probabilities

    model, info = load_model(path, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch has the beat shape: tune once

    def score_model(beats):
        with torch.no_grad():
            batch = torch.from_numpy(beats).to(device)
            return class_probabilities(model, model(batch)).cpu().numpy()
    return score_model, info


@dataclass
class _Prepared:
    """A recording cut into beats, waiting to be scored."""
    beats: np.ndarray
    fields: dict


@dataclass
class HeartSoundClassifier:
    """A trained heart-sound model with the preprocessing it was trained with.

    Args:
        model_path: a model file written by ``spectnet physionet train`` (``best.pt``), or
            its export (``model.onnx``, ``model.pt2``; needs the ``export`` extra for ONNX).
        device: where the model runs (default: CUDA when available, else CPU).
    """

    model_path: str | Path
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        self.model_path = Path(self.model_path)
        self._score, info = _open_model(self.model_path, _device(self.device))
        if info.get("task") != TASK:
            raise SpectNetError(f"{self.model_path}: not a heart-sound model "
                                f"(task {info.get('task')!r})")
        self.info = info
        self.classes = list(info["classes"])
        self.preprocess = PreprocessConfig.from_dict(info["preprocess"])
        self.emulate_underflow = bool(info["segmentation"]["emulate_underflow"])
        self.beat_length = int(info["beats"]["beat_length"])
        self.emulate_zero_last_beat = bool(info["beats"].get("emulate_zero_last_beat", False))

    # ------------------------------------------------------------------ preparation
    def _check_rate(self, sample_rate: int) -> None:
        band = f"{self.preprocess.highpass_hz:g}-{self.preprocess.lowpass_hz:g} Hz"
        if sample_rate / 2 < self.preprocess.lowpass_hz:
            raise PredictionError(
                f"sample rate {sample_rate} Hz is too low: its Nyquist frequency "
                f"({sample_rate / 2:g} Hz) is below the top of the {band} band the model "
                "was trained on")

    def _windows(self, n_samples: int, sample_rate: int) -> list[slice]:
        """Equal windows of at most ``max_duration_s`` covering the whole recording."""
        longest = max(1, int(round(self.preprocess.max_duration_s * sample_rate)))
        count = max(1, math.ceil(n_samples / longest))
        length = math.ceil(n_samples / count)
        return [slice(i * length, min((i + 1) * length, n_samples)) for i in range(count)]

    def _prepare(self, signal: np.ndarray, sample_rate: int) -> _Prepared:
        from threadpoolctl import threadpool_limits

        # One BLAS thread: segmentation's matrices are small, and idle OpenBLAS threads
        # spin, which took 2.3 CPU s instead of 1.0 to prepare a0001-a0020 on 2 cores
        # (bench/predict.py); the workflow's pool workers are limited the same way.
        with threadpool_limits(1, user_api="blas"):
            return self._cut_beats(signal, sample_rate)

    def _cut_beats(self, signal: np.ndarray, sample_rate: int) -> _Prepared:
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)  # mono mix
        sample_rate = int(sample_rate)
        self._check_rate(sample_rate)
        clipped = clipped_fraction(x)
        beats, skipped, rates, seconds = [], [], [], 0.0
        for window in self._windows(x.size, sample_rate):
            try:
                y = preprocess_signal(x[window], sample_rate, self.preprocess)
                seg = segment_heart_cycles(y, self.preprocess.sample_rate,
                                           emulate_underflow=self.emulate_underflow)
            except (BadRecordError, SegmentationError) as exc:
                skipped.append((window, f"cannot segment: {exc}"))
                continue
            cut, info = extract_beats(y, seg.states, self.beat_length,
                                      emulate_zero_last_beat=self.emulate_zero_last_beat)
            if info.n_beats == 0:
                skipped.append((window, "no complete cardiac cycle (S1 to S1) found"))
                continue
            beats.append(np.asarray(cut, dtype=np.float32))
            rates.append((seg.heart_rate_bpm, info.n_beats))
            seconds += y.size / self.preprocess.sample_rate
        if not beats:
            raise PredictionError(skipped[0][1] if len(skipped) == 1 else
                                  f"none of its {len(skipped)} windows: {skipped[0][1]}")
        n_beats = sum(n for _, n in rates)
        fields = {"n_beats": n_beats,
                  "heart_rate_bpm": float(sum(r * n for r, n in rates) / n_beats),
                  "duration_s": float(seconds),
                  "windows": len(beats) + len(skipped)}
        if skipped:
            fields["skipped"] = [f"{w.start / sample_rate:.1f}-{w.stop / sample_rate:.1f} s: {why}"
                                 for w, why in skipped]
        if clipped >= CLIPPED_WARNING_FRACTION:
            fields["warning"] = (f"clipped: {100 * clipped:.2f}% of the samples are at digital "
                                 "full scale; the result may be unreliable")
        return _Prepared(np.concatenate(beats), fields)

    def _prepare_file(self, path: str | Path) -> _Prepared:
        path = Path(path)
        if path.is_dir():
            raise PredictionError("is a directory, not an audio file")
        if not path.exists():
            raise PredictionError("no such file")
        try:
            x, rate = read_audio_file(path)
        except BadAudioError as exc:
            raise PredictionError(f"unreadable: {exc}") from None
        return self._prepare(x, rate)

    # ------------------------------------------------------------------ scoring
    def _result(self, probabilities: np.ndarray, fields: dict) -> dict:
        abnormal = self.classes.index("abnormal")
        abnormal_beats = float((probabilities.argmax(1) == abnormal).mean())
        label = self.classes[abnormal] if abnormal_beats >= 0.5 else self.classes[1 - abnormal]
        return {"label": label, "p_abnormal": float(probabilities[:, abnormal].mean()),
                "abnormal_beats": abnormal_beats, **fields}

    def _score_all(self, beats: np.ndarray) -> np.ndarray:
        return np.concatenate([self._score(beats[i: i + SCORE_BATCH])
                               for i in range(0, len(beats), SCORE_BATCH)])

    def predict_signal(self, signal: np.ndarray, sample_rate: int) -> dict:
        """Classify one recording given as samples: ``(time,)`` or ``(time, channels)``.

        Raises:
            PredictionError: a sample rate below the model's band, too short to filter or
                segment, or no complete cardiac cycle.
        """
        prepared = self._prepare(signal, sample_rate)
        return self._result(self._score_all(prepared.beats), prepared.fields)

    def predict_file(self, path: str | Path) -> dict:
        """Classify one audio file (WAV, FLAC, OGG, ... at any rate, mono or stereo).

        Raises:
            PredictionError: missing, a directory, unreadable audio, or as
                :meth:`predict_signal`.
        """
        prepared = self._prepare_file(path)
        return {"file": str(path), **self._result(self._score_all(prepared.beats), prepared.fields)}

    def predict_files(self, paths: Iterable[str | Path]) -> Iterator[dict]:
        """One result per file, in order; a file that fails gives ``{"file", "error"}``
        and the others go on. The beats of consecutive files are scored together."""
        pending: list[tuple[str, _Prepared | PredictionError]] = []

        def flush() -> Iterator[dict]:
            ready = [p for _, p in pending if isinstance(p, _Prepared)]
            scores = self._score_all(np.concatenate([p.beats for p in ready])) if ready else None
            start = 0
            for path, item in pending:
                if isinstance(item, PredictionError):
                    yield {"file": path, "error": str(item)}
                    continue
                stop = start + len(item.beats)
                yield {"file": path, **self._result(scores[start:stop], item.fields)}
                start = stop
            pending.clear()

        gathered = 0
        for path in paths:
            try:
                item = self._prepare_file(path)
                gathered += len(item.beats)
            except PredictionError as exc:
                item = exc
            pending.append((str(path), item))
            if gathered >= GATHER_BEATS:
                yield from flush()
                gathered = 0
        yield from flush()
