"""Shape probing shared by the CNNs."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


def flat_size(module: nn.Module, layers: Callable[[Tensor], Tensor], *shape: int) -> int:
    """Features per example that ``layers`` make of a zero input of ``shape``, probed in
    evaluation mode so that no batch norm's running statistics are touched."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        size = layers(torch.zeros(*shape)).flatten(1).shape[1]
    module.train(was_training)
    return size
