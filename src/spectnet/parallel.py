"""Process-pool helpers shared by the per-recording steps."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from contextlib import contextmanager


@contextmanager
def worker_pool(workers: int, initializer=None, initargs=()):
    """A fork pool of ``workers`` processes (a context manager that terminates it on
    exit), each set up by :func:`single_thread_worker` and then ``initializer(*initargs)``.

    SIGTERM is held back while the pool is built. In the workers it stays blocked until
    they have restored its default action: a fork inherits the parent's Python handler,
    and a SIGTERM that arrived while a new worker was still in C code (a slow ``import
    torch``) was dropped once the default action was set, so the worker lived on and
    the parent, terminating the pool, waited for it forever. In the parent it is
    recorded and raised again once the pool exists, so that no worker outlives it.
    """
    received = []
    main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM)
    if main_thread:
        signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_init_worker, initargs=(initializer, initargs))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if main_thread:
            signal.signal(signal.SIGTERM, handler)
    try:
        if received:
            signal.raise_signal(signal.SIGTERM)   # the step's own SIGTERM handling
        yield pool
    finally:
        pool.terminate()


def _init_worker(initializer, initargs) -> None:
    single_thread_worker()
    if initializer is not None:
        initializer(*initargs)


def single_thread_worker() -> None:
    """Pool initializer: the worker dies quietly with its parent (:func:`exit_with_parent`)
    and uses one BLAS, OpenMP and torch thread.

    The steps parallelise across recordings, one process per core. Letting each worker
    also start a BLAS thread per core oversubscribes the machine (OpenBLAS threads spin
    while they wait), which made segmentation three times slower on 2 cores.
    """
    exit_with_parent()
    import torch
    from threadpoolctl import threadpool_limits

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
    # a SIGTERM sent while it was blocked (see worker_pool) now ends the worker
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
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
