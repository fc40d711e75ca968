"""Table III: acoustic scene classification with SpectNet-N and the scene CNN, per fold.

The runs of the grid, by name:

- ``static-N``: SpectNet-N (front-end frozen at its initialisation) + the scene CNN,
  stage 1, one run per N in ``scenes.frontend.n_filters``;
- ``learnable-N``: the same network fine-tuned end to end from ``static-N``'s selected
  model of the same fold and seed, stage 2 (N = ``scenes.frontend.learnable_n_filters``).

Every run trains on the units of fold k's training set (``train{k}``) and selects its
best epoch by clip-level MACC on fold k's evaluation set (``evaluate{k}``), which is also
the set it is reported on: the authors' protocol (REPRODUCTION.md A21); the last epoch is
kept too. A clip's posterior is the mean of its units' posteriors (§6): the clip-level
metrics are the headline, the unit-level ones secondary. The data set is whatever the
unit store holds (DCASE 2016 for Table III; ESC-10 here); every output records it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from spectnet.atomic import atomic_dir, atomic_write_text
from spectnet.config import Params
from spectnet.errors import SpectNetError
from spectnet.evaluation.metrics import (confusion_matrix, mean_posterior, multiclass_metrics,
                                         per_class_metrics)
from spectnet.evaluation.statistics import bootstrap_ci
from spectnet.experiments.grid import scene_runs as run_names
from spectnet.experiments.runs import Run, default_device, fit_run, read_init_model
from spectnet.preprocessing.clips import UnitDataset
from spectnet.training.checkpoint import load_model
from spectnet.training.data import ExampleSet, load_examples
from spectnet.training.trainer import StageSettings, predict_proba

__all__ = ["TASK", "METRICS", "PAPER_TABLE_III", "Evaluation", "parse_run", "run_names",
           "run_label", "model_spec", "learnable_spec", "stage_settings", "open_store",
           "load_split", "score", "train_run", "evaluate_run", "bootstrap_evaluations",
           "table_iii", "write_table_iii"]

log = logging.getLogger(__name__)

TASK = "acoustic-scenes"
_RUN = re.compile(r"^(static|learnable)-(\d+)$")

#: The metrics of a scene evaluation (REPRODUCTION.md §5 "DCASE"), in Table III's order
#: with both F1 definitions of A19: our key -> the table's column.
METRICS = {"accuracy": "Acc", "sensitivity": "Se", "specificity": "Sp", "precision": "Prec",
           "f1": "F1", "f1_mean": "F1 (class mean)", "macc": "MACC"}

#: Table III of the paper, in %: DCASE 2016 development set, mean over the 4 official
#: folds (Ansari & Hasan, Table III, transcribed in REPRODUCTION.md §7). The paper has one
#: F1 column; its value is filed under the definition it fits (A19): 2PR/(P+R) of the
#: macro values for five rows, the mean per-class F1 for the two 46-filter rows.
PAPER_TABLE_III = {
    "static-16": {"accuracy": 66.92, "sensitivity": 65.44, "specificity": 97.53,
                  "precision": 65.88, "f1": 65.66, "macc": 81.47},
    "static-32": {"accuracy": 73.59, "sensitivity": 73.59, "specificity": 98.11,
                  "precision": 74.37, "f1": 73.98, "macc": 85.85},
    "static-46": {"accuracy": 74.44, "sensitivity": 74.50, "specificity": 98.18,
                  "precision": 74.95, "f1_mean": 74.10, "macc": 86.34},
    "static-64": {"accuracy": 73.93, "sensitivity": 73.56, "specificity": 98.11,
                  "precision": 74.05, "f1": 73.81, "macc": 85.84},
    "static-128": {"accuracy": 75.55, "sensitivity": 75.56, "specificity": 98.25,
                   "precision": 76.10, "f1": 75.83, "macc": 86.91},
    "static-149": {"accuracy": 74.81, "sensitivity": 74.22, "specificity": 98.16,
                   "precision": 74.94, "f1": 74.58, "macc": 86.19},
    "learnable-46": {"accuracy": 76.55, "sensitivity": 76.47, "specificity": 98.32,
                     "precision": 77.15, "f1_mean": 76.07, "macc": 87.39},
}
PAPER_DATASET = "dcase2016"

#: Units per evaluation batch: the activations of the CNN's first convolution (128
#: channels at the spectrogram's full resolution) take 1.2 GB for 16 10-s units of 149
#: filters, so evaluation batches stay small on any device.
EVAL_BATCH = 16
#: Example sets up to this size are read into memory (on the training device); larger
#: ones stay memory-mapped and each batch is gathered from the page cache.
IN_MEMORY_BYTES = 2 << 30


def run_label(run: Run) -> str:
    """The row name of a run in Table III."""
    return f"{run.kind.capitalize()} SpectNet-{run.n_filters}"


def parse_run(name: str) -> Run:
    """``"static-46"`` -> ``Run("static", 46)``."""
    match = _RUN.match(name)
    if not match:
        raise SpectNetError(f"unknown scene run {name!r}: expected static-N or learnable-N")
    return Run(match.group(1), int(match.group(2)))


def open_store(units_dir: str | Path) -> UnitDataset:
    """The unit store written by ``spectnet scenes preprocess``."""
    try:
        return UnitDataset(units_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise SpectNetError(f"{units_dir}: not a readable unit store ({exc})") from None


def model_spec(run: Run, params: Params, store: UnitDataset) -> dict:
    """The architecture spec of ``static-N`` on the units of ``store``. A learnable run's
    spec is its static model's with the front-end made learnable (:func:`learnable_spec`)."""
    if run.kind != "static":
        raise ValueError("a learnable run's model comes from its static model: use learnable_spec")
    frontend = params.scenes.frontend
    return {"architecture": "spectnet-scene-cnn", "n_samples": int(store.info["unit"]["samples"]),
            "sample_rate": store.sample_rate, "n_classes": len(store.classes),
            "frontend": {"n_filters": run.n_filters, "kernel_size": frontend.kernel_size,
                         "win_length": frontend.win_length, "hop_length": frontend.hop_length,
                         # parameters (frozen in stage 1), so stage 2 loads the same state dict
                         "learnable": ["f", "b", "a"]}}


def learnable_spec(static_spec: dict, params: Params) -> dict:
    """The spec of ``learnable-N``: ``static-N``'s, with
    ``scenes.training.learnable.learn`` as the front-end's learnable parameters."""
    if static_spec.get("architecture") != "spectnet-scene-cnn":
        raise SpectNetError(f"a learnable scene run fine-tunes a spectnet-scene-cnn model, not "
                            f"{static_spec.get('architecture')!r}")
    return {**static_spec, "frontend": {**static_spec["frontend"],
                                        "learnable": list(params.scenes.training.learnable.learn)}}


def stage_settings(run: Run, params: Params, device: torch.device | None = None) -> StageSettings:
    """How a run trains: ``scenes.training`` and the active scale's budget."""
    training, budgets = params.scenes.training, params.active_scale.scenes
    cpu = (device or torch.device("cpu")).type == "cpu"
    common = {"sampler": training.sampler, "optimizer": "adam", "eval_batch_size": EVAL_BATCH,
              "channels_last": cpu}
    if run.kind == "static":
        budget, static = budgets.static, training.static
        return StageSettings(budget.epochs, budget.batch_size, budget.steps_per_epoch,
                             lr=static.lr, lr_decay=static.lr_decay,
                             lr_schedule="constant" if static.lr_decay == 1 else "exponential",
                             **common)
    budget, learnable = budgets.learnable, training.learnable
    return StageSettings(budget.epochs, budget.batch_size, budget.steps_per_epoch,
                         lr=learnable.lr, frontend_lr=learnable.frontend_lr,
                         train_frontend=True, **common)


def load_split(units_dir: str | Path, fold: int, split: str,
               device: torch.device | str | None = None) -> ExampleSet:
    """The units of ``train{fold}`` or ``evaluate{fold}``, labelled, grouped by clip."""
    if split not in ("train", "evaluate"):
        raise ValueError(f"split must be 'train' or 'evaluate', not {split!r}")
    store = open_store(units_dir)
    column = f"{split}{fold}"
    if column not in store.index:
        folds = sorted(int(c[len("evaluate"):]) for c in store.index
                       if c.startswith("evaluate"))
        raise SpectNetError(f"{units_dir}: the {store.info.get('dataset')} unit store has no "
                            f"fold {fold} (its folds: {folds})")
    mask = (store.index[column] == 1).to_numpy()
    size = int(mask.sum()) * store.units.shape[1] * store.units.itemsize
    return load_examples(units_dir, "units.npy", "units.csv", mask, classes=store.classes,
                         group_column="clip", device=device, in_memory=size <= IN_MEMORY_BYTES)


def _clip_posteriors(examples: ExampleSet, probabilities: np.ndarray):
    """The unit labels and the clip-level decisions (mean posterior, then argmax)."""
    labels = examples.labels.cpu().numpy()
    return labels, mean_posterior(examples.groups, labels, probabilities)


def score(probabilities: np.ndarray, examples: ExampleSet) -> dict[str, float]:
    """Evaluation-fold metrics of an epoch: unit loss and accuracy, clip-level metrics
    (``macc`` selects the best epoch)."""
    labels, clips = _clip_posteriors(examples, probabilities)
    metrics = multiclass_metrics(clips["label"], clips["prediction"], len(examples.classes))
    true_class = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)
    return {"loss": float(-np.log(true_class).mean()),
            "unit_accuracy": float((probabilities.argmax(1) == labels).mean()), **metrics}


def _task_info(store: UnitDataset, run: Run, fold: int, seed: int, scale: str) -> dict:
    """What a model file needs besides the weights to classify new audio."""
    info = store.info
    return {"task": TASK, "classes": list(store.classes), "run": run.name, "seed": seed,
            "fold": fold, "scale": scale, "dataset": info["dataset"],
            "sample_rate": store.sample_rate, "unit": info["unit"]}


def _check_model_fits(info: dict, store: UnitDataset, where: str | Path) -> None:
    """A model only applies to units of its data set, classes and unit settings."""
    expected = {"dataset": store.info["dataset"], "classes": list(store.classes),
                "sample_rate": store.sample_rate, "unit": store.info["unit"]}
    wrong = [f"{k} {info.get(k)!r} (the units: {v!r})" for k, v in expected.items()
             if info.get(k) != v]
    if wrong:
        raise SpectNetError(f"{where} was trained on other units: " + "; ".join(wrong))


def train_run(name: str, fold: int, seed: int, params: Params, units_dir: str | Path,
              out_dir: str | Path, init_model: str | Path | None = None,
              device: torch.device | str | None = None, progress: bool = True) -> dict:
    """Train one run of the grid on one fold and write its directory
    (:func:`spectnet.experiments.runs.fit_run`: ``best.pt``, ``last.pt``,
    ``history.csv``, ``frontend.csv``, ``summary.json``, ``dvclive/``). An interrupted
    run resumes where it stopped.

    Args:
        init_model: for ``learnable-N``, the model file of ``static-N`` trained on the
            same fold.
    """
    run = parse_run(name)
    device = default_device(device)
    store = open_store(units_dir)
    init = read_init_model(run.name, f"static-{run.n_filters}" if run.kind == "learnable"
                           else None, init_model)
    if init is not None:
        _check_model_fits(init, store, init_model)
        if init.get("fold") != fold:
            raise SpectNetError(f"{init_model}: {run.name} on fold {fold} fine-tunes the static "
                                f"model of the same fold, but this one was trained on fold "
                                f"{init.get('fold')} (its training units include fold {fold}'s "
                                "evaluation clips)")
        spec = learnable_spec(init["spec"], params)
    else:
        spec = model_spec(run, params, store)
    stage = stage_settings(run, params, device)
    train = load_split(units_dir, fold, "train", device)
    evaluation = load_split(units_dir, fold, "evaluate", device)
    n_clips = len(set(evaluation.groups))
    log.info("%s fold %d seed %d (%s, %s scale): %d training units, %d evaluation units of %d "
             "clips, %s", run.name, fold, seed, store.info["dataset"], params.scale, len(train),
             len(evaluation), n_clips, device)
    return fit_run(spec, stage, train, evaluation, score, seed=seed, out_dir=out_dir,
                   info=_task_info(store, run, fold, seed, params.scale), init=init,
                   init_model=init_model,
                   run_settings={"fold": fold, "dataset": store.info["dataset"]},
                   summary={"fold": fold, "dataset": store.info["dataset"],
                            "evaluation_units": len(evaluation), "evaluation_clips": n_clips},
                   progress=progress)


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """The predictions of one (run, fold, seed) on its evaluation fold."""
    units: pd.DataFrame   # clip, label, prediction (one row per unit)
    clips: pd.DataFrame   # clip, label, prediction (one row per clip)


def _level_metrics(evaluations: Sequence[Evaluation], n_classes: int,
                   clip_weights: Sequence[np.ndarray], unit_weights: Sequence[np.ndarray]):
    """``{"clip.<metric>": ..., "unit.<metric>": ...}``, averaged over the evaluations."""
    rows = []
    for e, wc, wu in zip(evaluations, clip_weights, unit_weights):
        row = {}
        for level, frame, w in (("clip", e.clips, wc), ("unit", e.units, wu)):
            m = multiclass_metrics(frame["label"], frame["prediction"], n_classes, w)
            row.update({f"{level}.{k}": m[k] for k in METRICS})
        rows.append(row)
    return pd.DataFrame(rows).mean().to_dict()


def bootstrap_evaluations(evaluations: Sequence[Evaluation], n_classes: int,
                          n_resamples: int, level: float, seed: int = 0):
    """Metrics averaged over evaluations, with percentile bootstrap intervals.

    Clips are the resampled items (the units of a clip are not independent): one draw of
    the clips of every fold is shared by all the evaluations (seeds) that score them,
    and each metric is averaged over the evaluations, as the table's mean is.

    Returns:
        ``(point, intervals)``: ``{"clip"|"unit": {metric: value}}`` and
        ``{"clip"|"unit": {metric: (low, high)}}``.
    """
    names = pd.Index(pd.unique(np.concatenate([e.clips["clip"].to_numpy() for e in evaluations])))
    clip_pos = [names.get_indexer(e.clips["clip"]) for e in evaluations]
    unit_pos = [names.get_indexer(e.units["clip"]) for e in evaluations]

    def statistic(weights):
        return _level_metrics(evaluations, n_classes, [weights[p] for p in clip_pos],
                              [weights[p] for p in unit_pos])

    def nest(flat):
        out = {"clip": {}, "unit": {}}
        for key, value in flat.items():
            group, metric = key.split(".")
            out[group][metric] = value
        return out

    return (nest(statistic(np.ones(len(names)))),
            nest(bootstrap_ci(statistic, len(names), n_resamples, level, seed=seed)))


def evaluate_run(model_path: str | Path, units_dir: str | Path, out_dir: str | Path,
                 metrics_path: str | Path, params: Params,
                 device: torch.device | str | None = None) -> dict:
    """Evaluate a trained model on the evaluation set of the fold it was trained on.

    ``out_dir`` gets ``units.csv`` (every unit: clip, unit, class, label, prediction and
    the class probabilities) and ``clips.csv`` (the mean posterior of each clip and its
    decision); ``metrics_path`` gets the clip- and unit-level metrics with bootstrap
    intervals over clips, per-class metrics and both confusion matrices.
    """
    model, info = load_model(model_path, default_device(device))
    store = open_store(units_dir)
    _check_model_fits(info, store, model_path)
    fold = info["fold"]
    examples = load_split(units_dir, fold, "evaluate", next(model.parameters()).device)
    probabilities = predict_proba(model, examples, EVAL_BATCH)
    labels, clips = _clip_posteriors(examples, probabilities)
    n_classes = len(store.classes)
    columns = [f"p_{c}" for c in store.classes]
    units = pd.DataFrame({"clip": examples.groups, "unit": examples.index["unit"],
                          "class": examples.index["class"], "label": labels,
                          "prediction": probabilities.argmax(1)})
    units[columns] = probabilities
    clips = clips.rename(columns={"group": "clip", **{f"p{i}": c for i, c in enumerate(columns)}})
    evaluation = Evaluation(units, clips)
    budget, settings = params.active_scale.scenes, params.scenes.evaluation
    point, intervals = bootstrap_evaluations([evaluation], n_classes, budget.bootstrap,
                                             settings.ci_level, seed=info.get("seed", 0))
    per_class = per_class_metrics(clips["label"], clips["prediction"], n_classes)
    per_class.index = list(store.classes)
    metrics = {
        "run": info["run"], "seed": info["seed"], "fold": fold, "dataset": info["dataset"],
        "scale": params.scale, "trained_at_scale": info.get("scale"),
        "model": Path(model_path).name, "epoch": info.get("epoch"),
        "clips": int(len(clips)), "units": int(len(units)), "classes": list(store.classes),
        "metrics": point, "ci_level": settings.ci_level,
        "ci": {level: {k: list(v) for k, v in ci.items()} for level, ci in intervals.items()},
        "per_class": per_class.to_dict(orient="index"),
        "confusion": {"clip": confusion_matrix(clips["label"], clips["prediction"],
                                               n_classes).tolist(),
                      "unit": confusion_matrix(labels, units["prediction"], n_classes).tolist()},
    }
    with atomic_dir(out_dir) as tmp:
        units.to_csv(tmp / "units.csv", index=False)
        clips.to_csv(tmp / "clips.csv", index=False)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return metrics


# ----------------------------------------------------------------------------- Table III
_DATASET_NAMES = {"dcase2016": "TUT Acoustic Scenes 2016 development set (DCASE 2016 Task 1)",
                  "esc10": "ESC-10", "esc50": "ESC-50"}


def _read_evaluation(metrics_dir: Path, predictions_dir: Path, models_dir: Path,
                     where: str) -> tuple[dict, Evaluation, dict]:
    """The metrics, predictions and training summary of one (run, fold, seed)."""
    try:
        metrics = json.loads((metrics_dir / f"{where}.json").read_text())
        evaluation = Evaluation(*(pd.read_csv(predictions_dir / where / f"{kind}.csv",
                                              dtype={"clip": str}) for kind in ("units", "clips")))
        summary = json.loads((models_dir / where / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        raise SpectNetError(f"{where}: cannot read its evaluation ({exc}); run `spectnet "
                            "scenes evaluate` on it first") from None
    return metrics, evaluation, summary


def table_iii(params: Params, units_dir: str | Path, metrics_dir: str | Path,
              predictions_dir: str | Path, models_dir: str | Path
              ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Our Table III beside the paper's, at the clip and at the unit level.

    For every run of the grid (and every row of the paper's table): each metric's mean
    and sd (in %) over the evaluated (fold, seed) pairs of the active scale, a bootstrap
    interval of that mean (clips resampled, :func:`bootstrap_evaluations`), the paper's
    value and the difference, and how the run trained.

    Returns:
        ``(tidy, classes)``: ``{"clip": table, "unit": table}``, tidy tables
        (:func:`spectnet.reporting.tables.tidy_rows`), and per run its clip-level
        per-class metrics (mean and sd over the evaluations) and its clip-level confusion
        matrix summed over them.
    """
    from spectnet.evaluation.statistics import mean_sd
    from spectnet.reporting.tables import tidy_rows

    store = open_store(units_dir)
    metrics_dir, predictions_dir, models_dir = map(Path, (metrics_dir, predictions_dir, models_dir))
    budget, settings, seeds = params.active_scale.scenes, params.scenes.evaluation, \
        params.active_scale.seeds
    pairs = [(fold, seed) for fold in budget.folds for seed in seeds]
    n_classes, dataset = len(store.classes), store.info["dataset"]
    names = run_names(params)
    rows, classes = {"clip": [], "unit": []}, {}
    for name in names + [n for n in PAPER_TABLE_III if n not in names]:
        paper = {METRICS[k]: v for k, v in PAPER_TABLE_III.get(name, {}).items()}
        if name not in names:  # a row of the paper's table outside our grid
            for level in rows:
                rows[level] += tidy_rows(name, run_label(parse_run(name)),
                                         {c: [] for c in METRICS.values()}, paper=paper,
                                         dataset=dataset, scale=params.scale)
            continue
        read = [_read_evaluation(metrics_dir, predictions_dir, models_dir,
                                 f"{name}/fold{fold}/seed{seed}") for fold, seed in pairs]
        for (fold, seed), (metrics, _, _) in zip(pairs, read):
            found = (metrics.get("dataset"), metrics.get("fold"), metrics.get("seed"),
                     metrics.get("trained_at_scale"))
            if found != (dataset, fold, seed, params.scale):
                raise SpectNetError(
                    f"{name}/fold{fold}/seed{seed}: evaluated a model of (data set, fold, seed, "
                    f"scale) {found}, expected {(dataset, fold, seed, params.scale)}")
        evaluations = [e for _, e, _ in read]
        summaries = [s for _, _, s in read]
        _, intervals = bootstrap_evaluations(evaluations, n_classes, budget.bootstrap,
                                             settings.ci_level)
        run_info = {
            "dataset": dataset, "scale": params.scale, "folds": " ".join(map(str, budget.folds)),
            "seeds": " ".join(map(str, seeds)),
            "clips": len(set().union(*(e.clips["clip"] for e in evaluations))),
            "units": sum(len(e.units) for e in evaluations) // len(seeds),
            "model_epoch": settings.model,
            "batch_size": summaries[0]["stage"]["batch_size"],
            "steps_per_epoch": summaries[0]["stage"]["steps_per_epoch"],
            "epochs": float(np.mean([s["epochs"] for s in summaries])),
            "best_epoch": float(np.mean([s["best_epoch"] for s in summaries])),
            "last_epoch_macc": 100 * float(np.mean([s["last"]["macc"] for s in summaries])),
            "train_minutes": float(np.mean([s["train_seconds"] for s in summaries])) / 60}
        for level in rows:
            rows[level] += tidy_rows(
                name, run_label(parse_run(name)),
                {column: [100 * m["metrics"][level][k] for m, _, _ in read]
                 for k, column in METRICS.items()},
                intervals={column: tuple(100 * v for v in intervals[level][k])
                           for k, column in METRICS.items()},
                ci_level=settings.ci_level, paper=paper, **run_info)
        per_class = [per_class_metrics(e.clips["label"], e.clips["prediction"], n_classes)
                     for e in evaluations]
        classes[name] = {
            "classes": list(store.classes),
            "per_class": {cls: {metric: mean_sd([p.at[i, metric] for p in per_class])
                                for metric in ("sensitivity", "specificity", "precision", "f1")}
                          for i, cls in enumerate(store.classes)},
            "confusion_sum": np.sum([m["confusion"]["clip"] for m, _, _ in read],
                                    axis=0).tolist()}
    return {level: pd.DataFrame(r) for level, r in rows.items()}, classes


def _notes(params: Params, store: UnitDataset, tidy: pd.DataFrame, level: str) -> list[str]:
    """What produced the numbers and how to read them."""
    scale, budget = params.scale, params.active_scale.scenes
    info, dataset = store.info, store.info["dataset"]
    all_folds = [int(f) for f in info.get("folds", [])]
    skipped = [f for f in all_folds if f not in budget.folds]
    seeds = params.active_scale.seeds
    trained = tidy[tidy["n"] > 0].drop_duplicates("run")

    def stages(kind):  # how the runs of a kind trained, from their summaries
        rows = trained[trained["run"].str.startswith(kind)]
        return "; ".join(sorted({
            f"{r.epochs:g} epoch{'' if r.epochs == 1 else 's'} of "
            + ("one pass" if pd.isna(r.steps_per_epoch) else f"{r.steps_per_epoch:g} batches")
            + f" (batch {r.batch_size:g})" for r in rows.itertuples()})) or "none"

    unit = info["unit"]
    units = (f"each clip one unit of {unit['length_s']:g} s, zero-padded or cut"
             if unit["mode"] == "clip" else
             f"non-overlapping {unit['length_s']:g}-s segments of each clip")
    notes = [
        f"Ours: {_DATASET_NAMES.get(dataset, dataset)}, {len(store.classes)} classes, "
        f"{info.get('clips_ok', '?')} clips" + (f" ({info['reason']})" if info.get("reason")
                                                else "") + ".",
        f"{scale} scale: fold{'s' if len(budget.folds) > 1 else ''} "
        f"{', '.join(map(str, budget.folds))}"
        + (f" (of {', '.join(map(str, all_folds))}); folds {', '.join(map(str, skipped))} not run "
           f"(not in scales.{scale}.scenes.folds)" if skipped else "")
        + f"; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; trained: "
        f"static {stages('static')}, learnable {stages('learnable')}. "
        "Mean ± sd over the (fold, seed) evaluations where there are several; CI: percentile "
        f"bootstrap of that mean over clips ({budget.bootstrap} resamples).",
        ("Clip level: a clip's class is the argmax of the mean posterior of its units"
         if level == "clip" else "Unit level: every unit classified on its own")
        + f" ({units}, at {store.sample_rate} Hz). In %.",
        f"Model: the {params.scenes.evaluation.model} epoch of each run"
        + (" (highest clip-level MACC on the evaluation fold, which is also the reported "
           "fold: the authors' protocol, REPRODUCTION.md A21)"
           if params.scenes.evaluation.model == "best" else "") + ".",
        "F1 = 2PR/(P+R) of the macro precision and sensitivity; F1 (class mean) = the mean "
        "per-class F1. The paper has one F1 column; its value is shown under the definition "
        "it fits (A19).",
        "Scene CNN: our reconstruction of the paper's unspecified 2-layer CNN "
        "(REPRODUCTION.md §3.4, A18; docs/deviations.md).",
    ]
    if dataset != PAPER_DATASET:
        notes.append(f"The paper's rows are DCASE 2016 (15 scenes, 4 folds). Ours are "
                     f"{_DATASET_NAMES.get(dataset, dataset)}: the paper's numbers are a "
                     "reference here, not a target, and Δ compares different data.")
    not_run = list(dict.fromkeys(tidy.loc[tidy["n"] == 0, "run"]))
    if not_run:
        notes.append(f"Not run: {', '.join(not_run)} (not in this grid: "
                     "scenes.frontend.n_filters / learnable_n_filters).")
    return notes


def write_table_iii(params: Params, units_dir: str | Path, metrics_dir: str | Path,
                    predictions_dir: str | Path, models_dir: str | Path,
                    out_prefix: str | Path) -> pd.DataFrame:
    """Compute Table III and write it: ``OUT.{csv,md,tex}`` (clip level, the headline),
    ``OUT-units.{csv,md,tex}`` (unit level) and ``OUT-classes.json`` (per run: per-class
    metrics, mean and sd over the evaluations, and the clip-level confusion matrix summed
    over them). Returns the clip-level tidy table."""
    from spectnet.reporting.tables import display_table, write_table

    store = open_store(units_dir)
    dataset = _DATASET_NAMES.get(store.info["dataset"], store.info["dataset"])
    out_prefix = Path(out_prefix)
    tables, classes = table_iii(params, units_dir, metrics_dir, predictions_dir, models_dir)
    for level, suffix in (("clip", ""), ("unit", "-units")):
        title = (f"Table III: acoustic scene classification, {level} level — ours on "
                 f"{dataset} ({params.scale} scale) beside the paper (DCASE 2016)")
        write_table(tables[level], display_table(tables[level]),
                    out_prefix.parent / f"{out_prefix.name}{suffix}", title,
                    _notes(params, store, tables[level], level))
    atomic_write_text(out_prefix.parent / f"{out_prefix.name}-classes.json",
                      json.dumps(classes, indent=2) + "\n")
    return tables["clip"]
