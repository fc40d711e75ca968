"""The scene experiments (Table III) on real ESC-10 clips: training per fold through the
shared trainer, evaluation at clip and unit level, bootstrap aggregation over folds and
seeds, the table, resume after a kill, and the workflow rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DATA_ROOT, REPO, require
from helpers_training import assert_killed_run_resumes_exactly
from spectnet.cli import main
from spectnet.config import Params, ScenesConfig
from spectnet.datasets.clips import read_esc10, write_clip_dataset
from spectnet.errors import SpectNetError
from spectnet.evaluation.metrics import multiclass_metrics
from spectnet.experiments.scenes import EVAL_BATCH, Scenes, write_table_iii
from spectnet.experiments.task import Evaluation
from spectnet.grid import scene_figure_names, scene_runs
from spectnet.params import STEP_PARAMS, params_slice, validate_params
from spectnet.preprocessing.clips import preprocess_clips
from spectnet.training.checkpoint import read_model_file
from spectnet.training.data import ExampleSet

BIN = Path(sys.executable).parent


def scene_params(static=(1, 4, 1), learnable=(1, 4, 1), folds=(1,), n_filters=(16,),
                 learnable_n=16, scale="smoke", **section) -> Params:
    """Params at ``scale`` with its scene budgets and the grid overridden."""
    budget = lambda b: dict(zip(("epochs", "batch_size", "steps_per_epoch"), b))  # noqa: E731
    return Params.from_dict(validate_params({
        "scale": scale,
        "scales": {scale: {"scenes": {"folds": list(folds), "static": budget(static),
                                      "learnable": budget(learnable),
                                      "selection_subset": None}}},
        "scenes": {"frontend": {"n_filters": list(n_filters)},
                   "learnable": {"n_filters": [learnable_n]}, **section}}, partial=True))


def train_run(name, fold, seed, params, units, out, init_model=None):
    return Scenes(params, units).train(name, fold, seed, out, init_model=init_model,
                                       device="cpu", progress=False)


def evaluate_run(model, units, out, metrics, params):
    return Scenes(params, units).evaluate(model, out, metrics, device="cpu")


def build_units(clips_per_class_and_fold: int | None, root: Path) -> Path:
    """A unit store of real ESC-10 clips (all of them, or the first k of every class and
    fold), made by the project's own steps."""
    src = require(DATA_ROOT / "esc10")
    if clips_per_class_and_fold is not None:
        copy = root / "copy"
        for class_dir in src.glob("0* - *"):
            (copy / class_dir.name).mkdir(parents=True)
            for fold in "1234":
                for clip in sorted(class_dir.glob(f"{fold}-*.ogg"))[:clips_per_class_and_fold]:
                    shutil.copy(clip, copy / class_dir.name / clip.name)
        src = copy
    raw = write_clip_dataset(read_esc10(src), root / "raw")
    preprocess_clips(raw, root / "units", ScenesConfig(), workers=2, progress=False)
    return root / "units"


@pytest.fixture(scope="module")
def small_units(tmp_path_factory) -> Path:
    """80 real clips: two per class and fold."""
    return build_units(2, tmp_path_factory.mktemp("esc10-small"))


@pytest.fixture(scope="module")
def esc10_units(tmp_path_factory) -> Path:
    """All 320 staged ESC-10 clips (folds 1-4), one 5-s unit each."""
    return build_units(None, tmp_path_factory.mktemp("esc10"))


# ----------------------------------------------------------------------------- settings
def test_grid_and_stage_settings_follow_params_and_scale():
    params = Params()
    assert scene_runs(params) == ["static-16", "static-32", "static-46", "static-64",
                                  "static-128", "static-149", "static-46-control",
                                  "learnable-46"]
    task, cpu = Scenes(params, "."), torch.device("cpu")
    quick = params.active_scale.scenes
    static = task.stage_settings(task.parse_run("static-46"), cpu)
    assert (static.epochs, static.batch_size, static.steps_per_epoch, static.patience) == (
        quick.static.epochs, quick.static.batch_size, quick.static.steps_per_epoch,
        quick.static.patience)
    assert (static.optimizer, static.lr, static.sampler) == ("adam", params.scenes.static.lr,
                                                             "shuffled")
    assert not static.train_frontend and static.eval_batch_size == EVAL_BATCH
    learnable = task.stage_settings(task.parse_run("learnable-46"), cpu)
    control = task.stage_settings(task.parse_run("static-46-control"), cpu)
    assert learnable.train_frontend and (learnable.lr, learnable.frontend_lr) == (
        params.scenes.learnable.lr, params.scenes.learnable.frontend_lr)
    assert {**vars(control), "train_frontend": True} == vars(learnable)
    # grid_epochs shortens the runs outside the learnable comparison, only them
    short = Scenes(Params.from_dict(validate_params(
        {"scales": {"quick": {"scenes": {"grid_epochs": 1}}}}, partial=True)), ".")
    assert [short.stage_settings(short.parse_run(n), cpu).epochs for n in (
        "static-16", "static-46", "static-46-control")] == [1, static.epochs, learnable.epochs]
    # cpu_autocast reaches every stage (float32 by default)
    assert {static.cpu_autocast, learnable.cpu_autocast, control.cpu_autocast} == {"float32"}
    bf16 = Scenes(Params.from_dict({"cpu_autocast": "bf16"}), ".")
    assert {bf16.stage_settings(bf16.parse_run(n), cpu).cpu_autocast for n in (
        "static-46", "static-46-control", "learnable-46")} == {"bf16"}
    full = Scenes(Params.from_dict(validate_params({"scale": "full"})), ".")
    assert full.folds() == [1, 2, 3, 4]
    assert full.stage_settings(full.parse_run("static-46"), cpu).batch_size == 64  # the paper's


def test_each_step_reads_only_its_scene_keys():
    """Editing a scene key changes the parameter slice (and so reruns) of exactly the
    steps that read it; the heart-sound steps never."""
    base = validate_params({})

    def changed(edit):
        other = validate_params(edit, partial=True)
        return {step for step in STEP_PARAMS
                if params_slice(base, step) != params_slice(other, step)}

    assert changed({"scenes": {"learnable": {"lr": 0.002}}}) == {
        "train_learnable_scenes", "train_control_scenes"}
    assert changed({"scenes": {"learnable": {"frontend_lr": 0.1}}}) == {"train_learnable_scenes"}
    assert changed({"scales": {"quick": {"scenes": {"static": {
        "epochs": 9, "batch_size": 8, "steps_per_epoch": 16}}}}}) == {"train_static_scenes"}
    assert changed({"scales": {"full": {"scenes": {"static": {
        "epochs": 9, "batch_size": 8, "steps_per_epoch": 16}}}}}) == set()  # not active
    assert changed({"scenes": {"evaluation": {"ci_level": 0.9}}}) == {"evaluate_scenes",
                                                                      "table_scenes"}
    # another filter count adds runs; the existing runs' settings stay as they were
    assert changed({"scenes": {"frontend": {"n_filters": [16, 46]}}}) == {"table_scenes",
                                                                         "figures_scenes"}
    assert changed({"scenes": {"frontend": {"hop_length": 110}}}) == {"train_static_scenes"}


# ----------------------------------------------------------------------------- metrics
def _examples(labels, clips, n_classes=3) -> ExampleSet:
    n = len(labels)
    return ExampleSet(torch.zeros(n, 4), torch.tensor(labels), np.zeros(n, int),
                      np.array(clips), tuple(f"c{i}" for i in range(n_classes)))


class _ThreeClasses(Scenes):
    classes = ("c0", "c1", "c2")
    dataset = "test"


def test_score_decides_clips_by_their_mean_posterior():
    # three clips of two units; in each clip one unit is wrong but less confident
    examples = _examples([0, 0, 1, 1, 2, 2], ["a", "a", "b", "b", "c", "c"])
    examples.index = pd.DataFrame({"unit": [0, 1] * 3})
    p = np.array([[0.9, 0.1, 0.0], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1],
                  [0.5, 0.4, 0.1], [0.0, 0.2, 0.8], [0.4, 0.0, 0.6]])
    s = _ThreeClasses(Params(), ".").score(p, examples)
    assert s["unit_accuracy"] == pytest.approx(4 / 6)
    assert s["accuracy"] == s["macc"] == s["f1"] == s["f1_mean"] == 1.0
    assert s["loss"] == pytest.approx(-np.log([0.9, 0.3, 0.8, 0.4, 0.8, 0.6]).mean())


def _evaluation(labels, predictions, clips) -> Evaluation:
    units = pd.DataFrame({"group": clips, "domain": [f"c{v}" for v in labels], "label": labels,
                          "prediction": predictions})
    per_clip = units.groupby("group", sort=True).first().reset_index()
    per_clip["n_examples"], per_clip["n_correct"] = 1, (per_clip["label"] ==
                                                        per_clip["prediction"]).astype(int)
    return Evaluation(units, per_clip)


def test_bootstrap_averages_evaluations_and_resamples_clips():
    rng = np.random.default_rng(0)
    clips = [f"k{i:02d}" for i in range(60)]
    labels = np.arange(60) % 3
    seeds = [_evaluation(labels, np.where(rng.random(60) < p, labels, (labels + 1) % 3), clips)
             for p in (0.9, 0.6)]
    task = _ThreeClasses(Params(), ".")
    point, ci = task.summarise(seeds, 200, 0.9)
    single = [multiclass_metrics(e.groups["label"], e.groups["prediction"], 3) for e in seeds]
    for metric in ("accuracy", "macc", "f1", "f1_mean"):
        assert point[f"clip.{metric}"] == pytest.approx(np.mean([m[metric] for m in single]))
        low, high = ci[f"clip.{metric}"]
        assert low < point[f"clip.{metric}"] < high
    # per class: one-vs-rest over every clip
    assert point["domain.c0.sensitivity"] == pytest.approx(np.mean(
        [((e.groups["label"] == 0) & (e.groups["prediction"] == 0)).sum() / 20 for e in seeds]))
    # one evaluation of clips of one unit each: unit level = clip level
    point1, ci1 = task.summarise(seeds[:1], 200, 0.9)
    for metric in ("accuracy", "macc"):
        assert point1[f"unit.{metric}"] == point1[f"clip.{metric}"]
        assert ci1[f"unit.{metric}"] == ci1[f"clip.{metric}"]
    # twice the same evaluation: the same mean; no spread between the two trainings, so
    # the interval of their mean is the clips' part alone, symmetric (normal quantile)
    # and about as wide as the one evaluation's percentile interval
    point2, ci2 = task.summarise(seeds[:1] * 2, 200, 0.9)
    assert point2["clip.macc"] == pytest.approx(point1["clip.macc"])
    low, high = ci2["clip.macc"]
    assert (low + high) / 2 == pytest.approx(point1["clip.macc"])
    assert high - low == pytest.approx(ci1["clip.macc"][1] - ci1["clip.macc"][0], rel=0.3)
    # a class's support is a count, not clipped to [0, 1]
    assert ci2["domain.c0.support"][1] > 1


# ----------------------------------------------------------------------------- CLI errors
def test_clear_errors_for_a_missing_fold_init_or_store(small_units, tmp_path):
    params = json.dumps(scene_params().to_dict())
    log = tmp_path / "train.log"

    def train(*args):
        code = main(["scenes", "train", *args, "--seed", "1", "--params", params,
                     "--log", str(log), "-q"])
        return code, log.read_text()

    code, text = train("static-16", "--fold", "9", "--units", str(small_units),
                       "--out", str(tmp_path / "a"))
    assert code == 1 and "esc10 unit store has no fold 9 (its folds: [1, 2, 3, 4])" in text
    code, text = train("learnable-16", "--fold", "1", "--units", str(small_units),
                       "--out", str(tmp_path / "b"))
    assert code == 1 and "give its model file (--init)" in text
    code, text = train("static-16", "--fold", "1", "--units", str(tmp_path),
                       "--out", str(tmp_path / "c"))
    assert code == 1 and f"{tmp_path}: not a readable unit store" in text
    assert "Traceback" not in log.read_text()
    assert not any((tmp_path / d).exists() for d in "abc")


# ----------------------------------------------------------------------------- training
#: The short training of the above-chance test: static SpectNet-16, 5 epochs of 20
#: batches of 8 (800 units, about 4 passes over folds 1-3 without their inner split), seed 1.
SHORT = scene_params(static=(5, 8, 20), learnable=(1, 4, 2), folds=(4,))


@pytest.fixture(scope="module")
def fold4_static(esc10_units, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "static-16" / "fold4" / "seed1"
    train_run("static-16", 4, 1, SHORT, esc10_units, out)
    return out


def test_inner_split_keeps_sources_together_and_never_touches_the_evaluation_fold(esc10_units):
    task = Scenes(SHORT, esc10_units)
    train, selection = task.splits(4, torch.device("cpu"))
    evaluation = task.load(4, "reporting", torch.device("cpu"))
    assert set(selection.groups).isdisjoint(evaluation.groups)
    assert set(train.groups).isdisjoint(selection.groups)
    assert len(train) + len(selection) == 240
    sources = lambda ex: {c.split("-")[1] for c in ex.groups}  # noqa: E731  (Freesound ids)
    assert sources(train).isdisjoint(sources(selection))
    assert set(selection.labels.tolist()) == set(range(10))  # every class held out


@pytest.mark.slow
def test_short_training_on_folds_1_to_3_scores_clearly_above_chance_on_fold_4(
        fold4_static, esc10_units, tmp_path):
    """Chance is 10 % (10 balanced classes); measured: 47.5 % clip accuracy (seed 1)."""
    metrics = evaluate_run(fold4_static / "best.pt", esc10_units, tmp_path / "pred",
                           tmp_path / "metrics.json", SHORT)
    clip = metrics["metrics"]["clip"]
    print(f"static-16, ESC-10 fold 4, seed 1: clip accuracy {clip['accuracy']:.4f}, "
          f"MACC {clip['macc']:.4f}, F1 {clip['f1']:.4f} (epoch {metrics['epoch']})")
    assert clip["accuracy"] >= 0.30
    assert (metrics["run"], metrics["fold"], metrics["dataset"], metrics["counts"]["clip"]) == (
        "static-16", 4, "esc10", 80)
    summary = json.loads((fold4_static / "summary.json").read_text())
    assert summary["train_examples"] + summary["selection_examples"] == 240
    assert summary["selection"] == "inner" and summary["stopped"] == "budget"
    # ESC-10 clips are single units: both levels agree
    assert {k: metrics["metrics"]["unit"][k] for k in clip} == clip
    low, high = metrics["ci"]["clip"]["accuracy"]
    assert low < clip["accuracy"] < high
    confusion = np.array(metrics["confusion"]["clip"])
    assert confusion.shape == (10, 10) and confusion.sum() == 80
    assert np.trace(confusion) / 80 == pytest.approx(clip["accuracy"])
    assert set(metrics["per_domain"]) == set(metrics["classes"])
    assert all(c["count"] == 8 and c["metrics"]["support"] == 8
               for c in metrics["per_domain"].values())
    units = pd.read_csv(tmp_path / "pred" / "units.csv")
    probabilities = units.filter(like="p_").to_numpy()
    assert len(units) == 80 and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (units["prediction"] == probabilities.argmax(1)).all()
    # the front-end stayed frozen in stage 1
    trace = pd.read_csv(fold4_static / "frontend.csv")
    assert trace.groupby("filter")["center_frequency"].nunique().max() == 1


@pytest.mark.slow
def test_learnable_run_and_table(fold4_static, esc10_units, tmp_path):
    models, predictions, runs = tmp_path / "models", tmp_path / "pred", tmp_path / "runs"
    shutil.copytree(fold4_static, models / "static-16" / "fold4" / "seed1")
    learnable = models / "learnable-16" / "fold4" / "seed1"
    summary = train_run("learnable-16", 4, 1, SHORT, esc10_units, learnable,
                        init_model=fold4_static / "best.pt")
    assert summary["initialised_from"] == str(fold4_static / "best.pt")
    assert summary["frontend_change"]["f_max_hz"] > 0  # stage 2 trains the filters
    train_run("static-16-control", 4, 1, SHORT, esc10_units,
              models / "static-16-control" / "fold4" / "seed1", init_model=fold4_static / "best.pt")
    with pytest.raises(SpectNetError, match="trained on fold 4"):
        train_run("learnable-16", 3, 1, SHORT, esc10_units, tmp_path / "x",
                  init_model=fold4_static / "best.pt")
    for run in ("static-16", "static-16-control", "learnable-16"):
        evaluate_run(models / run / "fold4" / "seed1" / "best.pt", esc10_units,
                     predictions / run / "fold4" / "seed1", runs / run / "fold4" / "seed1.json",
                     SHORT)
    table = write_table_iii(SHORT, esc10_units, runs, predictions, models, tmp_path / "table3")
    assert sorted(p.name for p in tmp_path.glob("table3*")) == [
        "table3-classes.json", "table3-comparisons.csv", "table3-units.csv", "table3-units.md",
        "table3-units.tex", "table3.csv", "table3.md", "table3.tex"]
    tests = pd.read_csv(tmp_path / "table3-comparisons.csv")
    same = tests[(tests["a"] == "static-16-control") & (tests["seed"] == "1")].iloc[0]
    assert same["b"] == "learnable-16" and same["clips"] == 80
    assert same["only_a"] + same["only_b"] + same["both_correct"] + same["both_wrong"] == 80
    acc = table.set_index(["run", "metric"])
    static_metrics = json.loads((runs / "static-16" / "fold4" / "seed1.json").read_text())
    assert acc.at[("static-16", "Acc"), "mean"] == pytest.approx(
        100 * static_metrics["metrics"]["clip"]["accuracy"])
    assert acc.at[("static-16", "Acc"), "paper"] == 66.92
    assert acc.at[("static-16", "MACC"), "difference"] == pytest.approx(
        acc.at[("static-16", "MACC"), "mean"] - 81.47)
    assert acc.at[("static-46", "F1 (class mean)"), "paper"] == 74.10  # A19
    assert acc.at[("static-46", "Acc"), "n"] == 0  # not in this grid
    assert np.isnan(acc.at[("learnable-16", "Acc"), "paper"])
    assert set(table["dataset"]) == {"esc10"} and set(table["scale"]) == {"smoke"}
    md = (tmp_path / "table3.md").read_text()
    assert "ours on ESC-10 (smoke scale)" in md
    assert "folds 1, 2, 3 not run (not in scales.smoke.scenes.folds)" in md
    assert "static-16 5 epochs, 100 steps of 8 (budget ended)" in md
    assert "learnable-16 vs static-16-control (same budget), seed 1: clip MACC" in md
    assert "learnable-16: filters moved |Δf| max" in md
    assert "Ours: ESC-10, 10 classes, 320 clips." in md and "reference here, not a target" in md
    assert "Not run: static-32, static-46, static-64, static-128, static-149, learnable-46" in md
    assert "| Static SpectNet-46 | ours | not run |" in md
    tex = (tmp_path / "table3.tex").read_text()
    assert "\\toprule" in tex and "Static SpectNet-16 & ours &" in tex
    classes = json.loads((tmp_path / "table3-classes.json").read_text())
    assert np.array(classes["static-16"]["confusion_sum"]).sum() == 80
    assert set(classes["static-16"]["per_class"]) == set(classes["static-16"]["classes"])
    # one seed and fold: the table's interval is the run's own (one bootstrap, one seed)
    macc_ci = static_metrics["ci"]["clip"]["macc"]
    assert (acc.at[("static-16", "MACC"), "ci_low"], acc.at[("static-16", "MACC"), "ci_high"]) \
        == pytest.approx((100 * macc_ci[0], 100 * macc_ci[1]))
    # the scene figures, from the same runs
    figures = tmp_path / "figures"
    assert main(["scenes", "figures", "--models-dir", str(models), "--runs-dir", str(runs),
                 "--out-dir", str(figures), "--params", json.dumps(SHORT.to_dict())]) == 0
    names = scene_figure_names(SHORT)
    assert names == ["scene-learning-curves", "scene-filterbank-learnable-16",
                     "scene-frontend-trajectories-learnable-16", "scene-confusion-matrices-16"]
    assert sorted(p.name for p in figures.iterdir()) == sorted(
        f"{name}.{suffix}" for name in names for suffix in ("png", "pdf"))
    # a table over evaluations of another scale refuses to mix them
    other = scene_params(folds=(4,), scale="quick")
    with pytest.raises(SpectNetError, match="expected .*'quick'"):
        write_table_iii(other, esc10_units, runs, predictions, models, tmp_path / "t")


# ----------------------------------------------------------------------------- resume
def _train_command(units: Path, out: Path, params: Params) -> list[str]:
    return [sys.executable, "-m", "spectnet.cli", "scenes", "train", "static-16", "--fold", "1",
            "--seed", "1", "--units", str(units), "--out", str(out),
            "--params", json.dumps(params.to_dict()), "-q"]


@pytest.mark.slow
def test_killed_scene_run_resumes_to_the_same_result(small_units, tmp_path):
    params = scene_params(static=(3, 4, 2))
    assert_killed_run_resumes_exactly(lambda out: _train_command(small_units, out, params),
                                      tmp_path, epochs=3)


# ----------------------------------------------------------------------------- workflow
def _dry_run(root: Path, *config: str) -> tuple[str, dict[str, int]]:
    """A dry run of the scene table's DAG: the printed plan and the jobs per rule."""
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--cores", "2", "table_scenes",
                           "--config", *config], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = proc.stdout[proc.stdout.index("Job stats:"):]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}
    counts.pop("total")
    return proc.stdout, counts


@pytest.mark.slow
def test_scene_rules_plan_the_grid_per_fold_and_seed(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    for name in ("Snakefile", "workflow", "src"):    # src: the rules' code inputs
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    out, counts = _dry_run(tmp_path, "scale=full")
    # 6 static N x 4 folds x 3 seeds, learnable-46 and its control likewise, an evaluation
    # each, one table
    assert counts == {"fetch_scenes": 1, "preprocess_scenes": 1, "train_static_scenes": 72,
                      "train_learnable_scenes": 12, "train_control_scenes": 12,
                      "evaluate_scenes": 96, "table_scenes": 1}
    learnable = [b for b in re.split(r"\n(?=(?:local)?rule \w+:)", out)
                 if re.match(r"(?:local)?rule train_learnable_scenes:", b)]
    assert len(learnable) == 12
    for block in learnable:  # each fine-tunes the static-46 model of its fold and seed
        fold, seed = re.search(r"wildcards: n=46, fold=(\d), seed=(\d)", block).groups()
        assert f"--init models/scenes/esc10/static-46/fold{fold}/seed{seed}/best.pt" in block
    command = re.search(r"spectnet scenes train static-149 --fold 3 --seed 2 .*--params '(.*?)'",
                        out).group(1)
    assert json.loads(command) == params_slice(validate_params({"scale": "full"}),
                                               "train_static_scenes")
    assert "--model models/scenes/esc10/learnable-46/fold4/seed3/best.pt" in out
    quick = Params().active_scale.scenes
    out, counts = _dry_run(tmp_path, "scale=quick")
    assert counts["train_static_scenes"] == 5 * len(quick.seeds) + len(quick.comparison_seeds)
    assert counts["evaluate_scenes"] == counts["train_static_scenes"] + 2 * len(
        quick.comparison_seeds)
    assert "fold2" not in out and "--out results/scenes/esc10/table3 " in out
