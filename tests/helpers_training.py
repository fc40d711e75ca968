"""Killing a training command mid-run, for the resume tests of every task."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import torch


def kill_after_first_checkpoint(command: list[str], checkpoint: Path, env: dict,
                                timeout: float = 300) -> int:
    """Start ``command``, SIGKILL it as soon as its resume ``checkpoint`` exists and return
    the number of epochs the checkpoint holds (0 if the run ended without one)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(torch.load(checkpoint, weights_only=True)["history"]) if checkpoint.exists() else 0
