"""How the stage-1 recipe was chosen: the ResNet head's live units and the inner-split MAcc
per step, for the paper's setting and the alternatives, on the real beats.

Usage::

    python bench/recipe.py [--run static-16] [--batch 64] [--steps 600] [--every 100]
                           [--settings paper warmup ...] [--threads N]

Every setting trains ``--run`` with its front-end frozen (stage 1) on train0 minus its
inner split, Adam, double-balanced batches, the same seed and the same batches, and prints
at a few steps: the mean training loss since the last report, the share of the 100 dense
head units that fire for at least one of 512 inner-split beats (evaluation mode), and the
recording-level MAcc on the inner split (the selection set of the workflow: recordings held
out of train0, stratified by class x subset; validation0 is never used here). A head unit
that fires for no input gets no gradient again: Adam's first steps at the full rate kill
most of them (docs/deviations.md).

Settings (``--settings``, default all):

- ``paper``: Adam at 1e-3 from the first step (the paper);
- ``warmup``: the same rate reached linearly over ``--warmup`` steps (the workflow's recipe);
- ``low-lr``: Adam at 3e-4 from the first step;
- ``standardised``: the paper's rate, with the log-energy image standardised per filter
  (mean and sd of 2,000 training beats) before the CNN: tests whether the input's scale
  (log energies around -15 to -30) is what hurts.

Writes ``bench/out/recipe-<run>.csv`` (one row per setting and report step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from spectnet.runtime import reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__":
    reexec_with_tuned_malloc()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from spectnet.config import Params  # noqa: E402
from spectnet.experiments.heart_sounds import HeartSounds  # noqa: E402
from spectnet.models import build_model  # noqa: E402
from spectnet.training.samplers import make_sampler  # noqa: E402
from spectnet.training.trainer import predict_proba  # noqa: E402

#: name -> (learning rate, warm-up steps (None: --warmup), standardise the image)
SETTINGS = {"paper": (1e-3, 0, False), "warmup": (1e-3, None, False),
            "low-lr": (3e-4, 0, False), "standardised": (1e-3, 0, True)}


def alive_share(model, x: torch.Tensor, scale=None) -> float:
    """Share of the dense head's units that fire for at least one of the beats ``x``."""
    cnn = model.cnn
    model.eval()
    with torch.no_grad():
        image = model.frontend.image(x)
        if scale is not None:
            image = (image - scale[0]) / scale[1]
        hidden = F.relu(cnn.fc1(cnn.features(image)))
    model.train()
    return (hidden.amax(0) > 0).float().mean().item()


def run_setting(name: str, task: HeartSounds, train, selection, args) -> list[dict]:
    lr, warmup, standardise = SETTINGS[name]
    warmup = args.warmup if warmup is None else warmup
    torch.manual_seed(args.seed)
    model = build_model(task.model_spec(task.parse_run(args.run)))
    model.frontend.requires_grad_(False)
    scale = None
    if standardise:
        with torch.no_grad():
            rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2000]
            image = model.frontend.image(train.batch(rows)[0])
            scale = (image.mean((0, 1, 2)), image.std((0, 1, 2)))
        cnn = model.cnn
        model.forward = lambda x: cnn((model.frontend.image(x) - scale[0]) / scale[1])
    model.cnn.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr)
    sampler = make_sampler("double_balanced", train.labels.cpu().numpy(), train.domains,
                           args.batch, args.seed)
    probe = selection.batch(torch.arange(min(512, len(selection))))[0]
    rows, losses, started = [], [], time.perf_counter()
    report = sorted({1, 5, 20, *range(args.every, args.steps + 1, args.every)})
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * (min(1.0, step / warmup) if warmup else 1.0)
        x, y = train.batch(sampler.next_batch())
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step in report:
            scores = task.score(predict_proba(model, selection), selection)
            rows.append({"setting": name, "step": step, "beats_seen": step * sampler.batch_size,
                         "train_loss": float(np.mean(losses)), "head_alive": alive_share(model, probe, scale),
                         "inner_macc": scores["macc"], "inner_beat_accuracy": scores["beat_accuracy"],
                         "seconds": time.perf_counter() - started})
            losses = []
            r = rows[-1]
            print(f"{name:>13} {step:>6} {r['train_loss']:>7.3f} {r['head_alive']:>6.0%} "
                  f"{r['inner_macc']:>7.3f} {r['seconds']:>7.0f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beats", type=Path, default=REPO / "data/processed/physionet2016-beats")
    parser.add_argument("--run", default="static-16", help="a static-N ResNet run")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    if not (args.beats / "beats.npy").exists():
        sys.exit(f"no beat dataset at {args.beats}: run `snakemake data/processed/physionet2016-beats`")
    if args.threads:
        torch.set_num_threads(args.threads)
    task = HeartSounds(Params.load(REPO / "params.yaml"), args.beats)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, selection = task.splits(task.section.fold, device)
    print(f"{args.run}, batch {args.batch}, {args.steps} steps, {device}, {torch.get_num_threads()} "
          f"threads; {len(train)} training beats; inner split {len(set(selection.groups))} "
          f"recordings ({len(selection)} beats scored)")
    print(f"{'setting':>13} {'step':>6} {'loss':>7} {'alive':>6} {'MAcc':>7} {'s':>7}")
    rows = [row for name in args.settings for row in run_setting(name, task, train, selection, args)]
    out = REPO / "bench" / "out" / f"recipe-{args.run}-{'-'.join(args.settings)}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
