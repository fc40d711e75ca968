"""spectnet.preprocessing.dsp against literal transcriptions of the MATLAB reference (SEGMENTATION.md §1, §9.1)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from spectnet.preprocessing import dsp


def matlab_filtfilt(b, a, x):
    """MATLAB filtfilt written out: odd reflection of 3*(nfilt-1) samples, steady-state
    initial conditions, forward pass, reverse, forward pass, reverse, trim."""
    nfilt = max(len(a), len(b))
    pad = 3 * (nfilt - 1)
    ext = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2:-pad - 2:-1]])
    zi = scipy.signal.lfilter_zi(b, a)
    y, _ = scipy.signal.lfilter(b, a, ext, zi=zi * ext[0])
    y = y[::-1]
    y, _ = scipy.signal.lfilter(b, a, y, zi=zi * y[0])
    return y[::-1][pad:-pad]


def reference_spike_removal(x, fs):
    """Literal transcription of schmidt_spike_removal.m: every pass recomputes all maxima."""
    x = x.copy()
    w = int(dsp.mround(fs / 2))
    m = len(x) // w
    if m == 0:
        return x
    frames = x[: m * w].reshape(m, w)
    for _ in range(10_000):
        maas = np.abs(frames).max(axis=1)
        if not (maas > 3 * np.median(maas)).any():
            break
        k = int(np.argmax(maas))
        frame = frames[k]
        p = int(np.argmax(np.abs(frame)))
        zc = np.append(np.abs(np.diff(np.sign(frame))) > 1, False)
        starts = np.flatnonzero(zc[: p + 1])
        start = starts[-1] if starts.size else 0
        ends = np.flatnonzero(zc[p + 1:])
        end = p + 1 + ends[0] if ends.size else w - 1
        frame[start: end + 1] = 1e-4
    return x


def test_mround_rounds_half_away_from_zero():
    assert [float(dsp.mround(v)) for v in (12.5, 16.5, -2.5, 0.49999999999999994, 2.4)] == \
        [13.0, 17.0, -3.0, 0.0, 2.0]
    np.testing.assert_array_equal(dsp.mround(np.array([0.5, 1.5, -0.5])), [1.0, 2.0, -1.0])


@pytest.mark.parametrize("cutoff, btype", [(400, "lowpass"), (25, "highpass"), (8, "lowpass")])
@pytest.mark.parametrize("order", [1, 2])
def test_butter_filtfilt_equals_matlab_filtfilt(cutoff, btype, order):
    x = np.random.default_rng(3).normal(size=3000)
    b, a = scipy.signal.butter(order, cutoff / 500, btype=btype)
    np.testing.assert_allclose(dsp.butter_filtfilt(x, cutoff, 1000, btype, order),
                               matlab_filtfilt(b, a, x), rtol=0, atol=1e-12)


def test_butter_filtfilt_rejects_bad_cutoff_and_short_input():
    with pytest.raises(ValueError, match="cut-off 600 Hz"):
        dsp.butter_filtfilt(np.zeros(100), 600, 1000, "lowpass")
    with pytest.raises(ValueError, match="too short"):
        dsp.butter_filtfilt(np.ones(6), 400, 1000, "lowpass")


def test_spike_removal_fills_the_span_between_flips():
    t = np.arange(3000) / 1000
    x = 0.1 * np.sin(2 * np.pi * 7 * t)
    x[1700:1712] += np.hanning(12) * 4.0          # one spike inside the 4th window
    y = dsp.schmidt_spike_removal(x, 1000)
    changed = np.flatnonzero(y != x)
    assert changed.size and np.all(y[changed] == dsp.SPIKE_FILL)
    # The sine is negative there: the span runs from the last sample before the upward
    # flip (opposite polarity, a reference quirk) to the last sample before the downward one.
    np.testing.assert_array_equal(changed, np.arange(1700, 1711))
    assert np.abs(y).max() <= 0.11
    np.testing.assert_array_equal(y, reference_spike_removal(x, 1000))


def test_spike_removal_equals_reference_on_noise_with_many_spikes():
    rng = np.random.default_rng(7)
    x = rng.normal(size=20_250) * 0.05
    for pos in rng.choice(20_000, size=25, replace=False):
        x[pos] += rng.choice([-1, 1]) * rng.uniform(1, 5)
    y = dsp.schmidt_spike_removal(x, 1000)
    np.testing.assert_array_equal(y, reference_spike_removal(x, 1000))
    np.testing.assert_array_equal(y[20_000:], x[20_000:])   # the tail is never examined
    assert not np.shares_memory(x, y)


def test_spike_removal_terminates_on_mostly_silent_input():
    x = np.zeros(5000)
    x[100:110] = 1.0                    # nine of ten windows are digital silence
    with pytest.warns(RuntimeWarning, match="silence"):
        y = dsp.schmidt_spike_removal(x, 1000)
    assert np.all(y[100:110] == dsp.SPIKE_FILL)


def test_prefilter_is_lowpass_highpass_then_spike_removal():
    x = np.random.default_rng(1).normal(size=4000)
    b1, a1 = scipy.signal.butter(2, 0.8, "lowpass")
    b2, a2 = scipy.signal.butter(2, 0.05, "highpass")
    expected = reference_spike_removal(matlab_filtfilt(b2, a2, matlab_filtfilt(b1, a1, x)), 1000)
    np.testing.assert_allclose(dsp.prefilter(x, 1000), expected, rtol=0, atol=1e-12)
