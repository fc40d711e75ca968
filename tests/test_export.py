"""Export of trained models: torch.jit.trace, torch.export and ONNX (dynamo) with a dynamic
batch, metadata in the files, and parity with the eager model; `spectnet export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import DATA_ROOT, require
from spectnet.cli import main
from spectnet.errors import SpectNetError
from spectnet.export import (PARITY_TOLERANCE, export_model, exportable, read_export_metadata)
from spectnet.models import build_model
from spectnet.training.checkpoint import load_model, save_model

pytest.importorskip("onnxruntime", reason="the `export` extra is not installed")


@pytest.fixture(scope="module")
def learnable_heart_model(tiny_heart_model, small_beats_dir, tmp_path_factory):
    """learnable-4 fine-tuned for two steps from the tiny static-4 model."""
    from spectnet.config import Params
    from spectnet.experiments.heart_sounds import HeartSounds
    from spectnet.params import validate_params

    budget = {"epochs": 1, "batch_size": 24, "steps_per_epoch": 2}
    params = Params.from_dict(validate_params(
        {"scale": "smoke", "scales": {"smoke": {"heart_sounds": {"learnable": budget}}}}, partial=True))
    out = tmp_path_factory.mktemp("tiny-learnable") / "learnable-4"
    HeartSounds(params, small_beats_dir).train("learnable-4", 0, 1, out,
                                               init_model=tiny_heart_model, device="cpu",
                                               progress=False)
    return out / "best.pt"


def _scene_model(tmp_path, learnable):
    """A scene CNN on 1-s units of real ESC-10 audio, trained for a few Adam steps."""
    import soundfile as sf
    import torchaudio

    clips = sorted(require(DATA_ROOT / "esc10").rglob("*.ogg"))[:4]
    units = []
    for clip in clips:
        audio, rate = sf.read(str(clip), dtype="float32", always_2d=True)
        units.append(torchaudio.functional.resample(torch.from_numpy(audio.mean(1)), rate, 22050)[:22050])
    x, y = torch.stack(units), torch.tensor([0, 1, 2, 0])
    spec = {"architecture": "spectnet-scene-cnn", "n_samples": 22050, "sample_rate": 22050,
            "n_classes": 3, "frontend": {"n_filters": 16, "kernel_size": 551, "win_length": 551,
                                         "hop_length": 220,
                                         "learnable": ["f", "b", "a"] if learnable else []},
            "cnn": {"channels": (8, 16)}}
    torch.manual_seed(0)
    model = build_model(spec)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    path = tmp_path / f"scene-{'learnable' if learnable else 'static'}.pt"
    save_model(path, model, spec, task="acoustic-scenes", classes=["a", "b", "c"],
               sample_rate=22050, unit={"samples": 22050})
    return path


@pytest.fixture(scope="module")
def trained_models(tiny_heart_model, learnable_heart_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("scene-models")
    return {"heart-static": tiny_heart_model, "heart-learnable": learnable_heart_model,
            "scene-static": _scene_model(root, False), "scene-learnable": _scene_model(root, True)}


MODELS = ["heart-static", "heart-learnable", "scene-static", "scene-learnable"]


def _inputs(n_samples, batch, seed):
    """Noise with digital silence at the end (zero-padded beats have it)."""
    x = torch.randn(batch, n_samples, generator=torch.Generator().manual_seed(seed)) * 0.1
    x[:, 2 * n_samples // 3:] = 0
    return x


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_trace_and_torch_export_with_dynamic_batch(trained_models, name):
    model, contents = load_model(trained_models[name])
    module = exportable(model)
    n = contents["spec"]["n_samples"]
    with torch.no_grad():
        traced = torch.jit.trace(module, (_inputs(n, 2, 0),), check_trace=False)
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(module, (_inputs(n, 2, 0),), dynamic_shapes=({0: batch},))
        for size in (1, 6):
            x = _inputs(n, size, size)
            eager = module(x)
            assert eager.shape == (size, len(contents["classes"]))
            torch.testing.assert_close(traced(x), eager, rtol=0, atol=1e-5)
            torch.testing.assert_close(program.module()(x), eager, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_files_match_eager_at_two_batch_sizes(trained_models, name, fmt, tmp_path):
    import onnxruntime

    path = export_model(trained_models[name], tmp_path / f"model.{fmt}", fmt)
    metadata = read_export_metadata(path)
    model, contents = load_model(trained_models[name])
    assert metadata["task"] == contents["task"] and metadata["classes"] == contents["classes"]
    assert metadata["spec"] == json.loads(json.dumps(contents["spec"]))
    if name.startswith("heart"):
        assert metadata["preprocess"] == contents["preprocess"]
        assert metadata["beats"] == contents["beats"]
    module = exportable(model)
    n = contents["spec"]["n_samples"]
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"waveform": x.numpy()})[0]  # noqa: E731
    else:
        program = torch.export.load(str(path)).module()
        run = lambda x: program(x).detach().numpy()  # noqa: E731
    for size in (3, 17):
        x = _inputs(n, size, 10 + size)
        with torch.no_grad():
            expected = module(x).numpy()
        got = run(x)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= PARITY_TOLERANCE
        np.testing.assert_allclose(np.exp(got).sum(1), 1, atol=1e-5)  # log-probabilities


def test_cli_export_writes_the_file_and_reports_bad_input(tiny_heart_model, tmp_path, capsys):
    out = tmp_path / "heart.onnx"
    assert main(["export", str(tiny_heart_model), "--format", "onnx", "--out", str(out)]) == 0
    assert read_export_metadata(out)["classes"] == ["normal", "abnormal"]
    # default name beside the model file; nothing written for a bad format or a directory
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "pt2"]) == 1
    assert "missing.pt: no such file" in capsys.readouterr().err
    assert main(["export", str(tiny_heart_model), "--format", "pt2", "--out", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    with pytest.raises(SpectNetError, match="unknown export format"):
        export_model(tiny_heart_model, tmp_path / "x.tflite", "tflite")
    not_ours = tmp_path / "plain.onnx"
    not_ours.write_bytes(b"not a model")
    with pytest.raises(SpectNetError, match="not a readable exported model"):
        read_export_metadata(not_ours)
