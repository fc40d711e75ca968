"""The Snakemake workflow and the DVC pipeline over one DAG: the generated dvc.yaml,
parameter overrides, incremental reruns, and the two tools agreeing whichever ran a step,
after sharing through a real local DVC remote included."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO
from helpers_browser import render_report
from helpers_training import same_run
from helpers_workflow import (BIN, clone, commit, dvc, dvc_stages, make_workflow_repo,
                              nothing_to_do, planned_jobs, pulled_clone, rules_of, run,
                              set_params, snakemake, stages_to_rerun)
from spectnet.cli import main
from spectnet.params import STEP_PARAMS, load_params, params_slice, step_keys
from spectnet.workflow import (Job, WorkflowError, dvc_stage, stage_name, write_dvc_yaml,
                               write_headline_metrics)

DATA_RULES = {"fetch_physionet", "preprocess_physionet", "segment_physionet",
              "plot_segmentation_physionet"}
HEART_TRAINING_RULES = {"train_static_physionet", "train_learnable_physionet",
                        "train_control_physionet", "train_baseline_physionet"}


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


# ------------------------------------------------------------- the one description
def test_committed_dvc_yaml_is_the_one_the_snakefile_gives():
    assert write_dvc_yaml(REPO, check=True)


def test_each_dvc_stage_runs_its_snakemake_job_with_the_same_files_and_params():
    """Against an independent oracle: Snakemake's own dry run of the whole DAG."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    jobs = {name: job for name, job in planned_jobs("-F", cwd=REPO).items() if job["output"]}
    assert set(stages) == set(jobs)
    config = load_params(REPO / "params.yaml")
    for name, stage in stages.items():
        job = jobs[name]
        rule, wildcards = job["rule"], job["wildcards"]
        runner, _, comment = stage["cmd"].partition("  # ")
        tokens = shlex.split(runner)
        assert tokens[:5] == ["snakemake", "--force", "--no-hooks", "--allowed-rules", rule]
        outs = [next(iter(o)) for kind in ("outs", "metrics", "plots")
                for o in stage.get(kind, [])]
        assert sorted(tokens[6:]) == sorted(outs) == job["output"], name
        assert sorted(stage.get("deps", [])) == job["input"], name
        # The rule's command template follows, so editing it changes the stage's cmd.
        assert comment.startswith(f"{rule}: spectnet ")
        _, smk_params = split_command(job["shell"])
        if rule in STEP_PARAMS:
            assert json.loads(smk_params) == params_slice(config, rule, wildcards)
        else:                                   # a step that reads no parameters
            assert smk_params is None and "params" not in stage
        assert stage.get("params", []) == (step_keys(config, rule, wildcards)
                                           if rule in STEP_PARAMS else [])
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                (path, options), = out.items()
                assert options["persist"] is True           # DVC never restores behind
                assert options.get("cache", True) == (not path.startswith("results/"))


def test_stage_of_a_wildcard_job_with_a_scale_dependent_slice(monkeypatch):
    monkeypatch.setitem(STEP_PARAMS, "train", ("scale", "scales.{scale}.heart_sounds",
                                               "heart_sounds.{frontend}"))
    params = {"scale": "quick", "scales": {"quick": {"heart_sounds": {"epochs": 2}},
                                           "full": {"heart_sounds": {"epochs": 50}}},
              "heart_sounds": {"static": {"lr": 0.1}, "learnable": {"lr": 0.01}}}
    wildcards = {"frontend": "static", "seed": "3"}
    job = Job(rule="train", wildcards=tuple(wildcards.items()),
              inputs=("data/processed/beats", "src/spectnet/training.py"),
              outputs=(("models/static/seed3/model.pt", False),
                       ("results/static/seed3/metrics.json", False),
                       ("results/static/seed3/curves", True),
                       ("results/static/seed3/table.csv", False)),
              shell="spectnet train --out {output[0]} --params {params.config:q}",
              params_json=json.dumps(params_slice(params, "train", wildcards)))
    assert job.stage == stage_name("train", wildcards) == "train--frontend-static--seed-3"
    stage = dvc_stage(job, params)
    assert stage["params"] == ["scale", "scales.quick.heart_sounds", "heart_sounds.static"]
    assert stage["deps"] == ["data/processed/beats", "src/spectnet/training.py"]
    assert stage["outs"] == [{"models/static/seed3/model.pt": {"persist": True}},
                             {"results/static/seed3/metrics.json": {"cache": False,
                                                                    "persist": True}},
                             {"results/static/seed3/table.csv": {"cache": False,
                                                                 "persist": True}}]
    assert "metrics" not in stage          # DVC's one metrics file is the headline one
    assert list(stage["plots"][0]) == ["results/static/seed3/curves"]
    assert stage["cmd"].startswith("snakemake --force --no-hooks --allowed-rules train -- "
                                   "models/static/seed3/model.pt results/static/seed3/")
    # A rule passing another slice than STEP_PARAMS declares is refused.
    other = Job(**{**job.__dict__, "params_json": json.dumps({"scale": "quick"})})
    with pytest.raises(WorkflowError, match=r"rule train: its params.config is not the slice"):
        dvc_stage(other, params)


def test_headline_metrics_average_each_run_and_name_a_file_that_is_not_one(tmp_path):
    def evaluation(name, run, task, levels, metrics, **more):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"task": task, "run": run, "levels": levels,
                                    "metrics": metrics, "ci": {"x": 1}, **more}))
        return path
    heart = {"recording": {"macc": 0.6, "sensitivity": 0.5, "specificity": 0.7},
             "beat": {"accuracy": 0.9}}
    levels = ["recording", "beat"]
    task = "physionet2016-heart-sounds"
    files = [evaluation("h1", "static-4", task, levels, heart, seed=1),
             evaluation("h2", "static-4", task, levels,
                        {**heart, "recording": {**heart["recording"], "macc": 0.8}}, seed=2),
             evaluation("s1", "static-46", "acoustic-scenes", ["clip", "unit"],
                        {"clip": {"accuracy": 0.5, "macc": 0.7, "f1": 0.1},
                         "unit": {"accuracy": 0.4}}, fold=1)]
    out = tmp_path / "results" / "metrics.json"
    headline = write_headline_metrics(files, out)
    assert json.loads(out.read_text()) == headline == {
        "heart_sounds": {"static-4": {"macc": pytest.approx(0.7), "sensitivity": 0.5,
                                      "specificity": 0.7}},
        "scenes": {"static-46": {"accuracy": 0.5, "macc": 0.7}}}
    bad = tmp_path / "bad.json"
    bad.write_text('{"run": "static-4"}')
    with pytest.raises(WorkflowError, match=rf"{bad}: not an evaluation's metrics file"):
        write_headline_metrics([*files, bad], out)


def test_new_wildcard_rules_get_one_stage_per_job_without_a_hand_kept_list(tmp_path):
    root = make_workflow_repo(tmp_path / "repo", tmp_path / "no-data", tmp_path / "no-data",
                              git=False)
    (root / "workflow/rules/demo.smk").write_text(
        'rule demo:\n'
        '    input: "data/interim/physionet2016"\n'
        '    output: "results/demo/{part}/{draw}.json"\n'
        '    shell: "echo {wildcards.part} > {output}"\n')
    rules = root / "workflow/rules/segmentation.smk"     # a params slice from wildcards
    rules.write_text(rules.read_text().replace(
        'config=step_params("plot_segmentation_physionet")',
        'config=lambda wildcards: step_params("plot_segmentation_physionet", wildcards)'))
    snakefile = root / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace(
        'include: "workflow/rules/segmentation.smk"\n',
        'include: "workflow/rules/segmentation.smk"\ninclude: "workflow/rules/demo.smk"\n'
    ).replace("        rules.plot_segmentation_physionet.output,\n",
              "        rules.plot_segmentation_physionet.output,\n        expand("
              "'results/demo/{part}/draw{n}.json', part=['a', 'b.c'], n=[1, 2]),\n"))
    before = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    write_dvc_yaml(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(before) | {
        "demo--part-a--draw-draw1", "demo--part-a--draw-draw2", "demo--part-b_c--draw-draw1",
        "demo--part-b_c--draw-draw2"}
    assert stages["demo--part-b_c--draw-draw2"]["outs"] == [
        {"results/demo/b.c/draw2.json": {"cache": False, "persist": True}}]
    assert stages["plot_segmentation_physionet"]["params"] == ["segmentation.plot_records"]
    # The same jobs as Snakemake's own dry run of the whole DAG.
    assert set(planned_jobs("-F", cwd=root)) - {"all"} == set(stages)


def test_a_stale_dvc_yaml_is_named_stage_by_stage(tmp_path, monkeypatch, capsys):
    root = make_workflow_repo(tmp_path / "repo", tmp_path / "no-data", tmp_path / "no-data",
                              git=False)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())
    stages["stages"]["segment_physionet"]["params"] = ["beats"]
    del stages["stages"]["fetch_physionet"]
    (root / "dvc.yaml").write_text(yaml.safe_dump(stages))
    with pytest.raises(WorkflowError, match=r"dvc.yaml is not the one the Snakefile gives "
                                            r"\(missing stages: fetch_physionet; stages that "
                                            r"differ: segment_physionet\); run `spectnet "
                                            r"workflow dvc-yaml`"):
        write_dvc_yaml(root, check=True)
    monkeypatch.chdir(root)
    assert main(["workflow", "dvc-yaml", "--check"]) == 1
    assert "stages that differ: segment_physionet" in capsys.readouterr().err
    assert main(["workflow", "dvc-yaml"]) == 0 and write_dvc_yaml(root, check=True) is True


def test_commit_stages_writes_what_dvc_commit_force_writes(tmp_path, monkeypatch, capsys):
    """`spectnet workflow commit` (dvc.yaml and dvc.lock parsed once) leaves dvc.lock and
    the cache exactly as `dvc commit --force` of the same stages does, stages not named
    untouched; an unknown name writes nothing."""
    stages = {"stages": {
        "prepare": {"cmd": "true", "deps": ["raw.txt"], "params": ["rate"],
                    "outs": ["data/prepared.txt"]},
        "train": {"cmd": "true", "deps": ["data/prepared.txt", "code.py"],
                  "outs": ["models/model.bin", {"results/score.json": {"cache": False}}]},
        "other": {"cmd": "true", "deps": ["raw.txt"], "outs": ["other.txt"]}}}
    roots = []
    for name in ("cli", "ours"):
        root = tmp_path / name
        for path, text in {"raw.txt": "1 2 3\n", "code.py": "print(1)\n", "params.yaml": "rate: 4\n",
                           "data/prepared.txt": "prepared\n", "models/model.bin": "\x00\x01weights",
                           "results/score.json": '{"macc": 0.5}\n', "other.txt": "x\n"}.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        (root / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
        dvc("init", "--no-scm", "-q", cwd=root)
        roots.append(root)
    dvc("commit", "--force", "--quiet", "train", "prepare", cwd=roots[0])
    monkeypatch.chdir(roots[1])
    assert main(["workflow", "commit", "train", "prepare"]) == 0
    lock = [(root / "dvc.lock").read_text() for root in roots]
    assert lock[0] == lock[1] and "other" not in yaml.safe_load(lock[1])["stages"]
    cache = [sorted(p.relative_to(root) for p in (root / ".dvc/cache").rglob("*") if p.is_file())
             for root in roots]
    assert cache[0] == cache[1] and any(p.parts[2] == "runs" for p in cache[1])  # + run cache
    assert main(["workflow", "commit", "train", "nonesuch"]) == 1
    assert "ERROR spectnet: dvc.yaml: no stage nonesuch" in capsys.readouterr().err
    assert (roots[1] / "dvc.lock").read_text() == lock[1]


# ------------------------------------------------------------ parameters on the CLI
def test_nested_numeric_config_override_reaches_the_rule():
    jobs = planned_jobs("-F", "--config", "preprocess={lowpass_hz: 300, remove_spikes: false}",
                        cwd=REPO)
    _, config = split_command(jobs["preprocess_physionet"]["shell"])
    assert json.loads(config)["preprocess"]["lowpass_hz"] == 300
    assert json.loads(config)["preprocess"]["remove_spikes"] is False


def test_invalid_and_unknown_params_fail_the_dry_run_naming_key_and_rule():
    proc = snakemake("-n", "--cores", "1", "--config",
                     "preprocess={lowpass_hz: 0, lowpas_hz: 300}", cwd=REPO, check=False)
    assert proc.returncode != 0
    assert ("params.yaml (+ --config): preprocess.lowpass_hz: 0 is less than or equal to "
            "the minimum of 0 (read by: preprocess_physionet, train_baseline_physionet"
            ) in proc.stdout
    assert "'lowpas_hz' was unexpected" in proc.stdout


# ------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_snakemake_builds_the_data_and_dvc_agrees(origin):
    from spectnet.datasets.store import SignalStore
    store = SignalStore(origin / "data/interim/physionet2016")
    assert len(store) == 17 and set(store.manifest["subset"]) == set("abcdef")
    assert store.manifest["excluded"].sum() == 1
    assert (store.manifest["n_samples"] <= 60_000).all()
    assert (origin / "logs/preprocess_physionet.log").read_text().strip()
    beats = pd.read_csv(origin / "data/processed/physionet2016-beats/beats.csv")
    assert set(beats["record"]) == set(store.manifest["record"])
    summary = json.loads((origin / "results/physionet2016/segmentation.json").read_text())
    assert summary["beats_total"] == len(beats) and summary["recordings_failed"] == 0
    figures = sorted(p.name for p in (origin / "results/physionet2016/figures/segmentation")
                     .glob("*.png"))
    assert figures == ["segmentation-a0001.png", "segmentation-e00001.png"]
    # A second run has nothing to do, and the run was recorded in DVC: every stage is in
    # dvc.lock and matches the data, although each directory output holds Snakemake's
    # .snakemake_timestamp.
    assert nothing_to_do(origin)
    assert (origin / "data/interim/physionet2016/.snakemake_timestamp").exists()
    assert stages_to_rerun(origin) == set()
    lock = yaml.safe_load((origin / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(dvc_stages(origin))
    assert set(rules_of(lock)) >= DATA_RULES | HEART_TRAINING_RULES | {
        "evaluate_physionet", "table2_physionet", "figures_physionet", "train_static_scenes",
        "train_learnable_scenes", "train_control_scenes", "evaluate_scenes", "table_scenes"}
    table2 = pd.read_csv(origin / "results/physionet2016/table2.csv")
    assert set(table2["scale"]) == {"smoke"}


@pytest.mark.slow
def test_report_renders_in_a_headless_browser_with_a_caption_for_every_result(origin,
                                                                              tmp_path):
    from matplotlib.image import imread
    snakemake("--report", tmp_path / "report.html", cwd=origin)
    shown, screenshot = render_report(tmp_path / "report.html", tmp_path)
    figures = "results/physionet2016/figures/segmentation/segmentation-{}.png"
    assert {figures.format("a0001"), figures.format("e00001"),
            "results/physionet2016/segmentation.json"} <= set(shown)
    for path, text in shown.items():      # every table and figure, with its caption
        assert re.search(r"description\s*\n\s*\S.{40,}", text, re.I), (path, text)
    assert ("Recording a0001 with its Springer LR-HSMM segmentation: S1 (red)"
            in shown[figures.format("a0001")])
    assert "Summary of the beat dataset" in shown["results/physionet2016/segmentation.json"]
    heart = "results/physionet2016/figures/{}.png"
    captions = {"filterbank-learnable-16": "filterbank before and after learning",
                "beat-spectrogram": "one normal and one abnormal beat",
                "learning-curves": "Learning curves of every run of Table II",
                "frontend-trajectories-learnable-16": "The gammatone filter parameters",
                "per-subset-metrics": "per PhysioNet 2016 subset",
                "confusion-matrices": "Confusion matrices of every run"}
    for name, caption in captions.items():
        assert caption in shown[heart.format(name)], name
    assert "at the smoke scale" in shown[heart.format("learning-curves")]
    pixels = imread(screenshot)[..., :3].reshape(-1, 3)
    assert len(pixels) == 1280 * 900
    assert (pixels.min(axis=1) < 0.98).mean() > 0.05        # not a blank page: text,
    assert len(set(map(tuple, pixels[::37]))) > 50           # menu, the rule graph


@pytest.mark.slow
def test_pull_then_sync_leaves_both_tools_nothing_to_do(origin, tmp_path):
    root = pulled_clone(origin, tmp_path / "collaborator")
    assert stages_to_rerun(root) == set()
    # The problem sync solves: checked-out files carry arbitrary modification times.
    assert not nothing_to_do(root)
    proc = run(BIN / "spectnet", "workflow", "sync", cwd=root)
    stages = len(dvc_stages(root))
    assert (f"DVC verified the data against dvc.lock (every file hashed, the cache's objects "
            f"checked): {stages} of {stages} stages match and are marked up to date"
            ) in proc.stdout
    assert "do not match" not in proc.stdout
    assert nothing_to_do(root) and stages_to_rerun(root) == set()
    # Snakemake now knows each job's params: an edit reruns exactly what reads the key and
    # what depends on it, and DVC's status names the stages that read it (the stages
    # downstream rerun when its output changes, as in Snakemake).
    training = set().union(*(rules_of(dvc_stages(root))[r] for r in HEART_TRAINING_RULES))
    heart_downstream = {"evaluate_physionet", "table2_physionet", "figures_physionet",
                        "headline_metrics"}
    set_params(root, preprocess__lowpass_hz=300)
    assert set(rules_of(planned_jobs(cwd=root))) - {"all"} == {
        "preprocess_physionet", "segment_physionet", "plot_segmentation_physionet",
        *HEART_TRAINING_RULES, *heart_downstream}
    assert stages_to_rerun(root) == {"preprocess_physionet"} | training
    set_params(root, preprocess__lowpass_hz=400, beats__beat_length=2000)
    assert set(rules_of(planned_jobs(cwd=root))) - {"all"} == {
        "segment_physionet", *HEART_TRAINING_RULES, *heart_downstream}
    assert stages_to_rerun(root) == {"segment_physionet"} | training
    # The front-end's fine-tuning rate reruns the learnable model, its evaluation, the
    # table and the figures; nothing else (not its control, whose front-end is frozen).
    # After that run both tools have nothing to do.
    set_params(root, beats__beat_length=2500, heart_sounds__learnable__frontend_lr=0.02)
    assert set(planned_jobs(cwd=root)) == {
        "train_learnable_physionet--n-16--seed-1", "evaluate_physionet--run-learnable-16--seed-1",
        "table2_physionet", "figures_physionet", "headline_metrics", "all"}
    assert stages_to_rerun(root) == {"train_learnable_physionet--n-16--seed-1"}
    static = (root / "models/physionet2016/static-16/seed1/best.pt").read_bytes()
    snakemake("--cores", "2", cwd=root)
    assert nothing_to_do(root) and stages_to_rerun(root) == set()
    assert (root / "models/physionet2016/static-16/seed1/best.pt").read_bytes() == static
    # A run with --config values other than params.yaml's is not recorded in DVC, which
    # versions params.yaml: DVC sees outputs that differ from dvc.lock, as Snakemake does.
    set_params(root, beats__beat_length=2500)
    lock = (root / "dvc.lock").read_text()
    proc = snakemake("--cores", "2", "--config", "segmentation={plot_records: [e00001]}",
                     cwd=root)
    assert ("not recorded in DVC: --config changed segmentation.plot_records from "
            "params.yaml") in proc.stdout
    assert (root / "dvc.lock").read_text() == lock
    assert stages_to_rerun(root) == {"plot_segmentation_physionet"}
    assert set(planned_jobs(cwd=root)) == {"plot_segmentation_physionet", "all"}


@pytest.mark.slow
def test_sync_marks_what_matches_and_names_the_rest(origin, tmp_path, monkeypatch, capsys):
    root = pulled_clone(origin, tmp_path / "changed")
    manifest = root / "data/interim/physionet2016/manifest.csv"
    manifest.write_text(manifest.read_text() + "x\n")
    shutil.rmtree(root / "data/processed/physionet2016-beats")
    monkeypatch.chdir(root)
    assert main(["workflow", "sync"]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert "preprocess_physionet: changed outs: data/interim/physionet2016 (modified)" in out
    assert "data/processed/physionet2016-beats (deleted)" in out
    assert ("train_static_physionet--n-4--seed-1: changed deps: "
            "data/processed/physionet2016-beats (deleted)") in out
    # Marked: fetch_physionet and the scene stages; Snakemake runs the rest, from
    # preprocessing on, exactly what dvc status reports plus what depends on it.
    planned = set(rules_of(planned_jobs(cwd=root))) - {"all"}
    assert planned == set(rules_of(dvc_stages(root))) - {
        "fetch_physionet", "fetch_scenes", "preprocess_scenes", "train_static_scenes",
        "train_learnable_scenes", "train_control_scenes", "evaluate_scenes", "table_scenes",
        "figures_scenes"}


@pytest.mark.slow
def test_sync_refuses_a_corrupt_object_in_the_dvc_cache(origin, tmp_path, monkeypatch,
                                                        capsys):
    """14 bytes overwritten in a cached object (its size and modification time kept, as
    with bit rot): `dvc checkout` restores it with exit 0 and `dvc status` then says up to
    date; sync finds it by its hash and marks nothing."""
    root = pulled_clone(origin, tmp_path / "corrupt")
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    signals = next(o for o in lock["preprocess_physionet"]["outs"])["md5"]
    listing = json.loads((root / ".dvc/cache/files/md5" / signals[:2] / signals[2:]).read_text())
    md5 = next(e["md5"] for e in listing if e["relpath"] == "signals.npy")
    obj = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    before = obj.stat()
    obj.chmod(0o644)
    with open(obj, "r+b") as f:                           # silent corruption: the object's
        f.seek(1000)                                      # size and time stay as they were
        f.write(b"\xff" * 14)
    os.utime(obj, ns=(before.st_atime_ns, before.st_mtime_ns))
    (root / "data/interim/physionet2016/signals.npy").unlink()
    dvc("checkout", "-q", cwd=root)                       # exit 0: the corrupt copy is back
    assert stages_to_rerun(root) == set()                 # and DVC trusts it
    monkeypatch.chdir(root)
    assert main(["workflow", "sync"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("DVC's cache holds objects whose content does not match their hash, so nothing "
            "was marked up to date") in err
    assert f"{obj} (data/interim/physionet2016/signals.npy in stage preprocess_physionet)" in err
    metadata = root / ".snakemake" / "metadata"           # nothing recorded as done
    assert not metadata.exists() or not any(metadata.iterdir())


# ------------------------------------------------------------------------ SLURM
@pytest.fixture(scope="module")
def slurm_cluster():
    """A single-node SLURM from Debian's packages, started by the repository's script
    (and stopped again, unless it was already up)."""
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
               if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install "
                    f"slurmctld slurmd slurm-client munge (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("starting the SLURM daemons needs root")
    started = run(REPO / "workflow/cluster/start-slurm.sh", cwd=REPO).stdout
    yield
    if "already running" not in started:
        run(REPO / "workflow/cluster/stop-slurm.sh", cwd=REPO)


@pytest.mark.slurm
@pytest.mark.slow
def test_the_pipeline_through_the_slurm_profile_equals_the_local_run(origin, slurm_cluster,
                                                                      tmp_path):
    root = clone(origin, tmp_path / "cluster")
    for path in ("dvc.lock", "results"):      # the local run's, committed in git
        run("git", "rm", "-r", "-q", path, cwd=root)
    commit(root, "start from nothing")
    # The executor's first status query after 2 s instead of the profile's 20 (it backs off
    # by 10 s while no job finishes): short jobs are seen done sooner, a shorter test.
    # The data steps and one model trained and evaluated (the rest of the grid runs the
    # same way; the whole smoke DAG through SLURM's status polling would double the time).
    evaluated = "results/physionet2016/runs/static-4/seed1.json"
    proc = snakemake("--profile", "workflow/profiles/slurm",
                     "--slurm-init-seconds-before-status-checks", "2",
                     "plot_segmentation_physionet", evaluated, cwd=root)
    submitted = re.findall(
        r"submitted with SLURM jobid \d+ \(log: \S+/rule_(\w+)/(?:\S+/)?\d+\.log", proc.stdout)
    expected = DATA_RULES | {"train_static_physionet", "evaluate_physionet"}
    assert sorted(submitted) == sorted(expected), proc.stdout   # each job a SLURM job
    assert "SLURM account" not in proc.stdout and "sacct" not in proc.stdout  # no -A guess
    # The same outputs as the local run: the data steps' and the evaluation's byte for byte
    # (each run's DVC record hashes every output), the model the same weights and history
    # (its directory also records how long training took).
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    local = yaml.safe_load((origin / "dvc.lock").read_text())["stages"]
    assert set(rules_of(lock)) == expected
    by_rule = rules_of(lock)
    for stage in set().union(*(by_rule[rule] for rule in DATA_RULES)):
        assert lock[stage] == local[stage], stage
    evaluation, = by_rule["evaluate_physionet"]
    assert lock[evaluation]["outs"] == local[evaluation]["outs"]
    model = "models/physionet2016/static-4/seed1"
    assert same_run(origin / model, root / model)
    assert not planned_jobs("plot_segmentation_physionet", evaluated, cwd=root)
    assert stages_to_rerun(root) == set(dvc_stages(root)) - set(lock)
