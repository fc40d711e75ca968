"""The Snakemake workflow and the DVC pipeline: validation, agreement, incremental reruns."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import DATA_ROOT, REPO, make_raw_dir, require
from spectnet.params import STEP_PARAMS, load_params, params_slice

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snakemake(*args, cwd=REPO, check=True):
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}")
    return proc


def planned_jobs(*args, cwd=REPO) -> dict[str, dict]:
    """Parse a dry run: rule name -> {input, output, log, shell}."""
    out = snakemake("-n", "-p", "--cores", "2", *args, cwd=cwd).stdout
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", out)[1:]:
        name = re.match(r"rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^    (input|output|log): (.*)$", block, re.M))
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        files = {key: sorted(fields[key].split(", ")) if key in fields else []
                 for key in ("input", "output")}
        command = shell.group(1) if shell and shell.group(1) != "None" else None
        jobs[name] = {**files, "log": fields.get("log"), "shell": command}
    return jobs


def split_command(cmd: str) -> tuple[list[str], str | None]:
    """Tokens of a step command without the runtime-only options, and its --params value."""
    tokens, kept, params = shlex.split(cmd), [], None
    it = iter(tokens)
    for tok in it:
        if tok == "--params":
            params = next(it)
        elif tok == "--workers":
            next(it)
        else:
            kept.append(tok)
    return kept, params


def test_dvc_stages_match_snakemake_rules():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    jobs = planned_jobs("-F")
    rules = {name for name in jobs if jobs[name]["shell"]}
    assert set(stages) == rules == set(STEP_PARAMS)
    config = load_params(REPO / "params.yaml")
    for name, stage in stages.items():
        job = jobs[name]
        dvc_cmd, dvc_params = split_command(stage["cmd"])
        smk_cmd, smk_params = split_command(job["shell"])
        assert dvc_cmd == smk_cmd, name
        assert dvc_params == "params.yaml"
        # Each rule gets exactly the params slice DVC declares for the stage.
        assert json.loads(smk_params) == params_slice(config, name)
        assert stage.get("params", []) == list(STEP_PARAMS[name])
        outs = [next(iter(o)) if isinstance(o, dict) else o
                for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
        assert sorted(outs) == job["output"], name
        data_deps = sorted(d for d in stage.get("deps", []) if not d.startswith("src/"))
        assert data_deps == job["input"], name
        code_deps = [d for d in stage.get("deps", []) if d.startswith("src/")]
        assert all((REPO / d).exists() for d in code_deps), name


def test_invalid_param_fails_the_dry_run_naming_key_and_rule():
    proc = snakemake("-n", "--cores", "1", "--config", "preprocess={lowpass_hz: 0}",
                     check=False)
    assert proc.returncode != 0
    assert "preprocess.lowpass_hz" in proc.stdout
    assert "read by: preprocess_physionet" in proc.stdout


def test_unknown_param_key_fails_the_dry_run():
    proc = snakemake("-n", "--cores", "1", "--config", "preprocess={lowpas_hz: 300}",
                     check=False)
    assert proc.returncode != 0 and "'lowpas_hz' was unexpected" in proc.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, physionet_dir):
    """A copy of the workflow with a small real PhysioNet copy: two records per subset
    plus the first record of every fold list, so that no fold is empty."""
    root = tmp_path_factory.mktemp("workflow")
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "workflow", root / "workflow")
    # the smoke scale, and a scene grid of one static and one learnable run
    params = (root / "params.yaml").read_text()
    for old, new in (("scale: quick", "scale: smoke"), ("n_filters: [16, 32, 46, 64, 128, 149]",
                     "n_filters: [16]"), ("learnable_n_filters: 46", "learnable_n_filters: 16")):
        assert old in params
        params = params.replace(old, new)
    (root / "params.yaml").write_text(params)
    local = root / "physionet-copy"
    firsts = {p.read_text().split()[0] for p in (physionet_dir / "folds").glob("*.txt")}
    for subset in "abcdef":
        src = physionet_dir / f"training-{subset}"
        names = sorted(p.stem for p in src.glob("*.flac"))
        names = set(names[:2]) | (firsts & set(names))
        (local / f"training-{subset}").mkdir(parents=True)
        rows = [line for line in (src / "REFERENCE.csv").read_text().splitlines()
                if line.split(",")[0] in names]
        (local / f"training-{subset}" / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
        for name in names:
            shutil.copy(src / f"{name}.flac", local / f"training-{subset}" / f"{name}.flac")
    kept = {line.split(",")[0] for p in local.glob("*/REFERENCE.csv")
            for line in p.read_text().splitlines()}
    (local / "folds").mkdir()
    for fold in (physionet_dir / "folds").glob("*.txt"):
        names = [n for n in fold.read_text().split() if n in kept]
        (local / "folds" / fold.name).write_text("\n".join(names) + "\n")
    for class_dir in require(DATA_ROOT / "esc10").glob("0* - *"):  # one clip per class and fold
        (root / "esc10-copy" / class_dir.name).mkdir(parents=True)
        for fold in "1234":
            clip = sorted(class_dir.glob(f"{fold}-*.ogg"))[0]
            shutil.copy(clip, root / "esc10-copy" / class_dir.name / clip.name)
    return root


def local_config(root):
    return ["--config", f"physionet={{source: local, local_path: {root / 'physionet-copy'}, "
            f"folds: {{source: local, local_path: {root / 'physionet-copy' / 'folds'}}}}}",
            "segmentation={plot_records: [a0001, e00001]}",
            f"scenes={{data: {{esc10: {{local_path: {root / 'esc10-copy'}}}}}}}"]


def test_workflow_builds_data_then_has_nothing_to_do(workdir):
    from spectnet.datasets.store import SignalStore
    snakemake("--cores", "2", *local_config(workdir), cwd=workdir)
    store = SignalStore(workdir / "data/interim/physionet2016")
    expected = sum(1 for _ in (workdir / "physionet-copy").glob("*/*.flac"))
    assert len(store) == expected and set(store.manifest["subset"]) == set("abcdef")
    assert store.manifest["excluded"].sum() == 1
    assert (store.manifest["n_samples"] <= 60_000).all()
    assert (workdir / "logs/preprocess_physionet.log").read_text().strip()
    beats = pd.read_csv(workdir / "data/processed/physionet2016-beats/beats.csv")
    assert set(beats["record"]) == set(store.manifest["record"])
    summary = json.loads((workdir / "results/physionet2016/segmentation.json").read_text())
    assert summary["beats_total"] == len(beats) and summary["recordings_failed"] == 0
    figures = sorted(p.name for p in (workdir / "results/physionet2016/figures/segmentation")
                     .glob("*.png"))
    assert figures == ["segmentation-a0001.png", "segmentation-e00001.png"]
    units = pd.read_csv(workdir / "data/processed/scenes-units/units.csv")
    assert len(units) == 40 and units["label"].nunique() == 10  # the ESC-10 copy, auto
    chosen = json.loads((workdir / "data/raw/scenes/dataset.json").read_text())
    assert chosen["dataset"] == "esc10" and "no DCASE 2016" in chosen["reason"]
    table = pd.read_csv(workdir / "results/scenes/esc10/table3.csv")
    assert set(table.loc[table["n"] == 1, "run"]) == {"static-16", "learnable-16"}
    again = snakemake("-n", "--cores", "2", *local_config(workdir), cwd=workdir)
    assert "Nothing to be done" in again.stdout
    snakemake("--report", "report.zip", *local_config(workdir), cwd=workdir)
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("segmentation-a0001.png") for n in names)
    assert any(n.endswith("segmentation.json") for n in names)


def test_editing_a_param_reruns_only_what_reads_it(workdir):
    snakemake("--cores", "2", *local_config(workdir), cwd=workdir)
    params = workdir / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("lowpass_hz: 400", "lowpass_hz: 300"))
        jobs = planned_jobs(*local_config(workdir), cwd=workdir)
        # Preprocessing and everything downstream of it; never the acquisition.
        assert set(jobs) - {"all"} == {"preprocess_physionet", "segment_physionet",
                                       "plot_segmentation_physionet"}
        params.write_text(original.replace("beat_length: 2500", "beat_length: 2000"))
        assert set(planned_jobs(*local_config(workdir), cwd=workdir)) - {"all"} == {
            "segment_physionet"}
    finally:
        params.write_text(original)
