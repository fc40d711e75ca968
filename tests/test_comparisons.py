"""learnable-N against its control: recording-level McNemar and paired bootstrap intervals
on known tables (predictions written in the layout `physionet evaluate` writes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from spectnet.config import Params
from spectnet.evaluation.metrics import binary_metrics
from spectnet.experiments.heart_sounds import HeartSounds
from spectnet.experiments.task import compare_runs, comparisons
from spectnet.params import validate_params


def _params() -> Params:
    return Params.from_dict(validate_params({
        "scale": "smoke",
        "scales": {"smoke": {"heart_sounds": {"seeds": [1], "comparison_seeds": [1, 2],
                                              "bootstrap": 400}}},
        "heart_sounds": {"frontend": {"n_filters": [4]}, "learnable": {"n_filters": [4]}}},
        partial=True))


def _write(root, run, seed, labels, predictions, beats_per_record=3):
    """A run's predictions: every recording's beats all predicted as the recording."""
    where = root / run / f"seed{seed}"
    where.mkdir(parents=True)
    names = [f"r{i:03d}" for i in range(len(labels))]
    beats = pd.DataFrame({"group": np.repeat(names, beats_per_record), "beat": np.tile(
        np.arange(beats_per_record), len(names)), "domain": "a",
        "label": np.repeat(labels, beats_per_record),
        "prediction": np.repeat(predictions, beats_per_record)})
    beats.to_csv(where / "beats.csv", index=False)
    groups = pd.DataFrame({"group": names, "domain": "a", "n_examples": beats_per_record,
                           "n_correct": beats_per_record * (labels == predictions),
                           "label": labels, "prediction": predictions})
    groups.to_csv(where / "recordings.csv", index=False)


def test_recording_level_mcnemar_and_paired_intervals_on_a_known_table(tmp_path):
    # 100 recordings, half abnormal. Both runs right on 60, both wrong on 14; only the
    # control right on 6, only the learnable run right on 20: McNemar's exact test on the
    # 26 discordant recordings is a binomial test of 6 of 26 at p = 1/2.
    labels = np.array([1, 0] * 50)
    outcome = np.array(["both"] * 60 + ["neither"] * 14 + ["control"] * 6 + ["learnable"] * 20)
    control = np.where(np.isin(outcome, ["both", "control"]), labels, 1 - labels)
    learnable = np.where(np.isin(outcome, ["both", "learnable"]), labels, 1 - labels)
    for seed in (1, 2):
        _write(tmp_path, "static-4-control", seed, labels, control)
        _write(tmp_path, "learnable-4", seed, labels, learnable)
    rows = compare_runs(HeartSounds(_params(), tmp_path), tmp_path, "static-4-control",
                        "learnable-4")
    assert [r["seed"] for r in rows] == [1, 2, "pooled"]
    first = rows[0]
    assert (first["only_a"], first["only_b"], first["both_correct"], first["both_wrong"]) == (
        6, 20, 60, 14)
    assert first["method"] == "exact"
    assert first["pvalue"] == pytest.approx(binomtest(6, 26, 0.5).pvalue)
    expected = binary_metrics(labels, learnable)["macc"] - binary_metrics(labels, control)["macc"]
    assert first["recording_macc_difference"] == pytest.approx(expected)
    assert first["recording_macc_ci_low"] < expected < first["recording_macc_ci_high"]
    assert first["recording_macc_ci_low"] > 0  # 20 vs 6: the difference is clear
    # beats are nested in their recordings: the beat-level difference equals the
    # recording-level accuracy difference here, and its interval resamples recordings
    assert first["beat_accuracy_difference"] == pytest.approx(0.14)
    pooled = rows[-1]
    assert pooled["recording_macc_difference"] == pytest.approx(expected)
    # two trainings that agree: no training spread, so the recordings' part alone (normal
    # quantile) and a clear t-test
    assert pooled["ci_over"] == "recordings and trainings" and first["ci_over"] == "recordings"
    assert pooled["method"] == "t over trainings" and pooled["df"] == float("inf")
    assert pooled["recording_macc_ci_low"] > 0 and pooled["pvalue"] < 0.01


def test_the_pooled_interval_covers_the_spread_between_seeds(tmp_path):
    # Seed 1: the learnable run right on 20 more recordings; seed 2: on 20 fewer. Each
    # seed's own interval excludes zero; the recordings-only bootstrap of their mean would
    # be narrow around 0, but what the comparison says depends on the seed, and the pooled
    # interval over recordings and trainings must be as wide as that spread.
    labels = np.array([1, 0] * 50)
    base = np.where(np.arange(100) < 60, labels, 1 - labels)  # right on 60
    better = np.where(np.arange(100) < 80, labels, 1 - labels)  # right on 80
    _write(tmp_path, "static-4-control", 1, labels, base)
    _write(tmp_path, "learnable-4", 1, labels, better)
    _write(tmp_path, "static-4-control", 2, labels, better)
    _write(tmp_path, "learnable-4", 2, labels, base)
    rows = compare_runs(HeartSounds(_params(), tmp_path), tmp_path, "static-4-control",
                        "learnable-4")
    one, two, pooled = rows
    assert one["recording_macc_ci_low"] > 0 and two["recording_macc_ci_high"] < 0
    assert pooled["recording_macc_difference"] == pytest.approx(0.0)
    assert pooled["df"] == pytest.approx(1.0, abs=0.05)  # the two seeds' spread dominates
    assert pooled["recording_macc_ci_low"] < one["recording_macc_difference"] * -1
    assert pooled["recording_macc_ci_high"] > one["recording_macc_difference"]
    assert pooled["pvalue"] > 0.5


def test_no_difference_gives_a_zero_interval_and_p_one(tmp_path):
    labels = np.array([1, 0] * 20)
    same = np.where(np.arange(40) % 5 == 0, 1 - labels, labels)
    for run in ("static-4", "static-4-control", "learnable-4"):
        for seed in (1, 2):
            _write(tmp_path, run, seed, labels, same)
    table = comparisons(HeartSounds(_params(), tmp_path), tmp_path)
    assert set(table["comparison"]) == {"same budget", "paper (unequal budget)"}
    assert (table["recording_macc_difference"] == 0).all()
    assert (table["recording_macc_ci_low"] == 0).all() and (table["recording_macc_ci_high"] == 0).all()
    assert (table.dropna(subset=["pvalue"])["pvalue"] == 1).all()


def test_runs_evaluated_on_different_recordings_are_refused(tmp_path):
    labels = np.array([1, 0] * 10)
    for seed in (1, 2):
        _write(tmp_path, "static-4-control", seed, labels, labels)
        _write(tmp_path, "learnable-4", seed, labels[:-2], labels[:-2])
    with pytest.raises(Exception, match="evaluated on different groups"):
        compare_runs(HeartSounds(_params(), tmp_path), tmp_path, "static-4-control",
                     "learnable-4")
