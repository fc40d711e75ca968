"""Benchmark the Springer segmenter and beat extraction on PhysioNet 2016.

Segments the 3,153 recordings of training-a..f (the 87 excluded training-e records
left out) with 2 worker processes, and reports speed (seconds per hour of audio for the
decoder alone and for the whole segmentation step), peak memory, beat statistics, and, as
an in-process baseline, the speed of the literal reference loop on a few short records.

Usage:
    .venv/bin/python bench/segmentation.py [--limit N] [--workers 2] [--csv PATH]
"""

from __future__ import annotations

import os

# One BLAS/FFT thread per process: the parallelism is over recordings.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SPECTNET_DATA", ROOT.parent / "shared" / "data")) / "physionet2016"
SUBSETS = "abcdef"


def list_records(data: Path) -> list[str]:
    excluded_file = data / "folds" / "excluded-training-e.txt"
    excluded = {line.strip() for line in excluded_file.read_text().splitlines() if line.strip()}
    names = []
    for sub in SUBSETS:
        for path in sorted((data / f"training-{sub}").glob("*.flac")):
            if path.stem not in excluded:
                names.append(path.stem)
    return names


def process(args):
    """Worker: pre-process, segment and cut beats of one record; returns a stats row."""
    name, data = args
    import scipy.signal
    import soundfile as sf

    from spectnet.segmentation.cycles import extract_beats
    from spectnet.preprocessing.dsp import prefilter
    from spectnet.segmentation import SegmentationError, segment_heart_cycles

    t0 = time.perf_counter()
    raw, fs = sf.read(Path(data) / f"training-{name[0]}" / f"{name}.flac", dtype="float64")
    raw = raw[:60 * fs]
    x = prefilter(scipy.signal.resample_poly(raw, 1000, fs), 1000)
    t1 = time.perf_counter()
    row = {"record": name, "seconds": x.size / 1000, "preprocess_s": t1 - t0}
    try:
        seg = segment_heart_cycles(x)
    except SegmentationError as exc:
        row.update(error=str(exc), n_beats=0, reason=f"segmentation error: {exc}")
        return row, np.zeros(0, dtype=np.int64)
    t2 = time.perf_counter()
    beats, info = extract_beats(x, seg.states)
    _, info_e = extract_beats(x, seg.states, emulate_zero_last_beat=True)
    t3 = time.perf_counter()
    tm = seg.timings
    n_trans = int(np.count_nonzero(np.diff(seg.states)))
    reason = ""
    if info.n_beats == 0:
        reason = (f"< 1 full cycle after alignment ({n_trans} state transitions, "
                  f"HR {seg.heart_rate_bpm:.1f})")
    row.update(
        segment_s=t2 - t1, decode_s=tm["decode"], features_s=tm["features"] + tm["filter"],
        beats_s=t3 - t2, hr=seg.heart_rate_bpm, t_sys=seg.systolic_interval_s,
        n_beats=info.n_beats, n_truncated=int(info.truncated.sum()),
        n_nonzero_emulated=int((~info_e.zero_emulated).sum()),
        zero_frame=int(seg.states[0] == 0), n_s1=len(seg.s1_onsets),
        flags="; ".join(seg.flags), reason=reason, error="",
    )
    return row, info.true_length[:-1] if info.n_beats else np.zeros(0, dtype=np.int64)


def literal_baseline(data: Path, names: list[str]) -> list[tuple[str, float, float, float]]:
    """(record, seconds of audio, literal-loop s, vectorised s) for a few short records."""
    spec = importlib.util.spec_from_file_location("_seg_tests", ROOT / "tests" /
                                                  "test_segmentation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from spectnet.segmentation import default_params, segment_heart_cycles
    from spectnet.segmentation.emissions import emission_probs
    from spectnet.segmentation.viterbi import viterbi_decode

    out = []
    for name in names:
        import scipy.signal
        import soundfile as sf

        from spectnet.preprocessing.dsp import prefilter
        raw, fs = sf.read(data / f"training-{name[0]}" / f"{name}.flac", dtype="float64")
        x = prefilter(scipy.signal.resample_poly(raw[:60 * fs], 1000, fs), 1000)
        seg = segment_heart_cycles(x)
        params = default_params()
        b = emission_probs(seg.features, params)
        p = seg.durations.probs
        t0 = time.perf_counter()
        _, psi_ref, qt_ref = mod.literal_viterbi(b, p, params.pi_vector)
        t1 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            res = viterbi_decode(b, p, params.pi_vector)
        t2 = time.perf_counter()
        assert np.array_equal(res.psi_d, psi_ref) and np.array_equal(res.states, qt_ref)
        out.append((name, x.size / 1000, t1 - t0, (t2 - t1) / reps))
    return out


def pct(a, qs=(0, 1, 5, 25, 50, 75, 95, 99, 100)):
    a = np.asarray(a)
    return "  ".join(f"p{q}={np.percentile(a, q):.0f}" for q in qs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="only the first N records")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--csv", type=Path, default=ROOT / "bench" / "out" / "segmentation.csv",
                    help="per-record results (default bench/out/segmentation.csv)")
    ap.add_argument("--baseline", nargs="*", default=["b0033", "a0002", "c0024"],
                    help="records for the literal-loop baseline (none to skip)")
    args = ap.parse_args(argv)

    names = list_records(args.data)
    print(f"records: {len(names)} (training-{SUBSETS[0]}..{SUBSETS[-1]} minus excluded)")
    if args.limit:
        names = names[:args.limit]
    t0 = time.perf_counter()
    rows, cycle_lengths = [], []
    jobs = [(n, str(args.data)) for n in names]
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            for row, lengths in pool.imap_unordered(process, jobs, chunksize=8):
                rows.append(row)
                cycle_lengths.append(lengths)
    else:
        for job in jobs:
            row, lengths = process(job)
            rows.append(row)
            cycle_lengths.append(lengths)
    wall = time.perf_counter() - t0
    rows.sort(key=lambda r: r["record"])
    ok = [r for r in rows if not r.get("error")]
    hours = sum(r["seconds"] for r in rows) / 3600
    decode = sum(r["decode_s"] for r in ok)
    segment = sum(r["segment_s"] for r in ok)
    prep = sum(r["preprocess_s"] for r in rows)
    beats_s = sum(r["beats_s"] for r in ok)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"recordings segmented: {len(ok)} of {len(rows)}  ({len(rows) - len(ok)} errors)")
    print(f"audio: {hours:.3f} h ({hours * 3600:.0f} s, first 60 s of each record)")
    print(f"wall (read + preprocess + segment + beats, {args.workers} workers): {wall:.1f} s")
    print("CPU s per hour of audio (summed over workers):")
    print(f"  decoder (Viterbi + backtrack)             : {decode / hours:8.2f}")
    print(f"  full segmentation step (filter, features, HR, emissions, decode, expand): "
          f"{segment / hours:8.2f}")
    print(f"  read + resample + prefilter (outside segmenter): {prep / hours:8.2f}")
    print(f"  beat extraction (both variants)          : {beats_s / hours:8.2f}")
    stage = {k: 0.0 for k in ("features_s",)}
    for r in ok:
        stage["features_s"] += r["features_s"]
    print(f"  of which features (incl. second prefilter): {stage['features_s'] / hours:8.2f}")
    print(f"peak RSS: main {self_rss:.0f} MiB, largest child {child_rss:.0f} MiB")

    lengths = np.concatenate(cycle_lengths) if cycle_lengths else np.zeros(0)
    n_beats = np.array([r["n_beats"] for r in rows])
    total = int(n_beats.sum())
    nonzero_emulated = int(sum(r.get("n_nonzero_emulated", 0) for r in ok))
    print(f"\nbeats (one per complete cycle, last one included): {total}")
    print(f"  with emulated zero last beat: {total} rows, of which {nonzero_emulated} non-zero "
          f"({total - nonzero_emulated} all-zero last beats)")
    print(f"  paper: 84,425 cardiac cycles; ours - paper = {total - 84425:+d}")
    print(f"  beats per recording: mean {n_beats.mean():.1f}  {pct(n_beats)}")
    if lengths.size:
        print(f"  cycle length (samples, S1-to-S1, excluding last beats): {pct(lengths)}")
    print(f"  truncated beats (> 2500 samples): "
          f"{sum(r.get('n_truncated', 0) for r in ok)} "
          f"(S1-to-S1 > 2500 among interior cycles: {int(np.sum(lengths > 2500))})")
    zero = [r for r in rows if r["n_beats"] == 0]
    print(f"  recordings with 0 beats: {len(zero)}")
    for r in zero:
        print(f"    {r['record']}: {r['reason']}")
    hrs = np.array([r["hr"] for r in ok])
    print(f"HR bpm: median {np.median(hrs):.1f}, 5-95 % {np.percentile(hrs, 5):.1f}-"
          f"{np.percentile(hrs, 95):.1f}; records starting with the 0 frame: "
          f"{np.mean([r['zero_frame'] for r in ok]) * 100:.1f} %")
    flagged = [r for r in ok if r["flags"]]
    print(f"records with flags: {len(flagged)}")
    for r in flagged[:20]:
        print(f"    {r['record']}: {r['flags']}")

    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted({k for r in rows for k in r})
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        print(f"per-record table: {args.csv}")

    if args.baseline:
        print("\nliteral reference loop vs vectorised decoder (in-process, 1 core):")
        for name, secs, lit, vec in literal_baseline(args.data, args.baseline):
            print(f"  {name} ({secs:.1f} s audio): literal {lit:.2f} s, vectorised "
                  f"{vec * 1000:.1f} ms, ratio {lit / vec:.0f}x; identical psi_d and qt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
