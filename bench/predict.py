"""Benchmark of `spectnet predict`: recordings per second per core, today's path against the
batched, exported one, on the 20 recordings a0001-a0020 (same process, one thread each).

Usage::

    python bench/predict.py [--model best.pt] [--repeats N]

Rows:
  before (per file) BASELINE, the path before issue 16: the model file run by torch, one
                    recording per call (`HeartSoundClassifier(best.pt).predict_file` per
                    file), preparation with as many BLAS threads as the library starts
  torch (per file)  the same, preparation on one BLAS thread (as `predict` does now)
  torch (batched)   the same model, beats of consecutive recordings scored together
  onnx (batched)    its ONNX export run by onnxruntime, batched (`predict --model model.onnx`)

Without ``--model`` the model is a static-16 SpectNet ResNet with the default parameters'
architecture and preprocessing, randomly initialised (the time does not depend on the
weights; the labels are compared between the paths, not with the truth).  Preparation
(reading, resampling, filtering, Springer segmentation, cutting beats) is the same in all
rows and is timed separately, because it bounds what a faster model can gain.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from frontend import cpu_description  # noqa: E402

DATA = Path(os.environ.get("SPECTNET_DATA", REPO.parent / "shared" / "data"))


def random_static_model(path: Path) -> Path:
    from spectnet.config import Params
    from spectnet.experiments.heart_sounds import HeartSounds
    from spectnet.models import build_model
    from spectnet.training.checkpoint import save_model

    task = HeartSounds(Params(), DATA)
    run = task.parse_run("static-16")
    spec = task.model_spec(run)
    torch.manual_seed(0)
    return save_model(path, build_model(spec), spec, **task.model_info(run, 0, 0))


def model_flops(path, beats) -> float:
    """Floating-point operations per beat of a forward pass of the model file's network
    (its convolutions and matrix products, which is nearly all of it)."""
    from torch.utils.flop_counter import FlopCounterMode

    from spectnet.training.checkpoint import load_model

    model, _ = load_model(path, torch.device("cpu"))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.from_numpy(beats))
    return counter.get_total_flops() / len(beats)


def timed(fn, repeats):
    """(fastest wall time, its CPU time, result) over ``repeats`` runs after a warm-up."""
    fn()
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a heart-sound model file (default: random static-16)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # per core: every row on one thread (onnxruntime too)

    from spectnet.export import export_model
    from spectnet.prediction import HeartSoundClassifier

    files = [DATA / "physionet2016" / "training-a" / f"a{i:04d}.flac" for i in range(1, 21)]
    missing = [f for f in files if not f.exists()]
    if missing:
        sys.exit(f"missing recordings (set SPECTNET_DATA): {missing[0]}")
    print(f"torch {torch.__version__}, 1 thread per row, {len(files)} recordings, fastest of {args.repeats}")
    print(f"device cpu ({cpu_description()}), load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or random_static_model(Path(tmp) / "static-16.pt")
        onnx = export_model(model, Path(tmp) / "model.onnx", "onnx")
        eager = HeartSoundClassifier(model, device="cpu")
        exported = HeartSoundClassifier(onnx, device="cpu")

        prepare = timed(lambda: [eager._prepare_file(f) for f in files], args.repeats)
        before = HeartSoundClassifier(model, device="cpu")
        before._prepare = before._cut_beats  # the preparation without its BLAS thread limit
        prepare_before = timed(lambda: [before._prepare_file(f) for f in files], args.repeats)
        rows = {
            "before (per file)": timed(lambda: [before.predict_file(f) for f in files],
                                       args.repeats),
            "torch (per file)": timed(lambda: [eager.predict_file(f) for f in files], args.repeats),
            "torch (batched)": timed(lambda: list(eager.predict_files(files)), args.repeats),
            "onnx (batched)": timed(lambda: list(exported.predict_files(files)), args.repeats),
        }
        flops_per_beat = model_flops(model, prepare[2][0].beats[:4])
    n_beats = sum(len(p.beats) for p in prepare[2])
    print(f"\npreparation alone (read, resample, filter, segment, cut {n_beats} beats): "
          f"{prepare[0]:.2f} s wall, {prepare[1]:.2f} s CPU on one BLAS thread; "
          f"{prepare_before[0]:.2f} s wall, {prepare_before[1]:.2f} s CPU before")
    base = rows["before (per file)"]
    print(f"  {'path':<18}{'wall s':>8}{'CPU s':>8}{'rec/s/core':>12}{'speed-up':>10}{'same labels':>13}")
    labels = [r["label"] for r in base[2]]
    for name, (wall, cpu, results) in rows.items():
        same = [r["label"] for r in results] == labels
        print(f"  {name:<18}{wall:>8.2f}{cpu:>8.2f}{len(files) / cpu:>12.2f}{base[1] / cpu:>9.2f}x{str(same):>13}")
    speedup = base[1] / rows["onnx (batched)"][1]
    ceiling = base[1] / prepare[1]
    print(f"\nGoal: >= 3x today's recordings/s per core (CPU time), same labels: {speedup:.2f}x -> "
          f"{'MET' if speedup >= 3 and [r['label'] for r in rows['onnx (batched)'][2]] == labels else 'MISSED'} "
          f"(preparation alone caps it at {ceiling:.2f}x)")
    # What is left is arithmetic: the ResNet's convolutions, which no runtime can skip.
    flops = flops_per_beat * n_beats
    model_cpu = rows["onnx (batched)"][1] - prepare[1]
    budget = base[1] / 3 - prepare[1]  # what 3x leaves the model
    print(f"the model: {flops_per_beat / 1e6:.0f} MFLOP per beat, {flops / 1e9:.0f} GFLOP for the "
          f"{n_beats} beats; onnxruntime ran them in {model_cpu:.2f} CPU s ({flops / model_cpu / 1e9:.0f} "
          f"GFLOP/s on one core); 3x needs the whole path in {base[1] / 3:.2f} CPU s, which leaves the "
          f"model {budget:.2f} s ({flops / max(budget, 1e-9) / 1e9:.0f} GFLOP/s) after preparation")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
