"""Preprocessing against an independent computation, and bad-input handling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile as sf

from conftest import make_raw_dir
from spectnet.config import PreprocessConfig
from spectnet.errors import BadInputError
from spectnet.preprocessing.heart_sounds import (BadRecordError, preprocess_dataset, preprocess_signal,
                                 read_audio)
from spectnet.datasets.store import SignalStore
from test_dsp import matlab_filtfilt, reference_spike_removal

POLYPHASE = PreprocessConfig(resampler="polyphase")


def independent_preprocess(path):
    """The authors' chain written out from the spec, sharing no code with spectnet."""
    pcm, fs = sf.read(str(path), dtype="int16")
    x = pcm.astype(np.float64) / 32768                       # audioread scaling
    x = x[: 60 * fs]
    x = scipy.signal.resample_poly(x, 1, 2)                  # MATLAB resample(x, 1000, 2000)
    b, a = scipy.signal.butter(2, 400 / 500, "lowpass")
    x = matlab_filtfilt(b, a, x)
    b, a = scipy.signal.butter(2, 25 / 500, "highpass")
    x = matlab_filtfilt(b, a, x)
    return reference_spike_removal(x, 1000)


@pytest.mark.parametrize("record", ["training-a/a0001", "training-b/b0001",
                                    "training-e/e00001", "training-f/f0001"])
def test_polyphase_pipeline_equals_independent_computation(physionet_dir, record):
    path = physionet_dir / f"{record}.flac"
    ours = preprocess_signal(read_audio(path, 2000), 2000, POLYPHASE)
    np.testing.assert_allclose(ours, independent_preprocess(path), rtol=0, atol=1e-12)


def test_long_recording_is_clipped_to_60_s(physionet_dir):
    manifest = pd.read_csv(physionet_dir / "MANIFEST.csv")
    longest = manifest.loc[manifest["duration_s"].idxmax()]
    assert longest["duration_s"] > 60
    x = read_audio(physionet_dir / f"training-{longest['subset']}/{longest['record']}.flac", 2000)
    assert preprocess_signal(x, 2000, PreprocessConfig()).size == 60_000


def test_torchaudio_resampler_stays_close_to_matlab_resample(physionet_dir):
    x = read_audio(physionet_dir / "training-a/a0007.flac", 2000)
    a = preprocess_signal(x, 2000, PreprocessConfig(remove_spikes=False))
    b = preprocess_signal(x, 2000, dataclasses.replace(POLYPHASE, remove_spikes=False))
    assert a.shape == b.shape
    # Both are anti-aliased half-band resamplers; they differ only near Nyquist.
    assert np.abs(a - b).max() < 0.01 * np.abs(b).max()
    assert np.corrcoef(a, b)[0, 1] > 0.9999


def _write_wav(path, x, rate, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate, subtype=subtype)


@pytest.fixture
def raw_with_bad_records(tmp_path, physionet_dir):
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001", "a0002"], "b": ["b0001"]})
    rng = np.random.default_rng(0)
    bad = {
        "x_corrupt": ("training-x/x_corrupt.flac", "cannot decode audio"),
        "x_empty": ("training-x/x_empty.wav", "empty audio"),
        "x_nan": ("training-x/x_nan.wav", "NaN or infinite"),
        "x_rate": ("training-x/x_rate.wav", "sample rate is 4000 Hz, expected 2000 Hz"),
        "x_stereo": ("training-x/x_stereo.wav", "2 channels"),
        "x_short": ("training-x/x_short.wav", "too short"),
    }
    (raw / "training-x").mkdir()
    (raw / bad["x_corrupt"][0]).write_bytes(b"fLaC" + rng.bytes(500))
    _write_wav(raw / bad["x_empty"][0], np.zeros(0), 2000)
    nan = rng.normal(size=4000) * 0.1
    nan[100] = np.nan
    _write_wav(raw / bad["x_nan"][0], nan, 2000, "FLOAT")
    _write_wav(raw / bad["x_rate"][0], rng.normal(size=8000) * 0.1, 4000)
    _write_wav(raw / bad["x_stereo"][0], rng.normal(size=(4000, 2)) * 0.1, 2000)
    _write_wav(raw / bad["x_short"][0], rng.normal(size=10) * 0.1, 2000)
    records = pd.read_csv(raw / "records.csv")
    extra = pd.DataFrame([{"record": r, "subset": "x", "label": 0, "audio_path": p}
                          for r, (p, _) in bad.items()])
    pd.concat([records, extra]).to_csv(raw / "records.csv", index=False)
    (raw / "folds" / "validation0.txt").write_text("a0001\n")
    (raw / "folds" / "excluded-training-e.txt").write_text("b0001\n")
    return raw, bad


def test_bad_records_fail_with_one_report_and_keep_previous_output(tmp_path,
                                                                   raw_with_bad_records):
    raw, bad = raw_with_bad_records
    out = tmp_path / "store"
    out.mkdir()
    (out / "manifest.csv").write_text("previous")
    with pytest.raises(BadInputError) as err:
        preprocess_dataset(raw, out, PreprocessConfig(), workers=2, progress=False)
    message = str(err.value)
    for path, reason in bad.values():
        assert f"{path}: " in message and reason in message
    assert "a0001" not in message and "6 problems" in message
    assert (out / "manifest.csv").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "store"]


def test_skip_mode_writes_good_records_and_lists_skipped(tmp_path, raw_with_bad_records):
    raw, bad = raw_with_bad_records
    out = tmp_path / "store"
    manifest = preprocess_dataset(raw, out, POLYPHASE, on_bad_record="skip", workers=2,
                                  progress=False)
    assert list(manifest["record"]) == ["a0001", "a0002", "b0001"]
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped["record"]) == sorted(bad)
    store = SignalStore(out)
    np.testing.assert_allclose(store["a0002"], independent_preprocess(
        raw / "training-a/a0002.flac"), rtol=0, atol=1e-12)
    row = store.manifest.set_index("record").loc["b0001"]
    assert row["excluded"] == 1 and row["subset"] == "b"
    assert store.manifest.set_index("record")["validation0"].to_dict() == {
        "a0001": 1, "a0002": 0, "b0001": 0}
    first = store.manifest.iloc[0]
    assert first["n_samples"] == np.ceil(first["n_samples_raw"] / 2)
    assert first["duration_s"] == pytest.approx(first["duration_raw_s"], abs=1e-3)


def test_read_audio_errors_name_the_problem(tmp_path):
    with pytest.raises(BadRecordError, match="cannot decode"):
        read_audio(tmp_path / "missing.flac", 2000)
