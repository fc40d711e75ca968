"""Figures of the heart-sound experiments (Table II), from the run directories and results.

Each ``plot_*`` function takes data (front-ends, tables, evaluation results) and returns a
:class:`matplotlib.figure.Figure`. Figures are made with matplotlib's object-oriented API,
never through ``pyplot``: no global state, nothing shown, Agg rendering for PNG and the PDF
backend for PDF, on any machine. :func:`save_figure` writes a figure as PNG and PDF, each
atomically. :func:`draw_heart_sound_figures` draws every figure of the grid from a
workflow's outputs (``spectnet physionet figures``):

- ``filterbank-learnable-N``: learnable-N's filters before (its start: static-N's selected
  model) and after fine-tuning (its selected model), the paper's Fig. 1 idea;
- ``beat-spectrogram``: a normal and an abnormal validation beat through static-N's
  front-end, time by frequency, under their waveforms (Fig. 2);
- ``learning-curves``: training loss, selection-set loss and MAcc per epoch;
- ``frontend-trajectories-RUN``: centre frequencies, bandwidths and amplitudes per epoch
  of each run that trains its filters;
- ``per-subset-metrics``: MAcc, sensitivity and specificity per PhysioNet subset (a-f);
- ``confusion-matrices``: recording- and beat-level confusion matrices of every run.

Example:
    >>> import pandas as pd
    >>> history = pd.DataFrame({"run": "static-4", "seed": 1, "epoch": [1, 2],
    ...                         "train_loss": [0.7, 0.5], "loss": [0.69, 0.6],
    ...                         "macc": [0.5, 0.7]})
    >>> fig = plot_learning_curves(history, {("static-4", 1): 2}, "smoke scale, seed 1")
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['Cross-entropy', 'Cross-entropy', 'MAcc (%)']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from spectnet.atomic import atomic_output
from spectnet.datasets.examples import BEATS, ExampleStore
from spectnet.errors import SpectNetError
from spectnet.frontend import filter_spacing
from spectnet.grid import (heart_sound_figure_names, heart_sound_runs, run_seeds,
                           scene_figure_names, scene_runs, trained_frontend_runs)
from spectnet.plotting import plot_filterbank

__all__ = ["save_figure", "run_colours", "describe_runs", "plot_filterbank_learning",
           "plot_beat_spectrograms", "plot_learning_curves", "plot_frontend_trajectories",
           "plot_subset_metrics", "plot_confusion_matrices", "pick_beats",
           "trained_frontend_runs", "heart_sound_figure_names", "draw_heart_sound_figures",
           "scene_figure_names", "draw_scene_figures"]

#: Figure formats written by :func:`save_figure`, with their options.
FORMATS = {"png": {"dpi": 150}, "pdf": {}}
#: The recording-level metrics of the per-subset figure: key -> axis label.
SUBSET_METRICS = {"macc": "MAcc", "sensitivity": "Sensitivity", "specificity": "Specificity"}


def save_figure(fig: Figure, path: str | Path) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.pdf`` (``path`` without suffix), atomically.

    Returns the paths written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, options in FORMATS.items():
        target = path.with_name(f"{path.name}.{suffix}")
        with atomic_output(target) as tmp:
            fig.savefig(tmp, format=suffix, bbox_inches="tight", **options)
        written.append(target)
    return written


def run_colours(runs: Sequence[str]) -> dict[str, tuple]:
    """One colour per run, in the grid's order, the same in every figure."""
    palette = colormaps["tab10"].colors
    return {run: palette[i % len(palette)] for i, run in enumerate(runs)}


def describe_runs(scales: Iterable[str], seeds: Sequence[int]) -> str:
    """The subtitle part naming the scale(s) and seeds that produced a figure's data."""
    scales = sorted(set(scales))
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    return f"{' + '.join(scales)} scale, {seed_text}"


def _title(fig: Figure, title: str, subtitle: str) -> None:
    fig.suptitle(f"{title}\n{subtitle}", fontsize="medium")


def _bank_parameters(bank) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {name: getattr(bank, name).detach().cpu().double().numpy()
                for name in ("center_frequency", "bandwidth", "amplitude")}


# ----------------------------------------------------------------------- 1. filterbank
def plot_filterbank_learning(pairs: Sequence[tuple[int, object, object]], run: str,
                             subtitle: str) -> Figure:
    """The paper's Fig. 1 idea on learnt parameters: a filterbank before and after learning.

    One row per seed: left, every filter's magnitude response before (solid) and after
    (dashed), normalised to the largest response before (:func:`~spectnet.plotting.
    plot_filterbank`); right, each filter's change of centre frequency (in local filter
    spacings: 1 = onto its neighbour), bandwidth and amplitude (%), which stay readable
    when the responses barely move; the panel titles give the largest and median change
    (:func:`spectnet.evaluation.filters.filter_change`).

    Args:
        pairs: ``(seed, before, after)`` per seed; ``before``/``after`` are
            :class:`~spectnet.frontend.SpectNetFrontend` or
            :class:`~spectnet.frontend.GammatoneFilterbank` with the same number of filters.
        run: the learnable run's name (``learnable-16``), for the title.
        subtitle: scale and seeds (:func:`describe_runs`).
    """
    fig = Figure(figsize=(12, 4.2 * len(pairs) + 0.8), layout="constrained")
    grid = fig.add_gridspec(3 * len(pairs), 2, width_ratios=(1.8, 1))
    n = run.rsplit("-", 1)[-1]
    for row, (seed, before, after) in enumerate(pairs):
        response = fig.add_subplot(grid[3 * row:3 * row + 3, 0])
        plot_filterbank(before, response, after=after, db=False,
                        labels=[f"before: static-{n}", f"after: {run}"],
                        title=f"Magnitude responses, seed {seed}")
        response.set_ylabel("Magnitude (relative to the largest before)")
        old = _bank_parameters(getattr(before, "filterbank", before))
        new = _bank_parameters(getattr(after, "filterbank", after))
        if len(old["center_frequency"]) != len(new["center_frequency"]):
            raise ValueError("before and after have different numbers of filters")
        index = np.arange(len(old["center_frequency"]))
        bank = getattr(before, "filterbank", before)
        spacing = filter_spacing(torch.from_numpy(old["center_frequency"]),
                                 bank.sample_rate / 2).numpy()
        df = new["center_frequency"] - old["center_frequency"]
        changes = [(f"Δf (spacings)\nmax |Δf| {np.abs(df).max():.3g} Hz, "
                    f"median {np.median(np.abs(df)):.3g} Hz", df / spacing),
                   ("Δ bandwidth (%)", 100 * (new["bandwidth"] / old["bandwidth"] - 1)),
                   ("Δ amplitude (%)", 100 * (new["amplitude"] / old["amplitude"] - 1))]
        colours = colormaps["viridis"](index / max(len(index) - 1, 1))
        for k, (label, delta) in enumerate(changes):
            ax = fig.add_subplot(grid[3 * row + k, 1])
            ax.bar(index, delta, color=colours)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_ylabel(label, fontsize="x-small")
            ax.set_xticks(index, [f"{f:.0f}" for f in old["center_frequency"]],
                          fontsize="x-small", rotation=90)
            if k == 0:
                ax.set_title(f"Change per filter, seed {seed}", fontsize="medium")
            if k == 2:
                ax.set_xlabel("Filter (initial centre frequency, Hz)")
    _title(fig, f"{run}: gammatone filterbank before and after learning", subtitle)
    return fig


# --------------------------------------------------------------- 2. beat spectrogram
def plot_beat_spectrograms(beats: Sequence[Mapping], frontend, run: str,
                           subtitle: str) -> Figure:
    """The paper's Fig. 2 idea: beats through a SpectNet front-end, time by frequency.

    One column per beat: the waveform above its spectrogram image (log energy per filter
    and frame, the image the CNN sees), on one time axis. A frame is placed at the centre of
    its energy window: the front-end's cross-correlation looks ahead from the window's
    start, so the filters' few milliseconds of group delay are ignored. Past the cycle's
    true length the beat is zero padding (dotted line).

    Args:
        beats: per beat ``{"waveform": (T,) array, "title": str, "true_length": int}``.
        frontend: a :class:`~spectnet.frontend.SpectNetFrontend`.
        run: the run whose front-end it is, for the title.
        subtitle: scale and seeds.
    """
    rate = float(frontend.sample_rate)
    with torch.no_grad():
        waves = torch.as_tensor(np.stack([np.asarray(b["waveform"], np.float32) for b in beats]))
        device = next(frontend.parameters()).device
        images = frontend(waves.to(device)).cpu().numpy()           # (B, F, M)
        centres = frontend.filterbank.center_frequency.detach().cpu().numpy()
    frames = images.shape[-1]
    times = (np.arange(frames) * frontend.hop_length + (frontend.win_length - 1) / 2) / rate
    half_hop = frontend.hop_length / rate / 2
    # colour range: the loudest cell down to the quietest one inside the cycles (the zero
    # padding's log floor would take the whole scale otherwise)
    inside = [img[:, times <= b["true_length"] / rate] for img, b in zip(images, beats)]
    low = min(float(np.percentile(x, 1)) for x in inside if x.size)
    high = float(images.max())

    fig = Figure(figsize=(6 * len(beats), 6.5), layout="constrained")
    grid = fig.add_gridspec(2, len(beats), height_ratios=(1, 2.2))
    shown = None
    for column, (beat, image) in enumerate(zip(beats, images)):
        wave_ax = fig.add_subplot(grid[0, column])
        image_ax = fig.add_subplot(grid[1, column], sharex=wave_ax)
        wave = np.asarray(beat["waveform"])
        wave_ax.plot(np.arange(len(wave)) / rate, wave, color="black", linewidth=0.6)
        wave_ax.set_title(beat["title"], fontsize="medium")
        wave_ax.set_ylabel("Amplitude (a.u.)")
        wave_ax.tick_params(labelbottom=False)
        shown = image_ax.imshow(image, origin="lower", aspect="auto", cmap="magma",
                                vmin=low, vmax=high, interpolation="nearest",
                                extent=(times[0] - half_hop, times[-1] + half_hop,
                                        -0.5, len(centres) - 0.5))
        step = max(1, len(centres) // 8)
        ticks = np.arange(0, len(centres), step)
        image_ax.set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks])
        image_ax.set_ylabel("Filter centre frequency (Hz)")
        image_ax.set_xlabel("Time (s)")
        image_ax.set_xlim(0, len(wave) / rate)
        end = beat["true_length"] / rate
        for ax in (wave_ax, image_ax):
            ax.axvline(end, color="tab:cyan", linestyle=":", linewidth=1.2,
                       label="end of the cycle (zero padding after)")
        wave_ax.legend(loc="upper right", fontsize="x-small")
    fig.colorbar(shown, ax=fig.axes[1::2], label="Log energy, ln Σ y² (clipped below)")
    _title(fig, f"Beats through the {run} front-end ({len(centres)} gammatone filters, "
                f"window {frontend.win_length}, hop {frontend.hop_length} samples)", subtitle)
    return fig


# ---------------------------------------------------------------- 3. learning curves
def _mean_band(ax, frame: pd.DataFrame, column: str, colour, label: str, scale: float = 1.0):
    by_epoch = frame.groupby("epoch")[column]
    mean = by_epoch.mean() * scale
    ax.plot(mean.index, mean.to_numpy(), color=colour, label=label, marker=".")
    if frame["seed"].nunique() > 1:
        ax.fill_between(mean.index, by_epoch.min() * scale, by_epoch.max() * scale,
                        color=colour, alpha=0.2, linewidth=0)


def plot_learning_curves(histories: pd.DataFrame, best_epochs: Mapping[tuple[str, int], int],
                         subtitle: str, levels: tuple[str, str] = ("recordings", "beats"),
                         metric: str = "MAcc") -> Figure:
    """Training loss, selection-set loss and selection-set MAcc per epoch of every run.

    Args:
        histories: the runs' ``history.csv`` rows with ``run`` and ``seed`` columns
            (epoch, train_loss, loss, macc at least); the mean over seeds is drawn, with a
            band from the lowest to the highest seed where there are several.
        best_epochs: ``(run, seed) -> selected epoch``, marked on the MAcc curves.
        subtitle: scale and seeds.
        levels: what the MAcc and the loss are computed on (groups, examples).
        metric: the selection metric's name in the titles (MAcc, MACC).
    """
    runs = list(dict.fromkeys(histories["run"]))
    colours = run_colours(runs)
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [("train_loss", "Training loss (mean over an epoch's batches)", "Cross-entropy", 1),
              ("loss", f"Selection-set loss ({levels[1]})", "Cross-entropy", 1),
              ("macc", f"Selection-set {metric} ({levels[0]})", f"{metric} (%)", 100)]
    for ax, (column, title, ylabel, scale) in zip(axes, panels):
        for run in runs:
            _mean_band(ax, histories[histories["run"] == run], column, colours[run], run, scale)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("Epoch (of the run's own stage)")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for (run, seed), epoch in best_epochs.items():
        row = histories[(histories["run"] == run) & (histories["seed"] == seed)
                        & (histories["epoch"] == epoch)]
        if len(row):
            axes[2].plot(epoch, 100 * row["macc"].iloc[0], marker="*", markersize=11,
                         color=colours[run], markeredgecolor="black", linestyle="none")
    axes[2].plot([], [], marker="*", markersize=11, color="white", markeredgecolor="black",
                 linestyle="none", label="selected epoch")
    axes[2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    if histories["seed"].nunique() > 1:
        subtitle += "; lines: mean over seeds, bands: lowest to highest seed"
    _title(fig, "Learning curves (learnable-N and static-N-control start from static-N's "
                "selected model)", subtitle)
    return fig


# ------------------------------------------------------- 4. front-end trajectories
def plot_frontend_trajectories(trace: pd.DataFrame, run: str, subtitle: str,
                               best_epochs: Mapping[int, int] | None = None) -> Figure:
    """Each filter's centre frequency, bandwidth and amplitude over the epochs of a run.

    Panels: centre frequency (Hz), and the change since epoch 0 (before training) of the
    centre frequency (Hz), the bandwidth (Hz) and the amplitude (%). Colour = filter (the
    colour bar gives its initial centre frequency); line style = seed.

    Args:
        trace: the run's ``frontend.csv`` rows with a ``seed`` column (epoch, filter,
            center_frequency, bandwidth, amplitude).
        best_epochs: ``seed -> selected epoch``, drawn as grey vertical lines.
    """
    seeds = sorted(trace["seed"].unique())
    n_filters = int(trace["filter"].max()) + 1
    colours = colormaps["viridis"](np.linspace(0, 1, n_filters))
    styles = ["-", "--", ":", "-."]
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    panels = [("center_frequency", "Centre frequency", "Hz", "absolute"),
              ("center_frequency", "Change of centre frequency", "Δ Hz", "difference"),
              ("bandwidth", "Change of bandwidth", "Δ Hz", "difference"),
              ("amplitude", "Change of amplitude", "Δ %", "ratio")]
    for ax, (column, title, unit, kind) in zip(axes, panels):
        for s, seed in enumerate(seeds):
            table = trace[trace["seed"] == seed].pivot(index="epoch", columns="filter",
                                                       values=column).sort_index()
            start = table.loc[table.index.min()]
            values = {"absolute": table, "difference": table - start,
                      "ratio": 100 * (table / start - 1)}[kind]
            for f in table.columns:
                ax.plot(values.index, values[f], color=colours[f], marker=".",
                        linestyle=styles[s % len(styles)], linewidth=1.0)
        if kind != "absolute":
            ax.axhline(0, color="black", linewidth=0.6)
        for s, seed in enumerate(seeds):
            if best_epochs and seed in best_epochs:
                ax.axvline(best_epochs[seed], color="grey", linewidth=1.0,
                           linestyle=styles[s % len(styles)])
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel("Epoch (0 = before training)")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color="black", linestyle=styles[s % len(styles)],
                      label=f"seed {seed}") for s, seed in enumerate(seeds)]
    if best_epochs:
        handles.append(Line2D([], [], color="grey", label="selected epoch"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
               fontsize="small", frameon=False)
    initial = (trace[trace["epoch"] == trace["epoch"].min()].groupby("filter")
               ["center_frequency"].mean().to_numpy())
    mappable = fig.colorbar(
        _filter_mappable(colours), ax=list(axes), ticks=np.arange(n_filters),
        label="Filter (initial centre frequency, Hz)")
    step = max(1, n_filters // 16)
    mappable.set_ticks(np.arange(0, n_filters, step),
                       labels=[f"{initial[i]:.0f}" for i in range(0, n_filters, step)])
    _title(fig, f"{run}: filter parameters during training", subtitle)
    return fig


def _filter_mappable(colours):
    from matplotlib.cm import ScalarMappable
    n = len(colours)
    return ScalarMappable(BoundaryNorm(np.arange(n + 1) - 0.5, n), ListedColormap(colours))


# ------------------------------------------------------------- 5. per-subset metrics
def plot_subset_metrics(evaluations: Mapping[str, Sequence[Mapping]], subtitle: str) -> Figure:
    """Recording-level MAcc, sensitivity and specificity per PhysioNet subset, every run.

    Grouped bars: one group per subset (a-f) plus ``all``, one bar per run (mean over
    seeds). Whiskers: the 95 % bootstrap interval over recordings for a run with one seed
    (subsets c and d have a handful of recordings), the seeds' range for several. A metric
    that is undefined in a subset (no recording of one class) is 0.

    Args:
        evaluations: ``run -> [metrics of each seed]``, each what ``physionet evaluate``
            writes (``metrics``, ``ci``, ``per_domain`` and ``counts``).
    """
    runs = list(evaluations)
    colours = run_colours(runs)
    first = evaluations[runs[0]][0]
    subsets = sorted(first["per_domain"])
    groups = subsets + ["all"]
    counts = [first["per_domain"][s]["count"] for s in subsets] + [first["counts"]["recording"]]

    def value(e: Mapping, group: str, metric: str, part: str = "metrics"):
        entry = e[part]["recording"] if group == "all" else e["per_domain"][group][part]
        return np.asarray(entry[metric], dtype=float) * 100
    fig = Figure(figsize=(max(10, 1.6 * len(groups) * max(1, len(runs) / 4)), 9),
                 layout="constrained")
    axes = fig.subplots(len(SUBSET_METRICS), 1, sharex=True)
    width = 0.8 / len(runs)
    x = np.arange(len(groups))
    for ax, (metric, label) in zip(axes, SUBSET_METRICS.items()):
        for i, run in enumerate(runs):
            values = np.array([[value(e, g, metric) for g in groups] for e in evaluations[run]])
            mean = values.mean(axis=0)
            if len(values) > 1:
                spread = np.vstack([mean - values.min(0), values.max(0) - mean])
            else:
                ci = np.array([value(evaluations[run][0], g, metric, "ci") for g in groups])
                spread = np.vstack([mean - ci[:, 0], ci[:, 1] - mean])
            ax.bar(x - 0.4 + width * (i + 0.5), mean, width, yerr=spread, capsize=2,
                   color=colours[run], label=run)
        ax.set_ylabel(f"{label} (%)")
        ax.set_ylim(0, 105)
        ax.axhline(50, color="grey", linewidth=0.6, linestyle="--")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, [f"{g}\n{n} rec." for g, n in zip(groups, counts)])
    axes[-1].set_xlabel("PhysioNet 2016 subset (validation recordings)")
    axes[0].legend(ncols=min(len(runs), 6), loc="lower center", bbox_to_anchor=(0.5, 1.02),
                   fontsize="small")
    subtitle += ("; whiskers: 95 % bootstrap interval over recordings (one seed) or lowest "
                 "to highest seed")
    _title(fig, "Recording-level metrics per subset (domain)", subtitle)
    return fig


# ------------------------------------------------------------ 6. confusion matrices
def plot_confusion_matrices(evaluations: Mapping[str, Sequence[Mapping]], subtitle: str,
                            levels: Sequence[tuple[str, str]] = (
                                ("recording", "Recordings (majority vote)"), ("beat", "Beats")),
                            ) -> Figure:
    """Confusion matrices of every run at recording and beat level.

    Each cell shows the count (mean over seeds) and the share of its true class; its
    colour is that share, so the diagonal reads as specificity (normal) and sensitivity
    (abnormal).

    Args:
        evaluations: ``run -> [metrics of each seed]`` with ``confusion`` =
            ``{"recording": [[tn, fp], [fn, tp]], "beat": ...}`` and ``classes``.
        levels: ``(key, label)`` of the levels to draw, one row each.
    """
    runs = list(evaluations)
    classes = evaluations[runs[0]][0]["classes"]
    size = 2.6 if len(classes) <= 2 else 0.45 * len(classes) + 1.5
    fig = Figure(figsize=(size * len(runs) + 1.2, (size + 0.2) * len(levels)),
                 layout="constrained")
    axes = np.asarray(fig.subplots(len(levels), len(runs), squeeze=False))
    shown = None
    for row, (level, level_label) in enumerate(levels):
        for column, run in enumerate(runs):
            ax = axes[row, column]
            counts = np.mean([np.asarray(e["confusion"][level], dtype=float)
                              for e in evaluations[run]], axis=0)
            share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
            shown = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            several = len(evaluations[run]) > 1
            for (i, j), count in np.ndenumerate(counts):
                number = f"{count:.1f}" if several else f"{count:.0f}"
                text = f"{number}\n{100 * share[i, j]:.0f} %" if len(classes) <= 2 else number
                ax.text(j, i, text, ha="center", va="center", fontsize="small" if len(
                    classes) <= 2 else "xx-small",
                        color="white" if share[i, j] > 0.6 else "black")
            ticks = np.arange(len(classes))
            ax.set_xticks(ticks, classes, rotation=0 if len(classes) <= 2 else 90,
                          fontsize="medium" if len(classes) <= 2 else "x-small")
            ax.set_yticks(ticks, classes, fontsize="medium" if len(classes) <= 2 else "x-small")
            if row == 0:
                ax.set_title(run, fontsize="medium")
            if row == len(levels) - 1:
                ax.set_xlabel("Predicted")
            if column == 0:
                ax.set_ylabel(f"{level_label}\nTrue")
    fig.colorbar(shown, ax=list(axes.ravel()), label="Share of the true class", shrink=0.8)
    if max(len(e) for e in evaluations.values()) > 1:
        subtitle += "; counts: mean over seeds"
    _title(fig, "Confusion matrices on the reporting fold", subtitle)
    return fig


# -------------------------------------------------------------- from the workflow
def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise SpectNetError(f"{path}: no such file (train the run first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SpectNetError(f"{path}: not a readable CSV table: {exc}") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SpectNetError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpectNetError(f"{path}: not valid JSON: {exc}") from None


def pick_beats(beats_dir: str | Path, fold: int) -> list[dict]:
    """One normal and one abnormal beat of ``validation{fold}`` to draw: of the first
    recording of each class (by name), the beat whose cycle length is that recording's
    median (a typical beat, not a truncated or clipped one)."""
    store = ExampleStore(beats_dir, BEATS)
    index = store.index
    column = f"validation{fold}"
    if column not in index:
        raise SpectNetError(f"{beats_dir}: the beat index has no column {column!r}")
    chosen = []
    for label, name in enumerate(store.classes):
        rows = index[(index[column] == 1) & (index["excluded"] == 0) & (index["label"] == label)]
        if rows.empty:
            raise SpectNetError(f"{beats_dir}: no {name} beat in {column}")
        rows = rows[rows["record"] == rows["record"].min()]
        typical = (rows["true_length"] - rows["true_length"].median()).abs()
        row = rows.loc[typical.sort_values(kind="stable").index[0]]
        chosen.append({"waveform": np.asarray(store.waveforms[row.name], dtype=np.float32),
                       "true_length": int(row["true_length"]),
                       "title": f"{name.capitalize()}: recording {row['record']} "
                                f"(subset {row['subset']}), beat {row['beat']}"})
    return chosen


def draw_heart_sound_figures(models_dir: str | Path, runs_dir: str | Path,
                             beats_dir: str | Path, out_dir: str | Path, params) -> list[Path]:
    """Draw every heart-sound figure (:func:`heart_sound_figure_names`) into ``out_dir``.

    Args:
        models_dir: the runs' directories as ``RUN/seedK/`` (``physionet train``).
        runs_dir: the evaluation results as ``RUN/seedK.json`` (``physionet evaluate``).
        beats_dir: the beat dataset (``physionet segment``).
        params: :class:`~spectnet.config.Params`: the grid, seeds, fold and which model
            file (``heart_sounds.evaluation.model``) was evaluated.

    Returns:
        The files written (PNG and PDF of each figure).
    """
    from spectnet.training.checkpoint import load_model

    models_dir, runs_dir, out_dir = Path(models_dir), Path(runs_dir), Path(out_dir)
    heart, budget = params.heart_sounds, params.active_scale.heart_sounds
    runs = heart_sound_runs(params)
    seeds = {run: run_seeds(run, budget.seeds, budget.comparison_seeds,
                            heart.learnable.n_filters) for run in runs}
    selected = f"{heart.evaluation.model}.pt"
    summaries = {(run, seed): _read_json(models_dir / run / f"seed{seed}" / "summary.json")
                 for run in runs for seed in seeds[run]}
    evaluations = {run: [_read_json(runs_dir / run / f"seed{seed}.json") for seed in seeds[run]]
                   for run in runs}
    every_seed = sorted({seed for run in runs for seed in seeds[run]})
    subtitle = describe_runs([s["scale"] for s in summaries.values()], every_seed)
    recordings = evaluations[runs[0]][0]["counts"]["recording"]
    data_note = f"PhysioNet 2016 validation{heart.fold} ({recordings} recordings)"
    written = []

    def save(fig: Figure, name: str) -> None:
        written.extend(save_figure(fig, out_dir / name))

    for n in heart.learnable.n_filters:
        pairs = []
        for seed in seeds[f"learnable-{n}"]:
            run_dir = models_dir / f"learnable-{n}" / f"seed{seed}"
            before, _ = load_model(models_dir / f"static-{n}" / f"seed{seed}" / "best.pt")
            after, _ = load_model(run_dir / selected)
            start = _read_csv(run_dir / "frontend.csv").query("epoch == 0")
            if not np.allclose(start.sort_values("filter")["center_frequency"],
                               _bank_parameters(before.frontend.filterbank)["center_frequency"],
                               rtol=1e-5, atol=1e-3):
                raise SpectNetError(f"{run_dir}: learnable-{n} did not start from "
                                    f"static-{n}/seed{seed}/best.pt (frontend.csv, epoch 0)")
            pairs.append((seed, before.frontend, after.frontend))
        save(plot_filterbank_learning(pairs, f"learnable-{n}",
                                      f"{subtitle}; after = the {heart.evaluation.model} epoch"),
             f"filterbank-learnable-{n}")

    static = f"static-{max(heart.frontend.n_filters)}"
    first_seed = seeds[static][0]
    model, _ = load_model(models_dir / static / f"seed{first_seed}" / selected)
    save(plot_beat_spectrograms(pick_beats(beats_dir, heart.fold), model.frontend, static,
                                f"{data_note}; {describe_runs([summaries[(static, first_seed)]['scale']], [first_seed])}"),
         "beat-spectrogram")

    histories = pd.concat(
        [_read_csv(models_dir / run / f"seed{seed}" / "history.csv").assign(run=run, seed=seed)
         for run in runs for seed in seeds[run]], ignore_index=True)
    best = {key: summary["best_epoch"] for key, summary in summaries.items()}
    # The curves are the selection set's, which is validation0 only under the authors' A21.
    selection_note = (f"selection set: recordings held out of train{heart.fold}"
                      if heart.selection.split == "inner" else data_note)
    save(plot_learning_curves(histories, best, f"{selection_note}; {subtitle}"),
         "learning-curves")

    for run in trained_frontend_runs(params):
        trace = pd.concat([_read_csv(models_dir / run / f"seed{seed}" / "frontend.csv")
                           .assign(seed=seed) for seed in seeds[run]], ignore_index=True)
        save(plot_frontend_trajectories(trace, run, subtitle,
                                        {seed: best[(run, seed)] for seed in seeds[run]}),
             f"frontend-trajectories-{run}")

    evaluated = f"{data_note}; {subtitle}; the {heart.evaluation.model} epoch of each run"
    save(plot_subset_metrics(evaluations, evaluated), "per-subset-metrics")
    save(plot_confusion_matrices(evaluations, evaluated), "confusion-matrices")
    return written


def draw_scene_figures(models_dir: str | Path, runs_dir: str | Path, out_dir: str | Path,
                       params) -> list[Path]:
    """Draw the scene figures (:func:`scene_figure_names`) into ``out_dir``: the learning
    curves of every run, and for every learnable N its filterbank before and after
    learning, its filters' trajectories and the clip-level confusion matrices of static-N,
    its control and learnable-N.

    Args:
        models_dir: the runs' directories as ``RUN/foldK/seedS/`` (``scenes train``).
        runs_dir: the evaluation results as ``RUN/foldK/seedS.json`` (``scenes evaluate``).
        params: :class:`~spectnet.config.Params`: the grid, folds, seeds and the evaluated
            model file (``scenes.evaluation.model``).

    Returns:
        The files written (PNG and PDF of each figure).
    """
    from spectnet.training.checkpoint import load_model

    models_dir, runs_dir, out_dir = Path(models_dir), Path(runs_dir), Path(out_dir)
    scenes, budget = params.scenes, params.active_scale.scenes
    selected = f"{scenes.evaluation.model}.pt"

    def jobs(run):  # (fold, seed) of a run; a fold-seed pair plays a seed's part in plots
        return [(fold, seed) for fold in budget.folds for seed in run_seeds(
            run, budget.seeds, budget.comparison_seeds, scenes.learnable.n_filters)]

    runs = scene_runs(params)
    summaries = {(run, f"{seed} (fold {fold})"): _read_json(models_dir / run / f"fold{fold}" /
                                                      f"seed{seed}" / "summary.json")
                 for run in runs for fold, seed in jobs(run)}
    dataset = next(iter(summaries.values()))["dataset"]
    every = sorted({seed for run in runs for _, seed in jobs(run)})
    subtitle = (f"{dataset}, folds {', '.join(map(str, budget.folds))}; "
                + describe_runs([s["scale"] for s in summaries.values()], every))
    written = []

    def save(fig: Figure, name: str) -> None:
        written.extend(save_figure(fig, out_dir / name))

    histories = pd.concat(
        [_read_csv(models_dir / run / f"fold{fold}" / f"seed{seed}" / "history.csv")
         .assign(run=run, seed=f"{seed} (fold {fold})")
         for run in runs for fold, seed in jobs(run)], ignore_index=True)
    best = {key: summary["best_epoch"] for key, summary in summaries.items()}
    save(plot_learning_curves(histories, best, subtitle, ("clips", "units"), "MACC"),
         "scene-learning-curves")
    for n in scenes.learnable.n_filters:
        run = f"learnable-{n}"
        pairs = []
        for fold, seed in jobs(run):
            before, _ = load_model(models_dir / f"static-{n}" / f"fold{fold}" / f"seed{seed}" /
                                   "best.pt")
            after, _ = load_model(models_dir / run / f"fold{fold}" / f"seed{seed}" / selected)
            pairs.append((f"{seed} (fold {fold})", before.frontend, after.frontend))
        save(plot_filterbank_learning(pairs, run, f"{subtitle}; after = the "
                                      f"{scenes.evaluation.model} epoch"),
             f"scene-filterbank-{run}")
        trace = pd.concat([_read_csv(models_dir / run / f"fold{fold}" / f"seed{seed}" /
                                     "frontend.csv").assign(seed=f"{seed} (fold {fold})")
                           for fold, seed in jobs(run)], ignore_index=True)
        save(plot_frontend_trajectories(trace, run, subtitle, {
            key: best[(run, key)] for key in trace["seed"].unique()}),
             f"scene-frontend-trajectories-{run}")
        trio = (f"static-{n}", f"static-{n}-control", run)
        evaluations = {name: [_read_json(runs_dir / name / f"fold{fold}" / f"seed{seed}.json")
                              for fold, seed in jobs(name)] for name in trio}
        save(plot_confusion_matrices(evaluations, f"{subtitle}; the {scenes.evaluation.model} "
                                     "epoch of each run", (("clip", "Clips (mean posterior)"),)),
             f"scene-confusion-matrices-{n}")
    return written
