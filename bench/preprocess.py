"""Benchmark: acquire the PhysioNet 2016 set from a local copy and preprocess all of it.

Goals (issue #2): all 3,240 recordings acquired + preprocessed in < 60 s wall on 2 cores,
peak memory < 2 GiB, `snakemake -n` in < 5 s. The baseline, run in the same process, is
the same preprocessing done serially with the reference's O(n * passes) spike removal.

    python bench/preprocess.py [--data ../shared/data/physionet2016] [--baseline-records 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from spectnet.config import FoldsConfig, PhysioNetConfig, PreprocessConfig  # noqa: E402
from spectnet.datasets.physionet import acquire  # noqa: E402
from spectnet.preprocessing.heart_sounds import preprocess_dataset, preprocess_signal, read_audio  # noqa: E402
from test_dsp import reference_spike_removal  # noqa: E402


def peak_mib(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def serial_seconds(raw: Path, n: int, reference: bool) -> float:
    """Seconds for the first ``n`` recordings in one process; ``reference`` swaps in the
    literal O(n * passes) spike-removal loop of the MATLAB code."""
    records = pd.read_csv(raw / "records.csv").head(n)
    config = PreprocessConfig(remove_spikes=not reference)
    start = time.perf_counter()
    for path in records["audio_path"]:
        y = preprocess_signal(read_audio(raw / path, 2000), 2000, config)
        if reference:
            reference_spike_removal(y, 1000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "SPECTNET_DATA", REPO.parent / "shared" / "data")) / "physionet2016")
    parser.add_argument("--baseline-records", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spectnet-bench-"))
    try:
        raw, out = work / "raw", work / "interim"
        t0 = time.perf_counter()
        folds = FoldsConfig(source="local", local_path=str(args.data / "folds"))
        acquire(PhysioNetConfig(source="local", local_path=str(args.data), folds=folds),
                raw, cache_dir=work / "cache")
        t_acquire = time.perf_counter() - t0
        t0 = time.perf_counter()
        manifest = preprocess_dataset(raw, out, PreprocessConfig(), workers=os.cpu_count(),
                                      progress=False)
        t_pre = time.perf_counter() - t0
        hours = manifest["duration_s"].sum() / 3600
        n = args.baseline_records
        t_reference = serial_seconds(raw, n, reference=True)
        t_serial = serial_seconds(raw, n, reference=False)

        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "2",
                        "--quiet"], cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                                                  f"{os.environ['PATH']}"})
        t_dry = time.perf_counter() - t0

        total = t_acquire + t_pre
        print(f"records: {len(manifest)} ({int(manifest['excluded'].sum())} excluded), "
              f"{hours:.2f} h of audio at 1 kHz, {os.cpu_count()} cores")
        print(f"{'step':<34}{'value':>12}{'goal':>12}")
        print(f"{'acquire (local, hard links)':<34}{t_acquire:>11.2f}s")
        print(f"{'preprocess (all records)':<34}{t_pre:>11.2f}s")
        print(f"{'acquire + preprocess':<34}{total:>11.2f}s{'< 60 s':>12}  "
              f"{'OK' if total < 60 else 'MISSED'}")
        print(f"{'peak RSS, main process':<34}{peak_mib(resource.RUSAGE_SELF):>9.0f}MiB{'< 2048':>12}")
        print(f"{'peak RSS, largest worker':<34}{peak_mib(resource.RUSAGE_CHILDREN):>9.0f}MiB")
        print(f"{'snakemake -n':<34}{t_dry:>11.2f}s{'< 5 s':>12}  "
              f"{'OK' if t_dry < 5 else 'MISSED'}")
        print(f"first {n} records, one process: reference spike-removal loop "
              f"{t_reference:.2f} s, ours {t_serial:.2f} s "
              f"(ratio {t_reference / t_serial:.2f}x)")
        print(f"throughput: {1e3 * t_pre / len(manifest):.1f} ms per record on "
              f"{os.cpu_count()} workers, {t_pre / hours:.1f} s per hour of audio")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
