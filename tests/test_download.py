"""Tests of spectnet.datasets.download / spectnet.atomic / spectnet.errors against a real local HTTP server."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_http import LocalFileServer, file_server  # noqa: E402,F401 - fixture import

from spectnet.atomic import (  # noqa: E402
    HOST_TAG,
    atomic_dir,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    pid_alive,
    remove_stale_temps,
    temp_sibling,
)
from spectnet.datasets.download import (  # noqa: E402
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    UnsafeArchiveError,
    download_file,
    fetch_checksum_list,
    parse_sha256sums,
    safe_extract_zip,
    sha256sum,
)
from spectnet.errors import BadInputError, SpectNetError  # noqa: E402

FAST = dict(retries=3, backoff=0.0, timeout=5.0, progress=False)


def _payload(n: int = 200_000) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(file_server: LocalFileServer) -> tuple[LocalFileServer, bytes]:
    data = _payload()
    (file_server.root / "blob.bin").write_bytes(data)
    return file_server, data


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# --------------------------------------------------------------------------------------------
# download_file


def test_plain_download_verified(served, tmp_path):
    srv, data = served
    dest = tmp_path / "out" / "blob.bin"
    assert download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST) == dest
    assert dest.read_bytes() == data
    assert _leftovers(dest.parent) == ["blob.bin"]
    assert "Range" not in srv.requests_for("/blob.bin")[0]


def test_cut_connection_resumes_from_received_bytes(served, tmp_path):
    srv, data = served
    srv.cut_plan["/blob.bin"] = [70_000, 50_000]  # two cuts, then a full answer
    dest = tmp_path / "blob.bin"
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    reqs = srv.requests_for("/blob.bin")
    assert len(reqs) == 3
    assert "Range" not in reqs[0]
    assert reqs[1]["Range"] == "bytes=70000-"
    assert reqs[2]["Range"] == "bytes=120000-"
    assert sha256sum(dest) == _sha(data)
    assert not dest.with_name("blob.bin.part").exists()


def test_existing_part_is_resumed(served, tmp_path):
    srv, data = served
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data[:12_345])
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    reqs = srv.requests_for("/blob.bin")
    assert [r.get("Range") for r in reqs] == ["bytes=12345-"]
    assert dest.read_bytes() == data


def test_server_ignoring_range_restarts(served, tmp_path):
    srv, data = served
    srv.ignore_range.add("/blob.bin")
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(b"garbage-that-must-be-dropped")
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert dest.read_bytes() == data


def test_416_with_complete_part(served, tmp_path):
    srv, data = served
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data)
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert dest.read_bytes() == data
    assert len(srv.requests_for("/blob.bin")) == 1


def test_416_with_oversized_part_restarts(served, tmp_path):
    srv, data = served
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(data + b"extra bytes")
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert dest.read_bytes() == data
    assert len(srv.requests_for("/blob.bin")) == 2


def test_checksum_mismatch_refused(served, tmp_path):
    srv, data = served
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as ei:
        download_file(srv.url("blob.bin"), dest, sha256=wrong, **FAST)
    msg = str(ei.value)
    assert str(dest) in msg and wrong in msg and _sha(data) in msg and srv.url("blob.bin") in msg
    assert isinstance(ei.value, SpectNetError)
    assert _leftovers(tmp_path) == ["www"]  # no dest, no .part


def test_md5_checksum_verified_and_mismatch_named(served, tmp_path):
    srv, data = served
    md5 = hashlib.md5(data).hexdigest()
    dest = tmp_path / "blob.bin"
    download_file(srv.url("blob.bin"), dest, checksum=("md5", md5.upper()), **FAST)
    assert dest.read_bytes() == data
    download_file(srv.url("blob.bin"), dest, checksum=("MD5", md5), **FAST)  # cached, verified
    assert len(srv.requests) == 1
    with pytest.raises(ChecksumError) as ei:
        download_file(srv.url("blob.bin"), tmp_path / "other.bin", checksum=("md5", "0" * 32), **FAST)
    assert "MD5 mismatch" in str(ei.value) and md5 in str(ei.value)
    assert ei.value.algorithm == "md5"
    assert not (tmp_path / "other.bin").exists() and not (tmp_path / "other.bin.part").exists()


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(checksum=("md5", "0" * 64)), "not a md5 hex digest"),
    (dict(checksum=("crc99", "00")), "unknown checksum algorithm"),
    (dict(sha256="0" * 64, checksum=("md5", "0" * 32)), "not both"),
])
def test_bad_checksum_arguments(served, tmp_path, kwargs, phrase):
    srv, _ = served
    with pytest.raises(ValueError, match=phrase):
        download_file(srv.url("blob.bin"), tmp_path / "x.bin", **kwargs, **FAST)
    assert srv.requests == []


def test_existing_verified_dest_not_fetched(served, tmp_path):
    srv, data = served
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data)
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert srv.requests == []


def test_existing_wrong_dest_is_removed_named_and_fetched_again(served, tmp_path, caplog):
    srv, data = served
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale")
    srv.status_plan["/blob.bin"] = [404]
    with pytest.raises(DownloadError, match="404"):
        download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert f"removed {dest}: its SHA-256 is {_sha(b'stale')}" in caplog.text
    assert not dest.exists()  # the bad entry is gone even though the fetch failed
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert dest.read_bytes() == data


def test_http_404_fails_without_retry(file_server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_file(file_server.url("missing.bin"), tmp_path / "x", **FAST)
    assert len(file_server.requests) == 1
    assert not (tmp_path / "x").exists()


def test_transient_503_retried_then_gives_up(served, tmp_path):
    srv, data = served
    srv.status_plan["/blob.bin"] = [503, 503]
    download_file(srv.url("blob.bin"), tmp_path / "ok.bin", sha256=_sha(data), **FAST)
    assert (tmp_path / "ok.bin").read_bytes() == data
    srv.status_plan["/blob.bin"] = [503] * 10
    with pytest.raises(DownloadError, match="after 4 attempt") as ei:
        download_file(srv.url("blob.bin"), tmp_path / "no.bin", **FAST)
    assert str(ei.value).endswith("nothing received") and ".part" not in str(ei.value)
    assert not (tmp_path / "no.bin").exists() and not (tmp_path / "no.bin.part").exists()


def test_persistent_cuts_keep_partial_for_next_run(served, tmp_path):
    srv, data = served
    srv.cut_plan["/blob.bin"] = [10_000] * 4  # retries=3 -> 4 attempts, all cut
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="re-run to resume"):
        download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)
    assert not dest.exists()
    assert dest.with_name("blob.bin.part").stat().st_size == 40_000
    download_file(srv.url("blob.bin"), dest, sha256=_sha(data), **FAST)  # the next run resumes
    assert srv.requests_for("/blob.bin")[-1]["Range"] == "bytes=40000-"
    assert dest.read_bytes() == data


def test_refresh_fetches_again_and_falls_back_to_the_cached_copy(file_server, tmp_path, caplog):
    (file_server.root / "list.txt").write_text("new\n")
    dest = tmp_path / "list.txt"
    dest.write_text("old\n")
    dest.with_name("list.txt.part").write_text("ne")  # a partial refresh is not resumed
    download_file(file_server.url("list.txt"), dest, refresh=True, **FAST)
    assert dest.read_text() == "new\n"
    assert "Range" not in file_server.requests_for("/list.txt")[0]
    file_server.status_plan["/list.txt"] = [503] * 4  # server down: the cached copy is used
    download_file(file_server.url("list.txt"), dest, refresh=True, **FAST)
    assert dest.read_text() == "new\n" and "using the cached copy" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.txt", "www"]
    file_server.status_plan["/list.txt"] = [503] * 4  # ... but there must be one
    with pytest.raises(DownloadError, match="after 4 attempt"):
        download_file(file_server.url("list.txt"), tmp_path / "none.txt", refresh=True, **FAST)


def test_html_checksum_list_is_removed_from_the_cache_and_named(file_server, tmp_path):
    sums = file_server.root / "SHA256SUMS.txt"
    sums.write_text("<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n")
    url, cached = file_server.url("SHA256SUMS.txt"), tmp_path / "cache" / "SHA256SUMS.txt"
    with pytest.raises(DownloadError) as ei:
        fetch_checksum_list(url, cached, **FAST)
    message = str(ei.value)
    assert f"{url} did not give a usable checksum list; removed its cached copy {cached}" in message
    assert "an HTML page" in message and "line 1" in message
    assert not cached.exists()
    sums.write_text(f"{'a' * 64} training.zip\n")  # the server is fixed: the next run recovers
    assert fetch_checksum_list(url, cached, **FAST) == {"training.zip": "a" * 64}
    assert len(file_server.requests_for("/SHA256SUMS.txt")) == 2


def test_local_sources(tmp_path):
    data = _payload(5000)
    src = tmp_path / "src dir" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    d1 = download_file(src.as_uri(), tmp_path / "1.bin", sha256=_sha(data), progress=False)
    d2 = download_file(str(src), tmp_path / "2.bin", sha256=_sha(data), progress=False)
    assert d1.read_bytes() == d2.read_bytes() == data
    with pytest.raises(ChecksumError):
        download_file(src, tmp_path / "3.bin", sha256="f" * 64, progress=False)
    assert not (tmp_path / "3.bin").exists() and not (tmp_path / "3.bin.part").exists()
    with pytest.raises(DownloadError, match="does not exist"):
        download_file(tmp_path / "nope", tmp_path / "4.bin", progress=False)


# --------------------------------------------------------------------------------------------
# checksums


def test_parse_sha256sums_formats():
    a, b, c = "a" * 64, "B" * 64, "c" * 64
    text = f"{a} training.zip\n{b}  ./validation/RECORDS\n\n# comment\n{c} *papers/some file.pdf\n"
    assert parse_sha256sums(text) == {
        "training.zip": a, "validation/RECORDS": b.lower(), "papers/some file.pdf": c,
    }


def test_parse_sha256sums_malformed_lists_all_lines():
    with pytest.raises(BadInputError) as ei:
        parse_sha256sums("xyz training.zip\n" + "a" * 64 + "\n" + "b" * 64 + " ok\n",
                         "https://mirror/SHA256SUMS.txt")
    assert [w for w, _ in ei.value.problems] == ["line 1", "line 2"]
    assert str(ei.value).startswith("malformed SHA-256 checksum list https://mirror/SHA256SUMS.txt")
    assert "line 1" in str(ei.value) and "line 2" in str(ei.value)


def test_bad_input_error_format():
    err = BadInputError("bad stuff", [("f1", "r1"), (Path("f2"), "r2")])
    assert str(err) == "bad stuff (2 problems):\n  f1: r1\n  f2: r2"
    assert err.problems == [("f1", "r1"), ("f2", "r2")]


# --------------------------------------------------------------------------------------------
# safe_extract_zip


def _make_zip(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return path


GOOD = {"training-a/REFERENCE.csv": b"a0001,1\n", "training-a/a0001.wav": b"RIFF" + bytes(100)}


def test_extract_good_zip(tmp_path):
    z = _make_zip(tmp_path / "g.zip", GOOD)
    out = safe_extract_zip(z, tmp_path / "out")
    assert (out / "training-a" / "REFERENCE.csv").read_bytes() == b"a0001,1\n"
    assert _leftovers(tmp_path) == ["g.zip", "out"]
    with pytest.raises(SpectNetError, match="not empty"):
        safe_extract_zip(z, tmp_path / "out")
    (out / "stale.txt").write_text("x")
    safe_extract_zip(z, out, replace=True)
    assert not (out / "stale.txt").exists()
    only = safe_extract_zip(z, tmp_path / "only", members=["training-a/REFERENCE.csv"])
    assert [p.name for p in (only / "training-a").iterdir()] == ["REFERENCE.csv"]


@pytest.mark.parametrize(
    "bad_name, reason",
    [
        ("../evil", "'..'"),
        ("training-a/../../evil", "'..'"),
        ("/abs/evil", "absolute"),
        ("C:/evil", "drive letter"),
        ("..\\evil", "'..'"),
    ],
)
def test_unsafe_member_refused_before_writing(tmp_path, bad_name, reason):
    # the bad member comes LAST, so a member-by-member extractor would already have written files
    z = _make_zip(tmp_path / "bad.zip", {**GOOD, bad_name: b"pwned"})
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract_zip(z, tmp_path / "out")
    assert str(z) in str(ei.value) and repr(bad_name) in str(ei.value) and reason in str(ei.value)
    assert _leftovers(tmp_path) == ["bad.zip"]
    assert not (tmp_path.parent / "evil").exists()


def test_every_unsafe_member_is_named(tmp_path):
    z = _make_zip(tmp_path / "bad.zip", {**GOOD, "../a": b"1", "/etc/b": b"2"},
                  symlink="training-a/link")
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract_zip(z, tmp_path / "out")
    assert [m for m, _ in ei.value.problems] == ["../a", "/etc/b", "training-a/link"]
    assert str(ei.value).startswith(f"refusing to extract {z}: 3 unsafe members, nothing was extracted")
    assert _leftovers(tmp_path) == ["bad.zip"]


def test_symlink_member_refused(tmp_path):
    z = _make_zip(tmp_path / "ln.zip", GOOD, symlink="training-a/link")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(z, tmp_path / "out")
    assert _leftovers(tmp_path) == ["ln.zip"]


def test_corrupt_zips(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(CorruptArchiveError, match="not a readable zip"):
        safe_extract_zip(junk, tmp_path / "out")
    # flip bytes inside a stored member: the central directory is fine, the CRC is not
    z = tmp_path / "crc.zip"
    payload = b"0123456789" * 1000
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("training-a/a0001.wav", payload)
    raw = bytearray(z.read_bytes())
    i = raw.find(payload)
    raw[i + 500 : i + 510] = b"XXXXXXXXXX"
    z.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError, match="a0001.wav"):
        safe_extract_zip(z, tmp_path / "out")
    # truncated archive
    t = tmp_path / "trunc.zip"
    t.write_bytes(_make_zip(tmp_path / "full.zip", GOOD).read_bytes()[:60])
    with pytest.raises(CorruptArchiveError):
        safe_extract_zip(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------------
# atomic helpers


def test_atomic_output_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "x.npy"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npy" and tmp != target
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"data"
    assert _leftovers(target.parent) == ["x.npy"]
    with pytest.raises(FileNotFoundError):
        with atomic_output(tmp_path / "never.txt"):
            pass


def test_atomic_write_and_dir(tmp_path):
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    d = tmp_path / "tree"
    with atomic_dir(d) as tmp:
        (tmp / "f").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(d) as tmp:
            (tmp / "g").write_text("2")
            raise ValueError
    assert sorted(os.listdir(d)) == ["f"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "t.txt", "tree"]


@pytest.fixture
def zombie():
    """A child process that has exited but is not reaped yet: dead, though its pid exists."""
    import subprocess
    import time
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield child.pid
    child.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_leftovers_of_dead_runs_are_removed_and_live_work_is_kept(tmp_path, caplog, zombie):
    out, dead = tmp_path / "store", zombie
    assert not pid_alive(dead) and pid_alive(os.getpid())
    stale_dir = tmp_path / f".store.tmp-{HOST_TAG}-{dead}-{'a' * 12}"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "signals.raw").write_bytes(bytes(3 << 20))
    stale_old = tmp_path / f".store.old-{HOST_TAG}-{dead}-{'b' * 12}"
    stale_old.mkdir()
    legacy = tmp_path / f".store.tmp-{dead}-{'9' * 12}"  # named before hosts were recorded
    legacy.write_bytes(b"x")
    other_host = format(int(HOST_TAG, 16) ^ 1, "08x")
    keep = [
        tmp_path / f".store.tmp-{HOST_TAG}-{os.getpid()}-{'c' * 12}",  # a live run's work
        tmp_path / f".store.tmp-{other_host}-{dead}-{'d' * 12}",  # maybe live elsewhere
        tmp_path / f".store2.tmp-{HOST_TAG}-{dead}-{'e' * 12}",  # another output's
        tmp_path / f".store.tmp-{HOST_TAG}-{dead}-{'f' * 12}.npy",  # another suffix
        tmp_path / "store.tmp-notours",
    ]
    for path in keep:
        path.mkdir()
    # the output is missing: the dead run's trash is the only complete copy, so it comes back
    (stale_old / "manifest.csv").write_text("previous")
    assert sorted(remove_stale_temps(out)) == sorted([stale_dir, legacy])
    assert (out / "manifest.csv").read_text() == "previous"
    assert f"removed {stale_dir} (3.0 MiB), left by a killed run (pid {dead})" in caplog.text
    assert f"left alone {keep[1]}: made on another host" in caplog.text
    assert f"restored {out} from {stale_old.name}" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in keep] + ["store"])
    # temp_sibling cleans up before it hands out a name; with the output present, trash goes
    stale_old.mkdir()
    fresh = temp_sibling(out)
    assert not stale_old.exists() and fresh.name.startswith(f".store.tmp-{HOST_TAG}-{os.getpid()}-")
