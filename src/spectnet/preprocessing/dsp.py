"""Signal-processing primitives shared by preprocessing and segmentation.

They reproduce the MATLAB building blocks of the authors' "noFIR" pipeline
(``extract_segments_noFIR.m``, ``butterworth_*_filter.m``, ``schmidt_spike_removal.m``),
specified in ``SEGMENTATION.md`` §0-§1. All functions take and return 1-D float64 numpy
arrays and never modify their input.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.signal

#: Value written over a removed spike. Not 0, so that ``log|hilbert(x)|`` stays finite.
SPIKE_FILL = 1e-4


def mround(x):
    """MATLAB ``round``: half away from zero (numpy rounds half to even).

    Computed from the exact fractional part: ``floor(x + 0.5)`` would round
    0.49999999999999994 up, because the addition itself rounds to 1.0.

    >>> [float(mround(v)) for v in (12.5, 16.5, -2.5)]
    [13.0, 17.0, -3.0]
    """
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    return np.sign(x) * (whole + (magnitude - whole >= 0.5))


def butter_filtfilt(x: np.ndarray, cutoff_hz: float, sample_rate: float, btype: str,
                    order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth filter with MATLAB ``filtfilt`` edge handling.

    scipy's default ``padlen`` is ``3 * max(len(a), len(b))``; MATLAB pads with
    ``3 * (nfilt - 1)`` samples. Both use odd reflection and steady-state initial
    conditions, so matching ``padlen`` makes them agree to rounding.

    Args:
        x: signal, shape ``(time,)``.
        cutoff_hz: cut-off frequency in Hz, below ``sample_rate / 2``.
        sample_rate: sampling rate of ``x`` in Hz.
        btype: ``"lowpass"`` or ``"highpass"``.
        order: filter order before the forward-backward pass (the effective magnitude
            response has twice this order).

    Raises:
        ValueError: if the cut-off is not below Nyquist or ``x`` is too short to pad.
    """
    nyquist = sample_rate / 2
    if not 0 < cutoff_hz < nyquist:
        raise ValueError(f"cut-off {cutoff_hz} Hz must lie in (0, {nyquist}) Hz for "
                         f"a sample rate of {sample_rate} Hz")
    b, a = scipy.signal.butter(order, cutoff_hz / nyquist, btype=btype)
    padlen = 3 * (max(len(a), len(b)) - 1)
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] <= padlen:
        raise ValueError(f"signal of {x.shape[-1]} samples is too short to filter "
                         f"(needs more than {padlen})")
    return scipy.signal.filtfilt(b, a, x, padtype="odd", padlen=padlen)


def schmidt_spike_removal(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """Schmidt et al. (2010) spike removal, as in ``schmidt_spike_removal.m``.

    The signal is cut into consecutive half-second windows. While some window's
    maximum absolute amplitude exceeds three times the median of those maxima, the
    largest spike is replaced by :data:`SPIKE_FILL` between the zero crossings around it.
    Samples after the last full window are never examined.

    Only the edited window's maximum is recomputed per pass: O(n + passes * window)
    instead of the reference's O(n * passes), with identical output. The reference
    loops forever when over half the windows are digital silence; here the loop stops
    (with a warning) once the chosen window holds nothing above the fill value.

    Args:
        x: signal, shape ``(time,)``.
        sample_rate: sampling rate in Hz.

    Returns:
        A new array with the spikes removed.

    Example:
        >>> x = np.sin(np.linspace(0, 40 * np.pi, 4000)) * 0.1
        >>> x[2050] = 5.0
        >>> y = schmidt_spike_removal(x, 1000)
        >>> float(np.abs(y).max()) <= 0.1
        True
    """
    x = np.array(x, dtype=np.float64, copy=True)
    window = int(mround(sample_rate / 2))
    n_windows = x.shape[0] // window
    if n_windows == 0:
        return x
    frames = x[: n_windows * window].reshape(n_windows, window)  # a view: edits land in x
    maxima = np.abs(frames).max(axis=1)
    while True:
        threshold = 3 * np.median(maxima)
        k = int(np.argmax(maxima))
        if not maxima[k] > threshold:
            break
        if maxima[k] <= SPIKE_FILL:
            warnings.warn("spike removal stopped: the signal is mostly silence",
                          RuntimeWarning, stacklevel=2)
            break
        frame = frames[k]
        peak = int(np.argmax(np.abs(frame)))
        # c[i]: a strict sign flip between samples i and i+1 (touching zero does not count).
        flips = np.flatnonzero(np.abs(np.diff(np.sign(frame))) > 1)
        before = flips[flips <= peak]
        after = flips[flips > peak]
        start = int(before[-1]) if before.size else 0
        end = int(after[0]) if after.size else window - 1
        frame[start: end + 1] = SPIKE_FILL
        maxima[k] = np.abs(frame).max()
    return x


def prefilter(x: np.ndarray, sample_rate: float, lowpass_hz: float = 400.0,
              highpass_hz: float = 25.0, order: int = 2,
              remove_spikes: bool = True) -> np.ndarray:
    """Band-limit a PCG and remove spikes: the authors' ``noFIR`` filtering chain.

    Low-pass, then high-pass (both Butterworth, zero-phase), then Schmidt spike removal.

    Args:
        x: signal, shape ``(time,)``.
        sample_rate: sampling rate in Hz.
        lowpass_hz, highpass_hz: cut-offs in Hz.
        order: Butterworth order of each filter.
        remove_spikes: apply :func:`schmidt_spike_removal`.

    Example:
        >>> y = prefilter(np.random.default_rng(0).normal(size=5000), 1000)
        >>> y.shape
        (5000,)
    """
    y = butter_filtfilt(x, lowpass_hz, sample_rate, "lowpass", order)
    y = butter_filtfilt(y, highpass_hz, sample_rate, "highpass", order)
    if remove_spikes:
        y = schmidt_spike_removal(y, sample_rate)
    return y
