"""TUT Acoustic Scenes 2016 development set (DCASE 2016 Task 1): acquisition and parsing.

The data set root (the zips hold it under ``TUT-acoustic-scenes-2016-development/``)::

    meta.txt                               audio/<clip>.wav <TAB> scene            (1170 rows)
    error.txt                              audio/<clip>.wav <TAB> [scene <TAB>] onset <TAB> offset <TAB> error label
    evaluation_setup/fold{k}_train.txt     audio/<clip>.wav <TAB> scene            k = 1..4
    evaluation_setup/fold{k}_evaluate.txt  audio/<clip>.wav <TAB> scene
    audio/<recording>_<start>_<end>.wav    30 s, 2 channels, 44.1 kHz, 24 bit

(``fold{k}_test.txt`` lists the evaluate files without labels and is not read.)

- :func:`read_development_set` parses the metadata, the official fold lists and the error
  annotations into one :class:`~spectnet.datasets.clips.ClipTable`.
- :func:`download_development_set` fetches the 11 zips from Zenodo record 45739 (resumable,
  MD5-verified, pinned below), extracts each safely once, and assembles the data set root.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from spectnet.atomic import atomic_dir, atomic_write_text
from spectnet.datasets.clips import ERROR_COLUMNS, ClipIssue, ClipTable
from spectnet.datasets.download import download_file, is_local_source, safe_extract_zip
from spectnet.datasets.linking import Linker
from spectnet.errors import BadInputError, DownloadError

log = logging.getLogger(__name__)

DATASET_DIR = "TUT-acoustic-scenes-2016-development"
ZENODO_RECORD = 45739
#: Zenodo's current file URLs (``/record/45739/files/``, as in dcase_util, redirects here).
BASE_URL = f"https://zenodo.org/records/{ZENODO_RECORD}/files/"
N_FOLDS = 4
META = "meta.txt"
ERRORS = "error.txt"
SETUP_DIR = "evaluation_setup"


@dataclass(frozen=True)
class Package:
    """One zip of the development set."""

    filename: str
    size_bytes: int
    md5: str


#: The development set's zips with their sizes and MD5 sums, pinned from dcase_util
#: (DCASE-REPO/dcase_util, dcase_util/datasets/tut.py, class
#: TUTAcousticScenes_2016_DevelopmentSet, package_list; commit a2694b0b9ad4, 2022-06-10).
PACKAGES: tuple[Package, ...] = (
    Package(f"{DATASET_DIR}.doc.zip", 69671, "f94ad46eb36325d9fbce5d60f7fc9926"),
    Package(f"{DATASET_DIR}.meta.zip", 28815, "779b33da2ebbf8bde494b3c981827251"),
    Package(f"{DATASET_DIR}.error.zip", 1283, "a0d3e0d81b0a36ece87d0f3a9124a386"),
    Package(f"{DATASET_DIR}.audio.1.zip", 1070981236, "e39546e65f2e72517b6335aaf0c8323d"),
    Package(f"{DATASET_DIR}.audio.2.zip", 1067186166, "d36cf3253e2c041f68e937a3fe804807"),
    Package(f"{DATASET_DIR}.audio.3.zip", 1073644405, "0393a9620ab882b1c26d884eccdcffdd"),
    Package(f"{DATASET_DIR}.audio.4.zip", 1072111347, "fb3e4e0cd7ea82120ec07031dee558ce"),
    Package(f"{DATASET_DIR}.audio.5.zip", 1069681513, "a19cf600b33c8f88f6ad607bafd74057"),
    Package(f"{DATASET_DIR}.audio.6.zip", 1072890150, "591aad3219d1155342572cc1f6af5680"),
    Package(f"{DATASET_DIR}.audio.7.zip", 1069265197, "9e6c1897789e6bce13ac69c6caedb7ab"),
    Package(f"{DATASET_DIR}.audio.8.zip", 528461098, "c4718354f48fcc9dfc7305f6cd8325c8"),
)


def find_root(path: str | os.PathLike[str]) -> Path | None:
    """The data set root at ``path``: ``path`` itself if it holds ``meta.txt``, or its
    ``TUT-acoustic-scenes-2016-development`` folder if that does; else None."""
    for candidate in (Path(path), Path(path) / DATASET_DIR):
        if (candidate / META).is_file():
            return candidate
    return None


def read_list(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, tab-separated fields)`` of every non-blank line of a TUT list file."""
    text = path.read_text(encoding="utf-8-sig")
    return [(n, [f.strip() for f in line.split("\t")])
            for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _clip_id(file: str) -> str:
    return PurePosixPath(file).stem


def _read_meta(path: Path) -> tuple[dict[str, tuple[str, str]], list[ClipIssue]]:
    """``{file: (scene, where)}`` from meta.txt; conflicting duplicates become issues."""
    labels: dict[str, tuple[str, str]] = {}
    issues, conflicting = [], set()
    for n, fields in read_list(path):
        where = f"{path}:{n}"
        if len(fields) < 2 or not fields[0] or not fields[1]:
            issues.append(ClipIssue(where, _clip_id(fields[0]), "expected 'file<TAB>scene'"))
            continue
        file, scene = fields[0], fields[1]
        if file in labels and labels[file][0] != scene:
            issues.append(ClipIssue(where, _clip_id(file), f"labelled {scene!r} here and "
                                    f"{labels[file][0]!r} at {labels[file][1]}"))
            conflicting.add(file)
        labels.setdefault(file, (scene, where))
    return {f: v for f, v in labels.items() if f not in conflicting}, issues


def read_errors(path: Path) -> tuple[pd.DataFrame, list[ClipIssue]]:
    """Annotated audio errors (mobile-phone interference, microphone failures) of error.txt.

    Rows are ``file, [scene,] onset, offset, label`` (the README documents four fields; a
    scene label in the second field is accepted). Returns a frame with
    ``clip, onset_s, offset_s, label`` and the malformed rows as issues.
    """
    rows, issues = [], []
    for n, fields in read_list(path):
        numeric = [i for i, f in enumerate(fields) if i > 0 and _is_number(f)]
        if len(numeric) < 2 or numeric[1] != numeric[0] + 1:
            issues.append(ClipIssue(f"{path}:{n}", _clip_id(fields[0]),
                                    "error row is not 'file, [scene,] onset, offset, label'"))
            continue
        onset, offset = float(fields[numeric[0]]), float(fields[numeric[1]])
        if not 0 <= onset <= offset:
            issues.append(ClipIssue(f"{path}:{n}", _clip_id(fields[0]),
                                    f"error interval {onset}-{offset} s is not ordered"))
            continue
        label = " ".join(fields[numeric[1] + 1:]) or "error"
        rows.append((_clip_id(fields[0]), onset, offset, label))
    return pd.DataFrame(rows, columns=list(ERROR_COLUMNS)), issues


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_development_set(path: str | os.PathLike[str]) -> ClipTable:
    """Parse a development-set copy into a clip table with the official folds.

    Every clip of ``meta.txt`` becomes a row (``clip`` = file stem, ``label`` = scene);
    ``train{k}``/``evaluate{k}`` are the official lists, ``fold`` the one evaluation list that
    holds the clip. Clips whose fold entries contradict ``meta.txt`` (other label, in both
    lists of a fold, in two evaluation lists), that are listed but missing from ``meta.txt``,
    or whose audio is missing become issues. Errors of ``error.txt`` go to ``errors``.

    Raises:
        BadInputError: ``path`` holds no ``meta.txt``, or a fold list is missing.
    """
    root = find_root(path)
    if root is None:
        raise BadInputError(f"{path} is not a TUT Acoustic Scenes 2016 development set",
                            [(str(Path(path) / META), "file missing")])
    meta, issues = _read_meta(root / META)
    lists = {f"{part}{k}": root / SETUP_DIR / f"fold{k}_{part}.txt"
             for part in ("train", "evaluate") for k in range(1, N_FOLDS + 1)}
    missing = [(str(p), "fold list missing") for p in lists.values() if not p.is_file()]
    if missing:
        raise BadInputError(f"{root}: incomplete evaluation setup", missing)
    membership: dict[str, set[str]] = {name: set() for name in lists}
    bad: set[str] = set()
    for name, list_path in lists.items():
        for n, fields in read_list(list_path):
            file, where = fields[0], f"{list_path}:{n}"
            if file not in meta:
                issues.append(ClipIssue(where, _clip_id(file), f"not in {META}"))
            elif len(fields) > 1 and fields[1] != meta[file][0]:
                issues.append(ClipIssue(where, _clip_id(file), f"labelled {fields[1]!r} here "
                                        f"but {meta[file][0]!r} in {META}"))
                bad.add(_clip_id(file))
            else:
                membership[name].add(_clip_id(file))
    fold_of: dict[str, int] = {}
    for k in range(1, N_FOLDS + 1):
        for clip in membership[f"evaluate{k}"]:
            if clip in membership[f"train{k}"]:
                issues.append(ClipIssue(str(lists[f"evaluate{k}"]), clip,
                                        f"in both fold{k}_train.txt and fold{k}_evaluate.txt"))
                bad.add(clip)
            elif clip in fold_of:
                issues.append(ClipIssue(str(lists[f"evaluate{k}"]), clip,
                                        f"also in fold{fold_of[clip]}_evaluate.txt"))
                bad.add(clip)
            fold_of.setdefault(clip, k)
    errors = pd.DataFrame(columns=list(ERROR_COLUMNS))
    if (root / ERRORS).is_file():
        errors, error_issues = read_errors(root / ERRORS)
        issues += error_issues
        bad |= {i.clip for i in error_issues}
    else:
        log.warning("%s has no %s: no audio-error annotations", root, ERRORS)
    rows = [{"clip": _clip_id(file), "path": file, "label": scene,
             "fold": fold_of.get(_clip_id(file), 0), "where": where}
            for file, (scene, where) in meta.items() if _clip_id(file) not in bad]
    return ClipTable.from_rows("dcase2016", root, rows, sorted({s for s, _ in meta.values()}),
                               issues, membership=membership, errors=errors)


# --------------------------------------------------------------------------------------------
# download


def package_url(base_url: str, filename: str) -> str:
    """URL of one zip under ``base_url`` (Zenodo wants ``?download=1`` for the bytes)."""
    url = base_url.rstrip("/") + "/" + urllib.parse.quote(filename)
    return url if is_local_source(base_url) else url + "?download=1"


def _extract_once(zip_path: Path, target: Path, md5: str) -> Path:
    """Extract ``zip_path`` into ``target`` unless a marker shows it was; return the tree's
    root (the zip's single top-level folder, if it has one)."""
    marker = target / ".spectnet-extracted"
    if not (marker.is_file() and marker.read_text().strip() == md5):
        log.info("extracting %s", zip_path.name)
        safe_extract_zip(zip_path, target, replace=True)
        atomic_write_text(marker, md5 + "\n")
    entries = [p for p in target.iterdir() if p.name != marker.name]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def download_development_set(base_url: str, cache_dir: str | os.PathLike[str], *,
                             packages: tuple[Package, ...] | None = None, retries: int = 5,
                             backoff: float = 1.0, timeout: float = 60.0,
                             progress: bool = True) -> Path:
    """Fetch, verify and extract the development set; return its assembled root.

    1. Each zip -> ``<cache_dir>/<zip>``: resumable, MD5-verified (a corrupt download is
       deleted and named in the error; verified zips are not fetched again).
    2. Each zip is extracted safely into ``<cache_dir>/parts/<zip>/`` once.
    3. The parts are hard-linked into ``<cache_dir>/TUT-acoustic-scenes-2016-development/``.

    ``base_url`` may be a local folder (or ``file://`` URL) holding the zips. Every
    package (default :data:`PACKAGES`) is attempted; failures are reported together in one
    :class:`DownloadError`.
    """
    packages = PACKAGES if packages is None else packages
    cache = Path(cache_dir)
    failures, parts = [], []
    for package in packages:
        url = package_url(base_url, package.filename)
        try:
            zip_path = download_file(url, cache / package.filename, checksum=("md5", package.md5),
                                     retries=retries, backoff=backoff, timeout=timeout,
                                     progress=progress)
        except DownloadError as exc:
            failures.append(f"{package.filename}: {exc}")
            continue
        parts.append(_extract_once(zip_path, cache / "parts" / package.filename, package.md5))
    if failures:
        raise DownloadError(f"{len(failures)} of {len(packages)} DCASE 2016 packages could "
                            "not be fetched (verified ones are kept; re-run to retry):\n  "
                            + "\n  ".join(failures))
    linker = Linker()
    with atomic_dir(cache / DATASET_DIR) as tmp:
        for part in parts:
            for src in sorted(p for p in part.rglob("*") if p.is_file()):
                dst = tmp / src.relative_to(part)
                if src.name != ".spectnet-extracted" and not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    linker(src, dst)
    return cache / DATASET_DIR
