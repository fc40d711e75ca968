"""The beat dataset step on real recordings (plus one too short to segment)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import make_raw_dir
from spectnet.config import BeatsConfig, PreprocessConfig, SegmentationConfig
from spectnet.datasets.examples import BEATS, ExampleStore
from spectnet.datasets.store import SignalStore
from spectnet.errors import SpectNetError
from spectnet.preprocessing.heart_sounds import preprocess_dataset
from spectnet.segmentation.beats import build_beat_dataset


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, physionet_dir):
    root = tmp_path_factory.mktemp("beats")
    raw = make_raw_dir(root / "raw", {"a": ["a0001", "a0002"], "b": ["b0001"],
                                      "e": ["e00001"]})
    # 0.8 s of real audio: preprocesses fine, but is too short to segment.
    x, rate = sf.read(str(physionet_dir / "training-a/a0003.flac"))
    sf.write(str(raw / "training-a/a0003.wav"), x[: int(0.8 * rate)], rate, subtype="PCM_16")
    records = pd.read_csv(raw / "records.csv")
    records.loc[len(records)] = {"record": "a0003", "subset": "a", "label": 1,
                                 "audio_path": "training-a/a0003.wav"}
    records.to_csv(raw / "records.csv", index=False)
    (raw / "folds" / "validation0.txt").write_text("a0002\ne00001\n")
    (raw / "folds" / "excluded-training-e.txt").write_text("e00001\n")
    preprocess_dataset(raw, root / "store", PreprocessConfig(), workers=2, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def dataset(store_dir):
    out = store_dir.parent / "beats"
    build_beat_dataset(store_dir, out, SegmentationConfig(), BeatsConfig(),
                       summary_path=store_dir.parent / "summary.json", workers=2,
                       progress=False)
    return ExampleStore(out)


def test_beats_are_the_signal_from_s1_onset_minus_one_zero_padded(dataset, store_dir):
    store = SignalStore(store_dir)
    assert dataset.waveforms.dtype == np.float32 and dataset.waveforms.shape[1] == 2500
    assert len(dataset.index) == len(dataset.waveforms) > 50
    for i in np.random.default_rng(0).choice(len(dataset), size=40, replace=False):
        row = dataset.index.iloc[i]
        x = store[row["record"]]
        n = row["true_length"]
        assert row["onset"] == row["s1_onset"] - 1
        np.testing.assert_array_equal(dataset.waveforms[i, :n],
                                      x[row["onset"]: row["onset"] + n].astype(np.float32))
        assert not dataset.waveforms[i, n:].any()


def test_consecutive_beats_tile_the_recording(dataset):
    for _, beats in dataset.index.groupby("record"):
        assert list(beats["beat"]) == list(range(len(beats)))
        inner = beats.iloc[:-1]
        np.testing.assert_array_equal(inner["onset"].to_numpy() + inner["true_length"],
                                      beats["onset"].to_numpy()[1:])
        lengths = beats["true_length"]
        assert lengths.between(250, 2500).all()   # 24..240 bpm


def test_index_carries_labels_domains_exclusion_and_folds(dataset):
    by_record = dataset.index.groupby("record").first()
    assert by_record.loc["a0001", "label"] == 1 and by_record.loc["b0001", "label"] == 0
    assert by_record.loc["b0001", "subset"] == "b"
    assert by_record.loc["e00001", "excluded"] == 1 and by_record.loc["a0001", "excluded"] == 0
    assert by_record.loc["a0002", "validation0"] == 1 and by_record.loc["a0001",
                                                                         "validation0"] == 0


def test_unsegmentable_recording_is_flagged_not_fatal(dataset):
    rec = dataset.group_table.set_index("record")
    assert rec.loc["a0003", "status"] == "failed"
    assert "too short" in rec.loc["a0003", "reason"]
    assert "a0003" not in set(dataset.index["record"])
    ok = rec.drop("a0003")
    assert (ok["status"] == "ok").all()
    assert ok["heart_rate_bpm"].between(30, 120).all()
    assert (ok["n_beats"] == dataset.index.groupby("record").size()).all()


def test_summary_metrics_agree_with_the_tables(dataset, store_dir):
    summary = json.loads((store_dir.parent / "summary.json").read_text())
    assert summary["recordings"] == 5 and summary["recordings_failed"] == 1
    assert summary["beats_total"] == len(dataset)
    assert summary["beats_used"] == int((dataset.index["excluded"] == 0).sum())
    assert summary["cycle_length_median_samples"] == float(
        dataset.index.loc[dataset.index["excluded"] == 0, "true_length"].median())


def test_emulated_zero_last_beat(store_dir, dataset, tmp_path):
    out = tmp_path / "zero"
    build_beat_dataset(store_dir, out, SegmentationConfig(),
                       BeatsConfig(emulate_zero_last_beat=True), workers=1, progress=False)
    emulated = ExampleStore(out)
    assert len(emulated) == len(dataset)
    last = emulated.index.groupby("record").tail(1).index
    assert not emulated.waveforms[last].any()
    others = emulated.index.index.difference(last)
    np.testing.assert_array_equal(emulated.waveforms[others], dataset.waveforms[others])


def test_beat_length_parameter_truncates(store_dir, tmp_path):
    build_beat_dataset(store_dir, tmp_path / "short", SegmentationConfig(),
                       BeatsConfig(beat_length=600), workers=1, progress=False)
    short = ExampleStore(tmp_path / "short")
    assert short.waveforms.shape[1] == 600
    assert (short.index["truncated"] == (short.index["true_length"] > 600)).all()
    assert short.index["truncated"].any()


def test_the_store_reader_names_the_layout_and_refuses_a_broken_store(dataset, tmp_path):
    import shutil
    assert dataset.layout is BEATS and dataset.classes == ("normal", "abnormal")
    assert dataset.info == {} and len(dataset) == len(dataset.index)
    with pytest.raises(SpectNetError, match="the beat dataset records no sample rate"):
        dataset.sample_rate
    copy = tmp_path / "bad"
    shutil.copytree(dataset.root, copy)
    pd.read_csv(copy / "beats.csv").head(3).to_csv(copy / "beats.csv", index=False)
    with pytest.raises(SpectNetError, match=f"{copy}: beats.csv has 3 rows but beats.npy has "
                                            f"{len(dataset)} examples"):
        ExampleStore(copy)
    np.save(copy / "beats.npy", np.zeros((3, 10)))  # float64
    with pytest.raises(SpectNetError, match=r"beats.npy holds float64 \(3, 10\), expected float32"):
        ExampleStore(copy)
    (copy / "recordings.csv").unlink()
    with pytest.raises(SpectNetError, match=f"{copy}: not a readable beat dataset .*recordings.csv"):
        ExampleStore(copy)
    with pytest.raises(SpectNetError, match=f"{tmp_path}: not an example store \\(no beats.npy "
                                            "or units.npy\\)"):
        ExampleStore(tmp_path)


def test_output_is_deterministic_and_independent_of_worker_count(store_dir, dataset, tmp_path):
    build_beat_dataset(store_dir, tmp_path / "again", SegmentationConfig(), BeatsConfig(),
                       workers=1, progress=False)
    for name in ("beats.npy", "beats.csv", "recordings.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (dataset.root / name).read_bytes()


def test_clipping_is_measured_and_summarised(tmp_path, physionet_dir):
    """a0314 is the most clipped recording of the set (3 % of its samples at full scale)."""
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001", "a0314"], "b": ["b0001"]})
    manifest = preprocess_dataset(raw, tmp_path / "store", PreprocessConfig(), workers=1,
                                  progress=False).set_index("record")
    for record in ("a0001", "a0314", "b0001"):
        pcm, rate = sf.read(str(raw / f"training-{record[0]}/{record}.flac"), dtype="int16")
        pcm = pcm[: 60 * rate]
        expected = np.mean(np.abs(pcm.astype(int)) >= 32767)  # +-32767 or -32768
        assert manifest.loc[record, "clipped_fraction"] == expected
    assert manifest.loc["a0314", "clipped_fraction"] > 0.03
    assert manifest.loc["a0001", "clipped_fraction"] == 0
    recordings = build_beat_dataset(tmp_path / "store", tmp_path / "beats", SegmentationConfig(),
                                    BeatsConfig(), summary_path=tmp_path / "summary.json",
                                    workers=1, progress=False).set_index("record")
    np.testing.assert_allclose(recordings["clipped_fraction"], manifest["clipped_fraction"],
                               rtol=1e-15)  # read back from the store's manifest.csv
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["recordings_clipped"] == 1
    assert summary["clipped_fraction_max"] == pytest.approx(
        manifest.loc["a0314", "clipped_fraction"], rel=1e-15)


def test_store_of_an_older_version_is_refused_with_advice(store_dir, tmp_path):
    import shutil

    from spectnet.errors import SpectNetError
    old = tmp_path / "old-store"
    shutil.copytree(store_dir, old)
    manifest = pd.read_csv(old / "manifest.csv")
    manifest.drop(columns="clipped_fraction").to_csv(old / "manifest.csv", index=False)
    with pytest.raises(SpectNetError, match="run the preprocessing step again"):
        build_beat_dataset(old, tmp_path / "beats", SegmentationConfig(), BeatsConfig(),
                           workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-store"]
