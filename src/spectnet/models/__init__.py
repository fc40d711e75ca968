"""Classifiers: the SpectNet ResNet, the Gammatone 1D/2D baselines, the scene CNN, and the
factory that builds any of them (front-end + CNN) from a plain-dict spec."""

from spectnet.models.classifiers import (ARCHITECTURES, GammatoneClassifier, SpectNetClassifier,
                                         build_model, register_architecture)
from spectnet.models.heartnet import Heartnet1D, Heartnet2D
from spectnet.models.resnet import SpectNetResNet
from spectnet.models.scene_cnn import SceneCNN

__all__ = ["ARCHITECTURES", "GammatoneClassifier", "Heartnet1D", "Heartnet2D",
           "SceneCNN", "SpectNetClassifier", "SpectNetResNet", "build_model", "register_architecture"]
