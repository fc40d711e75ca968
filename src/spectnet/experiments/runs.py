"""What the experiments' training runs share: the device, the model a stage-2 run starts
from, training one stage resumably, and writing the finished run's directory.

A run directory holds ``best.pt`` and ``last.pt`` (self-describing model files),
``history.csv`` (one row per epoch), ``frontend.csv`` (the filters' parameters per
epoch), ``summary.json`` and ``dvclive/``. It appears atomically when the run ends; until
then the run's resume checkpoint lives in a hidden sibling (:func:`resume_dir`), which a
workflow manager does not delete when the job fails or is killed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch

from spectnet.atomic import atomic_dir, remove_path
from spectnet.errors import SpectNetError
from spectnet.models import build_model
from spectnet.training.checkpoint import read_model_file, save_model
from spectnet.training.data import ExampleSet
from spectnet.training.trainer import StageSettings, train_stage

__all__ = ["Run", "default_device", "resume_dir", "read_init_model", "fit_run"]


@dataclass(frozen=True)
class Run:
    """One configuration of an experiment's grid: ``kind`` is ``static``, ``learnable``
    (SpectNet-N, ``n_filters`` = N) or a named baseline (``gammatone-1d``)."""
    kind: str
    n_filters: int

    @property
    def name(self) -> str:
        return self.kind if self.kind.startswith("gammatone") else f"{self.kind}-{self.n_filters}"


def default_device(device: torch.device | str | None = None) -> torch.device:
    """``device``, or CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resume_dir(out_dir: str | Path) -> Path:
    """Where a run keeps its resume checkpoint until it finishes: a hidden sibling of the
    output (Snakemake removes a failed job's outputs, never this)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.resume"


def read_init_model(run_name: str, static_name: str | None,
                    init_model: str | Path | None) -> dict | None:
    """The model file a stage-2 run fine-tunes, checked to be ``static_name``'s.

    Args:
        run_name: the run being trained.
        static_name: the run it must start from; ``None``: it trains from scratch and
            takes no initial model.
        init_model: the model file given (``--init``).

    Returns:
        The file's contents (:func:`~spectnet.training.checkpoint.read_model_file`), or
        ``None`` for a run from scratch.
    """
    if static_name is None:
        if init_model is not None:
            raise SpectNetError(f"{run_name} trains from scratch; --init is only for "
                                "learnable runs")
        return None
    if init_model is None:
        raise SpectNetError(f"{run_name} is fine-tuned from {static_name}: give its model "
                            "file (--init)")
    info = read_model_file(init_model)
    if info.get("run") != static_name:
        raise SpectNetError(f"{init_model}: {run_name} fine-tunes {static_name}, but this "
                            f"model is {info.get('run')!r}")
    return info


def fit_run(spec: Mapping[str, Any], stage: StageSettings, train: ExampleSet,
            validation: ExampleSet, score: Callable, *, seed: int, out_dir: str | Path,
            info: Mapping[str, Any], init: Mapping[str, Any] | None = None,
            init_model: str | Path | None = None,
            run_settings: Mapping[str, Any] | None = None,
            summary: Mapping[str, Any] | None = None, progress: bool = True) -> dict:
    """Build the model, train one stage (resuming an interrupted run) and write the run
    directory.

    Args:
        spec: the model's architecture spec.
        stage, train, validation, score: see :func:`~spectnet.training.trainer.train_stage`.
        seed: seeds the initialisation and the training.
        out_dir: the run directory to write.
        info: what the model files record besides the weights (task, classes, ``run``,
            ``seed``, ``scale``, input settings).
        init: the contents of the model file to start from (stage 2), ``init_model`` its path.
        run_settings: what else defines the run (its data split): part of the resume
            checkpoint's fingerprint.
        summary: task-specific entries of ``summary.json``.

    Returns:
        The run's summary (``summary.json``).
    """
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = build_model(spec)
    if init is not None:
        model.load_state_dict(init["state_dict"])
    work = resume_dir(out_dir)
    result = train_stage(
        model, stage, train, validation, score, seed=seed, work_dir=work,
        run_settings={"spec": dict(spec), "init": str(init_model) if init_model else None,
                      "init_epoch": init.get("epoch") if init else None,
                      **(run_settings or {})},
        progress=progress, live_dir=work / "dvclive")
    summary = {**{k: info[k] for k in ("run", "seed", "scale")},
               "epochs": len(result.history), "best_epoch": result.best_epoch,
               "best": result.best, "last": result.history[-1], "train_examples": len(train),
               **(summary or {}),
               "initialised_from": str(init_model) if init_model else None,
               "train_seconds": float(sum(r["train_seconds"] for r in result.history)),
               "stage": stage.__dict__}
    with atomic_dir(out_dir) as tmp:
        for file, state, epoch in (("best.pt", result.best_state, result.best_epoch),
                                   ("last.pt", result.last_state, len(result.history))):
            model.load_state_dict(state)
            save_model(tmp / file, model, spec, **info, epoch=epoch,
                       validation=result.history[epoch - 1])
        pd.DataFrame(result.history).to_csv(tmp / "history.csv", index=False)
        pd.DataFrame(result.frontend_trace).to_csv(tmp / "frontend.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if (work / "dvclive").exists():
            (work / "dvclive").rename(tmp / "dvclive")
    remove_path(work)
    return summary
