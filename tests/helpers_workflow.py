"""Run the workflow for real in a throw-away repository: the repository's workflow files,
a small real PhysioNet subset, git and DVC, and the project's own `snakemake`, `dvc` and
`spectnet` executables."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO
from spectnet.workflow import stage_name, write_dvc_yaml

BIN = Path(sys.executable).parent
#: Subprocesses find the project's executables first and commit under a fixed identity.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}
#: What a user's clone holds that the workflow needs (src/: the rules' code inputs).
WORKFLOW_FILES = ("Snakefile", "workflow", "profiles", "src", ".dvcignore", ".gitignore")


def run(*args, cwd, check=True, timeout=900) -> subprocess.CompletedProcess:
    """Run a command; stdout and stderr together in ``.stdout``."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}")
    return proc


def snakemake(*args, cwd, check=True, timeout=900):
    return run(BIN / "snakemake", *args, cwd=cwd, check=check, timeout=timeout)


def dvc(*args, cwd, check=True):
    return run(BIN / "dvc", *args, cwd=cwd, check=check)


def planned_jobs(*args, cwd) -> dict[str, dict]:
    """Parse a dry run: the DVC stage name of each job (the rule name, plus its wildcards
    if it has any) -> {rule, wildcards, input, output, log, shell}."""
    out = snakemake("-n", "-p", "--cores", "2", *args, cwd=cwd).stdout
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^    (input|output|log|wildcards): (.*)$", block, re.M))
        wildcards = dict(item.split("=", 1) for item in fields["wildcards"].split(", ")) \
            if "wildcards" in fields else {}
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        files = {key: sorted(fields[key].split(", ")) if key in fields else []
                 for key in ("input", "output")}
        command = shell.group(1) if shell and shell.group(1) != "None" else None
        jobs[stage_name(rule, wildcards)] = {"rule": rule, "wildcards": wildcards, **files,
                                             "log": fields.get("log"), "shell": command}
    return jobs


def nothing_to_do(cwd) -> bool:
    return "Nothing to be done" in snakemake("-n", "--cores", "1", cwd=cwd).stdout


def make_physionet_subset(physionet_dir: Path, dest: Path) -> Path:
    """A small real PhysioNet copy in the official layout: two records per subset plus
    the first record of every fold list (so that no fold is empty): 17 recordings."""
    firsts = {p.read_text().split()[0] for p in (physionet_dir / "folds").glob("*.txt")}
    for subset in "abcdef":
        src = physionet_dir / f"training-{subset}"
        names = sorted(p.stem for p in src.glob("*.flac"))
        names = set(names[:2]) | (firsts & set(names))
        (dest / f"training-{subset}").mkdir(parents=True)
        rows = [line for line in (src / "REFERENCE.csv").read_text().splitlines()
                if line.split(",")[0] in names]
        (dest / f"training-{subset}" / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
        for name in names:
            shutil.copy(src / f"{name}.flac", dest / f"training-{subset}" / f"{name}.flac")
    kept = {line.split(",")[0] for p in dest.glob("*/REFERENCE.csv")
            for line in p.read_text().splitlines()}
    (dest / "folds").mkdir()
    for fold in (physionet_dir / "folds").glob("*.txt"):
        names = [n for n in fold.read_text().split() if n in kept]
        (dest / "folds" / fold.name).write_text("\n".join(names) + "\n")
    return dest


def make_esc10_subset(esc10_dir: Path, dest: Path) -> Path:
    """A small real ESC-10 copy: one clip per class and fold (40 clips)."""
    for class_dir in sorted(esc10_dir.glob("0* - *")):
        (dest / class_dir.name).mkdir(parents=True)
        for fold in "1234":
            clip = sorted(class_dir.glob(f"{fold}-*.ogg"))[0]
            shutil.copy(clip, dest / class_dir.name / clip.name)
    return dest


def small_params(physionet: Path, esc10: Path) -> dict:
    """The repository's params.yaml at the smoke scale, reading local copies of the data
    (``physionet``, ``esc10``), drawing two records, with a scene grid of one static and
    one learnable run."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["scale"] = "smoke"
    params["physionet"].update(source="local", local_path=str(physionet))
    params["physionet"]["folds"] = {"source": "local", "local_path": str(physionet / "folds")}
    params["segmentation"]["plot_records"] = ["a0001", "e00001"]
    params["scenes"]["data"]["esc10"]["local_path"] = str(esc10)
    params["scenes"]["frontend"]["n_filters"] = [16]
    params["scenes"]["learnable"]["n_filters"] = [16]
    return params


def make_workflow_repo(root: Path, physionet: Path, esc10: Path,
                       git: bool = True) -> Path:
    """A user's checkout at ``root``: the workflow files, params.yaml reading the data
    copies (`small_params`), its dvc.yaml (generated: the job set depends on the scale)
    and (with ``git``) a git repository with DVC initialised and everything committed."""
    root.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(physionet, esc10), sort_keys=False))
    write_dvc_yaml(root)
    if git:
        run("git", "init", "-q", "-b", "main", cwd=root)
        dvc("init", "-q", cwd=root)
        commit(root, "workflow")
    return root


def commit(root: Path, message: str) -> None:
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-q", "--allow-empty", "-m", message, cwd=root)


def clone(origin: Path, dest: Path) -> Path:
    run("git", "clone", "-q", origin, dest, cwd=origin.parent)
    return dest


def set_params(root: Path, **values) -> None:
    """Edit params.yaml as a user would: ``set_params(root, preprocess__lowpass_hz=300)``."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in values.items():
        *parents, leaf = dotted.split("__")
        section = params
        for name in parents:
            section = section[name]
        section[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


#: The heart-sound runs of the smoke grid (one seed).
HEART_RUNS_SMOKE = [(run, 1) for run in ("static-4", "static-8", "static-16", "learnable-16",
                                         "static-16-control", "gammatone-1d", "gammatone-2d")]


def build_origin(base: Path, physionet_dir: Path, esc10_dir: Path) -> Path:
    """A user's repository where `snakemake` built everything (the whole DAG at the smoke
    scale, training included) on small real subsets, then `dvc push` shared it through a
    local-directory remote; all committed."""
    physionet = make_physionet_subset(physionet_dir, base / "physionet-copy")
    esc10 = make_esc10_subset(esc10_dir, base / "esc10-copy")
    root = make_workflow_repo(base / "origin", physionet, esc10)
    snakemake("--cores", "2", cwd=root)
    dvc("remote", "add", "-d", "shared", base / "remote", cwd=root)
    dvc("push", "-q", cwd=root)
    commit(root, "results")
    return root


def pulled_clone(origin: Path, dest: Path) -> Path:
    """A collaborator's fresh clone with the shared data pulled."""
    clone(origin, dest)
    dvc("pull", "-q", cwd=dest)
    return dest


def stages_to_rerun(root: Path) -> set[str]:
    return set(json.loads(dvc("status", "--json", cwd=root).stdout or "{}"))


def dvc_stages(root: Path) -> dict[str, dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def rules_of(stages) -> dict[str, set[str]]:
    """Stage (or job) names grouped by rule: ``train_static_physionet--n-4--seed-1`` ->
    ``train_static_physionet``."""
    grouped = {}
    for name in stages:
        grouped.setdefault(name.split("--")[0], set()).add(name)
    return grouped
