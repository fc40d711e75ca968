"""Load and validate ``params.yaml`` against ``workflow/schemas/params.schema.yaml``.

:func:`load_params` is the one loader of every entry point (the Snakefile, the CLI, the
tests), so a file gets the same verdict everywhere: a YAML syntax error names the file,
line and column; an empty file is an error; a bad value is reported once, naming the
key and the workflow steps that read it. Validation fills in the schema's defaults, so
every consumer sees the same complete parameter set.

``STEP_PARAMS`` is the contract between the workflow and the parameters: which keys
each step reads. The Snakefile passes each rule exactly that slice (so editing a key
reruns only the steps that read it) and ``dvc.yaml``, generated from the Snakefile's
DAG (``spectnet workflow dvc-yaml``), declares the same keys for the stage.
A key may hold ``{name}`` placeholders: a top-level parameter (``scales.{scale}.x`` is
the active scale's block) or a wildcard of the rule's job.
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
#: value of ``scale`` (a training step reads only the active scale's block); other
#: ``{placeholders}`` stand for the job's wildcards.
_HEART_FRONTEND = tuple(f"heart_sounds.frontend.{k}" for k in (
    "init", "f_min", "f_max", "kernel_size", "win_length", "hop_length"))
_SCENE_FRONTEND = tuple(f"scenes.frontend.{k}" for k in ("kernel_size", "win_length", "hop_length"))
#: What a model file records of the heart-sound input (predict reuses it): changing it
#: reruns training through the data steps anyway.
_HEART_INPUT = ("preprocess", "segmentation.emulate_underflow", "beats")
#: ``cpu_autocast``: every training step (the CNN's precision on the CPU); evaluation reads
#: the precision from the model file, so it reruns with the model.
_HEART_TRAINING = ("scale", "cpu_autocast", "scales.{scale}.heart_sounds.selection_subset",
                   "heart_sounds.fold", "heart_sounds.sampler", "heart_sounds.selection")
_SCENE_TRAINING = ("scale", "cpu_autocast", "scales.{scale}.scenes.selection_subset",
                   "scenes.sampler", "scenes.selection")
#: Stage 2 with the front-end frozen reads what learnable-N reads of the CNN's training,
#: never the front-end's settings: a same-budget control of every learnable variant.
_HEART_STAGE2 = ("scales.{scale}.heart_sounds.learnable", "heart_sounds.learnable.variant",
                 "heart_sounds.learnable.lr", "heart_sounds.learnable.warmup_steps")
_SCENE_STAGE2 = ("scales.{scale}.scenes.learnable", "scenes.learnable.lr",
                 "scenes.learnable.warmup_steps")
_FRONTEND_LEARNING = ("learn", "parametrization", "frontend_lr")

#: The params keys (dotted paths) each workflow step reads. ``{scale}`` stands for the
#: value of ``scale`` (a training step reads only the active scale's block); other
#: ``{placeholders}`` stand for the job's wildcards.
STEP_PARAMS: dict[str, tuple[str, ...]] = {
    "fetch_physionet": ("physionet",),
    "preprocess_physionet": ("preprocess", "physionet.on_bad_record"),
    "segment_physionet": ("segmentation.emulate_underflow", "beats"),
    "plot_segmentation_physionet": ("segmentation.plot_records",),
    "train_static_physionet": (
        *_HEART_TRAINING, "scales.{scale}.heart_sounds.static",
        "scales.{scale}.heart_sounds.grid_epochs",
        "scales.{scale}.heart_sounds.dropout", *_HEART_FRONTEND, "heart_sounds.resnet",
        "heart_sounds.static", *_HEART_INPUT),
    "train_learnable_physionet": (
        *_HEART_TRAINING, *_HEART_STAGE2,
        *(f"heart_sounds.learnable.{k}" for k in _FRONTEND_LEARNING), *_HEART_INPUT),
    "train_control_physionet": (*_HEART_TRAINING, *_HEART_STAGE2, *_HEART_INPUT),
    "train_baseline_physionet": (
        *_HEART_TRAINING, "scales.{scale}.heart_sounds.baselines",
        "scales.{scale}.heart_sounds.grid_epochs",
        "scales.{scale}.heart_sounds.dropout", *_HEART_FRONTEND, "heart_sounds.baselines",
        *_HEART_INPUT),
    "evaluate_physionet": (
        "scale", "scales.{scale}.heart_sounds.bootstrap", "heart_sounds.fold",
        "heart_sounds.evaluation"),
    "table2_physionet": (
        "scale", "scales.{scale}.heart_sounds.seeds", "scales.{scale}.heart_sounds.comparison_seeds",
        "scales.{scale}.heart_sounds.bootstrap", "heart_sounds.fold",
        "heart_sounds.selection.split", "heart_sounds.frontend.n_filters",
        "heart_sounds.learnable.n_filters", "heart_sounds.evaluation"),
    "figures_physionet": (
        "scale", "scales.{scale}.heart_sounds.seeds", "scales.{scale}.heart_sounds.comparison_seeds",
        "heart_sounds.fold", "heart_sounds.frontend.n_filters", "heart_sounds.learnable.n_filters",
        "heart_sounds.baselines.learn_filters", "heart_sounds.evaluation.model"),
    "figures_scenes": (
        "scale", "scales.{scale}.scenes.seeds", "scales.{scale}.scenes.comparison_seeds",
        "scales.{scale}.scenes.folds", "scenes.frontend.n_filters", "scenes.learnable.n_filters",
        "scenes.evaluation.model"),
    "fetch_scenes": ("scenes.dataset", "scenes.data", "scenes.on_bad_clip"),
    "preprocess_scenes": ("scenes.sample_rate", "scenes.min_clip_s", "scenes.units",
                          "scenes.on_bad_clip"),
    # N, fold and seed come from the job; the model files record the unit store's settings
    "train_static_scenes": (
        *_SCENE_TRAINING, "scales.{scale}.scenes.static", "scales.{scale}.scenes.grid_epochs",
        "scenes.static", *_SCENE_FRONTEND),
    "train_learnable_scenes": (
        *_SCENE_TRAINING, *_SCENE_STAGE2,
        *(f"scenes.learnable.{k}" for k in _FRONTEND_LEARNING)),
    "train_control_scenes": (*_SCENE_TRAINING, *_SCENE_STAGE2),
    "evaluate_scenes": ("scale", "scales.{scale}.scenes.bootstrap", "scenes.evaluation"),
    "table_scenes": (
        "scale", "scales.{scale}.scenes.seeds", "scales.{scale}.scenes.comparison_seeds",
        "scales.{scale}.scenes.folds", "scales.{scale}.scenes.bootstrap",
        "scenes.selection.split", "scenes.frontend.n_filters", "scenes.learnable.n_filters",
        "scenes.evaluation"),
}

#: Keys of earlier versions of params.yaml and what replaced them: such a key is refused
#: with a message naming its replacement (one name per concept across the two tasks).
RENAMED_KEYS: dict[str, str] = {
    "heart_sounds.static_filters": "heart_sounds.frontend.n_filters",
    "heart_sounds.learnable_filters": "heart_sounds.learnable.n_filters",
    "heart_sounds.baselines.learnable_filters": "heart_sounds.baselines.learn_filters",
    "scenes.frontend.learnable_n_filters": "scenes.learnable.n_filters (a list)",
    "scenes.training": "scenes.sampler, scenes.static and scenes.learnable",
    "scales.{scale}.seeds": "scales.{scale}.heart_sounds.seeds and scales.{scale}.scenes.seeds",
}


class ParamsError(SpectNetError):
    """params.yaml (or a slice of it) does not satisfy the schema."""


def load_schema() -> dict:
    """The parameter schema shipped with the package (the workflow's schema file)."""
    text = resources.files("spectnet").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


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


def _overlaps(key_path: str, step_key: str) -> bool:
    """One dotted key is a prefix of the other; a ``{placeholder}`` part matches any."""
    a, b = key_path.split("."), step_key.split(".")
    return all(x == y or y.startswith("{") for x, y in zip(a, b))


def steps_reading(key_path: str) -> list[str]:
    """The workflow steps whose parameter slice contains ``key_path`` (dotted), at any scale."""
    return sorted(step for step, keys in STEP_PARAMS.items()
                  if any(_overlaps(key_path, k) for k in keys))


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = ".".join(str(p) for p in error.absolute_path)
    steps = steps_reading(key) if key else []
    used_by = f" (read by: {', '.join(steps)})" if steps else ""
    message = error.message
    if error.validator == "enum" and isinstance(error.instance, bool):
        message += " (YAML reads an unquoted on/off/yes/no as true/false)"
    return f"{source}: {key or '(top level)'}: {message}{used_by}"


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
    for task in ("heart_sounds", "scenes"):
        section = params[task]
        unknown = sorted(set(section["learnable"]["n_filters"]) - set(section["frontend"]["n_filters"]))
        if unknown:
            problems.append((
                f"{task}.learnable.n_filters: {unknown} not in {task}.frontend.n_filters "
                f"{section['frontend']['n_filters']} (a learnable run is fine-tuned from the "
                "static run with the same number of filters)", f"{task}.learnable.n_filters"))
    scenes = params["scenes"]
    frontend = scenes["frontend"]
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


def _renamed_keys(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(old key, its replacement)`` for every key of ``RENAMED_KEYS`` that ``params`` uses."""
    found = []
    for old, new in RENAMED_KEYS.items():
        *parents, leaf = old.split(".")
        nodes = [({}, params)]
        for name in parents:  # {scale} matches every scale block
            nodes = [({**bound, "scale": key}, value[key])
                     for bound, value in nodes if isinstance(value, Mapping)
                     for key in (value if name == "{scale}" else [name]) if key in value]
        found += [(old.format(**bound), new.format(**bound)) for bound, value in nodes
                  if isinstance(value, Mapping) and leaf in value]
    return found


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
    renamed = _renamed_keys(instance)
    if renamed:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(
            f"{source}: {old} was renamed: use {new}" for old, new in renamed))
    if partial and isinstance(params, Mapping):
        instance = _merge(validate_params({}), instance)
    errors = sorted(_Validator(load_schema()).iter_errors(instance),
                    key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, source) for e in errors]
    if not problems:
        problems = [f"{source}: {p}" for p in _cross_checks(instance)]
    if problems:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(problems))
    return instance


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML
    silently keeps the last value; DVC, which reads the same file, refuses it)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first given on line {seen[key].line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _syntax_error(path: Path, exc: yaml.YAMLError) -> ParamsError:
    """``FILE:LINE:COLUMN: not valid YAML: problem (context)`` from a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return ParamsError(f"{path}: not valid YAML: {exc}")
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        context = f"{context} at line {context_mark.line + 1}, column {context_mark.column + 1}"
    return ParamsError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
                       + (f" ({context})" if context else ""))


def read_params_file(path: str | Path) -> dict:
    """Parse a params YAML file into a mapping, without validating it.

    Raises:
        ParamsError: the file is missing, empty, not valid YAML (with line and column),
            repeats a key, or does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read the params file: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc) from None
    if raw is None:
        raise ParamsError(f"{path}: the params file is empty; write `{{}}` to use every "
                          f"default (`spectnet params show` prints them)")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, "
                          f"got {type(raw).__name__}")
    return raw


def _accepts_strings(schema: Mapping[str, Any]) -> bool:
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "enum" in schema:
        return any(isinstance(v, str) for v in schema["enum"]) or "string" in types
    return not types or "string" in types


def coerce_overrides(overrides: Any, schema: Mapping[str, Any] | None = None,
                     root: Mapping[str, Any] | None = None) -> Any:
    """Give command-line values the types the schema wants.

    Snakemake parses ``--config section='{key: 300}'`` with YAML's base loader, which
    leaves every nested scalar a string (``'300'``). Where the schema does not accept a
    string, such a value is read again as YAML (``300``, ``false``, ``1e-3``); a value
    that still has the wrong type is left for validation to report.

    Example:
        >>> coerce_overrides({"preprocess": {"lowpass_hz": "300", "resampler": "polyphase"}})
        {'preprocess': {'lowpass_hz': 300, 'resampler': 'polyphase'}}
    """
    root = load_schema() if root is None else root
    schema = root if schema is None else schema
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
        target: Any = root                   # a local reference, e.g. "#/$defs/scale"
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = target
    if isinstance(overrides, dict):
        extra = schema.get("additionalProperties")
        other = extra if isinstance(extra, dict) else {}
        return {key: coerce_overrides(value, schema.get("properties", {}).get(key, other), root)
                for key, value in overrides.items()}
    if isinstance(overrides, list):
        return [coerce_overrides(v, schema.get("items", {}), root) for v in overrides]
    if isinstance(overrides, str) and not _accepts_strings(schema):
        try:
            return yaml.safe_load(overrides)
        except yaml.YAMLError:
            return overrides
    return overrides


def _merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    """``base`` updated recursively with ``overrides`` (as Snakemake merges --config)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: str | Path = "params.yaml",
                overrides: Mapping[str, Any] | None = None) -> dict:
    """Read, merge and validate a params file: the loader of every entry point.

    Args:
        path: the params YAML file.
        overrides: values given on the command line (Snakemake's ``config`` from
            ``--config``), merged over the file's after :func:`coerce_overrides`.

    Raises:
        ParamsError: see :func:`read_params_file` and :func:`validate_params`.

    Example:
        >>> load_params("params.yaml", {"preprocess": {"lowpass_hz": "300"}})["preprocess"]["lowpass_hz"]
        300
    """
    raw = read_params_file(path)
    if not overrides:
        return validate_params(raw, source=str(path))
    return validate_params(_merge(raw, coerce_overrides(dict(overrides))),
                           source=f"{path} (+ --config)")


def step_keys(params: Mapping[str, Any], step: str,
              wildcards: Mapping[str, str] | None = None) -> list[str]:
    """The dotted keys ``step`` reads, placeholders filled from ``wildcards`` and the
    top-level parameters.

    Example:
        >>> step_keys(validate_params({}), "preprocess_physionet")
        ['preprocess', 'physionet.on_bad_record']
    """
    values = {k: v for k, v in params.items() if not isinstance(v, (dict, list))}
    values.update(wildcards or {})
    try:
        return [key.format_map(values) for key in STEP_PARAMS[step]]
    except KeyError as exc:
        raise ParamsError(f"STEP_PARAMS[{step!r}]: placeholder {exc} is neither a top-level "
                          f"parameter nor a wildcard of the job") from None


def params_slice(params: Mapping[str, Any], step: str,
                 wildcards: Mapping[str, str] | None = None) -> dict:
    """The nested sub-mapping of ``params`` holding exactly the keys ``step`` reads."""
    out: dict = {}
    for dotted in step_keys(params, step, wildcards):
        *parents, leaf = dotted.split(".")
        src, dst = params, out
        for name in parents:
            src, dst = src[name], dst.setdefault(name, {})
        dst[leaf] = copy.deepcopy(src[leaf])
    return out


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two parameter sets.

    Example:
        >>> changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0})
        ['a.c', 'd']
    """
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += [f"{key}.{sub}" for sub in changed_keys(old, new)]
        elif old != new:
            out.append(key)
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
