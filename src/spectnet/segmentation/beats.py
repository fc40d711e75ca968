"""The segmentation step: every recording of a signal store segmented and cut into
cardiac cycles, written as the beat dataset (an example store,
:data:`~spectnet.datasets.examples.BEATS`):

- ``beats.npy``: float32, shape ``(n_beats, beat_length)``, every beat zero-padded or
  truncated to ``beat_length`` samples;
- ``beats.csv``: one row per beat, in the same order: record, beat number, onset,
  S1 onset, true length, truncated flag, label, subset (domain), exclusion and folds;
- ``recordings.csv``: one row per recording: heart rate, systolic interval, number of
  beats, status (``ok``, ``flagged`` or ``failed``) and the reason, with the store's
  manifest columns (``clipped_fraction`` among them). A recording that is too short or
  too noisy to segment is listed as ``failed``; it never stops the run.

Read it with :class:`~spectnet.datasets.examples.ExampleStore`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spectnet.atomic import atomic_dir, atomic_write_text
from spectnet.config import BeatsConfig, SegmentationConfig
from spectnet.datasets.examples import BEATS
from spectnet.datasets.store import NpyAppender, SignalStore
from spectnet.errors import SpectNetError
from spectnet.parallel import progress_bar, worker_pool
from spectnet.segmentation.cycles import extract_beats
from spectnet.segmentation.springer import SegmentationError, segment_heart_cycles

__all__ = ["CLIPPED_FRACTION", "build_beat_dataset", "summarise"]

log = logging.getLogger(__name__)

#: A recording with at least this fraction of its samples at full scale counts as clipped
#: in the summary (9 of the 3240 PhysioNet 2016 recordings, the worst at 3 %).
CLIPPED_FRACTION = 0.01

_store: SignalStore | None = None  # each worker's handle on the memory-mapped signals


@dataclass
class _Segmented:
    record: str
    states: np.ndarray | None  # int8 audio-rate states; None when segmentation failed
    summary: dict


def _segment_one(job: tuple[str, int, bool]) -> _Segmented:
    """Worker: segment one recording. Only the int8 states travel back to the parent,
    which cuts the beats from its own memory map (cheaper than pickling the beats)."""
    record, sample_rate, emulate_underflow = job
    try:
        seg = segment_heart_cycles(np.asarray(_store[record]), sample_rate,
                                   emulate_underflow=emulate_underflow)
    except SegmentationError as exc:
        return _Segmented(record, None, {"status": "failed", "reason": str(exc)})
    return _Segmented(record, seg.states, {
        "reason": "; ".join(seg.flags), "heart_rate_bpm": seg.heart_rate_bpm,
        "systolic_interval_s": seg.systolic_interval_s})


def _cut_beats(x: np.ndarray, seg: _Segmented, beats: BeatsConfig):
    cut, info = extract_beats(x, seg.states, beats.beat_length,
                              emulate_zero_last_beat=beats.emulate_zero_last_beat)
    reasons = [r for r in (seg.summary["reason"],
                           "no complete cardiac cycle" if info.n_beats == 0 else "") if r]
    summary = {**seg.summary, "status": "flagged" if reasons else "ok",
               "reason": "; ".join(reasons), "n_beats": info.n_beats,
               "n_truncated": int(info.truncated.sum())}
    table = pd.DataFrame({"record": seg.record, "beat": np.arange(info.n_beats),
                          "onset": info.onset, "s1_onset": info.s1_onset,
                          "true_length": info.true_length,
                          "truncated": info.truncated.astype(int)})
    return cut, table, summary


def _open_store(root: str) -> None:
    global _store
    _store = SignalStore(root)


def build_beat_dataset(store_dir: str | Path, out_dir: str | Path,
                       segmentation: SegmentationConfig, beats: BeatsConfig,
                       summary_path: str | Path | None = None, workers: int | None = None,
                       progress: bool = True) -> pd.DataFrame:
    """Segment every recording of a signal store and write the beat dataset.

    Args:
        store_dir: a preprocessed :class:`~spectnet.datasets.store.SignalStore` (1 kHz).
        out_dir: the dataset directory to write (replaced atomically on success).
        segmentation, beats: the ``segmentation`` and ``beats`` parameters.
        summary_path: where to write the summary metrics (JSON), if given.
        workers: processes (default: all cores).

    Returns:
        The per-recording table (``recordings.csv``).
    """
    store = SignalStore(store_dir)
    if "clipped_fraction" not in store.manifest:
        raise SpectNetError(f"{store_dir} was written by an older spectnet (no clipped_fraction "
                            "in its manifest): run the preprocessing step again")
    meta = store.manifest.drop(columns=["offset", "n_samples_raw", "duration_raw_s"],
                               errors="ignore")
    jobs = [(r.record, int(r.sample_rate), segmentation.emulate_underflow)
            for r in meta.itertuples()]
    fold_columns = [c for c in meta.columns if c.startswith(("train", "validation"))]
    per_beat_meta = ["record", "label", "subset", "excluded", *fold_columns]
    summaries, tables = [], []
    with atomic_dir(out_dir) as tmp:
        array = NpyAppender(tmp / BEATS.array, "<f4", row_shape=(beats.beat_length,))
        with worker_pool(workers or os.cpu_count() or 1, _open_store,
                         (str(store_dir),)) as pool:
            for seg in progress_bar(pool.imap(_segment_one, jobs, chunksize=4),
                                    total=len(jobs), desc="segment", enabled=progress):
                if seg.states is None:
                    log.warning("%s: cannot segment: %s", seg.record, seg.summary["reason"])
                    summaries.append({"record": seg.record, **seg.summary})
                    continue
                cut, table, summary = _cut_beats(np.asarray(store[seg.record]), seg, beats)
                array.append(cut)
                tables.append(table)
                summaries.append({"record": seg.record, **summary})
        array.close()
        recordings = meta.merge(pd.DataFrame(summaries), on="record", how="left")
        index = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
            columns=["record", "beat", "onset", "s1_onset", "true_length", "truncated"])
        index = index.merge(meta[per_beat_meta], on="record", how="left")
        index.to_csv(tmp / BEATS.index, index=False)
        recordings.to_csv(tmp / BEATS.group_table, index=False)
    if summary_path is not None:
        atomic_write_text(summary_path, json.dumps(summarise(recordings, index), indent=2) + "\n")
    return recordings


def summarise(recordings: pd.DataFrame, index: pd.DataFrame) -> dict:
    """Headline numbers of a beat dataset (the DVC metrics of the segmentation step);
    ``recordings_clipped`` counts the recordings with at least :data:`CLIPPED_FRACTION` of
    their samples at full scale."""
    used = recordings[recordings["excluded"] == 0]
    used_beats = index[index["excluded"] == 0]
    lengths = used_beats["true_length"]
    return {
        "recordings": int(len(recordings)),
        "recordings_used": int(len(used)),
        "recordings_failed": int((recordings["status"] == "failed").sum()),
        "recordings_flagged": int((recordings["status"] == "flagged").sum()),
        "recordings_clipped": int((recordings["clipped_fraction"] >= CLIPPED_FRACTION).sum()),
        "clipped_fraction_max": float(recordings["clipped_fraction"].max()),
        "beats_total": int(len(index)),
        "beats_used": int(len(used_beats)),
        "beats_truncated": int(used_beats["truncated"].sum()),
        "cycle_length_median_samples": float(lengths.median()) if len(lengths) else 0.0,
        "cycle_length_p05_samples": float(lengths.quantile(0.05)) if len(lengths) else 0.0,
        "cycle_length_p95_samples": float(lengths.quantile(0.95)) if len(lengths) else 0.0,
        "heart_rate_median_bpm": float(used["heart_rate_bpm"].median()),
    }
