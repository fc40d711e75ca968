"""Heart rate and systolic interval from the envelope autocorrelation (SEGMENTATION.md §3).

Schmidt et al. 2010 as in Springer's ``getHeartRateSchmidt``: the heart rate is the
autocorrelation peak between 0.5 and 2 s lag, the systolic interval the peak between
0.2 s and half a heart period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from spectnet.preprocessing.dsp import mround

__all__ = ["HeartRate", "autocorrelation", "heart_rate", "SHORT_INPUT_FLAG"]

SHORT_INPUT_FLAG = "short input: heart-rate search clipped"


@dataclass(frozen=True)
class HeartRate:
    """Result of :func:`heart_rate`."""

    bpm: float               # 60 / (lag_hr / fs); 30..120 for a full-length input
    systolic_interval_s: float  # (lag_sys + 1) / fs, as in the reference
    lag_hr: int              # autocorrelation lag (samples) of the heart-rate peak
    lag_sys: int             # lag (samples) of the systolic peak
    clipped: bool            # True when the input was too short for the full search ranges


def autocorrelation(h: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation r(l), l = 0..n-1, of h - mean(h) (MATLAB xcorr 'coeff')."""
    u = h - np.mean(h)
    n = u.shape[0]
    full = scipy.signal.correlate(u, u, mode="full", method="fft")
    return full[n - 1:] / np.dot(u, u)


def heart_rate(homomorphic: np.ndarray, sample_rate: int = 1000) -> HeartRate:
    """Heart rate (bpm) and systolic interval (s) from the 1 kHz homomorphic envelope.

    Float expressions are evaluated in the reference's order: HR = 60 / (lag / fs) and
    m_max = mround(((60 / HR) * fs) / 2); for 59 odd lags the latter lands on
    x.49999999999999994 and rounds down, as in MATLAB.

    The reference needs n >= 2 fs + 1 samples. For shorter input the search ranges are
    clipped to the available lags and ``clipped`` is set.

    Raises:
        ValueError: if no lag of the heart-rate range (from 0.5 s) is available.
    """
    r = autocorrelation(homomorphic)
    n = r.shape[0]
    last = n - 1  # largest available lag
    lo_hr, hi_hr = int(mround(0.5 * sample_rate)), int(mround(2 * sample_rate))
    clipped = False
    if hi_hr > last:
        clipped = True
        hi_hr = last
    if hi_hr < lo_hr:
        raise ValueError(f"signal of {n} samples is too short to estimate the heart rate "
                         f"(needs at least {lo_hr + 1})")
    lag_hr = lo_hr + int(np.argmax(r[lo_hr:hi_hr + 1]))
    bpm = 60 / (lag_hr / sample_rate)
    m_max = int(mround(((60 / bpm) * sample_rate) / 2))
    m_min = int(mround(0.2 * sample_rate))
    if m_max > last:  # cannot happen when lag_hr <= last, kept for safety
        clipped = True
        m_max = last
    lag_sys = m_min + int(np.argmax(r[m_min:m_max + 1]))
    t_sys = (lag_sys + 1) / sample_rate
    return HeartRate(bpm=float(bpm), systolic_interval_s=float(t_sys), lag_hr=lag_hr,
                     lag_sys=lag_sys, clipped=clipped)
