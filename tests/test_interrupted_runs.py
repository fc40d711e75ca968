"""Steps killed with SIGKILL, as real child processes on real recordings.

What a kill may not cost: the previous complete output stays as it was, the pool workers
die with their parent without a traceback, and the next run of the same step removes the
killed run's temporary directory (but never the one of a run that is still alive).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_raw_dir
from spectnet.atomic import pid_alive
from spectnet.cli import main
from spectnet.config import BeatsConfig, PreprocessConfig, SegmentationConfig
from spectnet.segmentation.beats import build_beat_dataset
from spectnet.preprocessing.heart_sounds import preprocess_dataset

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

SPECTNET = [sys.executable, "-m", "spectnet.cli"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class _Run:
    """A step started as a child process, to be killed once it is in full swing."""

    def __init__(self, argv: list[str], stderr: Path):
        self.stderr = stderr
        with open(stderr, "wb") as err:
            self.proc = subprocess.Popen([*SPECTNET, *argv], stdout=subprocess.DEVNULL, stderr=err)
        self.workers: list[int] = []

    def wait_for_workers(self, out: Path, n: int) -> None:
        def started():
            self.workers = _children(self.proc.pid)
            return self.proc.poll() is None and len(self.workers) >= n and _temps(out)
        _wait_for(started, f"{n} workers and a temporary output")

    def kill(self) -> str:
        """SIGKILL the step; wait until its workers are gone; return its stderr."""
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=60) == -signal.SIGKILL  # killed, not finished
        _wait_for(lambda: not any(pid_alive(w) for w in self.workers), "the workers to die", 30)
        return self.stderr.read_text()

    def cleanup(self) -> None:
        for pid in [self.proc.pid, *self.workers]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


@pytest.mark.slow
def test_killed_preprocess_is_cleaned_up_by_the_next_run(tmp_path, physionet_dir):
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001", "a0002"], "b": ["b0001"]})
    out = tmp_path / "store"
    preprocess_dataset(raw, out, PreprocessConfig(), workers=1, progress=False)
    previous = _tree(out)
    # The same records plus one whose "audio" is a FIFO that nobody writes: the run that
    # reads it can never finish, so it is surely killed mid-way.
    blocked = make_raw_dir(tmp_path / "blocked", {"a": ["a0001", "a0002"], "b": ["b0001"]})
    os.mkfifo(blocked / "training-a" / "a9999.wav")
    records = pd.read_csv(blocked / "records.csv")
    records.loc[len(records)] = {"record": "a9999", "subset": "a", "label": 0,
                                 "audio_path": "training-a/a9999.wav"}
    records.to_csv(blocked / "records.csv", index=False)

    run = _Run(["physionet", "preprocess", "--raw", str(blocked), "--out", str(out),
                "--params", "{}", "--workers", "2", "-q"], tmp_path / "stderr.txt")
    try:
        run.wait_for_workers(out, 2)
        [live] = _temps(out)
        # another run of the same step meanwhile leaves the live run's work alone
        argv = ["physionet", "preprocess", "--raw", str(raw), "--out", str(out), "--params", "{}",
                "--workers", "1", "-q", "--log", str(tmp_path / "log.txt")]
        assert main(argv) == 0
        assert _temps(out) == [live] and _tree(out) == previous
        stderr = run.kill()
    finally:
        run.cleanup()
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert _temps(out) == [live] and _tree(out) == previous  # the leftover, the output intact
    assert main(argv) == 0
    assert _temps(out) == [] and _tree(out) == previous
    log = (tmp_path / "log.txt").read_text()
    assert f"removed {live} (" in log and f"left by a killed run (pid {run.proc.pid})" in log


@pytest.mark.slow
def test_killed_segmentation_is_cleaned_up_by_the_next_run(tmp_path, physionet_dir):
    names = [f"a{i:04d}" for i in range(1, 13)]
    raw = make_raw_dir(tmp_path / "raw", {"a": names})
    store, out = tmp_path / "store", tmp_path / "beats"
    preprocess_dataset(raw, store, PreprocessConfig(), workers=2, progress=False)
    build_beat_dataset(store, out, SegmentationConfig(), BeatsConfig(), workers=1, progress=False)
    previous = _tree(out)

    argv = ["physionet", "segment", "--store", str(store), "--out", str(out), "--params", "{}",
            "--workers", "1", "-q", "--log", str(tmp_path / "log.txt")]
    run = _Run(argv, tmp_path / "stderr.txt")
    try:
        run.wait_for_workers(out, 1)  # 12 recordings take one worker a second or two
        stderr = run.kill()
    finally:
        run.cleanup()
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    [leftover] = _temps(out)
    assert _tree(out) == previous
    assert main(argv) == 0
    assert _temps(out) == [] and _tree(out) == previous  # and the rerun is byte-identical
    assert f"removed {leftover} (" in (tmp_path / "log.txt").read_text()


def test_sigterm_stops_a_step_cleanly_at_once(tmp_path, physionet_dir, capsys):
    """SIGTERM (scancel, a workflow manager) ends the step like Ctrl-C: exit 143, the
    temporary output and the pool gone at once, no traceback."""
    import threading
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001"]})
    os.mkfifo(raw / "training-a" / "a9999.wav")  # never written: the step cannot finish
    records = pd.read_csv(raw / "records.csv")
    records.loc[len(records)] = {"record": "a9999", "subset": "a", "label": 0,
                                 "audio_path": "training-a/a9999.wav"}
    records.to_csv(raw / "records.csv", index=False)
    out = tmp_path / "store"
    workers: list[int] = []

    def terminate_when_running():
        def running():
            workers[:] = _children(os.getpid())
            return len(workers) >= 2 and _temps(out)
        _wait_for(running, "the step to run")
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_running)
    killer.start()
    try:
        assert main(["physionet", "preprocess", "--raw", str(raw), "--out", str(out),
                     "--params", "{}", "--workers", "2", "-q"]) == 143
    finally:
        killer.join()
    assert _temps(out) == [] and not out.exists()
    assert not any(pid_alive(w) for w in workers)
    err = capsys.readouterr().err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
