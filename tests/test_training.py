"""Samplers, the trainer and the heart-sound runs on real beats (a small real beat set)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers_training import assert_killed_run_resumes_exactly, same_run
from spectnet.cli import main
from spectnet.config import Params
from spectnet.datasets.examples import ExampleStore
from spectnet.errors import SpectNetError
from spectnet.experiments.heart_sounds import HeartSounds
from spectnet.experiments.task import resume_dir
from spectnet.models import build_model
from spectnet.params import validate_params
from spectnet.training.checkpoint import load_model, read_model_file
from spectnet.training.samplers import DoubleBalancedSampler, ShuffledSampler
from spectnet.training.data import ExampleSet, load_examples
from spectnet import runtime
from spectnet.training.trainer import (CPU_AUTOCAST, StageSettings, autocast_for, cnn_precision,
                                      predict_proba, resolve_cpu_autocast, train_stage)


def smoke_params(heart_sounds: dict | None = None, **budget) -> Params:
    """Params at the smoke scale, with the heart-sound budgets (and section) overridden."""
    sizes = {"epochs": 2, "batch_size": 24, "steps_per_epoch": 2, **budget}
    stage2 = {k: v for k, v in sizes.items() if k != "patience"}  # stage 2 runs its budget
    return Params.from_dict(validate_params({
        "scale": "smoke", "heart_sounds": heart_sounds or {},
        "scales": {"smoke": {"heart_sounds": {"static": sizes, "baselines": sizes,
                                              "learnable": stage2}}}}, partial=True))


def train_run(name, seed, params, beats, out, init_model=None):
    task = HeartSounds(params, beats)
    return task.train(name, task.section.fold, seed, out, init_model=init_model, device="cpu",
                      progress=False)


def tiny_run(examples, work_dir, **stage):
    """Two epochs of three shuffled batches of 12 of a 4-filter static SpectNet-ResNet,
    seeded, trained and scored (accuracy) on ``examples``."""
    torch.manual_seed(0)
    model = build_model({"architecture": "spectnet-resnet", "n_samples": 2500,
                         "sample_rate": 1000, "frontend": {"n_filters": 4}})
    settings = StageSettings(epochs=2, batch_size=12, steps_per_epoch=3, sampler="shuffled",
                             **stage)
    return train_stage(model, settings, examples, examples, lambda probs, ex: {
        "macc": float((probs.argmax(1) == ex.labels.numpy()).mean())}, seed=0,
        work_dir=work_dir, progress=False)


@pytest.fixture(scope="module")
def train_set(small_beats_dir):
    return HeartSounds(Params(), small_beats_dir).load(0, "train", torch.device("cpu"))


@pytest.fixture(scope="module")
def validation_set(small_beats_dir):
    return HeartSounds(Params(), small_beats_dir).load(0, "reporting", torch.device("cpu"))


# ----------------------------------------------------------------------------- samplers
def test_double_balanced_batches_hold_chunk_from_every_cell(train_set):
    labels, domains = train_set.labels.numpy(), train_set.domains
    sampler = DoubleBalancedSampler(labels, domains, batch_size=100, seed=3)
    assert sampler.n_cells == 12 and sampler.chunk == 8 and sampler.batch_size == 96
    sizes = Counter(zip(labels.tolist(), domains.tolist()))
    assert sampler.steps_per_epoch == max(sizes.values()) // 8 + 1
    drawn = {cell: [] for cell in sizes}
    for _ in range(sampler.steps_per_epoch):
        batch = sampler.next_batch().numpy()
        cells = Counter(zip(labels[batch].tolist(), domains[batch].tolist()))
        assert set(cells) == set(sizes) and set(cells.values()) == {8}
        for i in batch:
            drawn[(labels[i], domains[i])].append(int(i))
    for cell, indices in drawn.items():
        size = sizes[cell]
        # until a cell runs out its draws are a permutation prefix: no repeats
        first_pass = indices[: (size // 8) * 8]
        assert len(set(first_pass)) == len(first_pass)
        if size >= 8 * sampler.steps_per_epoch:  # the largest cell: one pass, then exhausted
            assert len(set(indices)) == len(indices)


def test_double_balanced_cells_are_repermuted_when_exhausted():
    labels = np.array([0] * 10 + [1] * 3)
    sampler = DoubleBalancedSampler(labels, np.zeros(13, int), batch_size=4, seed=0)
    small = [sorted(b[2:].tolist()) for b in (sampler.next_batch() for _ in range(6))]
    # the 3-example cell gives 2 per batch: one full pass of 2 leaves 1 over -> re-permuted
    assert all(set(pair) <= {10, 11, 12} and len(set(pair)) == 2 for pair in small)


def test_sampler_state_round_trip_reproduces_the_stream(train_set):
    labels, domains = train_set.labels.numpy(), train_set.domains
    for make in (lambda: DoubleBalancedSampler(labels, domains, 48, seed=5),
                 lambda: ShuffledSampler(len(labels), 48, seed=5)):
        a = make()
        for _ in range(7):
            a.next_batch()
        b = make()
        b.load_state_dict(a.state_dict())
        for _ in range(40):
            assert torch.equal(a.next_batch(), b.next_batch())


def test_shuffled_sampler_covers_every_example_once_per_epoch():
    sampler = ShuffledSampler(103, 10, seed=1)
    assert sampler.steps_per_epoch == 11
    epoch = torch.cat([sampler.next_batch() for _ in range(11)])
    assert sorted(epoch.tolist()) == list(range(103))


def test_sampler_refuses_a_batch_smaller_than_its_cells(train_set):
    with pytest.raises(ValueError, match="smaller than the number of"):
        DoubleBalancedSampler(train_set.labels.numpy(), train_set.domains, 11, seed=0)


# ----------------------------------------------------------------------------- data
def test_splits_are_disjoint_recordings_without_excluded_ones(small_beats_dir, train_set,
                                                              validation_set):
    assert not set(train_set.groups) & set(validation_set.groups)
    assert set(validation_set.domain_names) == set("abcdef")
    index = pd.read_csv(small_beats_dir / "beats.csv", dtype={"record": str})
    excluded = set(index.loc[index["excluded"] == 1, "record"])
    assert not excluded & (set(train_set.groups) | set(validation_set.groups))
    x, y = validation_set.batch(torch.tensor([0, 5]))
    beats = np.load(small_beats_dir / "beats.npy", mmap_mode="r")
    rows = index.index[(index["validation0"] == 1) & (index["excluded"] == 0)]
    assert np.array_equal(x.numpy(), beats[rows[[0, 5]]])


def test_a_streamed_set_reads_ahead_and_gives_the_in_memory_batches(small_beats_dir, train_set):
    """A memory-mapped set: the same batches in the same order as in memory, the indices
    drawn in the caller's order and at most ``prefetch`` ahead of what it has received."""
    store = ExampleStore(small_beats_dir)
    mask = ((store.index["train0"] == 1) & (store.index["excluded"] == 0)).to_numpy()
    streamed = load_examples(store, mask, domain_column="subset", device="cpu", in_memory=False)
    assert streamed.streamed and not train_set.streamed and len(streamed) == len(train_set)
    sampler = ShuffledSampler(len(train_set), 32, seed=3)
    indices = [sampler.next_batch() for _ in range(sampler.steps_per_epoch)]
    drawn = []

    def draw():
        for index in indices:
            drawn.append(index)
            yield index

    for k, (x, y) in enumerate(streamed.batches(draw(), prefetch=2)):
        assert len(drawn) <= k + 1 + 2
        expected_x, expected_y = train_set.batch(indices[k])
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
    assert k + 1 == len(indices) and all(a is b for a, b in zip(drawn, indices))
    # a read that fails reaches the caller; stopping early leaves nothing running
    with pytest.raises(IndexError):
        list(streamed.batches([torch.tensor([0]), torch.tensor([len(streamed)])]))
    first = next(iter(streamed.batches(indices)))
    assert torch.equal(first[0], train_set.batch(indices[0])[0])


def test_a_streamed_set_trains_exactly_the_in_memory_model(small_beats_dir, train_set, tmp_path):
    rows = np.arange(len(train_set)) < 48
    in_memory = train_set.subset(rows)
    streamed = ExampleSet(np.ascontiguousarray(in_memory.waveforms.numpy()), in_memory.labels,
                          in_memory.domains, in_memory.groups, in_memory.classes)
    results = [tiny_run(examples, tmp_path / str(examples.streamed), eval_batch_size=20)
               for examples in (in_memory, streamed)]
    assert all(torch.equal(results[0].last_state[k], results[1].last_state[k])
               for k in results[0].last_state)
    assert results[0].history[-1]["macc"] == results[1].history[-1]["macc"]


def test_inner_split_is_record_disjoint_stratified_and_never_touches_validation(
        small_beats_dir, train_set, validation_set):
    task = HeartSounds(Params(), small_beats_dir)
    train, selection = task.splits(0, torch.device("cpu"))
    assert set(train.groups).isdisjoint(selection.groups)
    assert set(train.groups) | set(selection.groups) == set(train_set.groups)
    assert set(selection.groups).isdisjoint(validation_set.groups)
    # every class x subset with two or more train0 recordings gives one to the inner split
    recordings = train_set.index.drop_duplicates("record")
    for (label, subset), cell in recordings.groupby(["label", "subset"]):
        held = cell["record"].isin(set(selection.groups)).sum()
        assert held == (0 if len(cell) < 2 else max(1, round(0.15 * len(cell))))
    # each selection recording votes with its first beats_per_record beats
    assert selection.index.groupby("record").size().max() <= 6
    assert (selection.index.groupby("record")["beat"].min() == 0).all()
    again = task.splits(0, torch.device("cpu"))[1]
    assert np.array_equal(again.groups, selection.groups)  # the same split on every call
    # the authors' protocol selects on the reporting fold itself
    authors = HeartSounds(smoke_params({"selection": {"split": "reporting",
                                                      "beats_per_record": None}}),
                          small_beats_dir)
    train_all, chosen = authors.splits(0, torch.device("cpu"))
    assert len(train_all) == len(train_set) and set(chosen.groups) == set(validation_set.groups)


def test_score_is_recording_level_majority_vote(small_beats_dir, validation_set):
    score = HeartSounds(Params(), small_beats_dir).score
    labels = validation_set.labels.numpy()
    perfect = np.eye(2)[labels]
    s = score(perfect, validation_set)
    assert s["macc"] == s["accuracy"] == 1.0 and s["loss"] < 1e-6
    always_abnormal = np.tile([0.4, 0.6], (len(labels), 1))
    s = score(always_abnormal, validation_set)
    assert s["sensitivity"] == 1.0 and s["specificity"] == 0.0 and s["macc"] == 0.5


# ----------------------------------------------------------------------------- trainer
@pytest.mark.slow
def test_training_lowers_the_loss_and_overfits_a_small_subset(train_set, tmp_path):
    """12 normal and 12 abnormal beats, 100 steps: the ResNet memorises them."""
    picked = np.r_[np.flatnonzero(train_set.labels.numpy() == 0)[:12],
                   np.flatnonzero(train_set.labels.numpy() == 1)[:12]]
    subset = type(train_set)(train_set.waveforms[picked], train_set.labels[picked],
                             train_set.domains[picked] * 0, train_set.groups[picked],
                             train_set.classes)
    torch.manual_seed(0)
    model = build_model({"architecture": "spectnet-resnet", "n_samples": 2500,
                         "sample_rate": 1000, "frontend": {"n_filters": 4}})
    stage = StageSettings(epochs=5, batch_size=24, steps_per_epoch=20, lr=1e-3)
    train_score = lambda probs, ex: {"macc": float((probs.argmax(1) == ex.labels.numpy()).mean())}  # noqa: E731
    before = predict_proba(model, subset)
    result = train_stage(model, stage, subset, subset, train_score, seed=0,
                         work_dir=tmp_path, progress=False)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[-1]["macc"] == 1.0
    assert not np.allclose(before, predict_proba(model, subset))


def test_a_cached_frozen_front_end_trains_the_same_model(train_set, tmp_path):
    subset = train_set.subset(np.arange(len(train_set)) < 48)
    results = [tiny_run(subset, tmp_path / str(cache), eval_batch_size=16, cache_frontend=cache)
               for cache in (False, True)]
    plain, cached = results
    assert plain.best_state.keys() == cached.best_state.keys()
    for key in plain.last_state:
        torch.testing.assert_close(cached.last_state[key], plain.last_state[key],
                                   rtol=1e-4, atol=1e-5)
    assert [r["train_loss"] for r in cached.history] == pytest.approx(
        [r["train_loss"] for r in plain.history], rel=1e-4)


def test_warm_up_ramps_the_rate_and_patience_stops_early(train_set, tmp_path):
    picked = np.r_[np.flatnonzero(train_set.labels.numpy() == 0)[:8],
                   np.flatnonzero(train_set.labels.numpy() == 1)[:8]]
    subset = train_set.subset(np.isin(np.arange(len(train_set)), picked))
    model = build_model({"architecture": "spectnet-resnet", "n_samples": 2500,
                         "sample_rate": 1000, "frontend": {"n_filters": 4}})
    worse_every_epoch = iter(range(100, 0, -1))
    stage = StageSettings(epochs=8, batch_size=12, steps_per_epoch=3, lr=1e-3, sampler="shuffled",
                          warmup_steps=6, patience=2)
    result = train_stage(model, stage, subset, subset,
                         lambda probs, ex: {"macc": float(next(worse_every_epoch))}, seed=0,
                         work_dir=tmp_path, progress=False)
    # best at epoch 1, two epochs without a better score, then stop
    assert result.stopped == "patience" and len(result.history) == 3 and result.best_epoch == 1
    # the rate of the next step at the end of each epoch: (step + 1) / 6 of 1e-3 after 3, 6 steps
    lrs = [r["lr"] for r in result.history]
    assert lrs == pytest.approx([4 / 6 * 1e-3, 1e-3, 1e-3])


def test_stage_settings_follow_params_and_scale(small_beats_dir):
    params = smoke_params(epochs=3, batch_size=48, steps_per_epoch=5, patience=2)
    task = HeartSounds(params, small_beats_dir)
    cpu = torch.device("cpu")
    static = task.stage_settings(task.parse_run("static-16"), cpu)
    assert (static.epochs, static.batch_size, static.steps_per_epoch) == (3, 48, 5)
    assert static.optimizer == "adam" and not static.train_frontend and static.lr == 1e-3
    assert static.patience == 2 and static.warmup_steps == params.heart_sounds.static.warmup_steps
    learnable = task.stage_settings(task.parse_run("learnable-16"), cpu)
    control = task.stage_settings(task.parse_run("static-16-control"), cpu)
    assert learnable.train_frontend and not control.train_frontend
    assert learnable.patience is None  # stage 2 takes its whole budget, as its control
    assert learnable.frontend_lr == params.heart_sounds.learnable.frontend_lr
    # the control trains the CNN exactly as learnable-N does
    assert {**vars(control), "train_frontend": True} == vars(learnable)
    code = HeartSounds(smoke_params({"learnable": {"variant": "s2_code"}}), small_beats_dir)
    variant = code.stage_settings(code.parse_run("learnable-16"), cpu)
    assert (variant.optimizer, variant.lr, variant.frontend_lr, variant.batch_size,
            variant.accumulate) == ("sgd", 0.005, 0.1, 100, 10)
    baseline = task.stage_settings(task.parse_run("gammatone-1d"), cpu)
    assert baseline.lr_schedule == "inverse_time" and baseline.weight_decay == pytest.approx(0.0972)
    assert baseline.lr_decay == pytest.approx(0.0001132885 * 48 / 64)
    with pytest.raises(SpectNetError, match="unknown run"):
        task.parse_run("static")
    with pytest.raises(SpectNetError, match="unknown run"):
        task.parse_run("learnable-16-control")


@pytest.mark.parametrize("dim", ["1d", "2d"])
def test_baseline_filters_start_where_batch_norm_can_see_their_output(dim, train_set):
    """The SpectNet code's b = 100 Hz, a = 1e4 give outputs so far below the batch norm's
    eps that it passes almost none of the signal (the network sees a constant); the
    baselines start from Heartnet's b and a."""
    task = HeartSounds(smoke_params(), ".")
    model = build_model(task.model_spec(task.parse_run(f"gammatone-{dim}")))
    filterbank = model.frontend
    assert torch.allclose(filterbank.bandwidth, torch.tensor(30.0))
    assert torch.allclose(filterbank.amplitude, torch.tensor(1e5))
    x = train_set.batch(torch.arange(64))[0]
    with torch.no_grad():
        out = filterbank(x)

    def passed(out):   # the share of the signal a batch norm with eps 1.1e-5 passes
        var = out.std(dim=(0, 2)).max() ** 2
        return float((var / (var + 1.1e-5)).sqrt())

    assert out.shape[:2] == (64, 4) and passed(out) > 0.1
    code = HeartSounds(smoke_params({"baselines": {"bandwidth": 100, "amplitude": 1e4}}), ".")
    with torch.no_grad():
        tiny = build_model(code.model_spec(code.parse_run(f"gammatone-{dim}"))).frontend(x)
    assert passed(tiny) < 0.005


# ----------------------------------------------------------------------------- runs
def _run_cli(*args) -> int:
    return main([*args])


def _params_json(params: Params) -> str:
    return json.dumps(params.to_dict())


@pytest.fixture(scope="module")
def static_run(small_beats_dir, tmp_path_factory):
    """static-4 trained at a tiny budget, through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "static-4" / "seed1"
    params = smoke_params(epochs=2, steps_per_epoch=3)
    assert _run_cli("physionet", "train", "static-4", "--seed", "1", "--beats",
                    str(small_beats_dir), "--out", str(out), "--params", _params_json(params),
                    "-q") == 0
    return out, params


def test_a_run_writes_self_describing_models_and_logs(static_run):
    out, params = static_run
    assert {p.name for p in out.iterdir()} >= {"best.pt", "last.pt", "history.csv",
                                               "frontend.csv", "summary.json", "dvclive"}
    assert not resume_dir(out).exists()
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert {"train_loss", "loss", "accuracy", "macc", "sensitivity", "specificity"} <= set(history)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scale"] == "smoke" and summary["run"] == "static-4"
    assert history.loc[summary["best_epoch"] - 1, "macc"] == history["macc"].max()
    model, info = load_model(out / "best.pt")
    assert info["epoch"] == summary["best_epoch"] and info["classes"] == ["normal", "abnormal"]
    assert info["preprocess"]["sample_rate"] == 1000 and info["beats"]["beat_length"] == 2500
    assert tuple(model(torch.zeros(2, 2500)).shape) == (2, 2)
    # the default cpu_autocast: the CNN in float32, recorded in the summary and model file
    assert summary["cnn_precision"] == "float32" and info["cpu_autocast"] == "float32"
    assert summary["stage"]["cpu_autocast"] == "float32"
    # the front-end stays frozen in stage 1: the filters at every epoch are the initial ones
    frontend = pd.read_csv(out / "frontend.csv")
    assert frontend.groupby("filter")["center_frequency"].nunique().max() == 1
    assert (out / "dvclive" / "metrics.json").exists()


def test_a_checkpoint_loads_with_weights_only(static_run):
    out, _ = static_run
    contents = torch.load(out / "best.pt", weights_only=True)
    assert contents["format"] == "spectnet-model/1"
    (out.parent / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(SpectNetError, match="bad.pt: not a readable SpectNet file"):
        read_model_file(out.parent / "bad.pt")


def test_stage_two_starts_from_stage_one_and_moves_the_filters(static_run, small_beats_dir,
                                                                tmp_path):
    static_out, params = static_run
    out = tmp_path / "learnable-4" / "seed1"
    summary = train_run("learnable-4", 1, params, small_beats_dir, out,
                        init_model=static_out / "best.pt")
    assert summary["initialised_from"] == str(static_out / "best.pt")
    init = read_model_file(static_out / "best.pt")["state_dict"]
    learned = read_model_file(out / "last.pt")
    # the learnable front-end moves in relative units (spacings, log units), by default
    assert learned["spec"]["frontend"]["parametrization"] == "relative"
    offset = "frontend.filterbank.offset_center_frequency"
    assert torch.all(init[offset] == 0) and learned["state_dict"][offset].abs().max() > 0
    assert set(init) == set(learned["state_dict"])
    trace = pd.read_csv(out / "frontend.csv")
    first = trace[trace["epoch"] == 0].sort_values("filter")["center_frequency"].to_numpy()
    assert np.array_equal(first, init["frontend.filterbank.init_center_frequency"].numpy())
    change = summary["frontend_change"]  # f moved by a nonzero amount, reported in Hz and spacings
    assert change["f_max_hz"] > 0 and 0 < change["f_median_spacing"] <= change["f_max_spacing"]
    assert change["b_max_rel"] > 0 and change["a_max_rel"] > 0
    with pytest.raises(SpectNetError, match="fine-tunes static-8"):
        train_run("learnable-8", 1, params, small_beats_dir, tmp_path / "x",
                  init_model=static_out / "best.pt")
    with pytest.raises(SpectNetError, match="give its model file"):
        train_run("learnable-4", 1, params, small_beats_dir, tmp_path / "y")


@pytest.mark.slow
def test_the_control_is_learnable_n_with_a_frozen_front_end(static_run, small_beats_dir, tmp_path):
    """Same start, steps, batches and CNN optimiser: with a front-end rate too small to move
    a float32 filter, learnable-N and static-N-control end bit-identical; with the
    recipe's rate only the front-end tells them apart."""
    static_out, _ = static_run
    init = static_out / "best.pt"
    still = smoke_params({"learnable": {"frontend_lr": 1e-12}}, epochs=2, steps_per_epoch=3)
    runs = {}
    for name in ("static-4-control", "learnable-4"):
        runs[name] = train_run(name, 1, still, small_beats_dir, tmp_path / name, init_model=init)
    control, learnable = runs["static-4-control"], runs["learnable-4"]
    assert control["steps"] == learnable["steps"] == 6
    assert control["initialised_from"] == learnable["initialised_from"] == str(init)
    assert control["frontend_change"] is None
    a = read_model_file(tmp_path / "static-4-control" / "last.pt")["state_dict"]
    b = read_model_file(tmp_path / "learnable-4" / "last.pt")["state_dict"]
    cnn = [k for k in a if k.startswith("cnn.")]
    assert all(torch.equal(a[k], b[k]) for k in cnn)
    frozen = pd.read_csv(tmp_path / "static-4-control" / "frontend.csv")
    assert frozen.groupby("filter")["center_frequency"].nunique().max() == 1
    with pytest.raises(SpectNetError, match="fine-tunes static-4"):
        train_run("static-4-control", 1, still, small_beats_dir, tmp_path / "z",
                  init_model=tmp_path / "learnable-4" / "best.pt")


def test_baselines_train_their_filters(small_beats_dir, tmp_path):
    params = smoke_params(epochs=1, steps_per_epoch=2)
    for run in ("gammatone-1d", "gammatone-2d"):
        train_run(run, 1, params, small_beats_dir, tmp_path / run)
        trace = pd.read_csv(tmp_path / run / "frontend.csv")
        assert trace["filter"].nunique() == 4
        assert trace.groupby("filter")["center_frequency"].nunique().max() == 2  # learnt


# ----------------------------------------------------------------------------- resume
def _train_command(beats: Path, out: Path, params: Params, seed: int = 1) -> list[str]:
    return [sys.executable, "-m", "spectnet.cli", "physionet", "train", "static-4",
            "--seed", str(seed), "--beats", str(beats), "--out", str(out),
            "--params", _params_json(params), "-q"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result_and_seeds_are_deterministic(small_beats_dir,
                                                                           tmp_path):
    params = smoke_params(epochs=4, steps_per_epoch=3)
    plain = assert_killed_run_resumes_exactly(
        lambda out: _train_command(small_beats_dir, out, params), tmp_path, epochs=4)
    for seed, same in ((1, True), (2, False)):  # the same seed again; another seed
        out = tmp_path / f"seed{seed}"
        subprocess.run(_train_command(small_beats_dir, out, params, seed=seed), check=True,
                       capture_output=True)
        assert same_run(plain, out) == same


def test_a_checkpoint_of_other_settings_is_not_resumed(small_beats_dir, tmp_path, caplog):
    params = smoke_params(epochs=1, steps_per_epoch=1)
    out = tmp_path / "run"
    work = resume_dir(out)
    work.mkdir(parents=True)
    torch.save({"format": "spectnet-checkpoint/1", "run_id": "0123456789abcdef"},
               work / "checkpoint.pt")
    with caplog.at_level("WARNING"):
        train_run("static-4", 1, params, small_beats_dir, out)
    assert "belongs to a run with other settings" in caplog.text
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


def test_partial_params_slice_is_completed_from_defaults():
    # the CLI gets only a step's slice; the rest of a scale block comes from the defaults
    piece = {"scale": "quick", "scales": {"quick": {"heart_sounds": {"static": {
        "epochs": 9, "batch_size": 96, "steps_per_epoch": None}}}}}
    from spectnet.params import read_params_argument
    full = read_params_argument(json.dumps(piece))
    assert full["scales"]["quick"]["heart_sounds"]["static"]["epochs"] == 9
    assert full["scales"]["quick"]["heart_sounds"]["learnable"] == \
        validate_params({})["scales"]["quick"]["heart_sounds"]["learnable"]


def test_renamed_keys_are_refused_naming_the_new_key():
    from spectnet.params import ParamsError
    for old, new in ((
            {"heart_sounds": {"static_filters": [4]}}, "use heart_sounds.frontend.n_filters"),
            ({"heart_sounds": {"baselines": {"learnable_filters": True}}},
             "use heart_sounds.baselines.learn_filters"),
            ({"scenes": {"frontend": {"learnable_n_filters": 46}}}, "use scenes.learnable.n_filters"),
            ({"scales": {"full": {"seeds": [1]}}}, "scales.full.seeds was renamed")):
        with pytest.raises(ParamsError, match=new):
            validate_params(old, "params.yaml")


# ------------------------------------------------------------------------- CPU autocast
def _cpu_flags(monkeypatch, *flags):
    """Pretend the CPU lists exactly ``flags`` in /proc/cpuinfo."""
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))


def _tiny_model():
    torch.manual_seed(0)
    return build_model({"architecture": "spectnet-resnet", "n_samples": 2500,
                        "sample_rate": 1000, "frontend": {"n_filters": 4}})


@pytest.mark.parametrize("flags, expected", [
    (("avx2", "fma", "avx512f", "avx512_bf16"), "bf16"),     # AVX512-BF16 (Zen 4, Cooper Lake)
    (("avx2", "avx512f", "amx_tile", "amx_bf16"), "bf16"),   # AMX (Sapphire Rapids)
    (("avx2", "fma", "avx512f"), "float32"),                 # AVX-512 without bf16
    (("avx2", "fma"), "float32"),
    ((), "float32"),                                          # nothing listed
])
def test_auto_cpu_autocast_follows_the_cpu_flags(monkeypatch, flags, expected):
    _cpu_flags(monkeypatch, *flags)
    cpu = torch.device("cpu")
    assert resolve_cpu_autocast("auto") == cnn_precision(cpu, "auto") == expected
    with autocast_for(cpu, "auto"):
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
        if expected == "bf16":
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    # the explicit settings do not look at the flags; the default is float32
    assert [resolve_cpu_autocast(s) for s in ("float32", "bf16")] == ["float32", "bf16"]
    with autocast_for(cpu):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu")


def test_cpu_autocast_values_are_checked_and_cuda_ignores_them(monkeypatch):
    with pytest.raises(ValueError, match="unknown cpu_autocast 'off'"):
        resolve_cpu_autocast("off")
    with pytest.raises(ValueError,
                       match=r"unknown cpu_autocast 'fp16' \(float32 \| bf16 \| auto\)"):
        StageSettings(1, 8, cpu_autocast="fp16")
    cuda = torch.device("cuda")
    for supported, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
        assert {cnn_precision(cuda, s) for s in CPU_AUTOCAST} == {expected}


def test_bf16_autocast_computes_the_cnn_in_bf16_and_the_front_end_in_float32(monkeypatch):
    _cpu_flags(monkeypatch)  # no native bf16: an explicit bf16 autocasts all the same
    model = _tiny_model().eval()
    seen: dict[str, list] = {}

    def record(name):
        return lambda module, args, out: seen.setdefault(name, []).append(out.dtype)
    # the CNN's input is the front-end's output
    model.cnn.register_forward_pre_hook(
        lambda module, args: seen.setdefault("front-end", []).append(args[0].dtype))
    convs = [m for m in model.cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    convs[0].register_forward_hook(record("first conv"))
    convs[-1].register_forward_hook(record("last conv"))
    x = torch.randn(3, 2500, generator=torch.Generator().manual_seed(1)) * 0.05
    outputs = {}
    for setting, cnn_dtype in (("float32", torch.float32), ("bf16", torch.bfloat16)):
        seen.clear()
        with torch.no_grad(), autocast_for(torch.device("cpu"), setting):
            outputs[setting] = model(x)
        assert seen == {"front-end": [torch.float32],          # float32 under any autocast
                        "first conv": [cnn_dtype], "last conv": [cnn_dtype]}
        assert outputs[setting].dtype == cnn_dtype
    torch.testing.assert_close(outputs["bf16"].float(), outputs["float32"], rtol=0.1, atol=0.1)
    examples = ExampleSet(x, torch.tensor([0, 1, 0]), np.zeros(3, int), np.array(list("abc")),
                          ("normal", "abnormal"))
    probabilities = {s: predict_proba(model, examples, 2, s) for s in ("float32", "bf16")}
    assert all(p.dtype == np.float32 and np.allclose(p.sum(1), 1) for p in probabilities.values())
    assert not np.array_equal(probabilities["bf16"], probabilities["float32"])
    np.testing.assert_allclose(probabilities["bf16"], probabilities["float32"], atol=0.05)


def test_a_stage_resolves_auto_once_and_records_its_precision(train_set, tmp_path, monkeypatch):
    subset = train_set.subset(np.arange(len(train_set)) < 36)
    _cpu_flags(monkeypatch, "avx2", "fma")
    plain = tiny_run(subset, tmp_path / "float32")
    auto = tiny_run(subset, tmp_path / "auto", cpu_autocast="auto")
    assert plain.precision == auto.precision == "float32"
    assert all(torch.equal(plain.last_state[k], auto.last_state[k]) for k in plain.last_state)
    _cpu_flags(monkeypatch, "avx2", "fma", "avx512f", "avx512_bf16")
    bf16 = tiny_run(subset, tmp_path / "bf16", cpu_autocast="auto")
    assert bf16.precision == "bf16"
    assert all(np.isfinite(r["train_loss"]) for r in bf16.history)
    assert not all(torch.equal(plain.last_state[k], bf16.last_state[k]) for k in plain.last_state)


def test_cpu_autocast_reaches_every_stage_and_a_model_is_evaluated_as_it_trained(
        small_beats_dir, tmp_path, monkeypatch):
    _cpu_flags(monkeypatch, "avx512f", "avx512_bf16")
    params = Params.from_dict(validate_params({**smoke_params().to_dict(), "cpu_autocast": "auto"}))
    task = HeartSounds(params, small_beats_dir)
    cpu = torch.device("cpu")
    runs = ["static-16", "learnable-16", "static-16-control", "gammatone-1d", "gammatone-2d"]
    assert {task.stage_settings(task.parse_run(r), cpu).cpu_autocast for r in runs} == {"auto"}
    assert {HeartSounds(smoke_params(), small_beats_dir).stage_settings(task.parse_run(r), cpu)
            .cpu_autocast for r in runs} == {"float32"}              # the default
    summary = train_run("static-4", 1, params, small_beats_dir, tmp_path / "static-4")
    assert summary["cnn_precision"] == "bf16" and summary["stage"]["cpu_autocast"] == "auto"
    assert read_model_file(tmp_path / "static-4" / "best.pt")["cpu_autocast"] == "bf16"
    # evaluated on a CPU without native bf16 and with cpu_autocast float32: still bf16,
    # as it trained (the precision comes from the model file)
    _cpu_flags(monkeypatch, "avx2")
    metrics = HeartSounds(smoke_params(), small_beats_dir).evaluate(
        tmp_path / "static-4" / "best.pt", tmp_path / "predictions", tmp_path / "metrics.json",
        device="cpu")
    assert metrics["cnn_precision"] == "bf16"
    assert json.loads((tmp_path / "metrics.json").read_text())["cnn_precision"] == "bf16"


def test_tables_say_what_the_cnn_computed_in():
    from spectnet.experiments.task import machine_note, summary_precision
    assert summary_precision({"cnn_precision": "bf16", "machine": {"device": "cpu"}}) == "bf16"
    assert summary_precision({"machine": {"device": "cpu"}}) == "float32"  # before the key
    assert summary_precision({"machine": {"device": "cuda"}}) == "?"
    table = pd.DataFrame({"cpu_flags": ["avx2 fma avx512f avx512_bf16", None],
                          "threads": ["2", None], "cnn_precision": ["bf16", None]})
    assert ("CPU features avx2 fma avx512f avx512_bf16, 2 torch threads and the CNN in bf16"
            in machine_note(table))
