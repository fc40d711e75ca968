"""The SpectNet paper's fold lists for PhysioNet 2016: obtain, validate, write, derive.

The paper's code publishes four folds (``train0..3`` / ``validation0..3``) and the list of
87 training-e recordings it excludes. They are read from a local folder or downloaded
from pinned URLs (SHA-256 verified), checked, and written to ``<dataset>/folds/`` with
``provenance.csv`` (where each list came from, and its digest):

- :func:`obtain_folds` — every list of :data:`FOLD_NAMES`, from a folder or the pinned URLs.
- :func:`validate_folds` — every problem with a set of lists (names, duplicates, overlap,
  unknown records).
- :func:`write_folds` — the lists to ``<dest>/folds/``, atomically.
- :func:`derive_fold0_from_validation_records` — fold 0 from PhysioNet's validation list.

The acquisition (:mod:`spectnet.datasets.physionet`) checks them against the acquired
records and writes them with the data.
"""

from __future__ import annotations

import csv
import io
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spectnet.atomic import atomic_dir
from spectnet.datasets.download import download_file, sha256sum
from spectnet.errors import BadInputError, DownloadError, Problem

__all__ = [
    "RECORD_NAME",
    "FOLD_NAMES",
    "FOLD_URLS",
    "SPECTNET_COMMIT",
    "FoldLists",
    "csv_text",
    "read_record_list",
    "validate_folds",
    "write_fold_files",
    "write_folds",
    "obtain_folds",
    "derive_fold0_from_validation_records",
]

#: A valid record name (PhysioNet's are like ``a0001``; no path separators, no spaces).
RECORD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Fold lists published with the SpectNet paper's code.
FOLD_NAMES: tuple[str, ...] = (
    "train0", "train1", "train2", "train3",
    "validation0", "validation1", "validation2", "validation3",
    "excluded-training-e",
)
SPECTNET_REPO = "IstiaqAnsari/SpectNet"
SPECTNET_COMMIT = "39a7d250fba926bcd086612e62a937a014a4eaed"
_RAW = f"https://raw.githubusercontent.com/{SPECTNET_REPO}/{SPECTNET_COMMIT}/data/text/"


def _raw_url(file_name: str) -> str:
    return _RAW + urllib.parse.quote(file_name)


#: name -> (pinned URL, SHA-256). The digests were computed from the local copies in
#: shared/data/physionet2016/folds/ (which come from data/text/ of the repository).
#: File names in the repository: the exclusion list is
#: "data/text/Recordings need to be removed in training-e.txt" and train0..3.txt,
#: validation1..3.txt exist under these names (checked against an indexed snapshot of the
#: repository, commit 0e94bcf, whose excluded/validation1 bytes match the local copies).
#: UNVERIFIED: "validation0.txt" was not found in that snapshot; the URL below is a guess by
#: analogy. If it 404s, derive fold 0 from PhysioNet's validation/RECORDS instead
#: (:func:`derive_fold0_from_validation_records`; the local validation0 equals that list's
#: derivation, 301 records). The raw URLs at commit 39a7d25 were not fetched (no internet).
FOLD_URLS: Mapping[str, tuple[str, str]] = {
    "train0": (_raw_url("train0.txt"), "968aa6563d9db09d102e5fedf76f0a36124ec1600bc7fc46d44c9142de5cecc4"),
    "train1": (_raw_url("train1.txt"), "2cda4e40091443d010cfd531700fd52ec8f646ebb494cd776aba7803b3cba0a6"),
    "train2": (_raw_url("train2.txt"), "f85aa2b851a5fb0d35c5124590e975b81d2b188eda45a9a85684ec779b0edfb4"),
    "train3": (_raw_url("train3.txt"), "06f4af12dedf9f1954509770ed573dc0dea20a260005eb98543222445df91a27"),
    "validation0": (_raw_url("validation0.txt"), "385ef2576c6a6a5dd0d7ac161bbcff4ef899257d76858493c617b14e549c62fb"),
    "validation1": (_raw_url("validation1.txt"), "61e3768f9bbb82d609c22a282347837ced4c445f48b4742bbde0d30b852a4e97"),
    "validation2": (_raw_url("validation2.txt"), "8f79a697db1ad9886473b405dab2ca7fe9983f29bb90ee829a5a35be4fa0b966"),
    "validation3": (_raw_url("validation3.txt"), "5db746d06ea950574e7c4858eaff6ab6429a03a5da35ccb3e3ebcae902f7f88e"),
    "excluded-training-e": (
        _raw_url("Recordings need to be removed in training-e.txt"),
        "0108eba88384557d9b92a3bb812a36044485714257f3aaaaa1893e829ff67dbc",
    ),
}


@dataclass
class FoldLists:
    """Fold lists as obtained by :func:`obtain_folds`, not yet checked against records."""

    lists: dict[str, list[str]]  #: fold name -> record names, in file order
    sources: dict[str, str]  #: fold name -> the file or URL it was read from
    sha256: dict[str, str]  #: fold name -> SHA-256 of the source bytes

    def provenance(self) -> list[tuple[str, str, str]]:
        """Rows ``(name, source, sha256)`` of ``folds/provenance.csv``."""
        return [(name, self.sources[name], self.sha256[name]) for name in self.lists]

    def without(self, records: Mapping[str, str]) -> tuple["FoldLists", list[tuple[str, str, str, str]]]:
        """These lists less the given records (name -> why it was dropped), and one
        ``acquire_report.csv`` row ``(where, record, reason, action)`` per removal."""
        rows = [(self.sources[name], rec, f"listed in {name} but skipped: {records[rec]}",
                 "removed from fold list")
                for name, names in self.lists.items() for rec in names if rec in records]
        lists = {name: [r for r in names if r not in records] for name, names in self.lists.items()}
        return FoldLists(lists, self.sources, self.sha256), rows


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV text with ``\\n`` line ends (the bytes of the lists this package writes)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def read_record_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a one-name-per-line record list (blank lines and surrounding spaces dropped)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()]


def validate_folds(
    folds: Mapping[str, Sequence[str]],
    known_records: Iterable[str] | None = None,
    *,
    where: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Return every problem with a set of fold lists (empty list: all good).

    Checks: all :data:`FOLD_NAMES` present and non-empty, valid names, no duplicates within a
    list, ``trainK`` and ``validationK`` disjoint, and (when ``known_records`` is given) every
    name is a known record. ``where`` maps a fold name to its source for the messages.
    """
    where = dict(where or {})
    known = set(known_records) if known_records is not None else None
    problems: list[Problem] = []
    for name in FOLD_NAMES:
        loc = where.get(name, f"{name}.txt")
        names = folds.get(name)
        if names is None:
            problems.append((loc, "fold list missing"))
            continue
        if not names:
            problems.append((loc, "fold list is empty"))
        seen: set[str] = set()
        for rec in names:
            if not RECORD_NAME.match(rec):
                problems.append((loc, f"invalid record name {rec!r}"))
            elif rec in seen:
                problems.append((loc, f"record {rec} listed twice"))
            elif known is not None and rec not in known:
                problems.append((loc, f"unknown record {rec} (not among the acquired records)"))
            seen.add(rec)
    for k in range(4):
        tr, va = folds.get(f"train{k}"), folds.get(f"validation{k}")
        if tr is not None and va is not None:
            both = sorted(set(tr) & set(va))
            if both:
                problems.append((where.get(f"validation{k}", f"validation{k}.txt"),
                                 f"{len(both)} record(s) also in train{k}: {', '.join(both[:10])}"
                                 + (" ..." if len(both) > 10 else "")))
    return problems


def write_fold_files(folder: Path, folds: Mapping[str, Sequence[str]],
                     provenance: Sequence[tuple[str, str, str]]) -> None:
    """Write ``<name>.txt`` (one record per line) and ``provenance.csv`` into ``folder``,
    an existing (temporary) directory: the caller publishes it."""
    for name, names in folds.items():
        (folder / f"{name}.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="\n")
    if provenance:
        (folder / "provenance.csv").write_text(csv_text(("name", "source", "sha256"), provenance),
                                               encoding="utf-8", newline="\n")


def write_folds(
    dest_dir: str | os.PathLike[str],
    folds: Mapping[str, Sequence[str]],
    provenance: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """Write ``<dest_dir>/folds/<name>.txt`` (one record per line) atomically; return the folder.

    ``provenance`` rows ``(name, source, sha256 of the source bytes)`` go to ``provenance.csv``.
    The written lists are normalised (no blank lines, ``\\n`` endings), so their bytes may
    differ from the sources (the original exclusion list ends with blank lines).
    """
    out = Path(dest_dir) / "folds"
    with atomic_dir(out) as tmp:
        write_fold_files(tmp, folds, provenance)
    return out


def obtain_folds(
    *,
    source: Literal["local", "download"] = "local",
    local_dir: str | os.PathLike[str] | None = None,
    urls: Mapping[str, tuple[str, str]] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = False,
) -> FoldLists:
    """Read (or download and verify) the SpectNet fold lists, every one of :data:`FOLD_NAMES`.

    - ``source="local"``: read ``<local_dir>/<name>.txt``.
    - ``source="download"``: fetch each ``urls[name] = (url, sha256)`` (default
      :data:`FOLD_URLS`) into ``cache_dir``, verified.

    Every list that cannot be obtained is reported at once as :class:`BadInputError`.
    """
    paths: dict[str, Path] = {}
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    if source == "local":
        if local_dir is None:
            raise ValueError("obtain_folds(source='local') needs local_dir")
        for name in FOLD_NAMES:
            p = Path(local_dir) / f"{name}.txt"
            sources[name] = str(p)
            if p.is_file():
                paths[name] = p
            else:
                problems.append((str(p), "fold list file missing"))
    elif source == "download":
        if cache_dir is None:
            raise ValueError("obtain_folds(source='download') needs cache_dir")
        table = dict(FOLD_URLS if urls is None else urls)
        for name in FOLD_NAMES:
            if name not in table:
                problems.append((name, "no URL configured"))
                continue
            url, digest = table[name]
            sources[name] = url
            try:
                paths[name] = download_file(url, Path(cache_dir) / f"{name}.txt", sha256=digest,
                                            retries=retries, backoff=backoff, timeout=timeout,
                                            progress=progress)
            except DownloadError as exc:
                problems.append((url, str(exc)))
    else:
        raise ValueError(f"source must be 'local' or 'download', not {source!r}")
    if problems:
        raise BadInputError("fold lists could not be obtained", problems)
    return FoldLists({name: read_record_list(paths[name]) for name in FOLD_NAMES}, sources,
                     {name: sha256sum(paths[name]) for name in FOLD_NAMES})


def derive_fold0_from_validation_records(
    all_records: Iterable[str],
    validation_records: Sequence[str],
    excluded: Iterable[str],
) -> dict[str, list[str]]:
    """Derive the paper's fold 0 from PhysioNet's official validation record list.

    ``validation0`` = the official validation records (kept in the given order, including any
    that are also on the exclusion list — the paper's list keeps 4 such records);
    ``train0`` = all records (sorted) minus the validation records minus the excluded ones.
    Raises :class:`BadInputError` if a validation or excluded name is not among ``all_records``.
    """
    all_list = sorted(set(all_records))
    universe = set(all_list)
    val = list(dict.fromkeys(validation_records))
    excl = set(excluded)
    problems: list[Problem] = [("validation records", f"unknown record {r}") for r in val if r not in universe]
    problems += [("excluded records", f"unknown record {r}") for r in sorted(excl - universe)]
    if problems:
        raise BadInputError("cannot derive fold 0", problems)
    val_set = set(val)
    train = [r for r in all_list if r not in val_set and r not in excl]
    return {"train0": train, "validation0": val}
