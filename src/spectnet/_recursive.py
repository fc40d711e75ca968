"""CPU kernels of the exact recursive (IIR) gammatone path, compiled by numba at first use.

See :func:`spectnet.functional.recursive_gammatone_spectrogram` for the mathematics.  Per
filter, the kernels run a cascade of one-pole stages ``P_m[t] = P_(m-1)[t] + q P_m[t + 1]``
(``P_0 = x``) backwards in time; the K-tap output combines ``P_m[t]`` with ``P_m[t + K]``
(the response beyond K taps, subtracted).  Only fixed linear combinations of the stages
at ``t + K`` are needed, so each sample stores its combinations in a ring buffer of K
slots, read back K samples later: one real value per filter in the forward (the tail's
share of y), two complex ones in the backward (the series of powers 3 and 4); storing
the 8-10 stage values instead cost 14-17 % more time.  The square of y goes into per-hop
block sums on the fly, so the ``(B, F, L)`` filtered signal is never stored.

Why the code looks like this: LLVM vectorises the loop over filter lanes only when it can
prove that its loads and stores do not overlap; numba passes arrays with runtime strides,
and with more than a few distinct arrays, or rows of one array at runtime offsets, it gave
up (scalar code, 5-15x slower, measured).  So each work item keeps its parameters, states
and accumulators in ONE flat array with rows of ``LANES`` values at compile-time offsets
(``row * LANES + lane``), and reads and writes the ring buffer through a view of the
current slot (a second array: one runtime overlap check).  Copying the slot in and out
of fixed rows instead was 10x slower (store forwarding), and so were divisions per sample
(hence the counters).  The lane loop becomes AVX/AVX2 code, ~1 ns per filter and sample.
Filters are padded to a multiple of ``LANES`` with silent ones (all coefficients 0).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Filters processed together by one work item (two AVX2 registers of float32): more lanes
#: spread the per-sample bookkeeping over more filters.
LANES = 16
_W = LANES

# forward parameter rows (each LANES wide): the pole, then per stage m = 0..3 the complex
# weights of P_m[t] (c alpha_m) and of P_m[t + K] (-c q^K beta_m)
_QR, _QI = 0, 1
_FG = 2                 # c alpha_m: re at _FG + 2m, im at _FG + 2m + 1
_FD = 10                # -c q^K beta_m, same layout
PARAM_ROWS_FORWARD = 18
_FS = 18                # stage states: re at _FS + 2m, im at _FS + 2m + 1 (m = 0..3)
_EW, _EP = 26, 27       # energy accumulators: whole block, its first `rem` samples
_ROWS_FORWARD = 28

# backward parameter rows: pole, gain c, the tail's gain -c q^K, real alpha3_m (m = 0..3),
# real beta3_m, real alpha4_m (m = 0..4), real beta4_m
_CR, _CI = 2, 3
_TR, _TI = 4, 5
_A3 = 6                 # 4 rows
_B3 = 10                # 4 rows
_A4 = 14                # 5 rows
_B4 = 19                # 5 rows
PARAM_ROWS_BACKWARD = 24
_BS = 24                # 5 stage states (re, im)
_SUMS = 34              # this block's sums of gy A3, gy A4, gy S3[t + K], gy S4[t + K] (re, im)
N_SUMS = 8
_UW, _UP = 42, 43       # this block's dL/dy weights (whole, first `rem` samples)
_GY = 44                # dL/dy at the current sample
_ROWS_BACKWARD = 45



@njit(inline="always")
def _last_sample(n_samples, kernel_size, hop):
    """Ring slot, hop block and offset in the block of the last sample."""
    block = (n_samples - 1) // hop
    return (n_samples - 1) % kernel_size, block, n_samples - 1 - block * hop


@njit(inline="always")
def _previous_sample(slot, block, offset, kernel_size, hop):
    """The same one sample earlier, by counting (a division per sample cost more than a
    lane's arithmetic)."""
    slot = slot - 1 if slot else kernel_size - 1
    if offset:
        return slot, block, offset - 1
    return slot, block - 1, hop - 1


@njit(inline="always")
def _stage(w, states, m, lane, a, b, pr, pi):
    """Stage m of a lane: ``P_m[t] = P_(m-1)[t] + q P_m[t + 1]`` (``pr, pi`` in: P_(m-1)[t]);
    returns P_m[t], which the state row keeps."""
    re, im = (states + 2 * m) * _W + lane, (states + 2 * m + 1) * _W + lane
    sr, si = w[re], w[im]
    pr, pi = pr + a * sr - b * si, pi + a * si + b * sr
    w[re], w[im] = pr, pi
    return pr, pi


@njit(fastmath={"contract"}, cache=True)
def _forward_item(x, w, ring, kernel_size, n_out, hop, rem, out):
    n_samples = x.shape[0]
    one = np.ones(1, dtype=x.dtype)[0]  # `x[0] * 0 + 1` would be float64 (int promotion)
    zero = one - one
    # the ring slot of t holds the tail term of t + K until t's replaces it
    slot, block, offset = _last_sample(n_samples, kernel_size, hop)
    for t in range(n_samples - 1, -1, -1):
        xt = x[t]
        weight = one if t < n_out else zero
        weight_part = weight if offset < rem else zero
        old = ring[slot * _W: (slot + 1) * _W]
        for l in range(_W):
            a = w[_QR * _W + l]
            b = w[_QI * _W + l]
            pr = xt
            pi = zero
            y = zero
            tail = zero
            for m in range(4):
                pr, pi = _stage(w, _FS, m, l, a, b, pr, pi)
                y += w[(_FG + 2 * m) * _W + l] * pr - w[(_FG + 2 * m + 1) * _W + l] * pi
                tail += w[(_FD + 2 * m) * _W + l] * pr - w[(_FD + 2 * m + 1) * _W + l] * pi
            y += old[l]
            old[l] = tail
            e = y * y
            w[_EW * _W + l] += weight * e
            w[_EP * _W + l] += weight_part * e
        if offset == 0 and t < n_out:
            for l in range(_W):
                out[block, 0, l] = w[_EW * _W + l]
                out[block, 1, l] = w[_EP * _W + l]
                w[_EW * _W + l] = zero
                w[_EP * _W + l] = zero
        slot, block, offset = _previous_sample(slot, block, offset, kernel_size, hop)


@njit(parallel=True, cache=True)
def forward_blocks(x, params, kernel_size, n_out, hop, rem, n_blocks):
    """Block sums of ``y^2``.

    Args:
        x: ``(B, T)`` waveform.
        params: ``(G, PARAM_ROWS_FORWARD * LANES)`` per lane group.
    Returns:
        ``(B, G, n_blocks, 2, LANES)``: per hop block the sum of ``y^2`` over the block
        (clipped to ``n_out`` samples) and over its first ``rem`` samples.
    """
    batch = x.shape[0]
    groups = params.shape[0]
    out = np.zeros((batch, groups, n_blocks, 2, _W), dtype=x.dtype)
    for item in prange(batch * groups):
        b = item // groups
        g = item - b * groups
        w = np.zeros(_ROWS_FORWARD * _W, dtype=x.dtype)
        w[: PARAM_ROWS_FORWARD * _W] = params[g]
        ring = np.zeros(kernel_size * _W, dtype=x.dtype)
        _forward_item(x[b], w, ring, kernel_size, n_out, hop, rem, out[b, g])
    return out


@njit(fastmath={"contract"}, cache=True)
def _backward_item(x, w, ring, kernel_size, n_out, hop, rem, weights, sums, grad_y, keep_grad_y):
    n_samples = x.shape[0]
    one = np.ones(1, dtype=x.dtype)[0]  # `x[0] * 0 + 1` would be float64 (int promotion)
    zero = one - one
    slot, block, offset = _last_sample(n_samples, kernel_size, hop)
    for t in range(n_samples - 1, -1, -1):
        xt = x[t]
        inside = t < n_out
        if inside and (offset == hop - 1 or t == n_out - 1):  # entering a block (going down)
            for l in range(_W):
                w[_UW * _W + l] = weights[block, 0, l]
                w[_UP * _W + l] = weights[block, 1, l]
        active = one if inside else zero
        part = one if offset < rem else zero
        old = ring[slot * 4 * _W: (slot + 1) * 4 * _W]
        for l in range(_W):
            a = w[_QR * _W + l]
            b = w[_QI * _W + l]
            pr = xt
            pi = zero
            a3r = zero
            a3i = zero
            a4r = zero
            a4i = zero
            s3r = zero
            s3i = zero
            s4r = zero
            s4i = zero
            for m in range(5):
                pr, pi = _stage(w, _BS, m, l, a, b, pr, pi)
                alpha = w[(_A4 + m) * _W + l]
                beta = w[(_B4 + m) * _W + l]
                a4r += alpha * pr
                a4i += alpha * pi
                s4r += beta * pr
                s4i += beta * pi
                if m < 4:
                    alpha = w[(_A3 + m) * _W + l]
                    beta = w[(_B3 + m) * _W + l]
                    a3r += alpha * pr
                    a3i += alpha * pi
                    s3r += beta * pr
                    s3i += beta * pi
            # the tail sums of t + K (from the ring), then t's in their place
            t3r, t3i, t4r, t4i = old[l], old[_W + l], old[2 * _W + l], old[3 * _W + l]
            old[l], old[_W + l], old[2 * _W + l], old[3 * _W + l] = s3r, s3i, s4r, s4i
            # y = Re(c z3) with z3 = A3[t] - q^K S3[t + K]
            y = (w[_CR * _W + l] * a3r - w[_CI * _W + l] * a3i
                 + w[_TR * _W + l] * t3r - w[_TI * _W + l] * t3i)
            gy = (y + y) * active * (w[_UW * _W + l] + part * w[_UP * _W + l])
            w[_GY * _W + l] = gy
            w[(_SUMS + 0) * _W + l] += gy * a3r
            w[(_SUMS + 1) * _W + l] += gy * a3i
            w[(_SUMS + 2) * _W + l] += gy * a4r
            w[(_SUMS + 3) * _W + l] += gy * a4i
            w[(_SUMS + 4) * _W + l] += gy * t3r
            w[(_SUMS + 5) * _W + l] += gy * t3i
            w[(_SUMS + 6) * _W + l] += gy * t4r
            w[(_SUMS + 7) * _W + l] += gy * t4i
        if keep_grad_y and inside:
            for l in range(_W):
                grad_y[t, l] = w[_GY * _W + l]
        if inside and offset == 0:  # block done: add its sums in float64
            for j in range(N_SUMS):
                for l in range(_W):
                    sums[j, l] += w[(_SUMS + j) * _W + l]
                    w[(_SUMS + j) * _W + l] = zero
        slot, block, offset = _previous_sample(slot, block, offset, kernel_size, hop)


@njit(parallel=True, cache=True)
def backward_sums(x, params, kernel_size, n_out, hop, rem, weights, keep_grad_y):
    """The parts of ``sum_t gy[t] z3[t]`` and ``sum_t gy[t] z4[t]`` per filter (complex,
    float64), where ``z_P[t] = sum_{k<K} k^P q^k x[t + k] = A_P[t] - q^K S_P[t + K]`` (the
    stages weighted by the real ``alpha`` and ``beta`` of ``_stage_weights``) and ``gy[t] =
    2 y[t] (U[block] + [offset < rem] V[block])`` is dL/dy, rebuilt from the forward's
    recursion and the block weights.  The caller applies ``-q^K`` to the S sums: one
    complex product per filter instead of one per sample.

    Args:
        weights: ``(B, G, n_blocks, 2, LANES)`` the (U, V) of every block.
        keep_grad_y: also return dL/dy (for the waveform's gradient).
    Returns:
        ``(B, G, 8, LANES)`` float64 sums of gy times A3, A4, S3[t + K], S4[t + K] (re, im
        each) and dL/dy
        ``(B, G, n_out, LANES)`` (or an empty array).
    """
    batch = x.shape[0]
    groups = params.shape[0]
    sums = np.zeros((batch, groups, N_SUMS, _W), dtype=np.float64)
    if keep_grad_y:
        grad_y = np.zeros((batch, groups, n_out, _W), dtype=x.dtype)
    else:
        grad_y = np.zeros((batch, groups, 1, _W), dtype=x.dtype)
    for item in prange(batch * groups):
        b = item // groups
        g = item - b * groups
        w = np.zeros(_ROWS_BACKWARD * _W, dtype=x.dtype)
        w[: PARAM_ROWS_BACKWARD * _W] = params[g]
        ring = np.zeros(kernel_size * 4 * _W, dtype=x.dtype)
        _backward_item(x[b], w, ring, kernel_size, n_out, hop, rem, weights[b, g], sums[b, g],
                       grad_y[b, g], keep_grad_y)
    return sums, grad_y
