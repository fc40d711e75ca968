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


def pytest_collection_modifyitems(items):
    """The order in which `make test`'s two workers take whole files (pytest-xdist,
    --dist loadfile --no-loadscope-reorder): the files with more slow tests first, so that
    the workflow file, which builds the shared `origin`, starts at once; the files that
    only use that origin (``pytestmark = pytest.mark.after_origin``) last, by when it is
    built, so no worker waits for it idle."""
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: (item.get_closest_marker("after_origin") is not None,
                                 -slow[item.path]))


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SPECTNET_DATA)")
    return path


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    """The real PhysioNet 2016 training set in the official layout (read-only)."""
    return require(PHYSIONET)


@pytest.fixture(scope="session")
def esc10_dir() -> Path:
    """The real ESC-10 clips, one folder per class (read-only)."""
    return require(DATA_ROOT / "esc10")


@pytest.fixture(scope="session")
def origin(tmp_path_factory, physionet_dir, esc10_dir) -> Path:
    """The workflow tests' user repository: the whole DAG built at the smoke scale on small
    real subsets, pushed to a local-directory DVC remote, committed
    (:func:`helpers_workflow.build_origin`). Built once per test run: under pytest-xdist
    the first worker to need it builds it under a file lock in the run's shared temporary
    folder, and the others use it (tests only clone and pull it)."""
    from filelock import FileLock

    from helpers_workflow import build_origin
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build_origin(tmp_path_factory.mktemp("workflow"), physionet_dir, esc10_dir)
    shared = tmp_path_factory.getbasetemp().parent / "workflow"
    with FileLock(f"{shared}.lock"):
        if not (shared / "built").exists():
            shutil.rmtree(shared, ignore_errors=True)     # a build that failed part-way
            shared.mkdir()
            build_origin(shared, physionet_dir, esc10_dir)
            (shared / "built").touch()
    return shared / "origin"


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


def _first_records(subset_dir: Path, label: int, n: int, skip: set[str]) -> list[str]:
    import pandas as pd
    ref = pd.read_csv(subset_dir / "REFERENCE.csv", header=None, names=["record", "label"])
    names = ref.loc[(ref["label"] == label) & ~ref["record"].isin(skip), "record"]
    return sorted(names)[:n]


@pytest.fixture(scope="session")
def small_beats_dir(tmp_path_factory) -> Path:
    """A real beat dataset, small enough for training tests: for every subset a-f, the
    first three abnormal and three normal recordings (fewer where a subset has fewer),
    preprocessed and segmented by the project's own steps; per subset and class, one
    recording goes to validation0 and the rest to train0, so all 12 (class x subset)
    cells of the double-balanced sampler are present in both."""
    from spectnet.config import BeatsConfig, PreprocessConfig, SegmentationConfig
    from spectnet.segmentation.beats import build_beat_dataset
    from spectnet.preprocessing.heart_sounds import preprocess_dataset

    src = require(PHYSIONET)
    excluded = set((src / "folds" / "excluded-training-e.txt").read_text().split())
    root = tmp_path_factory.mktemp("small-beats")
    chosen, validation = {}, []
    for subset in "abcdef":
        names = []
        for label in (1, -1):
            picked = _first_records(src / f"training-{subset}", label, 3, excluded)
            names += picked
            validation.append(picked[0])
        chosen[subset] = names
    raw = make_raw_dir(root / "raw", chosen)
    all_names = [n for names in chosen.values() for n in names]
    (raw / "folds" / "validation0.txt").write_text("\n".join(validation) + "\n")
    (raw / "folds" / "train0.txt").write_text(
        "\n".join(n for n in all_names if n not in validation) + "\n")
    preprocess_dataset(raw, root / "store", PreprocessConfig(), workers=2, progress=False)
    build_beat_dataset(root / "store", root / "beats", SegmentationConfig(), BeatsConfig(),
                       workers=2, progress=False)
    return root / "beats"


@pytest.fixture(scope="session")
def tiny_heart_model(small_beats_dir, tmp_path_factory) -> Path:
    """A static-4 model trained for a few steps on the small real beat set (its
    predictions are poor; tests use it for plumbing, not accuracy)."""
    from spectnet.config import Params
    from spectnet.experiments.heart_sounds import HeartSounds
    from spectnet.params import validate_params

    budget = {"epochs": 1, "batch_size": 24, "steps_per_epoch": 2}
    params = Params.from_dict(validate_params(
        {"scale": "smoke", "scales": {"smoke": {"heart_sounds": {"static": budget}}}},
        partial=True))
    out = tmp_path_factory.mktemp("tiny-model") / "static-4"
    HeartSounds(params, small_beats_dir).train("static-4", 0, 1, out, device="cpu",
                                               progress=False)
    return out / "best.pt"
