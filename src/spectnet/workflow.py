"""Snakemake and DVC over one DAG: the Snakefile is the source, ``dvc.yaml`` is generated.

The design, and why:

- **One DAG.** ``dvc.yaml`` holds one stage per job of the Snakemake DAG (wildcard jobs
  included, e.g. one stage per seed), written by ``spectnet workflow dvc-yaml`` from the
  Snakefile: its deps are the job's inputs (data and the code files the rule lists), its
  params the keys of ``spectnet.params.STEP_PARAMS`` the rule reads, its outs the job's
  outputs. A test checks that the committed file is current.
- **Snakemake is the one executor.** A stage's command runs its job through Snakemake
  (``snakemake --force --no-hooks --allowed-rules RULE -- OUTPUTS``), so Snakemake's
  records (params, code, input checksums, modification times) are updated whichever tool
  started the step, and ``dvc repro`` / ``dvc exp run`` leave ``snakemake -n`` with nothing to do. The rule's
  command template follows as a shell comment, so that editing it changes the stage's
  ``cmd`` for DVC exactly when it changes the rule's code for Snakemake. Every out is
  ``persist``: DVC never deletes outputs or restores them from its run-cache behind
  Snakemake's back (a restore would leave Snakemake's records describing other params).
- **Snakemake runs are recorded in DVC.** After a run, the Snakefile's ``onsuccess`` /
  ``onerror`` handlers call :func:`record_in_dvc` with the jobs that finished, which
  ``dvc commit`` s exactly their stages: ``dvc status`` is clean after a full run, and a
  stage Snakemake did not rerun is never marked current. Not after ``--touch`` (nothing
  ran) and not inside a DVC stage (``--no-hooks``: DVC records the stage itself).
- **Sharing.** After ``dvc pull`` (or ``dvc checkout``, ``dvc exp apply``) the data carry
  new modification times and Snakemake wants to rerun everything. :func:`sync` first lets
  DVC verify that every output matches ``dvc.lock`` and refuses, naming what differs, if
  one does not; only then does it bring Snakemake's records up to date
  (``snakemake --touch``).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from spectnet.errors import SpectNetError
from spectnet.params import STEP_PARAMS, params_slice, step_keys

log = logging.getLogger(__name__)

DVC_YAML_HEADER = """\
# Generated from the Snakefile by `spectnet workflow dvc-yaml`; do not edit (a test checks
# that it is current). One stage per Snakemake job. Each stage runs its job through
# Snakemake, so whichever tool runs a step, the other agrees afterwards (see
# spectnet/workflow.py). `dvc repro` runs the pipeline, `dvc exp run -S key=value` a
# variant, `dvc exp show` compares runs; after `dvc pull`, `spectnet workflow sync`.
"""

#: Outputs under results/ are small and kept in git: DVC hashes them but does not cache them.
RESULTS_DIR = "results/"
IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}


class WorkflowError(SpectNetError):
    """The Snakefile and dvc.yaml disagree, or DVC refuses what the workflow asks of it."""


@dataclass(frozen=True)
class Job:
    """What dvc.yaml needs to know about one job of the Snakemake DAG."""
    rule: str
    wildcards: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, bool], ...]      # (path, is a directory)
    shell: str | None                          # the rule's command template
    params_json: str | None                    # the params slice the rule passes

    @property
    def stage(self) -> str:
        return stage_name(self.rule, dict(self.wildcards))


def stage_name(rule: str, wildcards: Mapping[str, Any]) -> str:
    """The DVC stage of a job: the rule name, then each wildcard as ``--name-value``.

    DVC allows only letters, digits, ``_`` and ``-`` in a stage name; anything else in a
    wildcard value becomes ``_``.

    Example:
        >>> stage_name("train", {"config": "static-16", "seed": "1"})
        'train--config-static-16--seed-1'
    """
    parts = [rule] + [re.sub(r"[^A-Za-z0-9_-]", "_", f"{k}-{v}")
                      for k, v in wildcards.items()]
    return "--".join(parts)


def _job(job) -> Job:
    """A Snakemake job as a :class:`Job`."""
    params = dict(job.params)
    return Job(rule=job.rule.name,
               wildcards=tuple((k, str(v)) for k, v in job.wildcards_dict.items()),
               inputs=tuple(str(f) for f in job.input),
               outputs=tuple((str(f), bool(f.is_directory)) for f in job.output),
               shell=job.rule.shellcmd,
               params_json=params.get("config"))


def snakemake_jobs(workdir: str | Path = ".") -> tuple[list[Job], dict]:
    """Every job of the Snakefile's DAG for its default target (as ``--forceall`` sees
    it), upstream jobs first, and the validated parameters the Snakefile loaded."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (DAGSettings, OutputSettings, Quietness,
                                          ResourceSettings)
    workdir = Path(workdir).resolve()
    logging.getLogger("snakemake.logging").propagate = False   # its chatter, not ours
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                        snakefile=workdir / "Snakefile", workdir=workdir)
            workflow_api.dag(DAGSettings(forceall=True))
            workflow = workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
            workflow._build_dag()
            dag = workflow.dag
            order = _toposort(dag.jobs, lambda j: dag.dependencies[j].keys(),
                              key=lambda j: stage_name(j.rule.name, j.wildcards_dict))
            return [_job(j) for j in order if j.output], dict(workflow.config)
    except SpectNetError:
        raise
    except Exception as exc:  # Snakemake's own errors: the message is what matters
        raise WorkflowError(f"{workdir / 'Snakefile'}: cannot build the DAG: {exc}") from None


def _toposort(items, upstream, key) -> list:
    """Kahn's algorithm, ties broken by ``key``: a deterministic order, upstream first."""
    items = list(items)
    pending = {item: set(upstream(item)) for item in items}
    order = []
    while pending:
        ready = sorted((i for i, deps in pending.items() if not deps), key=key)
        if not ready:
            raise WorkflowError("the DAG has a cycle")
        for item in ready:
            del pending[item]
            order.append(item)
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def _out_entry(path: str, is_dir: bool) -> tuple[str, dict]:
    """Which dvc.yaml list an output goes to, with its options."""
    if not path.startswith(RESULTS_DIR):
        return "outs", {path: {"persist": True}}
    options = {"cache": False, "persist": True}
    if path.endswith(".json"):
        return "metrics", {path: options}
    if is_dir or Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return "plots", {path: options}
    return "outs", {path: options}


def dvc_stage(job: Job, params: Mapping[str, Any]) -> dict:
    """The dvc.yaml stage of one job.

    Raises:
        WorkflowError: the rule has no shell command, or passes a params slice other
            than the one ``STEP_PARAMS`` declares for it (DVC would track other keys).
    """
    if job.shell is None:
        raise WorkflowError(f"rule {job.rule}: no shell command; workflow rules call the "
                            f"`spectnet` CLI")
    wildcards = dict(job.wildcards)
    keys: list[str] = []
    if job.rule in STEP_PARAMS:
        keys = step_keys(params, job.rule, wildcards)
        passed = json.loads(job.params_json) if job.params_json else None
        if passed != params_slice(params, job.rule, wildcards):
            raise WorkflowError(f"rule {job.rule}: its params.config is not the slice "
                                f"STEP_PARAMS[{job.rule!r}] declares ({', '.join(keys)})")
    elif job.params_json is not None:
        raise WorkflowError(f"rule {job.rule}: passes params but has no STEP_PARAMS entry")
    outputs = [path for path, _ in job.outputs]
    template = " ".join(job.shell.split())
    cmd = (f"snakemake --force --no-hooks --allowed-rules {job.rule} -- "
           f"{' '.join(shlex.quote(o) for o in outputs)}  # {job.rule}: {template}")
    stage: dict[str, Any] = {"cmd": cmd}
    if job.inputs:
        stage["deps"] = sorted(set(job.inputs))
    if keys:
        stage["params"] = keys
    for path, is_dir in job.outputs:
        kind, entry = _out_entry(path, is_dir)
        stage.setdefault(kind, []).append(entry)
    return stage


def dvc_yaml_text(jobs: Iterable[Job], params: Mapping[str, Any]) -> str:
    """The generated dvc.yaml."""
    stages: dict[str, dict] = {}
    for job in jobs:
        if job.stage in stages:
            raise WorkflowError(f"two jobs map to the DVC stage {job.stage!r}")
        stages[job.stage] = dvc_stage(job, params)
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=10_000,
                          default_flow_style=False)
    return DVC_YAML_HEADER + body


def write_dvc_yaml(workdir: str | Path = ".", check: bool = False) -> bool:
    """Write dvc.yaml from the Snakefile's DAG; with ``check``, only compare.

    Returns:
        whether the file on disk was already current.

    Raises:
        WorkflowError: with ``check``, when it is not current (naming the stages).
    """
    path = Path(workdir) / "dvc.yaml"
    jobs, params = snakemake_jobs(workdir)
    text = dvc_yaml_text(jobs, params)
    current = path.read_text() if path.exists() else ""
    if current == text:
        return True
    if check:
        raise WorkflowError(f"{path} is not the one the Snakefile gives "
                            f"({_describe_difference(current, text)}); run "
                            f"`spectnet workflow dvc-yaml` and commit it")
    from spectnet.atomic import atomic_write_text
    atomic_write_text(path, text)
    return False


def _describe_difference(current: str, expected: str) -> str:
    have = (yaml.safe_load(current) or {}).get("stages", {}) if current else {}
    want = yaml.safe_load(expected)["stages"]
    parts = []
    if missing := sorted(set(want) - set(have)):
        parts.append(f"missing stages: {', '.join(missing)}")
    if extra := sorted(set(have) - set(want)):
        parts.append(f"stages with no job: {', '.join(extra)}")
    if changed := sorted(s for s in set(want) & set(have) if want[s] != have[s]):
        parts.append(f"stages that differ: {', '.join(changed)}")
    return "; ".join(parts) or "formatting differs"


# ------------------------------------------------------------------------ running DVC
def _tool(name: str) -> str:
    """The executable beside this Python (the project's environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def _run(args: list[str], workdir: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=workdir, text=True, capture_output=True, **kwargs)


def record_in_dvc(finished_jobs: Iterable, workdir: str | Path = ".",
                  overridden: Iterable[str] = ()) -> list[str]:
    """``dvc commit`` the stages of the Snakemake jobs that just ran.

    Called by the Snakefile's ``onsuccess`` / ``onerror`` handlers with
    ``workflow.dag.finished_jobs``. Does nothing outside a DVC repository. A job with no
    stage (dvc.yaml not current) or a DVC failure gives a warning, never a failed run:
    the outputs are there; only DVC's record of them is missing.

    Args:
        overridden: params keys that ``--config`` set to other values than params.yaml.
            DVC reads params.yaml only, so such a run is not recorded (a warning says so).

    Returns:
        the stages committed.
    """
    workdir = Path(workdir)
    names = sorted({stage_name(j.rule.name, j.wildcards_dict) for j in finished_jobs
                    if j.output})
    if not names or not (workdir / ".dvc").is_dir() or not (workdir / "dvc.yaml").exists():
        return []
    if overridden := list(overridden):
        log.warning("not recorded in DVC: --config changed %s from params.yaml, which is "
                    "what DVC versions (edit params.yaml, or `dvc exp run -S key=value`, "
                    "to version a variant)", ", ".join(overridden))
        return []
    declared = (yaml.safe_load((workdir / "dvc.yaml").read_text()) or {}).get("stages", {})
    unknown = [n for n in names if n not in declared]
    if unknown:
        log.warning("dvc.yaml has no stage for %s: not recorded in DVC (run `spectnet "
                    "workflow dvc-yaml`, then `dvc commit`)", ", ".join(unknown))
    names = [n for n in names if n in declared]
    if names:
        proc = _run([_tool("dvc"), "commit", "--force", "--quiet", *names], workdir)
        if proc.returncode != 0:
            log.warning("`dvc commit` of %s failed, so `dvc status` will report them: %s",
                        ", ".join(names), proc.stderr.strip() or proc.stdout.strip())
            return []
    return names


def dvc_status(workdir: str | Path = ".") -> dict:
    """``dvc status --json``: stage name -> what differs from dvc.lock (empty: clean)."""
    proc = _run([_tool("dvc"), "status", "--json"], Path(workdir))
    if proc.returncode != 0:
        raise WorkflowError(f"`dvc status` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return json.loads(proc.stdout or "{}")


def describe_status(status: Mapping[str, Any]) -> list[str]:
    """One line per stage of ``dvc status --json``: what differs from dvc.lock."""
    lines = []
    for stage, entries in status.items():
        parts = []
        for entry in entries:
            if isinstance(entry, str):
                parts.append(entry)
                continue
            for what, changes in entry.items():
                if isinstance(changes, dict):
                    detail = ", ".join(
                        f"{path} ({change if isinstance(change, str) else 'modified'})"
                        for path, change in changes.items())
                    parts.append(f"{what}: {detail}")
                else:
                    parts.append(f"{what}: {changes}")
        lines.append(f"{stage}: {'; '.join(parts)}")
    return lines


def sync(workdir: str | Path = ".") -> list[str]:
    """Bring Snakemake's records up to date with data DVC has verified (after ``dvc pull``).

    1. dvc.yaml must be the one the Snakefile gives (else DVC's verdict would not cover
       every job);
    2. ``dvc status`` must report every stage's deps, params and outputs equal to
       dvc.lock: otherwise nothing is touched and the error names what differs;
    3. ``snakemake --touch --forceall`` then records every pulled output as Snakemake's
       own: fresh modification times in DAG order, current params and code.

    Returns:
        Snakemake's summary line ("N of N steps (100%) done").

    Raises:
        WorkflowError: at the first step that fails, with what to do about it.
    """
    workdir = Path(workdir)
    if not (workdir / ".dvc").is_dir():
        raise WorkflowError(f"{workdir.resolve()}: not a DVC repository (no .dvc/)")
    write_dvc_yaml(workdir, check=True)
    status = dvc_status(workdir)
    if status:
        raise WorkflowError(
            "the data do not match dvc.lock, so nothing was marked up to date:\n  "
            + "\n  ".join(describe_status(status))
            + "\n(`dvc pull` fetches what dvc.lock names; `dvc repro` rebuilds it)")
    # --forceall: every job, not only those whose modification times are out of order,
    # so that each gets Snakemake's record of its params and code (without one, a later
    # edit of its params would not rerun it).
    touch = _run([_tool("snakemake"), "--touch", "--forceall", "--no-hooks", "--cores", "1"],
                 workdir)
    if touch.returncode != 0:
        raise WorkflowError(f"`snakemake --touch` failed:\n{touch.stdout}{touch.stderr}")
    return [line for line in (touch.stdout + touch.stderr).splitlines()
            if re.match(r"\d+ of \d+ steps", line)]
