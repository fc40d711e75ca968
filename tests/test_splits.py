"""Inner splits of a training fold: group-disjoint, stratified, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from spectnet.datasets.clips import source_recording
from spectnet.datasets.splits import group_subset, inner_split


def _groups(rng, sizes: dict[str, int]):
    """Examples of groups ``g<stratum><i>`` with 1-9 examples each, per stratum."""
    groups, strata = [], []
    for stratum, n in sizes.items():
        for i in range(n):
            k = rng.integers(1, 10)
            groups += [f"g{stratum}{i:03d}"] * k
            strata += [stratum] * k
    order = rng.permutation(len(groups))  # examples of a group need not be contiguous
    return np.array(groups)[order], np.array(strata)[order]


def test_whole_groups_held_out_in_proportion_to_each_stratum():
    groups, strata = _groups(np.random.default_rng(0), {"a": 100, "b": 40, "c": 3, "d": 1})
    held = inner_split(groups, strata, fraction=0.2, seed=7)
    for g in np.unique(groups):               # a group is on one side only
        assert len(set(held[groups == g])) == 1
    chosen = {g for g in groups[held]}
    per = {s: len({g for g in chosen if g[1] == s}) for s in "abcd"}
    assert per == {"a": 20, "b": 8, "c": 1, "d": 0}    # at least one of a small stratum,
    assert np.array_equal(held, inner_split(groups, strata, 0.2, seed=7))  # never all
    assert not np.array_equal(held, inner_split(groups, strata, 0.2, seed=8))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_must_be_strictly_between_zero_and_one(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        inner_split(["a", "b"], ["x", "x"], fraction, 0)


def test_group_subset_keeps_every_stratum_and_at_most_about_n_groups():
    groups, strata = _groups(np.random.default_rng(1), {"a": 60, "b": 30, "c": 2})
    kept = group_subset(groups, strata, 12, seed=1)
    chosen = set(groups[kept])
    assert {g[1] for g in chosen} == {"a", "b", "c"} and 12 <= len(chosen) <= 14
    for g in np.unique(groups):
        assert len(set(kept[groups == g])) == 1
    assert group_subset(groups, strata, None, seed=1).all()
    assert group_subset(groups, strata, 10_000, seed=1).all()


def test_source_recordings_of_clip_names():
    assert source_recording("esc10", "3-141240-B") == source_recording("esc50", "1-141240-A")
    assert source_recording("dcase2016", "b020_90_120") == "b020"
    assert source_recording("folder", "dogs/rex") == "dogs/rex"
