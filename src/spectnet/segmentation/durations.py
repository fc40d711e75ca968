"""State-duration distributions of the HSMM (SEGMENTATION.md §4), in 50 Hz frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectnet.preprocessing.dsp import mround

__all__ = ["DurationModel", "duration_model", "REALMIN"]

REALMIN = float(np.finfo(np.float64).tiny)  # 2.2250738585072014e-308, MATLAB realmin


@dataclass(frozen=True)
class DurationModel:
    """Per-state duration model.

    Attributes:
        mean, sd: (4,) mean and standard deviation (frames) of S1, systole, S2, diastole.
        min, max: (4,) allowed range (frames; not integers for systole and diastole).
        max_duration: D = mround((60 / HR) * 50), the longest duration considered.
        probs: (4, D) normalised probabilities p_j(d), d = 1..D (column d-1).
    """

    mean: np.ndarray
    sd: np.ndarray
    min: np.ndarray
    max: np.ndarray
    max_duration: int
    probs: np.ndarray


def duration_model(heart_rate_bpm: float, systolic_interval_s: float,
                   feature_rate: int = 50) -> DurationModel:
    """Springer's ``get_duration_distributions`` for a heart rate and systolic interval.

    q_j(d) is the Normal pdf at d with mean mu_j and *variance* sd_j**2 (the reference
    passes sd**2 to ``mvnpdf``). Durations outside [min_j, max_j] get q = realmin (they
    are penalised, not forbidden). p_j = q_j / sum_{d=1..D} q_j.
    """
    fs = feature_rate
    hr, t_sys = float(heart_rate_bpm), float(systolic_interval_s)
    mean_s1 = float(mround(0.122 * fs))
    sd_s1 = float(mround(0.022 * fs))
    mean_s2 = float(mround(0.094 * fs))
    sd_s2 = float(mround(0.022 * fs))
    mean_sys = float(mround(t_sys * fs)) - mean_s1
    sd_sys = 0.025 * fs
    mean_dia = ((60 / hr) - t_sys - 0.094) * fs
    sd_dia = 0.07 * mean_dia + (0.006 * fs)

    min_s1 = max(mean_s1 - 3 * sd_s1, fs / fs)
    max_s1 = mean_s1 + 3 * sd_s1
    min_s2 = max(mean_s2 - 3 * sd_s2, fs / fs)
    max_s2 = mean_s2 + 3 * sd_s2
    min_sys = mean_sys - 3 * (sd_sys + sd_s1)
    max_sys = mean_sys + 3 * (sd_sys + sd_s1)
    min_dia = mean_dia - 3 * sd_dia
    max_dia = mean_dia + 3 * sd_dia

    mean = np.array([mean_s1, mean_sys, mean_s2, mean_dia])
    sd = np.array([sd_s1, sd_sys, sd_s2, sd_dia])
    lo = np.array([min_s1, min_sys, min_s2, min_dia])
    hi = np.array([max_s1, max_sys, max_s2, max_dia])

    d_max = int(mround((60 / hr) * fs))
    if d_max < 1:
        raise ValueError(f"heart rate {hr} bpm gives no duration range")
    d = np.arange(1, d_max + 1, dtype=np.float64)
    var = sd[:, None] ** 2
    q = np.exp(-0.5 * (d[None, :] - mean[:, None]) ** 2 / var) / np.sqrt(2 * np.pi * var)
    outside = (d[None, :] < lo[:, None]) | (d[None, :] > hi[:, None])
    q[outside] = REALMIN
    probs = q / q.sum(axis=1, keepdims=True)
    for a in (mean, sd, lo, hi, probs):
        a.setflags(write=False)
    return DurationModel(mean=mean, sd=sd, min=lo, max=hi, max_duration=d_max, probs=probs)
