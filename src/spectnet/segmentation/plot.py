"""Plot a PCG with its Springer segmentation, for checking by eye."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_segmentation", "STATE_NAMES", "STATE_COLOURS"]

STATE_NAMES = {0: "unassigned", 1: "S1", 2: "systole", 3: "S2", 4: "diastole"}
STATE_COLOURS = {0: "#bbbbbb", 1: "#d62728", 2: "#ffdd88", 3: "#1f77b4", 4: "#b7e4c7"}


def _runs(states: np.ndarray):
    """(start, stop, value) of each run of equal values (stop exclusive)."""
    s = np.asarray(states)
    if s.size == 0:
        return []
    edges = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [s.size]])
    return list(zip(starts.tolist(), stops.tolist(), s[starts].tolist()))


def plot_segmentation(signal, segmentation, sample_rate: int = 1000, ax=None,
                      title: str | None = None, *, t_range: tuple[float, float] | None = None):
    """Draw the waveform with the four states shaded and S1 onsets marked.

    Args:
        signal: (n,) the segmented signal.
        segmentation: a :class:`~spectnet.segmentation.Segmentation`, or an (n,) state array.
        sample_rate: samples per second (for the time axis).
        ax: matplotlib Axes to draw on; a new figure is made when None.
        title: axes title; by default the heart rate and systolic interval.
        t_range: optional (start_s, stop_s) to zoom on.

    Returns:
        The Axes. Works with the Agg backend (nothing is shown).
    """
    from matplotlib.patches import Patch

    x = np.asarray(signal, dtype=np.float64)
    states = getattr(segmentation, "states", segmentation)
    states = np.asarray(states)
    if states.shape != x.shape:
        raise ValueError(f"signal {x.shape} and states {states.shape} differ in shape")
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(14, 4), constrained_layout=True)
    t = np.arange(x.size) / sample_rate
    lo, hi = (0.0, x.size / sample_rate) if t_range is None else t_range
    sel = (t >= lo) & (t <= hi)
    amp = float(np.max(np.abs(x[sel]))) if np.any(sel) else 1.0
    amp = amp or 1.0
    for start, stop, value in _runs(states):
        if stop / sample_rate < lo or start / sample_rate > hi:
            continue
        ax.axvspan(start / sample_rate, stop / sample_rate, color=STATE_COLOURS.get(value, "w"),
                   alpha=0.45, lw=0)
    ax.plot(t[sel], x[sel], color="k", lw=0.6)
    onsets = getattr(segmentation, "s1_onsets", None)
    if onsets is None:
        c = np.flatnonzero(np.diff(states)) + 1
        onsets = c[states[c] == 1]
    onsets = np.asarray(onsets)
    on_t = onsets / sample_rate
    on_t = on_t[(on_t >= lo) & (on_t <= hi)]
    ax.vlines(on_t, -1.05 * amp, 1.05 * amp, colors="#d62728", lw=1.2, linestyles="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-1.1 * amp, 1.5 * amp)  # headroom so the legend does not hide the trace
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title is None and hasattr(segmentation, "heart_rate_bpm"):
        title = (f"Springer segmentation: HR {segmentation.heart_rate_bpm:.1f} bpm, "
                 f"systolic interval {segmentation.systolic_interval_s * 1000:.0f} ms, "
                 f"{len(segmentation.s1_onsets)} S1 onsets")
    if title:
        ax.set_title(title)
    handles = [Patch(color=STATE_COLOURS[k], alpha=0.6, label=STATE_NAMES[k])
               for k in (1, 2, 3, 4)]
    if np.any(states == 0):
        handles.append(Patch(color=STATE_COLOURS[0], alpha=0.6, label=STATE_NAMES[0]))
    from matplotlib.lines import Line2D
    handles.append(Line2D([], [], color="#d62728", ls="--", label="S1 onset"))
    ax.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8,
              framealpha=0.9)
    return ax
