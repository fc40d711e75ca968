"""Springer's logistic-regression HSMM heart-sound segmentation (SEGMENTATION.md).

Public API: :func:`segment_heart_cycles` returns a :class:`Segmentation` (audio-rate
states 0..4, heart rate, systolic interval, S1 onsets, flags). The pretrained parameters
(Springer, Tarassenko & Clifford, IEEE TBME 63(4):822-832, 2016) ship as
``springer2016.json``; see :mod:`spectnet.segmentation.model`.

Modules: ``features`` (the four 50 Hz features), ``heart_rate`` (Schmidt autocorrelation),
``durations`` (state-duration model), ``emissions`` (observation likelihoods), ``viterbi``
(extended-duration decoder and ``expand_qt``), ``springer`` (the driver), ``plot``.
"""

from spectnet.segmentation.model import SpringerParams, default_params, load_params
from spectnet.segmentation.springer import (
    MIN_SAMPLES, Segmentation, SegmentationError, s1_onsets, segment_heart_cycles,
)

__all__ = [
    "MIN_SAMPLES", "Segmentation", "SegmentationError", "SpringerParams", "default_params",
    "load_params", "s1_onsets", "segment_heart_cycles",
]
