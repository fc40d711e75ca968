"""Export trained models to ONNX and ``torch.export`` (``.pt2``) files, with their metadata.

An exported model takes a ``(batch, n_samples)`` float32 waveform at the model's sample
rate (a heart beat or a scene unit, exactly what the model file's network takes) and
returns ``(batch, n_classes)`` log class probabilities.  The batch is dynamic; the length
is the one the model was trained on (the heart-sound ResNet's dense layer fixes it; the
scene CNN's 5x5 max-pool lets ``torch.export`` accept only lengths of ``881 + 1100 j``
samples, so it is fixed too).  The file carries the model file's metadata (task, classes,
sample rate, the preprocessing, segmentation and beat or unit settings, the architecture
spec) as JSON: ONNX metadata property ``spectnet``, or ``spectnet.json`` inside the
``.pt2`` archive.  :func:`export_model` checks the written file against the eager model at
two batch sizes before it keeps it.

The front-end is exported with its direct (convolution) path: the FFT path's complex
tensors do not export to ONNX, and the recursive path runs numba code.  All exact paths
compute the same filters.

Example:
    >>> export_model("models/.../best.pt", "model.onnx", "onnx")     # doctest: +SKIP
    >>> read_export_metadata("model.onnx")["classes"]                  # doctest: +SKIP
    ['normal', 'abnormal']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spectnet.atomic import atomic_output
from spectnet.errors import SpectNetError
from spectnet.frontend import GammatoneFilterbank, SpectNetFrontend

__all__ = ["FORMATS", "EXPORT_FORMAT", "LogProbabilities", "exportable", "export_model",
           "read_export_metadata", "PARITY_TOLERANCE"]

FORMATS = ("onnx", "pt2")
#: Version of the metadata layout in exported files.
EXPORT_FORMAT = "spectnet-export/1"
#: Largest |difference| in log-probabilities allowed between the file and the eager model.
PARITY_TOLERANCE = 1e-4
_METADATA_KEY = "spectnet"
_PT2_METADATA_FILE = "spectnet.json"
_INFO_KEYS = ("task", "classes", "run", "seed", "fold", "scale", "dataset", "sample_rate",
              "unit", "preprocess", "segmentation", "beats", "package_version")


class LogProbabilities(nn.Module):
    """A classifier whose output is log class probabilities: ``log_softmax`` of its
    logits, or the log of its outputs for a model that already applies a softmax (the
    authors' ``quirks``), like :func:`spectnet.training.trainer.class_probabilities`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.softmax_inside = bool(getattr(getattr(model, "cnn", model), "quirks", False))

    def forward(self, waveform: Tensor) -> Tensor:
        outputs = self.model(waveform).float()
        if self.softmax_inside:
            return torch.log(outputs.clamp_min(torch.finfo(outputs.dtype).tiny))
        return torch.log_softmax(outputs, dim=1)


def exportable(model: nn.Module) -> LogProbabilities:
    """``model`` (changed in place) with every front-end on its direct path, wrapped to
    return log-probabilities, in eval mode."""
    for module in model.modules():
        if isinstance(module, (SpectNetFrontend, GammatoneFilterbank)):
            module.method = "direct"
    return LogProbabilities(model).eval()


def _metadata(contents: dict) -> dict:
    info = {key: contents[key] for key in _INFO_KEYS if key in contents}
    spec = contents["spec"]
    return {"format": EXPORT_FORMAT, **info, "spec": spec, "n_samples": int(spec["n_samples"]),
            "input": "waveform: (batch, n_samples) float32 at spec.sample_rate",
            "output": "log_probabilities: (batch, n_classes), classes in `classes` order"}


def _export_program(module: nn.Module, example: Tensor):
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


def _write_onnx(module: nn.Module, example: Tensor, path: Path, metadata: dict) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    # optimize=False: onnxscript's optimizer dropped the log floor (`energy + 1e-16` became
    # `energy`), so digital silence gave -inf and NaN; onnxruntime optimises the graph anyway
    program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                input_names=["waveform"], output_names=["log_probabilities"],
                                verbose=False, optimize=False)
    program.save(str(path))
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = _METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))


def _run_file(path: Path, fmt: str, waveform: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: not its notes on constant folding
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: waveform})[0]
    program = torch.export.load(str(path))
    with torch.no_grad():
        return program.module()(torch.from_numpy(waveform)).numpy()


def export_model(model_path: str | Path, out: str | Path, fmt: str) -> Path:
    """Export a model file (``best.pt``) to ``out`` as ONNX (``fmt="onnx"``) or
    ``torch.export`` (``"pt2"``), and check it.

    Raises:
        SpectNetError: unknown format, unreadable model, a missing exporter package, or a
            file whose log-probabilities differ from the eager model's by more than
            :data:`PARITY_TOLERANCE` at batch sizes 1 and 5 (nothing is written then).
    """
    from spectnet.training.checkpoint import load_model

    if fmt not in FORMATS:
        raise SpectNetError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    out = Path(out)
    if out.is_dir():
        raise SpectNetError(f"{out}: is a directory; give the file to write")
    model, contents = load_model(model_path, "cpu")
    module = exportable(model)
    metadata = _metadata(contents)
    n_samples = metadata["n_samples"]
    example = torch.randn(2, n_samples, generator=torch.Generator().manual_seed(0))
    try:
        with atomic_output(out) as tmp:
            if fmt == "onnx":
                _write_onnx(module, example, tmp, metadata)
            else:
                torch.export.save(_export_program(module, example), str(tmp),
                                  extra_files={_PT2_METADATA_FILE: json.dumps(metadata)})
            for batch in (1, 5):
                waveform = torch.randn(batch, n_samples, generator=torch.Generator().manual_seed(batch))
                waveform[:, n_samples // 2:] = 0  # digital silence, as in zero-padded beats
                with torch.no_grad():
                    expected = module(waveform).numpy()
                got = _run_file(tmp, fmt, waveform.numpy())
                worst = float(np.abs(got - expected).max())
                if not worst <= PARITY_TOLERANCE:
                    raise SpectNetError(f"{model_path}: the {fmt} export differs from the model by "
                                        f"{worst:.2e} in log-probabilities at batch {batch} "
                                        f"(> {PARITY_TOLERANCE}); nothing written")
    except ImportError as exc:
        raise SpectNetError(f"exporting to {fmt} needs the `export` extra "
                            f"(pip install 'spectnet[export]'): {exc}") from None
    return out


def read_export_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata an exported file carries (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SpectNetError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    try:
        if path.suffix == ".onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            meta = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            text = meta.get_modelmeta().custom_metadata_map.get(_METADATA_KEY)
        else:
            files = {_PT2_METADATA_FILE: ""}
            torch.export.load(str(path), extra_files=files)
            text = files[_PT2_METADATA_FILE] or None
    except ImportError as exc:
        raise SpectNetError(f"{path}: reading ONNX models needs the `export` extra "
                            f"(pip install 'spectnet[export]'): {exc}") from None
    except Exception as exc:  # the runtimes raise many types for files that are not models
        raise SpectNetError(f"{path}: not a readable exported model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not text:
        raise SpectNetError(f"{path}: no SpectNet metadata (not written by `spectnet export`)")
    metadata = json.loads(text)
    if metadata.get("format") != EXPORT_FORMAT:
        raise SpectNetError(f"{path}: expected {EXPORT_FORMAT} metadata, found {metadata.get('format')!r}")
    return metadata
