"""Acquisition of the PhysioNet/CinC Challenge 2016 training set, with the SpectNet fold lists.

Acquisition only (no audio decoding, no preprocessing). Two sources give the same result,
a dataset directory in the official layout plus an index::

    <dest_dir>/training-a/REFERENCE.csv     headerless "record,label" (1 abnormal, -1 normal)
    <dest_dir>/training-a/a0001.wav|.flac   hard links to (or copies of) the source audio
    ...                                     training-b ... training-f likewise
    <dest_dir>/records.csv                  record,subset,label(0/1),audio_path,size_bytes
    <dest_dir>/acquire_report.csv           items skipped with on_bad_record="skip", and the
                                            fold lists they were removed from (else header only)
    <dest_dir>/validation-RECORDS.txt       (download only, if PhysioNet lists validation/RECORDS)
    <dest_dir>/folds/<name>.txt             the fold lists, when given (with provenance.csv)

- :func:`acquire_local` — from an existing copy in the official layout.
- :func:`acquire_download` — from PhysioNet: ``SHA256SUMS.txt`` -> verified ``training.zip``
  -> safe extraction into a cache -> :func:`acquire_local` on the extracted tree.
- :func:`acquire_folds` — the paper's fold lists (:mod:`spectnet.datasets.folds`), validated
  against the acquired records and written to ``<dest_dir>/folds/``.
- :func:`acquire` — the fetch step: fold lists first, then the data, all written together.

Every output directory is built in a temporary sibling and renamed into place, so a directory
that exists is complete, and a failed run leaves the previous one as it was.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spectnet.atomic import atomic_dir, atomic_write_text
from spectnet.datasets.download import download_file, fetch_checksum_list, safe_extract_zip
from spectnet.datasets.folds import (RECORD_NAME, FoldLists, csv_text, obtain_folds,
                                     validate_folds, write_fold_files, write_folds)
from spectnet.errors import BadInputError, DownloadError
from spectnet.datasets.linking import Linker, check_destination

__all__ = [
    "BASE_URL",
    "SUBSETS",
    "SUBSET_DIRS",
    "LABEL_MAP",
    "AUDIO_EXTENSIONS",
    "RECORDS_CSV_COLUMNS",
    "REPORT_CSV_COLUMNS",
    "Record",
    "Issue",
    "ScanResult",
    "AcquireResult",
    "scan_layout",
    "acquire_local",
    "acquire_download",
    "read_records_csv",
    "acquire_folds",
    "acquire",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# constants

#: Official download location of the challenge data (PhysioNet project challenge-2016, v1.0.0).
BASE_URL = "https://physionet.org/files/challenge-2016/1.0.0/"
#: Checksum list published by PhysioNet at ``BASE_URL`` ("<sha256> <relative path>" lines).
SHA256SUMS_NAME = "SHA256SUMS.txt"
TRAINING_ZIP = "training.zip"
#: PhysioNet's list of the 301 validation records (WFDB ``RECORDS`` file of ``validation/``).
VALIDATION_RECORDS = "validation/RECORDS"

SUBSETS: tuple[str, ...] = ("a", "b", "c", "d", "e", "f")
SUBSET_DIRS: tuple[str, ...] = tuple(f"training-{s}" for s in SUBSETS)
#: REFERENCE.csv label -> model label: -1 normal -> 0, +1 abnormal -> 1.
LABEL_MAP: Mapping[int, int] = {-1: 0, 1: 1}
#: Audio file extensions accepted for a record (official: .wav; local copy: lossless .flac).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")
REFERENCE_NAME = "REFERENCE.csv"
RECORDS_CSV = "records.csv"
REPORT_CSV = "acquire_report.csv"
VALIDATION_RECORDS_OUT = "validation-RECORDS.txt"
RECORDS_CSV_COLUMNS: tuple[str, ...] = ("record", "subset", "label", "audio_path", "size_bytes")
REPORT_CSV_COLUMNS: tuple[str, ...] = ("where", "record", "reason", "action")

OnBadRecord = Literal["error", "skip"]


# --------------------------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class Record:
    """One acquired recording."""

    record: str  #: official record name, e.g. "a0001"
    subset: str  #: "a" ... "f"
    label: int  #: 0 = normal, 1 = abnormal
    audio_path: str  #: POSIX path relative to the dataset root, e.g. "training-a/a0001.wav"
    size_bytes: int


@dataclass(frozen=True)
class Issue:
    """A problem found while scanning; ``record`` is None for layout-level problems."""

    where: str  #: a path, or "path:line" for a REFERENCE.csv row
    reason: str
    record: str | None = None
    drops_record: bool = True  #: False: only a redundant row is ignored (record kept)

    @property
    def action(self) -> str:
        return "excluded record" if self.drops_record and self.record else "ignored row"


@dataclass
class ScanResult:
    """Outcome of :func:`scan_layout`: usable records, record-level issues, fatal issues."""

    source_dir: Path
    records: list[Record] = field(default_factory=list)  #: audio_path relative to source_dir
    issues: list[Issue] = field(default_factory=list)  #: skippable with on_bad_record="skip"
    fatal: list[Issue] = field(default_factory=list)  #: layout problems, never skippable


@dataclass
class AcquireResult:
    """Outcome of :func:`acquire_local` / :func:`acquire_download`."""

    dest_dir: Path
    records: list[Record]
    skipped: list[Issue]
    linked: int = 0
    copied: int = 0

    @property
    def n_abnormal(self) -> int:
        return sum(r.label for r in self.records)


# --------------------------------------------------------------------------------------------
# scanning and validation of the official layout


def _parse_reference(ref: Path, text: str) -> tuple[dict[str, tuple[int, int]], list[Issue], set[str]]:
    """Parse a headerless REFERENCE.csv -> ({record: (model label, line)}, issues, named records)."""
    labels: dict[str, tuple[int, int]] = {}
    issues: list[Issue] = []
    named: set[str] = set()
    conflicting: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{ref}:{lineno}"
        fields = [f.strip() for f in line.split(",")]
        while len(fields) > 2 and fields[-1] == "":
            fields.pop()
        if len(fields) != 2:
            issues.append(Issue(where, f"unreadable row {raw!r} (expected 'record,label')"))
            continue
        name, label_s = fields
        if not RECORD_NAME.match(name):
            issues.append(Issue(where, f"invalid record name {name!r}"))
            continue
        named.add(name)
        try:
            raw_label = int(label_s)
        except ValueError:
            raw_label = None
        if raw_label not in LABEL_MAP:
            issues.append(Issue(where, f"unknown label value {label_s!r} for record {name} "
                                       "(expected 1 = abnormal or -1 = normal)", name))
            conflicting.add(name)
            continue
        label = LABEL_MAP[raw_label]
        if name in labels or name in conflicting:
            first = labels.get(name)
            if first is not None and first[0] == label:
                issues.append(Issue(where, f"duplicate row for record {name} (same label as line {first[1]})",
                                    name, drops_record=False))
            else:
                detail = f" (line {first[1]} says {first[0]}, this row {label})" if first else ""
                issues.append(Issue(where, f"conflicting duplicate row for record {name}{detail}", name))
                conflicting.add(name)
                labels.pop(name, None)
            continue
        labels[name] = (label, lineno)
    for name in conflicting:
        labels.pop(name, None)
    return labels, issues, named


def _index_audio(subset_dir: Path) -> tuple[dict[str, Path], list[Issue], set[str]]:
    """Map record name -> audio file in ``subset_dir``; report duplicates and empty files."""
    audio: dict[str, Path] = {}
    issues: list[Issue] = []
    bad: set[str] = set()
    with os.scandir(subset_dir) as it:
        entries = sorted((e for e in it if e.is_file()), key=lambda e: e.name)
    for e in entries:
        p = Path(e.path)
        if p.suffix.lower() not in AUDIO_EXTENSIONS:
            continue  # .hea, RECORDS, REFERENCE_withSQI.csv, ... are tolerated and ignored
        name = p.stem
        if name in audio:
            issues.append(Issue(str(p), f"second audio file for record {name} (also {audio[name].name})", name))
            bad.add(name)
            continue
        if e.stat().st_size == 0:
            issues.append(Issue(str(p), "empty audio file", name))
            bad.add(name)
        audio[name] = p
    return audio, issues, bad


def scan_layout(source_dir: str | os.PathLike[str]) -> ScanResult:
    """Check an official-layout copy and list its records; collects every problem found.

    Layout problems (missing ``training-x`` folder, missing/undecodable ``REFERENCE.csv``) go to
    ``fatal``; record-level problems (row without audio, audio without row, malformed or
    duplicate rows, unknown labels, duplicate/empty audio, a record name in two subsets) go to
    ``issues``. Records with an issue are left out of ``records`` (except redundant identical
    duplicate rows, which only produce a note). Audio is not decoded, only its presence checked.
    """
    src = Path(source_dir)
    result = ScanResult(source_dir=src)
    if not src.is_dir():
        result.fatal.append(Issue(str(src), "source directory does not exist"))
        return result
    seen: dict[str, str] = {}
    for subset, sub_name in zip(SUBSETS, SUBSET_DIRS):
        sd = src / sub_name
        if not sd.is_dir():
            result.fatal.append(Issue(str(sd), "missing subset folder"))
            continue
        ref = sd / REFERENCE_NAME
        if not ref.is_file():
            result.fatal.append(Issue(str(ref), "missing REFERENCE.csv"))
            continue
        try:
            text = ref.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            result.fatal.append(Issue(str(ref), f"unreadable: {exc}"))
            continue
        labels, issues, named = _parse_reference(ref, text)
        audio, audio_issues, bad_audio = _index_audio(sd)
        result.issues += issues + audio_issues
        for name, (label, lineno) in labels.items():
            if name not in audio:
                result.issues.append(Issue(f"{ref}:{lineno}", f"record {name} has no audio file "
                                           f"({'/'.join(AUDIO_EXTENSIONS)}) in {sd}", name))
        for name, path in audio.items():
            if name not in named:
                result.issues.append(Issue(str(path), f"audio file has no row in {ref}", name))
        for name in sorted(set(labels) & set(audio) - bad_audio):
            if name in seen:
                result.issues.append(Issue(str(audio[name]), f"record {name} also present in {seen[name]}", name))
                continue
            seen[name] = sub_name
            path = audio[name]
            result.records.append(Record(name, subset, labels[name][0], f"{sub_name}/{path.name}", path.stat().st_size))
    dropped = {i.record for i in result.issues if i.record and i.drops_record}
    if dropped:
        result.records = [r for r in result.records if r.record not in dropped]
    return result


# --------------------------------------------------------------------------------------------
# materialisation


def _check_dest(src: Path, dest: Path) -> None:
    check_destination(src, dest, RECORDS_CSV)


def _materialise(
    scan: ScanResult, dest: Path, *, link: bool, skipped: list[Issue], extra_files: Mapping[str, Path],
    folds: FoldLists | None, fold_removals: Sequence[tuple[str, str, str, str]],
) -> AcquireResult:
    linker = Linker(link)
    by_subset: dict[str, list[Record]] = {s: [] for s in SUBSETS}
    for r in scan.records:
        by_subset[r.subset].append(r)
    with atomic_dir(dest) as tmp:
        for subset, sub_name in zip(SUBSETS, SUBSET_DIRS):
            (tmp / sub_name).mkdir()
            recs = sorted(by_subset[subset], key=lambda r: r.record)
            for r in recs:
                linker(scan.source_dir / r.audio_path, tmp / r.audio_path)
            inv = {v: k for k, v in LABEL_MAP.items()}
            ref_text = "".join(f"{r.record},{inv[r.label]}\n" for r in recs)
            (tmp / sub_name / REFERENCE_NAME).write_text(ref_text, encoding="utf-8", newline="\n")
        records = sorted(scan.records, key=lambda r: (r.subset, r.record))
        (tmp / RECORDS_CSV).write_text(
            csv_text(RECORDS_CSV_COLUMNS, ((r.record, r.subset, r.label, r.audio_path, r.size_bytes) for r in records)),
            encoding="utf-8", newline="\n",
        )
        report = [(i.where, i.record or "", i.reason, i.action) for i in skipped] + list(fold_removals)
        (tmp / REPORT_CSV).write_text(csv_text(REPORT_CSV_COLUMNS, report), encoding="utf-8", newline="\n")
        for name, path in extra_files.items():
            shutil.copyfile(path, tmp / name)
        if folds is not None:
            (tmp / "folds").mkdir()
            write_fold_files(tmp / "folds", folds.lists, folds.provenance())
    return AcquireResult(dest, records, skipped, linker.linked, linker.copied)


def acquire_local(
    source_dir: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    *,
    on_bad_record: OnBadRecord = "error",
    link: bool = True,
    extra_files: Mapping[str, str | os.PathLike[str]] | None = None,
    folds: FoldLists | None = None,
) -> AcquireResult:
    """Validate an official-layout copy at ``source_dir`` and materialise it at ``dest_dir``.

    ``source_dir`` must hold ``training-a`` ... ``training-f``, each with a headerless
    ``REFERENCE.csv`` (``record,label``; 1 abnormal, -1 normal) and one ``.wav`` or ``.flac``
    per record. All problems are collected: layout problems always raise one
    :class:`BadInputError`; record-level problems raise it too unless
    ``on_bad_record="skip"``, which leaves those records out and lists them in
    ``acquire_report.csv`` (written in both modes; header only when nothing was skipped).

    ``dest_dir`` is built in a temporary sibling (audio hard-linked when ``link`` and the
    filesystem allow, else copied; REFERENCE.csv rewritten for the kept records) and renamed
    into place, replacing a previous acquisition. It must not overlap ``source_dir``. The
    hard-linked audio shares storage with the source: treat it as read-only.
    ``extra_files`` maps a file name in ``dest_dir`` to a file to copy there.

    ``folds`` (from :func:`obtain_folds`) are written to ``dest_dir/folds/`` in the same
    directory swap. Records skipped with ``on_bad_record="skip"`` are removed from them, one
    ``acquire_report.csv`` row per removal; any other name that is not an acquired record,
    and every other problem (:func:`validate_folds`), raises :class:`BadInputError` before
    anything is written.
    """
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
    src, dest = Path(source_dir), Path(dest_dir)
    scan = scan_layout(src)
    if scan.fatal:
        raise BadInputError(f"{src} is not a usable PhysioNet 2016 training-set copy",
                            [(i.where, i.reason) for i in scan.fatal + scan.issues])
    if scan.issues and on_bad_record == "error":
        raise BadInputError(f"{src} has bad records (set physionet.on_bad_record: skip "
                            "to leave them out)", [(i.where, i.reason) for i in scan.issues])
    if not scan.records:
        raise BadInputError(f"{src} contains no usable records", [(str(src), "no records")])
    fold_removals: list[tuple[str, str, str, str]] = []
    if folds is not None:
        dropped: dict[str, list[str]] = {}
        for i in scan.issues:
            if i.record and i.drops_record:
                dropped.setdefault(i.record, []).append(i.reason)
        folds, fold_removals = folds.without({r: "; ".join(why) for r, why in dropped.items()})
        problems = validate_folds(folds.lists, {r.record for r in scan.records}, where=folds.sources)
        if problems:
            raise BadInputError("invalid fold lists", problems)
    _check_dest(src, dest)
    for i in scan.issues:
        log.warning("skipping: %s: %s", i.where, i.reason)
    for where, record, _, _ in fold_removals:
        log.warning("removed skipped record %s from the fold list %s", record, where)
    extras = {k: Path(v) for k, v in (extra_files or {}).items()}
    result = _materialise(scan, dest, link=link, skipped=scan.issues, extra_files=extras,
                          folds=folds, fold_removals=fold_removals)
    log.info("acquired %d records (%d abnormal) into %s (%d linked, %d copied, %d issues skipped)",
             len(result.records), result.n_abnormal, dest, result.linked, result.copied, len(scan.issues))
    return result


def read_records_csv(path: str | os.PathLike[str]) -> list[Record]:
    """Read a ``records.csv`` written by :func:`acquire_local`."""
    with open(path, newline="", encoding="utf-8") as f:
        return [
            Record(row["record"], row["subset"], int(row["label"]), row["audio_path"], int(row["size_bytes"]))
            for row in csv.DictReader(f)
        ]


# --------------------------------------------------------------------------------------------
# download


def _join_url(base_url: str, rel: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(rel)


def _find_training_root(extracted: Path, max_depth: int = 3) -> Path:
    """Directory holding ``training-a`` ... (the zip may or may not have a top-level folder)."""
    level = [extracted]
    fallback: Path | None = None
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for d in level:
            if all((d / s).is_dir() for s in SUBSET_DIRS):
                return d
            if fallback is None and any((d / s).is_dir() for s in SUBSET_DIRS):
                fallback = d
            nxt += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        level = nxt
    if fallback is not None:
        return fallback  # acquire_local will report the missing subsets
    raise BadInputError(f"no training-a..f folders found in the extracted archive {extracted}",
                        [(str(extracted), "no training-x folder")])


def acquire_download(
    base_url: str,
    dest_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str],
    on_bad_record: OnBadRecord = "error",
    link: bool = True,
    sha256sums_sha256: str | None = None,
    fetch_validation_records: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    folds: FoldLists | None = None,
) -> AcquireResult:
    """Download, verify and acquire the training set from PhysioNet (or a mirror).

    1. ``<base_url>/SHA256SUMS.txt`` -> ``<cache_dir>/SHA256SUMS.txt`` (verified against
       ``sha256sums_sha256`` when given, else fetched again on every run: see
       :func:`~spectnet.datasets.download.fetch_checksum_list`).
    2. ``training.zip`` -> ``<cache_dir>/training.zip``, verified with its digest from the list
       (resumable; a verified cached copy is not fetched again).
    3. Safe extraction to ``<cache_dir>/training/`` (skipped when a marker shows that this
       exact zip was already extracted).
    4. ``validation/RECORDS``, when listed and ``fetch_validation_records``, is fetched,
       verified, and saved as ``<dest_dir>/validation-RECORDS.txt``.
    5. :func:`acquire_local` on the extracted tree (hard links into ``dest_dir``), with
       ``folds``.

    ``base_url`` may also be a local directory or ``file://`` URL holding the same files.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    opts = dict(retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    sums_url = _join_url(base_url, SHA256SUMS_NAME)
    sums = fetch_checksum_list(sums_url, cache / SHA256SUMS_NAME, sha256=sha256sums_sha256, **opts)
    if TRAINING_ZIP not in sums:
        raise DownloadError(f"{sums_url} lists no {TRAINING_ZIP}; cannot verify the download")
    digest = sums[TRAINING_ZIP]
    zip_path = download_file(_join_url(base_url, TRAINING_ZIP), cache / TRAINING_ZIP, sha256=digest, **opts)

    extracted = cache / "training"
    marker = extracted / ".spectnet-extracted"
    if not (marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest):
        log.info("extracting %s into %s", zip_path, extracted)
        safe_extract_zip(zip_path, extracted, replace=True)
        atomic_write_text(marker, digest + "\n")
    root = _find_training_root(extracted)

    extras: dict[str, Path] = {}
    if fetch_validation_records:
        if VALIDATION_RECORDS in sums:
            extras[VALIDATION_RECORDS_OUT] = download_file(
                _join_url(base_url, VALIDATION_RECORDS), cache / "validation-RECORDS",
                sha256=sums[VALIDATION_RECORDS], **opts,
            )
        else:
            log.warning("%s does not list %s; %s not written", sums_url, VALIDATION_RECORDS, VALIDATION_RECORDS_OUT)
    return acquire_local(root, dest_dir, on_bad_record=on_bad_record, link=link, extra_files=extras,
                         folds=folds)


# --------------------------------------------------------------------------------------------
# folds


def _known_records(dest: Path, records: Iterable[str] | str | os.PathLike[str] | None) -> set[str] | None:
    if records is None:
        path = dest / RECORDS_CSV
        if not path.is_file():
            log.warning("no %s in %s: fold lists are not checked against the records", RECORDS_CSV, dest)
            return None
        records = path
    if isinstance(records, (str, os.PathLike)):
        return {r.record for r in read_records_csv(records)}
    return {r.record if isinstance(r, Record) else str(r) for r in records}


def acquire_folds(
    dest_dir: str | os.PathLike[str],
    *,
    source: Literal["local", "download"] = "local",
    local_dir: str | os.PathLike[str] | None = None,
    urls: Mapping[str, tuple[str, str]] | None = None,
    records: Iterable[str] | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = False,
) -> dict[str, list[str]]:
    """Obtain (:func:`obtain_folds`), validate and write the fold lists to ``<dest_dir>/folds/``.

    - ``cache_dir``: where downloaded lists go (default ``<dest_dir>/.fold-cache``).
    - ``records``: the known record names (an iterable, or a path to ``records.csv``; default
      ``<dest_dir>/records.csv`` if present). Every problem (unknown names, duplicates,
      train/validation overlap, missing lists) is raised at once as :class:`BadInputError`.

    Returns ``{name: [records]}``; also writes ``folds/provenance.csv`` (source, SHA-256).
    """
    dest = Path(dest_dir)
    folds = obtain_folds(source=source, local_dir=local_dir, urls=urls,
                         cache_dir=dest / ".fold-cache" if cache_dir is None else cache_dir,
                         retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    problems = validate_folds(folds.lists, _known_records(dest, records), where=folds.sources)
    if problems:
        raise BadInputError("invalid fold lists", problems)
    write_folds(dest, folds.lists, folds.provenance())
    return folds.lists


def acquire(config, dest_dir: str | os.PathLike[str], *,
            cache_dir: str | os.PathLike[str]) -> AcquireResult:
    """The ``fetch_physionet`` step: the training set and the fold lists, as configured.

    ``config`` is a :class:`spectnet.config.PhysioNetConfig`. ``source="auto"`` takes the
    local copy when ``local_path`` is a directory, and downloads otherwise; the fold lists
    likewise. The fold lists are obtained first (a missing one fails before a long
    download), then written with the data in one directory swap: ``dest_dir`` is either the
    complete new acquisition or, after any failure, the previous one untouched. With
    ``on_bad_record: skip``, skipped records are removed from the fold lists and reported.
    """
    on_bad_record: OnBadRecord = "error" if config.on_bad_record == "fail" else "skip"
    folds_source = config.folds.source
    if folds_source == "auto":
        folds_source = "local" if Path(config.folds.local_path).is_dir() else "download"
    folds = obtain_folds(source=folds_source, local_dir=config.folds.local_path,
                         cache_dir=Path(cache_dir) / "folds")
    source = config.source
    if source == "auto":
        source = "local" if Path(config.local_path).is_dir() else "download"
    log.info("acquiring the PhysioNet 2016 training set (%s: %s)", source,
             config.local_path if source == "local" else config.url)
    if source == "local":
        return acquire_local(config.local_path, dest_dir, on_bad_record=on_bad_record, folds=folds)
    return acquire_download(config.url, dest_dir, cache_dir=cache_dir, on_bad_record=on_bad_record,
                            folds=folds)
