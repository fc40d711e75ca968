"""Precision of the recursive path's float32 kernels against the filters' decay over K taps:
the evidence for ``spectnet.functional._RECURSIVE_FLOAT64_BELOW_DECAY``.

Usage::

    python bench/recursive_precision.py [--decays 5 8 10 12 14 15.7 18 20 25]

For each decay ``2 pi b K / fs`` (one bandwidth b for all 46 mel-spaced filters, the scene
setup: 22.05 kHz, K = 551, window 551, hop 220) on 20 ESC-10 clips (the first two of each
class, 5 s): the log-energy error of the float32 recursion (forced, whatever the decay) and
of the direct float32 convolution against a float64 evaluation of the same parameters, over
non-silent frames (largest, 99.9th percentile), and the largest error of the gradients with
respect to f, b, a (a random weighting of the output, 10 clips of 3 s) relative to the
largest gradient.  Values only, no timing: any machine load is fine.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
import torchaudio  # noqa: E402

import spectnet.functional as SF  # noqa: E402
from frontend import cpu_description  # noqa: E402

DATA = Path(os.environ.get("SPECTNET_DATA", REPO.parent / "shared" / "data"))
FS, K, WIN, HOP, N_FILTERS = 22050.0, 551, 551, 220, 46


def clips(per_class: int, seconds: float) -> torch.Tensor:
    import soundfile as sf

    out = []
    for folder in sorted((DATA / "esc10").iterdir()):
        for path in sorted(folder.rglob("*.ogg"))[:per_class]:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            out.append(torchaudio.functional.resample(torch.from_numpy(audio.mean(1)), rate, int(FS)))
    length = min(min(c.numel() for c in out), int(seconds * FS))
    return torch.stack([c[:length] for c in out])


def spectrogram(path, x, f, b, a):
    if path == "iir":
        return SF.recursive_gammatone_spectrogram(x, f, b, a, K, FS, WIN, HOP)
    kernels = SF.gammatone_impulse_response(f, b, a, 4.0, K, FS)
    return SF.gammatone_spectrogram(x, kernels, WIN, HOP, method="direct")


def gradient(path, x, bandwidth, dtype, weights):
    f = SF.mel_center_frequencies(N_FILTERS, 0.0, FS / 2, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.full_like(f, bandwidth).requires_grad_()
    a = torch.full_like(f, 1e4).requires_grad_()
    (spectrogram(path, x.to(dtype), f, b, a) * weights.to(dtype)).sum().backward()
    return torch.cat([f.grad, b.grad, a.grad * 1e4]).double()  # a's gradient per unit of 1e-4 a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decays", type=float, nargs="+", default=[5, 8, 10, 12, 14, 15.7, 18, 20, 25])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; cpu ({cpu_description()})")
    print(f"float64 below decay {SF._RECURSIVE_FLOAT64_BELOW_DECAY:g} today; "
          "below, the float32 recursion is forced for the measurement")
    values, grads = clips(2, 5.0), clips(1, 3.0)
    f = SF.mel_center_frequencies(N_FILTERS, 0.0, FS / 2, dtype=torch.float32)
    a = torch.full_like(f, 1e4)
    threshold = SF._RECURSIVE_FLOAT64_BELOW_DECAY
    print("errors of the float32 paths (iir32: the recursion, direct32: the convolution) against float64:")
    print(f"{'decay':>6}{'b Hz':>7} | {'largest (log units)':>21} | {'99.9th percentile':>21} | {'gradients (relative)':>21}")
    print(f"{'':>13} | {'iir32':>10}{'direct32':>11} | {'iir32':>10}{'direct32':>11} | {'iir32':>10}{'direct32':>11}")
    try:
        SF._RECURSIVE_FLOAT64_BELOW_DECAY = 0.0  # every filter in float32
        for decay in args.decays:
            bandwidth = decay * FS / (2 * math.pi * K)
            b = torch.full_like(f, bandwidth)
            with torch.no_grad():
                reference = spectrogram("direct", values.double(), f.double(), b.double(), a.double())
                live = reference > math.log(1e-16) + 1  # not digital silence
                error = {p: (spectrogram(p, values, f, b, a).double() - reference)[live].abs()
                         for p in ("iir", "direct")}
            weights = torch.randn(reference.shape[0] // 2, *reference.shape[1:],
                                  generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            weights = weights[:, :, : SF.num_frames(grads.shape[-1], K, WIN, HOP)]
            exact = gradient("direct", grads, bandwidth, torch.float64, weights)
            grad_error = {p: float((gradient(p, grads, bandwidth, torch.float32, weights) - exact).abs().max()
                                   / exact.abs().max()) for p in ("iir", "direct")}
            print(f"{decay:>6.1f}{bandwidth:>7.1f} | {error['iir'].max():>10.1e}{error['direct'].max():>11.1e} | "
                  f"{error['iir'].quantile(0.999):>10.1e}{error['direct'].quantile(0.999):>11.1e} | "
                  f"{grad_error['iir']:>10.1e}{grad_error['direct']:>11.1e}", flush=True)
    finally:
        SF._RECURSIVE_FLOAT64_BELOW_DECAY = threshold


if __name__ == "__main__":
    main()
