"""Process-level settings for the heavy entry points (training, evaluation, benchmarks).

glibc returns every large freed block to the operating system, so the big tensor
temporaries of a training step are page-faulted in again on every step: on the 2-core
development machine that made the front-end and the CNN about 2x slower
(``bench/frontend.py``). Raising malloc's mmap and trim thresholds keeps the memory
mapped. The thresholds are read once, when the process starts, so the entry point
re-executes itself with them set (:func:`reexec_with_tuned_malloc`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["TUNED_MALLOC_ENV", "malloc_is_tuned", "reexec_with_tuned_malloc"]

#: Environment that keeps large allocations mapped (glibc reads it at start-up).
TUNED_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def malloc_is_tuned() -> bool:
    return all(os.environ.get(k) == v for k, v in TUNED_MALLOC_ENV.items())


def reexec_with_tuned_malloc(argv: list[str] | None = None) -> None:
    """Replace this process by the same command with :data:`TUNED_MALLOC_ENV` set.

    Does nothing when the settings are already there, on a non-glibc platform, or when
    ``SPECTNET_NO_MALLOC_TUNING`` is set (to measure without them).
    """
    if (malloc_is_tuned() or os.environ.get("SPECTNET_NO_MALLOC_TUNING")
            or not sys.platform.startswith("linux")):
        return
    argv = list(sys.argv if argv is None else argv)
    if not argv or not os.path.exists(argv[0]):
        return  # e.g. `python -c`: nothing to re-execute
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **TUNED_MALLOC_ENV})
