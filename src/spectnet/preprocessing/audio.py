"""Reading and resampling audio files, shared by the heart-sound and the clip pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional


class BadAudioError(ValueError):
    """One audio file cannot be used; the message says why."""


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file as float64 in [-1, 1) (the scaling of MATLAB ``audioread``).

    Returns:
        ``(samples, sample_rate)`` with samples of shape ``(time, channels)``.

    Raises:
        BadAudioError: undecodable (corrupt or unsupported format), empty, or non-finite.
    """
    try:
        x, sample_rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise BadAudioError(f"cannot decode audio ({exc})") from None
    if x.shape[0] == 0:
        raise BadAudioError("empty audio (0 samples)")
    if not np.isfinite(x).all():
        raise BadAudioError(f"{int((~np.isfinite(x)).sum())} NaN or infinite samples")
    return x, int(sample_rate)


def resample(x: np.ndarray, orig_rate: int, new_rate: int, method: str = "torchaudio") -> np.ndarray:
    """Resample a signal along its last axis, keeping its dtype; ``polyphase`` equals MATLAB
    ``resample``, ``torchaudio`` is torchaudio's windowed-sinc resampler (its defaults)."""
    if orig_rate == new_rate:
        return x
    if method == "polyphase":
        import scipy.signal  # here: it takes seconds to import, and readers of stores need none

        g = np.gcd(orig_rate, new_rate)
        return scipy.signal.resample_poly(x, new_rate // g, orig_rate // g, axis=-1)
    return torchaudio.functional.resample(torch.from_numpy(x), orig_rate, new_rate).numpy()
