"""One-file storage of many variable-length 1-D signals.

A store is a directory with ``signals.npy`` (every signal concatenated, float64) and
``manifest.csv`` (one row per signal, with its ``offset`` and ``n_samples`` in the big
array plus any metadata). Opening memory-maps the array, so reading one record costs
one slice, not a file parse, and the whole set opens in milliseconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from spectnet.atomic import remove_path, replace_dir, temp_sibling
from spectnet.errors import NoSpaceError, SpectNetError

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


class NpyAppender:
    """Write a ``.npy`` file row block by row block, without holding it in memory.

    Rows stream to a raw side file; :meth:`close` writes the header (whose shape is only
    known at the end) and the data into ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
        >>> w = NpyAppender(path, "<f4", row_shape=(3,))
        >>> w.append(np.ones((2, 3))); w.append(np.zeros((1, 3))); w.close()
        >>> np.load(path).shape
        (3, 3)
    """

    def __init__(self, path: str | Path, dtype: str, row_shape: tuple[int, ...] = ()):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.length = 0
        self._raw_path = self.path.with_suffix(".raw")
        self._raw = open(self._raw_path, "wb")

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {rows.shape[1:]}, "
                             f"expected {self.row_shape}")
        self._raw.write(rows.tobytes())
        self.length += rows.shape[0]

    def close(self) -> None:
        self._raw.close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.length, *self.row_shape)}
        with open(self.path, "wb") as out, open(self._raw_path, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 16 << 20)
        self._raw_path.unlink()

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)


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
        self._tmp = temp_sibling(self.root)
        self._tmp.mkdir()
        self._signals = NpyAppender(self._tmp / SIGNALS, "<f8")
        self._rows: list[dict] = []

    def append(self, signal: np.ndarray, **metadata) -> None:
        offset = self._signals.length
        self._signals.append(np.ravel(signal))
        self._rows.append({**metadata, "offset": offset,
                           "n_samples": self._signals.length - offset})

    def write_text(self, name: str, text: str) -> None:
        """Add a small side file (a report, say), published together with the store."""
        (self._tmp / name).write_text(text)

    def close(self, manifest_columns: list[str] | None = None) -> pd.DataFrame:
        """Publish the store; returns the manifest."""
        self._signals.close()
        manifest = pd.DataFrame(self._rows, columns=manifest_columns)
        manifest.to_csv(self._tmp / MANIFEST, index=False)
        replace_dir(self._tmp, self.root)
        return manifest

    def abort(self) -> None:
        self._signals.abort()
        remove_path(self._tmp)

    def __enter__(self) -> "SignalStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            if NoSpaceError.caused(exc):
                raise NoSpaceError(self.root) from None
