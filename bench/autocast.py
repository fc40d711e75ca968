"""CPU bfloat16 autocast of the CNN against float32, trained as the workflow trains: the
measurement behind ``cpu_autocast`` in params.yaml.

Usage::

    python bench/autocast.py [--seeds 1 2 3] [--run static-16] [--beats DIR] [--threads N]
                             [--force] [--smoke] [--out bench/out]

For each seed, ``--run`` (static SpectNet-16 + ResNet, stage 1) is trained twice at the
quick scale's settings (params.yaml's recipe, the quick scale's budget, early stopping
and model selection): once with ``cpu_autocast: float32`` (the CNN in float32, the
default) and once with ``cpu_autocast: bf16`` (the CNN under bfloat16 autocast; the
front-end is float32 in both). Both go through the workflow's own code
(:meth:`spectnet.experiments.heart_sounds.HeartSounds.train`): train0 without its inner
split, each epoch scored on the inner split (recordings held out of train0, the
workflow's selection set; validation0 is never read). The two runs of a seed see the same
batches in the same order; which runs first alternates between seeds.

Prints the CPU and its flags, then per seed and epoch the inner-split recording MAcc of
both, per run the best inner MAcc, its epoch, why it stopped, the training seconds (the
trainer's own timing of its steps), the evaluation seconds and the wall time of the whole
run (data loading and model files included), and over the seeds the mean paired
difference bf16 - float32 of the best inner MAcc (with a t interval where there are
several seeds) and the speed-up. Writes ``OUT/autocast.csv`` (one row per run and epoch)
and ``OUT/autocast.json`` (``autocast-smoke.*`` with ``--smoke``).

On a CPU without native bf16 (no ``avx512_bf16`` or ``amx_bf16`` flag) bf16 is emulated,
about ten times slower (bench/train.py): the script says so and exits 0 unless
``--force``. Needs the beat dataset of the workflow (``snakemake
data/processed/physionet2016-beats``, or ``--beats``). ``--smoke``: one seed, two epochs
of two batches, 24 selection recordings: checks that everything runs, measures nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from spectnet.runtime import malloc_is_tuned, reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__" and "--no-malloc-tuning" not in sys.argv:
    reexec_with_tuned_malloc()

#: The two settings compared, in the order the first seed runs them.
SETTINGS = ("float32", "bf16")
BEATS_COMMAND = "snakemake data/processed/physionet2016-beats"


def quick_params(setting: str, smoke: bool, seed: int):
    """params.yaml at the quick scale with ``cpu_autocast: setting`` (``--smoke``: a
    couple of steps and a small selection set)."""
    from spectnet.config import Params
    from spectnet.params import validate_params

    params = {**Params.load(REPO / "params.yaml").to_dict(), "scale": "quick",
              "cpu_autocast": setting}
    if smoke:
        heart = params["scales"]["quick"]["heart_sounds"]
        heart.update(static={**heart["static"], "epochs": 2, "steps_per_epoch": 2,
                             "patience": None},
                     seeds=[seed], comparison_seeds=[seed], selection_subset=24)
    return Params.from_dict(validate_params(params))


def warm_up(task, run, device, batch_size: int, steps: int = 3) -> None:
    """A few untimed steps of the model under each setting, so that neither setting's
    first run pays for the process's one-off start-up (kernel selection, allocations)."""
    import torch
    import torch.nn.functional as F

    from spectnet.models import build_model
    from spectnet.training.trainer import autocast_for

    torch.manual_seed(0)
    model = build_model(task.model_spec(run)).to(device)
    model.frontend.requires_grad_(False)
    model.cnn.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, task.params.beats.beat_length, device=device) * 0.05
    y = torch.arange(batch_size, device=device) % 2
    for setting in SETTINGS:
        for _ in range(steps):
            with autocast_for(device, setting):
                out = model(x)
            F.cross_entropy(out.float(), y).backward()


def paired(differences: list[float], level: float = 0.95) -> dict:
    """Mean, sd and (several seeds) the t interval of paired differences: the package's
    interval over trainings with no evaluation-set part (one shared set, no resampling)."""
    import numpy as np

    from spectnet.evaluation.statistics import mean_over_trainings

    values = np.asarray(differences, dtype=float)
    out = {"n": len(values), "mean": float(values.mean()),
           "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "ci_level": level}
    if len(values) > 1:
        interval = mean_over_trainings(values, np.zeros(2), level)
        out.update(ci_low=interval["low"], ci_high=interval["high"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--run", default="static-16", help="a stage-1 run (static-N)")
    parser.add_argument("--beats", type=Path, default=REPO / "data/processed/physionet2016-beats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="measure even where the CPU has no native bf16 (emulated: slow)")
    parser.add_argument("--smoke", action="store_true",
                        help="one seed, two epochs of two batches: a check that it runs")
    parser.add_argument("--out", type=Path, default=REPO / "bench/out")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from spectnet.experiments.heart_sounds import HeartSounds
    from spectnet.runtime import machine_info, native_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    machine = machine_info(device)
    print(f"{machine['cpu']}; CPU flags: {', '.join(machine['cpu_flags']) or 'none listed'}; "
          f"torch {machine['torch']}, {machine['threads']} threads, malloc tuning "
          f"{'on' if malloc_is_tuned() else 'off'}")
    if not native_bf16():
        print("This CPU has no native bf16 (neither avx512_bf16 nor amx_bf16): torch emulates "
              "bf16 here, about ten times slower than float32 (bench/train.py), so "
              "cpu_autocast: auto keeps float32 on it." + (
                  " Measuring anyway (--force)." if args.force else
                  " Nothing measured (--force to measure anyway)."))
        if not args.force:
            return 0
    if not (args.beats / "beats.npy").exists():
        print(f"no beat dataset at {args.beats}: the workflow makes it with `{BEATS_COMMAND}` "
              "(or give --beats DIR)", file=sys.stderr)
        return 1
    seeds = args.seeds[:1] if args.smoke else args.seeds

    first = HeartSounds(quick_params("float32", args.smoke, seeds[0]), args.beats)
    warm_up(first, first.parse_run(args.run), device,
            first.stage_settings(first.parse_run(args.run), device).batch_size)
    rows, runs = [], []
    with tempfile.TemporaryDirectory(prefix="autocast-") as work:
        for i, seed in enumerate(seeds):
            for setting in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
                task = HeartSounds(quick_params(setting, args.smoke, seed), args.beats)
                run = task.parse_run(args.run)
                if run.kind != "static":
                    parser.error(f"--run {args.run}: a stage-1 run (static-N) is needed")
                stage = task.stage_settings(run, device)
                out = Path(work) / setting / task.job(run.name, task.section.fold, seed)
                started = time.perf_counter()
                summary = task.train(run.name, task.section.fold, seed, out, device=device,
                                     progress=False)
                wall = time.perf_counter() - started
                history = pd.read_csv(out / "history.csv")
                eval_seconds = float((history["epoch_seconds"] - history["train_seconds"]).sum())
                runs.append({
                    "seed": seed, "setting": setting, "cnn_precision": summary["cnn_precision"],
                    "epochs": summary["epochs"], "steps": summary["steps"],
                    "stopped": summary["stopped"], "best_epoch": summary["best_epoch"],
                    "best_inner_macc": summary["best"]["macc"],
                    "train_seconds": summary["train_seconds"], "eval_seconds": eval_seconds,
                    "wall_seconds": wall})
                rows += [{"seed": seed, "setting": setting, "epoch": int(r.epoch),
                          "inner_macc": float(r.macc), "train_loss": float(r.train_loss),
                          "train_seconds": float(r.train_seconds),
                          "epoch_seconds": float(r.epoch_seconds)}
                         for r in history.itertuples()]
                print(f"seed {seed} {setting:>7}: best inner MAcc {summary['best']['macc']:.4f} "
                      f"at epoch {summary['best_epoch']} of {summary['epochs']} "
                      f"({summary['stopped']}); training {summary['train_seconds']:.1f} s, "
                      f"evaluation {eval_seconds:.1f} s, wall {wall:.1f} s", flush=True)

    epochs = pd.DataFrame(rows)
    table = pd.DataFrame(runs)
    budget = task.budget.static
    print(f"\n{args.run} at the quick scale ({budget.epochs} epochs of {budget.steps_per_epoch} "
          f"batches of {stage.batch_size}, patience {budget.patience}; "
          f"{'SMOKE: ' if args.smoke else ''}inner split of train{task.section.fold}, "
          f"{stage.sampler} batches, channels-last {stage.channels_last})")
    print("\ninner-split recording MAcc per epoch:")
    wide = epochs.pivot_table(index=["seed", "epoch"], columns="setting", values="inner_macc")
    wide = wide.reindex(columns=list(SETTINGS))
    wide["bf16 - float32"] = wide["bf16"] - wide["float32"]
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))

    print("\nper run:")
    print(table.set_index(["seed", "setting"]).to_string(formatters={
        "best_inner_macc": "{:.4f}".format, **{c: "{:.1f}".format for c in (
            "train_seconds", "eval_seconds", "wall_seconds")}}))

    by = table.set_index(["seed", "setting"])
    best = by["best_inner_macc"]
    differences = [best[(s, "bf16")] - best[(s, "float32")] for s in seeds]
    speedups = [by.loc[(s, "float32"), "train_seconds"] / by.loc[(s, "bf16"), "train_seconds"]
                for s in seeds]
    diff = paired(differences)
    interval = (f", {diff['ci_level']:.0%} t interval [{100 * diff['ci_low']:+.2f}, "
                f"{100 * diff['ci_high']:+.2f}]" if diff["n"] > 1 else "")
    spread = f" ± {100 * diff['sd']:.2f} (sd)" if diff["n"] > 1 else ""
    print(f"\nbest inner MAcc, bf16 - float32, paired over {diff['n']} seed(s): "
          f"{100 * diff['mean']:+.2f} points{spread}{interval}; per seed "
          + ", ".join(f"{s}: {100 * d:+.2f}" for s, d in zip(seeds, differences)))
    print("training speed-up float32 / bf16 seconds: "
          + ", ".join(f"seed {s}: {x:.2f}x" for s, x in zip(seeds, speedups))
          + f"; wall float32 {table.loc[table.setting == 'float32', 'wall_seconds'].sum():.0f} s, "
            f"bf16 {table.loc[table.setting == 'bf16', 'wall_seconds'].sum():.0f} s")
    if args.smoke:
        print("(--smoke: a check that everything runs; these numbers measure nothing)")

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("autocast-smoke" if args.smoke else "autocast")
    epochs.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".json").write_text(json.dumps(
        {"machine": machine, "native_bf16": native_bf16(), "smoke": args.smoke,
         "run": args.run, "seeds": seeds,
         "stage": {k: v for k, v in asdict(stage).items() if k != "cpu_autocast"},
         "runs": runs, "best_inner_macc_difference": diff,
         "speedup": dict(zip(map(str, seeds), speedups))}, indent=2, default=str) + "\n")
    print(f"-> {stem}.csv, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
