"""Cut heart beats (S1 to next S1) out of a segmented PCG (SEGMENTATION.md §7,
REPRODUCTION.md §1.5).

The reference (``get_states`` + ``extract_segments_noFIR.m``) aligns the state
transitions to S1, groups them four by four into [S1, systole, S2, diastole] onsets,
drops the trailing partial cycle, and cuts beat r from one sample *before* the S1 onset
of cycle r to one sample before the S1 onset of cycle r + 1, zero-padded to 2500 samples.
Its last beat is always empty (all zeros) because of an index bug; by default the last
beat is cut as the authors' later fix does, ``emulate_zero_last_beat=True`` restores the
bug. Beats longer than ``beat_length`` (which crash the reference) are truncated and
flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BeatInfo", "cycle_table", "extract_beats", "DEFAULT_BEAT_LENGTH"]

DEFAULT_BEAT_LENGTH = 2500

# Transitions to skip before the first S1 onset, keyed by the first state (§7 step 2).
_SKIP_FROM_START = {4: 1, 3: 2, 2: 3, 1: 4}
_SKIP_AFTER_ZERO = {4: 1, 3: 2, 2: 3, 1: 0}


def _aligned_transitions(states: np.ndarray) -> np.ndarray:
    """Transition indices (0-based first sample of each new run), starting at an S1 onset."""
    s = np.asarray(states)
    if s.ndim != 1:
        raise ValueError(f"states must be 1-D, got shape {s.shape}")
    c = np.flatnonzero(np.diff(s)) + 1
    if c.size == 0:
        return c
    first = int(s[0])
    if first > 0:
        k = _SKIP_FROM_START.get(first)
    else:
        k = _SKIP_AFTER_ZERO.get(int(s[c[0]]))
        k = None if k is None else k + 1
    if k is None:
        raise ValueError(f"states must take values in 0..4; got {first} / {int(s[c[0]])}")
    return c[k - 1:]


def cycle_table(states: np.ndarray) -> np.ndarray:
    """(n_cycles, 4) int64 0-based onset samples of [S1, systole, S2, diastole].

    Transitions are aligned to the first S1 onset (a recording that starts inside S1
    loses that cycle; a 0 -> 1 transition counts as an S1 onset) and the trailing partial
    cycle is dropped (§7 steps 1-3).
    """
    c2 = _aligned_transitions(states)
    n_full = (c2.shape[0] // 4) * 4
    return c2[:n_full].reshape(-1, 4).astype(np.int64)


@dataclass(frozen=True)
class BeatInfo:
    """Per-beat bookkeeping returned by :func:`extract_beats` (arrays of length n_beats).

    Attributes:
        onset: 0-based first sample of the beat = S1 onset - 1 (as in the reference).
        s1_onset: 0-based S1 onset of the cycle.
        true_length: samples cut from the signal before padding/truncation (0 for an
            emulated all-zero last beat).
        truncated: the cut was longer than ``beat_length`` and was truncated.
        zero_emulated: the beat is the reference's all-zero last beat.
        cycles: (n_beats, 4) the cycle table the beats come from.
    """

    onset: np.ndarray
    s1_onset: np.ndarray
    true_length: np.ndarray
    truncated: np.ndarray
    zero_emulated: np.ndarray
    cycles: np.ndarray

    @property
    def n_beats(self) -> int:
        return int(self.onset.shape[0])


def extract_beats(x: np.ndarray, states: np.ndarray, beat_length: int = DEFAULT_BEAT_LENGTH,
                  *, emulate_zero_last_beat: bool = False) -> tuple[np.ndarray, BeatInfo]:
    """Cut one beat per complete cardiac cycle and zero-pad it to ``beat_length``.

    Args:
        x: (n,) the once-filtered 1 kHz signal that was segmented (§1 result).
        states: (n,) audio-rate states from the segmenter.
        beat_length: output length per beat (2500 = 2.5 s at 1 kHz).
        emulate_zero_last_beat: reproduce the reference's bug that makes every
            recording's last beat all zeros. Default False: the last beat runs to the
            next S1 onset if there is one, else to sample n - 2 (heartnet's fix).

    Returns:
        (beats, info): beats is (n_beats, beat_length) float32, one row per complete
        cycle (the last one included); zero rows when there is no complete cycle.
    """
    x = np.asarray(x)
    s = np.asarray(states)
    if x.ndim != 1 or s.shape != x.shape:
        raise ValueError(f"x and states must be 1-D of equal length; got {x.shape} and "
                         f"{s.shape}")
    if beat_length < 1:
        raise ValueError(f"beat_length must be positive, got {beat_length}")
    n = x.shape[0]
    c2 = _aligned_transitions(s)
    n_full = (c2.shape[0] // 4) * 4
    rows = c2[:n_full].reshape(-1, 4).astype(np.int64)
    n_beats = rows.shape[0]

    starts = rows[:, 0] - 1
    ends = np.empty(n_beats, dtype=np.int64)
    if n_beats:
        ends[:-1] = rows[1:, 0] - 1
        # heartnet fix: up to the next S1 onset, or to n - 1 (MATLAB end - 1) at the end.
        ends[-1] = (c2[n_full] - 1) if c2.shape[0] > n_full else n - 1
    zero = np.zeros(n_beats, dtype=bool)
    if emulate_zero_last_beat and n_beats:
        zero[-1] = True
        ends[-1] = starts[-1]  # empty slice, as the reference's count-for-index bug
    lengths = ends - starts
    truncated = lengths > beat_length

    beats = np.zeros((n_beats, beat_length), dtype=np.float32)
    for r in range(n_beats):
        m = min(int(lengths[r]), beat_length)
        if m > 0:
            beats[r, :m] = x[starts[r]:starts[r] + m]
    info = BeatInfo(onset=starts, s1_onset=rows[:, 0].copy(), true_length=lengths,
                    truncated=truncated, zero_emulated=zero, cycles=rows)
    return beats, info
