"""Small generated data sets in the layouts the clip adapter reads (TUT 2016, class folders)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from spectnet.datasets.dcase import DATASET_DIR, Package

SCENES = ("beach", "bus", "cafe/restaurant")
RATE = 44100
DURATION_S = 1.2


def write_tone(path: Path, seconds: float, rate: int = RATE, channels: int = 1,
               subtype: str | None = None, seed: int = 0) -> np.ndarray:
    """A short noisy tone; returns the samples written, shape (time, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * c + 10 * seed) * t)
                  + 0.05 * rng.standard_normal(t.size) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype)
    return x


def make_tut_development_set(root: Path) -> Path:
    """A TUT Acoustic Scenes 2016 development set in miniature at ``root``.

    3 scenes x 4 clips (1.2 s, stereo, 24-bit, 44.1 kHz), clip i of every scene in
    fold i's evaluation list and the other folds' training lists; error.txt with one
    four-field row and one five-field row (scene label included).
    """
    meta, folds = [], {k: {"train": [], "evaluate": []} for k in range(1, 5)}
    for s, scene in enumerate(SCENES):
        for i in range(1, 5):
            file = f"audio/{chr(97 + s)}{i:03d}_0_30.wav"
            write_tone(root / file, DURATION_S, channels=2, subtype="PCM_24", seed=4 * s + i)
            meta.append(f"{file}\t{scene}")
            for k in range(1, 5):
                folds[k]["evaluate" if k == i else "train"].append(f"{file}\t{scene}")
    (root / "meta.txt").write_text("\n".join(meta) + "\n")
    (root / "evaluation_setup").mkdir()
    for k, parts in folds.items():
        for part, rows in parts.items():
            (root / "evaluation_setup" / f"fold{k}_{part}.txt").write_text("\n".join(rows) + "\n")
        (root / "evaluation_setup" / f"fold{k}_test.txt").write_text(
            "".join(r.split("\t")[0] + "\n" for r in parts["evaluate"]))
    (root / "error.txt").write_text("audio/a001_0_30.wav\t0.100\t0.700\tmobile phone\n"
                                    "audio/b002_0_30.wav\tbus\t0.9\t1.1\tmicrophone failure\n")
    (root / "README.md").write_text("TUT Acoustic scenes 2016, development dataset (miniature)\n")
    return root


def zip_tut_packages(root: Path, out_dir: Path) -> tuple[Package, ...]:
    """Pack a development set the way Zenodo ships it (doc, meta, error, audio.1-2 zips,
    everything under ``TUT-acoustic-scenes-2016-development/``); returns the packages with
    their real sizes and MD5 sums."""
    audio = sorted((root / "audio").iterdir())
    contents = {"doc": [root / "README.md"],
                "meta": [root / "meta.txt", *sorted((root / "evaluation_setup").iterdir())],
                "error": [root / "error.txt"],
                "audio.1": audio[: len(audio) // 2], "audio.2": audio[len(audio) // 2:]}
    out_dir.mkdir(parents=True, exist_ok=True)
    packages = []
    for part, files in contents.items():
        path = out_dir / f"{DATASET_DIR}.{part}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for file in files:
                archive.write(file, f"{DATASET_DIR}/{file.relative_to(root).as_posix()}")
        data = path.read_bytes()
        packages.append(Package(path.name, len(data), hashlib.md5(data).hexdigest()))
    return tuple(packages)
