"""The full scale on a GPU, in minutes: training throughput of every heart-sound model and
one seed of static-16 -> learnable-16 + its same-budget control at the full scale's batch.

Usage::

    python bench/full_scale.py [--minutes 8] [--seed 1] [--out bench/out/full-scale]

On a CUDA device it

1. measures training throughput (beats/s, forward + backward + Adam at the full scale's
   batch, the CNN under autocast as the trainer runs it) of static-4/8/16, learnable-16,
   and the Gammatone 1D/2D baselines, on real beats;
2. sizes a budget from those numbers so that static-16 (half the time), learnable-16 and
   static-16-control (a quarter each) fit ``--minutes``, and trains them through the
   workflow's own code (:class:`spectnet.experiments.heart_sounds.HeartSounds`:
   the inner split for selection, early stopping off, the recipe of params.yaml);
3. evaluates the three on validation0 and compares learnable-16 with its control and with
   static-16 (McNemar on recordings, paired bootstrap intervals);
4. writes ``OUT/full-scale.md`` (the device, throughputs, the budget, the metrics with
   intervals, the comparisons, the filters' movement) and ``OUT/full-scale.json``.

Without CUDA it says so and exits 0: the full scale is a GPU job (one epoch of the
ResNet at batch 996 takes about 80 minutes on a 2-core CPU). Needs the beat dataset
(``snakemake data/processed/physionet2016-beats``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beats", type=Path, default=REPO / "data/processed/physionet2016-beats")
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="training time for static-16 + learnable-16 + control")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/full-scale")
    args = parser.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("No CUDA device: the full scale is a GPU job (one DBT epoch of the ResNet at batch "
              "996 takes about 80 minutes on a 2-core CPU). Nothing measured.")
        return 0
    if not (args.beats / "beats.npy").exists():
        sys.exit(f"no beat dataset at {args.beats}: run `snakemake data/processed/physionet2016-beats`")

    import torch.nn.functional as F

    from spectnet.config import Params
    from spectnet.experiments.heart_sounds import TABLE_II_COLUMNS, HeartSounds
    from spectnet.experiments.task import comparisons, filter_notes, results_table
    from spectnet.models import build_model
    from spectnet.params import validate_params
    from spectnet.training.samplers import make_sampler
    from spectnet.training.trainer import autocast_for

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
    device = torch.device("cuda")
    params = Params.from_dict(validate_params({**Params.load(REPO / "params.yaml").to_dict(),
                                               "scale": "full"}))
    task = HeartSounds(params, args.beats)
    batch = params.active_scale.heart_sounds.static.batch_size
    train, _ = task.splits(task.section.fold, device)
    sampler = make_sampler("double_balanced", train.labels.cpu().numpy(), train.domains, batch, 0)
    name = torch.cuda.get_device_name()
    print(f"{name}, torch {torch.__version__}, batch {sampler.batch_size}")

    def throughput(run_name: str, steps: int = 20) -> float:
        run = task.parse_run(run_name)
        spec = (task.stage2_spec(task.model_spec(task.parse_run(run.init_run)), run)
                if run.init_run else task.model_spec(run))
        model = build_model(spec).to(device).train()
        stage = task.stage_settings(run, device)
        for p in model.frontend.parameters():
            p.requires_grad_(stage.train_frontend)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
        batches = [train.batch(sampler.next_batch()) for _ in range(steps)]

        def step(x, y):
            with autocast_for(device, stage.cpu_autocast):  # CUDA: the CNN's bf16/fp16
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for x, y in batches[:3]:
            step(x, y)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for x, y in batches:
            step(x, y)
        torch.cuda.synchronize()
        return steps * sampler.batch_size / (time.perf_counter() - start)

    rates = {}
    for run_name in ("static-4", "static-8", "static-16", "learnable-16", "gammatone-1d",
                     "gammatone-2d"):
        rates[run_name] = throughput(run_name)
        print(f"  {run_name:<14} {rates[run_name]:>9.0f} beats/s", flush=True)

    # budget: static-16 half the time, learnable-16 and its control a quarter each, at the
    # full scale's batch; one epoch = a pass over the largest cell (the full scale's epoch)
    seconds = 60 * args.minutes
    epoch_beats = sampler.steps_per_epoch * sampler.batch_size
    static_epochs = max(1, int(0.5 * seconds * rates["static-16"] / epoch_beats))
    stage2_epochs = max(1, int(0.25 * seconds * rates["learnable-16"] / epoch_beats))
    budget = {"heart_sounds": {
        "seeds": [args.seed], "comparison_seeds": [args.seed],
        "static": {"epochs": static_epochs, "batch_size": batch, "steps_per_epoch": None,
                   "patience": None},
        "learnable": {"epochs": stage2_epochs, "batch_size": batch, "steps_per_epoch": None}}}
    params = Params.from_dict(validate_params(
        {**params.to_dict(), "scales": {"full": budget}}, partial=True))
    task = HeartSounds(params, args.beats)
    print(f"budget: static-16 {static_epochs} epochs, learnable-16 and control {stage2_epochs} "
          f"epochs of {sampler.steps_per_epoch} batches of {sampler.batch_size}")

    models, predictions, metrics = args.out / "models", args.out / "predictions", args.out / "runs"
    jobs = [("static-16", None), ("static-16-control", "static-16"), ("learnable-16", "static-16")]
    timing = {}
    for run_name, init in jobs:
        job = task.job(run_name, task.section.fold, args.seed)
        started = time.perf_counter()
        task.train(run_name, task.section.fold, args.seed, models / job,
                   init_model=models / task.job(init, 0, args.seed) / "best.pt" if init else None,
                   device=device)
        timing[run_name] = time.perf_counter() - started
        task.evaluate(models / job / "best.pt", predictions / job, metrics / f"{job}.json",
                      device=device)
    table = results_table(task, TABLE_II_COLUMNS, metrics, predictions, models, str,
                          runs=[run for run, _ in jobs])
    tests = comparisons(task, predictions)
    means = table.pivot(index="run", columns="metric", values="mean")
    lines = [f"# Full scale on {name}", "",
             f"torch {torch.__version__}; batch {sampler.batch_size}; seed {args.seed}; "
             f"budget from {args.minutes:g} minutes.", "",
             "| model | training throughput (beats/s) |", "|---|---|",
             *(f"| {k} | {v:.0f} |" for k, v in rates.items()), "",
             "| run | epochs | wall (min) | MAcc | Se | Sp | Acc (beat) |", "|---|---|---|---|---|---|---|"]
    for run_name, _ in jobs:
        summary = json.loads((models / task.job(run_name, 0, args.seed) / "summary.json").read_text())
        m = means.loc[run_name]
        lines.append(f"| {run_name} | {summary['epochs']} | {timing[run_name] / 60:.1f} | "
                     f"{m['MAcc']:.2f} | {m['Se']:.2f} | {m['Sp']:.2f} | {m['Acc (beat)']:.2f} |")
    key = "recording_macc"
    lines += ["", "| comparison | seed | MAcc difference [95 % CI] | McNemar p |", "|---|---|---|---|"]
    for row in tests.itertuples():
        lines.append(f"| {row.b} vs {row.a} | {row.seed} | "
                     f"{100 * getattr(row, key + '_difference'):+.2f} "
                     f"[{100 * getattr(row, key + '_ci_low'):+.2f}, "
                     f"{100 * getattr(row, key + '_ci_high'):+.2f}] | "
                     f"{row.pvalue if row.seed != 'pooled' else ''} |")
    lines += ["", *filter_notes(table)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "full-scale.md").write_text("\n".join(lines) + "\n")
    (args.out / "full-scale.json").write_text(json.dumps(
        {"device": name, "throughput": rates, "timing_s": timing,
         "budget": budget, "comparisons": tests.to_dict(orient="records")}, indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
