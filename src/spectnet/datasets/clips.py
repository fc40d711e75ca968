"""Labelled audio clips from any source: one table, one on-disk layout.

Every reader returns a :class:`ClipTable`, whose ``clips`` frame has one row per clip:

=====================  ==================================================================
``clip``               unique id (file stem; relative path without suffix for user folders)
``path``               audio file, POSIX path relative to ``root``
``label``              class name (``classes`` gives their order, i.e. the class indices)
``fold``               the fold whose evaluation set holds the clip (1..K; 0 = none)
``train{k}``           1 if the clip is in fold k's training set, for every fold id k
``evaluate{k}``        1 if the clip is in fold k's evaluation set
=====================  ==================================================================

For data sets that ship folds (ESC-10, ESC-50, a CSV with a ``fold`` column) fold k's
evaluation set is the clips of fold k and its training set all the other clips. DCASE 2016
gives both lists explicitly (:mod:`spectnet.datasets.dcase`). A folder per class (or a CSV
without folds) gets a deterministic stratified k-fold assignment (:func:`stratified_folds`).

Readers: :func:`read_esc10` (original ``NNN - Class/fold-ID-take.ogg`` layout),
:func:`read_esc50` (``meta/esc50.csv`` + ``audio/``), :func:`read_class_folders`,
:func:`read_clip_csv`, and :func:`spectnet.datasets.dcase.read_development_set`.
Problems with single clips (missing or empty audio, unknown class, duplicate id, unsafe
path) leave the clip out and are listed in ``issues``; a layout that cannot be read at all
raises :class:`~spectnet.errors.BadInputError`.

:func:`write_clip_dataset` materialises a table (audio hard-linked or copied)::

    <dest>/<path>               the audio of every clip, under its path in the source
    <dest>/clips.csv            the table (paths relative to <dest>)
    <dest>/classes.json         class names in index order
    <dest>/dataset.json         which data set, from where, why (``auto``), counts
    <dest>/acquire_report.csv   clips left out: where, clip, reason
    <dest>/errors.csv           annotated audio errors (DCASE): clip, onset_s, offset_s, label

and :func:`read_clip_dataset` reads it back.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from spectnet.atomic import atomic_dir
from spectnet.datasets.examples import CLASSES_JSON, DATASET_JSON
from spectnet.datasets.linking import Linker, check_destination
from spectnet.errors import BadInputError, SpectNetError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
CLIPS_CSV = "clips.csv"
REPORT_CSV = "acquire_report.csv"
ERRORS_CSV = "errors.csv"
ERROR_COLUMNS = ("clip", "onset_s", "offset_s", "label")

_ESC10_CLASS_DIR = re.compile(r"^(\d{3}) - (.+)$")
_ESC_FILE = re.compile(r"^(\d+)-(\d+)-([A-Z])$")


def source_recording(dataset: str, clip: str) -> str:
    """The recording a clip was cut from, as far as its name tells: ESC clips
    ``{fold}-{freesound id}-{take}`` share their Freesound id, DCASE 2016 clips
    ``{location}_{start}_{end}`` their recording location; other clips stand alone.
    Splits inside a training fold keep each source on one side.

    >>> source_recording("esc10", "1-100032-A"), source_recording("dcase2016", "a001_0_30")
    ('100032', 'a001')
    """
    if dataset in ("esc10", "esc50"):
        match = _ESC_FILE.match(clip)
        return match.group(2) if match else clip
    if dataset == "dcase2016":
        return clip.split("_", 1)[0]
    return clip


@dataclass(frozen=True)
class ClipIssue:
    """A clip left out of a table, and why."""

    where: str  #: the file or metadata row that shows the problem
    clip: str
    reason: str


def fold_columns(fold_ids: Iterable[int]) -> list[str]:
    """``["train1", ..., "trainK", "evaluate1", ..., "evaluateK"]`` for the given fold ids."""
    ids = sorted(fold_ids)
    return [f"train{k}" for k in ids] + [f"evaluate{k}" for k in ids]


def stratified_folds(labels: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """Deterministic stratified fold ids (1..n_folds) for clips with these labels.

    Each class's clips are shuffled with ``seed`` and dealt round-robin, the deal going on
    from where the previous class stopped, so per-class and total fold sizes differ by at
    most one. The result depends only on ``labels`` (in order), ``n_folds`` and ``seed``.

    Example:
        >>> stratified_folds(["a", "a", "b", "b", "b"], 2, seed=1).tolist()
        [1, 2, 1, 2, 1]
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    labels = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), dtype=int)
    start = 0
    for name in sorted(set(labels)):
        members = np.flatnonzero(labels == name)
        members = members[rng.permutation(len(members))]
        folds[members] = (start + np.arange(len(members))) % n_folds + 1
        start = (start + len(members)) % n_folds
    return folds


def _path_problem(root: Path, rel: str) -> str | None:
    """Why the audio file ``rel`` under ``root`` cannot be used, or None."""
    parts = PurePosixPath(rel).parts
    if not rel or PurePosixPath(rel).is_absolute() or re.match(r"^[A-Za-z]:", rel) or ".." in parts:
        return "audio path must be relative to the data set root, without '..'"
    path = root / rel
    if not path.is_file():
        return "audio file missing"
    if path.stat().st_size == 0:
        return "empty audio file"
    return None


@dataclass
class ClipTable:
    """Labelled clips of one data set (see the module docstring for the columns).

    Example:
        >>> table = read_esc10("../shared/data/esc10")            # doctest: +SKIP
        >>> table.classes[:2], table.fold_ids, len(table.clips)   # doctest: +SKIP
        (('Dog bark', 'Rain'), [1, 2, 3, 4], 320)
    """

    name: str
    root: Path
    clips: pd.DataFrame
    classes: tuple[str, ...]
    issues: list[ClipIssue] = field(default_factory=list)
    #: annotated audio errors (``ERROR_COLUMNS``), or None when the data set has none
    errors: pd.DataFrame | None = None

    @property
    def fold_ids(self) -> list[int]:
        return sorted(int(c[len("evaluate"):]) for c in self.clips.columns
                      if c.startswith("evaluate"))

    @classmethod
    def from_rows(cls, name: str, root: str | os.PathLike[str], rows: Sequence[Mapping],
                  classes: Sequence[str], issues: Sequence[ClipIssue] = (), *,
                  membership: Mapping[str, set[str]] | None = None,
                  errors: pd.DataFrame | None = None) -> "ClipTable":
        """Check the rows and build the table.

        Args:
            rows: dicts with ``clip``, ``path``, ``label``, ``fold`` and ``where`` (the
                source of the row, for messages).
            classes: class names in index order.
            issues: problems the reader found already.
            membership: explicit fold lists, ``{"train1": {clip, ...}, ...}``; default:
                derived from ``fold`` (evaluate k = fold k, train k = the other folds).
            errors: annotated error intervals (``ERROR_COLUMNS``).

        Rows whose audio is missing, empty or outside ``root``, whose class is not in
        ``classes``, or whose clip id repeats an earlier row are left out and listed in
        ``issues``.
        """
        root = Path(root)
        issues = list(issues)
        known = set(classes)
        kept: list[Mapping] = []
        first: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r["clip"]):  # stable: the first row wins
            problem = _path_problem(root, row["path"])
            if problem is None and row["label"] not in known:
                problem = f"unknown class {row['label']!r}"
            if problem is None and row["clip"] in first:
                problem = f"clip id {row['clip']!r} also used by {first[row['clip']]}"
            if problem is not None:
                issues.append(ClipIssue(row["where"], row["clip"], problem))
                continue
            first[row["clip"]] = row["where"]
            kept.append(row)
        clips = pd.DataFrame(kept, columns=["clip", "path", "label", "fold"])
        clips["fold"] = clips["fold"].astype(int)
        if membership is None:
            ids = sorted(set(clips["fold"]) - {0})
            for k in ids:
                clips[f"train{k}"] = ((clips["fold"] != k) & (clips["fold"] > 0)).astype(int)
            for k in ids:
                clips[f"evaluate{k}"] = (clips["fold"] == k).astype(int)
        else:
            for column in sorted(membership, key=lambda c: (not c.startswith("train"),
                                                            int(re.sub(r"\D", "", c)))):
                clips[column] = clips["clip"].isin(membership[column]).astype(int)
        if errors is not None:
            errors = errors[errors["clip"].isin(clips["clip"])].reset_index(drop=True)
        return cls(name, root, clips.reset_index(drop=True), tuple(classes), issues, errors)


# --------------------------------------------------------------------------------------------
# readers


def _audio_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _require_dir(root: Path, what: str) -> None:
    if not root.is_dir():
        raise BadInputError(f"{root} is not a {what}", [(str(root), "directory does not exist")])


def read_esc10(root: str | os.PathLike[str]) -> ClipTable:
    """ESC-10 in its original layout: ``NNN - Class name/fold-FreesoundID-take.ogg``.

    Classes are ordered by their folder number; the fold is the file name's first field.
    """
    root = Path(root)
    _require_dir(root, "ESC-10 folder")
    class_dirs = sorted((m.group(1), m.group(2), d) for d in root.iterdir()
                        if d.is_dir() and (m := _ESC10_CLASS_DIR.match(d.name)))
    if not class_dirs:
        raise BadInputError(f"{root} is not an ESC-10 copy in the original layout",
                            [(str(root), "no 'NNN - Class name' folders")])
    rows, issues = [], []
    for _, name, folder in class_dirs:
        for path in _audio_files(folder):
            rel = path.relative_to(root).as_posix()
            m = _ESC_FILE.match(path.stem)
            if m is None:
                issues.append(ClipIssue(str(path), path.stem,
                                        "file name is not 'fold-FreesoundID-take'"))
                continue
            rows.append({"clip": path.stem, "path": rel, "label": name,
                         "fold": int(m.group(1)), "where": str(path)})
    return ClipTable.from_rows("esc10", root, rows, [name for _, name, _ in class_dirs], issues)


def read_esc50(root: str | os.PathLike[str], subset: str = "all") -> ClipTable:
    """ESC-50 in its official layout: ``meta/esc50.csv`` and ``audio/*.wav``.

    ``subset="esc10"`` keeps the rows flagged ``esc10`` (ESC-10 in ESC-50's 5 folds).
    Classes are ordered by ``target``.
    """
    if subset not in ("all", "esc10"):
        raise ValueError(f"subset must be 'all' or 'esc10', not {subset!r}")
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise BadInputError(f"{root} is not an ESC-50 copy in the official layout",
                            [(str(meta), "file missing")])
    frame = pd.read_csv(meta, dtype={"filename": str, "category": str})
    missing = {"filename", "fold", "target", "category", "esc10"} - set(frame.columns)
    if missing:
        raise BadInputError(f"{meta} is not ESC-50 metadata",
                            [(str(meta), f"no column {c!r}") for c in sorted(missing)])
    if subset == "esc10":
        frame = frame[frame["esc10"].astype(str).str.lower() == "true"]
    names = frame.groupby("target")["category"].unique()
    clashes = [(str(meta), f"target {t} names several categories: {', '.join(c)}")
               for t, c in names.items() if len(c) > 1]
    if clashes:
        raise BadInputError(f"{meta}: inconsistent classes", clashes)
    rows = [{"clip": PurePosixPath(r.filename).stem, "path": f"audio/{r.filename}",
             "label": r.category, "fold": int(r.fold), "where": f"{meta}:{r.Index + 2}"}
            for r in frame.itertuples()]
    return ClipTable.from_rows("esc50", root, rows, [c[0] for c in names.sort_index()])


def read_class_folders(root: str | os.PathLike[str], n_folds: int = 5,
                       seed: int = 1) -> ClipTable:
    """One folder per class (audio files anywhere below it); folds from
    :func:`stratified_folds`. Clip ids are the paths without suffix (``dog/rec1``)."""
    root = Path(root)
    _require_dir(root, "folder of class folders")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    rows = [{"clip": PurePosixPath(rel).with_suffix("").as_posix(), "path": rel,
             "label": d.name, "where": str(p)}
            for d in class_dirs for p in _audio_files(d, recursive=True)
            for rel in [p.relative_to(root).as_posix()]]
    if not rows:
        raise BadInputError(f"{root} holds no class folders with audio",
                            [(str(root), f"no {'/'.join(AUDIO_EXTENSIONS)} files in subfolders")])
    folds = stratified_folds([r["label"] for r in rows], n_folds, seed)
    for row, fold in zip(rows, folds):
        row["fold"] = int(fold)
    return ClipTable.from_rows("folder", root, rows, [d.name for d in class_dirs])


def read_clip_csv(path: str | os.PathLike[str], audio_root: str | os.PathLike[str] | None = None,
                  n_folds: int = 5, seed: int = 1) -> ClipTable:
    """A metadata CSV with columns ``file``, ``label`` and optionally ``fold`` (1, 2, ...).

    ``file`` is relative to ``audio_root`` (default: the CSV's folder). Without a ``fold``
    column the folds come from :func:`stratified_folds`. Classes are sorted by name.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"no clip metadata CSV at {path}", [(str(path), "file missing")])
    root = Path(audio_root) if audio_root is not None else path.parent
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"file", "label"} - set(frame.columns)
    if missing:
        raise BadInputError(f"{path} is not a clip list",
                            [(str(path), f"no column {c!r} (need file, label[, fold])")
                             for c in sorted(missing)])
    rows, issues = [], []
    for i, r in enumerate(frame.to_dict("records")):
        where = f"{path}:{i + 2}"
        file, label = r["file"].strip(), r["label"].strip()
        clip = PurePosixPath(file).with_suffix("").as_posix()
        fold = r.get("fold", "0").strip()
        if not label:
            issues.append(ClipIssue(where, clip, "empty label"))
        elif not fold.isdigit() or ("fold" in r and int(fold) < 1):
            issues.append(ClipIssue(where, clip, f"fold {fold!r} is not an integer >= 1"))
        else:
            rows.append({"clip": clip, "path": file, "label": label, "fold": int(fold),
                         "where": where})
    if "fold" not in frame.columns:
        for row, fold in zip(rows, stratified_folds([r["label"] for r in rows], n_folds, seed)):
            row["fold"] = int(fold)
    classes = sorted({r["label"] for r in rows})
    return ClipTable.from_rows("csv", root, rows, classes, issues)


# --------------------------------------------------------------------------------------------
# the materialised layout


def write_clip_dataset(table: ClipTable, dest: str | os.PathLike[str], *,
                       description: Mapping | None = None, link: bool = True) -> Path:
    """Materialise ``table`` at ``dest`` (replaced atomically; layout in the module docstring).

    ``description`` adds keys to ``dataset.json`` (e.g. why this data set was chosen).
    ``dest`` must not overlap the source, and an existing ``dest`` must be an earlier
    acquisition (it holds ``clips.csv``).
    """
    dest = Path(dest)
    check_destination(table.root, dest, CLIPS_CSV)
    linker = Linker(link)
    with atomic_dir(dest) as tmp:
        for rel in table.clips["path"]:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            linker(table.root / rel, tmp / rel)
        table.clips.to_csv(tmp / CLIPS_CSV, index=False)
        (tmp / CLASSES_JSON).write_text(json.dumps(list(table.classes), indent=1) + "\n")
        info = {"dataset": table.name, "source": str(table.root), **(description or {}),
                "clips": len(table.clips), "classes": len(table.classes),
                "folds": table.fold_ids, "clips_left_out": len(table.issues)}
        (tmp / DATASET_JSON).write_text(json.dumps(info, indent=2) + "\n")
        pd.DataFrame([(i.where, i.clip, i.reason) for i in table.issues],
                     columns=["where", "clip", "reason"]).to_csv(tmp / REPORT_CSV, index=False)
        if table.errors is not None:
            table.errors.to_csv(tmp / ERRORS_CSV, index=False)
    log.info("%s: %d clips, %d classes, folds %s into %s (%d linked, %d copied, %d left out)",
             table.name, len(table.clips), len(table.classes), table.fold_ids, dest,
             linker.linked, linker.copied, len(table.issues))
    return dest


def read_clip_dataset(root: str | os.PathLike[str]) -> tuple[ClipTable, dict]:
    """Read a directory written by :func:`write_clip_dataset`: the table and ``dataset.json``."""
    root = Path(root)
    if not (root / CLIPS_CSV).is_file():
        raise SpectNetError(f"{root}: no {CLIPS_CSV}; acquire the data first (spectnet scenes fetch)")
    info = json.loads((root / DATASET_JSON).read_text())
    clips = pd.read_csv(root / CLIPS_CSV, dtype={"clip": str, "path": str, "label": str})
    classes = tuple(json.loads((root / CLASSES_JSON).read_text()))
    errors = (pd.read_csv(root / ERRORS_CSV, dtype={"clip": str, "label": str})
              if (root / ERRORS_CSV).is_file() else None)
    return ClipTable(info["dataset"], root, clips, classes, [], errors), info
