"""The acoustic-scene CNN: two convolution stages on the SpectNet spectrogram image.

**Our reconstruction, unverified** (REPRODUCTION.md §3.4, A18; ``docs/deviations.md``).
The paper's "2-layer CNN inspired by [31]" is described in neither its text nor any code
we could find. We take the closest public design (Valenti et al., DCASE 2016):
Conv 128@5x5 -> BN -> ReLU -> MaxPool 5x5 -> Conv 256@5x5 -> BN -> ReLU, then pool over
time only and flatten, so that the dense layer, and with it the model, grows with the
number of filters as the paper says ("increasing the number of filters increases the model
size significantly", §IV-G). Convolutions are zero-padded to keep their input size
('same'), so every filter count of the grid (16 ... 149) fits. The output is logits.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spectnet.frontend import SpectNetFrontend
from spectnet.models.classifiers import SpectNetClassifier, register_architecture

__all__ = ["SceneCNN", "build_scene_model"]


class SceneCNN(nn.Module):
    """Two-stage CNN on a ``(B, 1, frames, filters)`` spectrogram image.

    Args:
        n_filters: frequency bins F of the image (the front-end's filters), at least
            ``pool``.
        n_classes: outputs (15 scenes in DCASE 2016).
        channels: output channels of the two convolutions.
        kernel_size: square convolution kernel (zero-padded, 'same').
        pool: the square max-pool after the first convolution.

    Shape:
        input ``(B, 1, M, F)`` with ``M >= pool`` frames; output ``(B, n_classes)`` logits.
        Inside: ``(B, 128, M, F)`` -> pool -> ``(B, 128, M // 5, F // 5)`` -> conv ->
        ``(B, 256, M // 5, F // 5)`` -> max over time -> flatten ``256 * (F // 5)`` -> dense.

    Example:
        >>> net = SceneCNN(n_filters=46, n_classes=15)
        >>> net.n_features
        2304
        >>> tuple(net(torch.randn(2, 1, 998, 46)).shape)
        (2, 15)
    """

    def __init__(self, n_filters: int = 46, n_classes: int = 15,
                 channels: tuple[int, int] = (128, 256), kernel_size: int = 5,
                 pool: int = 5) -> None:
        super().__init__()
        if n_filters < pool:
            raise ValueError(f"n_filters ({n_filters}) must be >= the pool size ({pool})")
        self.n_filters, self.n_classes, self.pool = int(n_filters), int(n_classes), int(pool)
        c1, c2 = channels
        padding = kernel_size // 2
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size, padding=padding), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(pool),
            nn.Conv2d(c1, c2, kernel_size, padding=padding), nn.BatchNorm2d(c2), nn.ReLU(),
        )
        self.n_features = c2 * (self.n_filters // pool)
        self.classifier = nn.Linear(self.n_features, self.n_classes)

    def forward(self, image: Tensor) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 1 or image.shape[-1] != self.n_filters:
            raise ValueError(f"expected a (B, 1, frames, {self.n_filters}) image, "
                             f"got {tuple(image.shape)}")
        if image.shape[2] < self.pool:
            raise ValueError(f"{image.shape[2]} frames: the image needs >= {self.pool}")
        x = self.features(image)
        return self.classifier(torch.amax(x, dim=2).flatten(1))


def build_scene_model(spec: Mapping[str, Any]) -> SpectNetClassifier:
    """``spectnet-scene-cnn``: :class:`~spectnet.frontend.SpectNetFrontend` -> :class:`SceneCNN`.

    ``spec["frontend"]`` holds the front-end's keyword arguments (the scene settings:
    ``kernel_size=551, win_length=551, hop_length=220`` at 22.05 kHz; an exact filtering
    path), ``spec["cnn"]`` those of :class:`SceneCNN`.

    Example:
        >>> from spectnet.models import build_model
        >>> model = build_model({"architecture": "spectnet-scene-cnn", "n_samples": 22050,
        ...                      "sample_rate": 22050, "n_classes": 10,
        ...                      "frontend": {"n_filters": 16, "kernel_size": 551,
        ...                                   "win_length": 551, "hop_length": 220}})
        >>> tuple(model(torch.randn(2, 22050)).shape)
        (2, 10)
    """
    frontend_args = {"method": "auto", **spec.get("frontend", {})}
    if frontend_args["method"] == "stft":
        raise ValueError("the scene model uses an exact filtering path, not 'stft'")
    frontend = SpectNetFrontend(sample_rate=spec["sample_rate"], **frontend_args)
    n_frames = frontend.num_frames(spec["n_samples"])
    cnn = SceneCNN(frontend.n_filters, spec.get("n_classes", 15), **spec.get("cnn", {}))
    if n_frames < cnn.pool:
        raise ValueError(f"{spec['n_samples']} samples give {n_frames} frames; the scene CNN "
                         f"needs >= {cnn.pool}")
    return SpectNetClassifier(frontend, cnn)


register_architecture("spectnet-scene-cnn", build_scene_model)
