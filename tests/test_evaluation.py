"""Metrics, aggregation and statistics against independent references (scikit-learn,
scipy, hand-made tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2
from sklearn import metrics as skm

from spectnet.evaluation.metrics import (binary_metrics, confusion_matrix, majority_vote,
                                         mean_posterior, multiclass_metrics)
from spectnet.evaluation.statistics import bootstrap_ci, mcnemar, mean_over_trainings, mean_sd


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.7, y, 1 - y)
    m = binary_metrics(y, p)
    assert m["accuracy"] == skm.accuracy_score(y, p)
    assert m["sensitivity"] == skm.recall_score(y, p)
    assert m["specificity"] == skm.recall_score(y, p, pos_label=0)
    assert m["precision"] == skm.precision_score(y, p)
    assert m["f1"] == pytest.approx(skm.f1_score(y, p), abs=1e-15)
    assert m["macc"] == pytest.approx(skm.balanced_accuracy_score(y, p), abs=1e-15)
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, p, labels=[0, 1])
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)


def test_binary_metrics_paper_counts():
    # static-16 of Table II: 121/138 abnormal and 128/146 normal recordings right
    y = np.r_[np.ones(138), np.zeros(146)]
    p = np.r_[np.ones(121), np.zeros(17), np.zeros(128), np.ones(18)]
    m = binary_metrics(y, p)
    assert round(100 * m["sensitivity"], 2) == 87.68 and round(100 * m["specificity"], 2) == 87.67
    assert round(100 * m["precision"], 2) == 87.05 and round(100 * m["macc"], 2) == 87.68


def test_degenerate_ratios_are_zero_like_scikit_learn():
    m = binary_metrics([0, 0, 0], [0, 0, 0])
    assert m["sensitivity"] == skm.recall_score([0, 0, 0], [0, 0, 0], zero_division=0) == 0
    assert m["precision"] == 0 and m["f1"] == 0 and m["specificity"] == 1


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 15, 400)
    p = np.where(rng.random(400) < 0.6, y, rng.integers(0, 15, 400))
    m = multiclass_metrics(y, p, 15)
    assert m["accuracy"] == skm.accuracy_score(y, p)
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, p, average="macro"), abs=1e-15)
    assert m["precision"] == pytest.approx(skm.precision_score(y, p, average="macro"), abs=1e-15)
    assert m["f1_mean"] == pytest.approx(skm.f1_score(y, p, average="macro"), abs=1e-15)
    cm = skm.confusion_matrix(y, p, labels=range(15))
    specificity = [(cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]) / (cm.sum() - cm[k].sum())
                   for k in range(15)]
    assert m["specificity"] == pytest.approx(np.mean(specificity), abs=1e-15)
    se, pr = m["sensitivity"], m["precision"]
    assert m["f1"] == pytest.approx(2 * pr * se / (pr + se))
    assert (confusion_matrix(y, p, 15) == cm).all()


def test_table_iii_specificity_follows_from_accuracy():
    # one-vs-rest macro specificity with balanced classes: 1 - (1 - Se) / (C - 1)
    y = np.repeat(np.arange(15), 20)
    rng = np.random.default_rng(0)
    p = np.where(rng.random(len(y)) < 0.745, y, (y + rng.integers(1, 15, len(y))) % 15)
    m = multiclass_metrics(y, p, 15)
    assert m["specificity"] == pytest.approx(1 - (1 - m["sensitivity"]) / 14)


def test_majority_vote_ties_go_to_abnormal():
    groups = ["r1"] * 4 + ["r2"] * 3 + ["r3"] * 2
    y = [0] * 4 + [1] * 3 + [0] * 2
    p = [0, 0, 1, 1, 0, 0, 1, 0, 0]
    rec = majority_vote(groups, y, p).set_index("group")
    assert rec.loc["r1", "prediction"] == 1  # 2 vs 2: tie -> abnormal
    assert rec.loc["r2", "prediction"] == 0 and rec.loc["r2", "label"] == 1
    assert rec.loc["r3", "prediction"] == 0
    assert rec["n_beats"].tolist() == [4, 3, 2] and rec["n_correct"].tolist() == [2, 1, 2]


def test_mean_posterior_averages_units():
    rec = mean_posterior(["c1", "c1", "c2"], [2, 2, 0],
                         [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.9, 0.05, 0.05]])
    assert rec["prediction"].tolist() == [0, 0]
    assert rec.loc[0, "p0"] == pytest.approx(0.4) and rec["n_units"].tolist() == [2, 1]


def test_mcnemar_exact_equals_scipy_binomial_test():
    a = np.r_[np.ones(60), np.ones(9), np.zeros(3), np.zeros(28)].astype(bool)
    b = np.r_[np.ones(60), np.zeros(9), np.ones(3), np.zeros(28)].astype(bool)
    r = mcnemar(a, b)
    assert (r["both_correct"], r["only_a"], r["only_b"], r["both_wrong"]) == (60, 9, 3, 28)
    assert r["method"] == "exact"
    assert r["pvalue"] == pytest.approx(binomtest(3, 12, 0.5).pvalue, rel=1e-12)


def test_mcnemar_chi2_with_continuity_correction():
    a = np.r_[np.ones(500), np.ones(60), np.zeros(30), np.zeros(100)].astype(bool)
    b = np.r_[np.ones(500), np.zeros(60), np.ones(30), np.zeros(100)].astype(bool)
    r = mcnemar(a, b)
    statistic = (abs(60 - 30) - 1) ** 2 / 90
    assert r["method"] == "chi2" and r["statistic"] == pytest.approx(statistic)
    assert r["pvalue"] == pytest.approx(chi2.sf(statistic, 1))


def test_mcnemar_recording_level_cannot_reach_significance_for_the_papers_counts():
    # REPRODUCTION.md §5: TP 121 for both, TN 128 -> 131; at best 3 discordant recordings
    static = np.r_[np.ones(249), np.zeros(35)].astype(bool)
    learnable = np.r_[np.ones(252), np.zeros(32)].astype(bool)
    assert mcnemar(static, learnable)["pvalue"] >= 0.25


def test_bootstrap_interval_covers_the_point_and_is_reproducible():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.where(rng.random(200) < 0.8, y, 1 - y)
    stat = lambda w: binary_metrics(y, p, w)  # noqa: E731
    ci = bootstrap_ci(stat, 200, 300, seed=3)
    point = binary_metrics(y, p)
    for name in ("accuracy", "macc", "sensitivity"):
        low, high = ci[name]
        assert low < point[name] < high and high - low < 0.2
    assert ci == bootstrap_ci(stat, 200, 300, seed=3)
    narrower = bootstrap_ci(stat, 200, 300, level=0.5, seed=3)["accuracy"]
    assert narrower[0] > ci["accuracy"][0] and narrower[1] < ci["accuracy"][1]


def test_bootstrap_weights_resample_whole_items():
    seen = []
    bootstrap_ci(lambda w: seen.append(w) or {"n": float(w.sum())}, 7, 20, seed=0)
    assert all(w.sum() == 7 and w.dtype.kind == "i" for w in seen)


def test_mean_over_trainings_covers_training_noise_at_its_level():
    # Trainings whose metric scatters around the truth (sd 2) on a shared evaluation set
    # whose own draw moves every training alike (sd 1): the recordings-only interval
    # (the shared part) misses far more often than 5 %; the interval over trainings keeps
    # its 95 % at n = 3, where the t quantile with few df carries the small sample.
    rng = np.random.default_rng(0)
    hits, hits_recordings_only, n = 0, 0, 3
    for _ in range(2000):
        shared = rng.normal(0, 1)
        values = shared + rng.normal(0, 2, n)
        resampled = values.mean() + rng.normal(0, 1, 400)  # the recordings' bootstrap
        r = mean_over_trainings(values, resampled)
        hits += r["low"] <= 0 <= r["high"]
        hits_recordings_only += abs(values.mean()) <= 1.96 * resampled.std(ddof=1)
    assert 0.93 <= hits / 2000 <= 0.985
    assert hits_recordings_only / 2000 < 0.85


def test_mean_over_trainings_degrees_of_freedom_bounds_and_errors():
    from scipy.stats import norm, t

    flat = mean_over_trainings([0.5, 0.5, 0.5], np.tile([0.45, 0.55], 50))
    assert flat["df"] == math.inf  # no spread between trainings: the recordings' part only
    assert flat["high"] - 0.5 == pytest.approx(norm.ppf(0.975) * flat["se"])
    spread = mean_over_trainings([0.2, 0.5, 0.8], np.full(100, 0.5))
    assert spread["df"] == pytest.approx(2.0) and spread["se"] == pytest.approx(0.3 / math.sqrt(3))
    assert spread["high"] - 0.5 == pytest.approx(t.ppf(0.975, 2) * spread["se"])
    assert spread["pvalue"] == pytest.approx(2 * t.sf(0.5 / spread["se"], 2))
    clipped = mean_over_trainings([0.2, 0.5, 0.8], np.full(100, 0.5), bounds=(0.0, 1.0))
    assert (clipped["low"], clipped["high"]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least two"):
        mean_over_trainings([0.5], np.full(10, 0.5))


def test_mean_sd():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    mean, sd = mean_sd([0.5])
    assert mean == 0.5 and np.isnan(sd)
