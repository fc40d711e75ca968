"""The one trainer: a training stage of any front-end + CNN classifier, resumable.

A stage trains the CNN with the front-end frozen (stage 1, "static") or the whole model
with a separate learning rate for the front-end (stage 2, "learnable"). Every epoch ends
with an evaluation on the selection set (a record-disjoint inner split of the training
fold, or the authors' reporting fold), a score (the task's metrics; the stage's
``select_metric`` picks the best epoch), an early-stopping check (``patience``) and an
atomic resume checkpoint. The learning rate is set every optimiser step: a linear warm-up
over ``warmup_steps``, times the schedule. A run killed at
any point, SIGKILL included, and started again with the same settings continues from
the last completed epoch and ends with exactly the weights and metrics of an
uninterrupted run: model, optimiser, scheduler, sampler and every RNG are restored, and
the per-epoch logs (DVCLive) are rebuilt from the checkpointed history.

On CUDA the CNN runs under autocast (bfloat16 where supported, else float16 with loss
scaling) while the front-end computes in float32 (it disables autocast itself). On the
CPU the CNN computes in float32 unless the stage's ``cpu_autocast`` (params.yaml's
``cpu_autocast``) asks for bfloat16: ``bf16`` always, ``auto`` where the CPU has native
bf16 (:func:`spectnet.runtime.native_bf16`). Evaluation runs a model in the precision it
trained in.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spectnet.errors import SpectNetError
from spectnet.runtime import native_bf16
from spectnet.training.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from spectnet.training.data import ExampleSet
from spectnet.training.samplers import make_sampler

__all__ = ["StageSettings", "TrainResult", "train_stage", "in_memory_format", "predict_proba",
           "filterbank_of", "CPU_AUTOCAST", "resolve_cpu_autocast", "cnn_precision",
           "autocast_for", "class_probabilities", "lr_factor"]

log = logging.getLogger(__name__)

#: A task's scoring function: (class probabilities (N, C), the examples) -> metrics.
Scorer = Callable[[np.ndarray, ExampleSet], dict[str, float]]

#: The values of ``cpu_autocast`` (params.yaml): the CNN's precision on the CPU.
CPU_AUTOCAST = ("float32", "bf16", "auto")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StageSettings:
    """How one training stage runs.

    Attributes:
        epochs: epochs to train.
        batch_size: examples per batch (the double-balanced sampler rounds it down to a
            multiple of its cell count: 1000 -> 996).
        steps_per_epoch: batches per epoch; ``None``: the sampler's own epoch (one pass
            over the largest (class, domain) cell, or over all examples when shuffled).
        sampler: ``"double_balanced"`` or ``"shuffled"``.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: learning rate of the CNN.
        frontend_lr: learning rate of the front-end (``None``: ``lr``).
        momentum: SGD momentum.
        weight_decay: L2 penalty on the CNN's convolution kernels, added to the gradient
            as Keras' ``kernel_regularizer`` does (the penalty 0.0486 w^2 is 0.0972 here).
        lr_schedule: ``"constant"``, ``"exponential"`` (``lr * lr_decay ** epoch``) or
            ``"inverse_time"`` (``lr / (1 + lr_decay * step)``, per optimiser step; Keras
            ``decay``).
        lr_decay: the schedule's rate.
        warmup_steps: optimiser steps of linear learning-rate warm-up (from lr / warmup_steps
            to lr); 0 = none. Adam's first steps at full rate kill most of the ResNet's
            dense head (docs/deviations.md).
        patience: stop after this many epochs without a new best ``select_metric``;
            ``None`` = train every epoch of the budget.
        accumulate: micro-batches per optimiser step (gradient accumulation).
        train_frontend: train the front-end's learnable parameters (stage 2).
        select_metric: the validation score that picks the best epoch (higher is better).
        eval_batch_size: examples per evaluation batch.
        channels_last: run the CNN in channels-last memory format (faster 2D convolutions
            on CPU); no effect on results.
        cache_frontend: with the front-end frozen, compute its features of every example
            once and train the CNN on them (``model.features``): worth it where the
            front-end is a large share of a step (the scene models); the same model up to
            float rounding (the front-end's path may depend on the batch size).
        cpu_autocast: the CNN's precision when the stage runs on the CPU (:data:`CPU_AUTOCAST`):
            ``"float32"`` (no autocast), ``"bf16"`` (autocast to bfloat16) or ``"auto"``
            (bf16 where the CPU has native bf16, else float32). No effect on CUDA, where
            the CNN always runs under autocast (:func:`autocast_for`).
    """

    epochs: int
    batch_size: int
    steps_per_epoch: int | None = None
    sampler: str = "double_balanced"
    optimizer: str = "adam"
    lr: float = 1e-3
    frontend_lr: float | None = None
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_decay: float = 0.0
    warmup_steps: int = 0
    patience: int | None = None
    accumulate: int = 1
    train_frontend: bool = False
    select_metric: str = "macc"
    eval_batch_size: int = 512
    channels_last: bool = False
    cache_frontend: bool = False
    cpu_autocast: str = "float32"

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            problems.append("epochs, batch_size and accumulate must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            problems.append("steps_per_epoch must be >= 1 or None")
        if self.warmup_steps < 0:
            problems.append("warmup_steps must be >= 0")
        if self.patience is not None and self.patience < 1:
            problems.append("patience must be >= 1 or None")
        if self.optimizer not in ("adam", "sgd"):
            problems.append(f"unknown optimizer {self.optimizer!r} (adam | sgd)")
        if self.lr_schedule not in ("constant", "exponential", "inverse_time"):
            problems.append(f"unknown lr_schedule {self.lr_schedule!r}")
        if not (self.lr > 0 and (self.frontend_lr is None or self.frontend_lr > 0)):
            problems.append("learning rates must be > 0")
        if self.cpu_autocast not in CPU_AUTOCAST:
            problems.append(f"unknown cpu_autocast {self.cpu_autocast!r} "
                            f"({' | '.join(CPU_AUTOCAST)})")
        if problems:
            raise ValueError("invalid training stage: " + "; ".join(problems))


@dataclass
class TrainResult:
    """What a finished stage returns. ``history`` has one record per epoch; ``stopped``
    says why training ended: ``"budget"`` (every epoch ran) or ``"patience"`` (the
    selection metric stopped improving); ``precision`` what the CNN computed in
    (:func:`cnn_precision`)."""
    history: list[dict[str, float]]
    best_epoch: int
    best_state: dict[str, Tensor]
    last_state: dict[str, Tensor]
    frontend_trace: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "budget"
    precision: str = "float32"

    @property
    def best(self) -> dict[str, float]:
        return self.history[self.best_epoch - 1]


def filterbank_of(model: nn.Module):
    """The :class:`~spectnet.frontend.GammatoneFilterbank` inside a model (or ``None``)."""
    frontend = getattr(model, "frontend", None)
    return getattr(frontend, "filterbank", frontend)


def class_probabilities(model: nn.Module, outputs: Tensor) -> Tensor:
    """Class probabilities from a model's outputs: softmax of the logits, or the outputs
    themselves for a model that already applies a softmax (the authors' ``quirks``)."""
    cnn = getattr(model, "cnn", model)
    return outputs.float() if getattr(cnn, "quirks", False) else torch.softmax(outputs.float(), 1)


def resolve_cpu_autocast(cpu_autocast: str = "float32") -> str:
    """``"float32"`` or ``"bf16"``: a ``cpu_autocast`` setting (:data:`CPU_AUTOCAST`) on
    this machine; ``"auto"`` is ``"bf16"`` where the CPU has native bf16
    (:func:`spectnet.runtime.native_bf16`: avx512_bf16 or amx_bf16), else ``"float32"``
    (a CPU without it emulates bf16, ten times slower: bench/train.py)."""
    if cpu_autocast not in CPU_AUTOCAST:
        raise ValueError(f"unknown cpu_autocast {cpu_autocast!r} ({' | '.join(CPU_AUTOCAST)})")
    if cpu_autocast == "auto":
        return "bf16" if native_bf16() else "float32"
    return cpu_autocast


def cnn_precision(device: torch.device, cpu_autocast: str = "float32") -> str:
    """What the CNN computes in on ``device``: ``"bf16"`` (else ``"fp16"``) on CUDA, on
    the CPU the resolved ``cpu_autocast`` (:func:`resolve_cpu_autocast`), ``"float32"``
    elsewhere. Recorded in every run's summary."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    resolved = resolve_cpu_autocast(cpu_autocast)
    return resolved if device.type == "cpu" else "float32"


def autocast_for(device: torch.device, cpu_autocast: str = "float32"):
    """The CNN's autocast on ``device``: bfloat16 (else float16) on CUDA whatever
    ``cpu_autocast`` says; on the CPU bfloat16 where ``cpu_autocast`` resolves to
    ``"bf16"`` (:func:`resolve_cpu_autocast`), else off (float32, the default). The
    front-end disables autocast itself, so it computes in float32 either way."""
    precision = cnn_precision(device, cpu_autocast)
    if precision == "float32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=_DTYPES[precision])


class _OnFeatures(nn.Module):
    """A model's CNN alone, for examples that already hold the front-end's features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.cnn = model.cnn

    def forward(self, features: Tensor) -> Tensor:
        return self.cnn(features)


def _chunks(n: int, size: int) -> Iterator[Tensor]:
    """Indices ``0 .. n-1`` in consecutive batches of ``size`` (the last one shorter)."""
    return (torch.arange(start, min(start + size, n)) for start in range(0, n, size))


@torch.no_grad()
def _features(model: nn.Module, examples: ExampleSet, batch_size: int) -> ExampleSet:
    """The examples with their waveforms replaced by ``model.features`` (in memory)."""
    parts = [model.features(x) for x, _ in examples.batches(_chunks(len(examples), batch_size))]
    return ExampleSet(torch.cat(parts), examples.labels, examples.domains, examples.groups,
                      examples.classes, examples.domain_names, examples.index)


def in_memory_format(model: nn.Module, stage: StageSettings) -> nn.Module:
    """Put ``model``'s 2-D CNN (``model.cnn``) in the memory format ``stage`` trains it in:
    channels-last where ``stage.channels_last`` (faster 2-D convolutions on CPU; the
    values change only by float rounding). Evaluation calls it too, to run a model as it
    was trained."""
    if stage.channels_last and hasattr(model, "cnn"):
        model.cnn.to(memory_format=torch.channels_last)
    return model


@torch.no_grad()
def predict_proba(model: nn.Module, examples: ExampleSet, batch_size: int = 512,
                  cpu_autocast: str = "float32") -> np.ndarray:
    """``(N, C)`` class probabilities of every example, the model in evaluation mode, the
    CNN under :func:`autocast_for` (``cpu_autocast``: its precision on the CPU; give the
    one the model trained with)."""
    was_training = model.training
    model.eval()
    out = []
    for x, _ in examples.batches(_chunks(len(examples), batch_size)):
        with autocast_for(x.device, cpu_autocast):
            out.append(class_probabilities(model, model(x)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def _param_groups(model: nn.Module, stage: StageSettings) -> list[dict]:
    frontend = getattr(model, "frontend", None)
    frontend_params = set(map(id, frontend.parameters())) if frontend is not None else set()
    decayed, plain = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in frontend_params or not p.requires_grad:
                continue
            is_kernel = name == "weight" and isinstance(module, nn.modules.conv._ConvNd)
            (decayed if is_kernel and stage.weight_decay else plain).append(p)
    groups = [{"params": plain, "weight_decay": 0.0}]
    if decayed:
        groups.append({"params": decayed, "weight_decay": stage.weight_decay})
    if stage.train_frontend:
        learnable = [p for p in frontend.parameters() if p.requires_grad]
        if not learnable:
            raise SpectNetError("train_frontend is set but the front-end has no learnable parameters")
        groups.append({"params": learnable, "weight_decay": 0.0,
                       "lr": stage.frontend_lr or stage.lr})
    return groups


def _optimizer(model: nn.Module, stage: StageSettings) -> torch.optim.Optimizer:
    groups = _param_groups(model, stage)
    if stage.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage.lr)
    return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum)


def lr_factor(stage: StageSettings, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate multiplier after ``step`` optimiser steps: linear warm-up times
    the schedule (exponential decays once per epoch of ``steps_per_epoch`` batches).

    Example:
        >>> factor = lr_factor(StageSettings(2, 8, warmup_steps=4), steps_per_epoch=10)
        >>> [factor(s) for s in (0, 1, 3, 4, 9)]
        [0.25, 0.5, 1.0, 1.0, 1.0]
    """
    warmup, decay = stage.warmup_steps, stage.lr_decay
    per_epoch = -(-steps_per_epoch // stage.accumulate)  # the last micro-batch of an epoch steps too

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        if stage.lr_schedule == "exponential":
            return ramp * decay ** (step // per_epoch)
        if stage.lr_schedule == "inverse_time":
            return ramp / (1.0 + decay * step)
        return ramp

    return factor


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _frontend_snapshot(model: nn.Module, epoch: int) -> list[dict[str, Any]]:
    bank = filterbank_of(model)
    if bank is None or not hasattr(bank, "center_frequency"):
        return []
    with torch.no_grad():
        values = {name: getattr(bank, name).detach().cpu().double().tolist()
                  for name in ("center_frequency", "bandwidth", "amplitude", "order")}
    return [{"epoch": epoch, "filter": i, **{k: v[i] for k, v in values.items()}}
            for i in range(bank.n_filters)]


class _Live:
    """Per-epoch logs through DVCLive, rebuilt from the history on resume."""

    def __init__(self, directory: Path | None) -> None:
        self.live = None
        if directory is not None:
            os.environ.setdefault("DVC_NO_ANALYTICS", "1")
            from dvclive import Live
            self.live = Live(str(directory), save_dvc_exp=False, dvcyaml=False)

    def log(self, record: Mapping[str, float], trace: list[dict[str, Any]]) -> None:
        if self.live is None:
            return
        for name, value in record.items():
            if name != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.live.log_metric(name, value)
        for row in trace:
            for key in ("center_frequency", "bandwidth", "amplitude"):
                self.live.log_metric(f"frontend/{key}/filter{row['filter']:03d}", row[key])
        self.live.next_step()

    def end(self) -> None:
        if self.live is not None:
            self.live.end()


def train_stage(model: nn.Module, stage: StageSettings, train: ExampleSet,
                validation: ExampleSet, score: Scorer, *, seed: int, work_dir: str | Path,
                run_settings: Mapping[str, Any] | None = None, progress: bool = True,
                live_dir: str | Path | None = None) -> TrainResult:
    """Train ``model`` for one stage, resuming from ``work_dir`` when it holds a checkpoint
    of the same run.

    Args:
        model: a front-end + CNN classifier with a ``frontend`` attribute, already
            initialised (weights seeded, or loaded from the previous stage).
        stage: the stage's settings.
        train, validation: example sets on the device to train on.
        score: the task's metrics of the validation predictions; must contain
            ``stage.select_metric``.
        seed: seeds the sampler and every RNG the step uses (dropout).
        work_dir: where the resume checkpoint lives while the run is in progress.
        run_settings: everything else that defines the run (model spec, data, task
            settings); with the stage and the seed it forms the checkpoint's fingerprint.
        live_dir: DVCLive output directory (``None``: no DVCLive logs).

    Returns:
        :class:`TrainResult` with the per-epoch history, the best epoch (highest
        ``select_metric``; the earliest on ties) and the best and last weights.
    """
    from tqdm import tqdm

    device = train.device
    work_dir = Path(work_dir)
    checkpoint_path = work_dir / "checkpoint.pt"
    # "auto" resolved once, here: every step and evaluation of the run uses the same
    cpu_autocast = resolve_cpu_autocast(stage.cpu_autocast)
    precision = cnn_precision(device, cpu_autocast)
    run_id = fingerprint({"stage": {**asdict(stage), "cpu_autocast": cpu_autocast},
                          "seed": seed, "run": dict(run_settings or {}),
                          "n_train": len(train), "n_validation": len(validation)})
    model.to(device)
    if device.type == "cuda":
        # every training batch has one shape, so cuDNN's timed choice of kernels pays off;
        # it makes GPU runs pick kernels by timing (GPU results are not bit-reproducible
        # anyway: their backward passes sum with atomics)
        torch.backends.cudnn.benchmark = True
    in_memory_format(model, stage)
    frontend = getattr(model, "frontend", None)
    if frontend is not None:
        # stage 1 freezes the front-end; stage 2 trains whatever it declares learnable
        for p in frontend.parameters():
            p.requires_grad_(stage.train_frontend)
    net = model  # what a batch goes through
    if stage.cache_frontend and not stage.train_frontend:
        train, validation = (_features(model, examples, stage.eval_batch_size)
                             for examples in (train, validation))
        net = _OnFeatures(model)

    torch.manual_seed(seed)
    sampler = make_sampler(stage.sampler, train.labels.cpu().numpy(), train.domains,
                           stage.batch_size, seed)
    steps = stage.steps_per_epoch or sampler.steps_per_epoch
    optimizer = _optimizer(model, stage)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(stage, steps))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda"
                                  and not torch.cuda.is_bf16_supported())
    history: list[dict[str, float]] = []
    trace: list[dict[str, Any]] = []
    best_epoch, best_state, stopped = 0, None, "budget"

    if checkpoint_path.exists():
        try:
            saved = load_checkpoint(checkpoint_path)
        except SpectNetError as exc:
            log.warning("ignoring an unreadable checkpoint: %s", exc)
            saved = None
        if saved is not None and saved.get("run_id") == run_id:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            sampler.load_state_dict(saved["sampler"])
            scaler.load_state_dict(saved["scaler"])
            _set_rng_state(saved["rng"])
            history, trace = list(saved["history"]), list(saved["frontend_trace"])
            best_epoch, best_state = saved["best_epoch"], saved["best_state"]
            stopped = saved["stopped"]
            log.info("resuming %s after epoch %d of %d", work_dir, len(history), stage.epochs)
        elif saved is not None:
            log.warning("%s belongs to a run with other settings; starting afresh", checkpoint_path)
    if not history:
        trace = _frontend_snapshot(model, 0)

    live = _Live(Path(live_dir) if live_dir is not None else None)
    for record in history:  # rebuild the logs of the epochs already done
        live.log(record, [row for row in trace if row["epoch"] == record["epoch"]])

    accumulate = stage.accumulate
    for epoch in range(len(history) + 1, stage.epochs + 1):
        if stopped == "patience":
            break
        started = time.perf_counter()
        model.train()
        total_loss, n_seen = 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        # a streamed training set reads the next batches while this one computes
        bar = tqdm(train.batches(sampler.next_batch() for _ in range(steps)), total=steps,
                   desc=f"epoch {epoch}/{stage.epochs}", unit="batch", disable=not progress,
                   leave=False, mininterval=0.5 if sys.stderr.isatty() else 30.0)
        for step, (x, y) in enumerate(bar):
            with autocast_for(device, cpu_autocast):
                outputs = net(x)
            loss = F.cross_entropy(outputs.float(), y)
            if not torch.isfinite(loss):
                raise SpectNetError(f"epoch {epoch}, step {step + 1}: the loss is {loss.item()}; "
                                    "lower the learning rate")
            scaler.scale(loss / accumulate).backward()
            if (step + 1) % accumulate == 0 or step + 1 == steps:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
            total_loss += loss.item() * len(y)
            n_seen += len(y)
        bar.close()
        lr = optimizer.param_groups[0]["lr"]
        train_seconds = time.perf_counter() - started
        scores = score(predict_proba(net, validation, stage.eval_batch_size, cpu_autocast),
                       validation)
        if stage.select_metric not in scores:
            raise SpectNetError(f"the score has no {stage.select_metric!r} "
                                f"(it has {', '.join(scores)})")
        record = {"epoch": epoch, "train_loss": total_loss / max(n_seen, 1), "lr": lr,
                  "examples": n_seen, "steps": steps, **{k: float(v) for k, v in scores.items()},
                  "train_seconds": train_seconds,
                  "epoch_seconds": time.perf_counter() - started}
        history.append(record)
        if best_state is None or record[stage.select_metric] > history[best_epoch - 1][stage.select_metric]:
            best_epoch, best_state = epoch, _cpu_state(model)
        if stage.patience is not None and epoch - best_epoch >= stage.patience:
            stopped = "patience"
        snapshot = _frontend_snapshot(model, epoch)
        trace.extend(snapshot)
        save_checkpoint(checkpoint_path, {
            "run_id": run_id, "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
            "scaler": scaler.state_dict(), "rng": _rng_state(), "history": history,
            "frontend_trace": trace, "best_epoch": best_epoch, "best_state": best_state,
            "stopped": stopped})
        live.log(record, snapshot)
        log.info("epoch %d/%d: loss %.4f, %s %.4f (best %.4f at epoch %d), %.0f s", epoch,
                 stage.epochs, record["train_loss"], stage.select_metric,
                 record[stage.select_metric], history[best_epoch - 1][stage.select_metric],
                 best_epoch, record["epoch_seconds"])
    if stopped == "patience":
        log.info("stopped after epoch %d: no better %s for %d epochs", len(history),
                 stage.select_metric, stage.patience)
    live.end()
    return TrainResult(history, best_epoch, best_state, _cpu_state(model), trace, stopped,
                       precision)
