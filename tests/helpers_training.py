"""Kill-and-resume checks shared by the training tests of every task."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from spectnet.experiments.task import resume_dir
from spectnet.training.checkpoint import read_model_file

#: Columns of history.csv that measure time, not training.
TIMING = ["train_seconds", "epoch_seconds"]


def same_run(a: Path, b: Path) -> bool:
    """Two run directories hold the same history (timing aside) and the same weights."""
    histories = [pd.read_csv(d / "history.csv").drop(columns=TIMING) for d in (a, b)]
    if not histories[0].equals(histories[1]):
        return False
    for file in ("best.pt", "last.pt"):
        x, y = (read_model_file(d / file)["state_dict"] for d in (a, b))
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def assert_killed_run_resumes_exactly(command: Callable[[Path], list[str]], root: Path,
                                      epochs: int) -> Path:
    """Train ``command(root / "plain")``; start ``command(root / "killed")``, SIGKILL it as
    soon as its first resume checkpoint exists and start it again: it must resume after
    the epochs it had done and end with exactly the uninterrupted run's history and
    weights, its resume state removed. Returns the uninterrupted run's directory."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    plain, killed = root / "plain", root / "killed"
    subprocess.run(command(plain), check=True, env=env, capture_output=True)
    checkpoint = resume_dir(killed) / "checkpoint.pt"
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not killed.exists(), "the kill came too late to test resume"
    done = len(torch.load(checkpoint, weights_only=True)["history"])
    assert 1 <= done < epochs
    resumed = subprocess.run(command(killed), env=env, capture_output=True, text=True,
                             check=True)
    assert f"resuming {resume_dir(killed)} after epoch {done} of {epochs}" in resumed.stderr
    assert same_run(plain, killed) and not resume_dir(killed).exists()
    return plain
