"""Load and validate ``params.yaml`` against ``workflow/schemas/params.schema.yaml``.

Validation fills in the schema's defaults, so every consumer (the Snakefile, the DVC
stages through the CLI, the tests) sees the same complete parameter set, and a bad
value is reported once, naming the key and the workflow steps that read it.

``STEP_PARAMS`` is the contract between the workflow and the parameters: which keys
each step reads. The Snakefile passes each rule exactly that slice (so editing a key
reruns only the steps that read it) and ``dvc.yaml`` declares the same keys; a test
keeps the three in agreement.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from spectnet.errors import SpectNetError

#: The params keys (dotted paths) each workflow step reads. ``{scale}`` stands for the
#: value of ``scale``: a training step reads only the active scale's block.
STEP_PARAMS: dict[str, tuple[str, ...]] = {
    "fetch_physionet": ("physionet",),
    "preprocess_physionet": ("preprocess", "physionet.on_bad_record"),
    "segment_physionet": ("segmentation.emulate_underflow", "beats"),
    "plot_segmentation_physionet": ("segmentation.plot_records",),
    # the model files record how their input was made (predict reuses it): preprocess,
    # segmentation and beats settings; changing them reruns training through the data anyway
    "train_static_physionet": (
        "scale", "scales.{scale}.heart_sounds.static", "heart_sounds.fold",
        "heart_sounds.sampler", "heart_sounds.frontend", "heart_sounds.resnet",
        "heart_sounds.static", "preprocess", "segmentation.emulate_underflow", "beats"),
    "train_learnable_physionet": (
        "scale", "scales.{scale}.heart_sounds.learnable", "heart_sounds.fold",
        "heart_sounds.sampler", "heart_sounds.learnable", "preprocess",
        "segmentation.emulate_underflow", "beats"),
    "train_baseline_physionet": (
        "scale", "scales.{scale}.heart_sounds.baselines", "heart_sounds.fold",
        "heart_sounds.sampler", "heart_sounds.frontend", "heart_sounds.baselines",
        "preprocess", "segmentation.emulate_underflow", "beats"),
    "evaluate_physionet": (
        "scale", "scales.{scale}.heart_sounds.bootstrap", "heart_sounds.fold",
        "heart_sounds.evaluation"),
    "fetch_scenes": ("scenes.dataset", "scenes.data", "scenes.on_bad_clip"),
    "preprocess_scenes": ("scenes.sample_rate", "scenes.min_clip_s", "scenes.units",
                          "scenes.on_bad_clip"),
    # N, fold and seed come from the job; the model files record the unit store's settings
    "train_static_scenes": (
        "scale", "scales.{scale}.scenes.static", "scenes.training.sampler",
        "scenes.training.static", "scenes.frontend.kernel_size", "scenes.frontend.win_length",
        "scenes.frontend.hop_length"),
    "train_learnable_scenes": (
        "scale", "scales.{scale}.scenes.learnable", "scenes.training.sampler",
        "scenes.training.learnable"),
    "evaluate_scenes": ("scale", "scales.{scale}.scenes.bootstrap", "scenes.evaluation"),
    "table_scenes": (
        "scale", "scales.{scale}.seeds", "scales.{scale}.scenes.folds",
        "scales.{scale}.scenes.bootstrap", "scenes.frontend.n_filters",
        "scenes.frontend.learnable_n_filters", "scenes.evaluation"),
}

#: Names ``{scale}`` can stand for.
SCALES = ("full", "quick", "smoke")


class ParamsError(SpectNetError):
    """params.yaml (or a slice of it) does not satisfy the schema."""


def load_schema() -> dict:
    """The parameter schema shipped with the package (the workflow's schema file)."""
    text = resources.files("spectnet").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """``override`` laid over ``base``, mapping by mapping (other values are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        out[key] = (_merged(out[key], value) if isinstance(value, Mapping)
                    and isinstance(out.get(key), Mapping) else copy.deepcopy(value))
    return out


def _fill_defaults(validator_class):
    """A validator that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft202012Validator)


def _resolve(key: str, scale: str) -> str:
    return key.replace("{scale}", scale)


def steps_reading(key_path: str) -> list[str]:
    """The workflow steps whose parameter slice contains ``key_path`` (dotted), at any scale."""
    return sorted(step for step, keys in STEP_PARAMS.items()
                  if any(key_path == k or key_path.startswith(k + ".")
                         or k.startswith(key_path + ".")
                         for k in {_resolve(key, scale) for key in keys for scale in SCALES}))


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = ".".join(str(p) for p in error.absolute_path)
    steps = steps_reading(key) if key else []
    used_by = f" (read by: {', '.join(steps)})" if steps else ""
    return f"{source}: {key or '(top level)'}: {error.message}{used_by}"


def _cross_checks(params: dict) -> list[str]:
    """Constraints between keys that JSON schema cannot express."""
    problems = []  # (message, the key whose readers the message names)
    pre = params["preprocess"]
    nyquist = pre["sample_rate"] / 2
    if not pre["highpass_hz"] < pre["lowpass_hz"] < nyquist:
        problems.append((
            f"preprocess.highpass_hz ({pre['highpass_hz']}) < preprocess.lowpass_hz "
            f"({pre['lowpass_hz']}) < preprocess.sample_rate / 2 ({nyquist}) must hold",
            "preprocess"))
    heart = params["heart_sounds"]
    unknown = sorted(set(heart["learnable_filters"]) - set(heart["static_filters"]))
    if unknown:
        problems.append((
            f"heart_sounds.learnable_filters: {unknown} not in heart_sounds.static_filters "
            f"{heart['static_filters']} (a learnable run is fine-tuned from the static run "
            "with the same number of filters)", "heart_sounds.learnable_filters"))
    scenes = params["scenes"]
    frontend = scenes["frontend"]
    if frontend["learnable_n_filters"] not in frontend["n_filters"]:
        problems.append((
            f"scenes.frontend.learnable_n_filters ({frontend['learnable_n_filters']}) must be "
            f"one of scenes.frontend.n_filters {frontend['n_filters']}: the learnable model "
            "starts from the static model with as many filters", "scenes.frontend"))
    # the scene CNN pools 5 x 5 time-frequency cells: a unit needs at least 5 frames
    needed = frontend["kernel_size"] + frontend["win_length"] - 1 + 4 * frontend["hop_length"]
    for dataset, unit in scenes["units"].items():
        if unit["length_s"] * scenes["sample_rate"] < needed:
            problems.append((
                f"scenes.units.{dataset}.length_s ({unit['length_s']}) is shorter than the "
                f"{needed} samples (at scenes.sample_rate) the front-end and CNN need",
                f"scenes.units.{dataset}"))
    return [message + (f" (read by: {', '.join(steps)})" if (steps := steps_reading(key)) else "")
            for message, key in problems]


def validate_params(params: Mapping[str, Any] | None, source: str = "params",
                    partial: bool = False) -> dict:
    """Validate ``params`` and return a deep copy with every default filled in.

    Args:
        params: the parsed params (``None`` means an empty file).
        source: a name for messages, usually the file name.
        partial: ``params`` is one step's slice: it is laid over the complete defaults,
            so blocks that must be complete in a params file (a scale's budgets) may hold
            only the keys the step reads.

    Raises:
        ParamsError: listing every violation, one per line, each naming the key and
            the workflow steps that read it.

    Example:
        >>> validate_params({"preprocess": {"lowpass_hz": 300}})["preprocess"]["sample_rate"]
        1000
    """
    instance = copy.deepcopy(dict(params or {}))
    if partial and isinstance(params, Mapping):
        instance = _merged(validate_params({}), instance)
    errors = sorted(_Validator(load_schema()).iter_errors(instance),
                    key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, source) for e in errors]
    if not problems:
        problems = [f"{source}: {p}" for p in _cross_checks(instance)]
    if problems:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(problems))
    return instance


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params YAML file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, "
                          f"got {type(raw).__name__}")
    return validate_params(raw, source=str(path))


def params_slice(params: Mapping[str, Any], step: str) -> dict:
    """The nested sub-mapping of ``params`` holding exactly the keys ``step`` reads
    (``{scale}`` resolved to the active scale)."""
    out: dict = {}
    for dotted in STEP_PARAMS[step]:
        *parents, leaf = _resolve(dotted, params.get("scale", "")).split(".")
        src, dst = params, out
        for name in parents:
            src, dst = src[name], dst.setdefault(name, {})
        dst[leaf] = copy.deepcopy(src[leaf])
    return out


def read_params_argument(value: str) -> dict:
    """Parse a CLI ``--params`` value: inline JSON (from Snakemake) or a YAML file (DVC)."""
    if value.lstrip().startswith("{"):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"--params: not valid JSON: {exc}") from None
        return validate_params(raw, source="--params", partial=True)
    return load_params(value)
