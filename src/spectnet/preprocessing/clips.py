"""Cut labelled clips into fixed-length units: the scene data set on disk.

Every clip is decoded, mixed to mono (mean of its channels), resampled with torchaudio to
``scenes.sample_rate`` and cut into units of ``length_s`` seconds:

- ``segment`` (DCASE: 10 s): non-overlapping units from the start; a remainder shorter than
  a unit is dropped (``dropped_s`` in ``clips.csv``), a clip shorter than one unit is bad.
- ``clip`` (ESC: 5 s): the whole clip is one unit, zero-padded at the end (``pad_s``) or
  truncated (``dropped_s``).

The unit store is an example store (:data:`~spectnet.datasets.examples.UNITS`, read with
:class:`~spectnet.datasets.examples.ExampleStore`, like the beat dataset):

- ``units.npy``: float32, shape ``(n_units, unit_samples)``, written incrementally and
  memory-mapped on load;
- ``units.csv``: one row per unit, in the same order: ``clip``, ``unit`` (index within the
  clip), ``label`` (class index), ``class`` (name), ``fold``, ``train{k}`` and
  ``evaluate{k}`` (0/1 per fold k), ``start_s`` (unit start in the clip), ``pad_s``
  (zero padding at its end) and ``error_s`` (seconds of annotated audio errors, DCASE);
- ``clips.csv``: one row per clip: ``clip``, ``path``, ``class``, ``label``, ``fold``,
  ``status`` (``ok`` or ``failed``), ``reason``, ``sample_rate_raw``, ``channels``,
  ``duration_raw_s``, ``n_units``, ``first_unit`` (row of its first unit), ``dropped_s``;
- ``classes.json`` (class names in label order) and ``dataset.json`` (the data set, why it
  was chosen, ``sample_rate``, the unit settings and counts).

Bad clips (undecodable, empty, NaN, too short) are named in one report: with
``on_bad_clip="fail"`` a :class:`~spectnet.errors.BadInputError` lists them all and nothing
is written; with ``"skip"`` they are ``failed`` rows of ``clips.csv``. The result does not
depend on the number of workers.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spectnet.atomic import atomic_dir
from spectnet.config import ScenesConfig, UnitConfig
from spectnet.datasets.clips import read_clip_dataset
from spectnet.datasets.examples import CLASSES_JSON, DATASET_JSON, UNITS
from spectnet.datasets.store import NpyAppender
from spectnet.errors import BadInputError
from spectnet.parallel import progress_bar, worker_pool
from spectnet.preprocessing.audio import BadAudioError, read_audio_file, resample

__all__ = ["cut_units", "prepare_clip", "preprocess_clips"]

log = logging.getLogger(__name__)


def cut_units(x: np.ndarray, unit_samples: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Cut a mono signal into units.

    Args:
        x: signal, shape ``(time,)``.
        unit_samples: samples per unit, L.
        mode: ``"segment"`` (``time // L`` non-overlapping units, the remainder dropped) or
            ``"clip"`` (one unit: ``x`` zero-padded or truncated to L).

    Returns:
        ``(units, starts)``: float32 ``(n_units, L)`` and each unit's first sample in ``x``.

    Example:
        >>> units, starts = cut_units(np.arange(7.0), 3, "segment")
        >>> units.tolist(), starts.tolist()
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [0, 3])
        >>> cut_units(np.arange(2.0), 3, "clip")[0].tolist()
        [[0.0, 1.0, 0.0]]
    """
    if mode == "segment":
        n = x.size // unit_samples
        return (x[: n * unit_samples].reshape(n, unit_samples).astype(np.float32),
                np.arange(n) * unit_samples)
    if mode == "clip":
        unit = np.zeros((1, unit_samples), dtype=np.float32)
        kept = min(x.size, unit_samples)
        unit[0, :kept] = x[:kept]
        return unit, np.zeros(1, dtype=int)
    raise ValueError(f"unknown unit mode {mode!r}; expected 'segment' or 'clip'")


@dataclass(frozen=True)
class _Job:
    clip: str
    path: Path
    sample_rate: int
    unit: UnitConfig
    min_clip_s: float


def prepare_clip(path: str | Path, sample_rate: int, unit: UnitConfig,
                 min_clip_s: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode, mix to mono, resample and cut one clip.

    Returns:
        ``(units, starts, info)``: see :func:`cut_units` (starts in samples at
        ``sample_rate``); ``info`` has the raw rate, channels and duration and the seconds
        of audio dropped.

    Raises:
        BadAudioError: undecodable, empty, non-finite, or too short.
    """
    x, raw_rate = read_audio_file(path)
    duration = x.shape[0] / raw_rate
    if duration < min_clip_s:
        raise BadAudioError(f"too short: {duration:.3f} s < scenes.min_clip_s ({min_clip_s} s)")
    if unit.mode == "segment" and duration < unit.length_s:
        raise BadAudioError(f"too short: {duration:.3f} s, shorter than one "
                            f"{unit.length_s} s unit")
    # float32, the store's precision: torchaudio resamples it ~12x faster than float64 on
    # CPU, and the two differ by < 1e-6 of full scale
    mono = resample(x.mean(axis=1).astype(np.float32), raw_rate, sample_rate)
    unit_samples = round(unit.length_s * sample_rate)
    units, starts = cut_units(mono, unit_samples, unit.mode)
    kept = min(mono.size, units.shape[0] * unit_samples)
    return units, starts, {"sample_rate_raw": raw_rate, "channels": x.shape[1],
                           "duration_raw_s": duration,
                           "dropped_s": (mono.size - kept) / sample_rate}


def _run_job(job: _Job):
    """Worker: ``(clip, units, starts, info)``, or ``(clip, None, None, reason)``."""
    try:
        return (job.clip, *prepare_clip(job.path, job.sample_rate, job.unit, job.min_clip_s))
    except BadAudioError as exc:
        return job.clip, None, None, str(exc)


def _error_seconds(errors: pd.DataFrame | None, clip: str, start_s: np.ndarray,
                   length_s: float) -> np.ndarray:
    """Seconds of annotated errors of ``clip`` inside each unit ``[start, start + length)``."""
    if errors is None:
        return np.zeros(start_s.size)
    mine = errors[errors["clip"] == clip]
    onset, offset = mine["onset_s"].to_numpy(), mine["offset_s"].to_numpy()
    overlap = (np.minimum(offset[None, :], start_s[:, None] + length_s)
               - np.maximum(onset[None, :], start_s[:, None]))
    return np.clip(overlap, 0, None).sum(axis=1)


def preprocess_clips(raw_dir: str | Path, out_dir: str | Path, config: ScenesConfig,
                     workers: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Build the unit store of an acquired clip data set.

    Args:
        raw_dir: the output of ``spectnet scenes fetch`` (``clips.csv``, audio, ...).
        out_dir: the unit store to write (replaced atomically on success).
        config: the ``scenes`` parameters (``sample_rate``, ``min_clip_s``, ``units``,
            ``on_bad_clip``).
        workers: processes (default: all cores).

    Returns:
        The per-clip table (``clips.csv``).
    """
    table, info = read_clip_dataset(raw_dir)
    unit = config.unit(table.name)
    rate = config.sample_rate
    unit_samples = round(unit.length_s * rate)
    label_of = {name: i for i, name in enumerate(table.classes)}
    clips = table.clips.rename(columns={"label": "class"})
    clips.insert(clips.columns.get_loc("class") + 1, "label", clips["class"].map(label_of))
    fold_columns = [c for c in clips.columns if c.startswith(("train", "evaluate"))]
    jobs = [_Job(c.clip, Path(raw_dir) / c.path, rate, unit, config.min_clip_s)
            for c in clips.itertuples()]
    summaries, tables, problems = [], [], []
    first_unit = 0
    with atomic_dir(out_dir) as tmp:
        array = NpyAppender(tmp / UNITS.array, "<f4", row_shape=(unit_samples,))
        with worker_pool(workers or os.cpu_count() or 1) as pool:
            for clip, units, starts, result in progress_bar(
                    pool.imap(_run_job, jobs, chunksize=2), total=len(jobs),
                    desc="units", enabled=progress):
                if units is None:
                    problems.append((str(jobs[len(summaries)].path), f"{clip}: {result}"))
                    summaries.append({"status": "failed", "reason": result, "n_units": 0,
                                      "first_unit": -1})
                    continue
                array.append(units)
                start_s = starts / rate
                tables.append(pd.DataFrame({
                    "clip": clip, "unit": np.arange(len(units)), "start_s": start_s,
                    "pad_s": np.maximum(0, start_s + unit.length_s
                                        - result["duration_raw_s"]).round(6),
                    "error_s": _error_seconds(table.errors, clip, start_s, unit.length_s)}))
                summaries.append({"status": "ok", "reason": "", **result,
                                  "n_units": len(units), "first_unit": first_unit})
                first_unit += len(units)
        array.close()
        if problems and config.on_bad_clip == "fail":
            raise BadInputError(f"cannot preprocess {raw_dir}: bad clips (set "
                                "scenes.on_bad_clip: skip to leave them out)", problems)
        if not tables:
            raise BadInputError(f"cannot preprocess {raw_dir}: no usable clip", problems)
        clips = pd.concat([clips, pd.DataFrame(summaries)], axis=1).astype(
            {"sample_rate_raw": "Int64", "channels": "Int64"})
        meta = clips[["clip", "label", "class", "fold", *fold_columns]]
        index = pd.concat(tables, ignore_index=True).merge(meta, on="clip", how="left")[
            ["clip", "unit", "label", "class", "fold", *fold_columns, "start_s", "pad_s",
             "error_s"]]
        index.to_csv(tmp / UNITS.index, index=False)
        clips.drop(columns=fold_columns).to_csv(tmp / UNITS.group_table, index=False)
        (tmp / CLASSES_JSON).write_text(json.dumps(list(table.classes), indent=1) + "\n")
        (tmp / DATASET_JSON).write_text(json.dumps({
            **info, "sample_rate": rate,
            "unit": {"mode": unit.mode, "length_s": unit.length_s, "samples": unit_samples},
            "units": len(index), "clips_ok": int((clips["status"] == "ok").sum()),
            "clips_failed": int((clips["status"] == "failed").sum())}, indent=2) + "\n")
    for where, why in problems:
        log.warning("skipped %s: %s", where, why)
    return clips
