"""Tests of beat extraction (SEGMENTATION.md §7, REPRODUCTION.md §1.5)."""

from __future__ import annotations


import numpy as np
import pytest

from spectnet.segmentation.cycles import cycle_table, extract_beats


def states_from_runs(runs):
    """Audio-rate state array from [(state, length), ...]."""
    return np.concatenate([np.full(length, s, dtype=np.int8) for s, length in runs])


def test_cycle_table_alignment_from_each_start_state():
    cyc = [(1, 100), (2, 300), (3, 80), (4, 500)]
    for first in (1, 2, 3, 4):
        lead = [(first, 37)] + [r for r in cyc if r[0] > first]
        s = states_from_runs(lead + cyc * 3 + [(1, 50)])
        table = cycle_table(s)
        start = sum(length for _, length in lead)
        # starting in S1 loses that cycle: the first onset is the next 4->1 transition
        assert table[0, 0] == start
        np.testing.assert_array_equal(np.diff(table[0]), [100, 300, 80])
        assert table.shape == (3, 4)
        assert np.all(s[table[:, 0]] == 1) and np.all(s[table[:, 0] - 1] == 4)


def test_cycle_table_zero_start_counts_zero_to_s1_as_onset():
    cyc = [(1, 100), (2, 300), (3, 80), (4, 500)]
    s = states_from_runs([(0, 20)] + cyc * 2 + [(1, 10)])
    table = cycle_table(s)
    assert table[0, 0] == 20 and table.shape == (2, 4)
    s = states_from_runs([(0, 20), (3, 60), (4, 400)] + cyc * 2)
    table = cycle_table(s)
    assert table[0, 0] == 480 and table.shape == (2, 4)


def test_beats_start_one_before_s1_and_span_s1_to_s1():
    cyc = [(1, 100), (2, 300), (3, 80), (4, 520)]
    s = states_from_runs([(4, 300)] + cyc * 4 + [(1, 60), (2, 40)])
    x = np.arange(s.size, dtype=np.float64) + 1.0
    beats, info = extract_beats(x, s)
    table = cycle_table(s)
    assert beats.shape == (4, 2500) and beats.dtype == np.float32
    np.testing.assert_array_equal(info.onset, table[:, 0] - 1)
    np.testing.assert_array_equal(info.true_length[:-1], np.diff(table[:, 0]))
    for r in range(4):
        L = int(info.true_length[r])
        np.testing.assert_array_equal(beats[r, :L], x[info.onset[r]:info.onset[r] + L])
        assert np.all(beats[r, L:] == 0)  # zero padding at the end
    # fixed last beat: a full cycle up to the next S1 onset
    assert info.true_length[-1] == 1000 and beats[-1, 0] == x[table[-1, 0] - 1]
    assert not info.truncated.any() and not info.zero_emulated.any()


def test_emulated_last_beat_is_all_zeros():
    cyc = [(1, 100), (2, 300), (3, 80), (4, 520)]
    s = states_from_runs([(4, 300)] + cyc * 3 + [(1, 60)])
    x = np.random.default_rng(0).normal(size=s.size) + 5.0  # never zero
    fixed, info_f = extract_beats(x, s)
    emu, info_e = extract_beats(x, s, emulate_zero_last_beat=True)
    assert fixed.shape == emu.shape == (3, 2500)
    np.testing.assert_array_equal(fixed[:-1], emu[:-1])
    assert np.all(emu[-1] == 0) and info_e.zero_emulated[-1] and info_e.true_length[-1] == 0
    assert np.count_nonzero(fixed[-1]) == 1000


def test_last_beat_without_following_s1_runs_to_end_minus_one():
    cyc = [(1, 100), (2, 300), (3, 80), (4, 520)]
    s = states_from_runs([(4, 300)] + cyc * 2)  # ends exactly after a full diastole
    x = np.ones(s.size)
    beats, info = extract_beats(x, s)
    assert beats.shape[0] == 2
    assert info.onset[-1] + info.true_length[-1] == s.size - 1


def test_long_beats_are_truncated_and_flagged():
    s = states_from_runs([(4, 50), (1, 100), (2, 300), (3, 80), (4, 2600), (1, 100),
                          (2, 300), (3, 80), (4, 400), (1, 10)])
    x = np.ones(s.size)
    beats, info = extract_beats(x, s)
    assert info.truncated.tolist() == [True, False]
    assert info.true_length[0] == 3080 and np.all(beats[0] == 1)
    beats, info = extract_beats(x, s, beat_length=500)
    assert info.truncated.tolist() == [True, True] and beats.shape == (2, 500)


def test_less_than_one_cycle_gives_zero_beats():
    for runs in ([(4, 300), (1, 100), (2, 300)], [(2, 1000)], [(0, 20), (1, 500)],
                 [(3, 100), (4, 200), (1, 100), (2, 200), (3, 100)]):
        s = states_from_runs(runs)
        beats, info = extract_beats(np.ones(s.size), s)
        assert beats.shape == (0, 2500) and info.n_beats == 0
        assert cycle_table(s).shape == (0, 4)
        beats, info = extract_beats(np.ones(s.size), s, emulate_zero_last_beat=True)
        assert beats.shape == (0, 2500)


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        extract_beats(np.ones(10), np.ones(11, dtype=np.int8))
    with pytest.raises(ValueError, match="0..4"):
        cycle_table(np.array([7, 7, 1, 1]))


from conftest import PHYSIONET  # noqa: E402


@pytest.mark.skipif(not (PHYSIONET / "training-a").is_dir(), reason="PhysioNet data absent")
def test_real_record_beats_follow_segmentation():
    import scipy.signal
    import soundfile as sf

    from spectnet.preprocessing.dsp import prefilter
    from spectnet.segmentation import segment_heart_cycles

    raw, fs = sf.read(PHYSIONET / "training-a" / "a0001.flac", dtype="float64")
    x = prefilter(scipy.signal.resample_poly(raw[:60 * fs], 1, 2), 1000)
    seg = segment_heart_cycles(x)
    beats, info = extract_beats(x, seg.states)
    table = cycle_table(seg.states)
    assert info.n_beats == table.shape[0] > 20
    assert set(table[:, 0]) <= set(seg.s1_onsets.tolist())
    np.testing.assert_array_equal(info.true_length[:-1], np.diff(table[:, 0]))
    assert np.all(info.true_length > 0) and not info.truncated.any()
    _, info_e = extract_beats(x, seg.states, emulate_zero_last_beat=True)
    assert info_e.n_beats == info.n_beats
