"""Group-disjoint, stratified splits of a training fold: where recipes are chosen.

Every training setting (learning rates, warm-up, budgets, early stopping, the epoch a run
keeps) is chosen on an *inner* split of the training fold, never on the fold the results
are reported on. The inner split holds out whole groups (a recording's beats, or every clip
cut from one source recording), so that no recording has examples on both sides, and it is
stratified: each stratum (class x PhysioNet subset, or class) gives the same fraction of
its groups.

Example:
    >>> groups = np.array(["r1", "r1", "r2", "r3", "r3", "r4", "r5", "r6"])
    >>> strata = np.array(["n", "n", "n", "n", "n", "a", "a", "a"])
    >>> held = inner_split(groups, strata, fraction=0.34, seed=0)
    >>> sorted(set(groups[held].tolist()))   # one of the four normal, one of the three abnormal
    ['r2', 'r6']
    >>> bool(held[groups == "r1"].any() and not held[groups == "r1"].all())
    False
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["inner_split", "group_subset"]


def _held_out_count(n_groups: int, fraction: float) -> int:
    """Groups of a stratum to hold out: ``round(fraction * n)``, at least one when the
    stratum has two or more groups, never all of them."""
    if n_groups < 2:
        return 0
    return int(min(n_groups - 1, max(1, round(fraction * n_groups))))


def inner_split(groups, strata, fraction: float, seed: int) -> np.ndarray:
    """``(N,)`` booleans: the examples of the held-out (inner) groups.

    Args:
        groups: ``(N,)`` the group (recording, source) of every example; a group's
            examples all land on the same side.
        strata: ``(N,)`` the stratum of every example; constant within a group (the
            first example's stratum is the group's).
        fraction: share of each stratum's groups to hold out, in (0, 1).
        seed: seed of the choice (the same groups for the same inputs on any machine).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    frame = pd.DataFrame({"group": np.asarray(groups).astype(str),
                          "stratum": np.asarray(strata).astype(str)})
    firsts = frame.drop_duplicates("group").sort_values(["stratum", "group"])
    rng = np.random.default_rng(seed)
    held: list[str] = []
    for _, members in firsts.groupby("stratum", sort=True):
        names = members["group"].to_numpy()
        held += rng.choice(names, _held_out_count(len(names), fraction), replace=False).tolist()
    return frame["group"].isin(held).to_numpy()


def group_subset(groups, strata, n_groups: int | None, seed: int) -> np.ndarray:
    """``(N,)`` booleans keeping the examples of at most ``n_groups`` groups, drawn in
    proportion to the strata (each stratum keeps at least one group); ``None`` keeps all.
    A fixed, cheap selection set for the smallest budgets."""
    groups = np.asarray(groups).astype(str)
    n_total = len(np.unique(groups))
    if n_groups is None or n_groups >= n_total:
        return np.ones(len(groups), dtype=bool)
    frame = pd.DataFrame({"group": groups, "stratum": np.asarray(strata).astype(str)})
    firsts = frame.drop_duplicates("group").sort_values(["stratum", "group"])
    rng = np.random.default_rng(seed)
    kept: list[str] = []
    for _, members in firsts.groupby("stratum", sort=True):
        names = members["group"].to_numpy()
        k = max(1, round(n_groups * len(names) / n_total))
        kept += rng.choice(names, min(k, len(names)), replace=False).tolist()
    return frame["group"].isin(kept).to_numpy()
