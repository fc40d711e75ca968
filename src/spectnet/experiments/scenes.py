"""Table III: acoustic scene classification with SpectNet-N and the scene CNN, per fold.

The runs of the grid (:mod:`spectnet.grid`): ``static-N`` for every N in
``scenes.frontend.n_filters`` (front-end frozen, the CNN trained), ``learnable-N`` for N
in ``scenes.learnable.n_filters`` (fine-tuned end to end from ``static-N``'s selected model
of the same fold and seed) and its same-budget control ``static-N-control``.

Every run trains on fold k's training units without its inner split (clips held out
whole, with every clip cut from the same source recording, stratified by class) and keeps
the epoch with the best clip-level MACC there; fold k's evaluation clips are only used to
report (``scenes.selection.split: reporting``: the authors' PCG protocol, A21). A clip's
posterior is the mean of its units' posteriors (§6): clip-level metrics are the headline,
unit-level ones secondary. The data set is whatever the unit store holds (DCASE 2016 for
Table III; ESC-10 here); every output records it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from spectnet.atomic import atomic_write_text
from spectnet.config import Params
from spectnet.datasets.clips import source_recording
from spectnet.datasets.examples import UNITS
from spectnet.errors import SpectNetError
from spectnet.evaluation.metrics import confusion_matrix, mean_posterior, multiclass_metrics
from spectnet.evaluation.statistics import mean_sd
from spectnet.experiments.task import (Evaluation, Task, comparison_notes, comparisons,
                                       results_table, write_results_table)
from spectnet.grid import Run, scene_runs
from spectnet.reporting.tables import tidy_rows
from spectnet.training.data import ExampleSet, load_examples
from spectnet.training.trainer import StageSettings

__all__ = ["TASK", "METRICS", "PAPER_TABLE_III", "Scenes", "run_label", "write_table_iii"]

log = logging.getLogger(__name__)

TASK = "acoustic-scenes"

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
_DATASET_NAMES = {"dcase2016": "TUT Acoustic Scenes 2016 development set (DCASE 2016 Task 1)",
                  "esc10": "ESC-10", "esc50": "ESC-50"}

#: Units per evaluation batch: the activations of the CNN's first convolution (128
#: channels at the spectrogram's full resolution) take 1.2 GB for 16 10-s units of 149
#: filters, so evaluation batches stay small on any device.
EVAL_BATCH = 16
#: Example sets up to this size are read into memory (on the training device); larger
#: ones stay memory-mapped and stream: each batch is read ahead from disk while the
#: previous one computes (:meth:`~spectnet.training.data.ExampleSet.batches`).
IN_MEMORY_BYTES = 2 << 30


def run_label(name: str) -> str:
    """The row name of a run in Table III."""
    if name.endswith("-control"):
        return f"Static SpectNet-{name.split('-')[1]}, same-budget control"
    kind, n = name.split("-")
    return f"{kind.capitalize()} SpectNet-{n}"


class Scenes(Task):
    """The scene grid on a unit store (``spectnet scenes preprocess``)."""

    name = TASK
    group, example = "clip", "unit"
    layout = UNITS
    paper = PAPER_TABLE_III
    eval_batch_size = EVAL_BATCH

    @property
    def section(self):
        return self.params.scenes

    @property
    def budget(self):
        return self.params.active_scale.scenes

    @property
    def classes(self) -> tuple[str, ...]:
        return self.store.classes

    @property
    def dataset(self) -> str:
        return self.store.info["dataset"]

    def runs(self) -> list[str]:
        return scene_runs(self.params)

    def folds(self) -> list[int]:
        return list(self.budget.folds)

    def job(self, run: str, fold: int, seed: int) -> str:
        return f"{run}/fold{fold}/seed{seed}"

    def load(self, fold: int, split: str, device: torch.device) -> ExampleSet:
        """The units of ``train{fold}`` or (``reporting``) ``evaluate{fold}``."""
        store = self.store
        column = f"{'train' if split == 'train' else 'evaluate'}{fold}"
        if column not in store.index:
            folds = sorted(int(c[len("evaluate"):]) for c in store.index
                           if c.startswith("evaluate"))
            raise SpectNetError(f"{self.data_dir}: the {self.dataset} unit store has no fold "
                                f"{fold} (its folds: {folds})")
        mask = (store.index[column] == 1).to_numpy()
        size = int(mask.sum()) * store.waveforms.shape[1] * store.waveforms.itemsize
        return load_examples(store, mask, device=device, in_memory=size <= IN_MEMORY_BYTES)

    def strata(self, examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
        sources = np.array([source_recording(self.dataset, clip) for clip in examples.groups])
        return sources, examples.labels.cpu().numpy()

    def model_spec(self, run: Run) -> dict:
        if run.kind != "static":
            raise ValueError(f"{run.name} starts from {run.init_run}'s model, not from a spec")
        frontend = self.section.frontend
        return {"architecture": "spectnet-scene-cnn",
                "n_samples": int(self.store.info["unit"]["samples"]),
                "sample_rate": self.store.sample_rate, "n_classes": len(self.classes),
                "frontend": {"n_filters": run.n_filters, "kernel_size": frontend.kernel_size,
                             "win_length": frontend.win_length,
                             "hop_length": frontend.hop_length,
                             # parameters (frozen in stage 1): stage 2 loads the same state dict
                             "learnable": ["center_frequency", "bandwidth", "amplitude"]}}

    def stage_settings(self, run: Run, device: torch.device) -> StageSettings:
        common = {"sampler": self.section.sampler, "eval_batch_size": EVAL_BATCH,
                  "channels_last": device.type == "cpu",
                  "cpu_autocast": self.params.cpu_autocast}
        if run.kind == "static":
            budget, static = self.budget.static, self.section.static
            # the frozen front-end is a quarter of a step (bench/scenes.py): computed once
            return StageSettings(self.epochs(run, budget), budget.batch_size,
                                 budget.steps_per_epoch, lr=static.lr, lr_decay=static.lr_decay,
                                 lr_schedule="constant" if static.lr_decay == 1 else "exponential",
                                 warmup_steps=static.warmup_steps, patience=budget.patience,
                                 cache_frontend=True, **common)
        budget, learnable = self.budget.learnable, self.section.learnable
        return StageSettings(budget.epochs, budget.batch_size, budget.steps_per_epoch,
                             lr=learnable.lr, frontend_lr=learnable.frontend_lr,
                             warmup_steps=learnable.warmup_steps,
                             train_frontend=run.kind == "learnable", **common)

    def pool(self, examples: ExampleSet, probabilities: np.ndarray) -> Evaluation:
        labels = examples.labels.cpu().numpy()
        columns = [f"p_{c}" for c in self.classes]
        names = np.asarray(self.classes)
        units = pd.DataFrame({"group": examples.groups, "unit": examples.index["unit"],
                              "domain": names[labels], "label": labels,
                              "prediction": probabilities.argmax(1)})
        units[columns] = probabilities
        clips = mean_posterior(examples.groups, labels, probabilities).rename(
            columns={"n_units": "n_examples",
                     **{f"p{i}": c for i, c in enumerate(columns)}})
        correct = (units["label"] == units["prediction"]).groupby(units["group"]).sum()
        clips.insert(1, "domain", names[clips["label"].to_numpy()])
        clips.insert(3, "n_correct", clips["group"].map(correct).astype(int))
        return Evaluation(units, clips.sort_values("group", ignore_index=True))

    def metrics(self, labels, predictions, weights=None) -> dict[str, float]:
        return multiclass_metrics(labels, predictions, len(self.classes), weights)

    def domain_metrics(self, labels, predictions, domain: str, inside: np.ndarray,
                       weights) -> dict[str, float]:
        """One-vs-rest metrics of the class ``domain`` over every clip."""
        c = list(self.classes).index(domain)
        cm = confusion_matrix(labels, predictions, len(self.classes), weights)
        tp, fn, fp = cm[c, c], cm[c].sum() - cm[c, c], cm[:, c].sum() - cm[c, c]
        tn = cm.sum() - tp - fn - fp
        ratio = lambda a, b: float(a / b) if b else 0.0  # noqa: E731
        se, sp, prec = ratio(tp, tp + fn), ratio(tn, tn + fp), ratio(tp, tp + fp)
        return {"sensitivity": se, "specificity": sp, "precision": prec,
                "f1": ratio(2 * prec * se, prec + se), "support": float(tp + fn)}

    def metric_range(self, key: str) -> tuple[float, float]:
        """Proportions, but a class's ``support`` is a count of clips."""
        return (0.0, math.inf) if key.endswith(".support") else (0.0, 1.0)

    def model_info(self, run: Run, fold: int, seed: int) -> dict:
        """What a model file needs besides the weights to classify new audio."""
        info = self.store.info
        return {"task": TASK, "classes": list(self.classes), "run": run.name, "seed": seed,
                "fold": fold, "scale": self.params.scale, "dataset": info["dataset"],
                "sample_rate": self.store.sample_rate, "unit": info["unit"]}

    def check_model(self, info: Mapping[str, Any], where: str | Path) -> None:
        """A model only applies to units of its data set, classes and unit settings."""
        super().check_model(info, where)
        store = self.store
        expected = {"dataset": store.info["dataset"], "classes": list(store.classes),
                    "sample_rate": store.sample_rate, "unit": store.info["unit"]}
        wrong = [f"{k} {info.get(k)!r} (the units: {v!r})" for k, v in expected.items()
                 if info.get(k) != v]
        if wrong:
            raise SpectNetError(f"{where} was trained on other units: " + "; ".join(wrong))


# ----------------------------------------------------------------------------- Table III
def _notes(task: Scenes, tidy: pd.DataFrame, level: str) -> list[str]:
    """What produced the numbers and how to read them."""
    params, store = task.params, task.store
    scale, budget, info, dataset = params.scale, task.budget, store.info, task.dataset
    all_folds = [int(f) for f in info.get("folds", [])]
    skipped = [f for f in all_folds if f not in budget.folds]
    trained = tidy[tidy["n"] > 0].drop_duplicates("run")
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
        + f"; seeds {', '.join(map(str, budget.seeds))} for the grid, "
        f"{', '.join(map(str, budget.comparison_seeds))} for the static, learnable and control "
        "runs of each learnable N. Mean ± sd over the (fold, seed) evaluations where there "
        "are several; CI of one evaluation: percentile bootstrap over clips "
        f"({budget.bootstrap} resamples, seed 0); of a mean over several: mean ± t·se, se² = "
        "sd²/n + the clips' bootstrap variance of the mean, Welch-Satterthwaite df (it covers "
        "training noise).",
        "Trained: " + "; ".join(
            f"{r.run} {r.epochs:g} epochs, {r.steps:g} steps of {r.batch_size:g} "
            f"({'stopped early' if r.stopped == 'patience' else 'budget ended'})"
            for r in trained.itertuples()) + ".",
        ("Clip level: a clip's class is the argmax of the mean posterior of its units"
         if level == "clip" else "Unit level: every unit classified on its own")
        + f" ({units}, at {store.sample_rate} Hz). In %.",
        (f"Selection: each run keeps its best clip-level MACC epoch (model: "
         f"{task.section.evaluation.model}) and stops early on an inner split of fold k's "
         f"training clips ({task.section.selection.inner_fraction:.0%} of each class's source "
         "recordings, held out of training); fold k's evaluation clips are only used to report."
         if task.section.selection.split == "inner" else
         "Selection on fold k's evaluation clips, the reported set (the authors' protocol, "
         "REPRODUCTION.md A21): optimistic."),
        "static-N-control: static-N's selected model trained for exactly learnable-N's stage-2 "
        "steps with the front-end frozen.",
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
                     "scenes.frontend.n_filters / scenes.learnable.n_filters).")
    return notes


def write_table_iii(params: Params, units_dir: str | Path, metrics_dir: str | Path,
                    predictions_dir: str | Path, models_dir: str | Path,
                    out_prefix: str | Path) -> pd.DataFrame:
    """Compute Table III and write it: ``OUT.{csv,md,tex}`` (clip level, the headline),
    ``OUT-units.{csv,md,tex}`` (unit level), ``OUT-comparisons.csv`` (every learnable run
    against its control and its static model) and ``OUT-classes.json`` (per run: per-class
    metrics, mean and sd over the evaluations, and the clip-level confusion matrix summed
    over them). Returns the clip-level tidy table."""
    task = Scenes(params, units_dir)
    out_prefix = Path(out_prefix)
    tests = comparisons(task, predictions_dir)
    dataset = _DATASET_NAMES.get(task.dataset, task.dataset)
    clip_table = None
    for level, suffix in (("clip", ""), ("unit", "-units")):
        columns = {f"{level}.{k}": column for k, column in METRICS.items()}
        table = results_table(task, columns, metrics_dir, predictions_dir, models_dir, run_label)
        paper_only = [n for n in PAPER_TABLE_III if n not in task.runs()]
        rows = [row for name in paper_only for row in tidy_rows(
            name, run_label(name), {c: [] for c in METRICS.values()},
            paper={METRICS[k]: v for k, v in PAPER_TABLE_III[name].items()},
            dataset=task.dataset, scale=params.scale)]
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        title = (f"Table III: acoustic scene classification, {level} level — ours on "
                 f"{dataset} ({params.scale} scale) beside the paper (DCASE 2016)")
        notes = _notes(task, table, level) + (comparison_notes(tests, task, "clip MACC")
                                              if level == "clip" else [])
        write_results_table(table, out_prefix.parent / f"{out_prefix.name}{suffix}", title, notes)
        clip_table = table if level == "clip" else clip_table
    atomic_write_text(out_prefix.parent / f"{out_prefix.name}-comparisons.csv",
                      tests.to_csv(index=False))
    atomic_write_text(out_prefix.parent / f"{out_prefix.name}-classes.json",
                      json.dumps(_per_class(task, metrics_dir), indent=2) + "\n")
    return clip_table


def _per_class(task: Scenes, metrics_dir: str | Path) -> dict:
    """Per run: per-class clip-level metrics (mean and sd over its evaluations) and the
    clip-level confusion matrix summed over them."""
    out = {}
    for name in task.runs():
        found = [json.loads((Path(metrics_dir) / f"{task.job(name, f, s)}.json").read_text())
                 for f in task.folds() for s in task.seeds(name)]
        out[name] = {
            "classes": list(task.classes),
            "per_class": {cls: {metric: mean_sd([m["per_domain"][cls]["metrics"][metric]
                                                 for m in found])
                                for metric in ("sensitivity", "specificity", "precision", "f1")}
                          for cls in task.classes},
            "confusion_sum": np.sum([m["confusion"]["clip"] for m in found], axis=0).tolist()}
    return out
