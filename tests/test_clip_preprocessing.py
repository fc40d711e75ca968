"""Clips -> fixed-length units (the scene unit store) on real ESC-10 clips and a generated
stereo TUT-layout set: shapes, rates, mono mix, segments, error overlap, bad clips,
determinism across worker counts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio.functional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DATA_ROOT, require  # noqa: E402
from helpers_scenes import make_tut_development_set, write_tone  # noqa: E402

from spectnet.cli import main  # noqa: E402
from spectnet.config import ScenesConfig  # noqa: E402
from spectnet.datasets.clips import read_esc10, write_clip_dataset  # noqa: E402
from spectnet.datasets.dcase import read_development_set  # noqa: E402
from spectnet.errors import BadInputError  # noqa: E402
from spectnet.datasets.examples import ExampleStore  # noqa: E402
from spectnet.preprocessing.clips import preprocess_clips  # noqa: E402

RATE = 22050


def expected_mono(path: Path, rate: int = RATE) -> np.ndarray:
    """The reference: decode, mean of channels, torchaudio's default resampler."""
    x, raw_rate = sf.read(str(path), dtype="float64", always_2d=True)
    return torchaudio.functional.resample(torch.from_numpy(x.mean(axis=1)), raw_rate, rate).numpy()


@pytest.fixture(scope="module")
def esc10_raw(tmp_path_factory) -> Path:
    """An acquired ESC-10 subset: the first clip of every class and fold, plus the
    shortest (3.64 s) and the longest (7.24 s) clip of the staged set."""
    src = require(DATA_ROOT / "esc10")
    durations = {p: sf.info(str(p)).duration for p in src.glob("*/*.ogg")}
    picked = {sorted(d.glob(f"{fold}-*.ogg"))[0] for d in src.glob("0* - *") for fold in "1234"}
    picked |= {min(durations, key=durations.get), max(durations, key=durations.get)}
    root = tmp_path_factory.mktemp("esc10-subset")
    for path in picked:
        (root / "copy" / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / "copy" / path.parent.name / path.name)
    return write_clip_dataset(read_esc10(root / "copy"), root / "raw")


@pytest.fixture(scope="module")
def esc10_units(esc10_raw, tmp_path_factory) -> dict[int, Path]:
    """The unit store built with 1 and with 2 workers."""
    out = tmp_path_factory.mktemp("units")
    for workers in (1, 2):
        preprocess_clips(esc10_raw, out / str(workers), ScenesConfig(), workers=workers,
                         progress=False)
    return {w: out / str(w) for w in (1, 2)}


def test_esc10_units(esc10_raw, esc10_units):
    ds = ExampleStore(esc10_units[2])
    n = len(ds.group_table)
    assert n == 42 and ds.waveforms.shape == (42, 5 * RATE) and ds.waveforms.dtype == np.float32
    assert ds.sample_rate == RATE and ds.info["unit"] == {"mode": "clip", "length_s": 5.0,
                                                          "samples": 110250}
    assert ds.info["dataset"] == "esc10" and ds.info["units"] == 42
    assert list(ds.index.columns) == [
        "clip", "unit", "label", "class", "fold", "train1", "train2", "train3", "train4",
        "evaluate1", "evaluate2", "evaluate3", "evaluate4", "start_s", "pad_s", "error_s"]
    assert (ds.index["label"] == ds.index["class"].map(ds.classes.index)).all()
    assert ds.classes[0] == "Dog bark" and len(ds.classes) == 10
    assert (ds.index["unit"] == 0).all() and (ds.index["error_s"] == 0).all()
    assert (ds.index["clip"] == ds.group_table["clip"]).all()
    assert (ds.group_table["status"] == "ok").all() and (ds.group_table["sample_rate_raw"] == 44100).all()
    assert (ds.group_table["channels"] == 1).all() and (ds.group_table["first_unit"] == np.arange(n)).all()
    clips = ds.group_table.set_index("clip")
    short, long = clips["duration_raw_s"].idxmin(), clips["duration_raw_s"].idxmax()
    for clip in (ds.group_table["clip"].iloc[0], short, long):
        row = int(clips.loc[clip, "first_unit"])
        mono = expected_mono(esc10_raw / clips.loc[clip, "path"])
        want = np.zeros(5 * RATE)
        want[: min(mono.size, want.size)] = mono[: want.size]
        np.testing.assert_allclose(ds.waveforms[row], want, atol=1e-6)
    index = ds.index.set_index("clip")
    assert index.loc[short, "pad_s"] == pytest.approx(5 - clips.loc[short, "duration_raw_s"], abs=1e-3)
    assert 3.6 < clips.loc[short, "duration_raw_s"] < 3.7 and clips.loc[short, "dropped_s"] == 0
    assert clips.loc[long, "dropped_s"] == pytest.approx(clips.loc[long, "duration_raw_s"] - 5,
                                                         abs=1e-3)


def test_same_store_whatever_the_worker_count(esc10_units):
    one, two = esc10_units[1], esc10_units[2]
    for name in ("units.npy", "units.csv", "clips.csv", "classes.json", "dataset.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def add_bad_clips(raw: Path, dest: Path) -> Path:
    """A copy of an acquired set with three bad clips appended to clips.csv."""
    shutil.copytree(raw, dest)
    folder = dest / "001 - Dog bark"
    (folder / "9-1-A.ogg").write_bytes(np.random.default_rng(0).bytes(5000))  # not Ogg
    sf.write(folder / "9-2-A.wav", np.full(44100, np.nan), 44100, subtype="FLOAT")
    write_tone(folder / "9-3-A.wav", 0.5)
    clips = pd.read_csv(dest / "clips.csv", dtype={"clip": str})
    template = clips.iloc[0].to_dict()
    extra = [{**template, "clip": f"9-{i}-A", "path": f"001 - Dog bark/{name}"}
             for i, name in ((1, "9-1-A.ogg"), (2, "9-2-A.wav"), (3, "9-3-A.wav"))]
    pd.concat([clips, pd.DataFrame(extra)]).to_csv(dest / "clips.csv", index=False)
    return dest


def test_bad_clips_are_named_in_one_report(esc10_raw, tmp_path, capsys):
    raw = add_bad_clips(esc10_raw, tmp_path / "raw")
    out = tmp_path / "units"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier store")
    assert main(["scenes", "preprocess", "--raw", str(raw), "--out", str(out), "-q",
                 "--workers", "2", "--params", "{}"]) == 1
    err = capsys.readouterr().err
    assert "bad clips (set scenes.on_bad_clip: skip to leave them out) (3 problems)" in err
    assert "9-1-A.ogg: 9-1-A: cannot decode audio" in err
    assert "9-2-A.wav: 9-2-A: 44100 NaN or infinite samples" in err
    assert "9-3-A.wav: 9-3-A: too short: 0.500 s < scenes.min_clip_s (1.0 s)" in err
    assert "Traceback" not in err and sorted(p.name for p in out.iterdir()) == ["previous.txt"]

    params = json.dumps({"scenes": {"on_bad_clip": "skip"}})
    assert main(["scenes", "preprocess", "--raw", str(raw), "--out", str(out), "-q",
                 "--workers", "2", "--params", params]) == 0
    ds = ExampleStore(out)
    failed = ds.group_table[ds.group_table["status"] == "failed"]
    assert failed["clip"].tolist() == ["9-1-A", "9-2-A", "9-3-A"]
    assert (failed["n_units"] == 0).all() and failed["reason"].str.len().gt(0).all()
    assert len(ds) == 42 and set(ds.index["clip"]) == set(ds.group_table["clip"]) - set(failed["clip"])

    only_bad = tmp_path / "only-bad"
    shutil.copytree(raw, only_bad)
    listed = pd.read_csv(only_bad / "clips.csv", dtype={"clip": str})
    listed[listed["clip"].str.startswith("9-")].to_csv(only_bad / "clips.csv", index=False)
    assert main(["scenes", "preprocess", "--raw", str(only_bad), "--out", str(out), "-q",
                 "--workers", "1", "--params", params]) == 1
    assert "no usable clip (3 problems)" in capsys.readouterr().err
    assert len(ExampleStore(out)) == 42  # the previous store is untouched


def test_stereo_segments_and_error_overlap(tmp_path):
    tut = make_tut_development_set(tmp_path / "tut")
    raw = write_clip_dataset(read_development_set(tut), tmp_path / "raw")
    config = ScenesConfig.from_dict({"units": {"dcase2016": {"mode": "segment", "length_s": 0.5}}})
    preprocess_clips(raw, tmp_path / "units", config, workers=2, progress=False)
    ds = ExampleStore(tmp_path / "units")
    assert ds.waveforms.shape == (24, 11025) and ds.info["dataset"] == "dcase2016"
    assert (ds.group_table["channels"] == 2).all() and (ds.group_table["n_units"] == 2).all()
    assert ds.group_table["dropped_s"].to_numpy() == pytest.approx(0.2, abs=1e-4)
    index = ds.index.set_index(["clip", "unit"])
    assert index["start_s"].xs(1, level="unit").eq(0.5).all() and (index["pad_s"] == 0).all()
    assert index.loc[("a001_0_30", 0), "error_s"] == pytest.approx(0.4)
    assert index.loc[("a001_0_30", 1), "error_s"] == pytest.approx(0.2)
    assert index.loc[("b002_0_30", 0), "error_s"] == 0
    assert index.loc[("b002_0_30", 1), "error_s"] == pytest.approx(0.1)
    assert index["error_s"].sum() == pytest.approx(0.7)
    mono = expected_mono(tut / "audio" / "c004_0_30.wav")
    row = int(ds.group_table.set_index("clip").loc["c004_0_30", "first_unit"])
    np.testing.assert_allclose(ds.waveforms[row: row + 2].ravel(), mono[:22050], atol=1e-6)
    assert ds.index.loc[row, "class"] == "cafe/restaurant"
    assert (ds.index.groupby("clip")[[f"evaluate{k}" for k in range(1, 5)]].sum().sum(axis=1)
            == 2).all()  # each clip's two units sit in exactly one evaluation fold

    too_long = ScenesConfig.from_dict({"units": {"dcase2016": {"mode": "segment", "length_s": 1.5}}})
    with pytest.raises(BadInputError, match="12 problems") as err:
        preprocess_clips(raw, tmp_path / "none", too_long, workers=1, progress=False)
    assert "too short: 1.200 s, shorter than one 1.5 s unit" in str(err.value)
    assert not (tmp_path / "none").exists()
