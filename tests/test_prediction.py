"""`spectnet predict` and its Python API on real recordings in several formats and rates,
and on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
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
