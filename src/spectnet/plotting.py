"""Plotting helpers (matplotlib; Agg-safe: nothing here calls ``plt.show``).

A plain module of functions.  ``plot_filterbank`` draws the gammatone filterbank's
frequency responses like the paper's Fig. 1, optionally overlaying several filterbanks
(e.g. before / after learning).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .functional import gammatone_frequency_response

__all__ = ["plot_filterbank"]


def _as_filterbank(frontend):
    """Accept a SpectNetFrontend, a GammatoneFilterbank or anything with ``.filterbank``."""
    bank = getattr(frontend, "filterbank", frontend)
    if not hasattr(bank, "kernels") or not hasattr(bank, "sample_rate"):
        raise TypeError(f"expected a SpectNetFrontend or GammatoneFilterbank, got {type(frontend).__name__}")
    return bank


def filterbank_magnitude(frontend, n_points: int = 1024):
    """``(freqs (Q,), magnitude (F, Q))`` numpy arrays of ``|G(f)|`` over 0 .. fs/2."""
    bank = _as_filterbank(frontend)
    with torch.no_grad():
        kernels = bank.kernels().detach().cpu().double()  # numpy needs host memory
        freqs = torch.linspace(0.0, bank.sample_rate / 2.0, n_points, dtype=torch.float64)
        magnitude = gammatone_frequency_response(kernels, freqs, bank.sample_rate).abs()
    return freqs.numpy(), magnitude.numpy()


def plot_filterbank(
    frontend,
    ax=None,
    *,
    after=None,
    labels: Optional[Sequence[str]] = None,
    db: bool = True,
    normalize: bool = True,
    n_points: int = 1024,
    floor_db: float = -60.0,
    title: Optional[str] = "Gammatone filterbank frequency response",
):
    """Plot every filter's magnitude response ``|G(f)|`` (one line per filter and bank).

    Args:
        frontend: a :class:`~spectnet.frontend.SpectNetFrontend` /
            :class:`~spectnet.frontend.GammatoneFilterbank`, or a list of them to overlay.
        ax: matplotlib Axes to draw into (a new figure is made if None).
        after: optional second bank (e.g. after learning) overlaid dashed; same as passing
            ``[frontend, after]``.
        labels: legend label per bank (default ``"before"/"after"`` for two banks).
        db: plot ``20 log10`` magnitude (else linear).
        normalize: divide by the largest response of the *first* bank, so a learnt change
            of amplitude stays visible in the overlay.
        n_points: frequency grid size over 0 .. fs/2.
        floor_db: lower y-limit in dB.

    Returns:
        The Axes; ``ax.figure`` is the Figure.  Bank ``i``'s lines are ``ax.lines[i*F:(i+1)*F]``.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from spectnet.frontend import SpectNetFrontend
        >>> ax = plot_filterbank(SpectNetFrontend(n_filters=4))
        >>> len(ax.lines)
        4
    """
    import matplotlib.pyplot as plt
    import numpy as np

    banks = list(frontend) if isinstance(frontend, (list, tuple)) else [frontend]
    if after is not None:
        banks.append(after)
    banks = [_as_filterbank(b) for b in banks]
    if labels is None:
        labels = ["before", "after"] if len(banks) == 2 else [None] * len(banks)
    if len(labels) != len(banks):
        raise ValueError(f"got {len(labels)} labels for {len(banks)} filterbanks")
    created = ax is None
    if created:
        _, ax = plt.subplots(figsize=(7, 3.5))

    responses = [filterbank_magnitude(b, n_points) for b in banks]
    reference = float(responses[0][1].max()) if normalize else 1.0
    reference = reference if reference > 0 else 1.0
    top = -math.inf
    styles = ["-", "--", ":", "-."]
    cmap = plt.get_cmap("viridis")
    for index, ((freqs, magnitude), label) in enumerate(zip(responses, labels)):
        values = magnitude / reference
        if db:
            values = 20.0 * np.log10(np.maximum(values, 1e-300))
        top = max(top, float(values.max()))
        n_filters = values.shape[0]
        for filter_index in range(n_filters):
            colour = cmap(filter_index / max(n_filters - 1, 1))
            ax.plot(
                freqs, values[filter_index], linestyle=styles[index % len(styles)], color=colour,
                linewidth=1.0, label=label if (label and filter_index == 0) else None,
            )
    ax.set_xlabel("Frequency (Hz)")
    ax.set_ylabel("Magnitude (dB)" if db else "Magnitude")
    ax.set_xlim(0.0, max(b.sample_rate for b in banks) / 2.0)
    if db:
        # a learnt narrower or louder filter may exceed the first bank's peak: keep it visible
        ax.set_ylim(floor_db, top + 3.0)
    if any(labels):
        ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    if created:
        ax.figure.tight_layout()
    return ax
