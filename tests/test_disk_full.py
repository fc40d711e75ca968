"""A full disk while a step writes: one line naming the path and the cause, no traceback,
and the previous output as it was. On a real small filesystem: a tmpfs of 1 MiB mounted
by the test (as root; skipped with the reason otherwise)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_raw_dir
from spectnet.atomic import atomic_output
from spectnet.errors import NoSpaceError

SPECTNET = [sys.executable, "-m", "spectnet.cli"]


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path/small``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def run_step(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SPECTNET, *args], capture_output=True, text=True, timeout=600)


def assert_one_clear_line(stderr: str, path: Path) -> None:
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert errors and all(f"{path}: no space left on device" in e for e in errors), stderr
    assert len(errors) == 1 and "Traceback" not in stderr and "Errno" not in stderr, stderr
    assert "inline_container" not in stderr, stderr


@pytest.mark.slow
def test_preprocess_on_a_full_disk_names_the_store_and_keeps_the_previous_one(
        small_fs, tmp_path):
    out = small_fs / "store"
    one = make_raw_dir(tmp_path / "one", {"a": ["a0001"]})
    assert run_step("physionet", "preprocess", "--raw", str(one), "--out", str(out),
                    "--params", "{}", "--workers", "1", "-q").returncode == 0
    previous = tree(out)
    # Eight recordings (about 2 MiB of signals) cannot fit.
    many = make_raw_dir(tmp_path / "many", {"a": [f"a{i:04d}" for i in range(1, 9)]})
    proc = run_step("physionet", "preprocess", "--raw", str(many), "--out", str(out),
                    "--params", "{}", "--workers", "1", "-q", "--log",
                    str(tmp_path / "log.txt"))
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, out)
    assert tree(out) == previous and sorted(os.listdir(small_fs)) == ["store"]


def test_training_on_a_full_disk_names_the_file_and_keeps_the_previous_run(
        small_fs, small_beats_dir):
    out = small_fs / "static-4" / "seed1"
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}\n")                # a previous run's output
    params = {"scale": "smoke", "scales": {"smoke": {"heart_sounds": {"static": {
        "epochs": 2, "batch_size": 24, "steps_per_epoch": 2}}}}}
    proc = run_step("physionet", "train", "static-4", "--seed", "1", "--beats",
                    str(small_beats_dir), "--out", str(out), "--params", json.dumps(params),
                    "-q")
    assert proc.returncode == 1
    line, = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    written = Path(line.split(" ERROR spectnet: ")[1].split(": no space left")[0])
    assert written == out or out.parent in written.parents, line
    assert_one_clear_line(proc.stderr, written)
    assert tree(out) == {"summary.json": b"{}\n"}


def test_torch_save_on_a_full_disk_is_no_space_not_an_internal_error(small_fs):
    """What torch itself reports when its writer meets ENOSPC ("unexpected pos"), and the
    model writer's answer."""
    from spectnet.training.checkpoint import save_checkpoint
    big = {"weights": torch.zeros(512, 1024)}                # 2 MiB
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with atomic_output(small_fs / "raw.pt") as tmp:
            torch.save(big, tmp)
    with pytest.raises(NoSpaceError, match=rf"{small_fs / 'ckpt.pt'}: no space left on device"):
        save_checkpoint(small_fs / "ckpt.pt", big)
    assert os.listdir(small_fs) == []


def test_no_space_is_recognised_through_the_exceptions_that_wrap_it(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("worker failed") from exc
    except RuntimeError as wrapped:
        assert NoSpaceError.caused(wrapped)
    assert NoSpaceError.caused(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not NoSpaceError.caused(OSError(errno.EACCES, "Permission denied"))
    assert str(NoSpaceError(tmp_path / "x" / "y.npy")).startswith(
        f"{tmp_path / 'x' / 'y.npy'}: no space left on device (")
