"""`spectnet predict` and its Python API on real recordings in several formats and rates,
and on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import torch
import soundfile as sf

from spectnet.cli import main
from spectnet.errors import SpectNetError
from spectnet.prediction import HeartSoundClassifier, PredictionError


@pytest.fixture(scope="module")
def classifier(tiny_heart_model):
    return HeartSoundClassifier(tiny_heart_model, device="cpu")


@pytest.fixture(scope="module")
def recordings(physionet_dir, tmp_path_factory):
    """a0007 as the official FLAC (2 kHz mono), as 44.1 kHz stereo WAV and as 4 kHz OGG;
    plus bad files."""
    root = tmp_path_factory.mktemp("recordings")
    src = physionet_dir / "training-a" / "a0007.flac"
    x, rate = sf.read(str(src))
    wav = root / "a0007-44k-stereo.wav"
    up = scipy.signal.resample_poly(x, 441, 20)
    sf.write(str(wav), np.stack([up, 0.5 * up], 1), 44100, subtype="PCM_16")
    ogg = root / "a0007-4k.ogg"
    sf.write(str(ogg), scipy.signal.resample_poly(x, 2, 1), 4000, format="OGG", subtype="VORBIS")
    short = root / "short.wav"
    sf.write(str(short), x[:1000], rate)  # 0.5 s
    silent = root / "silent.flac"
    sf.write(str(silent), np.zeros(20 * rate), rate)
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    return {"flac": src, "wav": wav, "ogg": ogg, "short": short, "silent": silent,
            "corrupt": corrupt}


def test_predicts_every_format_and_rate_alike(classifier, recordings):
    results = {kind: classifier.predict_file(recordings[kind]) for kind in ("flac", "wav", "ogg")}
    reference = results["flac"]
    assert reference["label"] in ("normal", "abnormal")
    assert 0 <= reference["p_abnormal"] <= 1 and reference["n_beats"] > 10
    assert reference["label"] == ("abnormal" if reference["abnormal_beats"] >= 0.5 else "normal")
    assert 40 < reference["heart_rate_bpm"] < 150
    assert reference["duration_s"] == pytest.approx(sf.info(str(recordings["flac"])).duration, abs=0.01)
    for kind in ("wav", "ogg"):  # other rates and channels: the same recording, nearly
        other = results[kind]
        assert abs(other["n_beats"] - reference["n_beats"]) <= 2, kind
        assert other["heart_rate_bpm"] == pytest.approx(reference["heart_rate_bpm"], abs=3), kind


def test_same_result_from_the_api_on_samples(classifier, recordings):
    x, rate = sf.read(str(recordings["flac"]))
    from_file = classifier.predict_file(recordings["flac"])
    from_samples = classifier.predict_signal(x, rate)
    assert from_file == {"file": str(recordings["flac"]), **from_samples}


@pytest.mark.parametrize("kind, message", [("short", "cannot segment"),
                                           ("silent", "cannot segment"),
                                           ("corrupt", "unreadable")])
def test_bad_files_raise_a_clear_error(classifier, recordings, kind, message):
    with pytest.raises(PredictionError, match=message):
        classifier.predict_file(recordings[kind])


def test_cli_prints_one_line_per_file_and_goes_on_after_errors(tiny_heart_model, recordings,
                                                               capsys):
    files = [recordings[k] for k in ("flac", "corrupt", "ogg", "short")]
    code = main(["predict", *map(str, files), "--model", str(tiny_heart_model), "--device", "cpu"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [line["file"] for line in lines] == list(map(str, files))
    assert "label" in lines[0] and "label" in lines[2]
    assert lines[1]["error"].startswith("unreadable") and "segment" in lines[3]["error"]


def test_predict_needs_a_heart_sound_model(tmp_path):
    with pytest.raises(SpectNetError, match="no such file"):
        HeartSoundClassifier(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- issue 17 (12-14)
@pytest.fixture(scope="module")
def long_recording(physionet_dir, tmp_path_factory):
    """Four real recordings (a0001, a0004, a0005, a0007) back to back: 143 s at 2 kHz."""
    parts = [sf.read(str(physionet_dir / "training-a" / f"a{i:04d}.flac"))[0] for i in (1, 4, 5, 7)]
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(str(path), np.concatenate(parts), 2000)
    return path


def test_long_recording_is_classified_whole_in_windows(classifier, long_recording):
    result = classifier.predict_file(long_recording)
    duration = sf.info(str(long_recording)).duration
    assert result["windows"] == 3  # 143 s in windows of at most max_duration_s = 60 s
    assert result["duration_s"] == pytest.approx(duration, abs=0.05)
    assert "skipped" not in result
    # about as many beats as the four recordings give one by one (a few at the joins)
    x, rate = sf.read(str(long_recording))
    first_minute = classifier.predict_signal(x[: 60 * rate], rate)["n_beats"]
    assert result["n_beats"] > 2 * first_minute


def test_missing_file_and_directory_say_so(classifier, tmp_path):
    with pytest.raises(PredictionError, match="^no such file$"):
        classifier.predict_file(tmp_path / "missing.wav")
    with pytest.raises(PredictionError, match="is a directory"):
        classifier.predict_file(tmp_path)


def _one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    return err


def test_cli_bad_out_and_device_give_one_line(tiny_heart_model, recordings, tmp_path, capsys):
    flac = str(recordings["flac"])
    err = _one_line_error(capsys, ["predict", flac, "--model", str(tiny_heart_model), "--out", str(tmp_path)])
    assert f"{tmp_path}: is a directory" in err
    if not torch.cuda.is_available():
        err = _one_line_error(capsys, ["predict", flac, "--model", str(tiny_heart_model), "--device", "cuda"])
        assert "--device cuda: no CUDA device is available" in err
    err = _one_line_error(capsys, ["predict", flac, "--model", str(tiny_heart_model), "--device", "gpu"])
    assert "--device gpu: not a torch device" in err
    # missing file and directory: one JSON line each naming the cause, the others go on
    code = main(["predict", str(tmp_path / "missing.wav"), str(tmp_path), flac,
                 "--model", str(tiny_heart_model), "--device", "cpu"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [line.get("error") for line in lines] == ["no such file", "is a directory, not an audio file", None]


def test_cli_out_is_written_whole(tiny_heart_model, recordings, tmp_path):
    out = tmp_path / "results.jsonl"
    assert main(["predict", str(recordings["flac"]), "--model", str(tiny_heart_model),
                 "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["file"] == str(recordings["flac"])
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temporary left


def test_clipped_recording_gets_a_warning(classifier, recordings, tmp_path):
    x, rate = sf.read(str(recordings["flac"]))
    clipped = tmp_path / "clipped.wav"
    sf.write(str(clipped), np.clip(8 * x / np.abs(x).max(), -1, 1), rate, subtype="PCM_16")
    result = classifier.predict_file(clipped)
    assert "label" in result and result["warning"].startswith("clipped: ")
    assert "warning" not in classifier.predict_file(recordings["flac"])


def test_sample_rate_below_the_band_is_an_error(classifier, recordings, tmp_path):
    x, rate = sf.read(str(recordings["flac"]))
    low = tmp_path / "a0007-500hz.wav"
    sf.write(str(low), scipy.signal.resample_poly(x, 1, 4), 500)
    with pytest.raises(PredictionError, match=r"sample rate 500 Hz is too low: its Nyquist frequency "
                                              r"\(250 Hz\) is below the top of the 25-400 Hz band"):
        classifier.predict_file(low)


def test_batched_files_equal_one_by_one(classifier, physionet_dir):
    files = [physionet_dir / "training-a" / f"a{i:04d}.flac" for i in (1, 2, 3)]
    together = list(classifier.predict_files(files))
    for result, file in zip(together, files):
        alone = classifier.predict_file(file)
        assert result["label"] == alone["label"] and result["n_beats"] == alone["n_beats"]
        assert result["p_abnormal"] == pytest.approx(alone["p_abnormal"], abs=1e-6)


@pytest.mark.slow
def test_exported_model_gives_the_same_labels(tiny_heart_model, physionet_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="the `export` extra is not installed")
    from spectnet.export import export_model

    files = [physionet_dir / "training-a" / f"a{i:04d}.flac" for i in range(1, 6)]
    eager = list(HeartSoundClassifier(tiny_heart_model, device="cpu").predict_files(files))
    for fmt in ("onnx", "pt2"):
        exported = export_model(tiny_heart_model, tmp_path / f"model.{fmt}", fmt)
        results = list(HeartSoundClassifier(exported, device="cpu").predict_files(files))
        assert [r["label"] for r in results] == [r["label"] for r in eager]
        for got, want in zip(results, eager):
            assert got["p_abnormal"] == pytest.approx(want["p_abnormal"], abs=1e-4)
            assert got["n_beats"] == want["n_beats"]


def test_preparation_runs_on_one_blas_thread_and_gives_it_back(tiny_heart_model, physionet_dir,
                                                                monkeypatch):
    # idle OpenBLAS threads spin: preparing on several cost twice the CPU time
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    classifier = HeartSoundClassifier(tiny_heart_model, device="cpu")
    cut_beats, seen = classifier._cut_beats, []

    def spy(signal, rate):
        seen.append(blas_threads())
        return cut_beats(signal, rate)

    monkeypatch.setattr(classifier, "_cut_beats", spy)
    before = blas_threads()
    result = classifier.predict_file(physionet_dir / "training-a" / "a0001.flac")
    assert result["label"] in ("normal", "abnormal")
    assert seen and seen[0] and all(n == 1 for n in seen[0])
    assert blas_threads() == before  # the caller's setting is restored
