"""SpectNet front-end modules: a learnable gammatone filterbank and its log-energy spectrogram.

Thin ``nn.Module`` wrappers around :mod:`spectnet.functional`; they hold the filter
parameters and choose the computation path.  With the defaults, :class:`SpectNetFrontend`
computes exactly what the authors' ``Conv_Gammatone`` + ``MFCC_Gen`` computed
(REPRODUCTION.md §2): 16 filters at 1 kHz, centres mel-uniform over 0-500 Hz,
b = 100 Hz, a = 1e4, n = 4 (fixed), 81 taps, valid cross-correlation, ``|y|^2``,
25-sample rectangular window sum with hop 10, ``ln(x + 1e-16)``; f, b, a learnable.

Parametrisation. Every filter parameter is ``init`` (a buffer: its value at
initialisation, never trained) plus a learnable ``offset`` (zero at initialisation), so a
module's initial filters are exactly the init values in any dtype, and one ``state_dict``
loads into static and learnable models alike (stage 1 -> stage 2). Two parametrisations
say what an offset means, that is, in which units an optimiser moves the filters:

* ``"hz"`` (the authors'): offsets in the authors' units, Hz for f and b. Adam moves
  every parameter by about its learning rate per step, so the paper's Adam at 1e-3 moves
  a filter by about 1e-3 Hz per step.
* ``"relative"``: f moves in units of the local filter spacing (the mean distance to its
  neighbours at initialisation), b and a in log units (``b = b0 * exp(offset)``). Adam at
  learning rate r then moves a centre by about r filter spacings and a bandwidth by about
  a fraction r per step, for every filter count and sample rate alike.

The values are then mapped into their valid ranges by a *reflection* that is the identity
inside the range:

* centre frequency f: folded into ``[0, fs/2]`` (``f -> |f|``, ``f -> fs - f``, periodic).
  The sampled kernel ``cos(2 pi f k / fs)`` is even and ``fs``-periodic in f, so the fold
  gives exactly the filter the authors' unconstrained parameter would give; it only
  reports it as the alias inside the range.  f = 0 Hz (the code init) is represented.
* bandwidth b and amplitude a: ``|value|`` (``"relative"``: positive by construction).
  A negative b would make the envelope grow (``exp(+2 pi |b| t)``, overflow); a's sign
  never changes ``|y|^2``.
* order n: ``1 + |value - 1|`` (n >= 1); a t = 0 guard keeps ``0^(n-1) ln 0`` out of the
  gradient.

Why a reflection rather than softplus/sigmoid: it is the identity on the valid range, so
initial values are exact, and the gradient never vanishes at or beyond a boundary, where a
clamp would zero it (a filter would get stuck) and a sigmoid would need an infinite logit
for f = 0.

Parameters that are not learnable keep their offsets as buffers (zeros) with the same
names. Model files written before the offsets existed (``raw_<name>`` holding the value)
load as ``init = raw`` and a zero offset.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from . import functional as SF

__all__ = ["GammatoneFilterbank", "SpectNetFrontend", "PARAMETER_NAMES", "PARAMETRIZATIONS",
           "canonical_parameter_names", "filter_spacing"]

#: Names accepted by ``learnable`` (short aliases f, b, a, n also work).
PARAMETER_NAMES = ("center_frequency", "bandwidth", "amplitude", "order")
_ALIASES = {
    "f": "center_frequency", "fc": "center_frequency", "center_freq": "center_frequency",
    "b": "bandwidth", "beta": "bandwidth",
    "a": "amplitude", "amp": "amplitude",
    "n": "order", "n_order": "order",
}
_INITS = ("code", "paper")
#: What a learnable offset means: ``"hz"`` (the authors' units) or ``"relative"`` (filter
#: spacings for f, log units for b and a).
PARAMETRIZATIONS = ("hz", "relative")


def canonical_parameter_names(names: Iterable[str]) -> list[str]:
    """Short or long parameter names -> the canonical names, in :data:`PARAMETER_NAMES` order.

    >>> canonical_parameter_names(["a", "f", "b"])
    ['center_frequency', 'bandwidth', 'amplitude']
    """
    chosen = _normalise_learnable(list(names))
    return [name for name in PARAMETER_NAMES if name in chosen]


def filter_spacing(centers: Tensor, nyquist: float) -> Tensor:
    """``(F,)`` local spacing of centre frequencies: for each filter the mean distance to its
    neighbours in frequency order (one-sided at the ends; ``nyquist`` for a single filter),
    never below ``nyquist / (100 F)`` so that coinciding centres still move.

    >>> filter_spacing(torch.tensor([0.0, 100.0, 300.0]), 500.0).tolist()
    [100.0, 150.0, 200.0]
    """
    n = centers.numel()
    if n == 1:
        return torch.full_like(centers, nyquist)
    order = torch.argsort(centers)
    ordered = centers[order]
    gaps = ordered[1:] - ordered[:-1]
    sorted_spacing = torch.cat([gaps[:1], (gaps[1:] + gaps[:-1]) / 2, gaps[-1:]])
    spacing = torch.empty_like(centers).scatter_(0, order, sorted_spacing)
    return spacing.clamp_min(nyquist / (100.0 * n))


def _normalise_learnable(learnable: Union[bool, str, Iterable[str], None]) -> frozenset:
    if learnable is True:
        return frozenset(("center_frequency", "bandwidth", "amplitude"))
    if learnable is False or learnable is None:
        return frozenset()
    if isinstance(learnable, str):
        learnable = [learnable]
    names = set()
    for name in learnable:
        canonical = _ALIASES.get(name, name)
        if canonical not in PARAMETER_NAMES:
            raise ValueError(
                f"unknown learnable parameter {name!r}; expected a subset of {PARAMETER_NAMES} "
                f"(or aliases {sorted(_ALIASES)})"
            )
        names.add(canonical)
    return frozenset(names)


# --- constraint maps (raw -> constrained); each is the identity on the valid range ---
def _fold_frequency(raw: Tensor, nyquist: float) -> Tensor:
    sample_rate = 2.0 * nyquist
    folded = nyquist - torch.abs(torch.remainder(raw, sample_rate) - nyquist)
    inside = (raw >= 0) & (raw <= nyquist)
    # the identity inside the range keeps values bit-exact there (the fold rounds)
    return torch.where(inside, raw, folded)


def _positive(raw: Tensor) -> Tensor:
    return torch.abs(raw)


def _order(raw: Tensor) -> Tensor:
    return torch.where(raw >= 1.0, raw, 2.0 - raw)


class GammatoneFilterbank(nn.Module):
    """Learnable bank of sampled gammatone filters (paper eq. 1), applied as a valid correlation.

    Args:
        n_filters: number of filters F.
        sample_rate: fs in Hz.
        f_min, f_max: range of the mel-uniform centre frequencies (``f_max=None`` -> fs/2).
        kernel_size: taps K (t = 0, 1/fs, ..., (K-1)/fs).
        init: ``"code"`` (authors' code: b = 100 Hz, a = 1e4, n = 4) or ``"paper"``
            (b = ERB(f) of eq. 4, a = 1e4, n = 4).  Centres are mel-uniform over
            [f_min, f_max] for both; the code used [0, fs/2], the defaults.
        learnable: subset of ``("center_frequency", "bandwidth", "amplitude", "order")``
            (aliases f, b, a, n), ``True`` (= f, b, a as in the code) or ``False``.
        bandwidth, amplitude, order: override the init values (scalar or per filter).
        phase: fixed phase in radians (code: 0).
        method: ``"auto" | "direct" | "fft"`` filtering path (both exact).
        parametrization: ``"hz"`` (offsets in the authors' units) or ``"relative"`` (f
            in filter spacings, b and a in log units): how far an optimiser step moves a
            filter; the initial filters are the same.

    Shape:
        input ``(B, T)`` or ``(B, 1, T)``; output ``(B, F, T - K + 1)``.

    Example:
        >>> bank = GammatoneFilterbank(4, sample_rate=1000)
        >>> [round(v, 1) for v in bank.center_frequency.tolist()]
        [0.0, 137.8, 302.7, 500.0]
        >>> tuple(bank(torch.randn(2, 1, 2500)).shape)
        (2, 4, 2420)
    """

    def __init__(
        self,
        n_filters: int = 16,
        sample_rate: float = 1000.0,
        f_min: float = 0.0,
        f_max: Optional[float] = None,
        kernel_size: int = 81,
        init: str = "code",
        learnable: Union[bool, str, Iterable[str]] = ("center_frequency", "bandwidth", "amplitude"),
        bandwidth: Optional[Union[float, Sequence[float], Tensor]] = None,
        amplitude: Optional[Union[float, Sequence[float], Tensor]] = None,
        order: Optional[Union[float, Sequence[float], Tensor]] = None,
        phase: float = 0.0,
        method: str = "auto",
        parametrization: str = "hz",
    ) -> None:
        super().__init__()
        if int(n_filters) != n_filters or n_filters < 1:
            raise ValueError(f"n_filters must be a positive integer, got {n_filters}")
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        if int(kernel_size) != kernel_size or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive integer, got {kernel_size}")
        nyquist = sample_rate / 2.0
        f_max = nyquist if f_max is None else float(f_max)
        if f_min < 0:
            raise ValueError(f"f_min must be >= 0, got {f_min}")
        if f_max > nyquist:
            raise ValueError(f"f_max ({f_max}) must be <= sample_rate / 2 ({nyquist})")
        if not f_min < f_max:
            raise ValueError(f"f_min must be < f_max, got f_min={f_min}, f_max={f_max}")
        if init not in _INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {_INITS}")
        if method not in ("auto", "direct", "fft"):
            raise ValueError(f"unknown method {method!r}; expected 'auto', 'direct' or 'fft'")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {parametrization!r}; expected one of "
                             f"{PARAMETRIZATIONS}")

        self.n_filters = int(n_filters)
        self.sample_rate = float(sample_rate)
        self.f_min = float(f_min)
        self.f_max = f_max
        self.kernel_size = int(kernel_size)
        self.init = init
        self.phase = float(phase)
        self.method = method
        self.parametrization = parametrization
        self.learnable = _normalise_learnable(learnable)

        centers = SF.mel_center_frequencies(self.n_filters, self.f_min, self.f_max)  # float64
        if bandwidth is None:
            bandwidth = SF.erb_bandwidth(centers) if init == "paper" else 100.0
        amplitude = 1e4 if amplitude is None else amplitude
        order = 4.0 if order is None else order

        def per_filter(value, name):
            value = torch.as_tensor(value, dtype=torch.float64).flatten()
            if value.numel() == 1:
                value = value.expand(self.n_filters)
            if value.numel() != self.n_filters:
                raise ValueError(f"{name} needs 1 or {self.n_filters} values, got {value.numel()}")
            return value.clone()

        bandwidth = per_filter(bandwidth, "bandwidth")
        amplitude = per_filter(amplitude, "amplitude")
        order = per_filter(order, "order")
        if not bool((bandwidth > 0).all()):
            raise ValueError("bandwidth must be > 0")
        if not bool((amplitude > 0).all()):
            raise ValueError("amplitude must be > 0")
        if not bool((order >= 1).all()):
            raise ValueError("order must be >= 1")

        init = {
            "center_frequency": centers.to(torch.float32),
            "bandwidth": bandwidth.to(torch.float32),
            "amplitude": amplitude.to(torch.float32),
            "order": order.to(torch.float32),
        }
        for name in PARAMETER_NAMES:
            self.register_buffer(f"init_{name}", init[name])
            offset = torch.zeros(self.n_filters)
            if name in self.learnable:
                self.register_parameter(f"offset_{name}", nn.Parameter(offset))
            else:
                self.register_buffer(f"offset_{name}", offset)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # model files from before the offsets: raw_<name> held the (trained) value
        for name in PARAMETER_NAMES:
            raw = state_dict.pop(f"{prefix}raw_{name}", None)
            if raw is not None:
                state_dict.setdefault(f"{prefix}init_{name}", raw)
                state_dict.setdefault(f"{prefix}offset_{name}", torch.zeros_like(raw))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- constrained views ----------------------------------------------------------
    def _compute_dtype(self) -> torch.dtype:
        # at least float32 even if the module was .half()-ed: fp16 powers underflow (spec §2)
        return torch.promote_types(self.init_center_frequency.dtype, torch.float32)

    def _value(self, name: str) -> Tensor:
        """``init + offset`` in the parametrisation's units, before the range maps."""
        dtype = self._compute_dtype()
        init = getattr(self, f"init_{name}").to(dtype)
        offset = getattr(self, f"offset_{name}").to(dtype)
        if self.parametrization == "hz" or name == "order":
            return init + offset
        if name == "center_frequency":
            return init + filter_spacing(init, self.sample_rate / 2.0) * offset
        return torch.abs(init) * torch.exp(offset)

    @property
    def center_frequency(self) -> Tensor:
        """``(F,)`` centre frequencies in Hz, in [0, fs/2]."""
        return _fold_frequency(self._value("center_frequency"), self.sample_rate / 2.0)

    @property
    def bandwidth(self) -> Tensor:
        """``(F,)`` bandwidths b in Hz (>= 0; 0 only if the value is exactly 0)."""
        return _positive(self._value("bandwidth"))

    @property
    def amplitude(self) -> Tensor:
        """``(F,)`` amplitudes a (>= 0; 0 only if the value is exactly 0)."""
        return _positive(self._value("amplitude"))

    @property
    def order(self) -> Tensor:
        """``(F,)`` orders n (>= 1)."""
        return _order(self._value("order"))

    def spacing(self) -> Tensor:
        """``(F,)`` the filters' spacing at initialisation in Hz (:func:`filter_spacing`):
        the unit of f's offset under the ``"relative"`` parametrisation."""
        return filter_spacing(self.init_center_frequency.to(self._compute_dtype()),
                              self.sample_rate / 2.0)

    def kernels(self) -> Tensor:
        """``(F, K)`` impulse responses on the parameters' device."""
        return SF.gammatone_impulse_response(
            self.center_frequency, self.bandwidth, self.amplitude, self.order,
            self.kernel_size, self.sample_rate, self.phase,
        )

    def frequency_response(self, freqs: Tensor) -> Tensor:
        """``(F, Q)`` complex DTFT of the kernels at ``freqs`` (Hz)."""
        return SF.gammatone_frequency_response(self.kernels(), freqs, self.sample_rate)

    def _prepare_input(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor):
            raise TypeError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
        return waveform.to(self._compute_dtype())

    def forward(self, waveform: Tensor, method: Optional[str] = None) -> Tensor:
        """Filter ``(B, T)`` / ``(B, 1, T)`` -> ``(B, F, T - K + 1)`` (fp32 even under autocast)."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return SF.gammatone_filter(self._prepare_input(waveform), self.kernels(), method or self.method)

    def extra_repr(self) -> str:
        return (
            f"n_filters={self.n_filters}, sample_rate={self.sample_rate:g}, f_min={self.f_min:g}, "
            f"f_max={self.f_max:g}, kernel_size={self.kernel_size}, init={self.init!r}, "
            f"learnable={sorted(self.learnable)}, method={self.method!r}, "
            f"parametrization={self.parametrization!r}"
        )


class SpectNetFrontend(nn.Module):
    """SpectNet spectrogram: gammatone filtering, ``|y|^2``, rectangular window sum, ``ln(. + eps)``.

    Args:
        n_filters, sample_rate, f_min, f_max, kernel_size, init, learnable, bandwidth,
            amplitude, order, phase, parametrization: see :class:`GammatoneFilterbank`.
        win_length, hop_length: window and hop of the energy sum, in samples (code: 25 / 10 at
            1 kHz, i.e. 25 ms / 10 ms).
        eps: log floor (code: 1e-16).
        method: ``"auto"`` (picks the cheapest exact path), ``"direct"``, ``"fft"``, ``"iir"``
            (exact, same output up to float rounding; ``iir`` is the recursive path of
            :func:`spectnet.functional.recursive_gammatone_spectrogram`, for order-4 filters
            whose order is not learnable, on the CPU with numba) or ``"stft"`` (approximate,
            for long inputs; see :func:`spectnet.functional.stft_gammatone_spectrogram` for
            its measured error).
        n_fft: FFT size of the ``"stft"`` path (default ``win_length``).

    Shape:
        input ``(B, T)`` or ``(B, 1, T)``; output ``(B, F, M)`` with
        ``M = (T - K + 1 - win_length) // hop_length + 1``; :meth:`image` gives ``(B, 1, M, F)``.
        Computes in float32 (float64 if the module is ``.double()``), with autocast disabled.

    Example:
        >>> frontend = SpectNetFrontend()  # the authors' PCG setup
        >>> beats = torch.randn(8, 1, 2500)
        >>> tuple(frontend(beats).shape), tuple(frontend.image(beats).shape)
        ((8, 16, 240), (8, 1, 240, 16))
        >>> sorted(name for name, _ in frontend.named_parameters())
        ['filterbank.offset_amplitude', 'filterbank.offset_bandwidth', 'filterbank.offset_center_frequency']
    """

    def __init__(
        self,
        n_filters: int = 16,
        sample_rate: float = 1000.0,
        f_min: float = 0.0,
        f_max: Optional[float] = None,
        kernel_size: int = 81,
        win_length: int = 25,
        hop_length: int = 10,
        learnable: Union[bool, str, Iterable[str]] = ("center_frequency", "bandwidth", "amplitude"),
        init: str = "code",
        eps: float = 1e-16,
        method: str = "auto",
        bandwidth: Optional[Union[float, Sequence[float], Tensor]] = None,
        amplitude: Optional[Union[float, Sequence[float], Tensor]] = None,
        order: Optional[Union[float, Sequence[float], Tensor]] = None,
        phase: float = 0.0,
        n_fft: Optional[int] = None,
        parametrization: str = "hz",
    ) -> None:
        super().__init__()
        if int(win_length) != win_length or win_length < 1:
            raise ValueError(f"win_length must be a positive integer, got {win_length}")
        if int(hop_length) != hop_length or hop_length < 1:
            raise ValueError(f"hop_length must be a positive integer, got {hop_length}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if method not in SF.METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {SF.METHODS}")
        if n_fft is not None and n_fft < win_length:
            raise ValueError(f"n_fft ({n_fft}) must be >= win_length ({win_length})")
        self.filterbank = GammatoneFilterbank(
            n_filters=n_filters, sample_rate=sample_rate, f_min=f_min, f_max=f_max,
            kernel_size=kernel_size, init=init, learnable=learnable, bandwidth=bandwidth,
            amplitude=amplitude, order=order, phase=phase, parametrization=parametrization,
        )
        self.win_length = int(win_length)
        self.hop_length = int(hop_length)
        self.eps = float(eps)
        self.method = method
        self.n_fft = n_fft

    @property
    def n_filters(self) -> int:
        return self.filterbank.n_filters

    @property
    def sample_rate(self) -> float:
        return self.filterbank.sample_rate

    @property
    def kernel_size(self) -> int:
        return self.filterbank.kernel_size

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` input samples (e.g. 2500 -> 240 with the defaults)."""
        return SF.num_frames(n_samples, self.kernel_size, self.win_length, self.hop_length)

    def _float64_share(self, waveform: Tensor) -> Optional[float]:
        """``choose_method``'s ``float64_share``: ``None`` where the recursive path does not
        apply (a learnable or non-4 order, not on the CPU, no numba, tracing)."""
        fb = self.filterbank
        if ("order" in fb.learnable or waveform.device.type != "cpu" or torch.jit.is_tracing()
                or torch.compiler.is_compiling() or not SF.recursive_available()
                or not bool((fb.order.detach() == 4).all())):
            return None
        return SF.recursive_float64_share(fb.bandwidth, self.kernel_size, self.sample_rate)

    def resolve_method(self, waveform: Tensor, method: Optional[str] = None) -> str:
        """The path :meth:`forward` takes for this input (``"auto"`` resolved by the device's
        cost model, :func:`spectnet.functional.cost_model`)."""
        method = method or self.method
        if method not in SF.METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {SF.METHODS}")
        if method != "auto":
            return method
        return SF.choose_method(int(waveform.shape[0]), self.n_filters, int(waveform.shape[-1]),
                                self.kernel_size, float64_share=self._float64_share(waveform),
                                costs=SF.cost_model(waveform.device))

    def forward(self, waveform: Tensor, method: Optional[str] = None) -> Tensor:
        """``(B, T)`` / ``(B, 1, T)`` -> ``(B, F, M)`` log energies; ``method`` overrides the default."""
        method = self.resolve_method(waveform, method)
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            waveform = self.filterbank._prepare_input(waveform)
            fb = self.filterbank
            if method == "iir":
                return SF.recursive_gammatone_spectrogram(
                    waveform, fb.center_frequency, fb.bandwidth, fb.amplitude, self.kernel_size,
                    self.sample_rate, self.win_length, self.hop_length, eps=self.eps,
                    phase=fb.phase, order=fb.order)
            return SF.gammatone_spectrogram(
                waveform, fb.kernels(), self.win_length, self.hop_length,
                eps=self.eps, method=method, n_fft=self.n_fft,
            )

    def image(self, waveform: Tensor, method: Optional[str] = None) -> Tensor:
        """``(B, 1, M, F)`` time-by-frequency image, the layout the authors' CNNs take."""
        return SF.to_image(self.forward(waveform, method))

    def extra_repr(self) -> str:
        return (
            f"win_length={self.win_length}, hop_length={self.hop_length}, eps={self.eps:g}, "
            f"method={self.method!r}"
        )
