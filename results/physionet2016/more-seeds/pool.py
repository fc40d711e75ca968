"""learnable-16 against static-16-control (and static-16) pooled over more trainings than the
workflow's three seeds: the committed seeds 1-3, seeds 4-6 run outside the workflow on the
same machine and kernels, and (second analysis) seeds 1-3 rerun with other floating-point
kernels. Uses the package's own comparison and interval code (compare_runs, summarise).

usage: python pool.py OUT_PREFIX NAME=PREDICTIONS_DIR:SEEDS ...   (SEEDS like 1,2,3)
Every source's seeds are renumbered 1..n in the order given."""
import sys
from pathlib import Path

import pandas as pd

from spectnet.config import Params
from spectnet.experiments.heart_sounds import HeartSounds
from spectnet.experiments.task import compare_runs
from spectnet.params import load_params

out = Path(sys.argv[1])
work = out.parent / (out.name + "-predictions")
sources, n = [], 0
for arg in sys.argv[2:]:
    name, rest = arg.split("=", 1)
    where, seeds = rest.rsplit(":", 1)
    for seed in map(int, seeds.split(",")):
        n += 1
        sources.append({"training": n, "source": name, "seed": seed})
        for run in ("static-16", "static-16-control", "learnable-16"):
            link = work / run / f"seed{n}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to((Path(where) / run / f"seed{seed}").resolve())
params = load_params("params.yaml")
params["scales"]["quick"]["heart_sounds"]["comparison_seeds"] = list(range(1, n + 1))
task = HeartSounds(Params.from_dict(params), "data/processed/physionet2016-beats")
which = pd.DataFrame(sources)
rows = []
for a in ("static-16-control", "static-16"):
    rows += compare_runs(task, work, a, "learnable-16")
table = pd.DataFrame(rows).rename(columns={"seed": "training"})
arms = []
for run in ("static-16", "static-16-control", "learnable-16"):
    evaluations = [task.read_evaluation(work, task.job(run, 0, s)) for s in range(1, n + 1)]
    point, ci = task.summarise(evaluations, task.budget.bootstrap, 0.95)
    arms.append({"run": run, "trainings": n, "recording_macc": point["recording.macc"],
                 "ci_low": ci["recording.macc"][0], "ci_high": ci["recording.macc"][1]})
which.to_csv(f"{out}-trainings.csv", index=False)
table.to_csv(f"{out}-comparisons.csv", index=False)
pd.DataFrame(arms).to_csv(f"{out}-runs.csv", index=False)
cols = ["a", "training", "recording_macc_a", "recording_macc_b", "recording_macc_difference",
        "recording_macc_ci_low", "recording_macc_ci_high", "only_a", "only_b", "pvalue", "df"]
print(which.to_string())
print(table[cols].to_string())
print(pd.DataFrame(arms).to_string())
