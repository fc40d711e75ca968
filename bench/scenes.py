"""Training throughput of the scene model: what the exact front-end costs per training step.

Usage::

    python bench/scenes.py [--batch B] [--repeats N] [--filters F] [--seconds S] [--device D]

Clips per second of one training step (forward, cross-entropy, backward, Adam step) on
10-s units at 22.05 kHz with 46 filters (K 551, window 551, hop 220), in the same process,
on the same batch, median of the repeats:

  precomputed  BASELINE: the scene CNN alone on spectrogram images computed beforehand
               (what a cache of the frozen front-end's output would give stage 1)
  exact        stage 1 as `spectnet scenes train` runs it: the frozen front-end on the
               exact filtering path (method "auto"), then the same CNN step
  learnable    stage 2: the front-end's filters trained too (its backward pass added)

The ratio precomputed / exact is the most a feature cache could speed up stage 1; the
front-end's share of a stage-1 step is 1 - exact / precomputed (in clips per second).
Input is real audio (ESC-10 clips joined into 10-s units, see bench/frontend.py), else
noise. The machine's load average is printed before and after: the 2-core development
machine is shared, so compare ratios, not absolute numbers, across runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from spectnet.runtime import malloc_is_tuned, reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__" and "--no-malloc-tuning" not in sys.argv:
    reexec_with_tuned_malloc()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from frontend import load_scenes, median_time  # noqa: E402  (bench/frontend.py)
from spectnet.models import build_model  # noqa: E402


def training_step(forward, parameters, x, y):
    """One optimiser step of ``forward`` on ``(x, y)`` (Adam, lr 0.005 as the paper)."""
    optimizer = torch.optim.Adam(parameters, lr=0.005)

    def run():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        optimizer.step()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="units per batch (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median; default 5)")
    parser.add_argument("--filters", type=int, default=46)
    parser.add_argument("--seconds", type=float, default=10.0, help="unit length (default 10)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    rate = 22050
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"malloc tuning {'on' if malloc_is_tuned() else 'off'}, load average "
          f"{os.getloadavg()[0]:.2f} (1 min) before")
    x, source = load_scenes(args.batch, args.seconds, rate)
    x = x[:, 0].to(device)
    y = torch.arange(args.batch, device=device) % 15
    torch.manual_seed(0)
    model = build_model({"architecture": "spectnet-scene-cnn", "n_samples": x.shape[-1],
                         "sample_rate": rate, "n_classes": 15,
                         "frontend": {"n_filters": args.filters, "kernel_size": 551,
                                      "win_length": 551, "hop_length": 220}}).to(device)
    model.train()
    if device.type == "cpu":  # as the trainer does on CPU
        model.cnn.to(memory_format=torch.channels_last)
    with torch.no_grad():
        images = model.frontend.image(x)
    print(f"input {tuple(x.shape)} {source}; image {tuple(images.shape)}")

    static = copy.deepcopy(model)
    static.frontend.requires_grad_(False)
    learnable = copy.deepcopy(model)
    cnn_only = copy.deepcopy(model.cnn)
    rows = {
        "precomputed": training_step(cnn_only, cnn_only.parameters(), images, y),
        "exact": training_step(static, static.cnn.parameters(), x, y),
        "learnable": training_step(learnable, learnable.parameters(), x, y),
    }
    started = time.perf_counter()
    seconds = {name: median_time(step, args.repeats) for name, step in rows.items()}
    print(f"\n{'step':<13}{'s/batch':>9}{'clips/s':>9}")
    for name, t in seconds.items():
        print(f"{name:<13}{t:>9.3f}{args.batch / t:>9.2f}")
    ratio = seconds["exact"] / seconds["precomputed"]
    print(f"\nprecomputed / exact clips per second: {ratio:.2f}x "
          f"(the front-end's share of a stage-1 step: {1 - 1 / ratio:.0%}); "
          f"learnable / exact step time: {seconds['learnable'] / seconds['exact']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after; bench time "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
