"""Uncertainty and comparisons: bootstrap confidence intervals over recordings, McNemar's
test between two runs, and mean +/- sd over seeds.

The paper reports single runs with no uncertainty and claims a McNemar p < 0.05 that
cannot hold at recording level (REPRODUCTION.md §5, A11). Here every headline number
gets a percentile bootstrap interval that resamples *recordings* (beats of one recording
are not independent), and McNemar is computed at both beat and recording level.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["bootstrap_ci", "mcnemar", "mean_sd"]


def bootstrap_ci(statistic: Callable[[np.ndarray], Mapping[str, float]], n_items: int,
                 n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric ``statistic`` returns.

    Args:
        statistic: metrics of a resample, given as ``(n_items,)`` integer weights (how
            many times each item, e.g. each recording, was drawn).
        n_items: items to resample with replacement.
        n_resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: seed of the resampling (results are reproducible).

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
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_resamples)
    samples = pd.DataFrame([statistic(w) for w in draws])
    tail = (1 - level) / 2
    low, high = samples.quantile(tail), samples.quantile(1 - tail)
    return {name: (float(low[name]), float(high[name])) for name in samples.columns}


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
