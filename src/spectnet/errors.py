"""Exception hierarchy shared by the whole :mod:`spectnet` package.

Every error that the package raises on purpose derives from :class:`SpectNetError`, so a
command-line front end can catch that one class, print the message and exit non-zero without
a traceback, while genuine bugs (``TypeError`` etc.) still surface with a traceback.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

__all__ = [
    "SpectNetError",
    "BadInputError",
    "DownloadError",
    "ChecksumError",
    "ArchiveError",
    "UnsafeArchiveError",
    "CorruptArchiveError",
    "NoSpaceError",
    "Problem",
]

#: One problem found in the input: (where — a path, ``path:line`` or a record name —, why).
Problem = tuple[str, str]


class SpectNetError(Exception):
    """Base class of all deliberate SpectNet errors."""


class BadInputError(SpectNetError):
    """The input data are invalid; carries *all* problems found, not just the first.

    ``problems`` is a list of ``(where, reason)`` pairs. ``str(err)`` gives the summary line
    followed by one ``  where: reason`` line per problem, so the user sees everything that
    needs fixing in one go.
    """

    def __init__(
        self,
        message: str,
        problems: Iterable[tuple[str | PathLike[str], str]] = (),
        *,
        max_lines: int | None = 200,
    ) -> None:
        self.message = message
        self.problems: list[Problem] = [(str(where), str(why)) for where, why in problems]
        self.max_lines = max_lines
        super().__init__(self._format())

    def _format(self) -> str:
        n = len(self.problems)
        if n == 0:
            return self.message
        head = f"{self.message} ({n} problem{'s' if n != 1 else ''}):"
        shown = self.problems if self.max_lines is None else self.problems[: self.max_lines]
        lines = [head] + [f"  {where}: {why}" for where, why in shown]
        if len(shown) < n:
            lines.append(f"  ... and {n - len(shown)} more")
        return "\n".join(lines)


class DownloadError(SpectNetError):
    """A file could not be fetched (after all retries), or the server refused it."""


class ChecksumError(DownloadError):
    """A downloaded (or copied) file does not have the expected digest (SHA-256 unless named)."""

    def __init__(self, url: str, path: str | PathLike[str], expected: str, actual: str,
                 algorithm: str = "sha256") -> None:
        self.url = url
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm
        name = {"sha256": "SHA-256", "md5": "MD5"}.get(algorithm, algorithm)
        super().__init__(
            f"{name} mismatch for {self.path} (from {url}): expected {expected}, got {actual}; "
            "the partial download was deleted, re-run to fetch it again"
        )


class ArchiveError(SpectNetError):
    """Base class of archive (zip) problems."""


class UnsafeArchiveError(ArchiveError):
    """Archive members would be written outside the extraction directory (or are links).

    ``problems`` lists every unsafe member as ``(member name, reason)``.
    """

    def __init__(self, archive: str | PathLike[str], problems: Iterable[tuple[str, str]]) -> None:
        self.archive = str(archive)
        self.problems = list(problems)
        lines = [f"  member {member!r} {reason}" for member, reason in self.problems]
        n = len(self.problems)
        super().__init__("\n".join([
            f"refusing to extract {self.archive}: {n} unsafe member{'s' if n != 1 else ''}, "
            "nothing was extracted:", *lines]))


class CorruptArchiveError(ArchiveError):
    """An archive is not a valid zip file, or a member fails its CRC check."""


class NoSpaceError(SpectNetError):
    """The filesystem that an output goes to is full (or the user's quota is spent).

    Raised in place of ``OSError: [Errno 28]`` (and of torch's ``unexpected pos`` error,
    which hides it) by the writers of :mod:`spectnet.atomic`, which have removed their
    temporary files by then: the output's previous content, if any, is unchanged.
    """

    #: The errors that mean "no space": disk full, quota exceeded.
    ERRNOS = (errno.ENOSPC, errno.EDQUOT)

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        where = next((p for p in (self.path, *self.path.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(where).free / 2**20
        super().__init__(f"{self.path}: no space left on device ({free:.1f} MiB free there); "
                         f"nothing was written, its previous content (if any) is unchanged; "
                         f"free some space and run the step again")

    @classmethod
    def caused(cls, exc: BaseException) -> bool:
        """Whether ``exc`` (or an exception it was raised from) means "no space"."""
        while exc is not None:
            if isinstance(exc, cls) or isinstance(exc, OSError) and exc.errno in cls.ERRNOS:
                return True
            exc = exc.__cause__ or exc.__context__
        return False
