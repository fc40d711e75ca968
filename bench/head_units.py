"""Why every scale trains the ResNet without dropout: the share of the dense head's ReLUs
that are alive over the first steps of stage 1, by dropout and head, on the real beats.

Usage::

    python bench/head_units.py [--run static-4] [--batch 996] [--steps 60]

For each setting (the paper's dropout 0.5 with clean logits, the shared ``Dropout2d`` at
0.5 only, the head's dropout at 0.5 only, no dropout, and the authors' double softmax with
0.5), it trains ``--run`` with its front-end frozen, Adam at 1e-3 on double-balanced
batches (stage 1 of the paper), and prints at a few steps: the mean training loss of the
last 5 steps, the share of the 100 head units that fire for at least one of 512 validation
beats (in training mode and in evaluation mode), and the evaluation-mode beat accuracy on
those beats. A unit that fires for no input gets no gradient: once the head is dead, the
network predicts one class for good. Needs the beat dataset (``--beats``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from spectnet.runtime import reexec_with_tuned_malloc  # noqa: E402

if __name__ == "__main__":
    reexec_with_tuned_malloc()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from spectnet.config import Params  # noqa: E402
from spectnet.experiments.heart_sounds import HeartSounds  # noqa: E402
from spectnet.models import build_model  # noqa: E402
from spectnet.training.samplers import make_sampler  # noqa: E402

#: (name, Dropout2d p, head dropout p, double softmax)
SETTINGS = (("paper 0.5, clean logits", 0.5, 0.5, False),
            ("Dropout2d 0.5 only", 0.5, 0.0, False),
            ("head dropout 0.5 only", 0.0, 0.5, False),
            ("no dropout (all scales)", 0.0, 0.0, False),
            ("paper 0.5, double softmax", 0.5, 0.5, True))
REPORT_AT = (1, 5, 10, 20, 40, 60, 100, 200, 400)


def head_probe(model, x, y, training: bool) -> tuple[float, float]:
    """(share of head units alive for some beat of ``x``, beat accuracy) in the given mode."""
    cnn = model.cnn
    model.train(training)
    with torch.no_grad():
        hidden = F.relu(cnn.fc1(cnn.features(model.frontend.image(x))))
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return (hidden.amax(0) > 0).float().mean().item(), accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beats", type=Path, default=REPO / "data/processed/physionet2016-beats")
    parser.add_argument("--run", default="static-4", help="a static-N ResNet run")
    parser.add_argument("--batch", type=int, default=996, help="996 = the paper's DBT batch")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's (the paper's) rate")
    args = parser.parse_args()
    if not (args.beats / "beats.npy").exists():
        sys.exit(f"no beat dataset at {args.beats}: run `snakemake data/processed/physionet2016-beats`")
    task = HeartSounds(Params.load(REPO / "params.yaml"), args.beats)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = task.load(0, "train", device)
    validation = task.load(0, "reporting", device)
    probe = torch.randperm(len(validation), generator=torch.Generator().manual_seed(1))[:512]
    x_probe, y_probe = validation.batch(probe)
    print(f"{args.run}, batch {args.batch}, Adam {args.lr}, {device}")
    for name, p2d, p_head, double_softmax in SETTINGS:
        torch.manual_seed(0)
        spec = task.model_spec(task.parse_run(args.run))
        spec["cnn"] = {"dropout": p2d, "quirks": double_softmax}
        model = build_model(spec).to(device)
        model.cnn.head_dropout = p_head
        model.frontend.requires_grad_(False)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], args.lr)
        sampler = make_sampler("double_balanced", train.labels.cpu().numpy(), train.domains,
                               args.batch, 0)
        print(f"\n{name}\n{'step':>6} {'loss':>7} {'alive (train)':>14} {'alive (eval)':>13} "
              f"{'accuracy':>9}")
        losses = []
        for step in range(1, args.steps + 1):
            x, y = train.batch(sampler.next_batch())
            loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if step in REPORT_AT or step == args.steps:
                alive_train, _ = head_probe(model, x_probe, y_probe, True)
                alive_eval, accuracy = head_probe(model, x_probe, y_probe, False)
                print(f"{step:>6} {sum(losses[-5:]) / len(losses[-5:]):>7.3f} "
                      f"{alive_train:>14.0%} {alive_eval:>13.0%} {accuracy:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
