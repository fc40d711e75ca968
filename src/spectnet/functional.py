"""Stateless functional core of the SpectNet front-end.

Everything here is a pure function of tensors; :mod:`spectnet.frontend` holds the
parameters and calls these.  The pipeline the authors' code computed
(REPRODUCTION.md §2, ``Conv_Gammatone`` + ``MFCC_Gen``) is::

    kernels = gammatone_impulse_response(f, b, a, n, kernel_size, sample_rate)  # (F, K)
    y       = gammatone_filter(waveform, kernels)          # (B, F, T - K + 1), valid cross-correlation
    energy  = windowed_energy(y, win_length, hop_length)   # (B, F, frames), rectangular sum of |y|^2
    spec    = log_compress(energy, eps)                    # ln(energy + eps)

or in one call :func:`gammatone_spectrogram`.  Shapes use ``B`` batch, ``F`` filters,
``K`` kernel taps, ``T`` samples, ``L = T - K + 1`` filtered samples and
``M = (L - win_length) // hop_length + 1`` frames.

Example:
    >>> import torch
    >>> from spectnet import functional as SF
    >>> f = SF.mel_center_frequencies(4, 0.0, 500.0, dtype=torch.float32)
    >>> [round(v, 1) for v in f.tolist()]
    [0.0, 137.8, 302.7, 500.0]
    >>> kernels = SF.gammatone_impulse_response(
    ...     f, torch.full((4,), 100.0), torch.full((4,), 1e4), torch.full((4,), 4.0),
    ...     kernel_size=81, sample_rate=1000)
    >>> spec = SF.gammatone_spectrogram(torch.randn(2, 2500), kernels, 25, 10)
    >>> tuple(spec.shape)
    (2, 4, 240)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_center_frequencies",
    "erb_bandwidth",
    "gammatone_impulse_response",
    "gammatone_frequency_response",
    "next_fast_len",
    "CostModel",
    "COST_MODELS",
    "device_class",
    "cost_model",
    "choose_method",
    "gammatone_filter",
    "windowed_energy",
    "log_compress",
    "num_frames",
    "gammatone_spectrogram",
    "stft_gammatone_spectrogram",
    "recursive_gammatone_spectrogram",
    "recursive_available",
    "recursive_float64_share",
    "to_image",
    "METHODS",
]

#: Computation paths of the SpectNet spectrogram (``stft`` is approximate; ``iir`` needs the
#: filter parameters, see :func:`recursive_gammatone_spectrogram`).
METHODS = ("auto", "direct", "fft", "iir", "stft")

ArrayLike = Union[Tensor, Sequence[float], float]


# ----------------------------------------------------------------------------------
# Frequency scales and initialisation helpers (paper eq. 2-4)
# ----------------------------------------------------------------------------------
def hz_to_mel(freq: ArrayLike) -> Tensor:
    """Paper eq. (2): ``m = 2595 * log10(1 + f / 700)``. Works elementwise, keeps dtype.

    >>> round(float(hz_to_mel(500.0)), 3)
    607.446
    """
    freq = torch.as_tensor(freq, dtype=torch.float64) if not isinstance(freq, Tensor) else freq
    return 2595.0 * torch.log10(1.0 + freq / 700.0)


def mel_to_hz(mel: ArrayLike) -> Tensor:
    """Paper eq. (3) with its typo corrected: ``f = 700 * (10^(m / 2595) - 1)``.

    >>> round(float(mel_to_hz(hz_to_mel(123.0))), 6)
    123.0
    """
    mel = torch.as_tensor(mel, dtype=torch.float64) if not isinstance(mel, Tensor) else mel
    return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)


def mel_center_frequencies(
    n_filters: int, f_min: float, f_max: float, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n_filters`` centre frequencies uniformly spaced on the mel scale, both ends included.

    Computed in float64 and then cast to ``dtype`` so the float32 values are the
    correctly rounded ones (the authors rounded in float32 numpy; differences <= 1 ulp).

    Returns:
        Tensor of shape ``(n_filters,)`` in Hz.

    >>> [round(v, 1) for v in mel_center_frequencies(16, 0, 500).tolist()][:4]
    [0.0, 25.6, 52.2, 79.7]
    """
    if n_filters < 1:
        raise ValueError(f"n_filters must be >= 1, got {n_filters}")
    if not f_max > f_min:
        raise ValueError(f"f_min must be < f_max, got f_min={f_min}, f_max={f_max}")
    mels = torch.linspace(
        float(hz_to_mel(float(f_min))), float(hz_to_mel(float(f_max))), n_filters, dtype=torch.float64
    )
    freqs = mel_to_hz(mels)
    # linspace + the round trip can leave 1e-13 Hz of drift at the ends; pin them.
    freqs[0] = float(f_min)
    if n_filters > 1:
        freqs[-1] = float(f_max)
    return freqs.to(dtype)


def erb_bandwidth(freq: ArrayLike) -> Tensor:
    """Paper eq. (4): equivalent rectangular bandwidth ``24.7 * (4.37 f / 1000 + 1)`` in Hz.

    >>> round(float(erb_bandwidth(0.0)), 2), round(float(erb_bandwidth(400.0)), 2)
    (24.7, 67.88)
    """
    freq = torch.as_tensor(freq, dtype=torch.float64) if not isinstance(freq, Tensor) else freq
    return 24.7 * (4.37 * freq / 1000.0 + 1.0)


# ----------------------------------------------------------------------------------
# Gammatone kernels
# ----------------------------------------------------------------------------------
def _column(x: ArrayLike, like: Tensor) -> Tensor:
    """Per-filter value as an ``(F, 1)`` column (scalars broadcast) on ``like``'s device/dtype."""
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return x.reshape(-1, 1)


def gammatone_impulse_response(
    center_freq: Tensor,
    bandwidth: ArrayLike,
    amplitude: ArrayLike,
    order: ArrayLike,
    kernel_size: int,
    sample_rate: float,
    phase: ArrayLike = 0.0,
) -> Tensor:
    """Sampled gammatone impulse responses (paper eq. 1).

    ``g(t) = a * t^(n-1) * exp(-2 pi b t) * cos(2 pi f t + phase)`` on the grid
    ``t = arange(kernel_size) / sample_rate`` (the authors' grid: t starts at 0).

    At ``t = 0`` the power term is evaluated as ``0^(n-1)`` (0 for n > 1, 1 for n = 1)
    through a masked branch, so a learnable order never sees ``0^(n-1) * ln 0`` in its
    gradient: ``dg/dn`` is defined as 0 there (the limit for n > 1).

    Args:
        center_freq: ``(F,)`` centre frequencies f in Hz (its dtype/device set the output's).
        bandwidth: ``(F,)`` or scalar, b in Hz.
        amplitude: ``(F,)`` or scalar, a.
        order: ``(F,)`` or scalar, n (>= 1 expected).
        kernel_size: number of taps K.
        sample_rate: fs in Hz.
        phase: ``(F,)`` or scalar phase in radians (the authors used 0).

    Returns:
        ``(F, K)`` kernels.

    >>> g = gammatone_impulse_response(torch.tensor([100.0]), 100.0, 1e4, 4.0, 81, 1000)
    >>> tuple(g.shape), float(g[0, 0])
    ((1, 81), 0.0)
    """
    center_freq = torch.as_tensor(center_freq)
    if not center_freq.is_floating_point():
        center_freq = center_freq.to(torch.get_default_dtype())
    f = center_freq.reshape(-1, 1)
    b = _column(bandwidth, f)
    a = _column(amplitude, f)
    n = _column(order, f)
    phi = _column(phase, f)
    t = torch.arange(kernel_size, dtype=f.dtype, device=f.device) / sample_rate  # (K,)

    positive = t > 0
    # Replace t = 0 by 1 inside pow so that neither the value nor d/dn = pow * ln(t) is NaN;
    # the true value 0^(n-1) is put back with where() below.
    t_safe = torch.where(positive, t, torch.ones_like(t))
    power = torch.pow(t_safe, n - 1.0)  # (F, K)
    power_at_zero = (n == 1.0).to(f.dtype)  # 0^(n-1): 1 only for n == 1
    power = torch.where(positive, power, power_at_zero)

    envelope = a * power * torch.exp(-2.0 * math.pi * b * t)
    return envelope * torch.cos(2.0 * math.pi * f * t + phi)


def gammatone_frequency_response(kernels: Tensor, freqs: Tensor, sample_rate: float) -> Tensor:
    """Complex DTFT ``G(e^{j 2 pi f / fs}) = sum_k g[k] e^{-j 2 pi f k / fs}`` of the K-tap kernels.

    This is the exact frequency response of the filter the exact path applies
    (truncation to K taps included), evaluated at arbitrary frequencies; it is
    differentiable w.r.t. the kernels.

    Args:
        kernels: ``(F, K)`` real kernels.
        freqs: ``(Q,)`` frequencies in Hz.
        sample_rate: fs in Hz.

    Returns:
        ``(F, Q)`` complex tensor.

    >>> g = gammatone_impulse_response(torch.tensor([100.0]), 100.0, 1e4, 4.0, 81, 1000)
    >>> H = gammatone_frequency_response(g, torch.tensor([0.0, 100.0, 400.0]), 1000)
    >>> bool(H.abs()[0, 1] > H.abs()[0, 0] > H.abs()[0, 2])
    True
    """
    n_taps = kernels.shape[-1]
    freqs = torch.as_tensor(freqs, dtype=kernels.dtype, device=kernels.device)
    taps = torch.arange(n_taps, dtype=kernels.dtype, device=kernels.device)
    angle = (-2.0 * math.pi / sample_rate) * taps[:, None] * freqs[None, :]  # (K, Q)
    real = kernels @ torch.cos(angle)
    imag = kernels @ torch.sin(angle)
    return torch.complex(real, imag)


# ----------------------------------------------------------------------------------
# Filtering: two exact paths
# ----------------------------------------------------------------------------------
def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (2^i 3^j 5^k) >= n: sizes pocketfft/cuFFT handle fastest.

    >>> next_fast_len(2500), next_fast_len(220500), next_fast_len(1031)
    (2500, 221184, 1080)
    """
    n = int(n)
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # smallest power of two that lifts p35 to >= n
            quotient = -(-n // p35)
            p2 = 1 << (quotient - 1).bit_length()
            candidate = p2 * p35
            if candidate < best:
                best = candidate
            p35 *= 3
        p5 *= 5
    return best


@dataclass(frozen=True)
class CostModel:
    """What :func:`choose_method` ranks the exact paths by (forward + backward; the paths
    give the same values up to rounding, so this decides speed only).

    The unit is one multiply-accumulate of the direct convolution.  ``fft_per_nlogn`` is
    the cost of one ``n log2 n`` unit of an FFT; ``iir_per_sample`` that of one sample of
    one float32 filter of the recursion (``None``: the recursion does not run on that
    device); a float64 filter costs ``1 + iir_float64_extra`` float32 ones.  ``fitted_on``
    says where the numbers were measured.
    """

    fft_per_nlogn: float
    iir_per_sample: Optional[float]
    iir_float64_extra: float
    fitted_on: str


#: The cost models ``auto`` uses, by device class (:func:`cost_model`), fitted so that they
#: rank the paths as measured (forward + backward, 2 cores; ``bench/auto_method.py`` prints
#: the check on any machine).  AVX2: oneDNN conv vs pocketfft at K = 21..251, T = 2,500
#: and 220,500 gave c = 5 (break-even 2.3-7); the recursion ranks heart beats (K = 81) fft
#: 277 ms < iir 378 ms, scenes with the paper init iir 406 < fft 810 ms, scenes in float64
#: a tie (707 vs 808 ms): a float64 filter costs about 2.6 float32 ones (half the SIMD
#: width, more spills).  AVX-512 (Zen 4, 512-bit vectors): the recursion was the fastest
#: exact path in 15 of the 16 cases of bench/auto_method.py (K = 15..551, B = 2..256,
#: float32 and float64 filters; heart beats 49.5 ms against fft 89.8), the direct
#: convolution in the 16th (K = 11 in float64: 45.0 vs 59.5 ms), and K = 15 went to the
#: recursion by 5-15 % in two runs; a float64 filter costs 1.4-1.75 float32 ones.  CUDA:
#: not measured (no GPU was lent to the project), the CPU's FFT constant is kept, and the
#: recursion is CPU-only.
COST_MODELS = {
    "cpu-avx2": CostModel(5.0, 70.0, 1.6, "AMD EPYC, AVX2, 2 cores"),
    "cpu-avx512": CostModel(5.0, 12.0, 0.6, "AMD EPYC (Zen 4), AVX-512, 2 cores"),
    "cuda": CostModel(5.0, None, 0.0, "not calibrated: CPU constant, no GPU measured"),
}


def device_class(device="cpu") -> str:
    """The :data:`COST_MODELS` key of a device: its type (``"cuda"``, ...) or, for the CPU,
    ``"cpu-avx512"`` where it lists ``avx512f`` and ``"cpu-avx2"`` otherwise (AVX2 and
    anything older or non-x86).

    >>> device_class("cuda:0")
    'cuda'
    """
    kind = torch.device(device).type
    if kind != "cpu":
        return kind
    return "cpu-avx512" if _has_avx512() else "cpu-avx2"


@functools.lru_cache(maxsize=None)
def _has_avx512() -> bool:
    # cached: ``auto`` resolves on every forward, and /proc/cpuinfo does not change
    from spectnet.runtime import cpu_flags

    return "avx512f" in cpu_flags()


def cost_model(device="cpu") -> CostModel:
    """The :class:`CostModel` ``auto`` uses on ``device`` (a device without its own
    calibration gets the CUDA one: the CPU's FFT constant and no recursion).

    >>> cost_model("cuda").iir_per_sample is None
    True
    """
    return COST_MODELS.get(device_class(device), COST_MODELS["cuda"])


def choose_method(batch: int, n_filters: int, n_samples: int, kernel_size: int,
                  float64_share: Optional[float] = None, costs: Optional[CostModel] = None) -> str:
    """Pick ``"direct"``, ``"fft"`` or ``"iir"`` by estimated cost on this device.

    direct ~ ``B * F * L * K`` multiply-adds; fft ~ ``c * (B * F + B + F) * N * log2(N)``
    with ``N = next_fast_len(T)``; iir ~ ``r * (1 + e * s) * B * F * T`` whatever K, with
    ``s = float64_share`` (the share of the filters the recursion runs in float64, see
    :func:`recursive_float64_share`; ``None`` where the recursion does not apply: a
    learnable or non-4 order, no numba, not on the CPU).  ``c``, ``r`` and ``e`` come from
    ``costs`` (default: :func:`cost_model` of the CPU this runs on, :data:`COST_MODELS`).
    With the AVX2 constants FFT wins over direct once ``K`` exceeds about ``5 * log2(T)``
    taps (~57 at T = 2,500: the PCG setup, K = 81, goes to FFT) and the recursion wins for
    long kernels (the scene setup, K = 551) but not for K = 81; with the AVX-512 ones the
    recursion wins from about 12 taps on (about 19 where every filter is float64).

    >>> avx2, avx512 = COST_MODELS["cpu-avx2"], COST_MODELS["cpu-avx512"]
    >>> [choose_method(256, 16, 2500, k, costs=avx2) for k in (41, 81)]
    ['direct', 'fft']
    >>> [choose_method(256, 16, 2500, 81, 0.0, costs=m) for m in (avx2, avx512)]
    ['fft', 'iir']
    >>> [choose_method(2, 46, 220500, 551, s, costs=avx2) for s in (0.0, 0.3, 1.0)]
    ['iir', 'iir', 'fft']
    """
    costs = costs or cost_model("cpu")
    n_out = n_samples - kernel_size + 1
    estimates = {"direct": batch * n_filters * n_out * kernel_size}
    n_fft = next_fast_len(n_samples)
    estimates["fft"] = costs.fft_per_nlogn * (batch * n_filters + batch + n_filters) * n_fft * math.log2(max(n_fft, 2))
    if float64_share is not None and costs.iir_per_sample is not None:
        estimates["iir"] = (costs.iir_per_sample * (1.0 + costs.iir_float64_extra * float64_share)
                            * batch * n_filters * n_samples)
    return min(estimates, key=estimates.get)


def _check_waveform(waveform: Tensor, kernel_size: int) -> Tensor:
    """Return ``(B, T)`` view of a ``(B, T)`` / ``(B, 1, T)`` input, with clear errors."""
    if waveform.dim() == 3:
        if waveform.shape[1] != 1:
            raise ValueError(
                f"expected a mono waveform of shape (batch, 1, time); got {tuple(waveform.shape)}"
            )
        waveform = waveform[:, 0]
    elif waveform.dim() != 2:
        raise ValueError(
            f"expected waveform of shape (batch, time) or (batch, 1, time); got {tuple(waveform.shape)}"
        )
    if waveform.shape[-1] < kernel_size:
        raise ValueError(
            f"input is shorter than the kernel: {waveform.shape[-1]} samples < kernel_size={kernel_size}"
        )
    return waveform


def _first_order_only(backward):
    """Mark a hand-written ``backward`` as once-differentiable, and fail at once, with a
    clear message, when a graph for a second derivative is requested (``create_graph=True``:
    double backward, gradient penalties, ``gradgradcheck``).

    ``once_differentiable`` alone only raises when a later backward happens to traverse the
    node; ``torch.autograd.grad(..., inputs=...)`` skips it and returns a silently wrong
    second derivative, which is worse than an error.
    """
    first_order = once_differentiable(backward)

    @functools.wraps(backward)
    def checked(ctx, *grads):
        if torch.is_grad_enabled() and any(isinstance(g, Tensor) and g.requires_grad for g in grads):
            raise RuntimeError(
                f"{backward.__qualname__.split('.')[0].lstrip('_')} has first-order gradients only: "
                "a double backward (create_graph=True) through the SpectNet front-end is not supported")
        return first_order(ctx, *grads)

    return checked


class _FFTCorrelation(torch.autograd.Function):
    """Valid cross-correlation by real FFTs, with a hand-written backward.

    Autograd through ``rfft``/``irfft`` would transform the (F, N) kernel gradient with
    full complex FFTs and keep (B, F, N) complex intermediates; here the backward needs
    ``B*F`` real FFTs of the output gradient plus ``F`` (and ``B`` if the input needs a
    gradient) inverse ones, i.e. about the forward's cost.  A circular correlation of size
    ``N >= T`` does not wrap for the valid lags ``0 .. T-K`` (and for the kernel gradient's
    lags ``0 .. K-1``), so every result is exact up to rounding.
    """

    @staticmethod
    def forward(ctx, waveform: Tensor, kernels: Tensor) -> Tensor:  # (B, T), (F, K) -> (B, F, L)
        # int(): under torch.jit.trace shapes are tensors; the trace is shape-specialised anyway
        n_samples = int(waveform.shape[-1])
        kernel_size = int(kernels.shape[-1])
        n_out = n_samples - kernel_size + 1
        n_fft = next_fast_len(n_samples)
        signal_spectrum = torch.fft.rfft(waveform, n=n_fft)  # (B, N/2+1)
        kernel_spectrum = torch.fft.rfft(kernels, n=n_fft)  # (F, N/2+1)
        # correlation = product with the conjugate kernel spectrum; the small (F, N/2+1)
        # conjugate is materialised once so the big product does not resolve a lazy conj
        product = signal_spectrum.unsqueeze(1) * kernel_spectrum.conj().resolve_conj().unsqueeze(0)
        ctx.save_for_backward(signal_spectrum, kernel_spectrum)
        ctx.sizes = (n_samples, kernel_size, n_fft)
        return torch.fft.irfft(product, n=n_fft)[..., :n_out]

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_output: Tensor):
        signal_spectrum, kernel_spectrum = ctx.saved_tensors
        n_samples, kernel_size, n_fft = ctx.sizes
        grad_waveform = grad_kernels = None
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return None, None
        grad_spectrum = torch.fft.rfft(grad_output, n=n_fft)  # (B, F, N/2+1), zero-padded
        if ctx.needs_input_grad[1]:
            # dL/dg[f, k] = sum_b sum_m dy[b, f, m] x[b, m + k] = irfft(sum_b X_b conj(DY_bf))[k].
            # Computed as the time reversal of irfft(sum_b conj(X_b) DY_bf): conjugating the
            # small (B, N/2+1) signal spectrum instead of the big gradient spectrum, and an
            # elementwise product + batch sum instead of einsum (which lowers to N/2 tiny
            # matrix products here).
            summed = (grad_spectrum * signal_spectrum.conj().resolve_conj().unsqueeze(1)).sum(0)
            reversed_lags = torch.fft.irfft(summed, n=n_fft)  # r[j] = grad_g[(-j) mod N]
            grad_kernels = torch.cat([reversed_lags[..., :1], reversed_lags[..., n_fft - kernel_size + 1:].flip(-1)], -1)
        if ctx.needs_input_grad[0]:
            # dL/dx[i] = sum_f sum_k dy[f, i - k] g[f, k]: a full (linear) convolution
            summed = (grad_spectrum * kernel_spectrum.unsqueeze(0)).sum(1)
            grad_waveform = torch.fft.irfft(summed, n=n_fft)[..., :n_samples]
        return grad_waveform, grad_kernels


def gammatone_filter(waveform: Tensor, kernels: Tensor, method: str = "auto") -> Tensor:
    """Valid cross-correlation of every waveform with every kernel (``F.conv1d`` semantics).

    ``y[b, f, m] = sum_k x[b, m + k] * g[f, k]`` for ``m = 0 .. T - K``: stride 1, no padding,
    no kernel flip, exactly the authors' ``F.conv1d``.

    Args:
        waveform: ``(B, T)`` or ``(B, 1, T)``.
        kernels: ``(F, K)``.
        method: ``"direct"`` (``F.conv1d``), ``"fft"`` (real FFT of size ``next_fast_len(T)``;
            a circular correlation of length >= T does not wrap for the valid lags) or
            ``"auto"`` (:func:`choose_method`).  Both are exact up to rounding.  The FFT's
            rounding error is spread over the whole row (about 1e-7 of its largest |y| in
            float32), so in float32 the log-energies of frames ~60-100 dB below a row's
            loudest part can differ between the paths by 1e-3..1e-2 (measured on ESC-10:
            median 5e-5, 99.9th percentile 6e-3, max 3e-2); float64 agrees to ~1e-12.

    Returns:
        ``(B, F, T - K + 1)``.

    >>> x, g = torch.randn(3, 300, dtype=torch.float64), torch.randn(5, 40, dtype=torch.float64)
    >>> torch.allclose(gammatone_filter(x, g, "direct"), gammatone_filter(x, g, "fft"))
    True
    """
    n_filters, kernel_size = (int(v) for v in kernels.shape)
    waveform = _check_waveform(waveform, kernel_size)
    if method == "auto":
        # int() only here: under torch.export it would fix the batch and length of the graph
        batch, n_samples = (int(v) for v in waveform.shape)
        method = choose_method(batch, n_filters, n_samples, kernel_size, costs=cost_model(waveform.device))
    if method == "direct":
        return F.conv1d(waveform.unsqueeze(1), kernels.unsqueeze(1))
    if method == "fft":
        return _FFTCorrelation.apply(waveform, kernels)
    raise ValueError(f"unknown method {method!r} for gammatone_filter; expected 'auto', 'direct' or 'fft'")


# ----------------------------------------------------------------------------------
# Energy and log compression
# ----------------------------------------------------------------------------------
def num_frames(n_samples: int, kernel_size: int, win_length: int, hop_length: int) -> int:
    """Frames produced for ``n_samples`` input samples: ``(T - K + 1 - win) // hop + 1``.

    >>> num_frames(2500, 81, 25, 10)
    240
    """
    n_filtered = n_samples - kernel_size + 1
    if n_filtered < win_length:
        return 0
    return (n_filtered - win_length) // hop_length + 1


def _frame_layout(n_samples: int, win_length: int, hop_length: int):
    """Block decomposition of the rectangular frames (see :func:`windowed_energy`)."""
    n_frames = (n_samples - win_length) // hop_length + 1
    n_whole, remainder = divmod(win_length, hop_length)
    # blocks whose whole sums are read: 0 .. n_frames + n_whole - 2
    n_sum_blocks = n_frames + n_whole - 1 if n_whole else 0
    # blocks whose first `remainder` samples are read: n_whole .. n_whole + n_frames - 1
    n_blocks = max(n_sum_blocks, n_whole + n_frames if remainder else 0)
    # the last partial block may run past the signal: keep it out of the block view
    n_view_blocks = min(n_blocks, n_samples // hop_length)
    return n_frames, n_whole, remainder, n_sum_blocks, n_view_blocks


def _block_energy(blocks: Tensor) -> Tensor:
    # sum of squares without materialising y^2 (vector_norm reads the blocks once)
    return torch.linalg.vector_norm(blocks, dim=-1).square()


class _WindowedEnergy(torch.autograd.Function):
    """``E[m] = sum_{j < win} y[m*hop + j]^2`` with an O(L) forward and backward.

    ``y`` is cut into hop-sized blocks (a view): a frame is ``n_whole = win // hop`` whole
    blocks plus the first ``remainder = win % hop`` samples of the next.  The backward
    writes ``dE/dy = 2 y * u`` (``u[j]`` = sum of dL/dE over the frames covering j) block by
    block, so neither ``y^2`` nor a padded copy is ever stored.
    """

    @staticmethod
    def forward(ctx, filtered: Tensor, win_length: int, hop_length: int) -> Tensor:
        n_samples = filtered.shape[-1]
        n_frames, n_whole, remainder, n_sum_blocks, n_view_blocks = _frame_layout(n_samples, win_length, hop_length)
        blocks = filtered[..., : n_view_blocks * hop_length].unflatten(-1, (n_view_blocks, hop_length))
        energy = None
        if n_whole:
            block_sums = _block_energy(blocks[..., :n_sum_blocks, :])
            for offset in range(n_whole):
                part = block_sums[..., offset: offset + n_frames]
                energy = part.clone() if energy is None else energy.add_(part)
        if remainder:
            partial = _block_energy(blocks[..., n_whole: n_whole + n_frames, :remainder])
            if partial.shape[-1] < n_frames:  # the last frame's partial block is not a whole block
                start = (n_whole + n_frames - 1) * hop_length
                tail = _block_energy(filtered[..., start: start + remainder].unsqueeze(-2))
                partial = torch.cat([partial, tail], dim=-1)
            energy = partial if energy is None else energy.add_(partial)
        ctx.save_for_backward(filtered)
        ctx.layout = (win_length, hop_length)
        return energy

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_energy: Tensor):
        (filtered,) = ctx.saved_tensors
        win_length, hop_length = ctx.layout
        n_samples = filtered.shape[-1]
        n_frames, n_whole, remainder, n_sum_blocks, n_view_blocks = _frame_layout(n_samples, win_length, hop_length)
        grad_filtered = torch.zeros_like(filtered, memory_format=torch.contiguous_format)
        blocks = filtered[..., : n_view_blocks * hop_length].unflatten(-1, (n_view_blocks, hop_length))
        grad_blocks = grad_filtered[..., : n_view_blocks * hop_length].unflatten(-1, (n_view_blocks, hop_length))
        grad_energy = 2.0 * grad_energy
        if n_whole:
            # block k is whole in frames k - n_whole + 1 .. k
            weight = grad_energy.new_zeros(*grad_energy.shape[:-1], n_sum_blocks)
            for offset in range(n_whole):
                weight[..., offset: offset + n_frames] += grad_energy
            torch.mul(blocks[..., :n_sum_blocks, :], weight.unsqueeze(-1), out=grad_blocks[..., :n_sum_blocks, :])
        if remainder:
            n_partial = min(n_frames, n_view_blocks - n_whole)
            head = (slice(None),) * (filtered.dim() - 1)
            target = grad_blocks[..., n_whole: n_whole + n_partial, :remainder]
            target.addcmul_(blocks[..., n_whole: n_whole + n_partial, :remainder],
                            grad_energy[..., :n_partial].unsqueeze(-1))
            if n_partial < n_frames:
                start = (n_whole + n_frames - 1) * hop_length
                index = head + (slice(start, start + remainder),)
                grad_filtered[index] += filtered[index] * grad_energy[..., -1:]
        return grad_filtered, None, None


def windowed_energy(filtered: Tensor, win_length: int, hop_length: int) -> Tensor:
    """Rectangular windowed sum of ``|y|^2`` per filter: ``E[m] = sum_{j<win} y[m*hop + j]^2``.

    Equivalent to the authors' frozen ``Conv1d(F, F, win, stride=hop)`` with identity
    weights, but computed per filter in O(L): ``y`` is viewed as hop-sized blocks; each
    window is ``q = win // hop`` whole blocks plus the first ``r = win % hop`` samples of
    the next one.  No prefix-sum differences, so quiet frames next to loud ones keep full
    relative precision, and digital silence gives exactly 0.  A hand-written backward
    avoids storing ``y^2`` (on CPU this is several times faster than ``avg_pool1d`` or a
    depthwise conv, forward + backward).

    Args:
        filtered: ``(..., L)`` real.
    Returns:
        ``(..., (L - win) // hop + 1)``.

    >>> windowed_energy(torch.ones(1, 1, 30), 25, 10).tolist()
    [[[25.0]]]
    """
    if win_length < 1 or hop_length < 1:
        raise ValueError(f"win_length and hop_length must be >= 1, got {win_length}, {hop_length}")
    n_samples = filtered.shape[-1]
    if n_samples < win_length:
        raise ValueError(f"filtered signal ({n_samples} samples) is shorter than win_length={win_length}")
    return _WindowedEnergy.apply(filtered, int(win_length), int(hop_length))


def log_compress(energy: Tensor, eps: float = 1e-16) -> Tensor:
    """``ln(energy + eps)`` as in the authors' code (eps = 1e-16)."""
    return torch.log(energy + eps)


def gammatone_spectrogram(
    waveform: Tensor,
    kernels: Tensor,
    win_length: int,
    hop_length: int,
    eps: float = 1e-16,
    method: str = "auto",
    n_fft: Optional[int] = None,
) -> Tensor:
    """Full SpectNet spectrogram: filter, square, rectangular window sum, log.

    Args:
        waveform: ``(B, T)`` or ``(B, 1, T)``.
        kernels: ``(F, K)`` gammatone kernels.
        win_length, hop_length: frame window and hop in samples.
        eps: log floor.
        method: ``"auto" | "direct" | "fft"`` (exact, see :func:`gammatone_filter`) or
            ``"stft"`` (approximate, see :func:`stft_gammatone_spectrogram`); the exact
            ``"iir"`` path takes the filter parameters instead of kernels
            (:func:`recursive_gammatone_spectrogram`).
        n_fft: FFT size for ``"stft"`` only.

    Returns:
        ``(B, F, M)`` log energies, ``M = (T - K + 1 - win) // hop + 1``.
    """
    n_filters, kernel_size = kernels.shape
    waveform = _check_waveform(waveform, kernel_size)
    if num_frames(waveform.shape[-1], kernel_size, win_length, hop_length) < 1:
        raise ValueError(
            f"input too short: {waveform.shape[-1]} samples give no frame "
            f"(need >= kernel_size + win_length - 1 = {kernel_size + win_length - 1})"
        )
    if method == "stft":
        return stft_gammatone_spectrogram(waveform, kernels, win_length, hop_length, eps=eps, n_fft=n_fft)
    if method == "iir":
        raise ValueError("method='iir' needs the filter parameters, not kernels: call "
                         "recursive_gammatone_spectrogram (SpectNetFrontend does)")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    filtered = gammatone_filter(waveform, kernels, method)
    return log_compress(windowed_energy(filtered, win_length, hop_length), eps)


# ----------------------------------------------------------------------------------
# Approximate fast path
# ----------------------------------------------------------------------------------
def _energy_delay(kernels: Tensor) -> int:
    """Mean energy centroid of the kernels in taps (their group delay, rounded)."""
    with torch.no_grad():
        energy = kernels.detach().double() ** 2
        taps = torch.arange(kernels.shape[-1], dtype=energy.dtype, device=energy.device)
        centroid = (energy * taps).sum(-1) / energy.sum(-1).clamp_min(1e-300)
        return int(torch.round(centroid.mean()).item())


def stft_gammatone_spectrogram(
    waveform: Tensor,
    kernels: Tensor,
    win_length: int,
    hop_length: int,
    eps: float = 1e-16,
    n_fft: Optional[int] = None,
) -> Tensor:
    """Approximate SpectNet spectrogram from an STFT (fast for long kernels and windows).

    ``E[m, f] ~= sum_k c_k |X_m(k)|^2 |G_f(k)|^2`` where ``X_m`` is the DFT of the
    Hann-windowed frame (window scaled to unit mean power so that Parseval gives the
    energy of ``win_length`` samples), ``G_f`` the exact DTFT of the K-tap kernel at the
    FFT bins, and ``c_k`` the one-sided Parseval weights (1 or 2) / n_fft.  Frame ``m``
    reads ``x[m*hop + d : m*hop + d + win]`` where ``d`` is the kernels' mean energy
    centroid (group delay), so frames line up with the exact path's ``y[m*hop : m*hop+win]``;
    the number of frames equals the exact path's.

    Deviation from the exact path (``bench/frontend.py``, real audio, natural-log units,
    code init): scenes (ESC-10 at 22.05 kHz, 46 filters, K = win = 551, hop 220): median
    |diff| 0.075, 99th percentile 1.8, max about 11 -- the large values sit at the edges
    of digital silence, where the exact energy drops to 0 (log eps = -36.8) within a frame
    and the delay-aligned STFT frame does not; heart sounds (1 kHz, K = 81, win = 25):
    median 0.36, 99th percentile 1.8, max about 4 (a 25-sample window cannot resolve
    100 Hz-wide filters).  Hann beat rectangular/Hamming/Blackman windows and other delays
    on these data.  It is a smoothed estimate for long inputs, not a way to reproduce the
    paper's numbers: use an exact path for that.

    The delay ``d`` is read from the kernels' values (a host sync on GPU); under
    ``torch.jit.trace`` / ``torch.export`` it is frozen at its traced value.

    Args:
        waveform: ``(B, T)`` or ``(B, 1, T)``.
        kernels: ``(F, K)``.
        n_fft: FFT size (default ``win_length``; must be >= ``win_length``; larger only
            zero-pads the frames).

    Returns:
        ``(B, F, M)``, same M as the exact path.
    """
    n_filters, kernel_size = kernels.shape
    waveform = _check_waveform(waveform, kernel_size)
    n_samples = waveform.shape[-1]
    n_out_frames = num_frames(n_samples, kernel_size, win_length, hop_length)
    if n_out_frames < 1:
        raise ValueError(
            f"input too short: {n_samples} samples give no frame "
            f"(need >= kernel_size + win_length - 1 = {kernel_size + win_length - 1})"
        )
    n_fft = win_length if n_fft is None else int(n_fft)
    if n_fft < win_length:
        raise ValueError(f"n_fft ({n_fft}) must be >= win_length ({win_length})")

    delay = min(max(_energy_delay(kernels), 0), kernel_size - 1)
    span = (n_out_frames - 1) * hop_length + win_length
    segment = waveform[:, delay : delay + span]

    window = torch.hann_window(win_length, periodic=True, dtype=waveform.dtype, device=waveform.device)
    window = window * torch.rsqrt(window.pow(2).mean())
    # frames by unfold (a view) so that n_fft > win_length zero-pads at the end instead of
    # changing the framing as torch.stft would
    frames = segment.unfold(-1, win_length, hop_length)[:, :n_out_frames] * window  # (B, M, win)
    spectrum = torch.fft.rfft(frames, n=n_fft)  # (B, M, n_fft//2+1)
    power_spectrum = (spectrum.real.square() + spectrum.imag.square()).transpose(1, 2)  # (B, bins, M)

    n_bins = n_fft // 2 + 1
    bin_index = torch.arange(n_bins, dtype=kernels.dtype, device=kernels.device)
    # Sample-rate free: evaluate the DTFT at normalised bins (fs = n_fft, f = k).
    response = gammatone_frequency_response(kernels, bin_index, float(n_fft))
    gain = response.real.square() + response.imag.square()  # (F, n_bins)
    parseval = torch.full((n_bins,), 2.0, dtype=kernels.dtype, device=kernels.device)
    parseval[0] = 1.0
    if n_fft % 2 == 0:
        parseval[-1] = 1.0
    weights = gain * (parseval / n_fft)  # (F, n_bins)
    energy = torch.einsum("fk,bkm->bfm", weights, power_spectrum)
    return log_compress(energy, eps)


# ----------------------------------------------------------------------------------
# Exact recursive path (order-4 gammatones, CPU)
# ----------------------------------------------------------------------------------
#: Decay over the kernel, ``2 pi b K / fs`` (the envelope falls by ``e^-decay`` over K taps),
#: below which a filter runs in float64: the truncation subtracts the response beyond K
#: taps, which for slowly decaying filters is large, so float32 loses digits.  Chosen by
#: ``bench/recursive_precision.py`` (46 filters, 20 ESC-10 clips at 22.05 kHz, K = 551;
#: log-energy error of the float32 recursion against float64 over non-silent frames):
#: float32 is at rounding level (largest error <= 2e-3, 99.9th percentile <= 1e-4, the
#: gradients' largest error <= 2e-5 of the largest gradient) from decay 8 up (b >= 51 Hz
#: at 22.05 kHz), and not at decay 5 (largest 3.3e-2).  At every decay measured (5-25)
#: its error was below the direct float32 path's (largest 7e-2 to 2.1, dominated by quiet
#: frames), so this bound keeps the recursion's float32 at rounding level, not merely
#: "no worse than direct".  The scene code init (b = 100 Hz) has decay 15.7: float32.
_RECURSIVE_FLOAT64_BELOW_DECAY = 8.0


def recursive_available() -> bool:
    """Whether the recursive path can run here (it needs numba, the ``fast`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def recursive_float64_share(bandwidth: ArrayLike, kernel_size: int, sample_rate: float) -> float:
    """Share of the filters the recursive path runs in float64 (see ``_RECURSIVE_FLOAT64_BELOW_DECAY``).

    >>> recursive_float64_share([10.0, 300.0], 551, 22050)
    0.5
    """
    bandwidth = torch.as_tensor(bandwidth, dtype=torch.float64).detach().reshape(-1)
    decay = 2.0 * math.pi * bandwidth.cpu() * kernel_size / sample_rate
    return float((decay < _RECURSIVE_FLOAT64_BELOW_DECAY).double().mean())


def _series_numerators(power: int, kernel_size: int):
    """Integer coefficients of ``sum_{k<K} k^P w^k = (A(w) - w^K B(w)) / (1 - w)^(P+1)``.

    ``A_j = sum_i (-1)^i C(P+1, i) (j - i)^P`` and ``B_j`` the same with ``j - i + K``
    (the tail ``sum_{k>=K}`` written as ``w^K sum_j (j + K)^P w^j``), j = 0..P; exact in
    Python integers.

    >>> _series_numerators(3, 81)[0]
    [0, 1, 4, 1]
    """
    def row(shift):
        return [sum((-1) ** i * math.comb(power + 1, i) * (j - i + shift) ** power for i in range(j + 1))
                for j in range(power + 1)]
    return row(0), row(kernel_size)


def _stage_weights(power: int, kernel_size: int):
    """Weights of the cascade's stages for the order-P series and for its tail beyond K taps.

    Stage m (m = 0..P) of the cascade holds ``P_m[t] = sum_j C(j + m, m) q^j x[t + j]``;
    ``k^P = sum_m alpha_m C(k + m, m)`` and ``(j + K)^P = sum_m beta_m C(j + m, m)``, so
    ``sum_{k<K} k^P q^k x[t + k] = sum_m alpha_m P_m[t] - q^K sum_m beta_m P_m[t + K]``.
    The tail's weights are all positive (no cancellation inside it).  They are the
    numerators of :func:`_series_numerators` written in powers of ``1 - w``.

    >>> _stage_weights(3, 81)[0]
    [-1, 7, -12, 6]
    """
    def in_powers_of_one_minus_w(numerator):
        return [(-1) ** (power - m) * sum(math.comb(j, power - m) * n for j, n in enumerate(numerator))
                for m in range(power + 1)]
    return tuple(in_powers_of_one_minus_w(row) for row in _series_numerators(power, kernel_size))


def _lane_params(pole: Tensor, gain: Tensor, kernel_size: int, backward: bool, dtype: torch.dtype):
    """The per-lane-group parameter rows the kernels read (layout in ``spectnet._recursive``)."""
    from spectnet import _recursive as R

    tail = -(pole ** kernel_size)
    rows = [pole.real, pole.imag]
    if not backward:  # the output gain folded into the stage weights
        alpha, beta = _stage_weights(3, kernel_size)
        weights = [gain * float(v) for v in alpha] + [gain * tail * float(v) for v in beta]
        rows += [part for z in weights for part in (z.real, z.imag)]
    else:  # real stage weights; the complex factors are applied once (kernel, combination)
        rows += [gain.real, gain.imag, (gain * tail).real, (gain * tail).imag]
        for power in (3, 4):
            rows += [torch.full_like(pole.real, float(v)) for weights in _stage_weights(power, kernel_size)
                     for v in weights]
    params = torch.stack(rows)  # (rows, F)
    pad = -params.shape[1] % R.LANES
    params = F.pad(params, (0, pad)).reshape(len(rows), -1, R.LANES).transpose(0, 1)
    return params.reshape(params.shape[0], -1).to(dtype).contiguous().numpy()


def _to_lanes(values: Tensor, lanes: int) -> Tensor:
    """``(B, F, ...)`` -> ``(B, G, ..., LANES)`` with F padded to ``G * LANES``."""
    batch, n = values.shape[:2]
    pad = -n % lanes
    values = F.pad(values.movedim(1, -1), (0, pad))
    return values.unflatten(-1, (-1, lanes)).movedim(-2, 1)


def _from_lanes(values: Tensor, n: int) -> Tensor:
    """Inverse of :func:`_to_lanes`: ``(B, G, ..., LANES)`` -> ``(B, n, ...)``."""
    return values.movedim(1, -2).flatten(-2)[..., :n].movedim(-1, 1)


class _RecursiveEnergy(torch.autograd.Function):
    """Windowed energies of the order-4 gammatone filters by recursion (CPU, numba).

    Inputs are the poles ``q`` and gains ``c`` (real and imaginary parts, float64) so that
    autograd maps their gradients back to (f, b, a, phase); ``wide`` marks the filters that
    run in float64.
    """

    @staticmethod
    def forward(ctx, waveform, pole_re, pole_im, gain_re, gain_im, wide, kernel_size, win_length, hop_length):
        from spectnet import _recursive as R

        _set_numba_threads()
        batch, n_samples = waveform.shape
        n_out = n_samples - kernel_size + 1
        n_frames, n_whole, remainder, _, _ = _frame_layout(n_out, win_length, hop_length)
        n_blocks = -(-n_out // hop_length)
        energy = waveform.new_empty(batch, pole_re.shape[0], n_frames)
        for dtype, index in _precision_groups(wide):
            pole = torch.complex(pole_re[index], pole_im[index])
            gain = torch.complex(gain_re[index], gain_im[index])
            x = waveform.detach().to(dtype).contiguous()
            blocks = R.forward_blocks(x.numpy(), _lane_params(pole, gain, kernel_size, False, dtype),
                                      kernel_size, n_out, hop_length, remainder, n_blocks)
            blocks = _from_lanes(torch.from_numpy(blocks), len(index))  # (B, n, blocks, 2)
            whole, partial = blocks[..., 0], blocks[..., 1]
            sums = sum(whole[..., o: o + n_frames] for o in range(n_whole)) if n_whole else 0
            if remainder:
                sums = sums + partial[..., n_whole: n_whole + n_frames]
            energy[:, index] = sums.to(energy.dtype)
        ctx.save_for_backward(waveform, pole_re, pole_im, gain_re, gain_im, wide)
        ctx.sizes = (kernel_size, win_length, hop_length)
        return energy

    @staticmethod
    @_first_order_only
    def backward(ctx, grad_energy):
        from spectnet import _recursive as R

        _set_numba_threads()
        waveform, pole_re, pole_im, gain_re, gain_im, wide = ctx.saved_tensors
        kernel_size, win_length, hop_length = ctx.sizes
        batch, n_samples = waveform.shape
        n_out = n_samples - kernel_size + 1
        n_frames, n_whole, remainder, _, _ = _frame_layout(n_out, win_length, hop_length)
        n_blocks = -(-n_out // hop_length)
        # dL/dy[t] = 2 y[t] (U[block] + [offset < remainder] V[block]): U sums the frames
        # holding the block whole, V is the frame whose first `remainder` samples it gives
        grad_energy = grad_energy.to(torch.float64)
        whole = grad_energy.new_zeros(batch, grad_energy.shape[1], n_blocks)
        for offset in range(n_whole):
            whole[..., offset: offset + n_frames] += grad_energy
        partial = torch.zeros_like(whole)
        if remainder:
            partial[..., n_whole: n_whole + n_frames] = grad_energy
        weights = torch.stack([whole, partial], -1)  # (B, F, blocks, 2)
        keep_grad_y = bool(ctx.needs_input_grad[0])
        pole = torch.complex(pole_re, pole_im)
        gain = torch.complex(gain_re, gain_im)
        z3 = torch.zeros_like(pole)
        z4 = torch.zeros_like(pole)
        grad_waveform = waveform.new_zeros(batch, n_samples) if keep_grad_y else None
        for dtype, index in _precision_groups(wide):
            x = waveform.detach().to(dtype).contiguous()
            lanes = _to_lanes(weights[:, index], R.LANES).to(dtype).contiguous()
            sums, grad_y = R.backward_sums(
                x.numpy(), _lane_params(pole[index], gain[index], kernel_size, True, dtype),
                kernel_size, n_out, hop_length, remainder, lanes.numpy(), keep_grad_y)
            sums = _from_lanes(torch.from_numpy(sums), len(index)).sum(0)  # (n, 8)
            sums = torch.complex(sums[:, 0::2], sums[:, 1::2])  # gy A3, gy A4, gy S3, gy S4
            tail = -(pole[index] ** kernel_size)
            z3[index] = sums[:, 0] + tail * sums[:, 2]
            z4[index] = sums[:, 1] + tail * sums[:, 3]
            if keep_grad_y:
                grad_y = _from_lanes(torch.from_numpy(grad_y), len(index))  # (B, n, L)
                kernels = _recursive_kernels(pole[index], gain[index], kernel_size).to(dtype)
                grad_waveform += F.conv_transpose1d(grad_y, kernels.unsqueeze(1))[:, 0].to(waveform.dtype)
        # y = Re(c z3(q)), dz3/dq = z4 / q (z4 carries one factor k more); Wirtinger -> real parts
        dq = gain * z4 / pole
        return (grad_waveform, dq.real, -dq.imag, z3.real, -z3.imag, None, None, None, None)


def _precision_groups(wide: Tensor):
    """``(dtype, filter indices)`` for the float32 and the float64 filters that exist."""
    for dtype, mask in ((torch.float32, ~wide), (torch.float64, wide)):
        index = torch.nonzero(mask).flatten()
        if index.numel():
            yield dtype, index


def _set_numba_threads():
    """Let the kernels use as many threads as torch (``torch.set_num_threads``, ``--threads``)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _recursive_kernels(pole: Tensor, gain: Tensor, kernel_size: int) -> Tensor:
    """``(F, K)`` taps ``Re(c k^3 q^k)``: the impulse responses the recursion applies."""
    k = torch.arange(kernel_size, dtype=torch.float64)
    return (gain.unsqueeze(-1) * k ** 3 * pole.unsqueeze(-1) ** k).real


def recursive_gammatone_spectrogram(
    waveform: Tensor,
    center_freq: Tensor,
    bandwidth: ArrayLike,
    amplitude: ArrayLike,
    kernel_size: int,
    sample_rate: float,
    win_length: int,
    hop_length: int,
    eps: float = 1e-16,
    phase: ArrayLike = 0.0,
    order: ArrayLike = 4.0,
) -> Tensor:
    """The exact SpectNet spectrogram of order-4 gammatones by recursion: O(1) work per
    sample and filter instead of O(K).

    A gammatone of integer order n = 4 is ``g[k] = Re(c k^3 q^k)`` with the pole
    ``q = exp((-2 pi b + 2 pi i f) / fs)`` and ``c = a e^(i phase) / fs^3``.  The sum
    ``sum_k k^3 q^k z^k`` is ``A(qz) / (1 - qz)^4`` (a four-stage one-pole cascade after
    a 3-tap FIR); the K-tap truncation subtracts ``(qz)^K B(qz) / (1 - qz)^4``, the part
    beyond K taps, so the cascade's input is a short FIR of the waveform at ``t..t+3`` and
    ``t+K..t+K+3``.  The valid cross-correlation ``y[m] = sum_{k<K} g[k] x[m + k]`` is the
    cascade run backwards in time; ``|y|^2`` is summed into hop-sized blocks on the fly
    (``y`` is never stored) and the frames are sums of blocks as in :func:`windowed_energy`.
    The backward runs the same recursion again with a fifth stage (``dz/dq`` needs
    ``sum k^4 q^k x``) and returns gradients for f, b, a and the phase.

    Precision: filters that decay slowly over the K taps (``2 pi b K / fs < 8``) run in
    float64, the rest in float32 (the subtraction of the tail loses digits otherwise; see
    ``_RECURSIVE_FLOAT64_BELOW_DECAY``).  CPU only (numba, installed with the ``fast``
    extra); a tensor on another device is computed there by :func:`gammatone_spectrogram`
    from the same kernels.

    Args:
        waveform: ``(B, T)`` or ``(B, 1, T)`` float32 or float64.
        center_freq, bandwidth, amplitude: ``(F,)`` (or scalars for the last two) f, b, a in Hz.
        kernel_size, sample_rate: K taps at fs Hz.
        win_length, hop_length, eps: as :func:`gammatone_spectrogram`.
        phase: phase in radians (scalar or ``(F,)``).
        order: must be 4 (scalar or ``(F,)``); other orders take the other paths.

    Returns:
        ``(B, F, M)`` log energies, equal to ``gammatone_spectrogram(..., method="direct")``
        up to rounding.

    >>> f = torch.tensor([50.0, 200.0]); x = torch.randn(2, 2500, dtype=torch.float64)
    >>> spec = recursive_gammatone_spectrogram(x, f, 100.0, 1e4, 81, 1000, 25, 10)
    >>> g = gammatone_impulse_response(f.double(), 100.0, 1e4, 4.0, 81, 1000)
    >>> torch.allclose(spec, gammatone_spectrogram(x, g, 25, 10, method="direct"))
    True
    """
    center_freq = torch.as_tensor(center_freq)
    if not center_freq.is_floating_point():
        center_freq = center_freq.to(torch.get_default_dtype())
    f = center_freq.reshape(-1)
    b, a, n, phi = (_column(v, f).reshape(-1).expand_as(f) for v in (bandwidth, amplitude, order, phase))
    waveform = _check_waveform(waveform, kernel_size)
    if num_frames(waveform.shape[-1], kernel_size, win_length, hop_length) < 1:
        raise ValueError(
            f"input too short: {waveform.shape[-1]} samples give no frame "
            f"(need >= kernel_size + win_length - 1 = {kernel_size + win_length - 1})")
    if n.requires_grad or not bool((n.detach() == 4).all()):
        raise ValueError("the recursive path (method='iir') needs a fixed order 4 for every filter; "
                         "use method='direct' or 'fft' for other or learnable orders")
    if waveform.device.type != "cpu" or not recursive_available():
        # No recursive kernel here (numba runs on the CPU): the same exact filters by convolution.
        kernels = gammatone_impulse_response(f, b, a, n, kernel_size, sample_rate, phi)
        return gammatone_spectrogram(waveform, kernels.to(waveform.dtype), win_length, hop_length, eps)
    if win_length < 1 or hop_length < 1:
        raise ValueError(f"win_length and hop_length must be >= 1, got {win_length}, {hop_length}")
    scale = 2.0 * math.pi / sample_rate
    radius = torch.exp(-scale * b.double())
    angle = scale * f.double()
    gain = a.double() / float(sample_rate) ** 3
    phi = phi.double()
    wide = (scale * b.detach().double() * kernel_size) < _RECURSIVE_FLOAT64_BELOW_DECAY
    if waveform.dtype == torch.float64:
        wide = torch.ones_like(wide)
    energy = _RecursiveEnergy.apply(
        waveform, radius * torch.cos(angle), radius * torch.sin(angle), gain * torch.cos(phi),
        gain * torch.sin(phi), wide, int(kernel_size), int(win_length), int(hop_length))
    return log_compress(energy, eps)


def to_image(spectrogram: Tensor) -> Tensor:
    """``(B, F, M)`` -> the ``(B, 1, M, F)`` time-by-frequency image the CNNs take (a view).

    >>> tuple(to_image(torch.zeros(2, 16, 240)).shape)
    (2, 1, 240, 16)
    """
    return spectrogram.transpose(1, 2).unsqueeze(1)
