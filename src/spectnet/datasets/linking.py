"""Materialise a data set from a source tree: hard links where possible, copies otherwise,
into a destination that is safe to replace."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from spectnet.errors import SpectNetError

log = logging.getLogger(__name__)


class Linker:
    """Hard-link when possible, fall back to copying (once linking fails, copy from then on).

    Hard-linked files share storage with the source: treat them as read-only.
    ``linked`` and ``copied`` count the files placed each way.
    """

    def __init__(self, link: bool = True) -> None:
        self.try_link = link
        self.linked = 0
        self.copied = 0

    def __call__(self, src: Path, dst: Path) -> None:
        if self.try_link:
            try:
                os.link(src, dst)
                self.linked += 1
                return
            except OSError as exc:
                log.info("hard link %s -> %s failed (%s); copying files instead", src, dst, exc)
                self.try_link = False
        shutil.copy2(src, dst)
        self.copied += 1


def check_destination(src: Path, dest: Path, marker: str) -> None:
    """Refuse a destination that overlaps ``src``, or that holds something other than an
    earlier acquisition (recognised by its ``marker`` file), before replacing it."""
    s, d = src.resolve(), dest.resolve()
    if d == s or s in d.parents or d in s.parents:
        raise SpectNetError(f"destination {dest} must not be, contain or lie inside the source {src}")
    if dest.exists():
        if not dest.is_dir():
            raise SpectNetError(f"destination {dest} exists and is not a directory")
        if any(dest.iterdir()) and not (dest / marker).is_file():
            raise SpectNetError(
                f"destination {dest} exists, is not empty and holds no {marker}: refusing to replace it"
            )
