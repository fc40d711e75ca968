"""The package as a user installs it: the wheel in a fresh environment, dependencies
resolved from pyproject.toml alone (no requirements.lock), then `spectnet --help` and a
prediction with a real model file on a real recording."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

UV = Path(sys.executable).parent / "uv"


def uv(*args, cwd: Path) -> str:
    proc = subprocess.run([str(UV), *map(str, args)], cwd=cwd, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
    assert proc.returncode == 0, f"uv {' '.join(map(str, args))} failed:\n{proc.stdout}"
    return proc.stdout


@pytest.mark.slow
def test_the_wheel_installs_without_the_lock_and_predicts(tmp_path, tiny_heart_model,
                                                          physionet_dir):
    if not UV.exists():
        pytest.skip(f"uv not found beside {sys.executable} (`make setup` installs it)")
    uv("build", "--wheel", "--out-dir", tmp_path / "dist", REPO, cwd=tmp_path)
    wheel, = (tmp_path / "dist").glob("spectnet-*.whl")
    venv = tmp_path / "venv"
    uv("venv", "--python", sys.executable, venv, cwd=tmp_path)
    # The newest versions pyproject.toml allows, as any resolver picks them (uv's cache
    # makes it quick; the pins must give a torch/torchaudio pair that loads).
    uv("pip", "install", "--python", venv / "bin" / "python", wheel, cwd=tmp_path)
    spectnet = venv / "bin" / "spectnet"
    run = subprocess.run([spectnet, "--help"], text=True, capture_output=True, cwd=tmp_path)
    assert run.returncode == 0 and "spectnet" in run.stdout, run.stderr
    recording = physionet_dir / "training-a" / "a0001.flac"
    run = subprocess.run([spectnet, "predict", "--model", tiny_heart_model, recording],
                         text=True, capture_output=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["label"] in ("normal", "abnormal") and result["n_beats"] > 10
    assert 0 <= result["p_abnormal"] <= 1
