"""Process-pool helpers shared by the per-recording steps."""

from __future__ import annotations


def single_thread_worker() -> None:
    """Pool initializer: one BLAS, OpenMP and torch thread per worker process.

    The steps parallelise across recordings, one process per core. Letting each worker
    also start a BLAS thread per core oversubscribes the machine (OpenBLAS threads spin
    while they wait), which made segmentation three times slower on 2 cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)


def progress_bar(iterable, *, total: int, desc: str, enabled: bool = True):
    """A tqdm bar over per-recording results; sparse (every 10 s) when stderr is not a
    terminal, so that workflow logs stay readable."""
    import sys

    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="rec", disable=not enabled,
                mininterval=0.1 if sys.stderr.isatty() else 10.0)
