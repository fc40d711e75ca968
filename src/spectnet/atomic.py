"""Atomic file and directory output.

Every output is first written under a temporary name in the *same directory* as the final path
and then moved into place with :func:`os.replace` (atomic on POSIX and Windows for files on one
filesystem). A crash or an exception therefore never leaves a half-written file under the final
name: either the old content (or nothing) or the complete new content is visible.

- :func:`atomic_output` — context manager yielding a temporary *path* (the caller writes it with
  any library: numpy, soundfile, torch.save ...). The temporary name keeps the final suffix, so
  libraries that infer the format from the extension keep working.
- :func:`atomic_write_text` / :func:`atomic_write_bytes` — one-shot helpers.
- :func:`atomic_dir` — the same for a whole directory tree (built in a temporary sibling
  directory, then swapped into place with :func:`replace_dir`).

A full disk (``ENOSPC``, or a quota) while writing gives a
:class:`~spectnet.errors.NoSpaceError` naming the final path, after the temporary output
is removed.

A run killed with SIGKILL (or by a power cut) cannot clean up, so its temporary siblings
stay behind. Their names record the host and the process id of the run that made them
(``.<stem>.<tag>-<host>-<pid>-<token><suffix>``), and :func:`temp_sibling` — hence every
run that writes the same output again — first removes the leftovers of runs on this host
that are no longer alive (:func:`remove_stale_temps`). A live run's temporary work, or one
made on another host sharing the filesystem, is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from spectnet.errors import NoSpaceError

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_dir",
    "replace_dir",
    "temp_sibling",
    "remove_stale_temps",
    "pid_alive",
    "remove_path",
]

log = logging.getLogger(__name__)

#: Identifies this host in temporary names (8 hex digits of a hash of the host name).
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: ``<tag>-<host>-<pid>-<token>``; names from before the host was recorded lack ``<host>-``
#: and are taken to be from this host.
_TEMP_MIDDLE = re.compile(r"(?P<tag>[a-z]+)-(?:(?P<host>[0-9a-f]{8})-)?(?P<pid>[0-9]+)-[0-9a-f]{12}")


def temp_sibling(path: str | os.PathLike[str], tag: str = "tmp") -> Path:
    """Return an unused hidden path next to ``path`` that keeps ``path``'s suffix.

    Leftovers of killed runs that wrote ``path`` are removed first
    (:func:`remove_stale_temps`).

    Example: ``out/model.pt`` -> ``out/.model.tmp-5e1f0c2a-4242-1a2b3c4d5e6f.pt``.
    """
    p = Path(path)
    remove_stale_temps(p)
    token = uuid.uuid4().hex[:12]
    return p.with_name(f".{p.stem}.{tag}-{HOST_TAG}-{os.getpid()}-{token}{p.suffix}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running on this host (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel, which cannot tell zombies apart
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process
            pass
        return True
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")"
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary siblings of ``path`` left by killed runs; return what was removed.

    A sibling is stale when its name was made by :func:`temp_sibling` for ``path`` on this
    host and its process is no longer alive (:func:`pid_alive`). Each removal is logged with
    its size; siblings made on other hosts are named in a warning and left alone (their run
    may be alive there). A stale trash directory of :func:`replace_dir` (tag ``old``) whose run died
    between its two renames holds the only complete copy of ``path``: it is put back when
    ``path`` is missing, instead of being deleted.
    """
    p = Path(path)
    prefix, suffix = f".{p.stem}.", p.suffix
    try:
        entries = [e for e in os.scandir(p.parent) if e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        middle = entry.name[len(prefix): len(entry.name) - len(suffix) if suffix else None]
        m = _TEMP_MIDDLE.fullmatch(middle)
        if not entry.name.endswith(suffix) or m is None:
            continue
        stale = Path(entry.path)
        if m["host"] not in (None, HOST_TAG):
            log.warning("left alone %s: made on another host (remove it if no run is active "
                        "there)", stale)
            continue
        if pid_alive(int(m["pid"])):
            continue
        try:  # another run may be cleaning up the same leftovers right now
            if m["tag"] == "old" and not (p.exists() or p.is_symlink()):
                os.replace(stale, p)
                log.warning("restored %s from %s, left by a killed run (pid %s)", p,
                            stale.name, m["pid"])
                continue
            size = _tree_size(stale)
        except FileNotFoundError:
            continue
        remove_path(stale)
        removed.append(stale)
        log.warning("removed %s (%.1f MiB), left by a killed run (pid %s)", stale, size / 2**20,
                    m["pid"])
    return removed


def _tree_size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*"))


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove a file, symlink or directory tree if it exists (no error if it does not)."""
    p = Path(path)
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    elif p.is_dir():
        shutil.rmtree(p, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Persist a rename on POSIX (no-op where directories cannot be opened)."""
    if os.name == "posix":
        _fsync_file(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on normal exit move it to ``path``, on error delete it.

    The parent directory of ``path`` is created if needed. If the body finishes without
    creating the temporary file, :class:`FileNotFoundError` is raised (a silent no-op would
    hide a bug). The temporary path may also be a directory; it then replaces ``path`` via
    :func:`replace_dir`.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink():
            replace_dir(tmp, final)
            return
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_output: nothing was written to the temporary file for {final}")
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, final)
        if fsync:
            _fsync_dir(final.parent)
    except BaseException as exc:
        remove_path(tmp)
        if NoSpaceError.caused(exc):
            raise NoSpaceError(final) from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return ``Path(path)``."""
    final = Path(path)
    with atomic_output(final, fsync=fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return final


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    newline: str | None = "\n",
    fsync: bool = True,
) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings by default)."""
    final = Path(path)
    with atomic_output(final, fsync=fsync) as tmp:
        with open(tmp, "w", encoding=encoding, newline=newline) as f:
            f.write(text)
    return final


def replace_dir(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Move directory ``src`` to ``dest``, replacing an existing ``dest`` as a whole.

    ``src`` and ``dest`` must be on the same filesystem (use a sibling of ``dest``). An existing
    ``dest`` is first renamed to a hidden trash sibling, ``src`` is renamed into place, then the
    trash is deleted. At every instant ``dest`` is either the complete old tree, absent for the
    instant between the two renames, or the complete new tree — never a partial one.
    """
    s, d = Path(src), Path(dest)
    trash: Path | None = None
    if d.exists() or d.is_symlink():
        trash = temp_sibling(d, "old")
        os.replace(d, trash)
    try:
        os.replace(s, d)
    except BaseException:
        if trash is not None and not d.exists():
            os.replace(trash, d)  # put the old tree back
        raise
    _fsync_dir(d.parent)
    if trash is not None:
        remove_path(trash)
    return d


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` as a whole.

    On error the temporary directory is deleted and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, final)
    except BaseException as exc:
        remove_path(tmp)
        if NoSpaceError.caused(exc):
            raise NoSpaceError(final) from None
        raise
