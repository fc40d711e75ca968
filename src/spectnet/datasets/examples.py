"""Example stores: labelled fixed-length examples on disk, read by one class.

Two steps write one, in the same layout:

- the segmentation step (:mod:`spectnet.segmentation.beats`): heart beats, grouped by
  recording (:data:`BEATS`);
- the scene preprocessing (:mod:`spectnet.preprocessing.clips`): units of clips, grouped
  by clip (:data:`UNITS`).

A store is a directory with

- the examples: a float32 ``(N, T)`` ``.npy`` (``beats.npy``, ``units.npy``), memory-mapped
  on load;
- the index: a CSV with one row per example, in the same order (``beats.csv``,
  ``units.csv``): its group (``record``, ``clip``), ``label`` (class index) and fold columns;
- the group table: one row per recording or clip with its status (``recordings.csv``,
  ``clips.csv``);
- units only: ``classes.json`` (class names in label order) and ``dataset.json`` (the data
  set, ``sample_rate``, the unit settings). A beat's labels are PhysioNet's: 0 normal,
  1 abnormal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spectnet.errors import SpectNetError

__all__ = ["Layout", "BEATS", "UNITS", "CLASSES_JSON", "DATASET_JSON", "ExampleStore"]

#: Side files of a unit store, copied from the clip data set it is cut from
#: (:mod:`spectnet.datasets.clips`): class names in label order; the data set and settings.
CLASSES_JSON = "classes.json"
DATASET_JSON = "dataset.json"


@dataclass(frozen=True)
class Layout:
    """The files and columns of one kind of example store."""

    #: what the store is called in messages
    name: str
    #: the ``(N, T)`` examples, the per-example index, the per-group table
    array: str
    index: str
    group_table: str
    #: the index column naming each example's group (a recording, a clip)
    group: str
    #: class names in label order; ``None``: read from ``classes.json``
    classes: tuple[str, ...] | None = None


BEATS = Layout("beat dataset", "beats.npy", "beats.csv", "recordings.csv", "record",
               ("normal", "abnormal"))
UNITS = Layout("unit store", "units.npy", "units.csv", "clips.csv", "clip")
#: columns read as text whatever they hold (record and clip names, class names)
_TEXT_COLUMNS = ("record", "clip", "class")


class ExampleStore:
    """Read access to an example store (a beat dataset, a unit store).

    Args:
        root: the store's directory.
        layout: :data:`BEATS` or :data:`UNITS`; by default the one whose array is there.

    Attributes:
        waveforms: ``(N, T)`` float32, memory-mapped.
        index: one row per example (``N`` rows).
        group_table: one row per recording (beats) or clip (units).
        classes: class names in label order.
        info: ``dataset.json`` (units; empty for beats).

    Raises:
        SpectNetError: a file is missing or unreadable, or the index and the array
            disagree; the message names the directory.

    Example:
        >>> store = ExampleStore("data/processed/physionet2016-beats")       # doctest: +SKIP
        >>> rows = (store.index["validation0"] == 1).to_numpy()               # doctest: +SKIP
        >>> x, y = store.waveforms[rows], store.index.loc[rows, "label"]      # doctest: +SKIP
    """

    def __init__(self, root: str | Path, layout: Layout | None = None):
        self.root = Path(root)
        if layout is None:
            layout = next((kind for kind in (BEATS, UNITS)
                           if (self.root / kind.array).is_file()), None)
            if layout is None:
                raise SpectNetError(f"{self.root}: not an example store (no {BEATS.array} "
                                    f"or {UNITS.array})")
        self.layout = layout
        text = dict.fromkeys(_TEXT_COLUMNS, str)
        try:
            self.waveforms = np.load(self.root / layout.array, mmap_mode="r")
            self.index = pd.read_csv(self.root / layout.index, dtype=text)
            self.group_table = pd.read_csv(self.root / layout.group_table,
                                           dtype=text).fillna({"reason": ""})
            self.classes = layout.classes or tuple(
                json.loads((self.root / CLASSES_JSON).read_text()))
            info = self.root / DATASET_JSON
            self.info = json.loads(info.read_text()) if info.is_file() else {}
        except (OSError, ValueError) as exc:
            raise SpectNetError(f"{self.root}: not a readable {layout.name} ({exc})") from None
        if self.waveforms.ndim != 2 or self.waveforms.dtype != np.float32:
            raise SpectNetError(f"{self.root}: {layout.array} holds {self.waveforms.dtype} "
                                f"{self.waveforms.shape}, expected float32 (N, T)")
        if len(self.index) != len(self.waveforms):
            raise SpectNetError(f"{self.root}: {layout.index} has {len(self.index)} rows but "
                                f"{layout.array} has {len(self.waveforms)} examples")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def sample_rate(self) -> int:
        """The examples' sample rate, as ``dataset.json`` records it (units)."""
        if "sample_rate" not in self.info:
            raise SpectNetError(f"{self.root}: the {self.layout.name} records no sample rate")
        return int(self.info["sample_rate"])
