"""Batch samplers: the authors' double-balanced sampler and a plain shuffled one.

Both yield ``LongTensor`` index batches into an example set, draw from their own
``torch.Generator`` (so model code that consumes the global RNG, such as dropout, does
not change which examples are drawn), and save / restore their whole state, generator
included, so an interrupted run resumes with exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["DoubleBalancedSampler", "ShuffledSampler", "make_sampler"]


def _generator_state(generator: torch.Generator) -> Tensor:
    return generator.get_state().clone()


class DoubleBalancedSampler:
    """Double-balanced training (DBT): every batch holds the same number of examples from
    each (class, domain) cell (REPRODUCTION.md §4.1, the authors'
    ``BalancedDannAudioDataGenerator``).

    * cells are the distinct (label, domain) pairs, in sorted order; 12 for PhysioNet's
      two classes x six subsets a-f;
    * ``chunk = batch_size // n_cells`` examples per cell and batch, so a batch holds
      ``chunk * n_cells`` examples (1000 -> 83 x 12 = 996, the paper's batch);
    * at the start of a cycle every cell is permuted; a cell with fewer than ``chunk``
      examples left is re-permuted and restarted (small cells are oversampled, the
      leftover examples of that pass are skipped); once every cell has run out at least
      once, the next batch starts a new cycle;
    * one epoch is ``largest cell // chunk + 1`` batches: one pass over the largest cell,
      ending with the batch that finds it exhausted (the authors' notebook loop,
      ``steps + 1``), so epochs line up with the cycles.

    Args:
        labels, domains: ``(N,)`` integer class and domain of every example.
        batch_size: requested batch size (rounded down to a multiple of the cell count).
        seed: seed of the sampler's own generator.

    Example:
        >>> labels = np.array([0] * 6 + [1] * 3); domains = np.array([0, 1] * 4 + [1])
        >>> sampler = DoubleBalancedSampler(labels, domains, batch_size=8, seed=0)
        >>> sampler.n_cells, sampler.chunk, sampler.steps_per_epoch
        (4, 2, 2)
        >>> batch = sampler.next_batch()
        >>> sorted(zip(labels[batch].tolist(), domains[batch].tolist()))
        [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 0), (1, 1), (1, 1)]
    """

    def __init__(self, labels, domains, batch_size: int, seed: int) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        domains = np.asarray(domains, dtype=np.int64)
        if labels.shape != domains.shape or labels.ndim != 1:
            raise ValueError(f"labels and domains must be 1-D of equal length, got "
                             f"{labels.shape} and {domains.shape}")
        keys = np.unique(np.stack([labels, domains], 1), axis=0)
        self.cells = [tuple(int(v) for v in key) for key in keys]
        self.n_cells = len(self.cells)
        self.chunk = int(batch_size) // max(self.n_cells, 1)
        if self.chunk < 1:
            raise ValueError(f"batch_size {batch_size} is smaller than the number of "
                             f"(class, domain) cells ({self.n_cells}): need >= 1 per cell")
        self.batch_size = self.chunk * self.n_cells
        self._members = [torch.from_numpy(np.flatnonzero((labels == lab) & (domains == dom)))
                         for lab, dom in self.cells]
        self.cell_sizes = [len(m) for m in self._members]
        self.steps_per_epoch = max(self.cell_sizes) // self.chunk + 1
        self.generator = torch.Generator().manual_seed(int(seed))
        self._order: list[Tensor] = []
        self._position = [0] * self.n_cells
        self._exhausted = [False] * self.n_cells
        self._new_cycle = True

    def _permute(self, cell: int) -> Tensor:
        members = self._members[cell]
        return members[torch.randperm(len(members), generator=self.generator)]

    def next_batch(self) -> Tensor:
        """The next batch of ``chunk * n_cells`` example indices (cell by cell)."""
        if self._new_cycle:
            self._order = [self._permute(c) for c in range(self.n_cells)]
            self._position = [0] * self.n_cells
            self._exhausted = [False] * self.n_cells
            self._new_cycle = False
        parts = []
        for c in range(self.n_cells):
            if self.cell_sizes[c] - self._position[c] < self.chunk:
                self._exhausted[c] = True
                self._order[c] = self._permute(c)
                self._position[c] = 0
            start = self._position[c]
            # a cell smaller than chunk contributes all it has, repeated to fill its share
            take = self._order[c][start:start + self.chunk]
            if len(take) < self.chunk:
                take = take.repeat(self.chunk // max(len(take), 1) + 1)[:self.chunk]
            parts.append(take)
            self._position[c] = start + self.chunk
        if all(self._exhausted):
            self._new_cycle = True
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"generator": _generator_state(self.generator), "order": list(self._order),
                "position": list(self._position), "exhausted": list(self._exhausted),
                "new_cycle": self._new_cycle}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order = list(state["order"])
        self._position = list(state["position"])
        self._exhausted = list(state["exhausted"])
        self._new_cycle = bool(state["new_cycle"])


class ShuffledSampler:
    """Plain shuffled batches: one random permutation of all examples per epoch, cut into
    ``ceil(N / batch_size)`` batches (the last may be smaller).

    Example:
        >>> sampler = ShuffledSampler(10, batch_size=4, seed=0)
        >>> sampler.steps_per_epoch
        3
        >>> sorted(torch.cat([sampler.next_batch() for _ in range(3)]).tolist())
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int) -> None:
        if n_examples < 1 or batch_size < 1:
            raise ValueError(f"need at least one example and batch_size >= 1, got "
                             f"{n_examples} examples and batch_size {batch_size}")
        self.n_examples, self.batch_size = int(n_examples), int(batch_size)
        self.steps_per_epoch = -(-self.n_examples // self.batch_size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._order = torch.empty(0, dtype=torch.long)
        self._position = 0

    def next_batch(self) -> Tensor:
        if self._position >= len(self._order):
            self._order = torch.randperm(self.n_examples, generator=self.generator)
            self._position = 0
        batch = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"generator": _generator_state(self.generator), "order": self._order,
                "position": self._position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order = state["order"]
        self._position = int(state["position"])


def make_sampler(kind: str, labels, domains, batch_size: int, seed: int):
    """``"double_balanced"`` or ``"shuffled"`` sampler over examples with these labels."""
    if kind == "double_balanced":
        return DoubleBalancedSampler(labels, domains, batch_size, seed)
    if kind == "shuffled":
        return ShuffledSampler(len(labels), batch_size, seed)
    raise ValueError(f"unknown sampler {kind!r}; expected 'double_balanced' or 'shuffled'")
