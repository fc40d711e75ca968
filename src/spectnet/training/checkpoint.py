"""Model files and resume checkpoints, written atomically and read with ``weights_only=True``.

A **model file** (``best.pt``, ``last.pt``) is self-describing: the architecture spec
that :func:`spectnet.models.build_model` rebuilds it from, the weights, and whatever
the task needs to use it on new audio (preprocessing and segmentation settings, class
names), plus the package version. ``spectnet predict`` needs nothing else.

A **resume checkpoint** holds everything an interrupted run needs to continue exactly
where it stopped: model, optimiser, scheduler, sampler and RNG states, the epoch history
and the best model so far, and a fingerprint of the run's settings so that a checkpoint
of a different run is never resumed.

Both contain only tensors and plain Python containers, so ``torch.load(...,
weights_only=True)`` reads them: a file from elsewhere cannot execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from spectnet import __version__
from spectnet.atomic import atomic_output
from spectnet.errors import SpectNetError
from spectnet.models import build_model

__all__ = ["MODEL_FORMAT", "CHECKPOINT_FORMAT", "save_model", "load_model", "read_model_file",
           "save_checkpoint", "load_checkpoint", "fingerprint"]

MODEL_FORMAT = "spectnet-model/1"
CHECKPOINT_FORMAT = "spectnet-checkpoint/1"


def _save(obj: Any, path: str | Path) -> Path:
    # Serialised in memory, then written: torch's own file writer turns a full disk into
    # "RuntimeError: [enforce fail at inline_container.cc] unexpected pos", a plain write
    # into the OSError (ENOSPC) that atomic_output reports as one line.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
    return Path(path)


def _load(path: str | Path, expected_format: str) -> dict:
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpectNetError(f"{path}: no such file") from None
    except Exception as exc:  # unpickling errors have many types; all mean "not ours"
        raise SpectNetError(f"{path}: not a readable SpectNet file ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise SpectNetError(f"{path}: expected a {expected_format} file, found {found!r}")
    return obj


def save_model(path: str | Path, model: nn.Module, spec: Mapping[str, Any],
               **info: Any) -> Path:
    """Write a self-describing model file atomically.

    Args:
        spec: the architecture spec (:func:`spectnet.models.build_model`).
        info: anything else worth keeping (task settings, epoch, metrics); plain values.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return _save({"format": MODEL_FORMAT, "package_version": __version__, "spec": dict(spec),
                  "state_dict": state, **info}, path)


def read_model_file(path: str | Path) -> dict:
    """The contents of a model file (spec, weights, info), verified."""
    return _load(path, MODEL_FORMAT)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from its file. Returns ``(model in eval mode, file contents)``."""
    contents = read_model_file(path)
    try:
        model = build_model(contents["spec"])
        model.load_state_dict(contents["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise SpectNetError(f"{path}: the weights do not fit the architecture it describes "
                            f"({exc})") from None
    return model.to(device).eval(), contents


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able run settings (which run a checkpoint belongs to)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a resume checkpoint atomically (a kill leaves the previous one intact)."""
    return _save({"format": CHECKPOINT_FORMAT, **state}, path)


def load_checkpoint(path: str | Path) -> dict:
    return _load(path, CHECKPOINT_FORMAT)
