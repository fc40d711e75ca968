"""The scene data step: which labelled-clip data set to use, read it, materialise it.

``scenes.dataset: auto`` takes the TUT Acoustic Scenes 2016 development set (the paper's
Table III data) when ``scenes.data.dcase2016.local_path`` holds it, and otherwise the ESC-10
demonstration set. It never starts the 7.5 GB DCASE download by itself: that takes
``scenes.dataset: dcase2016``. The choice and its reason are logged and written to
``dataset.json``, so every downstream result can say which data it stands on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from spectnet.config import ScenesConfig
from spectnet.datasets import dcase
from spectnet.datasets.clips import (ClipTable, read_class_folders, read_clip_csv, read_esc10,
                                     read_esc50, write_clip_dataset)
from spectnet.errors import BadInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetChoice:
    """The data set the scene steps use, and why."""

    dataset: str
    reason: str


def choose_dataset(config: ScenesConfig) -> DatasetChoice:
    """Resolve ``scenes.dataset`` (``auto`` looks for the DCASE 2016 local copy)."""
    if config.dataset != "auto":
        return DatasetChoice(config.dataset, f"scenes.dataset is {config.dataset}")
    path = config.data.dcase2016.local_path
    if dcase.find_root(path) is not None:
        return DatasetChoice("dcase2016", f"auto: the DCASE 2016 development set is at {path}")
    return DatasetChoice("esc10", (
        f"auto: no DCASE 2016 development set at {path} (no meta.txt), so the ESC-10 "
        f"demonstration set at {config.data.esc10.local_path} is used; Table III needs DCASE "
        "2016: put a copy there, or set scenes.dataset: dcase2016 to download it (7.5 GB)"))


def read_dataset(config: ScenesConfig, dataset: str, cache_dir: str | os.PathLike[str], *,
                 progress: bool = True) -> ClipTable:
    """Read ``dataset`` from the source configured in ``config.data`` (downloading DCASE
    2016 into ``cache_dir`` when its source says so)."""
    data = config.data
    if dataset == "dcase2016":
        source, path = data.dcase2016.source, data.dcase2016.local_path
        if source == "auto":
            source = "local" if dcase.find_root(path) is not None else "download"
        if source == "download":
            log.info("downloading the DCASE 2016 development set from %s", data.dcase2016.url)
            path = dcase.download_development_set(data.dcase2016.url,
                                                  Path(cache_dir) / "dcase2016", progress=progress)
        return dcase.read_development_set(path)
    if dataset == "esc10":
        return read_esc10(data.esc10.local_path)
    if dataset == "esc50":
        return read_esc50(data.esc50.local_path, data.esc50.subset)
    if dataset == "folder":
        return read_class_folders(data.folder.local_path, data.folder.n_folds, data.folder.seed)
    if dataset == "csv":
        return read_clip_csv(data.csv.path, data.csv.audio_root, data.csv.n_folds, data.csv.seed)
    raise ValueError(f"unknown data set {dataset!r}")


def acquire(config: ScenesConfig, dest_dir: str | os.PathLike[str], *,
            cache_dir: str | os.PathLike[str], progress: bool = True) -> ClipTable:
    """The ``fetch_scenes`` step: choose, read and materialise the configured data set.

    Clips with problems stop the step with one report listing all of them
    (``scenes.on_bad_clip: fail``), or are left out and listed in ``acquire_report.csv``
    (``skip``).
    """
    choice = choose_dataset(config)
    fallback = config.dataset == "auto" and choice.dataset != "dcase2016"
    (log.warning if fallback else log.info)("data set %s (%s)", choice.dataset, choice.reason)
    table = read_dataset(config, choice.dataset, cache_dir, progress=progress)
    problems = [(i.where, f"{i.clip}: {i.reason}") for i in table.issues]
    if problems and config.on_bad_clip == "fail":
        raise BadInputError(f"{table.root}: bad clips (set scenes.on_bad_clip: skip to leave "
                            "them out)", problems)
    if table.clips.empty:
        raise BadInputError(f"{table.root}: no usable clips", problems or [(str(table.root), "empty")])
    for where, why in problems:
        log.warning("left out: %s: %s", where, why)
    write_clip_dataset(table, dest_dir, description={
        "requested": config.dataset, "reason": choice.reason,
        "settings": getattr(config.data, choice.dataset).to_dict()})
    return table
