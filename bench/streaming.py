"""Streaming a memory-mapped example set: does reading ahead hide the disk?

Usage::

    python bench/streaming.py [--units N] [--seconds S] [--batch B] [--device D] [--dir DIR]

Scene unit sets larger than ``IN_MEMORY_BYTES`` stay memory-mapped and every batch is
read from disk (spectnet.training.data). This bench writes ``N`` float32 units of ``S`` s
at 22.05 kHz to a file (noise; 882 KB per 10-s unit), then runs one shuffled epoch of
batches through a stand-in training step in the same process, two ways (median of
3 interleaved epochs each):

  sync      BASELINE: ``ExampleSet.batch`` then the step, one after the other (before)
  streamed  ``ExampleSet.batches``: a background thread reads the next two batches
            (into pinned memory on CUDA) while the step computes

The stand-in step is a loop of matrix products calibrated to take as long as reading one
batch (the regime where loading would otherwise double the epoch: a GPU step of the
scene CNN; on this CPU a real scene step takes seconds and the read is a small share).
Before each epoch the file's pages are dropped from the page cache (posix_fadvise
DONTNEED) so the reads go to the disk; the cold/warm read times printed say whether that
worked. Ideal ratio sync / streamed: 2x. The compute runs on one thread so the reader
has the other core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spectnet.runtime import machine_info  # noqa: E402
from spectnet.training.data import ExampleSet  # noqa: E402
from spectnet.training.samplers import ShuffledSampler  # noqa: E402


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def open_set(path: Path, n_units: int) -> ExampleSet:
    waveforms = np.load(path, mmap_mode="r")
    return ExampleSet(waveforms, torch.arange(n_units) % 10, np.zeros(n_units, int),
                      np.arange(n_units).astype(str), tuple(map(str, range(10))))


def calibrated_step(seconds: float, device: torch.device):
    """A step of about ``seconds``: matrix products on ``device`` (the batch is touched
    so the step waits for its transfer)."""
    a = torch.randn(256, 256, device=device)

    def products(n):
        b = a
        for _ in range(n):
            b = torch.tanh(b @ a)
        return b

    def timed(n):
        start = time.perf_counter()
        products(n).sum().item()
        return time.perf_counter() - start
    timed(10)
    n = max(1, round(seconds / (timed(200) / 200)))
    return lambda x: (products(n).sum() + x[:, :1].sum()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=640, help="units in the file (default 640)")
    parser.add_argument("--seconds", type=float, default=10.0, help="unit length (default 10)")
    parser.add_argument("--batch", type=int, default=16, help="units per batch (default 16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write the unit file (default: a temporary directory)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    info = machine_info(device)
    print(f"{info['cpu']} ({', '.join(info['cpu_flags']) or 'no listed flags'}); torch "
          f"{info['torch']}, compute on 1 thread; device {device}"
          + (f" ({info['gpu']})" if info.get("gpu") else ""))
    n_samples = round(args.seconds * 22050)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "units.npy"
        rng = np.random.default_rng(0)
        units = np.lib.format.open_memmap(path, "w+", np.float32, (args.units, n_samples))
        for start in range(0, args.units, 64):
            stop = min(start + 64, args.units)
            units[start:stop] = rng.standard_normal((stop - start, n_samples), np.float32)
        units.flush()
        del units
        os.sync()
        print(f"{args.units} units x {n_samples} samples = {path.stat().st_size / 2**30:.2f} GiB "
              f"at {path}; batches of {args.batch}")

        sampler = ShuffledSampler(args.units, args.batch, seed=0)
        indices = [sampler.next_batch() for _ in range(sampler.steps_per_epoch)]

        def read_epoch(cold: bool) -> float:
            if cold:
                drop_from_page_cache(path)
            examples = open_set(path, args.units)
            start = time.perf_counter()
            for index in indices:
                examples.batch(index)[0].sum().item()
            return (time.perf_counter() - start) / len(indices)

        cold, warm = read_epoch(True), read_epoch(False)
        print(f"read one batch: {cold * 1e3:.1f} ms cold, {warm * 1e3:.1f} ms warm (page cache)")
        step = calibrated_step(cold, device)

        def epoch(streamed: bool) -> float:
            drop_from_page_cache(path)
            examples = open_set(path, args.units)
            start = time.perf_counter()
            if streamed:
                for x, _ in examples.batches(indices):
                    step(x)
            else:
                for index in indices:
                    step(examples.batch(index)[0])
            return time.perf_counter() - start

        epoch(True)  # warm-up (thread pool, allocator)
        rounds = [(epoch(False), epoch(True)) for _ in range(3)]  # interleaved: drift hits both
        times = dict(zip(("sync", "streamed"), map(statistics.median, zip(*rounds))))
    print(f"\n{'epoch':<10}{'s':>8}{'ms/batch':>10}")
    for name, t in times.items():
        print(f"{name:<10}{t:>8.2f}{t / len(indices) * 1e3:>10.1f}")
    print(f"\nsync / streamed: {times['sync'] / times['streamed']:.2f}x "
          f"({len(indices)} batches; the step alone is about {cold * 1e3:.0f} ms; ideal 2x)")


if __name__ == "__main__":
    main()
