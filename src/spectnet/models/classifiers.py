"""Whole classifiers: a front-end composed with a CNN, built from a plain-dict spec.

Every model the project trains is ``raw waveform -> front-end -> CNN -> logits``: it has
a ``frontend`` attribute (the part frozen in stage 1 and fine-tuned in stage 2), a ``cnn``
attribute, and ``forward(x) == cnn(features(x))``, so that a trainer can compute a frozen
front-end's features once and train the CNN on them.
:func:`build_model` makes one from a JSON-able spec, the same spec a model file stores
(:mod:`spectnet.training.checkpoint`), so a saved model rebuilds itself without params.

Example:
    >>> import torch
    >>> model = build_model({"architecture": "spectnet-resnet", "n_samples": 2500,
    ...                      "sample_rate": 1000, "frontend": {"n_filters": 16}})
    >>> tuple(model(torch.randn(2, 2500)).shape)
    (2, 2)
    >>> sorted(n for n, _ in model.frontend.named_parameters())[:1]
    ['filterbank.offset_amplitude']
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from spectnet.frontend import GammatoneFilterbank, SpectNetFrontend
from spectnet.models.heartnet import Heartnet1D, Heartnet2D
from spectnet.models.resnet import SpectNetResNet

__all__ = ["SpectNetClassifier", "GammatoneClassifier", "build_model", "ARCHITECTURES",
           "register_architecture"]


class SpectNetClassifier(nn.Module):
    """SpectNet spectrogram image -> 2D CNN.

    Shape:
        input ``(B, T)`` or ``(B, 1, T)`` raw audio; output ``(B, n_classes)``.
    """

    def __init__(self, frontend: SpectNetFrontend, cnn: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.cnn = cnn

    def features(self, waveform: Tensor) -> Tensor:
        """``(B, T)`` -> ``(B, 1, frames, filters)``: the image the CNN takes."""
        return self.frontend.image(waveform)

    def forward(self, waveform: Tensor) -> Tensor:
        return self.cnn(self.features(waveform))


class GammatoneClassifier(nn.Module):
    """Gammatone filter outputs (the filters applied with 'same' zero padding) -> CNN.

    Shape:
        input ``(B, T)`` or ``(B, 1, T)``; the CNN sees ``(B, F, T)``.
    """

    def __init__(self, filterbank: GammatoneFilterbank, cnn: nn.Module) -> None:
        super().__init__()
        self.frontend = filterbank
        self.cnn = cnn

    def features(self, waveform: Tensor) -> Tensor:
        """``(B, T)`` -> ``(B, F, T)``: the filter outputs the CNN takes."""
        if waveform.dim() == 3:
            waveform = waveform.squeeze(1)
        k = self.frontend.kernel_size
        # 'same' output length, as Keras' padding='same' for an odd kernel
        return self.frontend(F.pad(waveform, ((k - 1) // 2, k // 2)))

    def forward(self, waveform: Tensor) -> Tensor:
        return self.cnn(self.features(waveform))


def _spectnet_resnet(spec: Mapping[str, Any]) -> nn.Module:
    frontend = SpectNetFrontend(sample_rate=spec["sample_rate"], **spec.get("frontend", {}))
    cnn = SpectNetResNet(n_frames=frontend.num_frames(spec["n_samples"]),
                         n_filters=frontend.n_filters, n_classes=spec.get("n_classes", 2),
                         **spec.get("cnn", {}))
    return SpectNetClassifier(frontend, cnn)


def _heartnet(cnn_class) -> Callable[[Mapping[str, Any]], nn.Module]:
    def build(spec: Mapping[str, Any]) -> nn.Module:
        filterbank = GammatoneFilterbank(sample_rate=spec["sample_rate"], **spec.get("frontend", {}))
        cnn = cnn_class(spec["n_samples"], filterbank.n_filters, spec.get("n_classes", 2),
                        **spec.get("cnn", {}))
        return GammatoneClassifier(filterbank, cnn)
    return build


#: architecture name -> builder(spec) -> model. Extend with :func:`register_architecture`.
ARCHITECTURES: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {
    "spectnet-resnet": _spectnet_resnet,
    "gammatone-heartnet1d": _heartnet(Heartnet1D),
    "gammatone-heartnet2d": _heartnet(Heartnet2D),
}


def register_architecture(name: str, builder: Callable[[Mapping[str, Any]], nn.Module]) -> None:
    """Make ``build_model({"architecture": name, ...})`` call ``builder``."""
    ARCHITECTURES[name] = builder


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """Build a classifier from its spec.

    Args:
        spec: ``architecture`` (a key of :data:`ARCHITECTURES`), ``n_samples`` (input
            length), ``sample_rate``, optional ``n_classes`` (2), ``frontend`` (keyword
            arguments of the front-end module) and ``cnn`` (keyword arguments of the CNN).
    """
    name = spec.get("architecture")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](spec)
