"""Table II: heart-sound abnormality detection on the PhysioNet 2016 beat dataset.

The runs of the grid, by name:

- ``static-N``: SpectNet-N (front-end frozen at its initialisation) + ResNet, stage 1;
- ``learnable-N``: the same network fine-tuned end to end from ``static-N``'s selected
  model, stage 2;
- ``gammatone-1d`` / ``gammatone-2d``: four gammatone filters + the Heartnet 1D CNN or
  the 2D CNN, trained in one stage as Heartnet was.

Each run trains on ``train{fold}`` and selects its best epoch by recording-level MAcc on
``validation{fold}`` (the authors' protocol: the selection set is the reporting set,
REPRODUCTION.md A21; the last epoch is kept too). Excluded recordings are never used.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spectnet.atomic import atomic_dir, atomic_write_text
from spectnet.config import Params
from spectnet.errors import SpectNetError
from spectnet.evaluation.metrics import binary_metrics, confusion_matrix, majority_vote
from spectnet.evaluation.statistics import bootstrap_ci
from spectnet.experiments.grid import heart_sound_runs as run_names
from spectnet.experiments.runs import Run, default_device, fit_run, read_init_model, resume_dir
from spectnet.training.checkpoint import load_model
from spectnet.training.data import ExampleSet, load_examples
from spectnet.training.trainer import StageSettings, predict_proba

__all__ = ["CLASSES", "Run", "parse_run", "run_names", "model_spec", "learnable_spec",
           "stage_settings",
           "load_split", "score", "train_run", "evaluate_run", "resume_dir"]

log = logging.getLogger(__name__)

CLASSES = ("normal", "abnormal")
TASK = "physionet2016-heart-sounds"
_RUN = re.compile(r"^(?:(static|learnable)-(\d+)|gammatone-(1d|2d))$")
_LEARN = {"f": "center_frequency", "b": "bandwidth", "a": "amplitude", "n": "order"}


def parse_run(name: str, params: Params) -> Run:
    """``"static-16"`` -> ``Run("static", 16)``; raises for a name outside the grid."""
    match = _RUN.match(name)
    if not match:
        raise SpectNetError(f"unknown run {name!r}: expected static-N, learnable-N, "
                            "gammatone-1d or gammatone-2d")
    if match.group(3):
        return Run(f"gammatone-{match.group(3)}", params.heart_sounds.baselines.n_filters)
    return Run(match.group(1), int(match.group(2)))


def model_spec(run: Run, params: Params) -> dict:
    """The architecture spec of a run's model (what :func:`build_model` takes). A
    learnable run's spec is its static model's with the front-end made learnable
    (:func:`learnable_spec`)."""
    if run.kind == "learnable":
        raise ValueError("a learnable run's model comes from its static model: use learnable_spec")
    heart = params.heart_sounds
    frontend = heart.frontend
    dropout = params.active_scale.heart_sounds.dropout  # None: the paper's, per model
    common = {"n_samples": params.beats.beat_length, "sample_rate": params.preprocess.sample_rate,
              "n_classes": len(CLASSES)}
    filters = {"n_filters": run.n_filters, "f_min": frontend.f_min, "f_max": frontend.f_max,
               "kernel_size": frontend.kernel_size, "init": frontend.init}
    if run.kind.startswith("gammatone"):
        learnable = ["f", "b", "a"] if heart.baselines.learnable_filters else []
        return {"architecture": f"gammatone-heartnet{run.kind[-2:]}", **common,
                "frontend": {**filters, "bandwidth": heart.baselines.bandwidth,
                             "amplitude": heart.baselines.amplitude,
                             "learnable": [_LEARN[p] for p in learnable]},
                "cnn": {"dropout": heart.baselines.dropout if dropout is None else dropout}}
    return {"architecture": "spectnet-resnet", **common,
            "frontend": {**filters, "win_length": frontend.win_length,
                         "hop_length": frontend.hop_length,
                         # parameters (frozen in stage 1), so stage 2 loads the same state dict
                         "learnable": [_LEARN[p] for p in ("f", "b", "a")]},
            "cnn": {"dropout": heart.resnet.dropout if dropout is None else dropout,
                    "quirks": heart.resnet.quirks}}


def learnable_spec(static_spec: dict, params: Params) -> dict:
    """The spec of ``learnable-N``: ``static-N``'s, with ``heart_sounds.learnable.learn``
    as the front-end's learnable parameters."""
    if static_spec.get("architecture") != "spectnet-resnet":
        raise SpectNetError(f"a learnable run fine-tunes a spectnet-resnet model, not "
                            f"{static_spec.get('architecture')!r}")
    return {**static_spec, "frontend": {**static_spec["frontend"], "learnable": [
        _LEARN[p] for p in params.heart_sounds.learnable.learn]}}


def stage_settings(run: Run, params: Params, device: torch.device | None = None) -> StageSettings:
    """How a run trains, from the parameters and the active scale."""
    heart, budgets = params.heart_sounds, params.active_scale.heart_sounds
    cpu = (device or torch.device("cpu")).type == "cpu"
    if run.kind == "static":
        budget = budgets.static
        return StageSettings(
            budget.epochs, budget.batch_size, budget.steps_per_epoch, heart.sampler, "adam",
            heart.static.lr, lr_schedule="constant" if heart.static.lr_decay == 1 else "exponential",
            lr_decay=heart.static.lr_decay, channels_last=cpu)
    if run.kind == "learnable":
        budget = budgets.learnable
        if heart.learnable.variant == "s2_code":
            # the authors' code (REPRODUCTION.md §4.2): SGD, two learning rates, micro-batches
            # of 100 (8 per cell -> 96) with gradients accumulated over 10 of them
            return StageSettings(budget.epochs, 100, budget.steps_per_epoch, heart.sampler,
                                 "sgd", 0.005, frontend_lr=0.1, accumulate=10,
                                 train_frontend=True, channels_last=cpu)
        return StageSettings(budget.epochs, budget.batch_size, budget.steps_per_epoch,
                             heart.sampler, "adam", heart.learnable.lr,
                             frontend_lr=heart.learnable.frontend_lr, train_frontend=True,
                             channels_last=cpu)
    budget, base = budgets.baselines, heart.baselines
    return StageSettings(
        budget.epochs, budget.batch_size, budget.steps_per_epoch, heart.sampler, "adam", base.lr,
        weight_decay=2 * base.l2,  # Keras adds l2 * w^2 to the loss: gradient 2 * l2 * w
        lr_schedule="inverse_time", lr_decay=base.lr_decay * budget.batch_size / 64,
        train_frontend=base.learnable_filters, channels_last=cpu and run.kind == "gammatone-2d")


def load_split(beats_dir: str | Path, fold: int, split: str,
               device: torch.device | str | None = None) -> ExampleSet:
    """The beats of ``train{fold}`` or ``validation{fold}``, excluded recordings left out."""
    column = f"{split}{fold}"

    def mask(index: pd.DataFrame):
        if column not in index:
            raise SpectNetError(f"{beats_dir}: the beat index has no column {column!r}")
        return (index[column] == 1) & (index["excluded"] == 0)

    return load_examples(beats_dir, "beats.npy", "beats.csv", mask, classes=CLASSES,
                         domain_column="subset", group_column="record", device=device)


def score(probabilities: np.ndarray, examples: ExampleSet) -> dict[str, float]:
    """Validation metrics: beat accuracy and loss, recording-level majority-vote metrics."""
    labels = examples.labels.cpu().numpy()
    predictions = probabilities.argmax(1)
    recordings = majority_vote(examples.groups, labels, predictions)
    metrics = binary_metrics(recordings["label"], recordings["prediction"])
    true_class = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)
    return {"loss": float(-np.log(true_class).mean()),
            "accuracy": float((predictions == labels).mean()),
            "recording_accuracy": metrics["accuracy"],
            **{k: metrics[k] for k in ("sensitivity", "specificity", "precision", "f1", "macc")}}


def _task_info(params: Params, run: Run, seed: int) -> dict:
    """What a model file needs besides weights to classify a new recording."""
    return {"task": TASK, "classes": list(CLASSES), "run": run.name, "seed": seed,
            "scale": params.scale, "preprocess": params.preprocess.to_dict(),
            "segmentation": {"emulate_underflow": params.segmentation.emulate_underflow},
            "beats": params.beats.to_dict()}


def train_run(name: str, seed: int, params: Params, beats_dir: str | Path,
              out_dir: str | Path, init_model: str | Path | None = None,
              device: torch.device | str | None = None, progress: bool = True) -> dict:
    """Train one run of the grid and write its directory.

    ``out_dir`` gets ``best.pt`` and ``last.pt`` (self-describing model files),
    ``history.csv`` (one row per epoch), ``frontend.csv`` (the filters' parameters per
    epoch), ``summary.json`` and ``dvclive/``; it is written atomically when the run ends.
    An interrupted run resumes from :func:`resume_dir`.

    Args:
        init_model: for ``learnable-N``, the ``static-N`` model file to start from.
    """
    run = parse_run(name, params)
    device = default_device(device)
    init_info = read_init_model(run.name, f"static-{run.n_filters}"
                                if run.kind == "learnable" else None, init_model)
    spec = learnable_spec(init_info["spec"], params) if init_info else model_spec(run, params)
    stage = stage_settings(run, params, device)
    train = load_split(beats_dir, params.heart_sounds.fold, "train", device)
    validation = load_split(beats_dir, params.heart_sounds.fold, "validation", device)
    log.info("%s seed %d (%s scale): %d training beats, %d validation beats of %d recordings, "
             "%s", run.name, seed, params.scale, len(train), len(validation),
             len(set(validation.groups)), device)
    return fit_run(spec, stage, train, validation, score, seed=seed, out_dir=out_dir,
                   info=_task_info(params, run, seed), init=init_info, init_model=init_model,
                   run_settings={"fold": params.heart_sounds.fold},
                   summary={"validation_beats": len(validation),
                            "validation_recordings": int(len(set(validation.groups)))},
                   progress=progress)


def evaluate_run(model_path: str | Path, beats_dir: str | Path, out_dir: str | Path,
                 metrics_path: str | Path, params: Params,
                 device: torch.device | str | None = None) -> dict:
    """Evaluate a trained model on ``validation{fold}`` and write the results.

    ``out_dir`` gets the predictions: ``beats.csv`` (every validation beat: record,
    subset, label, probability of abnormal, prediction) and ``recordings.csv`` (majority
    vote per recording). ``metrics_path`` (JSON) gets beat accuracy and recording-level
    metrics with bootstrap intervals over recordings, per-subset metrics and confusion
    matrices.
    """
    model, info = load_model(model_path, default_device(device))
    heart = params.heart_sounds
    validation = load_split(beats_dir, heart.fold, "validation",
                            next(model.parameters()).device)
    torch.manual_seed(info.get("seed", 0))  # eval-time dropout (quirks) draws from it
    probabilities = predict_proba(model, validation)
    labels = validation.labels.cpu().numpy()
    predictions = probabilities.argmax(1)
    index = validation.index
    beats = pd.DataFrame({"record": validation.groups, "beat": index["beat"],
                          "subset": index["subset"], "label": labels,
                          "p_abnormal": probabilities[:, 1], "prediction": predictions})
    recordings = majority_vote(beats["record"], labels, predictions).rename(
        columns={"group": "record"})
    recordings.insert(1, "subset", recordings["record"].map(
        beats.drop_duplicates("record").set_index("record")["subset"]))

    y_rec, p_rec = recordings["label"].to_numpy(), recordings["prediction"].to_numpy()
    n_beats, n_correct = recordings["n_beats"].to_numpy(), recordings["n_correct"].to_numpy()

    def statistic(weights: np.ndarray) -> dict[str, float]:
        metrics = binary_metrics(y_rec, p_rec, weights)
        beat_accuracy = float(weights @ n_correct / (weights @ n_beats))
        return {"beat_accuracy": beat_accuracy, **{k: metrics[k] for k in (
            "accuracy", "sensitivity", "specificity", "precision", "f1", "macc")}}

    point = statistic(np.ones(len(recordings)))
    intervals = bootstrap_ci(statistic, len(recordings),
                             params.active_scale.heart_sounds.bootstrap, heart.evaluation.ci_level,
                             seed=info.get("seed", 0))
    per_subset = {}
    for subset, group in recordings.groupby("subset"):
        rows = binary_metrics(group["label"], group["prediction"])
        per_subset[subset] = {"recordings": int(len(group)), "beats": int(group["n_beats"].sum()),
                              "beat_accuracy": float(group["n_correct"].sum() / group["n_beats"].sum()),
                              **{k: rows[k] for k in ("accuracy", "sensitivity", "specificity", "macc")}}
    metrics = {
        "run": info.get("run"), "seed": info.get("seed"), "scale": params.scale,
        "trained_at_scale": info.get("scale"), "model": Path(model_path).name,
        "epoch": info.get("epoch"), "fold": heart.fold,
        "recordings": int(len(recordings)), "beats": int(len(beats)),
        "metrics": point, "ci_level": heart.evaluation.ci_level,
        "ci": {k: list(v) for k, v in intervals.items()},
        "per_subset": per_subset,
        "confusion": {"beats": confusion_matrix(labels, predictions, 2).tolist(),
                      "recordings": confusion_matrix(y_rec, p_rec, 2).tolist()},
    }
    with atomic_dir(out_dir) as tmp:
        beats.to_csv(tmp / "beats.csv", index=False)
        recordings.to_csv(tmp / "recordings.csv", index=False)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return metrics


# ------------------------------------------------------------------------------- Table II
#: Table II of the paper (REPRODUCTION.md §7; fold 0, 284 recordings): percentages.
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
#: Table II's columns: our metric name -> the paper's column.
TABLE_II_METRICS = {"accuracy": "Acc (beat)", "f1": "F1", "macc": "MAcc",
                    "sensitivity": "Se", "specificity": "Sp", "precision": "Prec"}


def run_label(name: str) -> str:
    """The paper's row name of a run."""
    if name.startswith("gammatone"):
        return f"Gammatone {name[-2:].upper()}-CNN"
    kind, n = name.split("-")
    return f"{kind.capitalize()} SpectNet-{n} + ResNet"


def _recording_metrics(recordings: list[pd.DataFrame], weights: np.ndarray) -> dict[str, float]:
    """Table II's metrics of a resample, averaged over seeds: beat accuracy (beats of the
    drawn recordings) and recording-level metrics of the majority vote."""
    rows = []
    for rec in recordings:
        m = binary_metrics(rec["label"], rec["prediction"], weights)
        m["accuracy"] = float(weights @ rec["n_correct"] / (weights @ rec["n_beats"]))
        rows.append({k: m[k] for k in TABLE_II_METRICS})
    return pd.DataFrame(rows).mean().to_dict()


def table_ii(predictions_dir: str | Path, models_dir: str | Path, params: Params) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """Our Table II beside the paper's.

    For every run: each metric's mean and sd over seeds, a bootstrap interval of the
    seed-averaged metric (recordings resampled jointly for all seeds), the paper's value
    and the difference, plus how the run was trained. And McNemar's test of static-N
    against learnable-N for every learnable N and seed, at beat and recording level.

    Returns:
        ``(table, mcnemar)``: one row per run and metric (tidy), one row per comparison.
    """
    from spectnet.evaluation.statistics import mcnemar
    from spectnet.reporting.tables import tidy_rows

    predictions_dir, models_dir = Path(predictions_dir), Path(models_dir)
    seeds = params.active_scale.seeds
    rows, tests = [], []
    for name in run_names(params):
        recordings = [pd.read_csv(predictions_dir / name / f"seed{s}" / "recordings.csv",
                                  dtype={"record": str}).sort_values("record",
                                                                     ignore_index=True)
                      for s in seeds]
        if any(not r["record"].equals(recordings[0]["record"]) for r in recordings):
            raise SpectNetError(f"{name}: the seeds were evaluated on different recordings")
        per_seed = [_recording_metrics([r], np.ones(len(r))) for r in recordings]
        intervals = bootstrap_ci(lambda w: _recording_metrics(recordings, w),
                                 len(recordings[0]), params.active_scale.heart_sounds.bootstrap,
                                 params.heart_sounds.evaluation.ci_level, seed=0)
        summaries = [json.loads((models_dir / name / f"seed{s}" / "summary.json").read_text())
                     for s in seeds]
        rows += tidy_rows(
            name, run_label(name),
            {column: [100 * m[metric] for m in per_seed]
             for metric, column in TABLE_II_METRICS.items()},
            intervals={column: (100 * intervals[metric][0], 100 * intervals[metric][1])
                       for metric, column in TABLE_II_METRICS.items()},
            ci_level=params.heart_sounds.evaluation.ci_level,
            paper={column: PAPER_TABLE_II[name][metric]
                   for metric, column in TABLE_II_METRICS.items() if name in PAPER_TABLE_II},
            seeds=len(seeds), recordings=len(recordings[0]),
            beats=int(recordings[0]["n_beats"].sum()), scale=params.scale,
            epochs=float(np.mean([s["epochs"] for s in summaries])),
            best_epoch=float(np.mean([s["best_epoch"] for s in summaries])),
            last_epoch_macc=100 * float(np.mean([s["last"]["macc"] for s in summaries])),
            train_minutes=float(np.mean([s["train_seconds"] for s in summaries])) / 60)
    for n in params.heart_sounds.learnable_filters:
        for seed in seeds:
            runs = [predictions_dir / f"{kind}-{n}" / f"seed{seed}" for kind in ("static", "learnable")]
            beats = [pd.read_csv(d / "beats.csv", dtype={"record": str}).sort_values(
                ["record", "beat"], ignore_index=True) for d in runs]
            recs = [pd.read_csv(d / "recordings.csv", dtype={"record": str}).sort_values(
                "record", ignore_index=True) for d in runs]
            for level, (a, b) in (("beat", beats), ("recording", recs)):
                test = mcnemar(a["label"] == a["prediction"], b["label"] == b["prediction"])
                tests.append({"a": f"static-{n}", "b": f"learnable-{n}", "seed": seed,
                              "level": level, "items": len(a), **test})
    return pd.DataFrame(rows), pd.DataFrame(tests)


def write_table_ii(predictions_dir: str | Path, models_dir: str | Path, out_prefix: str | Path,
                   params: Params) -> pd.DataFrame:
    """Compute Table II and write ``out_prefix.{csv,md,tex}`` plus the McNemar tests as
    ``out_prefix-mcnemar.csv``. Returns the tidy table."""
    from spectnet.reporting.tables import display_table, write_table

    table, tests = table_ii(predictions_dir, models_dir, params)
    seeds = params.active_scale.seeds
    first = table.iloc[0]
    notes = [
        f"Ours: {params.scale} scale, seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))} (mean ± sd over seeds where more than one); "
        f"{first['recordings']} validation{params.heart_sounds.fold} recordings "
        f"({first['beats']} beats); the paper evaluated 284 recordings (REPRODUCTION.md A12).",
        f"Model: the {params.heart_sounds.evaluation.model} epoch of each run"
        + (" (highest validation MAcc; the authors selected on the reporting fold, A21)"
           if params.heart_sounds.evaluation.model == "best" else "") + ".",
        "Acc is beat-level; F1, MAcc, Se, Sp and Prec are recording-level (majority vote, "
        "ties to abnormal), in %. CI: percentile bootstrap over recordings.",
    ]
    for row in tests.itertuples():
        notes.append(f"McNemar {row.a} vs {row.b}, seed {row.seed}, {row.level} level "
                     f"({row.items} items): {row.only_a} vs {row.only_b} discordant, "
                     f"p = {row.pvalue:.3g} ({row.method}).")
    title = f"Table II: heart-sound abnormality detection, PhysioNet 2016 fold {params.heart_sounds.fold}"
    write_table(table, display_table(table), out_prefix, title, notes)
    atomic_write_text(Path(f"{out_prefix}-mcnemar.csv"), tests.to_csv(index=False))
    return table
