"""The SpectNet "ResNet": three residual blocks on the gammatone spectrogram image.

REPRODUCTION.md §3.1, from the authors' ``HeartCepTorch.Extractor`` / ``Class_classifier``
with ``res_block=3`` (flatten 7680 for 16 filters). Input ``(B, 1, frames, filters)``
(time by frequency, the authors' ``time_freq`` layout), output ``(B, n_classes)`` logits.

Clean by default: logits out (the loss applies the one softmax) and dropout only in
training. ``quirks=True`` reproduces the authors' head: a softmax before
``CrossEntropyLoss`` (softmax applied twice) and ``F.dropout`` without a training flag,
i.e. active at evaluation too (``docs/deviations.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spectnet.models.shapes import flat_size

__all__ = ["SpectNetResNet"]


def _shortcut_pool(x: Tensor) -> Tensor:
    """2x2 max pool of the shortcut; an axis already down to one bin is left alone.

    The authors' 3-block code pools both axes; with 4 filters the frequency axis reaches
    one bin before the third block and a 2-wide pool would return nothing (their code
    cannot run N = 4 as written). For 8 and 16 filters this is exactly their pooling.
    """
    kernel = (min(2, x.shape[-2]), min(2, x.shape[-1]))
    return F.max_pool2d(x, kernel)


def _residual(x: Tensor, main: Tensor) -> Tensor:
    """The authors' shortcut plus the block's output: ``x`` with its channels doubled by
    appending zeros, pooled, added to ``main``.

    Computed as pool first and add to the first half only: the zeros pool to zeros and
    ``0 + m`` is ``m``, so values and gradients are those of pad-pool-add, without
    pooling and adding a tensor of zeros (about 15 % of an evaluation forward pass).
    """
    channels = x.shape[1]
    return torch.cat((_shortcut_pool(x) + main[:, :channels], main[:, channels:]), dim=1)


class SpectNetResNet(nn.Module):
    """Three-block residual CNN of the SpectNet paper (Fig. 4, the authors' code widths).

    Args:
        n_frames: time frames of the input image (240 for a 2,500-sample beat).
        n_filters: frequency bins (the front-end's filters): 4, 8 or 16 in the paper.
        n_classes: outputs (2: normal, abnormal).
        dropout: probability of the shared ``Dropout2d`` and of the head's dropout.
        quirks: reproduce the authors' double softmax and evaluation-time head dropout.

    Shape:
        input ``(B, 1, n_frames, n_filters)``; output ``(B, n_classes)`` (logits, or
        probabilities when ``quirks``).

    Example:
        >>> net = SpectNetResNet(n_frames=240, n_filters=16)
        >>> net.n_features
        7680
        >>> tuple(net(torch.randn(3, 1, 240, 16)).shape)
        (3, 2)
    """

    def __init__(self, n_frames: int = 240, n_filters: int = 16, n_classes: int = 2,
                 dropout: float = 0.5, quirks: bool = False) -> None:
        super().__init__()
        if n_frames < 16 or n_filters < 1:
            raise ValueError(f"input image too small for three residual blocks: "
                             f"{n_frames} frames x {n_filters} filters (need >= 16 frames)")
        self.n_frames, self.n_filters, self.n_classes = int(n_frames), int(n_filters), int(n_classes)
        self.quirks = bool(quirks)
        self.head_dropout = float(dropout)
        self.stem = nn.Sequential(nn.Conv2d(1, 16, (3, 2), padding=(3, 1)), nn.BatchNorm2d(16))
        self.conv1 = nn.Conv2d(16, 32, 3)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv11 = nn.Conv2d(32, 32, 3, padding=2)
        self.bn11 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv21 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.bn21 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(128)
        self.conv31 = nn.Conv2d(128, 128, 3, stride=2, padding=1, dilation=(2, 1))
        self.bn31 = nn.BatchNorm2d(128)
        self.drop = nn.Dropout2d(dropout)  # one module shared by every block, as in the code
        self.n_features = flat_size(self, self.features, 1, 1, n_frames, n_filters)
        self.fc1 = nn.Linear(self.n_features, 100)
        self.fc2 = nn.Linear(100, n_classes)

    def features(self, image: Tensor) -> Tensor:
        """``(B, 1, frames, filters)`` -> ``(B, n_features)`` flattened block-3 output."""
        x = F.relu(self.stem(image))
        main = self.drop(F.relu(self.bn1(self.conv1(x))))
        main = F.relu(F.max_pool2d(self.drop(self.bn11(self.conv11(main))), 2))
        x = _residual(x, main)
        main = self.drop(F.relu(self.bn2(self.conv2(x))))
        main = F.relu(self.drop(self.bn21(self.conv21(main))))
        x = _residual(x, main)
        main = self.drop(F.relu(self.bn3(self.conv3(x))))
        main = F.relu(self.drop(self.bn31(self.conv31(main))))
        x = _residual(x, main)
        return x.flatten(1)

    def forward(self, image: Tensor) -> Tensor:
        hidden = F.relu(self.fc1(self.features(image)))
        # quirks: F.dropout without a training flag is on at evaluation too
        hidden = F.dropout(hidden, self.head_dropout, training=self.training or self.quirks)
        logits = self.fc2(hidden)
        return torch.softmax(logits, dim=1) if self.quirks else logits

    def extra_repr(self) -> str:
        return (f"n_frames={self.n_frames}, n_filters={self.n_filters}, "
                f"n_classes={self.n_classes}, n_features={self.n_features}, quirks={self.quirks}")
