"""Your own data, from a CSV file or from one folder per class.

``root`` is either

- a CSV file with the columns ``path`` and ``label``, and optionally ``speaker``,
  ``session``, ``gender`` (F/M) and ``utt_id``; relative paths are resolved against the
  CSV's folder and other columns are ignored (so a manifest written by ``ser`` reads back), or
- a folder with one subfolder per class (``happy/001.wav``, ``sad/take2/002.wav``): the label
  is the subfolder's name, lower-cased; speakers are unknown.

Labels are kept as given (stripped, lower-cased), with no mapping to the canonical names.
Without speakers each file is its own group, and cross-validation cannot be
speaker-independent; a warning says so.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from ser.corpora.base import (
    DUPLICATE,
    Record,
    Report,
    absolute_root,
    check_root,
    finalize,
    find_audio,
    is_hidden,
    no_audio_error,
    relative,
    warn,
)
from ser.errors import CorpusError

NAME = "custom"
CLASSES = ()
EXPECTED_COUNT = None
PROTOCOL = {"kind": "group_kfold", "group": "speaker", "k": 5}
LAYOUT = "a CSV file with columns path,label[,speaker][,session], or one subfolder of audio per class"

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("speaker", "session", "gender", "utt_id")

MISSING_VALUE = "missing value"
NOT_IN_CLASS = "not in a class folder"

_GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M"}


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of your own data at ``root``: a CSV file, or a folder with one subfolder per class."""
    if isinstance(root, (str, os.PathLike)) and str(root) != "" and Path(root).expanduser().is_file():
        return _load_csv(absolute_root(root), skip_bad, find_unusable)
    return _load_folders(check_root(NAME, root, LAYOUT), skip_bad, find_unusable)


def _warn_no_speakers(where: Path) -> None:
    warn(
        f"{NAME} at {where}: no speaker information, so each file is its own speaker group: "
        "cross-validation folds cannot be speaker-independent and scores will be optimistic "
        "(the same voices in training and test). Give a CSV with a 'speaker' column to fix this."
    )


def _load_folders(root: Path, skip_bad: bool, find_unusable=None) -> pd.DataFrame:
    report = Report(NAME, root)
    records = []
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not is_hidden(d.name))
    for path in find_audio(root):
        if path.parent == root:
            report.add(NOT_IN_CLASS, path, "expected each file in a subfolder named after its class")
    for folder in class_dirs:
        for path in find_audio(folder):
            utt_id = relative(path.with_suffix(""), root)
            records.append(Record(str(path), utt_id, folder.name.strip().lower(), utt_id, None, None))
    if not records and not report.problems:
        raise no_audio_error(NAME, root, LAYOUT)
    classes = tuple(sorted({d.name.strip().lower() for d in class_dirs}))
    heard = sorted({r.label for r in records})
    if len(heard) < 2:
        csvs = sorted(p.name for p in root.glob("*.csv"))
        hint = (
            f"; found {csvs[0]} here: to use a CSV manifest, pass the file itself, e.g. --data-root {root / csvs[0]}"
            if csvs
            else ""
        )
        raise CorpusError(
            f"{NAME} at {root}: audio in {len(heard)} class folder(s) ({', '.join(heard) or 'none'}); "
            f"expected one subfolder of audio per class, at least 2{hint}"
        )
    _warn_no_speakers(root)
    return finalize(
        NAME,
        root,
        records,
        report,
        classes=classes,
        skip_bad=skip_bad,
        warn_single_file_speakers=False,
        find_unusable=find_unusable,
    )


def _check_field_counts(csv: Path, expected: str) -> None:
    """Refuse a row with more non-empty fields than the header has columns.

    pandas would otherwise take the first column as the index and shift every other one
    (the path read as the label, the label as the speaker) without a word.
    """
    import csv as csv_module

    try:
        with open(csv, newline="", encoding="utf-8-sig") as fh:
            rows = csv_module.reader(fh)
            header = next(rows, None)
            if header is None:
                return
            width = len(header)
            for row in rows:
                extra = row[width:]
                if any(field.strip() for field in extra):
                    raise CorpusError(
                        f"{NAME} at {csv}: line {rows.line_num} has {len(row)} fields but the header "
                        f"has {width} ({','.join(header)}); {expected}"
                    )
    except (UnicodeDecodeError, csv_module.Error):
        return  # pandas reports these with its own reason


def _load_csv(csv: Path, skip_bad: bool, find_unusable=None) -> pd.DataFrame:
    expected = f"expected a CSV file with columns {','.join(REQUIRED_COLUMNS)}[,speaker][,session]"
    _check_field_counts(csv, expected)
    try:
        with warnings.catch_warnings():
            # rows with empty trailing fields (a spreadsheet's trailing commas) are fine: the
            # empty extras are dropped; non-empty extras were refused just above
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            table = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CorpusError(f"{NAME} at {csv}: cannot read as CSV ({reason}); {expected}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        found = ", ".join(table.columns) or "none"
        raise CorpusError(
            f"{NAME} at {csv}: missing column(s) {', '.join(missing)} (found: {found}); {expected}"
        )
    if len(table) == 0:
        raise CorpusError(f"{NAME} at {csv}: no rows; {expected}")
    base = csv.parent
    has_speaker = "speaker" in table.columns
    report = Report(NAME, csv, base=base)
    records = []
    first_line: dict[Path, int] = {}  # each file's first row, to name rows that list it again
    for i, row in enumerate(table.to_dict("records")):
        line = f"line {i + 2} of {csv.name}"
        given = row["path"].strip()
        if not given:
            report.add(MISSING_VALUE, None, f"{line}: empty path")
            continue
        path = Path(os.path.abspath(base / Path(given).expanduser()))
        label = row["label"].strip().lower()
        speaker = row.get("speaker", "").strip()
        gender_value = row.get("gender", "").strip()
        gender = _GENDERS.get(gender_value.lower())
        empty = ["label"] if not label else []
        if has_speaker and not speaker:
            empty.append("speaker")
        if empty:
            report.add(MISSING_VALUE, path, f"{line}: empty {' and '.join(empty)}")
            continue
        if gender_value and gender is None:
            report.add(MISSING_VALUE, path, f"{line}: gender {gender_value!r}; expected F, M or empty")
            continue
        if path in first_line:
            report.add(
                DUPLICATE,
                path,
                f"{line}: the file is listed again (first on line {first_line[path]}); expected each file once",
            )
            continue
        first_line[path] = i + 2
        utt_id = row.get("utt_id", "").strip() or relative(path.with_suffix(""), base)
        session = row.get("session", "").strip() or None
        records.append(Record(str(path), utt_id, label, speaker or utt_id, session, gender))
    if not has_speaker:
        _warn_no_speakers(csv)
    return finalize(
        NAME,
        csv,
        records,
        report,
        classes=CLASSES,
        skip_bad=skip_bad,
        warn_single_file_speakers=has_speaker,
        find_unusable=find_unusable,
    )
