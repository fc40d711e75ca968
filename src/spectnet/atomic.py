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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_dir",
    "replace_dir",
    "temp_sibling",
    "remove_path",
]


def temp_sibling(path: str | os.PathLike[str], tag: str = "tmp") -> Path:
    """Return an unused hidden path next to ``path`` that keeps ``path``'s suffix.

    Example: ``out/model.pt`` -> ``out/.model.tmp-1a2b3c4d.pt``.
    """
    p = Path(path)
    token = uuid.uuid4().hex[:12]
    return p.with_name(f".{p.stem}.{tag}-{os.getpid()}-{token}{p.suffix}")


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
    except BaseException:
        remove_path(tmp)
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
    except BaseException:
        remove_path(tmp)
        raise
