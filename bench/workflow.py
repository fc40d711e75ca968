"""Benchmark: the cost of Snakemake's and DVC's bookkeeping on the full-scale DAG.

Goals (issue #9): `snakemake -n` on the full-scale DAG < 5 s; a no-op run < 10 s. The
baseline, run in the same process, is `snakemake --version`: Snakemake's start-up alone,
the floor under every invocation. The DAG is the repository's at the full scale (where
params.yaml has scales), in a throw-away copy: first with nothing built (every job
planned), then with every output present and recorded (placeholders, marked done with
`snakemake --touch`), which is what a no-op run after a complete run sees.

    python bench/workflow.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
FILES = ("Snakefile", "workflow", "profiles", "src", ".dvcignore", "params.yaml", "dvc.yaml")

sys.path.insert(0, str(REPO / "src"))
from spectnet.workflow import snakemake_jobs  # noqa: E402

# `snakemake --version` with the SLURM executor plugin hidden: what the plugin (installed
# for cluster runs) adds to every Snakemake start (it imports pandas, asks scontrol).
WITHOUT_SLURM_PLUGIN = """
import pkgutil, sys
found = pkgutil.iter_modules
pkgutil.iter_modules = lambda *a, **k: (m for m in found(*a, **k)
                                        if not m.name.startswith("snakemake_executor_plugin_slurm"))
from snakemake.cli import main
sys.argv = ["snakemake", "--version"]
main()
"""


def seconds(args: list[str], cwd: Path, repeat: int, expect: str | None = None) -> float:
    """Median wall time of a command (it must succeed, and print ``expect`` if given)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or (expect and expect not in output):
            raise SystemExit(f"{' '.join(args)} failed:\n{output}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spectnet-bench-workflow-"))
    try:
        for name in FILES:
            src = REPO / name
            copy = shutil.copytree if src.is_dir() else shutil.copy
            copy(src, work / name)
        params = yaml.safe_load((work / "params.yaml").read_text())
        if "scale" in params:
            params["scale"] = "full"
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        smk = str(BIN / "snakemake")
        t_version = seconds([smk, "--version"], work, args.repeat)
        t_bare = seconds([sys.executable, "-c", WITHOUT_SLURM_PLUGIN], work, args.repeat)
        t_plan = seconds([smk, "-n", "--cores", "2", "--quiet"], work, args.repeat)
        t0 = time.perf_counter()
        jobs, _ = snakemake_jobs(work)
        t_dag = time.perf_counter() - t0
        for job in jobs:                        # every output present: a complete run
            for path, is_dir in job.outputs:
                target = work / path
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
        seconds([smk, "--touch", "--forceall", "--no-hooks", "--cores", "1"], work, 1)
        done = "Nothing to be done"
        t_dry = seconds([smk, "-n", "--cores", "2"], work, args.repeat, expect=done)
        t_noop = seconds([smk, "--cores", "2"], work, args.repeat, expect=done)

        print(f"full-scale DAG: {len(jobs)} jobs, {os.cpu_count()} cores; medians of "
              f"{args.repeat}; baseline `snakemake --version` {t_version:.2f} s")
        print(f"{'step':<44}{'seconds':>8}{'x baseline':>12}{'goal':>9}")
        rows = [("snakemake --version, no SLURM plugin", t_bare, None),
                ("snakemake -n, nothing built (all jobs)", t_plan, 5.0),
                ("snakemake -n, all up to date", t_dry, 5.0),
                ("snakemake, no-op run", t_noop, 10.0),
                ("DAG for dvc.yaml (in process, with import)", t_dag, None)]
        for name, value, goal in rows:
            verdict = "" if goal is None else f"< {goal:.0f} s  " + (
                "OK" if value < goal else "MISSED")
            print(f"{name:<44}{value:>8.2f}{value / t_version:>11.1f}x  {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
