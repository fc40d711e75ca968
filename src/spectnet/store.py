"""One-file storage of many variable-length 1-D signals.

A store is a directory with ``signals.npy`` (every signal concatenated, float64) and
``manifest.csv`` (one row per signal, with its ``offset`` and ``n_samples`` in the big
array plus any metadata). Opening memory-maps the array, so reading one record costs
one slice, not a file parse, and the whole set opens in milliseconds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from spectnet.errors import SpectNetError

SIGNALS = "signals.npy"
MANIFEST = "manifest.csv"


class SignalStore:
    """Read access to a store written by :class:`SignalStoreWriter`.

    Example:
        >>> store = SignalStore("data/interim/physionet2016")  # doctest: +SKIP
        >>> x = store["a0001"]                                  # doctest: +SKIP
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.manifest = pd.read_csv(self.root / MANIFEST, dtype={"record": str})
            self._signals = np.load(self.root / SIGNALS, mmap_mode="r")
        except FileNotFoundError as exc:
            raise SpectNetError(f"{self.root}: not a signal store ({exc.filename} missing); "
                                "run the preprocessing step first") from None
        self._rows = {r: i for i, r in enumerate(self.manifest["record"])}

    def __len__(self) -> int:
        return len(self.manifest)

    def __contains__(self, record: str) -> bool:
        return record in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.manifest["record"])

    def __getitem__(self, record: str) -> np.ndarray:
        """The signal of ``record`` as a read-only float64 view, shape ``(time,)``."""
        try:
            row = self.manifest.iloc[self._rows[record]]
        except KeyError:
            raise KeyError(f"record {record!r} is not in the store {self.root}") from None
        start = int(row["offset"])
        return self._signals[start: start + int(row["n_samples"])]


class SignalStoreWriter:
    """Append signals one by one, then publish the store atomically.

    Signals are streamed to a temporary raw file, so memory stays flat whatever the
    total size; :meth:`close` writes the ``.npy`` header and the manifest into a
    temporary directory and renames it over ``root``. An exception inside the ``with``
    block leaves any previous store at ``root`` untouched.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(f"{self.root}.tmp-{os.getpid()}")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir()
        self._raw = open(self._tmp / "signals.raw", "wb")
        self._length = 0
        self._rows: list[dict] = []

    def append(self, signal: np.ndarray, **metadata) -> None:
        signal = np.ascontiguousarray(signal, dtype="<f8")
        self._raw.write(signal.tobytes())
        self._rows.append({**metadata, "offset": self._length, "n_samples": signal.size})
        self._length += signal.size

    def write_text(self, name: str, text: str) -> None:
        """Add a small side file (a report, say), published together with the store."""
        (self._tmp / name).write_text(text)

    def close(self, manifest_columns: list[str] | None = None) -> pd.DataFrame:
        """Publish the store; returns the manifest."""
        self._raw.close()
        raw = self._tmp / "signals.raw"
        with open(self._tmp / SIGNALS, "wb") as out, open(raw, "rb") as src:
            header = {"descr": "<f8", "fortran_order": False, "shape": (self._length,)}
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 16 << 20)
        raw.unlink()
        manifest = pd.DataFrame(self._rows, columns=manifest_columns)
        manifest.to_csv(self._tmp / MANIFEST, index=False)
        old = Path(f"{self.root}.old-{os.getpid()}")
        if self.root.exists():
            os.replace(self.root, old)
        os.replace(self._tmp, self.root)
        shutil.rmtree(old, ignore_errors=True)
        return manifest

    def abort(self) -> None:
        self._raw.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "SignalStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
