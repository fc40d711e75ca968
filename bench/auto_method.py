"""Does ``method="auto"`` pick the fastest exact path on this device?  The measurement behind
the cost models (``spectnet.functional.COST_MODELS``), and the check to run on a new CPU.

Usage::

    python bench/auto_method.py [--repeats N] [--quick] [--no-malloc-tuning]

For each case (the workflow's two shapes and variations of batch, kernel length and
filter precision around them) times the three exact paths of ``SpectNetFrontend``
(``direct``, ``fft``, ``iir``; forward + backward, median of ``--repeats``, same process)
and prints them with the path ``auto`` picks under this device's cost model (and under
every other model, to see what the calibration changes), the fastest, and whether the
pick is within 10 % of the fastest.  Ends with the count of cases ``auto`` gets right,
where it is wrong the cases to refit on, and the cost model closest to this device's that
ranks the most cases as measured (a grid search over its three constants): the entry to
put in ``COST_MODELS`` to calibrate a new device.  Runs on CUDA when present (where the
recursion does not apply, so only the FFT constant is fitted).

Filters: the code init (b = 100 Hz) unless the case says otherwise; ``b=...`` sets every
bandwidth (b = 10 Hz at 1 kHz and b = 20 Hz at 22.05 kHz decay too slowly for float32:
every filter runs in float64 in the recursion); the paper init has ERB bandwidths.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from spectnet.runtime import reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__" and "--no-malloc-tuning" not in sys.argv:
    reexec_with_tuned_malloc()

import torch  # noqa: E402

from frontend import cpu_description, fwd_bwd, load_heart, load_scenes, median_time  # noqa: E402
from spectnet import functional as SF  # noqa: E402
from spectnet.frontend import SpectNetFrontend  # noqa: E402
from spectnet.runtime import default_device, malloc_is_tuned  # noqa: E402

HEART = dict(n_filters=16, sample_rate=1000.0, kernel_size=81, win_length=25, hop_length=10)
SCENES = dict(n_filters=46, sample_rate=22050.0, kernel_size=551, win_length=551, hop_length=220)

#: (name, input "heart"/"scenes", batch, front-end settings changed from the input's own)
CASES = [
    ("heart, 256 beats", "heart", 256, {}),
    ("heart, 32 beats", "heart", 32, {}),
    ("heart, paper init", "heart", 256, {"init": "paper"}),
    ("heart, b=10 (float64)", "heart", 256, {"bandwidth": 10.0}),
    ("heart, K=11 (float64)", "heart", 256, {"kernel_size": 11}),
    ("heart, K=15", "heart", 256, {"kernel_size": 15}),
    ("heart, K=21", "heart", 256, {"kernel_size": 21}),
    ("heart, K=41", "heart", 256, {"kernel_size": 41}),
    ("heart, K=161", "heart", 256, {"kernel_size": 161}),
    ("scenes, 2 clips", "scenes", 2, {}),
    ("scenes, 8 clips", "scenes", 8, {}),
    ("scenes, paper init", "scenes", 2, {"init": "paper"}),
    ("scenes, b=20 (float64)", "scenes", 2, {"bandwidth": 20.0}),
    ("scenes, 8 clips, b=20", "scenes", 8, {"bandwidth": 20.0}),
    ("scenes, K=101 (float64)", "scenes", 2, {"kernel_size": 101}),
    ("scenes, K=221 (float64)", "scenes", 2, {"kernel_size": 221}),
]
#: Within this factor of the fastest path, a pick counts as right.
CLOSE = 1.10
QUICK = {"heart, 256 beats", "heart, b=10 (float64)", "heart, K=15", "scenes, 2 clips",
         "scenes, b=20 (float64)"}


def picks_right(times, picked):
    return picked in times and times[picked] <= CLOSE * min(times.values())


def fit_cost_model(measured, current):
    """The :class:`~spectnet.functional.CostModel` that ranks the most ``measured`` cases
    right, among those nearest ``current`` (log distance of the constants): a grid of 41
    FFT constants (0.5-50), 41 recursion constants (2-200) and 31 float64 extras (0-3).
    ``measured``: ``(batch, filters, samples, taps, float64 share or None, times)``."""
    def grid(low, high, n, now):  # the current value too: kept where it does as well
        return sorted({low * (high / low) ** (i / (n - 1)) for i in range(n)} | ({now} if now else set()))

    recursion = any("iir" in times for *_, times in measured)
    best = None
    for fft in grid(0.5, 50.0, 41, current.fft_per_nlogn):
        for iir in (grid(2.0, 200.0, 41, current.iir_per_sample) if recursion else [None]):
            for extra in (sorted({i / 10 for i in range(31)} | {current.iir_float64_extra}) if recursion else [0.0]):
                model = SF.CostModel(fft, iir, extra, "fitted by bench/auto_method.py")
                score = sum(picks_right(times, SF.choose_method(b, f, t, k, share, model))
                            for b, f, t, k, share, times in measured)
                distance = abs(math.log(fft / current.fft_per_nlogn)) + abs(extra - current.iir_float64_extra)
                if iir and current.iir_per_sample:
                    distance += abs(math.log(iir / current.iir_per_sample))
                if best is None or (-score, distance) < best[0]:
                    best = ((-score, distance), model)
    return best[1], -best[0][0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help=f"{len(QUICK)} cases, 2 repeats")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="do not re-exec with glibc malloc tuning")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    device = default_device()
    own = SF.device_class(device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {repeats} (median), "
          f"malloc tuning {'on' if malloc_is_tuned() else 'off'}")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_description()}), "
          f"cost model '{own}' ({SF.cost_model(device).fitted_on}), load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    inputs = {"heart": load_heart(256, 2500)[0], "scenes": load_scenes(8, 10.0, 22050)[0]}
    others = [name for name in SF.COST_MODELS if name != own]
    header = f"{'case':<26}{'f64 share':>10}{'direct':>9}{'fft':>9}{'iir':>9}  fastest  auto({own})"
    print("\nforward + backward, ms\n" + header + "".join(f"  {name:>10}" for name in others))
    right, wrong, measured = 0, [], []
    for name, kind, batch, change in CASES:
        if args.quick and name not in QUICK:
            continue
        settings = {**(HEART if kind == "heart" else SCENES), **change}
        module = SpectNetFrontend(**settings).to(device)
        x = inputs[kind][:batch].to(device)
        share = module._float64_share(x)
        paths = ("direct", "fft") + (("iir",) if share is not None else ())
        times = {path: median_time(fwd_bwd(module, x, path), repeats) for path in paths}
        fastest = min(times, key=times.get)
        picked = module.resolve_method(x)
        close = picks_right(times, picked)
        measured.append((batch, module.n_filters, x.shape[-1], module.kernel_size, share, times))
        right += close
        if not close:
            wrong.append(name)
        alternatives = [SF.choose_method(batch, module.n_filters, x.shape[-1], module.kernel_size,
                                         share, SF.COST_MODELS[other]) for other in others]
        row = "".join(f"{times[p] * 1e3:>9.1f}" if p in times else f"{'-':>9}" for p in ("direct", "fft", "iir"))
        share_text = "-" if share is None else f"{share:.2f}"
        print(f"{name:<26}{share_text:>10}{row}  {fastest:<7}  {picked:<6}{'' if close else ' (slow)':<9}"
              + "".join(f"  {alt:>10}" for alt in alternatives), flush=True)
    total = right + len(wrong)
    print(f"\nauto within 10 % of the fastest path in {right} of {total} cases"
          + (f"; refit '{own}' on: {', '.join(wrong)}" if wrong else ""))
    model, score = fit_cost_model(measured, SF.cost_model(device))
    iir = "None" if model.iir_per_sample is None else f"{model.iir_per_sample:.3g}"
    print(f"nearest cost model ranking the most cases right ({score} of {total}): "
          f"CostModel(fft_per_nlogn={model.fft_per_nlogn:.3g}, iir_per_sample={iir}, "
          f"iir_float64_extra={model.iir_float64_extra:.2g}); this device's '{own}': {SF.cost_model(device)}")
    print(f"total bench time {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
