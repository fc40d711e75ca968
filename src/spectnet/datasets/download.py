"""Robust, resumable, verified downloads and safe zip extraction (no dataset knowledge).

- :func:`download_file` streams a URL to ``dest + ".part"``, resumes an interrupted transfer
  with an HTTP ``Range`` request, retries with exponential back-off, verifies the SHA-256 (or
  another :func:`file_digest` algorithm: MD5 for the DCASE packages) and only then renames
  the ``.part`` file to ``dest``. ``file://`` URLs and plain local paths are accepted too
  (copied, then verified the same way).
- :func:`safe_extract_zip` validates every member path of an archive before writing anything,
  checks CRCs, extracts into a temporary sibling directory and moves it into place.
- :func:`fetch_checksum_list` — a checksum list, fetched again on every run (it cannot be
  verified, and a wrong cached copy — a proxy's error page, a mirror caught mid-update —
  would otherwise fail every later run); one that does not parse is removed and named.
- :func:`sha256sum`, :func:`parse_sha256sums` — checksum helpers (``sha256sum``/PhysioNet format).

A cache entry that fails verification is removed, with a message naming it, so that a
re-run starts clean.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from spectnet.atomic import remove_path, replace_dir, temp_sibling
from spectnet.errors import (
    BadInputError,
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    SpectNetError,
    UnsafeArchiveError,
)

__all__ = [
    "download_file",
    "file_digest",
    "sha256sum",
    "parse_sha256sums",
    "fetch_checksum_list",
    "safe_extract_zip",
    "is_local_source",
    "copy_file",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "CorruptArchiveError",
]

log = logging.getLogger(__name__)

USER_AGENT = "spectnet-reproduction/0.1 (+python-urllib)"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
#: HTTP status codes worth retrying (transient server-side conditions).
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _TruncatedTransfer(Exception):
    """The connection ended before the announced number of bytes arrived (retryable)."""


class _RestartTransfer(Exception):
    """The partial file cannot be resumed and was discarded (retryable, from byte 0)."""


# --------------------------------------------------------------------------------------------
# checksums


def sha256sum(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the lowercase hex SHA-256 digest of the file at ``path``."""
    return file_digest(path, "sha256", chunk_size=chunk_size)


def parse_sha256sums(text: str, source: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Parse a ``SHA256SUMS`` listing into ``{relative path: lowercase hex digest}``.

    Accepts the GNU ``sha256sum`` format (``<digest>  <path>`` or ``<digest> *<path>``) and the
    single-space variant PhysioNet publishes (``<digest> <path>``). Blank lines and ``#``
    comments are ignored; a leading ``./`` on paths is dropped; paths may contain spaces.
    Raises :class:`BadInputError` listing every malformed line, or conflicting duplicates;
    its message names ``source`` (the list's file or URL) when given.
    """
    sums: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not _HEX64.match(parts[0]):
            problems.append((f"line {lineno}", f"not '<sha256> <path>': {raw!r}"))
            continue
        digest, name = parts[0].lower(), parts[1].strip()
        if name.startswith("*"):  # binary-mode marker of GNU sha256sum
            name = name[1:]
        while name.startswith("./"):
            name = name[2:]
        if not name:
            problems.append((f"line {lineno}", "empty path"))
            continue
        if name in sums and sums[name] != digest:
            problems.append((f"line {lineno}", f"conflicting digests for {name!r}"))
            continue
        sums[name] = digest
    if problems:
        what = "malformed SHA-256 checksum list" + (f" {source}" if source is not None else "")
        if re.match(r"\s*<", text):
            what += " (an HTML page: a proxy's or server's error page?)"
        raise BadInputError(what, problems, max_lines=5)
    return sums


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256", *,
                chunk_size: int = 1 << 20) -> str:
    """Return the lowercase hex digest of the file at ``path`` (any :mod:`hashlib` algorithm)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _expected_digest(sha256: str | None,
                     checksum: tuple[str, str] | None) -> tuple[str, str] | tuple[None, None]:
    """``(hashlib algorithm, lowercase hex digest)`` to verify against, or ``(None, None)``."""
    if sha256 is not None and checksum is not None:
        raise ValueError("give sha256 or checksum, not both")
    if checksum is None:
        if sha256 is None:
            return None, None
        checksum = ("sha256", sha256)
    algorithm, digest = checksum[0].lower(), checksum[1].strip().lower()
    try:
        size = hashlib.new(algorithm).digest_size
    except ValueError:
        raise ValueError(f"unknown checksum algorithm {checksum[0]!r}") from None
    if not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", digest):
        raise ValueError(f"not a {algorithm} hex digest: {checksum[1]!r}")
    return algorithm, digest


# --------------------------------------------------------------------------------------------
# download


def is_local_source(url: str | os.PathLike[str]) -> bool:
    """True for ``file://`` URLs and plain filesystem paths (anything without an http(s) scheme)."""
    s = os.fspath(url)
    scheme = urllib.parse.urlsplit(s).scheme.lower()
    return scheme in ("", "file") or bool(re.match(r"^[A-Za-z]:[\\/]", s))


def _local_path(url: str | os.PathLike[str]) -> Path:
    s = os.fspath(url)
    if urllib.parse.urlsplit(s).scheme.lower() == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(s).path))
    return Path(s)


def _progress_enabled(progress: bool) -> bool:
    stream = sys.stderr
    return bool(progress) and hasattr(stream, "isatty") and stream.isatty()


def download_file(
    url: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    checksum: tuple[str, str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 16,
    progress: bool = True,
    refresh: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest`` robustly and return ``Path(dest)``.

    - If ``dest`` exists and matches ``sha256`` (or no ``sha256`` is given), nothing is done.
      An existing ``dest`` with the wrong digest is removed (with a warning naming it) and
      fetched again.
    - ``refresh=True`` fetches again even when ``dest`` exists (for small files that may
      change on the server and have no digest to check, such as checksum lists), from byte
      0; if that fetch fails, the existing ``dest`` is kept and used, with a warning.
    - Bytes are streamed to ``dest.part``; an existing ``.part`` is resumed with
      ``Range: bytes=N-`` (``206`` appends; ``200`` means the server ignores ranges, so the
      partial is discarded; ``416`` with a matching total means it was already complete).
    - Connection errors, timeouts, truncated bodies and HTTP 408/429/5xx are retried up to
      ``retries`` times, sleeping ``min(max_backoff, backoff * 2**attempt)`` seconds; each
      retry resumes from the bytes already on disk. Other HTTP errors fail at once.
    - ``checksum=(algorithm, hex digest)`` names any :mod:`hashlib` algorithm instead, e.g.
      ``("md5", "e395...")``; ``sha256=d`` is short for ``checksum=("sha256", d)``.
    - With a digest, it is verified before ``.part`` is renamed to ``dest``
      (:func:`os.replace`); on mismatch the ``.part`` is deleted and :class:`ChecksumError`
      is raised. ``dest`` therefore never holds a partial or unverified file.
    - ``file://`` URLs and plain paths are copied (then verified the same way).

    Raises :class:`DownloadError` (or its subclass :class:`ChecksumError`).
    """
    dest = Path(dest)
    algorithm, expected = _expected_digest(sha256, checksum)
    url_s = os.fspath(url)
    if dest.exists() and not refresh:
        if expected is None:
            log.debug("%s exists; not fetching %s again", dest, url_s)
            return dest
        actual = file_digest(dest, algorithm)
        if actual == expected:
            log.debug("%s exists with the expected %s digest", dest, algorithm)
            return dest
        dest.unlink()
        log.warning("removed %s: its SHA-256 is %s, expected %s; fetching it again", dest, actual, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if refresh:
        part.unlink(missing_ok=True)  # a partial refresh may be of an older version

    try:
        if is_local_source(url_s):
            _copy_local(_local_path(url_s), part, chunk_size=chunk_size, progress=progress)
        else:
            _fetch_with_retries(
                url_s, part, retries=retries, backoff=backoff, max_backoff=max_backoff,
                timeout=timeout, chunk_size=chunk_size, progress=progress,
            )
    except DownloadError as exc:
        if not (refresh and dest.exists()):
            raise
        part.unlink(missing_ok=True)
        log.warning("could not fetch %s again (%s); using the cached copy %s", url_s, exc, dest)
        return dest

    if expected is not None:
        actual = file_digest(part, algorithm)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(url_s, dest, expected, actual, algorithm)
    os.replace(part, dest)
    return dest


def fetch_checksum_list(
    url: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    parse: Callable[[str, str], dict[str, str]] = parse_sha256sums,
    **download_options,
) -> dict[str, str]:
    """Fetch the checksum list at ``url`` into the cache file ``dest`` and parse it.

    Without ``sha256`` (the usual case: nothing vouches for the list itself) the list is
    fetched again on every call (``refresh`` of :func:`download_file`), so that a wrong copy
    never outlives its cause; the cached copy is used only when the server cannot be
    reached. A list that does not parse (an HTML error page, a truncated file) is removed
    from the cache, and the :class:`DownloadError` names the URL and the removed file.

    ``parse(text, source)`` turns the text into ``{relative path: digest}``
    (default :func:`parse_sha256sums`) and raises :class:`BadInputError` on bad input.
    ``download_options`` go to :func:`download_file` (``retries``, ``timeout`` ...).
    """
    path = download_file(url, dest, sha256=sha256, refresh=sha256 is None, **download_options)
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"), os.fspath(url))
    except BadInputError as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url} did not give a usable checksum list; removed its cached copy "
                            f"{path}, re-run once the server is fixed.\n{exc}") from None


def _copy_local(src: Path, part: Path, *, chunk_size: int, progress: bool) -> None:
    if not src.is_file():
        raise DownloadError(f"local source {src} does not exist or is not a file")
    total = src.stat().st_size
    with open(src, "rb") as fin, open(part, "wb") as fout, tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=src.name,
        disable=not _progress_enabled(progress), leave=False,
    ) as bar:
        while chunk := fin.read(max(chunk_size, 1 << 20)):
            fout.write(chunk)
            bar.update(len(chunk))


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in _RETRY_STATUS
    return isinstance(
        exc,
        (
            _TruncatedTransfer,
            _RestartTransfer,
            urllib.error.URLError,  # DNS failure, refused connection (HTTPError handled above)
            http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
            ConnectionError,
            TimeoutError,
            socket.timeout,
        ),
    )


def _fetch_with_retries(
    url: str, part: Path, *, retries: int, backoff: float, max_backoff: float,
    timeout: float, chunk_size: int, progress: bool,
) -> None:
    attempts = max(0, int(retries)) + 1
    for attempt in range(attempts):
        try:
            _fetch_once(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress)
            return
        except Exception as exc:  # noqa: BLE001 - classified below
            if not _is_retryable(exc):
                if isinstance(exc, urllib.error.HTTPError):
                    raise DownloadError(f"GET {url} failed: HTTP {exc.code} {exc.reason}") from exc
                raise
            have = part.stat().st_size if part.exists() else 0
            if attempt + 1 >= attempts:
                kept = f"{have} bytes kept in {part}, re-run to resume" if have else "nothing received"
                raise DownloadError(
                    f"GET {url} failed after {attempts} attempt(s): {exc!r}; {kept}"
                ) from exc
            delay = min(max_backoff, backoff * (2**attempt))
            log.warning(
                "download of %s interrupted (%r), %d bytes so far; retry %d/%d in %.1f s",
                url, exc, have, attempt + 1, attempts - 1, delay,
            )
            time.sleep(delay)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``Content-Range: bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (start, total)."""
    if not value:
        return None, None
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _fetch_once(url: str, part: Path, *, timeout: float, chunk_size: int, progress: bool) -> None:
    """One HTTP attempt: resume ``part`` if present; raise a retryable error if cut short."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - URL is user config
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset > 0:
            _, total = _content_range(exc.headers.get("Content-Range") if exc.headers else None)
            exc.close()
            if total == offset:
                log.debug("%s: server says the %d bytes in %s are complete", url, offset, part)
                return
            part.unlink(missing_ok=True)  # partial is longer than the file, or unknown: restart
            raise _RestartTransfer(f"HTTP 416 for Range bytes={offset}- (total {total})") from exc
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        length_hdr = resp.headers.get("Content-Length")
        body_len = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
        if offset > 0 and status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start is not None and start != offset:
                part.unlink(missing_ok=True)
                raise _RestartTransfer(f"server resumed at byte {start}, not {offset}")
            mode = "ab"
        elif status == 200:
            if offset > 0:
                log.info("%s: server ignored the Range request; restarting from byte 0", url)
            offset, mode = 0, "wb"
            total = body_len
        else:
            raise DownloadError(f"GET {url}: unexpected HTTP status {status}")
        if total is None and body_len is not None:
            total = offset + body_len
        received = 0
        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=PurePosixPath(urllib.parse.urlsplit(url).path).name or url,
            disable=not _progress_enabled(progress), leave=False,
        ) as bar:
            while True:
                chunk = resp.read(chunk_size)
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
        if body_len is not None and received < body_len:
            raise _TruncatedTransfer(
                f"connection closed after {received} of {body_len} bytes (file now {offset + received} bytes)"
            )


# --------------------------------------------------------------------------------------------
# zip extraction

_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_problem(info: zipfile.ZipInfo, root: Path) -> str | None:
    """Return why ``info`` is unsafe to extract under ``root`` (resolved), or None if safe."""
    name = info.filename
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "has a drive letter"
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        return "contains a '..' component (path traversal)"
    mode = (info.external_attr >> 16) & 0xFFFF
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        return f"is a special file (mode {oct(mode)})"
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        return f"resolves outside the target directory ({target})"
    return None


def safe_extract_zip(
    zip_path: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    members: Iterable[str] | None = None,
    replace: bool = False,
) -> Path:
    """Extract a zip archive safely into ``target_dir`` and return ``Path(target_dir)``.

    1. Every member name is checked before anything is written: absolute paths, drive letters,
       ``..`` components, symbolic-link entries, special files and anything whose resolved
       path escapes ``target_dir`` -> :class:`UnsafeArchiveError` naming the archive and
       every unsafe member.
    2. The archive is CRC-checked (:meth:`zipfile.ZipFile.testzip`); an invalid or corrupt
       archive -> :class:`CorruptArchiveError`.
    3. Members (all, or only ``members`` — exact names) are extracted into a hidden temporary
       sibling of ``target_dir``, which then replaces ``target_dir`` as a whole. An interrupted
       extraction therefore never leaves a partial tree under ``target_dir``.

    An existing non-empty ``target_dir`` is only replaced when ``replace=True``; otherwise
    :class:`SpectNetError` is raised.
    """
    zpath = Path(zip_path)
    target = Path(target_dir)
    if target.exists() and not replace:
        if not target.is_dir() or any(target.iterdir()):
            raise SpectNetError(
                f"cannot extract {zpath}: {target} already exists and is not empty (pass replace=True)"
            )
    if not zpath.is_file():
        raise CorruptArchiveError(f"archive {zpath} does not exist")
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise CorruptArchiveError(f"{zpath} is not a readable zip archive: {exc}") from exc
    with zf:
        infos = _select_members(zf, zpath, members)
        target.parent.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        unsafe = [(info.filename, why) for info in infos
                  if (why := _member_problem(info, root)) is not None]
        if unsafe:
            raise UnsafeArchiveError(zpath, unsafe)
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise CorruptArchiveError(f"{zpath} is corrupt: {exc}") from exc
        if bad is not None:
            raise CorruptArchiveError(f"{zpath} is corrupt: member {bad!r} fails its CRC check")
        tmp = temp_sibling(target, "extract")
        tmp.mkdir()
        try:
            for info in infos:
                zf.extract(info, tmp)
            replace_dir(tmp, target)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            remove_path(tmp)
            raise CorruptArchiveError(f"{zpath} is corrupt: {exc}") from exc
        except BaseException:
            remove_path(tmp)
            raise
    return target


def _select_members(
    zf: zipfile.ZipFile, zpath: Path, members: Iterable[str] | None
) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if members is None:
        return infos
    wanted = list(members)
    by_name = {i.filename: i for i in infos}
    missing = [m for m in wanted if m not in by_name]
    if missing:
        raise BadInputError(f"members not found in {zpath}", [(m, "not in archive") for m in missing])
    return [by_name[m] for m in wanted]


def copy_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dest`` atomically (via a temporary sibling); return ``Path(dest)``."""
    d = Path(dest)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(d)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, d)
    except BaseException:
        remove_path(tmp)
        raise
    return d
