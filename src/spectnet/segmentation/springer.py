"""Public entry point: Springer LR-HSMM segmentation of a 1 kHz PCG.

``segment_heart_cycles(x)`` reproduces ``runSpringerSegmentationAlgorithm`` (audio at
1 kHz, features at 50 Hz, the pretrained parameters) on the already pre-processed signal
x of SEGMENTATION.md §1. Like the reference, it filters x *again* (low-pass, high-pass,
spike removal) before computing the features and the heart rate; that second pass is done
once and shared.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from spectnet.preprocessing.dsp import prefilter
from spectnet.errors import SpectNetError
from spectnet.segmentation.durations import DurationModel, duration_model
from spectnet.segmentation.emissions import emission_probs
from spectnet.segmentation.features import (
    AUDIO_RATE, FEATURE_RATE, RATIO, compute_features, envelopes,
)
from spectnet.segmentation.heart_rate import SHORT_INPUT_FLAG, heart_rate
from spectnet.segmentation.model import SpringerParams, default_params, load_params
from spectnet.segmentation.viterbi import expand_states, viterbi_decode

__all__ = [
    "Segmentation", "SegmentationError", "segment_heart_cycles", "s1_onsets",
    "MIN_SAMPLES", "SPIKE_SILENCE_FLAG",
]

#: Shortest input accepted (samples at 1 kHz) = 1 s. The heart-rate search needs lags up
#: to 0.5 s (n >= 501) and the reference needs n >= 2001 for its full search; inputs of
#: 1000..2000 samples are segmented with the search clipped (flagged). 1 s also covers
#: the PSD window (25 samples), the db7 level-3 DWT and at least two 50 Hz frames.
MIN_SAMPLES = 1000
SPIKE_SILENCE_FLAG = "spike removal stopped on silence"


class SegmentationError(SpectNetError, ValueError):
    """The input cannot be segmented (also a ``ValueError``)."""


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment_heart_cycles`.

    Attributes:
        states: (n,) int8 audio-rate states: 1 = S1, 2 = systole, 3 = S2, 4 = diastole,
            0 = unassigned (only a leading run of 20 samples, a reference quirk).
        heart_rate_bpm: heart rate from the envelope autocorrelation (30..120 bpm).
        systolic_interval_s: systolic interval (s), as the reference computes it.
        s1_onsets: 0-based sample indices where an S1 run starts after another state
            (including 0 -> 1); a recording that starts in S1 has no onset at sample 0.
        flags: notes on quirks or clipping hit for this input (empty when none).
        frame_states: (T,) int8 states at 50 Hz (T = ceil(n / 20)).
        features: (T, 4) z-scored features [homomorphic, Hilbert, PSD, wavelet].
        durations: the duration model used by the decoder.
        timings: seconds spent per stage ("filter", "features", "heart_rate",
            "emissions", "decode", "expand").
    """

    states: np.ndarray
    heart_rate_bpm: float
    systolic_interval_s: float
    s1_onsets: np.ndarray
    flags: tuple[str, ...] = ()
    frame_states: np.ndarray = field(default=None, repr=False)
    features: np.ndarray = field(default=None, repr=False)
    durations: DurationModel = field(default=None, repr=False)
    timings: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Alias of :attr:`flags`."""
        return self.flags


def s1_onsets(states: np.ndarray) -> np.ndarray:
    """0-based indices where a run of state 1 begins after a different state."""
    s = np.asarray(states)
    c = np.flatnonzero(np.diff(s)) + 1
    return c[s[c] == 1]


def _validate(signal, sample_rate) -> np.ndarray:
    if sample_rate != AUDIO_RATE:
        raise SegmentationError(
            f"the Springer segmenter runs at {AUDIO_RATE} Hz; got sample_rate={sample_rate!r} "
            "(resample the signal first)")
    x = np.asarray(signal)
    if x.ndim != 1:
        raise SegmentationError(f"expected a 1-D signal, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise SegmentationError(f"expected a real numeric signal, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if x.shape[0] < MIN_SAMPLES:
        raise SegmentationError(
            f"signal too short to segment: {x.shape[0]} samples; need at least {MIN_SAMPLES} "
            f"({MIN_SAMPLES / AUDIO_RATE:g} s at {AUDIO_RATE} Hz)")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise SegmentationError(f"signal contains {bad} NaN or infinite sample(s)")
    if np.ptp(x) == 0:
        raise SegmentationError("signal is constant; nothing to segment")
    return x


def _resolve_params(params) -> SpringerParams:
    if params is None:
        return default_params()
    if isinstance(params, SpringerParams):
        return params
    if isinstance(params, (str, PathLike)):
        return load_params(params)
    if isinstance(params, dict):
        return SpringerParams.from_mapping(params)
    raise TypeError(f"params must be None, SpringerParams, a mapping or a path; got "
                    f"{type(params).__name__}")


def segment_heart_cycles(signal: np.ndarray, sample_rate: int = 1000, *,
                         params: SpringerParams | dict | str | PathLike | None = None,
                         emulate_underflow: bool = True) -> Segmentation:
    """Segment a pre-processed 1 kHz PCG into S1, systole, S2 and diastole.

    Args:
        signal: (n,) PCG at 1 kHz, already resampled, band-passed and spike-cleaned as in
            SEGMENTATION.md §1 (the result of ``dsp.prefilter``). It is filtered again
            internally, as in the reference.
        sample_rate: must be 1000.
        params: model parameters; default the packaged Springer et al. 2016 ones.
        emulate_underflow: emulate the reference's linear-product underflow (default).

    Returns:
        A :class:`Segmentation`.

    Raises:
        SegmentationError (a ValueError): wrong sample rate, non-1-D, shorter than
            :data:`MIN_SAMPLES`, NaN/inf, constant input, or features that come out
            non-finite (e.g. a signal that is zero after filtering).

    Example (a synthetic 75-bpm heart sound: S1 at 45 Hz, S2 300 ms later at 70 Hz):
        >>> rng = np.random.default_rng(0)
        >>> x = 0.05 * rng.standard_normal(20_000)
        >>> s1 = np.sin(2 * np.pi * 45 * np.arange(100) / 1000) * np.hanning(100)
        >>> s2 = 0.7 * np.sin(2 * np.pi * 70 * np.arange(80) / 1000) * np.hanning(80)
        >>> for onset in range(250, 19_000, 800):
        ...     x[onset:onset + 100] += s1
        ...     x[onset + 300:onset + 380] += s2
        >>> seg = segment_heart_cycles(x, 1000)
        >>> seg.states.shape == x.shape, round(seg.heart_rate_bpm)
        (True, 75)
    """
    x = _validate(signal, sample_rate)
    model = _resolve_params(params)
    flags: list[str] = []
    timings: dict[str, float] = {}
    n = x.shape[0]

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        y = prefilter(x, AUDIO_RATE)
    if any("spike removal" in str(w.message) for w in caught):
        flags.append(SPIKE_SILENCE_FLAG)
    t1 = time.perf_counter()
    with np.errstate(divide="ignore", invalid="ignore"):
        env = envelopes(y, AUDIO_RATE)
        feats = compute_features(y, env, AUDIO_RATE)
    if not np.all(np.isfinite(feats)):
        raise SegmentationError(
            "features are not finite (the filtered signal is zero or constant somewhere "
            "it must not be); cannot segment")
    t2 = time.perf_counter()
    try:
        hr = heart_rate(env.homomorphic, AUDIO_RATE)
    except ValueError as exc:
        raise SegmentationError(str(exc)) from None
    if hr.clipped:
        flags.append(SHORT_INPUT_FLAG)
    t3 = time.perf_counter()
    dur = duration_model(hr.bpm, hr.systolic_interval_s, FEATURE_RATE)
    b = emission_probs(feats, model)
    t4 = time.perf_counter()
    vit = viterbi_decode(b, dur.probs, model.pi_vector, emulate_underflow=emulate_underflow)
    flags.extend(vit.flags)
    t5 = time.perf_counter()
    states = expand_states(vit.states, n, RATIO)
    onsets = s1_onsets(states)
    t6 = time.perf_counter()
    timings.update(filter=t1 - t0, features=t2 - t1, heart_rate=t3 - t2, emissions=t4 - t3,
                   decode=t5 - t4, expand=t6 - t5)
    return Segmentation(states=states, heart_rate_bpm=hr.bpm,
                        systolic_interval_s=hr.systolic_interval_s, s1_onsets=onsets,
                        flags=tuple(flags), frame_states=vit.states, features=feats,
                        durations=dur, timings=timings)
