"""Tests for spectnet.frontend (GammatoneFilterbank, SpectNetFrontend) and plot_filterbank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal as sps

from spectnet import functional as SF
from spectnet.frontend import GammatoneFilterbank, SpectNetFrontend

SPEC_16 = [0.0, 25.6, 52.2, 79.7]


def _beats(batch=3, length=2500, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 1000.0
    tone = torch.sin(2 * math.pi * 60 * t) * torch.exp(-((t - 0.3) / 0.05) ** 2)
    return 0.05 * torch.randn(batch, length, generator=gen) + tone


# ----------------------------------------------------------------------------- init & params
def test_code_init_is_exact():
    frontend = SpectNetFrontend()
    bank = frontend.filterbank
    expected = SF.mel_center_frequencies(16, 0.0, 500.0).float()
    assert torch.equal(bank.center_frequency.detach(), expected)
    np.testing.assert_allclose(bank.center_frequency[:4].detach().numpy(), SPEC_16, atol=0.05)
    np.testing.assert_allclose(bank.center_frequency[-2].item(), 457.6, atol=0.05)
    assert bank.center_frequency[0].item() == 0.0 and bank.center_frequency[-1].item() == 500.0
    assert torch.all(bank.bandwidth == 100.0)
    assert torch.all(bank.amplitude == 1e4)
    assert torch.all(bank.order == 4.0)
    assert sorted(n for n, _ in frontend.named_parameters()) == [
        "filterbank.offset_amplitude", "filterbank.offset_bandwidth",
        "filterbank.offset_center_frequency"]


def test_n4_centres_and_paper_init():
    bank = GammatoneFilterbank(4, 1000.0)
    np.testing.assert_allclose(bank.center_frequency.detach().numpy(), [0.0, 137.8, 302.7, 500.0], atol=0.05)
    paper = GammatoneFilterbank(16, 1000.0, f_max=400.0, init="paper", learnable=["f", "b", "a", "n"])
    centres = SF.mel_center_frequencies(16, 0.0, 400.0)
    assert torch.equal(paper.center_frequency.detach(), centres.float())
    assert torch.equal(paper.bandwidth.detach(), SF.erb_bandwidth(centres).float())
    assert torch.all(paper.order.detach() == 4.0)  # exact even though n is learnable
    np.testing.assert_allclose(paper.center_frequency[1].item(), 21.4, atol=0.05)


def test_state_dict_portable_between_static_and_learnable():
    static = SpectNetFrontend(learnable=False)
    learnable = SpectNetFrontend(learnable=["f", "b", "a", "n"])
    assert len(list(static.parameters())) == 0
    with torch.no_grad():
        learnable.filterbank.offset_bandwidth.add_(7.0)
    static.load_state_dict(learnable.state_dict())
    torch.testing.assert_close(static.filterbank.bandwidth, learnable.filterbank.bandwidth.detach())


def test_frequency_fold_is_alias_equivalent():
    bank = GammatoneFilterbank(3, 1000.0)
    with torch.no_grad():
        bank.init_center_frequency.copy_(torch.tensor([-40.0, 640.0, 1130.0]))
    np.testing.assert_allclose(bank.center_frequency.detach().numpy(), [40.0, 360.0, 130.0], atol=1e-4)
    # the folded kernel equals the unconstrained (authors') kernel: cos is even and fs-periodic
    raw_kernels = SF.gammatone_impulse_response(torch.tensor([-40.0, 640.0, 1130.0], dtype=torch.float64),
                                                100.0, 1e4, 4.0, 81, 1000.0)
    torch.testing.assert_close(bank.kernels().double(), raw_kernels, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- shapes & paths
def test_shapes_bt_b1t_and_image():
    frontend = SpectNetFrontend()
    x = _beats(4)
    assert frontend.num_frames(2500) == 240
    out = frontend(x)
    assert out.shape == (4, 16, 240)
    torch.testing.assert_close(frontend(x.unsqueeze(1)), out)
    image = frontend.image(x.unsqueeze(1))
    assert image.shape == (4, 1, 240, 16)
    torch.testing.assert_close(image[:, 0], out.transpose(1, 2))
    assert frontend.filterbank(x).shape == (4, 16, 2420)


def test_numpy_scipy_reference():
    """Independent reference: explicit kernels, scipy correlate, power, window sums, log."""
    frontend = SpectNetFrontend()
    x = _beats(2).numpy().astype(np.float64)
    fs, K, win, hop = 1000.0, 81, 25, 10
    mels = np.linspace(0.0, 2595 * np.log10(1 + 500 / 700), 16)
    # parameters are stored in float32, so the reference uses float32-rounded centres
    centres = (700 * (10 ** (mels / 2595) - 1)).astype(np.float32).astype(np.float64)
    t = np.arange(K) / fs
    kernels = [1e4 * t ** 3 * np.exp(-2 * np.pi * 100 * t) * np.cos(2 * np.pi * fc * t) for fc in centres]
    reference = np.empty((2, 16, 240))
    for bi in range(2):
        for fi, g in enumerate(kernels):
            y = sps.correlate(x[bi], g, mode="valid", method="direct")
            power = y ** 2
            reference[bi, fi] = [np.log(power[m * hop: m * hop + win].sum() + 1e-16) for m in range(240)]
    for method in ("direct", "fft"):
        got32 = frontend(torch.from_numpy(x).float(), method=method).detach().numpy()
        np.testing.assert_allclose(got32, reference, atol=2e-4, rtol=0)
    got64 = frontend.double()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got64, reference, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_direct_equals_fft_module(dtype, atol):
    frontend = SpectNetFrontend().to(dtype)
    x = _beats(3).to(dtype)
    torch.testing.assert_close(frontend(x, method="direct"), frontend(x, method="fft"), rtol=0, atol=atol)


def test_batched_equals_one_by_one():
    frontend = SpectNetFrontend(method="direct")
    x = _beats(5)
    batched = frontend(x)
    single = torch.cat([frontend(x[i: i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)
    frontend_fft = SpectNetFrontend(method="fft")
    torch.testing.assert_close(frontend_fft(x), torch.cat([frontend_fft(x[i: i + 1]) for i in range(5)]),
                               rtol=0, atol=1e-4)


def test_autocast_and_half_input_run_in_float32():
    frontend = SpectNetFrontend()
    x = _beats(2)
    reference = frontend(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = frontend(x.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, SpectNetFrontend()(x.to(torch.bfloat16).float()))
    assert torch.isfinite(reference).all()


def test_jit_trace_matches_eager():
    frontend = SpectNetFrontend(method="fft").eval()
    x = _beats(2)
    traced = torch.jit.trace(frontend, (x,), check_trace=False)
    torch.testing.assert_close(traced(x), frontend(x))
    x2 = _beats(2, seed=5)
    torch.testing.assert_close(traced(x2), frontend(x2))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_torch_export_matches_eager(method):
    frontend = SpectNetFrontend(method=method).eval()
    x = _beats(2)
    exported = torch.export.export(frontend, (x,))
    torch.testing.assert_close(exported.module()(x), frontend(x), rtol=0, atol=1e-5)


def test_iir_method_equals_direct_and_auto_picks_it_for_long_kernels(monkeypatch):
    scene = SpectNetFrontend(n_filters=12, sample_rate=8000, kernel_size=201, win_length=201, hop_length=80)
    x = _beats(2, length=16000)
    torch.testing.assert_close(scene(x, method="iir"), scene(x, method="direct"), rtol=0, atol=1e-4)
    scene = SpectNetFrontend(n_filters=46, sample_rate=22050, kernel_size=551, win_length=551,
                             hop_length=220, bandwidth=200.0)  # float32 filters (decay 31)
    assert scene.resolve_method(torch.zeros(2, 220500)) == "iir"
    # heart beats (K = 81): the FFT is cheaper on AVX2, the recursion on AVX-512
    for avx512, expected in ((False, "fft"), (True, "iir")):
        monkeypatch.setattr(SF, "_has_avx512", lambda avx512=avx512: avx512)
        assert SpectNetFrontend().resolve_method(_beats(256)) == expected
    # a learnable order has no recursive form: auto avoids it, asking for it is an error
    learnable_order = SpectNetFrontend(n_filters=12, sample_rate=8000, kernel_size=201, win_length=201,
                                       hop_length=80, learnable=["f", "b", "a", "n"])
    assert learnable_order.resolve_method(x) != "iir"
    with pytest.raises(ValueError, match="fixed order 4"):
        learnable_order(x, method="iir")


def test_iir_gradients_reach_the_parameters():
    frontend = SpectNetFrontend(n_filters=12, sample_rate=8000, kernel_size=201, win_length=201, hop_length=80)
    x = _beats(2, length=4000)
    grads = {}
    for method in ("iir", "direct"):
        frontend.zero_grad()
        frontend(x, method=method).mean().backward()
        grads[method] = [p.grad.clone() for p in frontend.parameters()]
    for got, want in zip(grads["iir"], grads["direct"]):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())


# ----------------------------------------------------------------------------- robustness
def test_no_nan_on_silence_and_clipped_input():
    frontend = SpectNetFrontend(learnable=["f", "b", "a", "n"])
    silence = torch.zeros(2, 2500)
    square = torch.sign(torch.sin(2 * math.pi * 7 * torch.arange(2500) / 1000.0)).expand(2, -1)
    for x in (silence, square):
        for method in ("direct", "fft", "stft"):
            out = frontend(x, method=method)
            assert torch.isfinite(out).all()
            out.sum().backward()
            for p in frontend.parameters():
                assert torch.isfinite(p.grad).all()
                p.grad = None
    assert torch.all(frontend(silence) == math.log(1e-16))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_adam_lr1_200_steps_stays_valid(method):
    torch.manual_seed(0)
    frontend = SpectNetFrontend(n_filters=8, learnable=["f", "b", "a", "n"], method=method)
    optimiser = torch.optim.Adam(frontend.parameters(), lr=1.0)
    x = torch.cat([_beats(3, length=400), torch.zeros(1, 400)])
    x[0] = torch.sign(x[0])  # a clipped row
    for _ in range(200):
        optimiser.zero_grad()
        spec = frontend(x)
        loss = -spec.std() + spec.mean() ** 2 * 1e-3
        loss.backward()
        optimiser.step()
    bank = frontend.filterbank
    for value in (bank.center_frequency, bank.bandwidth, bank.amplitude, bank.order):
        assert torch.isfinite(value).all()
    assert torch.all((bank.center_frequency >= 0) & (bank.center_frequency <= 500))
    assert torch.all(bank.bandwidth >= 0) and torch.all(bank.amplitude >= 0) and torch.all(bank.order >= 1)
    assert torch.isfinite(frontend(x)).all()
    for p in frontend.parameters():
        assert torch.isfinite(p).all()


def test_learnable_gradients_flow_to_offsets():
    frontend = SpectNetFrontend(learnable=["f", "b", "a", "n"])
    frontend(_beats(2)).mean().backward()
    bank = frontend.filterbank
    for name in ("offset_center_frequency", "offset_bandwidth", "offset_amplitude", "offset_order"):
        grad = getattr(bank, name).grad
        assert grad is not None and torch.isfinite(grad).all()
    # the 0 Hz filter has exactly zero frequency gradient (eq. 8 has sin(0) = 0), as in the code
    assert bank.offset_center_frequency.grad[0] == 0.0
    assert bank.offset_center_frequency.grad[1:].abs().sum() > 0


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(f_min=300.0, f_max=200.0), "f_min must be < f_max"),
        (dict(f_max=600.0), "f_max"),
        (dict(learnable=["f", "q"]), "unknown learnable parameter 'q'"),
        (dict(method="fastest"), "unknown method"),
        (dict(init="erb"), "unknown init"),
        (dict(n_filters=0), "n_filters"),
        (dict(win_length=0), "win_length"),
        (dict(hop_length=0), "hop_length"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(bandwidth=-1.0), "bandwidth"),
        (dict(order=0.5), "order"),
        (dict(n_filters=4, amplitude=[1.0, 2.0]), "amplitude needs"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpectNetFrontend(**kwargs)


def test_bad_inputs():
    frontend = SpectNetFrontend()
    with pytest.raises(ValueError, match="shorter than the kernel"):
        frontend(torch.randn(2, 50))
    with pytest.raises(ValueError, match="no frame"):
        frontend(torch.randn(2, 90))
    with pytest.raises(ValueError, match="mono"):
        frontend(torch.randn(2, 2, 500))
    with pytest.raises(ValueError, match="unknown method"):
        frontend(torch.randn(2, 500), method="nope")


# ----------------------------------------------------------------------------- approximate path
def test_stft_path_shape_and_error_on_scene_like_input():
    torch.manual_seed(0)
    fs = 8000.0
    frontend = SpectNetFrontend(n_filters=12, sample_rate=fs, kernel_size=201, win_length=201, hop_length=80)
    t = torch.arange(16000) / fs
    x = 0.3 * torch.sin(2 * math.pi * 440 * t) * (1 + torch.sin(2 * math.pi * 3 * t)) + 0.05 * torch.randn(16000)
    exact = frontend(x[None], method="fft")
    approx = frontend(x[None], method="stft")
    assert approx.shape == exact.shape
    assert (approx - exact).abs().median() < 0.5


# ----------------------------------------------------------------------------- device
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    frontend = SpectNetFrontend(learnable=["f", "b", "a", "n"])
    x = _beats(4)
    cpu_out = frontend(x)
    cpu_out.sum().backward()
    cpu_grads = [p.grad.clone() for p in frontend.parameters()]
    gpu = SpectNetFrontend(learnable=["f", "b", "a", "n"]).cuda()
    for method in ("direct", "fft"):  # "iir" with a learnable order is refused; tested below
        gpu.zero_grad()
        out = gpu(x.cuda(), method=method)
        torch.testing.assert_close(out.cpu(), cpu_out.detach(), rtol=0, atol=1e-3)
        out.sum().backward()
        for p, ref in zip(gpu.parameters(), cpu_grads):
            torch.testing.assert_close(p.grad.cpu(), ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item())
    assert gpu(x.cuda(), method="stft").device.type == "cuda"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_every_path_and_auto():
    """Every path runs on CUDA: ``iir`` computes the same filters there by convolution
    (the recursion's kernels are CPU code), and ``auto`` never picks it there."""
    cpu = SpectNetFrontend(n_filters=12, sample_rate=8000, kernel_size=201, win_length=201, hop_length=80)
    gpu = SpectNetFrontend(n_filters=12, sample_rate=8000, kernel_size=201, win_length=201, hop_length=80).cuda()
    x = _beats(2, length=8000)
    reference = cpu(x, method="iir")
    reference.sum().backward()
    for method in ("auto", "direct", "fft", "iir"):
        gpu.zero_grad()
        out = gpu(x.cuda(), method=method)
        torch.testing.assert_close(out.cpu(), reference.detach(), rtol=0, atol=1e-3)
        out.sum().backward()
        for p, ref in zip(gpu.parameters(), cpu.parameters()):
            torch.testing.assert_close(p.grad.cpu(), ref.grad, rtol=1e-3, atol=1e-3 * ref.grad.abs().max().item())
    assert gpu.resolve_method(x.cuda()) in ("direct", "fft")


# ----------------------------------------------------------------------------- plotting
def test_plot_filterbank_lines_and_overlay():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectnet.plotting import plot_filterbank

    before = SpectNetFrontend(n_filters=8)
    after = SpectNetFrontend(n_filters=8)
    with torch.no_grad():
        after.filterbank.offset_center_frequency.add_(10.0)
    ax = plot_filterbank(before)
    assert len(ax.lines) == 8
    assert isinstance(ax.figure, matplotlib.figure.Figure)
    plt.close(ax.figure)

    fig, ax = plt.subplots()
    returned = plot_filterbank(before, ax=ax, after=after)
    assert returned is ax and len(ax.lines) == 16
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "after"]
    assert not np.allclose(ax.lines[1].get_ydata(), ax.lines[9].get_ydata())
    fig.savefig(__import__("io").BytesIO(), format="png")
    plt.close(fig)

    ax = plot_filterbank([before.filterbank, after, before], labels=["a", "b", "c"])
    assert len(ax.lines) == 24
    plt.close(ax.figure)


def test_reflection_parametrisation_keeps_valid_ranges_and_gradients():
    bank = GammatoneFilterbank(3, 1000.0, learnable=["f", "b", "a", "n"])
    with torch.no_grad():
        bank.offset_bandwidth.copy_(torch.tensor([-50.0, 0.0, 80.0]) - bank.init_bandwidth)
        bank.offset_amplitude.copy_(torch.tensor([-2.0, 3.0, 1e4]) - bank.init_amplitude)
        bank.offset_order.copy_(torch.tensor([0.5, 1.0, 4.0]) - bank.init_order)
    torch.testing.assert_close(bank.bandwidth, torch.tensor([50.0, 0.0, 80.0]), check_dtype=False)
    torch.testing.assert_close(bank.amplitude, torch.tensor([2.0, 3.0, 1e4]))
    torch.testing.assert_close(bank.order, torch.tensor([1.5, 1.0, 4.0]))
    bank.kernels().pow(2).sum().backward()
    assert bank.offset_bandwidth.grad[0] != 0 and bank.offset_order.grad[0] != 0


def test_double_module_keeps_exact_init():
    bank = GammatoneFilterbank(16, 1000.0, learnable=["f", "b", "a", "n"]).double()
    assert bank.order.dtype == torch.float64
    assert torch.all(bank.order == 4.0) and torch.all(bank.bandwidth == 100.0)


# ----------------------------------------------------------------------------- parametrisations
def test_relative_parametrisation_starts_at_the_same_filters_and_moves_in_spacings():
    hz = GammatoneFilterbank(16, 1000.0)
    rel = GammatoneFilterbank(16, 1000.0, parametrization="relative")
    for name in ("center_frequency", "bandwidth", "amplitude", "order"):
        assert torch.equal(getattr(hz, name), getattr(rel, name))
    spacing = rel.spacing()
    centres = rel.center_frequency.detach()
    interior = (centres[2:] - centres[:-2]) / 2
    torch.testing.assert_close(spacing[1:-1], interior)
    with torch.no_grad():
        rel.offset_center_frequency.fill_(0.5)   # half a spacing up (before the fold)
        rel.offset_bandwidth.fill_(math.log(2.0))
        rel.offset_amplitude.fill_(-math.log(10.0))
    moved = rel.center_frequency.detach()[1:-1] - centres[1:-1]
    torch.testing.assert_close(moved, 0.5 * spacing[1:-1])
    torch.testing.assert_close(rel.bandwidth.detach(), torch.full((16,), 200.0))
    torch.testing.assert_close(rel.amplitude.detach(), torch.full((16,), 1e3))


def test_one_state_dict_for_both_parametrisations_and_legacy_files_load():
    static = SpectNetFrontend(learnable=["f", "b", "a"])
    learnable = SpectNetFrontend(learnable=["f", "b", "a"], parametrization="relative")
    learnable.load_state_dict(static.state_dict())
    x = _beats(2)
    torch.testing.assert_close(learnable(x), static(x), rtol=0, atol=0)
    # a model file written before the offsets: raw_<name> holds the trained value
    legacy = {f"filterbank.raw_{name}": getattr(static.filterbank, name).detach() + 1.0
              for name in ("center_frequency", "bandwidth", "amplitude", "order")}
    fresh = SpectNetFrontend(learnable=["f", "b", "a"])
    fresh.load_state_dict(legacy)
    torch.testing.assert_close(fresh.filterbank.bandwidth.detach(), torch.full((16,), 101.0))
    assert torch.all(fresh.filterbank.offset_bandwidth == 0)


def test_unknown_parametrisation_is_refused():
    with pytest.raises(ValueError, match="unknown parametrization 'log'"):
        GammatoneFilterbank(4, 1000.0, parametrization="log")
