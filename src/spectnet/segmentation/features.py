"""The four 50 Hz Springer features (SEGMENTATION.md §2).

Input is ``y``: the segmenter's input after the second pass of low-pass, high-pass and
spike removal (§1). Output is a (T, 4) matrix, T = ceil(n / 20), columns
[homomorphic envelope, Hilbert envelope, PSD 40-60 Hz, db7 level-3 wavelet envelope],
each z-scored with ddof=1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np
import pywt
import scipy.signal
import scipy.special

from spectnet.preprocessing.dsp import butter_filtfilt, mround

__all__ = [
    "AUDIO_RATE", "FEATURE_RATE", "RATIO", "Envelopes", "envelopes", "resample", "downsample",
    "znorm",
    "psd_feature", "psd_frame_power", "wavelet_envelope", "wkeep_centre", "compute_features",
]

AUDIO_RATE = 1000
FEATURE_RATE = 50
RATIO = AUDIO_RATE // FEATURE_RATE  # 20
SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))  # 1.4901161193847656e-08

# PSD settings: MATLAB spectrogram(y, fs/40, round(fs/80), 1:round(fs/2), fs).
PSD_WINDOW = AUDIO_RATE // 40            # 25 samples
PSD_OVERLAP = int(mround(AUDIO_RATE / 80))  # mround(12.5) = 13
PSD_HOP = PSD_WINDOW - PSD_OVERLAP       # 12
PSD_FREQS = np.arange(40, 61, dtype=np.float64)  # 40..60 Hz, 21 bins


@dataclass(frozen=True)
class Envelopes:
    """Audio-rate envelopes shared by the features (§2.1-2.2) and the heart rate (§3)."""

    homomorphic: np.ndarray  # H, length n
    hilbert: np.ndarray      # E = |hilbert(y)|, length n


def envelopes(y: np.ndarray, sample_rate: int = AUDIO_RATE) -> Envelopes:
    """Homomorphic envelope H and Hilbert envelope E of ``y`` (one analytic signal)."""
    analytic = scipy.signal.hilbert(y)
    e = np.abs(analytic)
    with np.errstate(divide="ignore"):
        log_e = np.log(e)
    h = np.exp(butter_filtfilt(log_e, 8.0, sample_rate, "lowpass", order=1))
    h[0] = h[1]
    return Envelopes(homomorphic=h, hilbert=e)


def _kaiser_lowpass_taps(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR of ``resample_poly(., up, down)`` (before its gain of ``up``).

    Same numbers as scipy's ``firwin(20 max + 1, 1 / max, window=('kaiser', 5.0))``
    (bit-identical output in the tests) but with ``scipy.special.i0``: numpy's ``i0``
    makes scipy's own design take ~6 ms for the long filters of the PSD resampling.
    """
    max_rate = max(up, down)
    half = 10 * max_rate
    m = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * m)
    h *= scipy.special.i0(5.0 * np.sqrt(np.maximum(0.0, 1 - (m / half) ** 2)))
    h /= scipy.special.i0(5.0)
    h /= h.sum()
    return h


@lru_cache(maxsize=8)
def _cached_taps(up: int, down: int) -> np.ndarray:
    return _kaiser_lowpass_taps(up, down)


def resample(v: np.ndarray, up: int, down: int) -> np.ndarray:
    """MATLAB ``resample(v, up, down)`` = ``scipy.signal.resample_poly(v, up', down')``."""
    g = gcd(up, down)
    up, down = up // g, down // g
    if up == down:
        return np.array(v, dtype=np.float64)
    taps = _cached_taps(up, down) if max(up, down) <= 64 else _kaiser_lowpass_taps(up, down)
    return scipy.signal.resample_poly(v, up, down, window=taps)


def downsample(v: np.ndarray) -> np.ndarray:
    """MATLAB ``resample(v, 50, 1000)`` = ``resample_poly(v, 1, 20)``; ceil(n/20) samples."""
    return resample(v, 1, RATIO)


def znorm(v: np.ndarray) -> np.ndarray:
    """(v - mean) / std with ddof=1 (MATLAB ``normalise_signal``)."""
    return (v - np.mean(v)) / np.std(v, ddof=1)


@lru_cache(maxsize=4)
def _psd_dft_matrix() -> np.ndarray:
    """(25, 21) complex matrix: symmetric Hamming window times the DFT kernel at 40..60 Hz."""
    w = scipy.signal.windows.hamming(PSD_WINDOW, sym=True)
    m = np.arange(PSD_WINDOW, dtype=np.float64)
    kernel = np.exp(-2j * np.pi * np.outer(m, PSD_FREQS) / AUDIO_RATE)
    out = w[:, None] * kernel
    out.setflags(write=False)
    return out


def psd_frame_power(y: np.ndarray) -> np.ndarray:
    """(K, 21) power |sum_m w[m] y[12k+m] e^{-2 pi i f m / fs}|^2 at f = 40..60 Hz.

    K = floor((n - 13) / 12) frames of 25 samples with hop 12, no detrending, no padding.
    Unscaled: the spectrogram's 1/(fs sum w^2) and one-sided x2 cancel in the z-score.
    """
    n = y.shape[0]
    k = (n - PSD_OVERLAP) // PSD_HOP
    if k < 1:
        raise ValueError(f"signal of {n} samples is shorter than one {PSD_WINDOW}-sample "
                         "PSD window")
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(k, PSD_WINDOW), strides=(PSD_HOP * y.strides[0], y.strides[0]),
        writeable=False)
    spec = frames @ _psd_dft_matrix()
    return spec.real ** 2 + spec.imag ** 2


def psd_feature(y: np.ndarray, n_frames: int) -> np.ndarray:
    """Mean 40-60 Hz power per PSD frame, resampled to exactly ``n_frames`` (not normalised)."""
    psi = psd_frame_power(np.ascontiguousarray(y, dtype=np.float64)).mean(axis=1)
    return resample(psi, n_frames, psi.shape[0])


def wkeep_centre(v: np.ndarray, length: int) -> np.ndarray:
    """MATLAB ``wkeep1(v, length, 'c')``: the centred ``length`` samples.

    The kept block starts at floor((len(v) - length) / 2) (0-based).
    """
    extra = v.shape[0] - length
    if extra < 0:
        raise ValueError(f"cannot keep {length} samples of a {v.shape[0]}-sample vector")
    first = extra // 2
    return v[first:first + length]


def wavelet_envelope(y: np.ndarray, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """|db7 level-3 detail|, each coefficient repeated 8x, centred, sqrt(eps) zeroed (§2.4)."""
    n0 = n = y.shape[0]
    if n < 1.025 * sample_rate:
        pad = int(mround(0.025 * sample_rate))
        y = np.concatenate([y, np.zeros(pad)])
        n = y.shape[0]
    # pywt warns when level 3 exceeds its "useful" level for short inputs; the numbers are
    # still the MATLAB ones, so silence it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cd3 = pywt.wavedec(y, "db7", mode="symmetric", level=3)[1]
    v = wkeep_centre(np.repeat(cd3, 8), n)
    v = np.where(np.abs(v) < SQRT_EPS, 0.0, v)
    return np.abs(v)[:n0]


def compute_features(y: np.ndarray, env: Envelopes | None = None,
                     sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """(T, 4) z-scored features [homomorphic, Hilbert, PSD, wavelet] of ``y`` at 50 Hz."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if env is None:
        env = envelopes(y, sample_rate)
    n = y.shape[0]
    t = -(-n // RATIO)
    out = np.empty((t, 4))
    out[:, 0] = znorm(downsample(env.homomorphic))
    out[:, 1] = znorm(downsample(env.hilbert))
    out[:, 2] = znorm(psd_feature(y, t))
    out[:, 3] = znorm(downsample(wavelet_envelope(y, sample_rate)))
    return out
