"""Uncertainty and comparisons: bootstrap confidence intervals over recordings, intervals
of a mean over trainings, McNemar's test between two runs, and mean +/- sd over seeds.

The paper reports single runs with no uncertainty and claims a McNemar p < 0.05 that
cannot hold at recording level (REPRODUCTION.md §5, A11). Here the number of one trained
model gets a percentile bootstrap interval that resamples *recordings* (beats of one
recording are not independent) and McNemar's test on recordings. A mean over several
trainings (seeds, folds) gets :func:`mean_over_trainings`, whose interval also covers the
training noise: at the quick scale a rerun of the same runs through other floating-point
kernels moved a seed-averaged difference by more than its recording-level interval
(README, "Quick-scale results").
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["bootstrap_samples", "bootstrap_ci", "percentile_intervals", "mean_over_trainings",
           "mcnemar", "mean_sd"]


def bootstrap_samples(statistic: Callable[[np.ndarray], Mapping[str, float]], n_items: int,
                      n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The bootstrap distribution of every metric ``statistic`` returns.

    Args:
        statistic: metrics of a resample, given as ``(n_items,)`` integer weights (how
            many times each item, e.g. each recording, was drawn).
        n_items: items to resample with replacement.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling (results are reproducible).

    Returns:
        ``(n_resamples, n_metrics)``, one column per metric.
    """
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_resamples)
    return pd.DataFrame([statistic(w) for w in draws])


def percentile_intervals(samples: pd.DataFrame, level: float = 0.95
                         ) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each column of :func:`bootstrap_samples`' output."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1 - level) / 2
    low, high = samples.quantile(tail), samples.quantile(1 - tail)
    return {name: (float(low[name]), float(high[name])) for name in samples.columns}


def bootstrap_ci(statistic: Callable[[np.ndarray], Mapping[str, float]], n_items: int,
                 n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric ``statistic`` returns
    (:func:`bootstrap_samples`, :func:`percentile_intervals`).

    Returns:
        ``{metric: (low, high)}``.

    Example:
        >>> from spectnet.evaluation.metrics import binary_metrics
        >>> y, p = np.array([1, 1, 0, 0] * 25), np.array([1, 0, 0, 0] * 25)
        >>> ci = bootstrap_ci(lambda w: binary_metrics(y, p, w), len(y), 200)
        >>> low, high = ci["accuracy"]; low < 0.75 < high
        True
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return percentile_intervals(bootstrap_samples(statistic, n_items, n_resamples, seed), level)


def mean_over_trainings(values, resampled_means, level: float = 0.95,
                        bounds: tuple[float, float] = (-math.inf, math.inf)) -> dict[str, float]:
    """Interval and t-test of a mean over n >= 2 trainings that covers both the training
    noise (seeds, floating-point paths) and the choice of recordings.

    The variance of the mean is the spread of the trainings, ``s² / n`` (their sample
    variance; on a shared evaluation set it holds the training noise and its interaction
    with the recordings), plus the variance of the recordings' bootstrap of the mean with
    the trained models fixed (the recording part, which the trainings share and ``s²``
    cannot see). The interval is ``mean ± t · se`` with Welch-Satterthwaite degrees of
    freedom: ``n - 1`` when the training part dominates, more when the recording part
    (estimated from many recordings) does. The interaction appears in both parts, so the
    interval leans wide.

    Args:
        values: ``(n,)`` the metric of each training on its evaluation set.
        resampled_means: the bootstrap distribution of their mean (recordings resampled,
            the same draw for every training; :func:`bootstrap_samples`).
        level: coverage of the interval.
        bounds: the values the metric can take (a proportion: ``(0, 1)``); the interval
            is clipped to them.

    Returns:
        ``mean``, ``se``, ``df``, ``low``, ``high``, and ``t`` and two-sided ``pvalue`` of
        ``mean == 0`` (for a difference between two runs).

    Example:
        >>> r = mean_over_trainings([0.70, 0.74, 0.78], np.full(500, 0.74))
        >>> round(r["mean"], 2), round(r["df"], 1), round(r["low"], 3), round(r["high"], 3)
        (0.74, 2.0, 0.641, 0.839)
    """
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"a mean over trainings needs at least two, got {values.size}")
    training = values.var(ddof=1) / values.size
    recordings = float(np.var(np.asarray(resampled_means, dtype=float), ddof=1))
    se = math.sqrt(training + recordings)
    # Welch-Satterthwaite: the recording part's bootstrap has (near) infinite df.
    df = float((values.size - 1) * (training + recordings) ** 2 / training ** 2) \
        if training > 0 else math.inf
    mean = float(values.mean())
    half = float(student_t.ppf(0.5 + level / 2, df)) * se
    t = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    return {"mean": mean, "se": se, "df": df, "low": max(mean - half, bounds[0]),
            "high": min(mean + half, bounds[1]),
            "t": t, "pvalue": float(2 * student_t.sf(abs(t), df))}


def mcnemar(correct_a, correct_b, exact_below: int = 25) -> dict[str, float | str]:
    """McNemar's test of two classifiers on the same items.

    The 2 x 2 table counts items both get right, only A gets right (``b``), only B gets
    right (``c``) and both get wrong. With a discordant count below ``exact_below`` the
    exact binomial test is used, otherwise the chi-square test with continuity
    correction (statsmodels' ``mcnemar``; the authors' Heartnet test bench).

    Returns:
        ``both_correct``, ``only_a``, ``only_b``, ``both_wrong``, ``statistic``,
        ``pvalue`` and ``method`` (``"exact"`` or ``"chi2"``).

    Example:
        >>> a = np.array([1] * 40 + [0] * 10); b = np.array([1] * 30 + [0] * 20)
        >>> r = mcnemar(a, b); r["only_a"], r["only_b"], r["method"], round(r["pvalue"], 4)
        (10, 0, 'exact', 0.002)
    """
    from statsmodels.stats.contingency_tables import mcnemar as _mcnemar

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"the two runs scored different items: {a.shape} vs {b.shape}")
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    exact = min(table[0, 1], table[1, 0]) < exact_below
    result = _mcnemar(table, exact=exact, correction=True)
    return {"both_correct": int(table[0, 0]), "only_a": int(table[0, 1]),
            "only_b": int(table[1, 0]), "both_wrong": int(table[1, 1]),
            "statistic": float(result.statistic), "pvalue": float(result.pvalue),
            "method": "exact" if exact else "chi2"}


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for a single value)."""
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return float(values.mean()), sd
