"""Tests of spectnet.datasets.physionet: local and downloaded acquisition, fold lists.

Uses the real local copy (conftest.PHYSIONET: ../shared/data/physionet2016 beside the clone,
or $SPECTNET_DATA/physionet2016); tests that need it are skipped when it is absent. The
shared copy is never written to: trees that get modified are real copies, not hard links.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_http import LocalFileServer, file_server  # noqa: E402,F401 - fixture import

from spectnet.datasets.download import ChecksumError, sha256sum  # noqa: E402
from spectnet.errors import BadInputError, SpectNetError  # noqa: E402
from spectnet.datasets.folds import (  # noqa: E402
    FOLD_NAMES,
    FOLD_URLS,
    derive_fold0_from_validation_records,
    read_record_list,
    validate_folds,
)
from spectnet.datasets.physionet import (  # noqa: E402
    LABEL_MAP,
    RECORDS_CSV_COLUMNS,
    acquire_download,
    acquire_folds,
    acquire_local,
    read_records_csv,
    scan_layout,
)

from conftest import PHYSIONET as DATA  # noqa: E402
needs_data = pytest.mark.skipif(not (DATA / "training-a" / "REFERENCE.csv").is_file(),
                                reason=f"local PhysioNet 2016 copy not found at {DATA}")

#: records picked for the small fake layouts: 3 of training-a, 2 of training-b, 1 of each other
PICK = {"a": ["a0001", "a0002", "a0117"], "b": ["b0001", "b0002"], "c": ["c0001"],
        "d": ["d0001"], "e": ["e00001"], "f": ["f0001"]}
FAST = dict(retries=3, backoff=0.0, timeout=5.0, progress=False)


def _reference(subset: str) -> dict[str, int]:
    rows = (DATA / f"training-{subset}" / "REFERENCE.csv").read_text().split()
    return {r.split(",")[0]: int(r.split(",")[1]) for r in rows}


def _audio(subset: str, rec: str) -> Path:
    return next((DATA / f"training-{subset}").glob(f"{rec}.*"))


def _small_copy(dest: Path) -> dict[str, int]:
    """Copy (never link) the PICK records with their REFERENCE rows; return {record: raw label}."""
    labels = {}
    for s, recs in PICK.items():
        sd = dest / f"training-{s}"
        sd.mkdir(parents=True)
        ref = _reference(s)
        for r in recs:
            shutil.copyfile(_audio(s, r), sd / _audio(s, r).name)
            labels[r] = ref[r]
        (sd / "REFERENCE.csv").write_text("".join(f"{r},{ref[r]}\n" for r in recs))
    return labels


def _records_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# local acquisition


@needs_data
def test_acquire_local_full_copy(tmp_path):
    dest = tmp_path / "physionet2016"
    res = acquire_local(DATA, dest)
    assert len(res.records) == 3240 and res.n_abnormal == 665 and res.skipped == []
    rows = _records_csv(dest / "records.csv")
    assert tuple(rows[0]) == RECORDS_CSV_COLUMNS
    assert len(rows) == 3240 and sum(int(r["label"]) for r in rows) == 665
    counts = {s: sum(r["subset"] == s for r in rows) for s in "abcdef"}
    assert counts == {"a": 409, "b": 490, "c": 31, "d": 55, "e": 2141, "f": 114}
    with open(DATA / "MANIFEST.csv", newline="") as f:
        manifest = {m["record"]: m for m in csv.DictReader(f)}
    for r in rows:
        m = manifest[r["record"]]
        assert int(r["label"]) == LABEL_MAP[int(m["label"])]
        assert int(r["size_bytes"]) == int(m["flac_bytes"]) == (dest / r["audio_path"]).stat().st_size
    # REFERENCE.csv rewritten with the official -1/1 values, same content as the source
    for s in "abcdef":
        assert _reference(s) == {
            k: int(v) for k, v in (l.split(",") for l in (dest / f"training-{s}/REFERENCE.csv").read_text().split())
        }
    first = dest / rows[0]["audio_path"]
    if res.linked:  # hard links when the filesystem allows it
        assert first.stat().st_ino == (DATA / rows[0]["audio_path"]).stat().st_ino
    assert (dest / "acquire_report.csv").read_text() == "where,record,reason,action\n"
    assert [p.name for p in tmp_path.iterdir()] == ["physionet2016"]  # no temp dirs left
    # re-running replaces the previous acquisition as a whole
    (dest / "stale").write_text("x")
    acquire_local(DATA, dest)
    assert not (dest / "stale").exists()
    assert read_records_csv(dest / "records.csv") == sorted(res.records, key=lambda r: (r.subset, r.record))


@needs_data
def test_acquire_local_without_links_copies(tmp_path):
    src = tmp_path / "src"
    _small_copy(src)
    res = acquire_local(src, tmp_path / "dest", link=False)
    assert res.copied == 9 and res.linked == 0
    assert (tmp_path / "dest" / "training-a" / "a0001.flac").stat().st_ino != (src / "training-a" / "a0001.flac").stat().st_ino


@needs_data
def test_injected_problems_all_reported(tmp_path):
    src = tmp_path / "src"
    _small_copy(src)
    (src / "training-a" / "a0002.flac").unlink()                                   # row without audio
    shutil.copyfile(src / "training-b" / "b0001.flac", src / "training-b" / "b0999.flac")  # audio without row
    ref_c = src / "training-c" / "REFERENCE.csv"
    ref_c.write_text(ref_c.read_text().replace(",1\n", ",0\n").replace(",-1\n", ",0\n"))  # bad label value
    (src / "training-f" / "f0001.hea").write_text("header")  # extra non-audio files are tolerated
    (src / "training-f" / "RECORDS").write_text("f0001\n")

    with pytest.raises(BadInputError) as ei:
        acquire_local(src, tmp_path / "dest")
    err = ei.value
    assert len(err.problems) == 3, str(err)
    text = str(err)
    assert "a0002" in text and "no audio file" in text and str(src / "training-a" / "REFERENCE.csv") in text
    assert str(src / "training-b" / "b0999.flac") in text and "no row" in text
    assert "unknown label value '0'" in text and "c0001" in text
    assert not (tmp_path / "dest").exists()

    res = acquire_local(src, tmp_path / "dest", on_bad_record="skip")
    kept = {r["record"] for r in _records_csv(tmp_path / "dest" / "records.csv")}
    assert kept == {"a0001", "a0117", "b0001", "b0002", "d0001", "e00001", "f0001"}
    report = _records_csv(tmp_path / "dest" / "acquire_report.csv")
    assert sorted(r["record"] for r in report) == ["a0002", "b0999", "c0001"]
    assert all(r["reason"] and r["action"] == "excluded record" for r in report)
    assert len(res.skipped) == 3
    assert (tmp_path / "dest" / "training-c" / "REFERENCE.csv").read_text() == ""
    assert not (tmp_path / "dest" / "training-b" / "b0999.flac").exists()


@needs_data
def test_row_level_problems(tmp_path):
    src = tmp_path / "src"
    labels = _small_copy(src)
    ref_a = src / "training-a" / "REFERENCE.csv"
    ref_a.write_text(ref_a.read_text() + "a0001,{}\nthis is not a row\n\n".format(-labels["a0001"]))
    ref_b = src / "training-b" / "REFERENCE.csv"
    ref_b.write_text(ref_b.read_text() + f"b0001,{labels['b0001']}\n")  # identical duplicate: note only
    scan = scan_layout(src)
    reasons = [i.reason for i in scan.issues]
    assert any("conflicting duplicate row for record a0001" in r for r in reasons)
    assert any("unreadable row" in r for r in reasons)
    assert any("duplicate row for record b0001" in r for r in reasons)
    kept = {r.record for r in scan.records}
    assert "a0001" not in kept and "b0001" in kept and len(kept) == 8
    with pytest.raises(BadInputError) as ei:
        acquire_local(src, tmp_path / "d")
    assert len(ei.value.problems) == 3


@needs_data
def test_layout_problems_are_fatal_even_with_skip(tmp_path):
    src = tmp_path / "src"
    _small_copy(src)
    shutil.rmtree(src / "training-d")
    (src / "training-e" / "REFERENCE.csv").unlink()
    with pytest.raises(BadInputError) as ei:
        acquire_local(src, tmp_path / "dest", on_bad_record="skip")
    wheres = [w for w, _ in ei.value.problems]
    assert str(src / "training-d") in wheres and str(src / "training-e" / "REFERENCE.csv") in wheres
    with pytest.raises(BadInputError, match="does not exist"):
        acquire_local(tmp_path / "nowhere", tmp_path / "dest")


@needs_data
def test_destination_safety(tmp_path):
    src = tmp_path / "src"
    _small_copy(src)
    with pytest.raises(SpectNetError, match="must not"):
        acquire_local(src, src / "inside")
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    with pytest.raises(SpectNetError, match="refusing to replace"):
        acquire_local(src, other)
    assert (other / "thesis.tex").exists()


# --------------------------------------------------------------------------------------------
# download acquisition (fake PhysioNet site on a local HTTP server)


def _build_site(www: Path, *, prefix: str = "", wrong_zip_sum: bool = False) -> dict[str, int]:
    stage = www.parent / "stage"
    labels = _small_copy(stage)
    with zipfile.ZipFile(www / "training.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for sd in sorted(stage.iterdir()):
            for f in sorted(sd.iterdir()):
                zf.write(f, f"{prefix}{sd.name}/{f.name}")
            zf.writestr(f"{prefix}{sd.name}/RECORDS", "".join(f"{p.stem}\n" for p in sorted(sd.glob("*.flac"))))
            zf.writestr(f"{prefix}{sd.name}/{sd.name[-1]}0001.hea", "fake header\n")
        zf.writestr(f"{prefix}README.txt", "extra files are tolerated\n")
    (www / "validation").mkdir()
    (www / "validation" / "RECORDS").write_text("a0001\nb0001\n")
    (www / "LICENSE.txt").write_text("ODC-By\n")
    zsum = "0" * 64 if wrong_zip_sum else sha256sum(www / "training.zip")
    (www / "SHA256SUMS.txt").write_text(
        f"{sha256sum(www / 'LICENSE.txt')} LICENSE.txt\n"
        f"{zsum} training.zip\n"
        f"{sha256sum(www / 'validation' / 'RECORDS')} validation/RECORDS\n"
    )
    return labels


@needs_data
@pytest.mark.parametrize("prefix", ["", "training/"])
def test_acquire_download(file_server: LocalFileServer, tmp_path, prefix):
    labels = _build_site(file_server.root, prefix=prefix)
    size = (file_server.root / "training.zip").stat().st_size
    file_server.cut_plan["/training.zip"] = [size // 3]  # first transfer is cut off
    dest, cache = tmp_path / "ds", tmp_path / "cache"
    res = acquire_download(file_server.base_url, dest, cache_dir=cache, **FAST)
    zreqs = file_server.requests_for("/training.zip")
    assert len(zreqs) == 2 and zreqs[1]["Range"] == f"bytes={size // 3}-"
    rows = _records_csv(dest / "records.csv")
    assert {r["record"]: int(r["label"]) for r in rows} == {k: LABEL_MAP[v] for k, v in labels.items()}
    assert len(res.records) == 9
    assert (dest / "validation-RECORDS.txt").read_text() == "a0001\nb0001\n"
    assert sha256sum(cache / "training.zip") == sha256sum(file_server.root / "training.zip")
    # second run: everything cached and verified -> only SHA256SUMS is fetched again
    n = len(file_server.requests)
    acquire_download(file_server.base_url, dest, cache_dir=cache, **FAST)
    assert [path for path, _ in file_server.requests[n:]] == ["/SHA256SUMS.txt"]


@needs_data
def test_acquire_download_checksum_mismatch(file_server: LocalFileServer, tmp_path):
    _build_site(file_server.root, wrong_zip_sum=True)
    with pytest.raises(ChecksumError) as ei:
        acquire_download(file_server.base_url, tmp_path / "ds", cache_dir=tmp_path / "cache", **FAST)
    assert "training.zip" in str(ei.value) and "0" * 64 in str(ei.value)
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["SHA256SUMS.txt"]


@needs_data
def test_acquire_download_from_local_mirror(tmp_path):
    www = tmp_path / "mirror"
    www.mkdir()
    _build_site(www)
    res = acquire_download(www.as_uri(), tmp_path / "ds", cache_dir=tmp_path / "cache", progress=False)
    assert len(res.records) == 9


# --------------------------------------------------------------------------------------------
# folds


@needs_data
def test_local_folds(tmp_path):
    acquire_local(DATA, tmp_path / "ds")
    folds = acquire_folds(tmp_path / "ds", source="local", local_dir=DATA / "folds")
    n = {k: len(v) for k, v in folds.items()}
    assert n["validation0"] == 301 and n["train0"] == 2856 and n["excluded-training-e"] == 87
    assert all(n[f"train{k}"] == 2811 and n[f"validation{k}"] == 342 for k in (1, 2, 3))
    out = tmp_path / "ds" / "folds"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{k}.txt" for k in FOLD_NAMES] + ["provenance.csv"])
    for k in FOLD_NAMES:
        assert read_record_list(out / f"{k}.txt") == read_record_list(DATA / "folds" / f"{k}.txt")
    prov = {r["name"]: r["sha256"] for r in _records_csv(out / "provenance.csv")}
    assert prov == {k: v[1] for k, v in FOLD_URLS.items()}  # pinned digests == local copies


@needs_data
def test_fold_with_unknown_record(tmp_path):
    folds_dir = tmp_path / "folds_src"
    shutil.copytree(DATA / "folds", folds_dir)
    for p in folds_dir.iterdir():
        p.chmod(0o644)
    with open(folds_dir / "validation2.txt", "a") as f:
        f.write("z9999\n")
    records = [r.record for r in scan_layout(DATA).records]
    with pytest.raises(BadInputError) as ei:
        acquire_folds(tmp_path / "out", local_dir=folds_dir, records=records)
    assert ei.value.problems == [(str(folds_dir / "validation2.txt"),
                                  "unknown record z9999 (not among the acquired records)")]
    assert not (tmp_path / "out" / "folds").exists()
    (folds_dir / "train3.txt").unlink()
    with pytest.raises(BadInputError, match="train3.txt: fold list file missing"):
        acquire_folds(tmp_path / "out", local_dir=folds_dir, records=records)


def test_validate_folds_overlap_and_duplicates():
    folds = {k: ["a0001"] for k in FOLD_NAMES}
    problems = validate_folds(folds, ["a0001"])
    assert len(problems) == 4 and all("also in train" in why for _, why in problems)
    folds = {k: [f"x{k}"] for k in FOLD_NAMES}
    folds["train1"] = ["a0001", "a0001", "bad name"]
    del folds["validation3"]
    problems = validate_folds(folds)
    assert ("train1.txt", "record a0001 listed twice") in problems
    assert ("train1.txt", "invalid record name 'bad name'") in problems
    assert ("validation3.txt", "fold list missing") in problems


@needs_data
def test_derive_fold0_matches_local_lists():
    all_records = [r.record for r in scan_layout(DATA).records]
    official_validation = read_record_list(DATA / "folds" / "validation0.txt")  # stands in for RECORDS
    excluded = read_record_list(DATA / "folds" / "excluded-training-e.txt")
    d = derive_fold0_from_validation_records(all_records, official_validation, excluded)
    assert d["validation0"] == official_validation
    assert set(d["train0"]) == set(read_record_list(DATA / "folds" / "train0.txt"))
    assert len(d["train0"]) == 2856
    with pytest.raises(BadInputError, match="unknown record q0001"):
        derive_fold0_from_validation_records(all_records, ["q0001"], excluded)


@needs_data
def test_download_folds(file_server: LocalFileServer, tmp_path):
    urls = {}
    for k in FOLD_NAMES:
        name = "Recordings need to be removed in training-e.txt" if k.startswith("excluded") else f"{k}.txt"
        shutil.copyfile(DATA / "folds" / f"{k}.txt", file_server.root / name)
        urls[k] = (file_server.url(name), FOLD_URLS[k][1])
    file_server.cut_plan["/train0.txt"] = [1000]
    folds = acquire_folds(tmp_path / "ds", source="download", urls=urls, cache_dir=tmp_path / "c",
                          records=[r.record for r in scan_layout(DATA).records], retries=2, backoff=0.0, timeout=5)
    assert len(folds["train0"]) == 2856 and len(folds["excluded-training-e"]) == 87
    assert file_server.requests_for("/train0.txt")[1]["Range"] == "bytes=1000-"
    bad = dict(urls, validation1=(urls["validation1"][0], hashlib.sha256(b"x").hexdigest()))
    with pytest.raises(BadInputError, match="SHA-256 mismatch"):
        acquire_folds(tmp_path / "ds2", source="download", urls=bad, cache_dir=tmp_path / "c2", retries=0)


# --------------------------------------------------------------------------------------------
# the fetch step: acquire() as configured by params, and its CLI


def _small_folds(dest: Path, records: set[str]) -> Path:
    """The real fold lists restricted to ``records``; a record moves from train k to
    validation k where validation k would be empty (acquisition refuses empty lists)."""
    dest.mkdir(parents=True)
    lists = {name: [r for r in read_record_list(DATA / "folds" / f"{name}.txt") if r in records]
             for name in FOLD_NAMES}
    for k in range(4):
        if not lists[f"validation{k}"]:
            lists[f"validation{k}"].append(lists[f"train{k}"].pop())
    lists["excluded-training-e"] = lists["excluded-training-e"] or sorted(records)[:1]
    for name, names in lists.items():
        (dest / f"{name}.txt").write_text("\n".join(names) + "\n")
    return dest


@needs_data
def test_fetch_step_downloads_when_auto_finds_no_local_copy(file_server, tmp_path, capsys):
    import json

    from spectnet.cli import main
    labels = _build_site(file_server.root)
    folds = _small_folds(tmp_path / "folds", set(labels))
    params = {"physionet": {"source": "auto", "local_path": str(tmp_path / "absent"),
                            "url": file_server.base_url,
                            "folds": {"source": "local", "local_path": str(folds)}}}
    dest = tmp_path / "raw"
    assert main(["physionet", "fetch", "--out", str(dest), "--cache-dir",
                 str(tmp_path / "cache"), "--params", json.dumps(params)]) == 0
    assert len(file_server.requests_for("/training.zip")) == 1
    assert {r["record"] for r in _records_csv(dest / "records.csv")} == set(labels)
    assert read_record_list(dest / "folds" / "train0.txt") == read_record_list(
        folds / "train0.txt")


@needs_data
def test_fetch_step_failing_folds_leave_no_partial_output(tmp_path, capsys):
    from spectnet.config import FoldsConfig, PhysioNetConfig
    from spectnet.datasets.physionet import acquire
    source = tmp_path / "copy"
    _small_copy(source)
    folds = _small_folds(tmp_path / "folds", {"a0001", "a0002"})
    (folds / "validation0.txt").write_text("a0001\nzz9999\n")
    config = PhysioNetConfig(source="local", local_path=str(source),
                             folds=FoldsConfig(source="local", local_path=str(folds)))
    with pytest.raises(BadInputError, match="zz9999"):
        acquire(config, tmp_path / "raw", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "raw").exists()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_data
def test_skip_mode_fetch_drops_skipped_records_from_the_folds(tmp_path, capsys):
    import json

    from spectnet.cli import main
    source = tmp_path / "copy"
    labels = _small_copy(source)
    (source / "training-a" / "a0002.flac").write_bytes(b"")  # one damaged recording
    folds = _small_folds(tmp_path / "folds", set(labels))
    naming = [k for k in FOLD_NAMES if "a0002" in read_record_list(folds / f"{k}.txt")]
    assert len(naming) >= 2
    params = {"physionet": {"source": "local", "local_path": str(source), "on_bad_record": "fail",
                            "folds": {"source": "local", "local_path": str(folds)}}}
    dest = tmp_path / "raw"
    argv = ["physionet", "fetch", "--out", str(dest), "--cache-dir", str(tmp_path / "cache")]

    assert main([*argv, "--params", json.dumps(params)]) == 1
    err = capsys.readouterr().err
    assert f"{source / 'training-a' / 'a0002.flac'}: empty audio file" in err
    assert "set physionet.on_bad_record: skip to leave them out" in err
    assert not dest.exists()

    params["physionet"]["on_bad_record"] = "skip"
    assert main([*argv, "--params", json.dumps(params)]) == 0
    assert {r["record"] for r in _records_csv(dest / "records.csv")} == set(labels) - {"a0002"}
    for k in FOLD_NAMES:
        expected = [r for r in read_record_list(folds / f"{k}.txt") if r != "a0002"]
        assert read_record_list(dest / "folds" / f"{k}.txt") == expected
    report = _records_csv(dest / "acquire_report.csv")
    assert [(r["record"], r["action"]) for r in report] == (
        [("a0002", "excluded record")] + [("a0002", "removed from fold list")] * len(naming))
    assert [r["where"] for r in report[1:]] == [str(folds / f"{k}.txt") for k in naming]
    assert report[1]["reason"] == f"listed in {naming[0]} but skipped: empty audio file"
    assert "removed skipped record a0002 from the fold list" in capsys.readouterr().err

    # a later failing run (a fold list names an unknown record) keeps the complete output
    before = _tree(dest)
    with open(folds / "validation1.txt", "a") as f:
        f.write("zz9999\n")
    assert main([*argv, "--params", json.dumps(params)]) == 1
    assert (f"{folds / 'validation1.txt'}: unknown record zz9999 (not among the acquired "
            "records)") in capsys.readouterr().err
    assert _tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "folds", "raw"]  # no temp dirs


@needs_data
def test_poisoned_checksum_list_recovers_once_the_server_is_fixed(file_server, tmp_path):
    from spectnet.errors import DownloadError
    _build_site(file_server.root)
    sums = file_server.root / "SHA256SUMS.txt"
    good = sums.read_text()
    dest, cache = tmp_path / "ds", tmp_path / "cache"
    # a proxy's error page instead of the list
    sums.write_text("<html><head><title>503 Service Unavailable</title></head></html>\n")
    with pytest.raises(DownloadError) as ei:
        acquire_download(file_server.base_url, dest, cache_dir=cache, **FAST)
    assert (f"{file_server.url('SHA256SUMS.txt')} did not give a usable checksum list; "
            f"removed its cached copy {cache / 'SHA256SUMS.txt'}") in str(ei.value)
    assert list(cache.iterdir()) == [] and not dest.exists()
    # a mirror caught mid-update: the list does not match the archive
    sums.write_text(good.replace(sha256sum(file_server.root / "training.zip"), "1" * 64))
    with pytest.raises(ChecksumError, match="training.zip"):
        acquire_download(file_server.base_url, dest, cache_dir=cache, **FAST)
    # the server is fixed: the next run fetches the list again and succeeds
    sums.write_text(good)
    res = acquire_download(file_server.base_url, dest, cache_dir=cache, **FAST)
    assert len(res.records) == 9
    assert len(file_server.requests_for("/SHA256SUMS.txt")) == 3
    assert (cache / "SHA256SUMS.txt").read_text() == good
