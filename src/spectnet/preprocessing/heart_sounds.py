"""Preprocess PCG recordings as the authors did (REPRODUCTION.md §1.4).

read → keep the first ``max_duration_s`` → resample to ``sample_rate`` → Butterworth
low-pass and high-pass (zero-phase) → Schmidt spike removal. The result of every
recording goes into one :class:`~spectnet.datasets.store.SignalStore` with a manifest of
record, subset, label, durations, sample counts, clipping, exclusion flag and fold
membership.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spectnet.preprocessing import dsp
from spectnet.preprocessing.audio import BadAudioError as BadRecordError
from spectnet.preprocessing.audio import read_audio_file, resample
from spectnet.config import PreprocessConfig
from spectnet.errors import BadInputError, SpectNetError
from spectnet.parallel import progress_bar, worker_pool
from spectnet.datasets.folds import FOLD_NAMES, read_record_list
from spectnet.datasets.store import SignalStoreWriter

log = logging.getLogger(__name__)

EXCLUSION_LIST = "excluded-training-e"
SKIPPED_REPORT = "skipped.csv"
#: The largest positive value of 16-bit PCM read as float (32767 / 32768). Samples of at
#: least this magnitude (+-32767 or -32768: symmetric and asymmetric clippers alike) are at
#: digital full scale, the mark of a clipped recording.
FULL_SCALE = 1 - 2.0 ** -15


def read_audio(path: str | Path, expected_sample_rate: int) -> np.ndarray:
    """Read a mono recording as float64 in [-1, 1), the scaling of MATLAB ``audioread``.

    Raises:
        BadRecordError: unreadable, empty, non-finite, multi-channel, or wrongly sampled.
    """
    x, sample_rate = read_audio_file(path)
    if x.shape[1] != 1:
        raise BadRecordError(f"expected mono audio, got {x.shape[1]} channels")
    if sample_rate != expected_sample_rate:
        raise BadRecordError(f"sample rate is {sample_rate} Hz, expected "
                             f"{expected_sample_rate} Hz")
    return x[:, 0]


def clipped_fraction(x: np.ndarray) -> float:
    """Fraction of the samples of ``x`` (float, full scale 1) at digital full scale.

    Example:
        >>> clipped_fraction(np.array([0.1, -1.0, 0.5, 32767 / 32768]))
        0.5
    """
    return float(np.mean(np.abs(x) >= FULL_SCALE)) if x.size else 0.0


def preprocess_signal(x: np.ndarray, orig_rate: int, config: PreprocessConfig) -> np.ndarray:
    """Clip, resample and filter one recording (already read as float64).

    Args:
        x: raw signal, shape ``(time,)``, at ``orig_rate`` Hz.
        orig_rate: its sampling rate.
        config: the ``preprocess`` parameters.

    Returns:
        The preprocessed signal at ``config.sample_rate`` Hz, shape ``(time',)``.

    Raises:
        BadRecordError: if the recording is too short to filter.

    Example:
        >>> y = preprocess_signal(np.random.default_rng(0).normal(size=4000) * 0.1,
        ...                       2000, PreprocessConfig())
        >>> y.shape
        (2000,)
    """
    x = x[: int(round(config.max_duration_s * orig_rate))]
    x = resample(x, orig_rate, config.sample_rate, config.resampler)
    try:
        return dsp.prefilter(x, config.sample_rate, config.lowpass_hz, config.highpass_hz,
                             config.filter_order, config.remove_spikes)
    except ValueError as exc:
        raise BadRecordError(str(exc)) from None


@dataclass
class _Job:
    record: str
    path: Path
    config: PreprocessConfig


def _run_job(job: _Job):
    """Worker: returns (record, raw_length, clipped fraction, signal), or
    (record, None, None, reason)."""
    rate = job.config.source_sample_rate
    try:
        x = read_audio(job.path, rate)
        clipped = clipped_fraction(x[: int(round(job.config.max_duration_s * rate))])
        return job.record, x.size, clipped, preprocess_signal(x, rate, job.config)
    except BadRecordError as exc:
        return job.record, None, None, str(exc)


def read_fold_lists(folds_dir: Path) -> dict[str, set[str]]:
    """The fold lists present in ``folds_dir`` (``train0.txt`` …, exclusion list)."""
    return {name: set(read_record_list(folds_dir / f"{name}.txt")) for name in FOLD_NAMES
            if (folds_dir / f"{name}.txt").exists()}


def preprocess_dataset(raw_dir: str | Path, out_dir: str | Path, config: PreprocessConfig,
                       on_bad_record: str = "fail", workers: int | None = None,
                       progress: bool = True) -> pd.DataFrame:
    """Preprocess every recording listed in ``raw_dir/records.csv`` into one store.

    Args:
        raw_dir: an acquired data set (``records.csv``, audio, ``folds/``), as written by
            ``spectnet physionet fetch``.
        out_dir: the store to write (replaced atomically on success).
        config: the ``preprocess`` parameters.
        on_bad_record: ``"fail"`` raises one :class:`BadInputError` listing every bad
            recording and writes nothing; ``"skip"`` leaves them out and lists them in
            ``out_dir/skipped.csv``.
        workers: processes to use (default: all cores).

    Returns:
        The manifest written to ``out_dir/manifest.csv``. Its ``clipped_fraction`` is the
        fraction of the kept raw samples (the first ``max_duration_s``) at digital full
        scale (:func:`clipped_fraction`): 0 for most recordings, a few percent for the
        worst clipped ones of PhysioNet 2016.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not (raw_dir / "records.csv").is_file():
        raise SpectNetError(f"{raw_dir}: no records.csv; acquire the data first "
                            "(spectnet physionet fetch)")
    records = pd.read_csv(raw_dir / "records.csv", dtype={"record": str})
    folds = read_fold_lists(raw_dir / "folds")
    excluded = folds.pop(EXCLUSION_LIST, set())
    jobs = [_Job(r.record, raw_dir / r.audio_path, config) for r in records.itertuples()]
    meta = records.set_index("record")
    workers = workers or os.cpu_count() or 1
    problems, skipped = [], []
    columns = (["record", "subset", "label", "excluded", "n_samples_raw", "duration_raw_s",
                "clipped_fraction", "sample_rate", "duration_s", "offset", "n_samples"]
               + sorted(folds))
    with SignalStoreWriter(out_dir) as writer:
        with worker_pool(workers) as pool:
            results = pool.imap(_run_job, jobs, chunksize=8)
            for record, n_raw, clipped, result in progress_bar(
                    results, total=len(jobs), desc="preprocess", enabled=progress):
                if n_raw is None:
                    problems.append((str(raw_dir / meta.at[record, "audio_path"]), result))
                    skipped.append({"record": record, "reason": result})
                    continue
                writer.append(
                    result, record=record, subset=meta.at[record, "subset"],
                    label=int(meta.at[record, "label"]), excluded=int(record in excluded),
                    n_samples_raw=n_raw,
                    duration_raw_s=n_raw / config.source_sample_rate,
                    clipped_fraction=clipped, sample_rate=config.sample_rate,
                    duration_s=result.size / config.sample_rate,
                    **{name: int(record in members) for name, members in folds.items()})
        if problems and on_bad_record == "fail":
            raise BadInputError(f"cannot preprocess {raw_dir}: bad recordings "
                                "(set physionet.on_bad_record: skip to leave them out)",
                                problems)
        writer.write_text(SKIPPED_REPORT, pd.DataFrame(
            skipped, columns=["record", "reason"]).to_csv(index=False))
        manifest = writer.close(columns)
    for item in skipped:
        log.warning("skipped %s: %s", item["record"], item["reason"])
    return manifest
