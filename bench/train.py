"""Training throughput of the heart-sound models: a real training epoch against the same
model's forward + backward on synthetic tensors, in the same process.

Usage::

    python bench/train.py [--beats DIR] [--steps N] [--batch B] [--device cpu|cuda]

For each model (static SpectNet-16 + ResNet, learnable SpectNet-16 + ResNet, Gammatone
1D-CNN, Gammatone 2D-CNN):

  synthetic   samples/s of forward + backward + optimiser step on one fixed random batch
              (BASELINE: no data, no sampler, nothing but the model)
  real        samples/s of the training loop of `spectnet.training.train_stage` on the real
              beat set (double-balanced sampler, batches gathered from the in-memory set,
              loss bookkeeping), from the trainer's own timing of its second epoch (the
              first is the warm-up, as the synthetic side's first call is)
  ratio       real / synthetic (goal: >= 0.9)
  front-end   share of a synthetic step spent in the front-end (forward, and backward when
              it learns)

Then, on CPU, the static-16 model's synthetic step with and without channels-last memory
format and bfloat16 autocast, to justify what the trainer uses. Needs the beat dataset
(`snakemake data/processed/physionet2016-beats`, or `--beats`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from spectnet.runtime import malloc_is_tuned, reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__" and "--no-malloc-tuning" not in sys.argv:
    reexec_with_tuned_malloc()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from spectnet.config import Params  # noqa: E402
from spectnet.experiments.heart_sounds import HeartSounds  # noqa: E402
from spectnet.models import build_model  # noqa: E402
from spectnet.training.samplers import make_sampler  # noqa: E402
from spectnet.training.trainer import StageSettings, train_stage  # noqa: E402

RUNS = ("static-16", "learnable-16", "gammatone-1d", "gammatone-2d")


def build(name: str, task: HeartSounds):
    run = task.parse_run(name)
    if run.init_run is not None:  # stage 2: the static model's spec, as stage 2 trains it
        spec = task.stage2_spec(task.model_spec(task.parse_run(run.init_run)), run)
    else:
        spec = task.model_spec(run)
    torch.manual_seed(0)
    return build_model(spec), run


def prepare(model, stage: StageSettings, device):
    model.to(device).train()
    if stage.channels_last:
        model.cnn.to(memory_format=torch.channels_last)
    for p in model.frontend.parameters():
        p.requires_grad_(stage.train_frontend)
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)


def timed(fn, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` consecutive calls after one warm-up call:
    the same kind of number as the trainer's epoch timing (a run of steps, divided)."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def autocast(device, bf16: bool):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def synthetic_step(model, optimizer, x, y, device, bf16=False):
    def step():
        with autocast(device, bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def frontend_step(model, x, learns: bool):
    def step():
        with torch.set_grad_enabled(learns):
            out = model.frontend.image(x) if hasattr(model.frontend, "image") else model.frontend(x)
            if learns:
                out.sum().backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beats", type=Path, default=REPO / "data/processed/physionet2016-beats")
    parser.add_argument("--steps", type=int, default=8, help="batches per measurement")
    parser.add_argument("--batch", type=int, default=192, help="batch size (the quick scale trains at 64, the full scale at 996)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", nargs="+", default=list(RUNS))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not (args.beats / "beats.npy").exists():
        sys.exit(f"no beat dataset at {args.beats}: run `snakemake data/processed/physionet2016-beats`")
    device = torch.device(args.device)
    task = HeartSounds(Params.load(REPO / "params.yaml"), args.beats)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
             f", {torch.get_num_threads()} threads")
          + f", batch {args.batch}, {args.steps} steps, malloc tuning "
          f"{'on' if malloc_is_tuned() else 'off'}")
    train = task.load(0, "train", device)
    validation = task.load(0, "reporting", device)
    validation = validation.subset(np.arange(len(validation)) < 64)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, train.n_samples, generator=generator).mul_(0.05).to(device)
    y = torch.randint(0, 2, (args.batch,), generator=generator).to(device)

    sampler = make_sampler("double_balanced", train.labels.cpu().numpy(), train.domains,
                           args.batch, 0)
    gather_s = timed(lambda: train.batch(sampler.next_batch()), 100)
    print(f"sampling + gathering one batch from the in-memory set: {gather_s * 1e3:.2f} ms")

    print(f"\n{'model':<14} {'synthetic':>12} {'real':>12} {'ratio':>7} {'front-end':>10}")
    ratios = {}
    for name in args.runs:
        model, run = build(name, task)
        base = task.stage_settings(run, device)
        stage = StageSettings(**{**base.__dict__, "epochs": 2, "batch_size": args.batch,
                                 "steps_per_epoch": args.steps, "accumulate": 1})
        optimizer = prepare(model, stage, device)
        step_s, real_s = [], []
        # interleaved rounds, the fastest of each side kept: load from elsewhere on a
        # shared machine only ever adds time
        for _ in range(args.rounds):
            step_s.append(timed(synthetic_step(model, optimizer, x, y, device), args.steps))
            with tempfile.TemporaryDirectory() as work:
                record = train_stage(model, stage, train, validation, task.score, seed=0,
                                     work_dir=work, progress=False).history[-1]
            real_s.append(record["train_seconds"] / args.steps)
        front_s = timed(frontend_step(model, x, stage.train_frontend), args.steps)
        step_s, real = min(step_s), args.batch / min(real_s)
        synthetic = args.batch / step_s
        ratios[name] = real / synthetic
        print(f"{name:<14} {synthetic:>8.1f} /s {real:>8.1f} /s {real / synthetic:>7.2f} "
              f"{front_s / step_s:>9.0%}", flush=True)

    if device.type == "cpu":
        print("\nstatic-16 synthetic step on CPU, by memory format and autocast:")
        for channels_last in (False, True):
            for bf16 in (False, True):
                model, _ = build("static-16", task)
                stage = StageSettings(epochs=1, batch_size=args.batch, channels_last=channels_last)
                optimizer = prepare(model, stage, device)
                seconds = timed(synthetic_step(model, optimizer, x, y, device, bf16), args.steps)
                print(f"  channels_last={channels_last!s:<5} bf16={bf16!s:<5} "
                      f"{args.batch / seconds:8.1f} samples/s", flush=True)
    print("\nGoal: real/synthetic >= 0.9: "
          + ", ".join(f"{k} {'met' if v >= 0.9 else 'MISSED'}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
