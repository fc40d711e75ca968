"""DCASE 2016 (TUT Acoustic Scenes 2016 development set): parsing, and the verified,
resumable download against a server on 127.0.0.1 serving a generated TUT-layout fixture."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_http import LocalFileServer, file_server  # noqa: E402,F401 - fixture import
from helpers_scenes import SCENES, make_tut_development_set, zip_tut_packages  # noqa: E402

from spectnet.cli import main  # noqa: E402
from spectnet.datasets import dcase  # noqa: E402
from spectnet.errors import BadInputError, DownloadError  # noqa: E402

FAST = dict(retries=3, backoff=0.0, timeout=5.0, progress=False)


@pytest.fixture
def tut(tmp_path) -> Path:
    return make_tut_development_set(tmp_path / "tut")


def test_parse_meta_folds_and_errors(tut):
    table = dcase.read_development_set(tut)
    clips = table.clips.set_index("clip")
    assert table.name == "dcase2016" and table.issues == []
    assert table.classes == tuple(sorted(SCENES)) and table.fold_ids == [1, 2, 3, 4]
    assert len(clips) == 12 and clips.loc["c003_0_30", "label"] == "cafe/restaurant"
    assert clips.loc["a001_0_30", "path"] == "audio/a001_0_30.wav"
    for k in range(1, 5):
        listed = {line.split("\t")[0][len("audio/"):-len(".wav")] for line in
                  (tut / "evaluation_setup" / f"fold{k}_evaluate.txt").read_text().splitlines()}
        assert set(clips.index[clips[f"evaluate{k}"] == 1]) == listed
        assert set(clips.index[clips[f"train{k}"] == 1]) == set(clips.index) - listed
        assert (clips.loc[sorted(listed), "fold"] == k).all()
    errors = table.errors.sort_values("clip").reset_index(drop=True)
    assert errors.to_dict("records") == [
        {"clip": "a001_0_30", "onset_s": 0.1, "offset_s": 0.7, "label": "mobile phone"},
        {"clip": "b002_0_30", "onset_s": 0.9, "offset_s": 1.1, "label": "microphone failure"}]


def test_root_found_inside_the_extracted_folder(tut, tmp_path):
    outer = tmp_path / "copy"
    shutil.copytree(tut, outer / dcase.DATASET_DIR)
    assert dcase.find_root(outer) == outer / dcase.DATASET_DIR
    assert dcase.find_root(tmp_path) is None
    assert len(dcase.read_development_set(outer).clips) == 12


def test_inconsistent_lists_are_clip_issues(tut):
    setup = tut / "evaluation_setup"
    text = (setup / "fold1_train.txt").read_text()
    text = text.replace("audio/b002_0_30.wav\tbus", "audio/b002_0_30.wav\ttram")  # wrong label
    text += "audio/a001_0_30.wav\tbeach\n"           # also in fold1_evaluate
    text += "audio/z999_0_30.wav\tbeach\n"           # not in meta.txt
    (setup / "fold1_train.txt").write_text(text)
    (setup / "fold2_evaluate.txt").write_text((setup / "fold2_evaluate.txt").read_text()
                                              + "audio/c003_0_30.wav\tcafe/restaurant\n")
    (tut / "audio" / "b004_0_30.wav").unlink()
    with open(tut / "error.txt", "a") as f:
        f.write("audio/c004_0_30.wav\tnot-a-number\tcrackle\n")
    table = dcase.read_development_set(tut)
    reasons = {i.clip: (Path(i.where.rsplit(":", 1)[0]).name, i.reason) for i in table.issues}
    assert reasons["b002_0_30"] == ("fold1_train.txt", "labelled 'tram' here but 'bus' in meta.txt")
    assert reasons["a001_0_30"][1] == "in both fold1_train.txt and fold1_evaluate.txt"
    assert reasons["z999_0_30"] == ("fold1_train.txt", "not in meta.txt")
    assert reasons["c003_0_30"][1] == "also in fold2_evaluate.txt"
    assert reasons["b004_0_30"] == ("meta.txt", "audio file missing")
    assert reasons["c004_0_30"][0] == "error.txt" and "onset, offset" in reasons["c004_0_30"][1]
    assert set(table.clips["clip"]) == {f"{s}{i:03d}_0_30" for s in "abc" for i in range(1, 5)} - {
        "b002_0_30", "a001_0_30", "c003_0_30", "b004_0_30", "c004_0_30"}


def test_missing_metadata_is_fatal(tut):
    (tut / "evaluation_setup" / "fold3_evaluate.txt").unlink()
    with pytest.raises(BadInputError, match="incomplete evaluation setup") as err:
        dcase.read_development_set(tut)
    assert "fold3_evaluate.txt: fold list missing" in str(err.value)
    (tut / "meta.txt").unlink()
    with pytest.raises(BadInputError, match="not a TUT Acoustic Scenes 2016 development set"):
        dcase.read_development_set(tut)


def test_pinned_packages_match_dcase_util():
    names = [p.filename for p in dcase.PACKAGES]
    assert names == [f"{dcase.DATASET_DIR}.{part}.zip" for part in
                     ("doc", "meta", "error", *(f"audio.{i}" for i in range(1, 9)))]
    assert all(len(p.md5) == 32 and int(p.md5, 16) for p in dcase.PACKAGES)
    assert dcase.package_url(dcase.BASE_URL, names[3]) == (
        "https://zenodo.org/records/45739/files/"
        "TUT-acoustic-scenes-2016-development.audio.1.zip?download=1")
    assert dcase.package_url("/data/zips/", names[0]).endswith("/data/zips/" + names[0])


@pytest.fixture
def served(file_server: LocalFileServer, tut) -> tuple[LocalFileServer, tuple]:
    return file_server, zip_tut_packages(tut, file_server.root)


def test_download_extract_and_parse(served, tmp_path):
    srv, packages = served
    root = dcase.download_development_set(srv.base_url, tmp_path / "cache", packages=packages,
                                          **FAST)
    assert root == tmp_path / "cache" / dcase.DATASET_DIR
    assert len(dcase.read_development_set(root).clips) == 12
    assert sorted(p.name for p in (root / "audio").iterdir())[0] == "a001_0_30.wav"
    # a second run verifies the cached zips, fetches nothing and does not re-extract
    before = len(srv.requests)
    marker = tmp_path / "cache" / "parts" / packages[3].filename / ".spectnet-extracted"
    stamp = marker.stat().st_mtime_ns
    dcase.download_development_set(srv.base_url, tmp_path / "cache", packages=packages, **FAST)
    assert len(srv.requests) == before and marker.stat().st_mtime_ns == stamp


def test_interrupted_transfer_resumes(served, tmp_path):
    srv, packages = served
    path = "/" + packages[3].filename
    srv.cut_plan[path] = [50_000, 70_000]
    dcase.download_development_set(srv.base_url, tmp_path / "cache", packages=packages, **FAST)
    ranges = [h.get("Range") for h in srv.requests_for(path)]
    assert ranges == [None, "bytes=50000-", "bytes=120000-"]
    assert len(dcase.read_development_set(tmp_path / "cache" / dcase.DATASET_DIR).clips) == 12


def test_corrupted_part_is_refused_named_and_removed(served, tmp_path):
    srv, packages = served
    bad = srv.root / packages[4].filename
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:1000] + bytes([good_bytes[1000] ^ 0xFF]) + good_bytes[1001:])
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        dcase.download_development_set(srv.base_url, cache, packages=packages, **FAST)
    message = str(err.value)
    assert "1 of 5 DCASE 2016 packages" in message
    assert f"{packages[4].filename}: MD5 mismatch" in message and packages[4].md5 in message
    assert not (cache / packages[4].filename).exists()
    assert not (cache / (packages[4].filename + ".part")).exists()
    assert all((cache / p.filename).is_file() for p in packages[:4])  # verified ones kept
    assert not (cache / dcase.DATASET_DIR).exists()
    bad.write_bytes(good_bytes)  # the mirror is repaired: only the refused part is fetched
    before = len(srv.requests)
    dcase.download_development_set(srv.base_url, cache, packages=packages, **FAST)
    assert [p for p, _ in srv.requests[before:]] == ["/" + packages[4].filename]


def test_fetch_step_downloads_dcase(served, tmp_path, monkeypatch, capsys):
    srv, packages = served
    monkeypatch.setattr(dcase, "PACKAGES", packages)
    params = json.dumps({"scenes": {"dataset": "dcase2016", "data": {"dcase2016": {
        "source": "auto", "local_path": str(tmp_path / "absent"), "url": srv.base_url}}}})
    out = tmp_path / "raw"
    assert main(["scenes", "fetch", "--out", str(out), "--params", params, "-q",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    clips = pd.read_csv(out / "clips.csv")
    assert len(clips) == 12 and (out / "audio" / "a001_0_30.wav").is_file()
    assert json.loads((out / "classes.json").read_text()) == sorted(SCENES)
    info = json.loads((out / "dataset.json").read_text())
    assert info["dataset"] == "dcase2016" and info["folds"] == [1, 2, 3, 4]
    assert len(pd.read_csv(out / "errors.csv")) == 2
