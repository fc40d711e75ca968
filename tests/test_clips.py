"""The labelled-clip adapter: ESC-10 (real), ESC-50, class folders and CSV layouts, the
materialised layout, and the scene fetch step's data set choice."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DATA_ROOT, require  # noqa: E402
from helpers_scenes import make_tut_development_set, write_tone  # noqa: E402

from spectnet.cli import main  # noqa: E402
from spectnet.config import ScenesConfig  # noqa: E402
from spectnet.datasets.clips import (read_class_folders, read_clip_csv, read_clip_dataset,  # noqa: E402
                                     read_esc10, read_esc50, stratified_folds,
                                     write_clip_dataset)
from spectnet.datasets.scenes import acquire, choose_dataset  # noqa: E402
from spectnet.errors import BadInputError, SpectNetError  # noqa: E402

ESC10_CLASSES = ("Dog bark", "Rain", "Sea waves", "Baby cry", "Clock tick", "Person sneeze",
                 "Helicopter", "Chainsaw", "Rooster", "Fire crackling")


@pytest.fixture(scope="module")
def esc10_dir() -> Path:
    return require(DATA_ROOT / "esc10")


def scenes_config(**data) -> ScenesConfig:
    return ScenesConfig.from_dict({"data": data})


def assert_folds_partition(clips: pd.DataFrame, fold_ids):
    for k in fold_ids:
        assert ((clips[f"evaluate{k}"] == 1) == (clips["fold"] == k)).all()
        assert (clips[f"train{k}"] + clips[f"evaluate{k}"] == 1).all()


def test_esc10_original_layout(esc10_dir):
    table = read_esc10(esc10_dir)
    clips = table.clips
    assert table.classes == ESC10_CLASSES and table.fold_ids == [1, 2, 3, 4]
    assert len(clips) == 320 and clips["clip"].is_unique and table.issues == []
    assert (clips.groupby(["label", "fold"]).size() == 8).all()
    assert_folds_partition(clips, [1, 2, 3, 4])
    # the staged copy's own list agrees on every clip's class and fold
    kept = pd.read_csv(esc10_dir / "esc10_kept.csv")
    merged = clips.merge(kept, on="path", suffixes=("", "_kept"))
    assert len(merged) == 320
    assert (merged["label"] == merged["class_name"]).all()
    assert (merged["fold"] == merged["fold_kept"]).all()


def test_esc10_copy_with_problems(esc10_dir, tmp_path):
    root = tmp_path / "esc10"
    for name in ESC10_CLASSES[:2]:
        shutil.copytree(next(esc10_dir.glob(f"* - {name}")), root / f"00{ESC10_CLASSES.index(name) + 1} - {name}")
    rain = root / "002 - Rain"
    (rain / "not-an-esc-name.ogg").write_bytes(b"x")
    (rain / "3-999999-Z.ogg").write_bytes(b"")
    (rain / "notes.txt").write_text("ignored")
    table = read_esc10(root)
    assert table.classes == ("Dog bark", "Rain") and len(table.clips) == 64
    assert sorted((i.clip, i.reason) for i in table.issues) == [
        ("3-999999-Z", "empty audio file"),
        ("not-an-esc-name", "file name is not 'fold-FreesoundID-take'")]
    with pytest.raises(BadInputError, match="original layout"):
        read_esc10(tmp_path)


def make_esc50(root: Path) -> Path:
    rows = []
    for target, (category, esc10) in enumerate([("dog", True), ("rooster", False), ("rain", True)]):
        for fold in range(1, 6):
            name = f"{fold}-{1000 + target}-A-{target}.wav"
            write_tone(root / "audio" / name, 0.2, seed=target)
            rows.append((name, fold, target, category, esc10, 1000 + target, "A"))
    (root / "meta").mkdir()
    pd.DataFrame(rows, columns=["filename", "fold", "target", "category", "esc10", "src_file",
                                "take"]).sample(frac=1, random_state=0).to_csv(
        root / "meta" / "esc50.csv", index=False)
    return root


def test_esc50_official_layout(tmp_path):
    root = make_esc50(tmp_path / "ESC-50")
    table = read_esc50(root)
    assert table.classes == ("dog", "rooster", "rain") and table.fold_ids == [1, 2, 3, 4, 5]
    assert len(table.clips) == 15 and table.clips["path"].str.startswith("audio/").all()
    assert_folds_partition(table.clips, range(1, 6))
    subset = read_esc50(root, "esc10")
    assert subset.classes == ("dog", "rain") and len(subset.clips) == 10
    meta = pd.read_csv(root / "meta" / "esc50.csv")
    meta.loc[0, "category"] = "cat"
    meta.to_csv(root / "meta" / "esc50.csv", index=False)
    with pytest.raises(BadInputError, match="names several categories"):
        read_esc50(root)


def test_class_folders_get_deterministic_stratified_folds(tmp_path):
    root = tmp_path / "mine"
    for c, name in enumerate(("alarm", "birds", "cars")):
        for i in range(7 + c):
            write_tone(root / name / ("deep" if i == 0 else "") / f"rec{i}.flac", 0.2, seed=i)
    (root / "alarm" / "README.txt").write_text("not audio")
    (root / ".cache").mkdir()
    table = read_class_folders(root, n_folds=3, seed=7)
    clips = table.clips
    assert table.classes == ("alarm", "birds", "cars") and len(clips) == 24
    assert "alarm/deep/rec0" in set(clips["clip"])
    assert_folds_partition(clips, [1, 2, 3])
    per_class = clips.groupby(["label", "fold"]).size().unstack()
    assert (per_class.max(axis=1) - per_class.min(axis=1) <= 1).all()
    assert clips["fold"].value_counts().tolist() == [8, 8, 8]
    again = read_class_folders(root, n_folds=3, seed=7).clips
    assert again.equals(clips)
    assert not read_class_folders(root, n_folds=3, seed=8).clips["fold"].equals(clips["fold"])


def test_stratified_folds_balance():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 6
    folds = stratified_folds(labels, 4, seed=0)
    assert sorted(set(folds)) == [1, 2, 3, 4]
    assert np.bincount(folds)[1:].tolist() in ([5, 5, 5, 4], [5, 5, 4, 5], [5, 4, 5, 5], [4, 5, 5, 5])
    with pytest.raises(ValueError, match="n_folds"):
        stratified_folds(labels, 1, seed=0)


def test_metadata_csv(tmp_path):
    audio = tmp_path / "sounds"
    for i in range(6):
        write_tone(audio / f"s{i}.wav", 0.2, seed=i)
    lines = ["file,label,fold", "s0.wav,yes,1", "s1.wav,no,1", "s2.wav,yes,2", "s3.wav,no,2",
             "s4.wav,,1", "s5.wav,no,zero", "missing.wav,no,2", "../s0.wav,no,2", "s0.wav,no,2"]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    table = read_clip_csv(tmp_path / "list.csv", audio_root=audio)
    assert table.classes == ("no", "yes") and table.fold_ids == [1, 2]
    assert table.clips[["clip", "label", "fold"]].values.tolist() == [
        ["s0", "yes", 1], ["s1", "no", 1], ["s2", "yes", 2], ["s3", "no", 2]]
    issues = {i.where.rsplit(":", 1)[1]: i.reason for i in table.issues}
    assert issues == {"6": "empty label", "7": "fold 'zero' is not an integer >= 1",
                      "8": "audio file missing",
                      "9": "audio path must be relative to the data set root, without '..'",
                      "10": f"clip id 's0' also used by {tmp_path / 'list.csv'}:2"}
    # without a fold column: stratified folds; paths relative to the CSV's folder
    (audio / "plain.csv").write_text("file,label\n" + "".join(
        f"s{i}.wav,{'yes' if i % 2 else 'no'}\n" for i in range(6)))
    plain = read_clip_csv(audio / "plain.csv", n_folds=3, seed=1)
    assert plain.fold_ids == [1, 2, 3] and plain.issues == []
    with pytest.raises(BadInputError, match="no column 'label'"):
        (tmp_path / "bad.csv").write_text("file,class\ns0.wav,yes\n")
        read_clip_csv(tmp_path / "bad.csv")


def test_materialised_layout_round_trips(esc10_dir, tmp_path):
    table = read_esc10(esc10_dir)
    dest = write_clip_dataset(table, tmp_path / "raw", description={"reason": "test"})
    again, info = read_clip_dataset(dest)
    assert again.clips.equals(table.clips) and again.classes == table.classes
    assert info["dataset"] == "esc10" and info["reason"] == "test" and info["clips"] == 320
    first = dest / table.clips.loc[0, "path"]
    assert first.read_bytes() == (esc10_dir / table.clips.loc[0, "path"]).read_bytes()
    write_clip_dataset(table, dest)  # an earlier acquisition is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(SpectNetError, match="refusing to replace"):
        write_clip_dataset(table, tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    with pytest.raises(SpectNetError, match="must not be, contain or lie inside"):
        write_clip_dataset(table, esc10_dir / "raw")


def test_auto_chooses_dcase_when_present_else_esc10(esc10_dir, tmp_path):
    config = scenes_config(esc10={"local_path": str(esc10_dir)},
                           dcase2016={"local_path": str(tmp_path / "tut")})
    choice = choose_dataset(config)
    assert choice.dataset == "esc10" and "no DCASE 2016 development set" in choice.reason
    make_tut_development_set(tmp_path / "tut")
    choice = choose_dataset(config)
    assert choice.dataset == "dcase2016" and str(tmp_path / "tut") in choice.reason
    acquire(config, tmp_path / "raw", cache_dir=tmp_path / "cache")
    info = json.loads((tmp_path / "raw" / "dataset.json").read_text())
    assert info["dataset"] == "dcase2016" and info["requested"] == "auto"
    assert info["settings"] == {"source": "auto", "local_path": str(tmp_path / "tut"),
                                "url": "https://zenodo.org/records/45739/files/"}
    assert info["clips"] == 12 and not (tmp_path / "cache").exists()  # local: no download


def test_fetch_step_bad_clips_fail_or_skip(esc10_dir, tmp_path, capsys):
    root = tmp_path / "esc10"
    shutil.copytree(esc10_dir / "001 - Dog bark", root / "001 - Dog bark")
    (root / "001 - Dog bark" / "1-1-A.ogg").write_bytes(b"")
    (root / "001 - Dog bark" / "bad name.ogg").write_bytes(b"x")
    params = {"scenes": {"dataset": "esc10", "data": {"esc10": {"local_path": str(root)}}}}
    out = tmp_path / "raw"
    assert main(["scenes", "fetch", "--out", str(out), "--params", json.dumps(params)]) == 1
    err = capsys.readouterr().err
    assert "bad clips (set scenes.on_bad_clip: skip" in err and "1-1-A: empty audio file" in err
    assert "bad name: file name is not" in err and "Traceback" not in err
    assert not out.exists()
    params["scenes"]["on_bad_clip"] = "skip"
    assert main(["scenes", "fetch", "--out", str(out), "--params", json.dumps(params)]) == 0
    report = pd.read_csv(out / "acquire_report.csv")
    assert sorted(report["clip"]) == ["1-1-A", "bad name"]
    assert len(pd.read_csv(out / "clips.csv")) == 32
