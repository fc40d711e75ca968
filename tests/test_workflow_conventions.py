"""The workflow's conventions, checked without running it: each rule's code inputs are the
import graph of the command it runs, Snakemake's linter is satisfied (but for conda and
containers), the catalog's usage files are there, and the SLURM profile names real rules
and gives every training job a GPU when asked."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from helpers_workflow import planned_jobs, snakemake
from spectnet.cli import build_parser
from spectnet.sources import command_function, command_sources, module_sources
from spectnet.workflow import honour_slurm_no_account

SOURCES = REPO / "src" / "spectnet"


def stage_command(stage: dict) -> str:
    """`physionet train` from a stage's cmd (`... # rule: spectnet physionet train ...`)."""
    words = shlex.split(stage["cmd"].partition("  # ")[2].partition(": ")[2])
    assert words[0] == "spectnet", stage["cmd"]
    return " ".join(w for w in words[1:][:2] if not w.startswith(("-", "{")))


def test_each_rule_s_code_inputs_are_the_import_graph_of_its_command():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        command = stage_command(stage)
        code = [d for d in stage.get("deps", []) if d.startswith("src/")]
        assert code == command_sources(command), name
    deps = {name.split("--")[0]: set(stage["deps"]) for name, stage in stages.items()}
    # What the hand-kept lists had missed: the resampler, and the filters segmentation uses.
    assert "src/spectnet/preprocessing/audio.py" in deps["preprocess_physionet"]
    assert "src/spectnet/preprocessing/dsp.py" in deps["segment_physionet"]
    assert "src/spectnet/segmentation/springer2016.json" in deps["segment_physionet"]
    assert not any("cli.py" in d or "schema" in d for d in set().union(*deps.values()))


def test_the_command_functions_are_the_parser_s():
    """`physionet train` -> cmd_physionet_train, as the parser dispatches it."""
    parser = build_parser()

    def commands(p, words=()):
        for action in p._subparsers._group_actions if p._subparsers else []:
            for name, sub in action.choices.items():
                if sub._subparsers:
                    yield from commands(sub, (*words, name))
                else:
                    yield " ".join((*words, name)), sub.get_default("func").__name__
    found = dict(commands(parser))
    assert len(found) > 10
    for command, function in found.items():
        assert command_function(command) == function


def test_the_static_import_graph_covers_every_import_python_makes():
    """The oracle: every spectnet module that importing each spectnet module really
    imports (recorded by a hook on __import__ in a fresh interpreter) is in the static
    graph of the importing module."""
    script = r'''
import builtins, importlib, json, pkgutil, sys
import spectnet
edges, real_import = set(), builtins.__import__
def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    module = real_import(name, globals, locals, fromlist, level)
    caller = (globals or {}).get("__name__", "")
    if caller.startswith("spectnet") and caller != "spectnet.cli":
        names = [module.__name__] + [f"{module.__name__}.{f}" for f in fromlist or ()]
        edges.update((caller, n) for n in names if n in sys.modules and n.startswith("spectnet"))
    return module
builtins.__import__ = recording_import
for info in pkgutil.walk_packages(spectnet.__path__, "spectnet."):
    if info.name != "spectnet.cli":
        importlib.import_module(info.name)
print(json.dumps(sorted(edges)))
'''
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    edges = json.loads(proc.stdout.splitlines()[-1])
    assert len(edges) > 50
    for caller, imported in edges:
        if caller == imported:
            continue
        reached = {p.relative_to(SOURCES).with_suffix("").as_posix().removesuffix("/__init__")
                   for p in module_sources([caller], SOURCES)}
        name = imported.removeprefix("spectnet.").replace(".", "/")
        assert name in reached or imported == "spectnet", (caller, imported)


def test_a_new_import_becomes_a_code_input(tmp_path):
    root = tmp_path / "spectnet"
    shutil.copytree(SOURCES, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = command_sources("physionet fetch", root)
    assert str(root / "plotting.py") not in before
    physionet = root / "datasets" / "physionet.py"
    physionet.write_text(physionet.read_text() + "\n\ndef _later():\n"
                         "    from ..plotting import gammatone_frequency_response\n")
    after = command_sources("physionet fetch", root)
    assert set(after) - set(before) == {str(root / name) for name in (
        "plotting.py", "functional.py", "_recursive.py", "runtime.py")}  # and what plotting imports
    with pytest.raises(LookupError, match="has no function cmd_physionet_export"):
        command_sources("physionet export", root)


# --------------------------------------------------------------------- lint, catalog
def test_snakemake_lint_has_nothing_to_say_but_conda_and_containers():
    """Every rule runs in the project's locked environment (the README says why), so the
    lint asking for a conda environment or container per rule stays; nothing else may."""
    proc = snakemake("--lint", cwd=REPO, check=False)
    lints = re.findall(r"^    \* (.+?):$", proc.stdout, re.M)
    assert lints and set(lints) == {"Specify a conda environment or container for each rule."}, \
        proc.stdout


def test_the_catalog_s_usage_files_point_at_params_yaml():
    settings = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["report"] is True and "params.yaml" in usage["mandatory-flags"]["desc"]
    readme = (REPO / "config" / "README.md").read_text()
    assert "`params.yaml` at the repository root" in readme
    assert not (REPO / "config" / "config.yaml").exists()     # one parameter file


# --------------------------------------------------------------------------- SLURM
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


def training_rules(jobs) -> set[str]:
    return {job["rule"] for job in jobs.values()
            if job["shell"] and re.match(r"spectnet \w+ train ", job["shell"])}


def test_the_slurm_profile_names_existing_rules_and_every_training_rule():
    profile = yaml.safe_load(PROFILE.read_text())
    rules = set(snakemake("--list-rules", cwd=REPO).stdout.split())
    named = set(profile["set-resources"])
    assert named and named <= rules, named - rules
    jobs = planned_jobs("-F", cwd=REPO)
    assert training_rules(jobs) <= named
    # Also the rules named in the profile's comments.
    commented = set(re.findall(r"^#\s+(\w+):\s*$", PROFILE.read_text(), re.M))
    assert commented <= rules, commented - rules


def test_asking_for_a_gpu_once_gives_one_to_every_training_job(tmp_path):
    """The SITE edit the profile describes: `gpu: 0` -> `gpu: 1` in one place."""
    text = PROFILE.read_text()
    assert text.count("    gpu: 0\n") == 1
    profile = tmp_path / "slurm"
    profile.mkdir()
    (profile / "config.yaml").write_text(text.replace("    gpu: 0\n", "    gpu: 1\n"))
    out = snakemake("-n", "-F", "--profile", profile, cwd=REPO).stdout
    jobs = planned_jobs("-F", cwd=REPO)
    training = training_rules(jobs)
    resources = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        line = re.search(r"^    resources: (.*)$", block, re.M)
        resources.setdefault(rule, set()).add(
            dict(kv.split("=", 1) for kv in line.group(1).split(", ")).get("gpu")
            if line else None)
    assert training and all(resources[rule] == {"1"} for rule in training), resources
    assert all(resources[rule] == {None} for rule in set(resources) - training - {"all"})


def test_the_gpu_and_gres_spellings_reach_sbatch_as_the_profile_says():
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Job:
        def __init__(self, **resources):
            self.resources = type("Resources", (dict,), {"__getattr__": dict.get})(resources)
    assert set_gres_string(Job(gpu=1)).strip() == "--gpus=1"
    assert set_gres_string(Job(gres="gpu:a100:1")).strip() == "--gres=gpu:a100:1"
    assert set_gres_string(Job(gpu=1, gpu_model="a100")).strip() == "--gpus=a100:1"
    assert set_gres_string(Job(gpu=0)).strip() == ""
    assert "gres: \"gpu:a100:1\"" in PROFILE.read_text() and "gpu_model: a100" in \
        PROFILE.read_text()


def test_slurm_no_account_leaves_the_account_out_without_guessing(monkeypatch):
    """With the plugin as released (2.8.0) the flag alone still guesses an account with a
    sacct call that cannot work; the workflow's onstart makes it mean what it says."""
    import snakemake_executor_plugin_slurm as plugin
    monkeypatch.setattr(plugin.Executor, "get_account_arg", plugin.Executor.get_account_arg)
    calls = []
    monkeypatch.setattr(plugin, "get_account", lambda logger: calls.append("sacct"))

    class Workflow:
        executor_settings = plugin.ExecutorSettings(no_account=True)

    class Executor:
        workflow, _fallback_account_arg = Workflow, None
        logger = type("Logger", (), {"warning": lambda self, msg: calls.append(msg)})()
    job = type("Job", (), {"resources": {}})()
    assert next(plugin.Executor.get_account_arg(Executor(), job)) == ""     # as released:
    assert calls[:2] == ["No SLURM account given, trying to guess.", "sacct"]  # it guesses
    calls.clear()
    Executor._fallback_account_arg = None
    assert honour_slurm_no_account(Workflow) is True
    assert next(plugin.Executor.get_account_arg(Executor(), job)) == "" and calls == []
    Workflow.executor_settings = plugin.ExecutorSettings(no_account=False)
    assert honour_slurm_no_account(Workflow) is False
