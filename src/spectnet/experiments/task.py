"""The one experiment protocol that both tasks implement: heart sounds (Table II) and
acoustic scenes (Table III).

A :class:`Task` says what differs between the two: its data split, model specs, stage
settings, how examples (beats, units) are pooled into the groups a result is about
(recordings, clips), and its metrics. Everything else is written once, here:

- **Selection set.** Recipes, early stopping and the epoch each run keeps are chosen on
  an inner split of the training fold that holds out whole groups, stratified by class
  (and PhysioNet subset): :func:`spectnet.datasets.splits.inner_split`. The reporting
  fold is never looked at before evaluation (``selection.split: reporting`` restores the
  authors' protocol, A21, which selects on it).
- **Training** (:meth:`Task.train`): stage 1 (``static-N``, baselines), stage 2
  (``learnable-N``) and its same-budget control (``static-N-control``: the same start,
  steps, batches and CNN optimiser, with the front-end frozen).
- **Evaluation** (:meth:`Task.evaluate`): one metrics JSON shape for both tasks: metrics
  per level (group and example), percentile bootstrap intervals that resample groups
  (one seed, :data:`BOOTSTRAP_SEED`, so a number has one interval wherever it appears),
  per-domain metrics with intervals and confusion matrices.
- **Comparisons** (:func:`compare_runs`): ``learnable-N`` against its control (and
  against ``static-N``, the paper's unequal-budget comparison): McNemar on the groups
  (recordings, clips; never on correlated beats) and paired bootstrap intervals of the
  differences.
- **Tables** (:func:`write_results_table`): mean +/- sd over seeds and folds, intervals,
  the paper's value, how each run trained (epochs, steps, why it stopped) and how far
  its filters moved.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from spectnet.atomic import atomic_dir, atomic_write_text, remove_path
from spectnet.config import Params
from spectnet.datasets.examples import ExampleStore, Layout
from spectnet.datasets.splits import group_subset, inner_split
from spectnet.errors import SpectNetError
from spectnet.evaluation.filters import filter_change
from spectnet.evaluation.metrics import confusion_matrix
from spectnet.evaluation.statistics import (bootstrap_samples, mcnemar, mean_over_trainings,
                                            percentile_intervals)
from spectnet.frontend import canonical_parameter_names
from spectnet.grid import Run, in_comparison, parse_run, run_seeds
from spectnet.models import build_model
from spectnet.runtime import default_device, machine_info
from spectnet.training.checkpoint import load_model, read_model_file, save_model
from spectnet.training.data import ExampleSet
from spectnet.training.trainer import (StageSettings, cnn_precision, in_memory_format,
                                      predict_proba, resolve_cpu_autocast, train_stage)

__all__ = ["BOOTSTRAP_SEED", "Evaluation", "Task", "resume_dir",
           "compare_runs", "write_results_table"]

log = logging.getLogger(__name__)

#: The one seed of every bootstrap: a run's JSON and a one-seed table give the same interval.
BOOTSTRAP_SEED = 0


def resume_dir(out_dir: str | Path) -> Path:
    """Where a run keeps its resume checkpoint until it finishes: a hidden sibling of the
    output (Snakemake removes a failed job's outputs, never this)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.resume"


@dataclass
class Evaluation:
    """The predictions of one (run, fold, seed) on its reporting set.

    Attributes:
        examples: one row per example (beat, unit): ``group``, ``domain``, ``label``,
            ``prediction`` and the class probabilities ``p_<class>``.
        groups: one row per group (recording, clip), sorted by ``group``: ``domain``,
            ``label``, ``prediction``, ``n_examples``, ``n_correct``.
    """
    examples: pd.DataFrame
    groups: pd.DataFrame


class Task(ABC):
    """One experiment grid on one data set. Subclasses say what differs between tasks.

    Args:
        params: the validated parameters.
        data_dir: the example store (the beat dataset, the unit store).
    """

    #: recorded in every model file; a model of another task is refused
    name: str
    #: what a result is about (resampled by the bootstrap) and what the model scores
    group: str
    example: str
    #: the kind of example store the task reads
    layout: Layout
    #: the paper's table of this task: run -> metric -> % (REPRODUCTION.md §7)
    paper: Mapping[str, Mapping[str, float]] = {}
    #: examples per evaluation batch
    eval_batch_size: int = 512

    def __init__(self, params: Params, data_dir: str | Path) -> None:
        self.params = params
        self.data_dir = Path(data_dir)

    @cached_property
    def store(self) -> ExampleStore:
        """The example store at ``data_dir`` (opened on first use)."""
        return ExampleStore(self.data_dir, self.layout)

    # ------------------------------------------------------------------ what differs
    @property
    @abstractmethod
    def section(self):
        """The task's params section (``heart_sounds``, ``scenes``)."""

    @property
    @abstractmethod
    def budget(self):
        """The task's block of the active scale."""

    @property
    @abstractmethod
    def classes(self) -> tuple[str, ...]:
        """Class names in label order."""

    @property
    @abstractmethod
    def dataset(self) -> str:
        """The data set the store holds (``physionet2016``, ``esc10``, ``dcase2016``)."""

    @abstractmethod
    def runs(self) -> list[str]:
        """Every run of the grid, in the table's order."""

    @abstractmethod
    def folds(self) -> list[int]:
        """The folds the active scale trains and reports on."""

    @abstractmethod
    def job(self, run: str, fold: int, seed: int) -> str:
        """The relative path of a (run, fold, seed) in the models and predictions trees."""

    @abstractmethod
    def load(self, fold: int, split: str, device: torch.device) -> ExampleSet:
        """The examples of fold ``fold``'s ``train`` or ``reporting`` set."""

    @abstractmethod
    def strata(self, examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
        """``(sources, strata)`` per example for the inner split: the unit held out whole
        (a recording; a clip's source recording) and the stratum kept in proportion."""

    @abstractmethod
    def model_spec(self, run: Run) -> dict:
        """The architecture spec of a run trained from scratch."""

    @abstractmethod
    def stage_settings(self, run: Run, device: torch.device) -> StageSettings:
        """How a run trains."""

    @abstractmethod
    def pool(self, examples: ExampleSet, probabilities: np.ndarray) -> Evaluation:
        """Example predictions and the group decisions made from them."""

    @abstractmethod
    def metrics(self, labels, predictions, weights=None) -> dict[str, float]:
        """The metrics of one level (labels and decisions, optionally weighted)."""

    @abstractmethod
    def model_info(self, run: Run, fold: int, seed: int) -> dict:
        """What a model file needs besides the weights to classify new audio."""

    def domain_metrics(self, labels, predictions, domain: str, inside: np.ndarray,
                       weights) -> dict[str, float]:
        """Group-level metrics of one domain, whose groups are ``inside`` (a PhysioNet
        subset: the metrics of its recordings; a scene class: its one-vs-rest metrics)."""
        return self.metrics(labels, predictions, weights * inside)

    def metric_range(self, key: str) -> tuple[float, float]:
        """The values a metric (``"<level>.<metric>"``, ``"domain.<d>.<metric>"``) can
        take: proportions unless a task says otherwise."""
        return 0.0, 1.0

    def check_model(self, info: Mapping[str, Any], where: str | Path) -> None:
        """Refuse a model file that does not belong to this task and data."""
        if info.get("task") != self.name:
            raise SpectNetError(f"{where}: a {info.get('task')!r} model, not {self.name!r}")

    def selection_examples(self, examples: ExampleSet) -> ExampleSet:
        """The examples of the selection set that are scored each epoch (all of them;
        the heart-sound task keeps the first beats of each recording)."""
        return examples

    # ------------------------------------------------------------------ shared
    @property
    def levels(self) -> tuple[str, str]:
        return self.group, self.example

    def parse_run(self, name: str) -> Run:
        """A run of this task by name (a SpectNet-N outside the grid can be trained too)."""
        return parse_run(name, getattr(getattr(self.section, "baselines", None), "n_filters", 4))

    def epochs(self, run: Run, budget) -> int:
        """A run's most epochs: its budget's, capped by the scale's ``grid_epochs`` for the
        runs outside the learnable comparisons."""
        cap = self.budget.grid_epochs
        if cap is None or in_comparison(run.name, self.section.learnable.n_filters):
            return budget.epochs
        return min(budget.epochs, cap)

    def seeds(self, run: str) -> tuple[int, ...]:
        return run_seeds(run, self.budget.seeds, self.budget.comparison_seeds,
                         self.section.learnable.n_filters)

    def splits(self, fold: int, device: torch.device) -> tuple[ExampleSet, ExampleSet]:
        """``(training set, selection set)`` of a fold: the training fold without its inner
        split and the inner split (``selection.split: inner``), or the whole training fold
        and the reporting set (``reporting``, the authors' A21)."""
        train = self.load(fold, "train", device)
        selection = self.section.selection
        if selection.split == "reporting":
            chosen = self.load(fold, "reporting", device)
        else:
            sources, strata = self.strata(train)
            held = inner_split(sources, strata, selection.inner_fraction, selection.seed)
            train, chosen = train.subset(~held), train.subset(held)
        sources, strata = self.strata(chosen)
        keep = group_subset(sources, strata, self.budget.selection_subset, selection.seed)
        return train, self.selection_examples(chosen.subset(keep))

    def score(self, probabilities: np.ndarray, examples: ExampleSet) -> dict[str, float]:
        """An epoch's score on the selection set: example loss and accuracy, and the group
        metrics (``macc`` picks the best epoch)."""
        evaluation = self.pool(examples, probabilities)
        labels = examples.labels.cpu().numpy()
        true_class = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)
        groups = evaluation.groups
        return {"loss": float(-np.log(true_class).mean()),
                f"{self.example}_accuracy": float((probabilities.argmax(1) == labels).mean()),
                **self.metrics(groups["label"], groups["prediction"])}

    def _init_model(self, run: Run, init_model: str | Path | None) -> dict | None:
        """The model file a stage-2 run fine-tunes, checked to be ``run.init_run``'s of
        this task; ``None`` for a run from scratch."""
        if run.init_run is None:
            if init_model is not None:
                raise SpectNetError(f"{run.name} trains from scratch; --init is only for "
                                    "learnable-N and static-N-control")
            return None
        if init_model is None:
            raise SpectNetError(f"{run.name} is fine-tuned from {run.init_run}: give its model "
                                "file (--init)")
        info = read_model_file(init_model)
        self.check_model(info, init_model)
        if info.get("run") != run.init_run:
            raise SpectNetError(f"{init_model}: {run.name} fine-tunes {run.init_run}, but this "
                                f"model is {info.get('run')!r}")
        return info

    def stage2_spec(self, static_spec: Mapping[str, Any], run: Run) -> dict:
        """``static-N``'s spec with the front-end as stage 2 trains it: learnable-N learns
        ``learnable.learn`` in ``learnable.parametrization``; the control learns nothing."""
        frontend = dict(static_spec["frontend"])
        if run.kind == "learnable":
            learnable = self.section.learnable
            frontend.update(learnable=canonical_parameter_names(learnable.learn),
                            parametrization=learnable.parametrization)
        return {**static_spec, "frontend": frontend}

    def train(self, name: str, fold: int, seed: int, out_dir: str | Path,
              init_model: str | Path | None = None, device: torch.device | str | None = None,
              progress: bool = True) -> dict:
        """Train one run on one fold and write its directory.

        ``out_dir`` gets ``best.pt`` (the best epoch on the selection set) and ``last.pt``
        (self-describing model files), ``history.csv`` (one row per epoch),
        ``frontend.csv`` (the filters' parameters per epoch), ``summary.json`` (how it
        trained, why it stopped, how far its filters moved) and ``dvclive/``; it appears
        atomically when the run ends. An interrupted run resumes where it stopped
        (its checkpoint lives in :func:`resume_dir`).

        Args:
            init_model: for ``learnable-N`` and ``static-N-control``, the model file of
                ``static-N`` of the same fold and seed.
        """
        run = self.parse_run(name)
        device = default_device(device)
        init = self._init_model(run, init_model)
        if init is not None and init.get("fold", fold) != fold:
            raise SpectNetError(f"{init_model}: {run.name} on fold {fold} fine-tunes the static "
                                f"model of the same fold, but this one was trained on fold "
                                f"{init.get('fold')} (its training set holds fold {fold}'s "
                                "reporting examples)")
        spec = self.stage2_spec(init["spec"], run) if init else self.model_spec(run)
        stage = self.stage_settings(run, device)
        train, selection = self.splits(fold, device)
        log.info("%s fold %d seed %d (%s, %s scale): %d training %ss; selection on %d %ss of "
                 "%d %ss (%s split); %s, the CNN in %s", run.name, fold, seed, self.dataset,
                 self.params.scale, len(train), self.example, len(selection), self.example,
                 len(set(selection.groups)), self.group, self.section.selection.split, device,
                 cnn_precision(device, stage.cpu_autocast))
        out_dir = Path(out_dir)
        torch.manual_seed(seed)
        model = build_model(spec)
        if init is not None:
            model.load_state_dict(init["state_dict"])
        work = resume_dir(out_dir)
        result = train_stage(
            model, stage, train, selection, self.score, seed=seed, work_dir=work,
            run_settings={"spec": spec, "init": str(init_model) if init_model else None,
                          "init_epoch": init.get("epoch") if init else None, "fold": fold,
                          "dataset": self.dataset, "selection": self.section.selection.to_dict(),
                          "selection_subset": self.budget.selection_subset},
            progress=progress, live_dir=work / "dvclive")
        # the CPU precision the run resolved: evaluation on the CPU runs the model in it
        info = {**self.model_info(run, fold, seed), "selection": self.section.selection.split,
                "cpu_autocast": resolve_cpu_autocast(stage.cpu_autocast)}
        trace = pd.DataFrame(result.frontend_trace)
        summary = {
            "task": self.name, "run": run.name, "fold": fold, "seed": seed,
            "scale": self.params.scale, "dataset": self.dataset,
            "epochs": len(result.history), "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "steps": int(sum(r["steps"] for r in result.history)),
            "best_step": int(sum(r["steps"] for r in result.history[:result.best_epoch])),
            "best": result.best, "last": result.history[-1],
            "train_examples": len(train), f"selection_{self.group}s": len(set(selection.groups)),
            "selection_examples": len(selection), "selection": self.section.selection.split,
            "initialised_from": str(init_model) if init_model else None,
            "frontend_change": (filter_change(trace, result.best_epoch, spec["sample_rate"])
                                if stage.train_frontend and not trace.empty else None),
            "train_seconds": float(sum(r["train_seconds"] for r in result.history)),
            "machine": machine_info(device), "cnn_precision": result.precision,
            "stage": asdict(stage)}
        with atomic_dir(out_dir) as tmp:
            for file, state, epoch in (("best.pt", result.best_state, result.best_epoch),
                                       ("last.pt", result.last_state, len(result.history))):
                model.load_state_dict(state)
                save_model(tmp / file, model, spec, **info, epoch=epoch,
                           validation=result.history[epoch - 1])
            pd.DataFrame(result.history).to_csv(tmp / "history.csv", index=False)
            trace.to_csv(tmp / "frontend.csv", index=False)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if (work / "dvclive").exists():
                (work / "dvclive").rename(tmp / "dvclive")
        remove_path(work)
        best = result.best
        log.info("%s fold %d seed %d: best epoch %d of %d (%s, %s %.4f) in %.0f s -> %s",
                 run.name, fold, seed, result.best_epoch, len(result.history),
                 "stopped early" if result.stopped == "patience" else "budget ended",
                 stage.select_metric, best[stage.select_metric], summary["train_seconds"],
                 out_dir)
        return summary

    # ------------------------------------------------------------------ evaluation
    def resample_statistic(self, evaluations: Sequence[Evaluation], names: pd.Index,
                   domains: Sequence[str]) -> Callable[[np.ndarray], dict[str, float]]:
        """Metrics of a bootstrap resample (weights over ``names``, the groups), averaged
        over ``evaluations``: every level, and the group level per domain."""
        positions = [(names.get_indexer(e.groups["group"]), names.get_indexer(e.examples["group"]))
                     for e in evaluations]

        arrays = [{level: (frame["label"].to_numpy(), frame["prediction"].to_numpy())
                   for level, frame in ((self.group, e.groups), (self.example, e.examples))}
                  for e in evaluations]
        inside = [{d: (e.groups["domain"] == d).to_numpy() for d in domains} for e in evaluations]

        def statistic(weights: np.ndarray) -> dict[str, float]:
            total: dict[str, float] = {}
            for levels, masks, (group_pos, example_pos) in zip(arrays, inside, positions):
                w_group, w_example = weights[group_pos], weights[example_pos]
                row = {}
                for level, w in ((self.group, w_group), (self.example, w_example)):
                    m = self.metrics(*levels[level], w)
                    row.update({f"{level}.{k}": v for k, v in m.items()})
                for domain in domains:
                    m = self.domain_metrics(*levels[self.group], domain, masks[domain], w_group)
                    row.update({f"domain.{domain}.{k}": v for k, v in m.items()})
                for key, value in row.items():
                    total[key] = total.get(key, 0.0) + value
            return {key: value / len(evaluations) for key, value in total.items()}

        return statistic

    def summarise(self, evaluations: Sequence[Evaluation], n_resamples: int,
                  level: float) -> tuple[dict, dict]:
        """Point metrics averaged over ``evaluations`` and their intervals: for one
        evaluation the percentile bootstrap over groups (one draw of the union of their
        groups, shared by every evaluation that scores them, :data:`BOOTSTRAP_SEED`); for
        several (trainings: seeds, folds) the interval of their mean that also covers the
        training noise (:func:`mean_intervals`).

        Returns:
            ``(point, intervals)``: ``{key: value}`` and ``{key: (low, high)}`` with keys
            ``"<level>.<metric>"`` and ``"domain.<domain>.<metric>"``.
        """
        names = pd.Index(sorted(set().union(*(e.groups["group"] for e in evaluations))))
        domains = sorted(set().union(*(e.groups["domain"] for e in evaluations)))
        statistic = self.resample_statistic(evaluations, names, domains)
        ones = np.ones(len(names))
        point = statistic(ones)
        per_training = [self.resample_statistic([e], names, domains)(ones)
                        for e in evaluations] if len(evaluations) > 1 else [point]
        found = mean_intervals(statistic, len(names), per_training, n_resamples, level,
                               self.metric_range)
        return point, {key: (r["low"], r["high"]) for key, r in found.items()}

    def evaluate(self, model_path: str | Path, out_dir: str | Path, metrics_path: str | Path,
                 device: torch.device | str | None = None) -> dict:
        """Evaluate a trained model on the reporting set of the fold it was trained on.

        ``out_dir`` gets ``<example>s.csv`` (every example: group, domain, label,
        prediction, class probabilities) and ``<group>s.csv`` (the group decisions);
        ``metrics_path`` (JSON) gets the metrics of both levels with bootstrap intervals
        over groups, per-domain metrics with intervals, and confusion matrices.
        """
        model, info = load_model(model_path, default_device(device))
        self.check_model(info, model_path)
        device = next(model.parameters()).device
        if info.get("run"):
            in_memory_format(model, self.stage_settings(self.parse_run(info["run"]), device))
        fold = int(info.get("fold", 0))
        examples = self.load(fold, "reporting", device)
        # as it trained: a model file from before cpu_autocast trained in float32 on the CPU
        cpu_autocast = info.get("cpu_autocast", "float32")
        torch.manual_seed(info.get("seed", 0))  # evaluation-time dropout (quirks) draws from it
        evaluation = self.pool(examples, predict_proba(model, examples, self.eval_batch_size,
                                                       cpu_autocast))
        scale = self.budget
        ci_level = self.section.evaluation.ci_level
        point, intervals = self.summarise([evaluation], scale.bootstrap, ci_level)
        n_classes = len(self.classes)
        metrics = {
            "task": self.name, "dataset": self.dataset, "run": info.get("run"),
            "fold": fold, "seed": info.get("seed"), "scale": self.params.scale,
            "trained_at_scale": info.get("scale"), "model": Path(model_path).name,
            "epoch": info.get("epoch"), "selection": info.get("selection"),
            "cnn_precision": cnn_precision(device, cpu_autocast),
            "classes": list(self.classes), "levels": list(self.levels),
            "counts": {self.group: int(len(evaluation.groups)),
                       self.example: int(len(evaluation.examples))},
            "ci_level": ci_level,
            "bootstrap": {"resamples": scale.bootstrap, "seed": BOOTSTRAP_SEED,
                          "resampled": self.group},
            **_nest(point, intervals, evaluation.groups["domain"].value_counts()),
            "confusion": {level: _confusion(frame, n_classes) for level, frame in (
                (self.group, evaluation.groups), (self.example, evaluation.examples))},
        }
        with atomic_dir(out_dir) as tmp:
            evaluation.examples.to_csv(tmp / f"{self.example}s.csv", index=False)
            evaluation.groups.to_csv(tmp / f"{self.group}s.csv", index=False)
        atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        m = metrics["metrics"][self.group]
        log.info("%s fold %d seed %s on %d %ss: MAcc %.4f, accuracy %.4f -> %s", metrics["run"],
                 fold, metrics["seed"], len(evaluation.groups), self.group, m["macc"],
                 m["accuracy"], metrics_path)
        return metrics

    def read_evaluation(self, predictions_dir: str | Path, job: str) -> Evaluation:
        """The predictions :meth:`evaluate` wrote for a job."""
        where = Path(predictions_dir) / job
        try:
            frames = [pd.read_csv(where / f"{kind}s.csv", dtype={"group": str, "domain": str})
                      for kind in (self.example, self.group)]
        except (OSError, ValueError) as exc:
            raise SpectNetError(f"{where}: cannot read its evaluation ({exc}); evaluate the "
                                "run first") from None
        return Evaluation(*frames)


def mean_intervals(statistic: Callable[[np.ndarray], Mapping[str, float]], n_groups: int,
                   per_training: Sequence[Mapping[str, float]], n_resamples: int,
                   level: float, bounds: Callable[[str], tuple[float, float]]
                   ) -> dict[str, dict[str, float]]:
    """Intervals of a mean over trainings that ``statistic`` computes from group weights.

    One training: the percentile bootstrap over groups (the model fixed). Several: for
    each metric finite in every training, :func:`~spectnet.evaluation.statistics.
    mean_over_trainings` (the trainings' spread plus the groups' bootstrap), which also
    gives a t-test of the mean; the groups' bootstrap is drawn once, :data:`BOOTSTRAP_SEED`.

    Args:
        per_training: each training's metrics (``statistic``'s keys).
        bounds: a key -> the values it can take (the interval is clipped to them).

    Returns:
        ``{key: {"low", "high", ...}}``.
    """
    samples = bootstrap_samples(statistic, n_groups, n_resamples, seed=BOOTSTRAP_SEED)
    percentile = percentile_intervals(samples, level)
    found = {}
    for key in samples.columns:
        values = np.array([p[key] for p in per_training], dtype=float)
        if len(values) > 1 and np.isfinite(values).all():
            found[key] = mean_over_trainings(values, samples[key], level, bounds(key))
        else:
            found[key] = dict(zip(("low", "high"), percentile[key]))
    return found


def _confusion(frame: pd.DataFrame, n_classes: int) -> list[list[int]]:
    return confusion_matrix(frame["label"], frame["prediction"], n_classes).astype(int).tolist()


def _nest(point: Mapping[str, float], intervals: Mapping[str, tuple[float, float]],
          domain_counts: Mapping[str, int]) -> dict:
    """Flat ``level.metric`` / ``domain.d.metric`` keys -> the metrics JSON's nesting;
    each domain also gets its number of groups (``count``)."""
    out: dict = {"metrics": {}, "ci": {}, "per_domain": {}}
    for key, value in point.items():
        prefix, rest = key.split(".", 1)
        interval = list(intervals[key])
        if prefix == "domain":  # a domain's name may hold dots; a metric's never does
            domain, metric = rest.rsplit(".", 1)
            entry = out["per_domain"].setdefault(domain, {
                "count": int(domain_counts.get(domain, 0)), "metrics": {}, "ci": {}})
            entry["metrics"][metric], entry["ci"][metric] = value, interval
        else:
            out["metrics"].setdefault(prefix, {})[rest] = value
            out["ci"].setdefault(prefix, {})[rest] = interval
    return out


# ---------------------------------------------------------------------------- comparisons
def compare_runs(task: Task, predictions_dir: str | Path, a: str, b: str,
                 metric: str = "macc") -> list[dict]:
    """``b`` against ``a`` on the same groups, per (fold, seed) they share and pooled.

    Per (fold, seed): McNemar's test on the groups' correctness (exact binomial below 25
    discordant groups, else chi-square with continuity correction), and paired bootstrap
    intervals (the same resampled groups for both runs) of the differences ``b - a`` of
    ``metric`` at the group level and of the example-level accuracy (examples nested in
    their groups). Pooled: the mean difference over the (fold, seed) pairs; with several
    pairs its interval covers their spread as well as the groups (resampled jointly for
    every pair; :func:`mean_intervals`), with a t-test of the mean (``method``
    ``"t over trainings"``). ``interval`` says what each interval resamples.

    Returns:
        One dict per (fold, seed) and one with ``seed = "pooled"``.
    """
    budget, level = task.budget, task.section.evaluation.ci_level
    pairs = [(fold, seed) for fold in task.folds() for seed in task.seeds(a)
             if seed in task.seeds(b)]
    read = [(task.read_evaluation(predictions_dir, task.job(a, f, s)),
             task.read_evaluation(predictions_dir, task.job(b, f, s))) for f, s in pairs]
    for (fold, seed), (ea, eb) in zip(pairs, read):
        if not ea.groups["group"].equals(eb.groups["group"]):
            raise SpectNetError(f"{a} and {b} (fold {fold}, seed {seed}) were evaluated on "
                                "different groups")
    keys = (f"{task.group}.{metric}", f"{task.example}.accuracy")

    def differences(evaluations: Sequence[tuple[Evaluation, Evaluation]], names: pd.Index):
        stat_a = task.resample_statistic([e for e, _ in evaluations], names, [])
        stat_b = task.resample_statistic([e for _, e in evaluations], names, [])

        def statistic(weights):
            sa, sb = stat_a(weights), stat_b(weights)
            return {key: sb[key] - sa[key] for key in keys} | {f"a.{k}": sa[k] for k in keys} \
                | {f"b.{k}": sb[k] for k in keys}
        return statistic

    def bounds(key):
        """The range of ``a.<metric>``, ``b.<metric>`` and of their difference."""
        if key.startswith(("a.", "b.")):
            return task.metric_range(key[2:])
        low, high = task.metric_range(key)
        return low - high, high - low

    rows, per_pair = [], []
    for (fold, seed), pair in [*zip(pairs, read), (("pooled", "pooled"), None)]:
        evaluations = read if pair is None else [pair]
        names = pd.Index(sorted(set().union(*(e.groups["group"] for e, _ in evaluations))))
        statistic = differences(evaluations, names)
        point = statistic(np.ones(len(names)))
        over_trainings = pair is None and len(read) > 1
        found = mean_intervals(statistic, len(names), per_pair if over_trainings else [point],
                               budget.bootstrap, level, bounds)
        row = {"a": a, "b": b, "fold": fold, "seed": seed, "level": task.group,
               task.group + "s": len(names), "ci_level": level,
               "ci_over": f"{task.group}s and trainings" if over_trainings
               else f"{task.group}s"}
        if pair is not None:
            per_pair.append(point)
            ea, eb = pair
            row.update(mcnemar(ea.groups["label"] == ea.groups["prediction"],
                               eb.groups["label"] == eb.groups["prediction"]))
        elif over_trainings:
            test = found[keys[0]]
            row.update({"statistic": test["t"], "pvalue": test["pvalue"], "df": test["df"],
                        "method": "t over trainings"})
        for key in keys:
            short = key.replace(".", "_")
            row.update({f"{short}_a": point[f"a.{key}"], f"{short}_b": point[f"b.{key}"],
                        f"{short}_difference": point[key],
                        f"{short}_ci_low": found[key]["low"],
                        f"{short}_ci_high": found[key]["high"]})
        rows.append(row)
    return rows


def comparisons(task: Task, predictions_dir: str | Path) -> pd.DataFrame:
    """Every learnable-N against its same-budget control (the test of the paper's claim)
    and against static-N (the paper's comparison, which gives learnable-N more steps)."""
    rows = []
    for n in task.section.learnable.n_filters:
        for baseline in (f"static-{n}-control", f"static-{n}"):
            for row in compare_runs(task, predictions_dir, baseline, f"learnable-{n}"):
                rows.append({"comparison": "same budget" if baseline.endswith("control")
                             else "paper (unequal budget)", **row})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- tables
#: Filter movement columns of a table: summary key -> column.
FILTER_CHANGE_COLUMNS = {
    "f_max_hz": "max |Δf| (Hz)", "f_median_hz": "median |Δf| (Hz)",
    "f_max_spacing": "max |Δf| (spacings)", "f_median_spacing": "median |Δf| (spacings)",
    "b_max_rel": "max |Δb| (rel.)", "b_median_rel": "median |Δb| (rel.)",
    "a_max_rel": "max |Δa| (rel.)", "a_median_rel": "median |Δa| (rel.)"}


def _summaries(task: Task, models_dir: Path, name: str, pairs) -> list[dict]:
    out = []
    for fold, seed in pairs:
        path = models_dir / task.job(name, fold, seed) / "summary.json"
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SpectNetError(f"{path}: cannot read the run's summary ({exc})") from None
    return out


def results_table(task: Task, columns: Mapping[str, str], metrics_dir: str | Path,
                  predictions_dir: str | Path, models_dir: str | Path,
                  labels: Callable[[str], str], runs: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy results table (:func:`spectnet.reporting.tables.tidy_rows`) of every run.

    Args:
        columns: ``"<level>.<metric>"`` -> column label, in order.
        labels: run name -> the row's label.
        runs: the rows (default: the task's grid).
    """
    from spectnet.reporting.tables import tidy_rows

    metrics_dir, predictions_dir, models_dir = map(Path, (metrics_dir, predictions_dir,
                                                         models_dir))
    level = task.section.evaluation.ci_level
    rows = []
    for name in task.runs() if runs is None else runs:
        pairs = [(fold, seed) for fold in task.folds() for seed in task.seeds(name)]
        for fold, seed in pairs:
            path = metrics_dir / f"{task.job(name, fold, seed)}.json"
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise SpectNetError(f"{path}: cannot read the run's metrics ({exc})") from None
            expected = (task.dataset, fold, seed, task.params.scale)
            got = (found.get("dataset"), found.get("fold"), found.get("seed"),
                   found.get("trained_at_scale"))
            if got != expected:
                raise SpectNetError(f"{path}: evaluated a model of (data set, fold, seed, "
                                    f"scale) {got}, expected {expected}")
        evaluations = [task.read_evaluation(predictions_dir, task.job(name, f, s))
                       for f, s in pairs]
        per_eval = [task.resample_statistic([e], pd.Index(sorted(e.groups["group"])), [])(
            np.ones(len(e.groups))) for e in evaluations]
        _, intervals = task.summarise(evaluations, task.budget.bootstrap, level)
        summaries = _summaries(task, models_dir, name, pairs)
        change = [s["frontend_change"] for s in summaries if s.get("frontend_change")]
        rows += tidy_rows(
            name, labels(name),
            {column: [100 * m[key] for m in per_eval] for key, column in columns.items()},
            intervals={column: (100 * intervals[key][0], 100 * intervals[key][1])
                       for key, column in columns.items()},
            ci_level=level,
            ci_over=f"{task.group}s and trainings" if len(evaluations) > 1 else f"{task.group}s",
            paper={column: task.paper[name][key.split(".")[1]] for key, column in columns.items()
                   if key.split(".")[1] in task.paper.get(name, {})},
            dataset=task.dataset, scale=task.params.scale,
            folds=" ".join(map(str, task.folds())), seeds=" ".join(map(str, task.seeds(name))),
            **{f"{task.group}s": len(evaluations[0].groups),
               f"{task.example}s": len(evaluations[0].examples)},
            selection=task.section.selection.split, model_epoch=task.section.evaluation.model,
            batch_size=summaries[0]["stage"]["batch_size"],
            epochs=float(np.mean([s["epochs"] for s in summaries])),
            steps=float(np.mean([s["steps"] for s in summaries])),
            best_epoch=float(np.mean([s["best_epoch"] for s in summaries])),
            stopped=" ".join(sorted({s["stopped"] for s in summaries})),
            cpu_flags=" ".join(sorted({" ".join(s["machine"]["cpu_flags"]) for s in summaries})),
            threads=" ".join(sorted({str(s["machine"]["threads"]) for s in summaries})),
            cnn_precision=" ".join(sorted({summary_precision(s) for s in summaries})),
            train_minutes=float(np.mean([s["train_seconds"] for s in summaries])) / 60,
            **{column: float(np.mean([c[key] for c in change])) if change else math.nan
               for key, column in FILTER_CHANGE_COLUMNS.items()})
    return pd.DataFrame(rows)


def comparison_notes(tests: pd.DataFrame, task: Task, metric_label: str = "MAcc") -> list[str]:
    """One line per comparison for a table's notes."""
    notes = []
    key = f"{task.group}_macc"
    for row in tests.itertuples():
        pooled = row.seed == "pooled"
        where = "pooled over seeds" if pooled else (
            f"seed {row.seed}" + (f", fold {row.fold}" if len(task.folds()) > 1 else ""))
        text = (f"{row.b} vs {row.a} ({row.comparison}), {where}: {metric_label} "
                f"{100 * getattr(row, key + '_difference'):+.2f} points "
                f"[{100 * getattr(row, key + '_ci_low'):+.2f}, "
                f"{100 * getattr(row, key + '_ci_high'):+.2f}]")
        if not pooled:
            text += (f"; McNemar on {getattr(row, task.group + 's')} {task.group}s: "
                     f"{int(row.only_a)} vs {int(row.only_b)} discordant, p = {row.pvalue:.3g} "
                     f"({row.method})")
        elif row.ci_over != f"{task.group}s":  # several trainings: their spread counts
            text += (f" over {row.ci_over}; t = {row.statistic:.2f}, {row.df:.1f} df, "
                     f"p = {row.pvalue:.3g}")
        notes.append(text + ".")
    return notes


def filter_notes(table: pd.DataFrame) -> list[str]:
    """One line per run whose filters trained: how far they moved from the start of its
    stage to its kept epoch (mean over its evaluations)."""
    column = FILTER_CHANGE_COLUMNS
    moved = table.dropna(subset=[column["f_max_hz"]]).drop_duplicates("run")
    return [f"{r['run']}: filters moved |Δf| max {r[column['f_max_hz']]:.3g} Hz "
            f"({r[column['f_max_spacing']]:.3g} filter spacings), median "
            f"{r[column['f_median_hz']]:.3g} Hz ({r[column['f_median_spacing']]:.3g}); |Δb|/b max "
            f"{r[column['b_max_rel']]:.3g}, median {r[column['b_median_rel']]:.3g}; |Δa|/a max "
            f"{r[column['a_max_rel']]:.3g}, median {r[column['a_median_rel']]:.3g}."
            for _, r in moved.iterrows()]


def summary_precision(summary: Mapping[str, Any]) -> str:
    """What a run's CNN computed in (``cnn_precision``); a summary from before the key
    was recorded: float32 on the CPU (the only CPU precision then), ``"?"`` on a GPU."""
    if "cnn_precision" in summary:
        return summary["cnn_precision"]
    return "float32" if summary.get("machine", {}).get("device") == "cpu" else "?"


def machine_note(table: pd.DataFrame) -> str:
    """Where the runs trained: bit-identical numbers need the same CPU vector features,
    thread count, CNN precision and library build."""
    trained = table.dropna(subset=["cpu_flags"])
    flags = sorted(set(trained["cpu_flags"])) or ["?"]
    threads = sorted(set(trained["threads"].astype(str))) or ["?"]
    precision = (sorted(set(trained["cnn_precision"].astype(str)))
                 if "cnn_precision" in trained else []) or ["?"]
    return (f"Trained with CPU features {' / '.join(f or 'none listed' for f in flags)}, "
            f"{' / '.join(threads)} torch threads and the CNN in {' / '.join(precision)}: "
            "reruns on the same machine, threads, precision and library build give the same "
            "numbers; another CPU family, thread count or precision changes floating-point "
            "sums and so the trained weights: compare such reruns through the intervals and "
            "the seeds' spread, not digit by digit.")


def write_results_table(table: pd.DataFrame, out_prefix: str | Path, title: str,
                        notes: Sequence[str]) -> None:
    """Write ``OUT.{csv,md,tex}``, with a note on every run whose filters trained and on
    the machine the runs trained on."""
    from spectnet.reporting.tables import display_table, write_table
    write_table(table, display_table(table), out_prefix, title,
                list(notes) + filter_notes(table) + [machine_note(table)])
