"""Springer's extended-duration Viterbi decoder (SEGMENTATION.md §6), vectorised.

The reference (``viterbiDecodePCG_Springer``, MATLAB loop path) is a triple loop over
t, state j and duration d that multiplies the emission probabilities of each window in
linear space. Here the d and j loops and the products are vectorised; only the loop over
t remains (delta(t) depends on delta(t - d) for every d >= 1):

* window log-likelihoods come from a cumulative sum of log b, and the linear product's
  underflow is emulated in log space: a window whose log-sum is below
  ln 2**-1075 = -745.1332... scored ln(realmin) = -708.3964... in the reference
  (a product that underflows to 0 is replaced by realmin), so it is scored that here;
* the whole (L, 4, D) table of window scores + log duration probabilities is built at
  once; each t step is then one add, one argmax and a few small writes;
* ties go to the smallest d (first maximum), as with the reference's strict ``>``.

The quirks of the reference are kept: windows span d + 1 frames (frame s is scored both
in delta(s, pred) and for the new state), s and e are clamped to T - 1 and T past the
end, the termination searches rows T+1..L in MATLAB column-major order, the backtrack may
leave frame 1 as 0, and it stops after 1001 loop passes (``count > 1000``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ViterbiResult", "viterbi_decode", "expand_states", "LOG_UNDERFLOW", "LOG_REALMIN",
    "PRED", "BACKTRACK_CAP_FLAG", "BACKTRACK_CLAMP_FLAG",
]

#: ln(2**-1075): a product of factors < 1 underflows to 0 iff its log-sum is below this.
LOG_UNDERFLOW = -1075 * np.log(2.0)          # -745.1332191019412
#: ln(realmin): what the reference scores an underflowed window.
LOG_REALMIN = float(np.log(np.finfo(np.float64).tiny))  # -708.3964185322641
#: Stand-in for ln(0) of an emission probability that is exactly 0 (any value below
#: LOG_UNDERFLOW gives the same decode: every window containing it underflows).
_LOG_ZERO = -1000.0
#: Predecessor of each state, 0-based: S1 <- diastole, systole <- S1, S2 <- systole, ...
PRED = np.array([3, 0, 1, 2])
BACKTRACK_CAP_FLAG = "backtrack stopped after 1001 passes (reference cap); early frames left 0"
BACKTRACK_CLAMP_FLAG = "backtrack: last state longer than the recording, onset clamped"
MAX_BACKTRACK_PASSES = 1000


@dataclass(frozen=True)
class ViterbiResult:
    """Decoder output.

    Attributes:
        states: (T,) int8 frame states 0..4 (1 = S1, ..., 4 = diastole; 0 only where the
            reference leaves frame 1 unset).
        delta: (L + 1, 4) log scores, row t = 1-based time t (row 0 unused, -inf).
        psi_d: (L + 1, 4) chosen durations, row t = 1-based time t (rows 0, 1 are 0).
        flags: tuple of quirk flags hit while backtracking.
    """

    states: np.ndarray
    delta: np.ndarray
    psi_d: np.ndarray
    flags: tuple[str, ...] = ()


#: Rows of the window-score table built at a time (bounds memory to ~CHUNK * 4 * D floats).
_CHUNK = 2048


def _window_scores(csum_t: np.ndarray, log_p: np.ndarray, underflow: bool, t_lo: int,
                   t_hi: int) -> np.ndarray:
    """(t_hi - t_lo, 4, D) table: row i = Em_j(t, d) + ln p_j(d) for 1-based t = t_lo + i.

    ``csum_t`` is the (4, T + 1) cumulative sum of ln b with a leading 0 column, so the
    window s..e scores ``csum_t[:, e] - csum_t[:, s - 1]``.
    """
    t_frames = csum_t.shape[1] - 1
    d_max = log_p.shape[1]
    t = np.arange(t_lo, t_hi)[:, None]
    d = np.arange(1, d_max + 1)[None, :]
    s = np.clip(t - d, 1, t_frames - 1)          # (rows, D), 1-based start frame
    e = np.minimum(t, t_frames)                  # (rows, 1), 1-based end frame
    out = np.empty((t_hi - t_lo, 4, d_max))
    for j in range(4):
        c = csum_t[j]
        window = np.subtract(c[e], c[s - 1], out=out[:, j, :])
        if underflow:
            np.copyto(window, LOG_REALMIN, where=window < LOG_UNDERFLOW)
        window += log_p[j]
    return out


def viterbi_decode(emissions: np.ndarray, duration_probs: np.ndarray, pi: np.ndarray,
                   *, emulate_underflow: bool = True) -> ViterbiResult:
    """Decode the frame states of a recording.

    Args:
        emissions: (T, 4) observation likelihoods b_j(t) (all < 1 for the Springer model).
        duration_probs: (4, D) duration probabilities p_j(d), d = 1..D.
        pi: (4,) initial state distribution.
        emulate_underflow: score windows whose linear product would underflow to 0 as
            ln(realmin), as the reference does (default). False gives the exact log-sum.

    Returns:
        A :class:`ViterbiResult` with (T,) frame states.
    """
    b = np.asarray(emissions, dtype=np.float64)
    p = np.asarray(duration_probs, dtype=np.float64)
    t_frames = b.shape[0]
    d_max = p.shape[1]
    if b.ndim != 2 or b.shape[1] != 4 or p.shape[0] != 4 or t_frames < 2 or d_max < 1:
        raise ValueError(f"need emissions (T >= 2, 4) and durations (4, D >= 1); got "
                         f"{b.shape} and {p.shape}")
    length = t_frames + d_max - 1
    with np.errstate(divide="ignore"):
        log_b = np.log(b)
        log_p = np.log(p)
        log_pi = np.log(np.asarray(pi, dtype=np.float64))
    log_b = np.maximum(log_b, _LOG_ZERO)  # -inf (b == 0) -> a value that always underflows
    csum_t = np.zeros((4, t_frames + 1))
    np.cumsum(log_b.T, axis=1, out=csum_t[:, 1:])

    delta = np.full((length + 1, 4), -np.inf)
    psi_d = np.zeros((length + 1, 4), dtype=np.int32)
    delta[1] = log_pi + log_b[0]
    # Predecessor scores, time-reversed so that the windows of an interior step are a
    # forward slice: rev[j, length - t] = delta(t, pred(j)).
    rev = np.full((4, length + 1), -np.inf)
    rev[:, length - 1] = delta[1, PRED]
    ar4 = np.arange(4)
    buf = np.empty((4, d_max))
    d_idx = np.arange(1, d_max + 1)
    chunk_lo = chunk_hi = 2
    scores = None
    for t in range(2, length + 1):
        if t == chunk_hi:
            chunk_lo, chunk_hi = t, min(t + _CHUNK, length + 1)
            scores = _window_scores(csum_t, log_p, emulate_underflow, chunk_lo, chunk_hi)
        score = scores[t - chunk_lo]
        if d_max < t <= t_frames:
            # s = t - d for d = 1..D: rev columns length-t+1 .. length-t+D, contiguous.
            np.add(rev[:, length - t + 1:length - t + 1 + d_max], score, out=buf)
        else:
            cols = length - np.clip(t - d_idx, 1, t_frames - 1)
            np.add(rev[:, cols], score, out=buf)
        k = buf.argmax(axis=1)
        best = buf[ar4, k]
        delta[t] = best
        psi_d[t] = k
        rev[:, length - t] = best[PRED]
    psi_d[2:] += 1

    pos, state = _terminate(delta, t_frames)

    qt, flags = _backtrack(psi_d, pos, state, length)
    return ViterbiResult(states=qt[1:t_frames + 1].astype(np.int8), delta=delta,
                         psi_d=psi_d, flags=flags)


def _terminate(delta: np.ndarray, t_frames: int) -> tuple[int, int]:
    """(pos, 0-based state) where the backtrack starts.

    pos = the row of the maximum of delta over rows T+1..L, searched in MATLAB's
    column-major order (ties: lowest state, then earliest row); state = the first argmax
    of that row.
    """
    block = delta[t_frames + 1:]
    flat = int(np.argmax(block.T.ravel()))
    pos = t_frames + 1 + flat % block.shape[0]
    return pos, int(np.argmax(delta[pos]))


def _backtrack(psi_d: np.ndarray, pos: int, state: int, length: int):
    """The reference backtrack on 1-based arrays; returns (qt of length L+1, flags)."""
    qt = np.zeros(length + 1, dtype=np.int8)
    flags: list[str] = []
    off = pos
    on = off - int(psi_d[off, state]) + 1
    if on < 1:  # the reference would error here (only for recordings shorter than D)
        on = 1
        flags.append(BACKTRACK_CLAMP_FLAG)
    qt[on:off + 1] = state + 1
    state = int(PRED[state])
    passes = 0
    while on > 2:
        off = on - 1
        on = off - int(psi_d[off, state]) + 1
        if on < 2:
            on = 1
        qt[on:off + 1] = state + 1
        state = int(PRED[state])
        passes += 1
        if passes > MAX_BACKTRACK_PASSES:  # the reference's ``count > 1000``: 1001 passes
            if on > 2:
                flags.append(BACKTRACK_CAP_FLAG)
            break
    return qt, tuple(flags)


def expand_states(frame_states: np.ndarray, n_samples: int, ratio: int = 20) -> np.ndarray:
    """``expand_qt`` from 50 Hz frames to audio rate: ``np.repeat(qt, 20)[:n]``."""
    return np.repeat(np.asarray(frame_states, dtype=np.int8), ratio)[:n_samples]
