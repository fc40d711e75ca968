"""Snakemake and DVC over one DAG: the Snakefile is the source, ``dvc.yaml`` is generated.

The design, and why:

- **One DAG.** ``dvc.yaml`` holds one stage per job of the Snakemake DAG (wildcard jobs
  included, e.g. one stage per seed), written by ``spectnet workflow dvc-yaml`` from the
  Snakefile: its deps are the job's inputs (data and the sources its command runs), its
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
  commits exactly their stages (:func:`commit_stages`, ``dvc commit --force`` with each
  file parsed once): ``dvc status`` is clean after a full run, and a
  stage Snakemake did not rerun is never marked current. Not after ``--touch`` (nothing
  ran) and not inside a DVC stage (``--no-hooks``: DVC records the stage itself).
- **Sharing.** After ``dvc pull`` (or ``dvc checkout``, ``dvc exp apply``) the data carry
  new modification times and Snakemake wants to rerun everything. :func:`sync` checks
  the cache's objects against their hashes, lets DVC compare every stage with dvc.lock by
  hashing every file again, and brings Snakemake's records up to date (``snakemake
  --touch``) for exactly the stages that match (and whose upstream stages match); it
  names the others, which then run. A corrupt cache object marks nothing.
- **dvc.lock holds this workflow's results only.** Recording a run drops the entries of
  stages dvc.yaml no longer has and, after a scale change, those of the other scale
  (:func:`prune_lock`), and rewrites dvc.yaml if it was generated for another scale.
- **Comparing experiments.** DVC's one metrics file is the headline metrics of every run
  (:func:`write_headline_metrics`); every training run's ``history.csv`` is a declared
  plot (:func:`learning_curves`), so ``dvc plots diff`` overlays two experiments.
- **Code inputs.** A rule's code inputs are the sources its command runs, from the import
  graph (:mod:`spectnet.sources`).
"""

from __future__ import annotations

import hashlib
import itertools
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
from spectnet.params import STEP_PARAMS, load_params, params_slice, step_keys

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
#: DVC's one metrics file: the headline numbers of every run (`spectnet workflow metrics`),
#: so that `dvc exp show` and `dvc metrics diff` compare those; each run's JSON (intervals,
#: per-subset and per-class metrics, confusion matrices) is an ordinary output.
HEADLINE_METRICS = "results/metrics.json"
#: A training step writes its learning curve here, one row per epoch (`epoch` and the
#: selection-set metrics): declared as DVC plots, so `dvc plots diff` overlays experiments.
HISTORY = "history.csv"
#: The learning curves plotted per task: (column, title).
CURVES = (("macc", "selection-set MAcc"), ("loss", "selection-set loss"))


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
    if path == HEADLINE_METRICS:
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


def learning_curves(jobs: Iterable[Job]) -> list[dict]:
    """dvc.yaml's top-level plots: per task (`spectnet TASK train`) and curve, the
    training runs' histories in one plot, so that `dvc plots diff` overlays experiments."""
    runs: dict[str, list[str]] = {}
    for job in jobs:
        command = (job.shell or "").split()
        if command[:1] == ["spectnet"] and command[2:3] == ["train"]:
            runs.setdefault(command[1], []).extend(
                f"{path}/{HISTORY}" for path, is_dir in job.outputs if is_dir)
    return [{f"learning-curves-{task}-{column}": {
                "title": f"{task}: {title} per epoch", "template": "linear", "x": "epoch",
                "y": {path: column for path in sorted(paths)}}}
            for task, paths in sorted(runs.items()) for column, title in CURVES]


def dvc_yaml_text(jobs: Iterable[Job], params: Mapping[str, Any]) -> str:
    """The generated dvc.yaml."""
    jobs = list(jobs)
    stages: dict[str, dict] = {}
    for job in jobs:
        if job.stage in stages:
            raise WorkflowError(f"two jobs map to the DVC stage {job.stage!r}")
        stages[job.stage] = dvc_stage(job, params)
    body = yaml.safe_dump({"stages": stages, "plots": learning_curves(jobs)}, sort_keys=False,
                          width=10_000, default_flow_style=False)
    return DVC_YAML_HEADER + body


def write_headline_metrics(run_files: Iterable[str | Path], out: str | Path) -> dict:
    """The headline numbers of each run, averaged over its seeds (and folds): for the heart
    sounds recording-level MAcc, sensitivity and specificity; for the scenes clip-level
    accuracy and MACC. Read from the evaluations' JSON files; written to ``out``.

    Returns:
        ``{task: {run: {metric: mean}}}``, as written.
    """
    from spectnet.atomic import atomic_write_text
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for path in run_files:
        try:
            run = json.loads(Path(path).read_text())
            metrics = run["metrics"][run["levels"][0]]  # the group level: recordings, clips
            task, keys = (("scenes", ("accuracy", "macc")) if run["task"] == "acoustic-scenes"
                          else ("heart_sounds", ("macc", "sensitivity", "specificity")))
            for key in keys:
                values.setdefault(task, {}).setdefault(run["run"], {}).setdefault(
                    key, []).append(float(metrics[key]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkflowError(f"{path}: not an evaluation's metrics file ({exc})") from None
    headline = {task: {run: {k: sum(v) / len(v) for k, v in sorted(keys.items())}
                       for run, keys in sorted(runs.items())}
                for task, runs in sorted(values.items())}
    atomic_write_text(out, json.dumps(headline, indent=2) + "\n")
    return headline


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
    prune_lock(workdir)
    return False


def _describe_difference(current: str, expected: str) -> str:
    have = (_load_yaml(current) or {}).get("stages", {}) if current else {}
    want = _load_yaml(expected)["stages"]
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
    """Commit the stages of the Snakemake jobs that just ran (:func:`commit_stages`).

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
    declared, _ = _dvc_files(workdir)
    scale = load_params(workdir / "params.yaml")["scale"]
    other_scale = any(re.match(r"scales\.(?!" + re.escape(scale) + r"\.)", key)
                      for stage in declared.values() for key in stage.get("params", []))
    if other_scale or any(n not in declared for n in names):
        # The scale (or the grid) changed and dvc.yaml did not follow: bring it up to date.
        proc = _run([_tool("spectnet"), "workflow", "dvc-yaml"], workdir)
        if proc.returncode == 0:
            log.warning("dvc.yaml was not the one the Snakefile gives at the %s scale: "
                        "rewritten (commit it)", scale)
        declared, _ = _dvc_files(workdir)
    unknown = [n for n in names if n not in declared]
    if unknown:
        log.warning("dvc.yaml has no stage for %s: not recorded in DVC (run `spectnet "
                    "workflow dvc-yaml`, then `dvc commit`)", ", ".join(unknown))
    if dropped := prune_lock(workdir, scale):
        log.info("dropped from dvc.lock (no stage of dvc.yaml, or another scale's results): "
                 "%s", ", ".join(dropped))
    names = [n for n in names if n in declared]
    if names:
        proc = _run([_tool("spectnet"), "workflow", "commit", *names], workdir)
        if proc.returncode != 0:
            log.warning("recording %s in DVC failed, so `dvc status` will report them: %s",
                        ", ".join(names), proc.stderr.strip() or proc.stdout.strip())
            return []
    return names


def commit_stages(names: Iterable[str], workdir: str | Path = ".") -> list[str]:
    """What ``dvc commit --force NAMES`` does, with dvc.yaml and dvc.lock read and written
    once: each named stage's deps and outs are hashed, its outs saved to the cache, and its
    entry in dvc.lock replaced. The CLI parses both files again for every name (pure-Python
    YAML, 6-7 s a stage for this workflow's 0.3 MB dvc.lock): recording the quick grid's
    53 stages took 6 minutes that way, 23 s this way.

    Raises:
        SpectNetError: a name that is not a stage of dvc.yaml (nothing is written).
    """
    from dvc.repo import Repo, lock_repo

    names = list(dict.fromkeys(names))
    with Repo(str(workdir)) as repo, lock_repo(repo):
        stages = {stage.addressing: stage for stage in repo.index.stages}
        if unknown := [n for n in names if n not in stages]:
            raise SpectNetError(f"{Path(workdir) / 'dvc.yaml'}: no stage {', '.join(unknown)}")
        chosen = [stages[n] for n in names]
        for stage in chosen:  # as dvc.repo.commit.commit(force=True) does for each target
            stage.save()
            stage.commit()
        for _, group in itertools.groupby(sorted(chosen, key=lambda s: s.dvcfile.path),
                                          key=lambda s: s.dvcfile.path):
            group = list(group)
            group[0].dvcfile.dump_stages(group, update_pipeline=False)
    return names


def prune_lock(workdir: str | Path = ".", scale: str | None = None) -> list[str]:
    """Drop the entries of dvc.lock that describe no result of this workflow: stages that
    dvc.yaml no longer has and, given ``scale``, stages recorded at another scale (after a
    scale change, those the new run has not reached). DVC would keep their hashes, so that
    `dvc push` warns of objects this repository never had and `dvc pull` fails on them;
    the stages run again anyway (their params changed).

    Returns:
        the stages dropped.
    """
    path = Path(workdir) / "dvc.lock"
    declared, locked = _dvc_files(Path(workdir))
    stale = [name for name, entry in locked.items() if name not in declared or scale not in (
        None, (entry.get("params") or {}).get("params.yaml", {}).get("scale", scale))]
    if stale:
        lock = _load_yaml(path.read_text())
        for name in stale:
            del lock["stages"][name]
        from spectnet.atomic import atomic_write_text
        atomic_write_text(path, yaml.safe_dump(lock, sort_keys=False, width=10_000))
    return stale


def _fresh_state_env(directory: str) -> dict:
    """DVC's environment with an empty state database (in ``directory``): DVC then hashes
    every file it looks at instead of trusting a hash it remembered for the file's inode,
    size and modification time (which `dvc checkout` records without hashing)."""
    import os
    return {**os.environ, "DVC_SITE_CACHE_DIR": directory}


def dvc_status(workdir: str | Path = ".", rehash: bool = False) -> dict:
    """``dvc status --json``: stage name -> what differs from dvc.lock (empty: clean).
    With ``rehash``, every file's hash is computed again (:func:`_fresh_state_env`)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="spectnet-dvc-state-") as state:
        proc = _run([_tool("dvc"), "status", "--json"], Path(workdir),
                    env=_fresh_state_env(state) if rehash else None)
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


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _load_yaml(text: str):
    """``yaml.safe_load`` through libyaml when PyYAML has it: dvc.yaml and dvc.lock are
    0.1 and 0.3 MB here, 1.3 s together in pure Python, 0.18 s in C (the same objects)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _dvc_files(workdir: Path) -> tuple[dict, dict]:
    """The stages of dvc.yaml and of dvc.lock."""
    def stages(name):
        path = workdir / name
        return (_load_yaml(path.read_text()) or {}).get("stages", {}) if path.exists() else {}
    return stages("dvc.yaml"), stages("dvc.lock")


def corrupt_cache_objects(workdir: str | Path = ".") -> list[str]:
    """The objects of DVC's cache that dvc.lock's outputs refer to and whose content does
    not hash to their name, as ``object (path in stage)`` lines. An object that is not
    there is not checked (``dvc status`` reports its output as not in the cache)."""
    workdir = Path(workdir)
    proc = _run([_tool("dvc"), "cache", "dir"], workdir)
    if proc.returncode != 0:
        raise WorkflowError(f"`dvc cache dir` failed: {proc.stderr.strip()}")
    objects = workdir / proc.stdout.strip() / "files" / "md5"
    declared, locked = _dvc_files(workdir)
    cached = {next(iter(out)) for stage in declared.values() for out in stage.get("outs", [])
              if next(iter(out.values())).get("cache", True)}
    corrupt = []

    def check(md5: str, where: str) -> Path | None:
        obj = objects / md5[:2] / md5[2:]
        if obj.is_file() and _md5(obj) != md5.removesuffix(".dir"):
            corrupt.append(f"{obj} ({where})")
            return None
        return obj if obj.is_file() else None

    for name, stage in locked.items():
        for out in stage.get("outs", []):
            if out["path"] not in cached or "md5" not in out:
                continue
            obj = check(out["md5"], f"{out['path']} in stage {name}")
            if obj is not None and out["md5"].endswith(".dir"):
                for entry in json.loads(obj.read_text()):
                    check(entry["md5"], f"{out['path']}/{entry['relpath']} in stage {name}")
    return corrupt


def _upstream(declared: Mapping[str, dict]) -> dict[str, set[str]]:
    """Stage -> the stages whose outputs it depends on (directly)."""
    owner = {next(iter(out)): name for name, stage in declared.items()
             for kind in ("outs", "metrics", "plots") for out in stage.get(kind, [])}
    return {name: {stage for dep in stage_.get("deps", []) for out, stage in owner.items()
                   if dep == out or dep.startswith(out + "/")}
            for name, stage_ in declared.items()}


@dataclass
class SyncResult:
    """What :func:`sync` marked up to date, and why the other stages were not."""
    marked: list[str]
    not_marked: list[str]           # one line per stage: what differs from dvc.lock


def sync(workdir: str | Path = ".") -> SyncResult:
    """Bring Snakemake's records up to date for the data that DVC verifies (after ``dvc
    pull``): exactly the stages whose data match dvc.lock are marked, the others are
    reported and will run.

    1. dvc.yaml must be the one the Snakefile gives (else DVC's verdict would not cover
       every job);
    2. every object of DVC's cache that dvc.lock refers to must hash to its name: a corrupt
       object refuses the whole sync (``dvc checkout`` copies such an object into the
       workspace and records it as matching, without hashing it);
    3. ``dvc status`` with every file hashed again (not DVC's records of modification
       times) gives the stages whose deps, params or outputs differ from dvc.lock, or
       that dvc.lock does not hold (a run that stopped part-way);
    4. the other stages, less those downstream of a stage that differs (Snakemake reruns
       them anyway), are marked: ``snakemake --touch --forceall`` on their outputs
       records them as Snakemake's own (fresh modification times in DAG order, current
       params and code).

    Raises:
        WorkflowError: dvc.yaml is not current, the cache is corrupt, or DVC or
            Snakemake fail; nothing is marked then.
    """
    workdir = Path(workdir)
    if not (workdir / ".dvc").is_dir():
        raise WorkflowError(f"{workdir.resolve()}: not a DVC repository (no .dvc/)")
    write_dvc_yaml(workdir, check=True)
    if corrupt := corrupt_cache_objects(workdir):
        raise WorkflowError(
            "DVC's cache holds objects whose content does not match their hash, so nothing "
            "was marked up to date:\n  " + "\n  ".join(corrupt)
            + "\n(delete them; then `dvc pull` fetches them again and `dvc checkout "
              "--force` restores the outputs)")
    status = dvc_status(workdir, rehash=True)
    declared, locked = _dvc_files(workdir)
    upstream = _upstream(declared)
    marked: list[str] = []
    not_marked = [f"{name}: not in dvc.lock (not run, or run at another scale)"
                  for name in declared if name not in locked]
    not_marked += describe_status({s: status[s] for s in declared if s in status and s in locked})
    for name in declared:                     # generated upstream first
        if name in status:
            continue
        if differing := sorted(u for u in upstream[name] if u not in marked):
            more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
            not_marked.append(f"{name}: upstream of it, {', '.join(differing[:3])}{more} "
                              f"will run")
        else:
            marked.append(name)
    if marked:
        outputs = [next(iter(out)) for name in marked for kind in ("outs", "metrics", "plots")
                   for out in declared[name].get(kind, [])]
        touch = _run([_tool("snakemake"), "--touch", "--forceall", "--no-hooks", "--cores",
                      "1", "--", *outputs], workdir)
        if touch.returncode != 0:
            raise WorkflowError(f"`snakemake --touch` failed:\n{touch.stdout}{touch.stderr}")
    return SyncResult(marked, not_marked)


def pull(workdir: str | Path = ".") -> SyncResult:
    """``dvc pull`` of every stage dvc.lock records, then :func:`sync`.

    Plain ``dvc pull`` also tries the outputs of the stages dvc.lock does not hold yet (a
    run that stopped part-way, or was limited to some targets) and exits 1 on them ("No
    file hash info found ... Is your cache up to date?") after fetching the rest. Here an
    error means what it says: an object that dvc.lock names is on no remote.

    Raises:
        WorkflowError: ``dvc pull`` failed (its message), or :func:`sync` did.
    """
    workdir = Path(workdir)
    declared, locked = _dvc_files(workdir)
    if stages := [name for name in declared if name in locked]:
        proc = _run([_tool("dvc"), "pull", "--quiet", *stages], workdir)
        if proc.returncode != 0:
            raise WorkflowError(f"`dvc pull` of the {len(stages)} stages dvc.lock records "
                                f"failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return sync(workdir)


def show_experiments(workdir: str | Path = ".", dvc_args: Iterable[str] = ()) -> int:
    """``dvc exp show`` of what matters: the params the stages read (``--param-deps``),
    less the other scales' budgets (which DVC lists for a committed baseline all the same),
    and the headline metrics (DVC's one metrics file). ``dvc_args`` go to ``dvc exp show``
    (``--csv``, ``--json``, ``-n 5``, ...). Returns its exit status."""
    scale = load_params(Path(workdir) / "params.yaml")["scale"]
    return subprocess.run([_tool("dvc"), "exp", "show", "--param-deps", "--drop",
                           rf"^scales\.(?!{re.escape(scale)}\.)", *dvc_args],
                          cwd=workdir).returncode


# ------------------------------------------------------------------------ SLURM
def honour_slurm_no_account(workflow) -> bool:
    """Make ``slurm-no-account: true`` leave the account out of ``sbatch``, as its help
    says, with snakemake-executor-plugin-slurm 2.8.0 (called by the Snakefile's
    ``onstart``, in the process that submits the jobs).

    In 2.8.0 the setting is declared but never read (the check was lost when the 'qos'
    resource came in, upstream #241): without a ``slurm_account`` resource every run
    guesses one with ``sacct -nu USER -o Account%256 | tail -1``, split into arguments and
    run without a shell (since #415), so sacct gets ``|``, ``tail`` and ``-1`` and every
    run prints "No SLURM account given, trying to guess ... sacct: invalid option ...
    Unable to guess SLURM account" however the cluster is set up. A version that reads
    the setting itself behaves the same with or without this.

    Returns:
        whether the flag is set (and the account is left out).
    """
    if not getattr(getattr(workflow, "executor_settings", None), "no_account", False):
        return False
    from snakemake_executor_plugin_slurm import Executor
    original = Executor.get_account_arg
    if not getattr(original, "honours_no_account", False):
        def get_account_arg(self, job):
            if self.workflow.executor_settings.no_account:
                yield ""                          # no -A: the cluster's default account
            else:
                yield from original(self, job)
        get_account_arg.honours_no_account = True
        Executor.get_account_arg = get_account_arg
    return True
