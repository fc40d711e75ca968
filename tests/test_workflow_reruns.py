"""Reruns after edits, interrupts and scale changes, on the same smoke-scale origin as
tests/test_workflow.py (built once per test run: the `origin` fixture in conftest.py):
`dvc repro` and `dvc exp run` against Snakemake, Ctrl-C and a collaborator, a scale
change shared through its own remote."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from helpers_workflow import (BIN, HEART_RUNS_SMOKE, clone, commit, dvc, dvc_stages,
                              nothing_to_do, planned_jobs, pulled_clone, run, set_params,
                              snakemake, stages_to_rerun)
from spectnet.params import load_params
from spectnet.workflow import sync, write_dvc_yaml

pytestmark = pytest.mark.after_origin


@pytest.mark.slow
def test_dvc_repro_and_exp_run_leave_snakemake_nothing_to_do(origin, tmp_path):
    root = pulled_clone(origin, tmp_path / "experiments")
    sync(root)
    set_params(root, segmentation__plot_records=["e00001"])
    repro = dvc("repro", cwd=root).stdout
    assert "Running stage 'plot_segmentation_physionet'" in repro
    assert repro.count("Running stage") == 1                 # only what reads the key
    assert nothing_to_do(root) and stages_to_rerun(root) == set()
    assert not (root / "results/physionet2016/figures/segmentation/segmentation-a0001.png"
                ).exists()
    commit(root, "draw one record")
    exp = dvc("exp", "run", "-n", "lr", "-S", "heart_sounds.learnable.frontend_lr=0.05",
              cwd=root).stdout
    assert "Stage 'fetch_physionet' didn't change, skipping" in exp
    assert {"train_learnable_physionet--n-16--seed-1",
            "evaluate_physionet--run-learnable-16--seed-1", "table2_physionet",
            "figures_physionet", "headline_metrics"} == set(
        re.findall(r"Running stage '([^']+)'", exp))   # never the static models or the control
    assert load_params(root / "params.yaml")["heart_sounds"]["learnable"]["frontend_lr"] == 0.05
    assert nothing_to_do(root) and stages_to_rerun(root) == set()
    # `spectnet workflow experiments` (`make experiments`): `dvc exp show` with the params
    # the stages read at the active scale, no other scale's, and the headline metrics, for
    # the workspace, the commit and the experiment.
    shown = run(BIN / "spectnet", "workflow", "experiments", "--", "--csv", cwd=root).stdout
    header, *rows = shown.splitlines()
    params = [c for c in header.split(",") if c.startswith("scale")]
    assert len(rows) == 3 and "scale" in params and "scales.smoke.heart_sounds.seeds" in params
    assert all(c == "scale" or c.startswith("scales.smoke.") for c in params), params
    table = json.loads(dvc("exp", "show", "--json", cwd=root).stdout)
    runs = [run_ for row in table
            for run_ in [row, *(r for exp in row.get("experiments") or [] for r in exp["revs"])]]
    assert len(runs) == 3
    columns = set()
    for run_ in runs:
        data = run_["data"]
        assert set(data["metrics"]) == {"results/metrics.json"}
        headline = data["metrics"]["results/metrics.json"]["data"]
        assert set(headline["heart_sounds"]) == {r for r, _ in HEART_RUNS_SMOKE}
        assert set(headline["heart_sounds"]["learnable-16"]) == {"macc", "sensitivity",
                                                                  "specificity"}
        assert set(headline["scenes"]["static-16"]) == {"accuracy", "macc"}
        columns |= {f"{task}.{r}.{m}" for task, rs in headline.items() for r, ms in rs.items()
                    for m in ms}
    assert len(columns) == 3 * len(HEART_RUNS_SMOKE) + 2 * 3  # scenes: static, control, learnable
    # `dvc plots diff`: the learning curves of the commit and of the experiment, overlaid.
    plots = json.loads(dvc("plots", "diff", "HEAD", "lr", "--json", cwd=root).stdout)
    curve, = plots["data"]["learning-curves-physionet-macc"]
    rows = curve["content"]["data"]["values"]
    assert set(curve["revisions"]) == {row["rev"] for row in rows} == {"HEAD", "lr"}
    learnable = {row["rev"]: [] for row in rows}
    for row in rows:
        if row["filename"].endswith("learnable-16/seed1/history.csv"):
            learnable[row["rev"]].append((row["epoch"], row["loss"]))
    assert len(learnable["HEAD"]) == len(learnable["lr"]) == 2     # two epochs each,
    assert learnable["HEAD"] != learnable["lr"]                      # another training


@pytest.mark.slow
def test_ctrl_c_then_the_same_command_again_and_a_collaborator_gets_what_ran(origin,
                                                                            tmp_path):
    """Ctrl-C during `snakemake --cores all`: Snakemake waits for the running job, which
    finishes after the interrupt and is marked incomplete, not recorded in DVC; the jobs
    that finished before are. The next run reruns the incomplete job and what follows,
    and a collaborator who pulls what was pushed has exactly those jobs left."""
    import signal
    import subprocess
    import time
    from helpers_workflow import ENV
    owner = pulled_clone(origin, tmp_path / "owner")
    sync(owner)
    # the front-end's rate: learnable-16 alone reruns (its control trains no filters)
    set_params(owner, heart_sounds__learnable__frontend_lr=0.05)
    commit(owner, "another front-end learning rate")
    before = yaml.safe_load((owner / "dvc.lock").read_text())["stages"]
    training = "train_learnable_physionet--n-16--seed-1"
    evaluation = "evaluate_physionet--run-learnable-16--seed-1"
    log = owner / "logs/physionet2016/evaluate/learnable-16-seed1.log"
    log.unlink(missing_ok=True)
    # A shell starts background jobs (`make test &`) with SIGINT ignored, the children
    # inherit that and Python then installs no Ctrl-C handler: Snakemake would ignore the
    # signal below. Its default disposition back, as in a terminal.
    proc = subprocess.Popen([BIN / "snakemake", "--cores", "2"], cwd=owner, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while not log.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)                # Ctrl-C (`kill -INT`) while it evaluates
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0 and "Terminating processes on user request" in out, out
    lock = yaml.safe_load((owner / "dvc.lock").read_text())["stages"]
    assert lock[training] != before[training]                  # finished before: recorded
    assert (owner / "results/physionet2016/runs/learnable-16/seed1.json").exists()
    assert lock[evaluation] == before[evaluation]              # finished after: not recorded
    left = {evaluation, "table2_physionet", "figures_physionet", "headline_metrics", "all"}
    assert set(planned_jobs(cwd=owner)) == left                # no IncompleteFilesException
    dvc("push", "-q", cwd=owner)
    commit(owner, "part of a run")
    collaborator = pulled_clone(owner, tmp_path / "collaborator")
    result = sync(collaborator)
    assert training in result.marked and evaluation not in result.marked
    assert set(planned_jobs(cwd=collaborator)) == left         # nothing pushed runs again
    snakemake("--cores", "2", cwd=owner)                       # the same command again
    assert nothing_to_do(owner) and stages_to_rerun(owner) == set()


@pytest.mark.slow
def test_a_scale_change_leaves_no_hashes_of_the_other_scale_in_the_lock(origin, tmp_path):
    """A fresh clone (nothing pulled) switched to another scale runs part of the DAG and
    shares it through its own remote: its dvc.lock must not keep the smoke scale's hashes
    for the stages not reached, which it never had (push would warn of missing objects,
    and a collaborator's pull would fail)."""
    owner = clone(origin, tmp_path / "owner")
    tiny = {"epochs": 1, "batch_size": 24, "steps_per_epoch": 1}
    set_params(owner, scale="quick", scales__quick__heart_sounds__static=tiny,
               scales__quick__heart_sounds__bootstrap=20)
    evaluated = "results/physionet2016/runs/static-4/seed1.json"
    proc = snakemake("--cores", "2", "plot_segmentation_physionet", "preprocess_scenes",
                     evaluated, cwd=owner)
    assert "dvc.yaml was not the one the Snakefile gives at the quick scale: rewritten" \
        in proc.stdout
    assert write_dvc_yaml(owner, check=True)
    lock = yaml.safe_load((owner / "dvc.lock").read_text())["stages"]
    scales = {name: (entry.get("params") or {}).get("params.yaml", {}).get("scale")
              for name, entry in lock.items()}
    assert set(scales.values()) == {None, "quick"}, scales
    assert {"train_static_physionet--n-4--seed-1", "evaluate_physionet--run-static-4--seed-1"
            } <= set(lock)
    dvc("remote", "add", "-f", "-d", "own", tmp_path / "own-remote", cwd=owner)
    pushed = dvc("push", cwd=owner).stdout
    assert "missing" not in pushed.lower(), pushed
    commit(owner, "quick, part of it")
    collaborator = clone(owner, tmp_path / "collaborator")
    # What dvc.lock records is all on the remote. (Plain `dvc pull` would still exit 1, on
    # the outputs of the stages not run yet, which dvc.lock has no hash for.)
    proc = run(BIN / "spectnet", "workflow", "pull", cwd=collaborator)
    assert f"{len(lock) - 1} of {len(dvc_stages(collaborator))} stages match" in proc.stdout
    assert "headline_metrics: changed deps" in proc.stdout     # static-4 has a new result
    assert "train_static_physionet--n-16--seed-1: not in dvc.lock" in proc.stdout
    assert set(planned_jobs(cwd=collaborator)) == set(planned_jobs(cwd=owner))
