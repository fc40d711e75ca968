"""Shared test fixtures: where the real data live, and small real-data copies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The user's local copy of the data (CI: the shared folder beside the clone).
DATA_ROOT = Path(os.environ.get("SPECTNET_DATA", REPO.parent / "shared" / "data"))
PHYSIONET = DATA_ROOT / "physionet2016"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SPECTNET_DATA)")
    return path


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    """The real PhysioNet 2016 training set in the official layout (read-only)."""
    return require(PHYSIONET)


def make_raw_dir(dest: Path, records: dict[str, list[str]]) -> Path:
    """An acquired data set (the layout `spectnet physionet fetch` writes) holding a few
    real records: ``records`` maps subset letter -> record names."""
    import pandas as pd
    src = require(PHYSIONET)
    rows = []
    for subset, names in records.items():
        (dest / f"training-{subset}").mkdir(parents=True, exist_ok=True)
        labels = pd.read_csv(src / f"training-{subset}" / "REFERENCE.csv", header=None,
                             names=["record", "label"], index_col=0)["label"]
        for name in names:
            rel = f"training-{subset}/{name}.flac"
            shutil.copyfile(src / rel, dest / rel)
            rows.append({"record": name, "subset": subset,
                         "label": int(labels[name] == 1), "audio_path": rel})
    pd.DataFrame(rows).to_csv(dest / "records.csv", index=False)
    (dest / "folds").mkdir(exist_ok=True)
    return dest
