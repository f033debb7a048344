"""Shared machinery of the corpus loaders: find audio, collect problems, build the manifest.

A loader only knows its corpus's layout and naming. It walks the files, turns each name it
understands into a :class:`Record`, notes each one it does not in a :class:`Report`, and
hands both to :func:`finalize`, which reads every file's header (and, given a decoder, its
audio), checks labels, utterance ids, classes and counts, and then either returns the manifest
or raises one :class:`~ser.errors.CorpusError` that lists every problem at once, with what a
partial copy lacks. With ``skip_bad=True`` the bad files are dropped instead, with a warning
that carries the same list; a corpus is never returned silently incomplete.

A manifest is a :class:`pandas.DataFrame` with one row per utterance and the columns
:data:`COLUMNS`, in that order.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ser.audio import audio_info
from ser.constants import AUDIO_EXTENSIONS, MIN_DURATION
from ser.errors import AudioError, ConfigError, CorpusError

#: Columns of a manifest, in order.
COLUMNS = ("path", "utt_id", "label", "speaker", "session", "gender", "duration")

#: Every label a corpus module may produce, in canonical (alphabetical) order.
CANONICAL_LABELS = ("angry", "boredom", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: Examples listed per kind of problem in a summary before "... and K more".
MAX_EXAMPLES = 10

#: Last line of the error raised when a corpus has problems.
FIX_HINT = "Fix or remove them, or pass --skip-bad (skip_bad=True in Python) to train on the remaining files."

# Kinds of problem finalize() finds itself (loaders add their own kinds as they need them).
UNPARSEABLE = "file name does not parse"
UNKNOWN_LABEL = "unknown label"
OUTSIDE_CLASSES = "label outside the class set"
DUPLICATE = "duplicate utterance id"
UNREADABLE = "unreadable audio"
TOO_SHORT = "too short"
UNUSABLE = "unusable audio"
EMPTY_CLASS = "class with no examples"


class CorpusWarning(UserWarning):
    """A corpus that loads but deserves attention: partial release, skipped files, confounds."""


def warn(message: str) -> None:
    """Issue a :class:`CorpusWarning` attributed to the first caller outside :mod:`ser.corpora`."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("ser.corpora"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, CorpusWarning, stacklevel=level)


@dataclass
class Record:
    """One utterance as a loader parsed it, before :func:`finalize` checks it.

    ``label`` is the corpus's raw label when :func:`finalize` gets a ``label_map``, else
    the final label.
    """

    path: str
    utt_id: str
    label: str
    speaker: str
    session: str | None = None
    gender: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file (``path``) or with the corpus as a whole (``path=None``)."""

    kind: str
    detail: str
    path: str | None = None


class Report:
    """Collects the problems found while loading one corpus and formats their summary."""

    def __init__(self, corpus: str, root: str | os.PathLike, *, base: str | os.PathLike | None = None):
        self.corpus = corpus
        self.root = Path(root)
        #: Folder that paths in messages are shown relative to (``root`` unless it is a file).
        self.base = Path(base) if base is not None else self.root
        self.problems: list[Problem] = []

    def add(self, kind: str, path: str | os.PathLike | None, detail: str) -> None:
        """Note a problem of ``kind`` with ``path`` (``None`` for the corpus as a whole)."""
        self.problems.append(Problem(kind, detail, None if path is None else str(path)))

    def bad_paths(self) -> set[str]:
        """Paths of every file with at least one problem."""
        return {p.path for p in self.problems if p.path is not None}

    def summary(self, last_line: str, notes: Iterable[str] = ()) -> str:
        """Multi-line summary: a count line, the problems grouped by kind, ``notes``, ``last_line``."""
        n_files = len(self.bad_paths())
        head = f"{self.corpus} at {self.root}: {len(self.problems)} problem(s)"
        if n_files:
            head += f" in {n_files} file(s)"
        lines = [head]
        groups: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            groups[problem.kind].append(problem)
        for kind, problems in groups.items():
            lines.append(f"{kind} ({len(problems)}):")
            for problem in problems[:MAX_EXAMPLES]:
                where = f"{relative(problem.path, self.base)}: " if problem.path is not None else ""
                lines.append(f"  {where}{problem.detail}")
            if len(problems) > MAX_EXAMPLES:
                lines.append(f"  ... and {len(problems) - MAX_EXAMPLES} more")
        lines.extend(notes)
        lines.append(last_line)
        return "\n".join(lines)


def skipped_line(n_skipped: int, n_kept: int) -> str:
    """Last line of the warning that lists the files ``--skip-bad`` leaves out. It counts the
    files the list is taken from, so that what was skipped and what remains add up."""
    return (
        f"--skip-bad: skipped the {n_skipped} file(s) listed out of {n_skipped + n_kept}; "
        f"using the remaining {n_kept} utterance(s)."
    )


def detail_of(error: Exception, path: str | os.PathLike) -> str:
    """An error's message without the leading ``"<path>: "``, which a :class:`Report` shows
    itself (relative to the corpus root)."""
    message, prefix = str(error), f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def relative(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` (posix separators) when inside it, else as given."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise :class:`ConfigError` naming ``name``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false. Received: {name}={value!r}")
    return value


def absolute_root(root: str | os.PathLike) -> Path:
    """The corpus root (a folder, or a CSV for ``custom``) as every command names it: ``~``
    expanded, absolute, symbolic links resolved.

    ``ser check`` and ``ser train`` (its messages, ``run.json``, the manifest's paths) both take
    the root from here, so a corpus reached through a link is named the same way by both, and a
    run resumed through another link to the same corpus is the same run.
    """
    return Path(os.path.expanduser(os.fspath(root))).resolve()


def check_root(corpus: str, root: str | os.PathLike, layout: str) -> Path:
    """Return ``root`` as :func:`absolute_root` names it, after checking it is an existing folder.

    Raises
    ------
    CorpusError
        ``root`` does not exist (``"...: corpus root not found"``) or is not a folder.
    """
    if not isinstance(root, (str, os.PathLike)) or str(root) == "":
        raise CorpusError(f"{corpus}: corpus root {root!r} is not a path; expected a folder with {layout}")
    path = absolute_root(root)
    if not path.exists():
        raise CorpusError(f"{corpus} at {path}: corpus root not found; expected a folder with {layout}")
    if not path.is_dir():
        raise CorpusError(f"{corpus} at {path}: not a folder; expected a folder with {layout}")
    return path


def no_audio_error(corpus: str, root: str | os.PathLike, layout: str) -> CorpusError:
    """The error for a corpus root that holds no audio files where the layout expects them."""
    extensions = ", ".join(AUDIO_EXTENSIONS)
    return CorpusError(
        f"{corpus} at {root}: no audio files found ({extensions}); expected a folder with {layout}"
    )


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is one that corpus scans ignore."""
    # ".*" covers macOS "._x.wav" resource forks and ".DS_Store"; __MACOSX holds zip leftovers.
    return name.startswith(".") or name == "__MACOSX"


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Every audio file under ``folder``, recursively, sorted.

    Audio means an extension in :data:`ser.constants.AUDIO_EXTENSIONS`, in any case
    (``.wav``, ``.WAV``). Hidden files and folders (``._x.wav`` from macOS, ``.git``) and
    ``__MACOSX`` folders are ignored. Symbolic links to folders are followed once. A missing
    folder has no audio.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        Path(dirpath) / name
        for dirpath, _, filenames in walk_visible(folder)
        for name in filenames
        if not is_hidden(name) and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
    ]
    return sorted(found, key=lambda p: p.as_posix())


def walk_visible(folder: str | os.PathLike):
    """:func:`os.walk` of ``folder`` as the loaders scan it: hidden folders (and
    ``__MACOSX``) skipped, the others visited in sorted order, symbolic links to folders
    followed once (a link loop, or a folder linked twice, is visited once)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        yield dirpath, dirnames, filenames


def scan_audio(corpus: str, root: str | os.PathLike, layout: str, *, prefer: str | None = None) -> list[Path]:
    """Audio files of a corpus: under ``root/prefer`` when that folder exists, else under ``root``.

    Raises
    ------
    CorpusError
        No audio file at all.
    """
    root = Path(root)
    folder = root / prefer if prefer is not None and (root / prefer).is_dir() else root
    files = find_audio(folder)
    if not files:
        raise no_audio_error(corpus, root, layout)
    return files


def _describe_map(label_map: Mapping[str, str | None]) -> str:
    known = [f"{raw} ({label})" if label != raw else raw for raw, label in label_map.items() if label]
    return ", ".join(known)


def finalize(
    corpus: str,
    root: str | os.PathLike,
    records: Sequence[Record],
    report: Report,
    *,
    classes: Sequence[str],
    label_map: Mapping[str, str | None] | None = None,
    expected_count: int | None = None,
    skip_bad: bool = False,
    warn_single_file_speakers: bool = True,
    shortfall=None,
    find_unusable=None,
) -> pd.DataFrame:
    """Check what a loader found and build the manifest.

    Parameters
    ----------
    corpus : str
        Name used in messages (``"emodb"``).
    root : str or PathLike
        The corpus root, used in messages and to shorten paths in them.
    records : sequence of Record
        One per audio file the loader understood.
    report : Report
        Problems the loader already found; finalize adds its own.
    classes : sequence of str
        The classes this load must cover, in order. Each needs at least one usable
        utterance; a label outside them is a problem. Empty: any label, no coverage check.
    label_map : mapping of str to (str or None), optional
        Raw label -> final label; ``None`` excludes the utterance silently (a category the
        class set leaves out). A raw label not in the map is a problem.
    expected_count : int, optional
        Utterances in the full release with these options. A different count is a warning
        (partial copies are common), never an error.
    skip_bad : bool
        Drop files with problems (with a warning) instead of raising.
    warn_single_file_speakers : bool
        Warn about speakers with a single file (off when speakers are unknown).
    shortfall : callable, optional
        ``shortfall(manifest) -> str or None``: what a copy with fewer than
        ``expected_count`` utterances lacks (e.g. which speakers), added to that warning
        (or, when files have problems, to their list).
    find_unusable : callable, optional
        ``find_unusable(paths) -> {index: AudioError}``: the files among ``paths`` (those
        whose headers are fine) whose audio cannot be used, found by decoding them
        (:func:`ser.data.find_unusable`). They are listed with the other problems, so that
        one run names every file to fix.

    Returns
    -------
    pd.DataFrame
        Columns :data:`COLUMNS`. ``attrs`` holds ``corpus``, ``root`` and ``classes`` (the
        classes present, in order: ``classes`` filtered, or the sorted labels when
        ``classes`` is empty).

    Raises
    ------
    CorpusError
        Any problem while ``skip_bad`` is False (one error listing them all), or no usable
        utterance left.
    """
    root, classes = Path(root), tuple(classes)
    rows = _labelled(records, report, classes, label_map)
    _flag_duplicates(rows, report)
    durations, cut_short = _durations(rows, report, find_unusable)
    listed = {row.label for row in rows}
    _flag_empty_classes(classes, listed, report)
    bad = report.bad_paths()
    good = [row for row in rows if row.path not in bad]
    frame = _manifest(good, durations, corpus, root, classes)
    partial = _partial_note(frame, expected_count, shortfall)
    if report.problems:
        _refuse_or_skip(report, classes, listed, good, bad, partial, skip_bad)
    _warn_about(frame, corpus, root, report, cut_short, warn_single_file_speakers)
    if partial and not report.problems:
        warn(f"{corpus} at {root}: {partial}")
    return frame


def _labelled(records, report: Report, classes: tuple, label_map) -> list[Record]:
    """The records with their final labels; unknown and outside labels go to ``report``."""
    rows = []
    for record in records:
        label = record.label
        if label_map is not None:
            if label not in label_map:
                report.add(
                    UNKNOWN_LABEL, record.path, f"label {label!r}; expected one of {_describe_map(label_map)}"
                )
                continue
            label = label_map[label]
            if label is None:
                continue  # a category outside the class set, excluded by design
        if classes and label not in classes:
            report.add(OUTSIDE_CLASSES, record.path, f"label {label!r}; expected one of {', '.join(classes)}")
            continue
        rows.append(Record(record.path, record.utt_id, label, record.speaker, record.session, record.gender))
    return rows


def _flag_duplicates(rows: list[Record], report: Report) -> None:
    """Report every file whose utterance id another file also uses."""
    by_id: dict[str, list[Record]] = defaultdict(list)
    for row in rows:
        by_id[row.utt_id].append(row)
    for utt_id, same in by_id.items():
        if len(same) > 1:  # every copy is ambiguous, the first as much as the others
            for row in same:
                others = ", ".join(relative(o.path, report.base) for o in same if o is not row)
                report.add(
                    DUPLICATE,
                    row.path,
                    f"utterance id {utt_id!r} is also used by {others} (is part of the corpus copied twice?)",
                )


def _durations(rows: list[Record], report: Report, find_unusable) -> tuple[dict[str, float], list[str]]:
    """``({path: seconds}, cut_short paths)`` of the readable files; the others go to ``report``."""
    durations: dict[str, float] = {}
    cut_short: list[str] = []
    for row in rows:
        if row.path in durations:
            continue
        try:
            info = audio_info(row.path)
        except AudioError as exc:
            report.add(UNREADABLE, row.path, detail_of(exc, row.path))
            continue
        if info.duration < MIN_DURATION:
            report.add(
                TOO_SHORT,
                row.path,
                f"{info.duration * 1000:.0f} ms of audio; expected at least {MIN_DURATION * 1000:.0f} ms",
            )
            continue
        durations[row.path] = info.duration
        if info.promised_frames is not None:
            cut_short.append(row.path)
    if find_unusable is not None:
        readable = list(durations)
        for i, error in find_unusable(readable).items():
            report.add(UNUSABLE, readable[i], detail_of(error, readable[i]))
    return durations, cut_short


def _flag_empty_classes(classes: tuple, listed: set, report: Report) -> None:
    for cls in classes:
        if cls not in listed:
            report.add(
                EMPTY_CLASS,
                None,
                f"{cls!r} has no utterance; expected at least one per class "
                f"({', '.join(classes)}): is part of the corpus missing?",
            )


def _manifest(good: list[Record], durations: dict, corpus: str, root: Path, classes: tuple) -> pd.DataFrame:
    """The manifest of the usable rows (columns :data:`COLUMNS`, ``attrs`` as :func:`finalize`)."""
    frame = pd.DataFrame(
        {
            "path": [row.path for row in good],
            "utt_id": [row.utt_id for row in good],
            "label": [row.label for row in good],
            "speaker": [row.speaker for row in good],
            # object dtype keeps None as None (a str column would turn it into NaN)
            "session": pd.Series([row.session for row in good], dtype=object),
            "gender": pd.Series([row.gender for row in good], dtype=object),
            "duration": pd.Series([durations[row.path] for row in good], dtype="float64"),
        },
        columns=list(COLUMNS),
    )
    found = {row.label for row in good}
    present = tuple(c for c in classes if c in found) if classes else tuple(sorted(found))
    frame.attrs.update({"corpus": corpus, "root": str(root), "classes": present})
    return frame


def _partial_note(frame: pd.DataFrame, expected_count: int | None, shortfall) -> str | None:
    """What a copy that is not the full release lacks (on the files kept), or ``None``."""
    if expected_count is None or len(frame) == expected_count:
        return None
    short = len(frame) < expected_count
    why = (
        "a partial copy? results will not be comparable with published ones"
        if short
        else "is another corpus, or a second copy, under the root?"
    )
    detail = shortfall(frame) if shortfall is not None and short else None
    return f"{len(frame)} utterances, but the full release has {expected_count} ({why})" + (
        f"; {detail}" if detail else ""
    )


def _refuse_or_skip(report: Report, classes, listed, good, bad, partial, skip_bad: bool) -> None:
    """Raise the one list of problems, or (``skip_bad``) warn that their files are left out."""
    notes = []
    found = {row.label for row in good}
    lost = [cls for cls in (classes or sorted(listed)) if cls in listed and cls not in found]
    if lost:
        notes.append(
            f"(every utterance of {', '.join(repr(c) for c in lost)} has a problem: "
            f"skipping them leaves no example of {'that class' if len(lost) == 1 else 'those classes'})"
        )
    if partial and good:  # listed here, so that a refused run names the missing speakers too
        notes.append(f"without the files listed: {partial}")
    if not skip_bad:
        raise CorpusError(report.summary(FIX_HINT, notes))
    if not good:
        raise CorpusError(report.summary("--skip-bad, but no usable utterance is left.", notes))
    # every file listed is left out: those whose names parsed (counted in rows) and those
    # that never became an utterance (misnamed, unknown label)
    warn(report.summary(skipped_line(len(bad), len(good)), notes))


def _warn_about(frame, corpus: str, root: Path, report: Report, cut_short: list, single_files: bool) -> None:
    """Warn about files cut short and (``single_files``) speakers with a single file."""
    kept = set(frame["path"])
    cut_short = [relative(p, report.base) for p in cut_short if p in kept]
    if cut_short:
        warn(
            f"{corpus} at {root}: {len(cut_short)} file(s) hold less audio than their headers say "
            f"(cut short, e.g. by an interrupted copy; used as they are): {_some(cut_short)}"
        )
    if single_files:
        counts = Counter(frame["speaker"])
        single = sorted(speaker for speaker, n in counts.items() if n == 1)
        if single:
            warn(
                f"{corpus} at {root}: {len(single)} speaker(s) with a single file: {_some(single)}; "
                "per-speaker normalisation erases their label and their fold has one test file.",
            )


def lacking(
    groups: pd.Series, expected: Sequence[str], what: str, per_group: int | None = None
) -> str | None:
    """What a partial copy lacks, for :func:`finalize`'s ``shortfall``: the ``expected`` groups
    (speakers, sessions, folders: ``what``) with no file in ``groups`` (one name per utterance),
    and, with ``per_group`` (the release's files per group), those with fewer files."""
    counts = groups.value_counts()
    missing = [g for g in expected if g not in counts]
    parts = [f"{what} missing: {_some(missing)}"] if missing else []
    if per_group is not None:
        short = [f"{g} ({counts[g]})" for g in expected if 0 < counts.get(g, 0) < per_group]
        if short:
            parts.append(f"{what} with fewer than {per_group} files: {_some(short)}")
    return "; ".join(parts) or None


def _some(names: Sequence[str], limit: int = MAX_EXAMPLES) -> str:
    """``names`` joined with commas, at most ``limit`` of them, then "... and K more"."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f", ... and {len(names) - limit} more" if len(names) > limit else "")


def _label_order(manifest: pd.DataFrame) -> list[str]:
    labels = set(manifest["label"])
    ordered = [c for c in manifest.attrs.get("classes", ()) if c in labels]
    return ordered + sorted(labels - set(ordered))


def speaker_label_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Utterances per speaker (rows) and label (columns), with ``total`` row and column.

    Labels are in the manifest's class order (``attrs["classes"]``) when it has one, else
    sorted; speakers are sorted.
    """
    if len(manifest) == 0:
        return pd.DataFrame(index=pd.Index([], name="speaker"), columns=pd.Index(["total"], name="label"))
    table = pd.crosstab(
        manifest["speaker"].astype(str), manifest["label"].astype(str), margins=True, margins_name="total"
    )
    table = table[[*_label_order(manifest), "total"]]
    table.index.name, table.columns.name = "speaker", "label"
    return table


def describe_manifest(manifest: pd.DataFrame) -> str:
    """A readable multi-line summary of a manifest, with loud warnings for confounds.

    Lists utterances per label and per speaker (:func:`speaker_label_table`), the total
    duration, and a ``WARNING:`` line for each speaker/label confound: a speaker with only
    one label, a label recorded by only one speaker, speakers with a single file.
    """
    name = manifest.attrs.get("corpus", "manifest")
    n = len(manifest)
    if n == 0:
        return f"{name}: empty manifest (0 utterances)"
    speakers = manifest["speaker"].astype(str)
    labels = manifest["label"].astype(str)
    n_spk, n_lab = speakers.nunique(), labels.nunique()
    head = (
        f"{name}: {n} utterance{'s' if n != 1 else ''}, {n_spk} speaker{'s' if n_spk != 1 else ''}, "
        f"{n_lab} label{'s' if n_lab != 1 else ''}"
    )
    if "duration" in manifest and manifest["duration"].notna().any():
        d = manifest["duration"].astype(float)
        head += (
            f", {d.sum() / 60:.1f} min of audio "
            f"(mean {d.mean():.2f} s, min {d.min():.2f} s, max {d.max():.2f} s)"
        )
    lines = [head, "", "utterances per label:"]
    counts = labels.value_counts()
    order = _label_order(manifest)
    width = max(len(label) for label in order)
    for label in order:
        lines.append(f"  {label:<{width}}  {counts[label]:>6}  {counts[label] / n:6.1%}")
    lines += ["", "utterances per speaker and label:", speaker_label_table(manifest).to_string()]

    per_speaker = pd.DataFrame({"speaker": speakers, "label": labels}).groupby("speaker")["label"]
    files = per_speaker.size()
    one_label = per_speaker.nunique()
    single_file = sorted(files[files == 1].index)
    single_label = sorted(s for s in one_label[one_label == 1].index if files[s] > 1)
    per_label = pd.DataFrame({"speaker": speakers, "label": labels}).groupby("label")["speaker"].unique()
    lone_labels = sorted(label for label, spk in per_label.items() if len(spk) == 1)

    all_labels = set(order)
    partial = [
        f"{s} (no {', '.join(label for label in order if label not in set(labels[speakers == s]))})"
        for s in sorted(files.index)
        if 1 < one_label[s] < len(all_labels)
    ]

    flags = []
    if single_label:
        details = [f"{s} ({labels[speakers == s].iloc[0]}, {files[s]} files)" for s in single_label]
        flags.append(f"WARNING: {len(single_label)} speaker(s) with only one label: {_some(details)}")
    if lone_labels and speakers.nunique() > 1:
        details = [f"{label} (only {per_label[label][0]})" for label in lone_labels]
        flags.append(f"WARNING: {len(lone_labels)} label(s) recorded by only one speaker: {_some(details)}")
    if single_file:
        if len(single_file) == speakers.nunique():
            flags.append(
                "WARNING: every speaker has a single file (no speaker information?): folds cannot be "
                "speaker-independent"
            )
        else:
            flags.append(f"WARNING: {len(single_file)} speaker(s) with a single file: {_some(single_file)}")
    if flags:
        lines += ["", *flags]
        lines.append(
            "NOTE: per-speaker normalisation subtracts each speaker's own statistics, so it erases "
            "the label of a speaker with one label or one file, and a label recorded by one speaker "
            "cannot be told apart from that speaker's voice; balance the data, drop those speakers, "
            "or normalise globally."
        )
    if partial:
        lines += [
            "",
            f"NOTE: {len(partial)} speaker(s) without every label: {_some(partial)}; their "
            "per-speaker statistics (speaker adaptation, per-speaker normalisation) come from fewer "
            "emotions than the others'",
        ]
    return "\n".join(lines)
