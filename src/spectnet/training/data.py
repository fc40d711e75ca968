"""Labelled fixed-length examples gathered by index: the one data interface of training.

Heart beats and scene units are example stores (:class:`~spectnet.datasets.examples.
ExampleStore`: a float32 ``(N, T)`` array and a CSV with one row per example, in the same
order). :func:`load_examples` selects rows of a store by a mask and gives an
:class:`ExampleSet`: the waveforms in memory (on the GPU when there is one), or left
memory-mapped for sets larger than RAM, with labels, domains and groups (the recording or
clip each example belongs to). Batches are gathered by index tensors; there is no
per-example Python. A memory-mapped set streams: :meth:`ExampleSet.batches` reads the
next batches from disk in a background thread (into pinned memory on CUDA, copied
asynchronously) while the caller computes on the current one.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from spectnet.datasets.examples import ExampleStore
from spectnet.errors import SpectNetError
from spectnet.runtime import default_device

__all__ = ["ExampleSet", "load_examples"]


@dataclass
class ExampleSet:
    """Labelled examples.

    Attributes:
        waveforms: ``(N, T)`` float32: a tensor (in memory, on ``device``) or a numpy
            array / memory map (gathered on demand and moved to ``device``).
        labels: ``(N,)`` int64 class indices (on ``device``).
        domains: ``(N,)`` int domain codes (numpy), e.g. the PhysioNet subset a-f.
        groups: ``(N,)`` the recording or clip of each example (numpy, str).
        classes: class names, in label order.
        domain_names: domain names, in code order.
        index: the CSV rows of the examples (metadata for reports).

    Example:
        >>> examples = ExampleSet(torch.arange(12.).view(4, 3), torch.tensor([0, 1, 1, 0]),
        ...                       np.zeros(4, int), np.array(list("aabb")), ("no", "yes"))
        >>> x, y = examples.batch(torch.tensor([3, 1]))
        >>> x.tolist(), y.tolist()
        ([[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]], [0, 1])
    """

    waveforms: Tensor | np.ndarray
    labels: Tensor
    domains: np.ndarray
    groups: np.ndarray
    classes: tuple[str, ...]
    domain_names: tuple[str, ...] = ()
    index: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if len(self.waveforms) != len(self.labels):
            raise ValueError(f"{len(self.waveforms)} waveforms but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_samples(self) -> int:
        return int(self.waveforms.shape[1])

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def subset(self, mask: np.ndarray) -> "ExampleSet":
        """The examples where ``mask`` (``(N,)`` booleans) holds, in order."""
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask)
        if not self.streamed:
            waveforms = self.waveforms[torch.from_numpy(rows).to(self.waveforms.device)]
        else:
            waveforms = _RowView(self.waveforms, rows)
        index = self.index[mask].reset_index(drop=True) if self.index is not None else None
        return ExampleSet(waveforms, self.labels[torch.from_numpy(rows).to(self.device)],
                          self.domains[mask], self.groups[mask], self.classes,
                          self.domain_names, index)

    @property
    def streamed(self) -> bool:
        """The waveforms stay on disk (memory-mapped): each batch is read when it is needed."""
        return not isinstance(self.waveforms, Tensor)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(len(index), T)`` waveforms and ``(len(index),)`` labels on the set's device."""
        labels = self.labels[index.to(self.device)]
        if not self.streamed:
            return self.waveforms[index.to(self.waveforms.device)], labels
        rows = index.cpu().numpy()
        order = np.argsort(rows, kind="stable")  # memory maps read fastest in file order
        # page-locked on CUDA, so the copy below runs asynchronously (DMA)
        gathered = torch.empty((len(rows), self.n_samples), dtype=torch.float32,
                               pin_memory=self.device.type == "cuda")
        gathered.numpy()[order] = self.waveforms[rows[order]]
        return gathered.to(self.device, non_blocking=True), labels

    def batches(self, indices: Iterable[Tensor], prefetch: int = 2
                ) -> Iterator[tuple[Tensor, Tensor]]:
        """The :meth:`batch` of each index tensor of ``indices``, in order.

        A streamed set reads up to ``prefetch`` batches ahead in a background thread, so
        disk reads overlap the caller's computation; ``indices`` is still consumed in the
        caller's thread and never further than it yields, plus ``prefetch`` (a sampler
        drawing them keeps its sequence). An in-memory set gathers each batch on demand.

        Example:
            >>> examples = ExampleSet(np.arange(12, dtype=np.float32).reshape(4, 3),
            ...                       torch.tensor([0, 1, 1, 0]), np.zeros(4, int),
            ...                       np.array(list("aabb")), ("no", "yes"))
            >>> [y.tolist() for _, y in examples.batches([torch.tensor([3]), torch.tensor([1, 2])])]
            [[0], [1, 1]]
        """
        if not self.streamed or prefetch < 1:
            yield from map(self.batch, indices)
            return
        indices = iter(indices)
        with ThreadPoolExecutor(1, thread_name_prefix="spectnet-batches") as reader:
            pending = deque(reader.submit(self.batch, i) for i in itertools.islice(indices, prefetch))
            try:
                while pending:
                    ready = pending.popleft().result()
                    pending.extend(reader.submit(self.batch, i) for i in itertools.islice(indices, 1))
                    yield ready
            finally:  # the caller stopped early: drop the reads not started
                for future in pending:
                    future.cancel()


def load_examples(store: ExampleStore, mask: np.ndarray | pd.Series | Callable, *,
                  domain_column: str | None = None, device: torch.device | str | None = None,
                  in_memory: bool = True) -> ExampleSet:
    """Select the examples of ``store`` where ``mask`` holds.

    Args:
        store: the example store (its ``label`` column indexes ``store.classes``; its
            group column names each example's recording or clip).
        mask: ``(N,)`` booleans over the index's rows, or a function of the index.
        domain_column: the index column of the domain (any values; coded in sorted order).
        device: where batches go (default: CUDA when available, else CPU).
        in_memory: read the selected rows into memory (on ``device``); ``False`` keeps
            them memory-mapped and gathers each batch from disk.
    """
    device = default_device(device)
    index, waveforms, classes = store.index, store.waveforms, store.classes
    mask = np.asarray(mask(index) if callable(mask) else mask, dtype=bool)
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        raise SpectNetError(f"{store.root}: no examples selected")
    selected = index.iloc[rows].reset_index(drop=True)
    labels = selected["label"].to_numpy()
    if labels.min() < 0 or labels.max() >= len(classes):
        raise SpectNetError(f"{store.root}: labels outside 0..{len(classes) - 1} in column "
                            "'label'")
    if domain_column is None:
        domain_codes, domain_names = np.zeros(len(rows), dtype=np.int64), ()
    else:
        names, domain_codes = np.unique(selected[domain_column].astype(str), return_inverse=True)
        domain_names = tuple(names.tolist())
    if in_memory:
        data: Tensor | np.ndarray = torch.from_numpy(np.ascontiguousarray(waveforms[rows])).to(device)
    else:
        data = waveforms if rows.size == len(waveforms) and rows[-1] == len(rows) - 1 else _RowView(waveforms, rows)
    return ExampleSet(data, torch.as_tensor(labels, dtype=torch.long, device=device),
                      domain_codes.astype(np.int64),
                      selected[store.layout.group].to_numpy(dtype=str), tuple(classes),
                      domain_names, selected)


class _RowView:
    """Rows ``rows`` of a memory-mapped array, indexable like an array (lazy)."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows
        self.shape = (len(rows), array.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.array[self.rows[index]]
