"""Process-pool helpers shared by the per-recording steps."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys


def single_thread_worker() -> None:
    """Pool initializer: one BLAS, OpenMP and torch thread per worker process; the worker
    dies quietly with its parent (:func:`exit_with_parent`).

    The steps parallelise across recordings, one process per core. Letting each worker
    also start a BLAS thread per core oversubscribes the machine (OpenBLAS threads spin
    while they wait), which made segmentation three times slower on 2 cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    exit_with_parent()
    threadpool_limits(1)
    torch.set_num_threads(1)


def exit_with_parent() -> None:
    """Make this pool worker end silently when its parent ends.

    Ctrl-C is left to the parent (which terminates the pool), SIGTERM kills without a
    traceback, and on Linux the kernel kills the worker when the parent dies, even by
    SIGKILL: otherwise a worker would finish its task and die on a broken pipe with a
    traceback, or block forever on an input that never comes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # died before prctl took effect
        os._exit(1)


def progress_bar(iterable, *, total: int, desc: str, enabled: bool = True):
    """A tqdm bar over per-recording results; sparse (every 10 s) when stderr is not a
    terminal, so that workflow logs stay readable."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="rec", disable=not enabled,
                mininterval=0.1 if sys.stderr.isatty() else 10.0)
