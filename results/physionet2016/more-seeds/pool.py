"""learnable-16 against static-16-control (and static-16) pooled over more trainings than the
workflow's three seeds: the committed seeds 1-3, seeds 4-6 run outside the workflow on the
same machine and kernels, and (second analysis) seeds 1-3 rerun with other floating-point
kernels; with ``--scenes``, learnable-46 against static-46-control (and static-46) over
the workflow's seed 1 and seeds run outside it. Uses the package's own comparison and
interval code (compare_runs, summarise).

usage: python pool.py [--scenes] OUT_PREFIX NAME=PREDICTIONS_DIR:SEEDS ...   (SEEDS like 1,2,3)
Every source's seeds are renumbered 1..n in the order given. ``--scenes``: the scene
comparison instead (learnable-46 against static-46-control and static-46, fold 1)."""
import sys
from pathlib import Path

import pandas as pd

from spectnet.config import Params
from spectnet.experiments.heart_sounds import HeartSounds
from spectnet.experiments.scenes import Scenes
from spectnet.experiments.task import compare_runs
from spectnet.params import load_params

args = sys.argv[1:]
scenes = args[0] == "--scenes"
if scenes:
    args = args[1:]
section, task_class, store, n_filters, fold = (
    ("scenes", Scenes, "data/processed/scenes-units", 46, 1) if scenes else
    ("heart_sounds", HeartSounds, "data/processed/physionet2016-beats", 16, 0))
runs = (f"static-{n_filters}", f"static-{n_filters}-control", f"learnable-{n_filters}")
params = load_params("params.yaml")
job = task_class(Params.from_dict(params), store).job
out = Path(args[0])
work = out.parent / (out.name + "-predictions")
sources, n = [], 0
for arg in args[1:]:
    name, rest = arg.split("=", 1)
    where, seeds = rest.rsplit(":", 1)
    for seed in map(int, seeds.split(",")):
        n += 1
        sources.append({"training": n, "source": name, "seed": seed})
        for run in runs:
            link = work / job(run, fold, n)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to((Path(where) / job(run, fold, seed)).resolve())
params["scales"]["quick"][section]["comparison_seeds"] = list(range(1, n + 1))
task = task_class(Params.from_dict(params), store)
which = pd.DataFrame(sources)
rows = []
for a in runs[1::-1]:  # the control, then static-N
    rows += compare_runs(task, work, a, runs[2])
table = pd.DataFrame(rows).rename(columns={"seed": "training"})
arms = []
macc = f"{task.group}.macc"
for run in runs:
    evaluations = [task.read_evaluation(work, job(run, fold, s)) for s in range(1, n + 1)]
    point, ci = task.summarise(evaluations, task.budget.bootstrap, 0.95)
    arms.append({"run": run, "trainings": n, macc.replace(".", "_"): point[macc],
                 "ci_low": ci[macc][0], "ci_high": ci[macc][1]})
    if scenes:  # the quick scale's scene target is on clip accuracy
        accuracy = f"{task.group}.accuracy"
        arms[-1].update({"clip_accuracy": point[accuracy], "accuracy_ci_low": ci[accuracy][0],
                         "accuracy_ci_high": ci[accuracy][1]})
which.to_csv(f"{out}-trainings.csv", index=False)
table.to_csv(f"{out}-comparisons.csv", index=False)
pd.DataFrame(arms).to_csv(f"{out}-runs.csv", index=False)
cols = ["a", "training"] + [f"{task.group}_macc_{c}" for c in ("a", "b", "difference", "ci_low", "ci_high")] \
    + ["only_a", "only_b", "pvalue", "df"]
print(which.to_string())
print(table[cols].to_string())
print(pd.DataFrame(arms).to_string())
