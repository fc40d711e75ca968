"""How far a learnable front-end's filters moved: the evidence that a learnable stage
learned filters at all.

A run's ``frontend.csv`` holds every filter's centre frequency f, bandwidth b, amplitude
a and order n at the end of every epoch (epoch 0 = where the stage started).
:func:`filter_change` measures the move from the start to a chosen epoch: the largest and
the median absolute change of f in Hz and in units of the local filter spacing (the move
that shifts a filter onto its neighbour is one spacing), and of b and a relative to their
start.

Example:
    >>> trace = pd.DataFrame({"epoch": [0, 0, 0, 1, 1, 1], "filter": [0, 1, 2] * 2,
    ...                       "center_frequency": [0, 100, 300, 10, 100, 280],
    ...                       "bandwidth": [100.0] * 3 + [100, 150, 100],
    ...                       "amplitude": [1e4] * 6, "order": [4.0] * 6})
    >>> change = filter_change(trace, epoch=1, sample_rate=1000)
    >>> change["f_max_hz"], change["f_max_spacing"], change["b_max_rel"]
    (20.0, 0.1, 0.5)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from spectnet.frontend import filter_spacing

__all__ = ["filter_change"]


def filter_change(trace: pd.DataFrame, epoch: int, sample_rate: float) -> dict[str, float]:
    """The filters' move from epoch 0 to ``epoch`` of a front-end trace.

    Returns:
        ``f_max_hz``, ``f_median_hz``, ``f_max_spacing``, ``f_median_spacing`` (|Δf| in
        Hz and in local filter spacings at the start), ``b_max_rel``, ``b_median_rel``,
        ``a_max_rel``, ``a_median_rel`` (|Δb| / b and |Δa| / a at the start), and
        ``epoch``.
    """
    start = trace[trace["epoch"] == 0].sort_values("filter")
    end = trace[trace["epoch"] == epoch].sort_values("filter")
    if start.empty or len(start) != len(end):
        raise ValueError(f"the trace has no complete epochs 0 and {epoch}")
    f0 = start["center_frequency"].to_numpy(float)
    spacing = filter_spacing(torch.from_numpy(f0), sample_rate / 2.0).numpy()
    df = np.abs(end["center_frequency"].to_numpy(float) - f0)
    out = {"epoch": int(epoch), "f_max_hz": float(df.max()), "f_median_hz": float(np.median(df)),
           "f_max_spacing": float((df / spacing).max()),
           "f_median_spacing": float(np.median(df / spacing))}
    for key, column in (("b", "bandwidth"), ("a", "amplitude")):
        before = start[column].to_numpy(float)
        rel = np.abs(end[column].to_numpy(float) - before) / np.abs(before)
        out[f"{key}_max_rel"], out[f"{key}_median_rel"] = float(rel.max()), float(np.median(rel))
    return out
