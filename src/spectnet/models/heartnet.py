"""The Gammatone baselines of Table II: four gammatone filters feeding a 1D or a 2D CNN.

- :class:`Heartnet1D`: Heartnet / Potes' four-branch 1D CNN, one branch per filter
  (REPRODUCTION.md §3.2, from ``heartnet codes/modules.py heartnetTop``).
- :class:`Heartnet2D`: the four filter outputs stacked into a ``4 x T`` image and
  classified by a 2D CNN "of the same depth as Heartnet" (§3.3). No code for it survives;
  this is our proposal: two conv stages mirroring a Heartnet branch with (2, 5) kernels.

Both take the filterbank output ``(B, 4, T)`` (the gammatone filters applied with 'same'
padding, see :class:`spectnet.models.classifiers.GammatoneClassifier`) and return logits.
Batch norm uses the Heartnet code's eps (1.1e-5) but PyTorch's momentum (0.1), not
Keras' 0.99 (0.01 in PyTorch terms): the L2 penalty shrinks the kernels every step, and
with momentum 0.01 the running statistics lag hundreds of steps behind; a run shorter
than Heartnet's 300 epochs then evaluates with statistics off by orders of magnitude
(measured: the validation predictions collapse to one class; ``docs/deviations.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spectnet.models.shapes import flat_size

__all__ = ["Heartnet1D", "Heartnet2D"]

_BN = {"eps": 1.1e-5}


def _branch_1d(dropout: float) -> nn.Sequential:
    """One Heartnet branch: (B, 1, T) -> (B, 4, ((T - 4) // 2 - 4) // 2)."""
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, bias=False), nn.BatchNorm1d(8, **_BN), nn.ReLU(),
        nn.Dropout(dropout), nn.MaxPool1d(2),
        nn.Conv1d(8, 4, 5, bias=False), nn.BatchNorm1d(4, **_BN), nn.ReLU(),
        nn.Dropout(dropout), nn.MaxPool1d(2),
    )


class _DenseHead(nn.Module):
    """Flatten -> Dense(20, ReLU, He-normal init) -> Dropout -> Dense(n_classes)."""

    def __init__(self, n_features: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, 20)
        nn.init.kaiming_normal_(self.hidden.weight, nonlinearity="relu")  # Keras he_normal
        nn.init.zeros_(self.hidden.bias)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(20, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.drop(torch.relu(self.hidden(x.flatten(1)))))


class Heartnet1D(nn.Module):
    """Four-branch 1D CNN (Heartnet / Potes et al.), one branch per gammatone filter.

    Args:
        n_samples: samples per beat (2,500).
        n_branches: filters, one branch each (4).
        n_classes: outputs (2).
        dropout: dropout after each conv stage (0.5); the dense layer's dropout is 0.

    Shape:
        input ``(B, n_branches, n_samples)``; output ``(B, n_classes)`` logits.

    Example:
        >>> net = Heartnet1D()
        >>> net.n_features                       # 4 branches x 4 channels x 622
        9952
        >>> tuple(net(torch.randn(2, 4, 2500)).shape)
        (2, 2)
    """

    def __init__(self, n_samples: int = 2500, n_branches: int = 4, n_classes: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.n_samples, self.n_branches = int(n_samples), int(n_branches)
        self.branches = nn.ModuleList(_branch_1d(dropout) for _ in range(n_branches))
        self.n_features = flat_size(self, self._features, 1, n_branches, n_samples)
        self.head = _DenseHead(self.n_features, n_classes, dropout=0.0)

    def _features(self, filtered: Tensor) -> Tensor:
        return torch.cat([branch(filtered[:, i:i + 1]) for i, branch in
                          enumerate(self.branches)], dim=1).flatten(1)

    def forward(self, filtered: Tensor) -> Tensor:
        return self.head(self._features(filtered))


class Heartnet2D(nn.Module):
    """2D CNN on the stacked filter outputs (our reconstruction of the paper's baseline).

    Two conv stages mirroring a Heartnet branch: Conv(1 -> 8, (2, 5)) -> BN -> ReLU ->
    Dropout -> MaxPool(1, 2) -> Conv(8 -> 4, (2, 5)) -> BN -> ReLU -> Dropout ->
    MaxPool(1, 2) -> Dense 20 -> Dense n_classes.

    Shape:
        input ``(B, n_filters, n_samples)``; output ``(B, n_classes)`` logits.

    Example:
        >>> net = Heartnet2D()
        >>> net.n_features                       # 4 channels x 2 x 622
        4976
        >>> tuple(net(torch.randn(2, 4, 2500)).shape)
        (2, 2)
    """

    def __init__(self, n_samples: int = 2500, n_filters: int = 4, n_classes: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if n_filters < 3:
            raise ValueError(f"Heartnet2D needs at least 3 filters (two (2, 5) convs), got {n_filters}")
        self.n_samples, self.n_filters = int(n_samples), int(n_filters)
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, (2, 5), bias=False), nn.BatchNorm2d(8, **_BN), nn.ReLU(),
            nn.Dropout(dropout), nn.MaxPool2d((1, 2)),
            nn.Conv2d(8, 4, (2, 5), bias=False), nn.BatchNorm2d(4, **_BN), nn.ReLU(),
            nn.Dropout(dropout), nn.MaxPool2d((1, 2)),
        )
        self.n_features = flat_size(self, self.body, 1, 1, n_filters, n_samples)
        self.head = _DenseHead(self.n_features, n_classes, dropout=0.0)

    def forward(self, filtered: Tensor) -> Tensor:
        return self.head(self.body(filtered.unsqueeze(1)))
