"""Table II: heart-sound abnormality detection on the PhysioNet 2016 beat dataset.

The runs of the grid (:mod:`spectnet.grid`): ``static-N`` (SpectNet-N, front-end frozen,
+ the code's ResNet), ``learnable-N`` (fine-tuned end to end from ``static-N``'s selected
model), ``static-N-control`` (the same stage 2 with the front-end frozen: the same-budget
control of ``learnable-N``) and the two Gammatone baselines (one stage, as Heartnet).

Each run trains on ``train{fold}`` without its inner split and keeps the epoch with the
best recording-level MAcc on the inner split (recordings held out of ``train{fold}``,
stratified by class x subset); ``validation{fold}`` is only used to report
(``heart_sounds.selection.split: reporting`` selects on it instead, the authors' A21).
A recording's decision is the majority vote of its beats, ties to abnormal (§1.6).
Excluded recordings are never used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spectnet.config import Params
from spectnet.datasets.examples import BEATS
from spectnet.errors import SpectNetError
from spectnet.evaluation.metrics import binary_metrics, majority_vote
from spectnet.experiments.task import (Evaluation, Task, comparison_notes, comparisons,
                                       results_table, write_results_table)
from spectnet.frontend import canonical_parameter_names
from spectnet.grid import BASELINES, Run, heart_sound_runs
from spectnet.training.data import ExampleSet, load_examples
from spectnet.training.trainer import StageSettings

__all__ = ["CLASSES", "TASK", "PAPER_TABLE_II", "TABLE_II_COLUMNS", "HeartSounds",
           "run_label", "write_table_ii"]

log = logging.getLogger(__name__)

CLASSES = BEATS.classes
TASK = "physionet2016-heart-sounds"
#: Table II of the paper (REPRODUCTION.md §7; fold 0, 284 recordings), in %. Its
#: accuracy is beat-level, the other columns recording-level (§5).
PAPER_TABLE_II = {
    "gammatone-1d": {"accuracy": 75.80, "f1": 83.17, "macc": 82.30, "sensitivity": 91.30,
                     "specificity": 73.29, "precision": 76.36},
    "gammatone-2d": {"accuracy": 76.69, "f1": 84.67, "macc": 84.03, "sensitivity": 92.03,
                     "specificity": 76.03, "precision": 78.39},
    "static-4": {"accuracy": 77.42, "f1": 81.91, "macc": 80.30, "sensitivity": 93.48,
                 "specificity": 67.12, "precision": 72.88},
    "static-8": {"accuracy": 81.64, "f1": 87.27, "macc": 87.66, "sensitivity": 86.96,
                 "specificity": 88.36, "precision": 87.59},
    "static-16": {"accuracy": 81.79, "f1": 87.37, "macc": 87.68, "sensitivity": 87.68,
                  "specificity": 87.67, "precision": 87.05},
    "learnable-16": {"accuracy": 80.36, "f1": 88.32, "macc": 88.70, "sensitivity": 87.68,
                     "specificity": 89.73, "precision": 88.97},
}
#: Table II's columns: ``<level>.<metric>`` -> the paper's column.
TABLE_II_COLUMNS = {"beat.accuracy": "Acc (beat)", "recording.f1": "F1",
                    "recording.macc": "MAcc", "recording.sensitivity": "Se",
                    "recording.specificity": "Sp", "recording.precision": "Prec"}
_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "macc")


def run_label(name: str) -> str:
    """The paper's row name of a run."""
    if name in BASELINES:
        return f"Gammatone {name[-2:].upper()}-CNN"
    if name.endswith("-control"):
        return f"Static SpectNet-{name.split('-')[1]} + ResNet, same-budget control"
    kind, n = name.split("-")
    return f"{kind.capitalize()} SpectNet-{n} + ResNet"


class HeartSounds(Task):
    """The heart-sound grid on a beat dataset (``spectnet physionet segment``).

    Example:
        >>> task = HeartSounds(Params(), "data/processed/physionet2016-beats")
        >>> task.job("static-16-control", 0, 2), task.levels
        ('static-16-control/seed2', ('recording', 'beat'))
    """

    name = TASK
    group, example = "recording", "beat"
    layout = BEATS
    paper = PAPER_TABLE_II

    @property
    def section(self):
        return self.params.heart_sounds

    @property
    def budget(self):
        return self.params.active_scale.heart_sounds

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES

    @property
    def dataset(self) -> str:
        return "physionet2016"

    def runs(self) -> list[str]:
        return heart_sound_runs(self.params)

    def folds(self) -> list[int]:
        return [self.section.fold]

    def job(self, run: str, fold: int, seed: int) -> str:
        return f"{run}/seed{seed}"  # one fold per params file: heart_sounds.fold

    def load(self, fold: int, split: str, device: torch.device) -> ExampleSet:
        """The beats of ``train{fold}`` or (``reporting``) ``validation{fold}``, excluded
        recordings left out."""
        column = f"{'train' if split == 'train' else 'validation'}{fold}"

        def mask(index: pd.DataFrame):
            if column not in index:
                raise SpectNetError(f"{self.data_dir}: the beat index has no column {column!r}")
            return (index[column] == 1) & (index["excluded"] == 0)

        return load_examples(self.store, mask, domain_column="subset", device=device)

    def strata(self, examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
        labels = examples.labels.cpu().numpy().astype(str)
        return examples.groups, np.char.add(np.char.add(labels, "-"),
                                            examples.index["subset"].to_numpy().astype(str))

    def selection_examples(self, examples: ExampleSet) -> ExampleSet:
        k = self.section.selection.beats_per_record
        if k is None:
            return examples
        return examples.subset(examples.index.groupby("record").cumcount().to_numpy() < k)

    def model_spec(self, run: Run) -> dict:
        if run.init_run is not None:
            raise ValueError(f"{run.name} starts from {run.init_run}'s model, not from a spec")
        heart, dropout = self.section, self.budget.dropout  # None: the sections' (the code's)
        frontend = heart.frontend
        common = {"n_samples": self.params.beats.beat_length,
                  "sample_rate": self.params.preprocess.sample_rate, "n_classes": len(CLASSES)}
        filters = {"n_filters": run.n_filters, "f_min": frontend.f_min, "f_max": frontend.f_max,
                   "kernel_size": frontend.kernel_size, "init": frontend.init}
        if run.kind in BASELINES:
            base = heart.baselines
            return {"architecture": f"gammatone-heartnet{run.kind[-2:]}", **common,
                    "frontend": {**filters, "bandwidth": base.bandwidth,
                                 "amplitude": base.amplitude,
                                 "learnable": canonical_parameter_names(
                                     ["f", "b", "a"] if base.learn_filters else [])},
                    "cnn": {"dropout": base.dropout if dropout is None else dropout}}
        return {"architecture": "spectnet-resnet", **common,
                "frontend": {**filters, "win_length": frontend.win_length,
                             "hop_length": frontend.hop_length,
                             # parameters (frozen in stage 1): stage 2 loads the same state dict
                             "learnable": canonical_parameter_names(["f", "b", "a"])},
                "cnn": {"dropout": heart.resnet.dropout if dropout is None else dropout,
                        "quirks": heart.resnet.quirks}}

    def stage_settings(self, run: Run, device: torch.device) -> StageSettings:
        heart, budgets = self.section, self.budget
        common = {"sampler": heart.sampler, "channels_last": device.type == "cpu",
                  "cpu_autocast": self.params.cpu_autocast}
        if run.kind == "static":
            budget, static = budgets.static, heart.static
            return StageSettings(
                self.epochs(run, budget), budget.batch_size, budget.steps_per_epoch, lr=static.lr,
                lr_schedule="constant" if static.lr_decay == 1 else "exponential",
                lr_decay=static.lr_decay, warmup_steps=static.warmup_steps,
                patience=budget.patience, **common)
        if run.kind in ("learnable", "control"):
            budget, learnable = budgets.learnable, heart.learnable
            train_frontend = run.kind == "learnable"
            if learnable.variant == "s2_code":
                # the authors' code (REPRODUCTION.md §4.2): SGD, two learning rates (the
                # front-end's in Hz), micro-batches of 100 (8 per cell -> 96) accumulated 10x
                return StageSettings(budget.epochs, 100, budget.steps_per_epoch,
                                     optimizer="sgd", lr=0.005, frontend_lr=0.1, accumulate=10,
                                     train_frontend=train_frontend, **common)
            return StageSettings(budget.epochs, budget.batch_size, budget.steps_per_epoch,
                                 lr=learnable.lr, frontend_lr=learnable.frontend_lr,
                                 warmup_steps=learnable.warmup_steps,
                                 train_frontend=train_frontend, **common)
        budget, base = budgets.baselines, heart.baselines
        return StageSettings(
            self.epochs(run, budget), budget.batch_size, budget.steps_per_epoch, lr=base.lr,
            weight_decay=2 * base.l2,  # Keras adds l2 * w^2 to the loss: gradient 2 * l2 * w
            lr_schedule="inverse_time", lr_decay=base.lr_decay * budget.batch_size / 64,
            warmup_steps=base.warmup_steps, patience=budget.patience,
            train_frontend=base.learn_filters, sampler=heart.sampler,
            channels_last=device.type == "cpu" and run.kind == "gammatone-2d",
            cpu_autocast=self.params.cpu_autocast)

    def pool(self, examples: ExampleSet, probabilities: np.ndarray) -> Evaluation:
        labels = examples.labels.cpu().numpy()
        predictions = probabilities.argmax(1)
        beats = pd.DataFrame({"group": examples.groups, "beat": examples.index["beat"],
                              "domain": examples.index["subset"].astype(str), "label": labels,
                              "prediction": predictions,
                              **{f"p_{c}": probabilities[:, i] for i, c in enumerate(CLASSES)}})
        votes = majority_vote(beats["group"], labels, predictions).rename(
            columns={"n_beats": "n_examples"})
        votes.insert(1, "domain", votes["group"].map(
            beats.drop_duplicates("group").set_index("group")["domain"]))
        groups = votes.sort_values("group", ignore_index=True)
        return Evaluation(beats, groups)

    def metrics(self, labels, predictions, weights=None) -> dict[str, float]:
        m = binary_metrics(labels, predictions, weights)
        return {k: m[k] for k in _METRICS}

    def model_info(self, run: Run, fold: int, seed: int) -> dict:
        """What a model file needs besides the weights to classify a new recording."""
        return {"task": TASK, "classes": list(CLASSES), "run": run.name, "seed": seed,
                "fold": fold, "scale": self.params.scale, "dataset": self.dataset,
                "preprocess": self.params.preprocess.to_dict(),
                "segmentation": {"emulate_underflow": self.params.segmentation.emulate_underflow},
                "beats": self.params.beats.to_dict()}


def write_table_ii(params: Params, beats_dir: str | Path, metrics_dir: str | Path,
                   predictions_dir: str | Path, models_dir: str | Path,
                   out_prefix: str | Path) -> pd.DataFrame:
    """Compute Table II and write ``OUT.{csv,md,tex}`` and the comparisons of every
    learnable run with its control and with its static model, ``OUT-comparisons.csv``.
    Returns the tidy table."""
    from spectnet.atomic import atomic_write_text

    task = HeartSounds(params, beats_dir)
    table = results_table(task, TABLE_II_COLUMNS, metrics_dir, predictions_dir, models_dir,
                          run_label)
    tests = comparisons(task, predictions_dir)
    budget, fold = task.budget, task.section.fold
    first = table.iloc[0]
    selection = task.section.selection
    notes = [
        f"Ours: {params.scale} scale; seeds {', '.join(map(str, budget.seeds))} for the grid, "
        f"{', '.join(map(str, budget.comparison_seeds))} for the static, learnable and control "
        "runs of each learnable N (mean ± sd over seeds where more than one); "
        f"{first['recordings']} validation{fold} recordings ({first['beats']} beats); the paper "
        "evaluated 284 recordings (REPRODUCTION.md A12).",
        (f"Selection: each run keeps its best epoch (model: {task.section.evaluation.model}) "
         f"and stops early on an inner split of train{fold} ({selection.inner_fraction:.0%} of "
         "each class x subset's recordings, held out of training); validation"
         f"{fold} is only used to report." if selection.split == "inner" else
         f"Selection on validation{fold}, the reporting fold (the authors' protocol, "
         "REPRODUCTION.md A21): optimistic."),
        "static-N-control: static-N's selected model trained for exactly learnable-N's stage-2 "
        "steps, batches and CNN optimiser with the front-end frozen: learnable-N minus it is "
        "what the learned filters add; learnable-N minus static-N adds more training too.",
        "Acc is beat-level; F1, MAcc, Se, Sp and Prec are recording-level (majority vote, "
        f"ties to abnormal), in %. {task.section.evaluation.ci_level:.0%} CI of one "
        f"training: percentile bootstrap over recordings ({budget.bootstrap} resamples, seed "
        "0); of a mean over seeds: mean ± t·se, se² = sd²/n over the seeds + the recordings' "
        "bootstrap variance of the mean, Welch-Satterthwaite df: it covers training noise, "
        "which a recordings-only interval does not.",
        *comparison_notes(tests, task),
    ]
    title = f"Table II: heart-sound abnormality detection, PhysioNet 2016 fold {fold}"
    write_results_table(table, out_prefix, title, notes)
    atomic_write_text(Path(f"{out_prefix}-comparisons.csv"), tests.to_csv(index=False))
    return table
