"""The heart-sound figures, drawn from real (tiny) runs on the small real beat set: what
each figure shows is checked against the data it was drawn from."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import same_color
from matplotlib.container import BarContainer
from matplotlib.image import imread

from spectnet.cli import main
from spectnet.config import Params
from spectnet.experiments.heart_sounds import HeartSounds
from spectnet.frontend import filter_spacing
from spectnet.params import validate_params
from spectnet.reporting.figures import (heart_sound_figure_names,
                                        pick_beats, plot_beat_spectrograms,
                                        plot_confusion_matrices, plot_filterbank_learning,
                                        plot_frontend_trajectories, plot_learning_curves,
                                        plot_subset_metrics, save_figure)
from spectnet.training.checkpoint import load_model

SUBTITLE = "smoke scale, seed 1"


def grid_params() -> Params:
    """The smallest grid: static-4, its control, learnable-4 and the baselines, one step per
    epoch."""
    budget = {"epochs": 1, "batch_size": 24, "steps_per_epoch": 1}
    return Params.from_dict(validate_params({
        "scale": "smoke",
        "scales": {"smoke": {"heart_sounds": {
            "seeds": [1], "comparison_seeds": [1], "static": budget, "baselines": budget,
            "learnable": {**budget, "epochs": 2}}}},
        "heart_sounds": {"frontend": {"n_filters": [4]}, "learnable": {"n_filters": [4]}}},
        partial=True))


def _train_and_evaluate(run, root, beats, params, init=None):
    task = HeartSounds(params, beats)
    out = root / "models" / run / "seed1"
    if not out.exists():
        task.train(run, 0, 1, out, init_model=init, device="cpu", progress=False)
    task.evaluate(out / "best.pt", root / "predictions" / run / "seed1",
                  root / "runs" / run / "seed1.json", device="cpu")
    return out


@pytest.fixture(scope="module")
def runs(tiny_heart_model, small_beats_dir, tmp_path_factory):
    """static-4 (the session's tiny model), evaluated, in the workflow's layout."""
    root = tmp_path_factory.mktemp("figures")
    params = grid_params()
    shutil.copytree(tiny_heart_model.parent, root / "models" / "static-4" / "seed1")
    _train_and_evaluate("static-4", root, small_beats_dir, params)
    return root, params


@pytest.fixture(scope="module")
def learnt(runs, small_beats_dir):
    """learnable-4 fine-tuned from static-4 for two one-step epochs, evaluated."""
    root, params = runs
    _train_and_evaluate("learnable-4", root, small_beats_dir, params,
                        root / "models/static-4/seed1/best.pt")
    return runs


def _evaluations(root, *names):
    return {name: [json.loads((root / "runs" / name / "seed1.json").read_text())]
            for name in names}


def _bank(model_file):
    model, _ = load_model(model_file)
    return model.frontend


@pytest.mark.slow
def test_filterbank_figure_shows_the_learnt_change(learnt):
    root, _ = learnt
    before = _bank(root / "models/static-4/seed1/best.pt")
    after = _bank(root / "models/learnable-4/seed1/best.pt")
    fig = plot_filterbank_learning([(1, before, after)], "learnable-4", SUBTITLE)
    response, *changes = fig.axes
    assert len(response.lines) == 8                    # 4 filters before, 4 after
    assert [t.get_text() for t in response.get_legend().texts] == [
        "before: static-4", "after: learnable-4"]
    old, new = (np.array([line.get_ydata() for line in response.lines[i:i + 4]]) for i in (0, 4))
    assert np.abs(old - new).max() > 0                 # learning moved the responses
    assert old.max() == pytest.approx(1.0)             # normalised to the largest before
    # the bars are each filter's change, after minus before, in filter spacings
    with torch.no_grad():
        start = before.filterbank.center_frequency.double()
        delta = (after.filterbank.center_frequency.double() - start).numpy()
        spacing = filter_spacing(start, 500.0).numpy()
    heights = [bar.get_height() for bar in changes[0].patches]
    assert np.allclose(heights, delta / spacing) and np.any(delta != 0)
    labels = [ax.get_ylabel() for ax in changes]
    assert labels[0].startswith("Δf (spacings)\nmax |Δf| ") and labels[0].endswith(" Hz")
    assert f"{np.abs(delta).max():.3g} Hz" in labels[0]
    assert labels[1:] == ["Δ bandwidth (%)", "Δ amplitude (%)"]
    assert fig.get_suptitle().endswith(f"\n{SUBTITLE}")


def test_beat_spectrogram_is_the_front_end_image_of_a_normal_and_an_abnormal_beat(
        runs, small_beats_dir):
    root, _ = runs
    beats = pick_beats(small_beats_dir, 0)
    index = pd.read_csv(small_beats_dir / "beats.csv", dtype={"record": str})
    for beat, label, name in zip(beats, (0, 1), ("Normal", "Abnormal")):
        record, number = beat["title"].split("recording ")[1].split(" ")[0], \
            int(beat["title"].rsplit("beat ", 1)[1])
        row = index[(index["record"] == record) & (index["beat"] == number)].iloc[0]
        assert beat["title"].startswith(name) and row["label"] == label
        assert row["validation0"] == 1 and row["excluded"] == 0
        assert beat["true_length"] == row["true_length"]
    frontend = _bank(root / "models/static-4/seed1/best.pt")
    fig = plot_beat_spectrograms(beats, frontend, "static-4", SUBTITLE)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 2
    with torch.no_grad():
        expected = frontend(torch.as_tensor(np.stack([b["waveform"] for b in beats])))
    for image, reference in zip(images, expected.numpy()):
        assert image.get_array().shape == (4, 240)     # filters x frames
        assert np.allclose(image.get_array(), reference)
    waveform_axes = [ax for ax in fig.axes if ax.get_ylabel() == "Amplitude (a.u.)"]
    assert len(waveform_axes) == 2
    assert np.allclose(waveform_axes[0].lines[0].get_ydata(), beats[0]["waveform"])
    cycle_end = waveform_axes[1].lines[1].get_xdata()[0]
    assert cycle_end == pytest.approx(beats[1]["true_length"] / 1000)
    assert fig.axes[-1].get_ylabel().startswith("Log energy")   # the colour bar


def test_learning_curves_draw_each_run_and_mark_the_selected_epoch(runs):
    root, _ = runs
    history = pd.read_csv(root / "models/static-4/seed1/history.csv").assign(run="static-4",
                                                                            seed=1)
    best = json.loads((root / "models/static-4/seed1/summary.json").read_text())["best_epoch"]
    fig = plot_learning_curves(history, {("static-4", 1): best}, SUBTITLE)
    train, validation, macc = fig.axes
    assert [line.get_label() for line in train.lines] == ["static-4"]
    assert np.allclose(train.lines[0].get_ydata(), history["train_loss"])
    assert np.allclose(validation.lines[0].get_ydata(), history["loss"])
    assert np.allclose(macc.lines[0].get_ydata(), 100 * history["macc"])
    star = macc.lines[1]
    assert star.get_marker() == "*" and list(star.get_xdata()) == [best]
    assert list(star.get_ydata()) == [100 * history["macc"][best - 1]]
    assert "selected epoch" in [t.get_text() for t in macc.get_legend().texts]
    assert not train.collections                      # one seed: no band
    assert [ax.get_xlabel() for ax in fig.axes] == ["Epoch (of the run's own stage)"] * 3


def test_learning_curves_of_several_seeds_are_their_mean_with_a_band():
    histories = pd.DataFrame({"run": "static-4", "seed": [1, 1, 2, 2], "epoch": [1, 2, 1, 2],
                              "train_loss": [1.0, 0.6, 0.8, 0.4], "loss": [0.9, 0.7, 0.7, 0.5],
                              "macc": [0.5, 0.6, 0.7, 0.8]})
    fig = plot_learning_curves(histories, {("static-4", 1): 2, ("static-4", 2): 1},
                               "smoke scale, seeds 1, 2")
    train = fig.axes[0]
    assert np.allclose(train.lines[0].get_ydata(), [0.9, 0.5])
    band = train.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.4) and band.max() == pytest.approx(1.0)
    assert "mean over seeds" in fig.get_suptitle()


@pytest.mark.slow
def test_trajectories_show_each_filter_against_its_start(learnt):
    root, _ = learnt
    trace = pd.read_csv(root / "models/learnable-4/seed1/frontend.csv").assign(seed=1)
    fig = plot_frontend_trajectories(trace, "learnable-4", SUBTITLE, {1: 2})
    absolute, frequency, bandwidth, amplitude = fig.axes[:4]
    curves = [line for line in frequency.lines if line.get_marker() == "."]
    assert len(curves) == 4
    final = trace[trace["epoch"] == 2].set_index("filter")
    start = trace[trace["epoch"] == 0].set_index("filter")
    for f, line in enumerate(curves):
        assert list(line.get_xdata()) == [0, 1, 2] and line.get_ydata()[0] == 0
        assert line.get_ydata()[-1] == pytest.approx(
            final.at[f, "center_frequency"] - start.at[f, "center_frequency"])
    assert any(abs(line.get_ydata()[-1]) > 0 for line in curves)
    assert [ax.get_ylabel() for ax in (absolute, frequency, bandwidth, amplitude)] == [
        "Hz", "Δ Hz", "Δ Hz", "Δ %"]
    selected = [line for line in absolute.lines if same_color(line.get_color(), "grey")]
    assert [line.get_xdata()[0] for line in selected] == [2]
    assert fig.axes[-1].get_ylabel() == "Filter (initial centre frequency, Hz)"


def test_subset_metrics_are_grouped_bars_per_subset_and_run(runs):
    root, _ = runs
    evaluations = _evaluations(root, "static-4")
    fig = plot_subset_metrics(evaluations, SUBTITLE)
    macc_ax, se_ax, sp_ax = fig.axes
    metrics = evaluations["static-4"][0]
    subsets = sorted(metrics["per_domain"])
    assert subsets == list("abcdef")
    assert len(macc_ax.patches) == len(subsets) + 1           # a-f and all
    bars = next(c for c in macc_ax.containers if isinstance(c, BarContainer))
    expected = [100 * metrics["per_domain"][s]["metrics"]["macc"] for s in subsets] \
        + [100 * metrics["metrics"]["recording"]["macc"]]
    assert np.allclose([bar.get_height() for bar in bars], expected, equal_nan=True)
    # one seed: the whiskers are the bootstrap intervals over recordings
    whiskers = bars.errorbar.lines[2][0].get_segments()
    low, high = metrics["per_domain"]["a"]["ci"]["macc"]
    assert [whiskers[0][0][1], whiskers[0][1][1]] == pytest.approx([100 * low, 100 * high])
    labels = [t.get_text() for t in sp_ax.get_xticklabels()]
    assert labels[0] == f"a\n{metrics['per_domain']['a']['count']} rec."
    assert labels[-1] == f"all\n{metrics['counts']['recording']} rec."
    assert se_ax.get_ylabel() == "Sensitivity (%)"


def test_confusion_matrices_hold_the_evaluated_counts(runs):
    root, _ = runs
    evaluations = _evaluations(root, "static-4")
    fig = plot_confusion_matrices(evaluations, SUBTITLE)
    cells = fig.axes[:2]                                       # 2 levels x 1 run
    for ax, level in zip(cells, ("recording", "beat")):
        counts = np.array(evaluations["static-4"][0]["confusion"][level])
        shown = [int(t.get_text().split("\n")[0]) for t in ax.texts]
        assert shown == counts.ravel().tolist()
        assert np.allclose(ax.images[0].get_array().sum(axis=1), 1)   # shares of true class
    assert cells[0].get_title() == "static-4" and cells[1].get_xlabel() == "Predicted"
    assert cells[0].get_ylabel() == "Recordings (majority vote)\nTrue"


def test_save_figure_writes_a_png_and_a_pdf(runs, tmp_path):
    root, _ = runs
    fig = plot_confusion_matrices(_evaluations(root, "static-4"), SUBTITLE)
    png, pdf = save_figure(fig, tmp_path / "figures" / "confusion")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    height, width, _ = imread(png).shape
    assert width > 500 and height > 300
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "confusion.pdf", "confusion.png"]                 # no temporary files left


@pytest.mark.slow
def test_cli_draws_every_figure_of_the_grid(learnt, small_beats_dir, tmp_path, capsys):
    root, params = learnt
    for run in ("gammatone-1d", "gammatone-2d"):
        _train_and_evaluate(run, root, small_beats_dir, params)
    _train_and_evaluate("static-4-control", root, small_beats_dir, params,
                        root / "models/static-4/seed1/best.pt")
    args = ["physionet", "figures", "--models-dir", str(root / "models"),
            "--runs-dir", str(root / "runs"), "--beats", str(small_beats_dir),
            "--params", json.dumps(params.to_dict())]
    out = tmp_path / "figures"
    assert main([*args, "--out-dir", str(out)]) == 0
    names = heart_sound_figure_names(params)
    assert set(names) == {"beat-spectrogram", "learning-curves", "per-subset-metrics",
                          "confusion-matrices", "filterbank-learnable-4",
                          "frontend-trajectories-gammatone-1d",
                          "frontend-trajectories-gammatone-2d",
                          "frontend-trajectories-learnable-4"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}.{suffix}" for name in names for suffix in ("png", "pdf"))
    for name in names:
        assert imread(out / f"{name}.png").shape[0] > 300
    # a learnable run whose start is not its static run's model is refused
    trace_file = root / "models/learnable-4/seed1/frontend.csv"
    original = trace_file.read_text()
    trace = pd.read_csv(trace_file)
    trace.loc[trace["epoch"] == 0, "center_frequency"] += 5.0
    trace.to_csv(trace_file, index=False)
    capsys.readouterr()
    try:
        assert main([*args, "--out-dir", str(tmp_path / "again")]) == 1
    finally:
        trace_file.write_text(original)
    assert "learnable-4 did not start from static-4/seed1/best.pt" in capsys.readouterr().err
    # a missing run is named, with no traceback and nothing written
    shutil.rmtree(root / "runs" / "gammatone-2d")
    assert main([*args, "--out-dir", str(tmp_path / "again")]) == 1
    err = capsys.readouterr().err
    assert "gammatone-2d/seed1.json: no such file" in err and "Traceback" not in err
    assert not (tmp_path / "again").exists()
