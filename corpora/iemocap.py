"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008).

Five sessions of dyadic conversations, each between one actress and one actor, as
distributed: ``Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav``, labelled by
lines of ``Session1/dialog/EmoEvaluation/Ses01F_impro01.txt`` such as::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

The usual 4-class set keeps neutral, happy (happy and excited), angry and sad: 5,531
utterances. Other categories (frustrated, surprised, fearful, disgusted, other, no
agreement ``xxx``) are left out by design.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ser.corpora.base import (
    UNPARSEABLE,
    Record,
    Report,
    check_bool,
    check_root,
    finalize,
    find_audio,
    lacking,
    no_audio_error,
    relative,
)
from ser.errors import CorpusError

NAME = "iemocap"
CLASSES = ("angry", "happy", "neutral", "sad")
EXPECTED_COUNT = 5531
PROTOCOL = {"kind": "leave_one_group_out", "group": "session"}
LAYOUT = (
    "Session1 ... Session5/sentences/wav/<dialog>/<utterance>.wav, labelled in "
    "Session*/dialog/EmoEvaluation/<dialog>.txt"
)

#: Utterances in the full release for (improvised_only, merge_excited); None where unknown.
EXPECTED_COUNTS = {(False, True): 5531, (False, False): 4490}

#: Category code of the EmoEvaluation files -> label; None: left out of the class set.
CATEGORIES = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "happy",
    "ang": "angry",
    "sad": "sad",
    "fru": None,
    "sur": None,
    "fea": None,
    "dis": None,
    "oth": None,
    "xxx": None,
}

NO_LABEL = "no label line"
NO_AUDIO = "label line with no audio file"
CONFLICTING = "conflicting label lines"

_SESSION = re.compile(r"^session(\d+)$", re.IGNORECASE)
_UTT = re.compile(r"^(Ses(\d\d))[FM]_(.+)_([FM])\d+$")
_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(Ses\S+)\s+(\S+)\s+\[")


def _read_labels(session: Path) -> dict[str, list[tuple[str, Path]]]:
    """Utterance id -> every distinct (category code, label file) in one session's EmoEvaluation."""
    labels: dict[str, list[tuple[str, Path]]] = {}
    folder = session / "dialog" / "EmoEvaluation"
    if not folder.is_dir():
        return labels
    for txt in sorted(folder.glob("*.txt")):
        if txt.name.startswith(".") or not txt.is_file():
            continue
        with open(txt, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = _LINE.match(line)
                if match is None:
                    continue
                found = labels.setdefault(match.group(1), [])
                code = match.group(2).lower()
                if all(code != known for known, _ in found):
                    found.append((code, txt))
    return labels


def load(
    root: str | os.PathLike,
    *,
    skip_bad: bool = False,
    find_unusable=None,
    improvised_only: bool = False,
    merge_excited: bool = True,
) -> pd.DataFrame:
    """Manifest of IEMOCAP at ``root`` (the folder holding ``Session1`` ... ``Session5``).

    Parameters
    ----------
    improvised_only : bool
        Keep only the improvised dialogs (``*_impro*``), leaving out the scripted ones.
    merge_excited : bool
        Count excited (``exc``) as happy, the usual practice; False leaves excited out.

    Speaker is the session and the gender of the person speaking (``Ses01F_impro01_M003``
    -> ``"Ses01M"``), session ``"Ses01"``, gender ``"F"``/``"M"``.
    """
    check_bool("improvised_only", improvised_only)
    check_bool("merge_excited", merge_excited)
    root = check_root(NAME, root, LAYOUT)
    sessions = sorted(
        (d for d in root.iterdir() if d.is_dir() and _SESSION.match(d.name)),
        key=lambda d: int(_SESSION.match(d.name).group(1)),
    )
    if not sessions:
        raise CorpusError(f"{NAME} at {root}: no Session1 ... Session5 folders; expected {LAYOUT}")
    categories = dict(CATEGORIES)
    if not merge_excited:
        categories["exc"] = None

    def wanted(dialog: str) -> bool:
        return not improvised_only or dialog.lower().startswith("impro")

    report = Report(NAME, root)
    records = []
    n_audio = 0
    for session in sessions:
        labels = _read_labels(session)
        wav_root = session / "sentences" / "wav"
        files = find_audio(wav_root)
        n_audio += len(files)
        seen = set()
        for path in files:
            match = _UTT.match(path.stem)
            if match is None:
                report.add(
                    UNPARSEABLE,
                    path,
                    "expected <session><F|M>_<dialog>_<F|M><nnn>.wav such as Ses01F_impro01_F000.wav",
                )
                continue
            speaker_session, _, dialog, gender = match.groups()
            if not wanted(dialog):
                continue
            seen.add(path.stem)
            if path.stem not in labels:
                evaluation = f"{session.name}/dialog/EmoEvaluation"
                dialog_file = session / "dialog" / "EmoEvaluation" / f"{path.parent.name}.txt"
                reason = (
                    f"no line for {path.stem} in {evaluation}/*.txt"
                    if dialog_file.is_file() or path.parent == wav_root
                    else f"its dialog's label file {evaluation}/{dialog_file.name} is missing; expected "
                    "the release's EmoEvaluation files"
                )
                report.add(NO_LABEL, path, reason)
                continue
            if len(labels[path.stem]) > 1:
                lines = ", ".join(f"{code!r} in {relative(txt, root)}" for code, txt in labels[path.stem])
                report.add(CONFLICTING, path, f"labelled {lines}; expected one label")
                continue
            code = labels[path.stem][0][0]
            records.append(
                Record(str(path), path.stem, code, f"{speaker_session}{gender}", speaker_session, gender)
            )
        for utt, [(code, txt), *_] in labels.items():
            match = _UTT.match(utt)
            if utt in seen or match is None or not wanted(match.group(3)):
                continue
            if categories.get(code, code) is None:
                continue  # a category left out anyway: its missing file changes nothing
            dialog = utt.rsplit("_", 1)[0]
            report.add(
                NO_AUDIO,
                wav_root / dialog / f"{utt}.wav",
                f"labelled {code!r} in {relative(txt, root)}, but the audio file is missing",
            )
    if n_audio == 0:
        raise no_audio_error(NAME, root, LAYOUT)
    return finalize(
        NAME,
        root,
        records,
        report,
        classes=CLASSES,
        label_map=categories,
        expected_count=EXPECTED_COUNTS.get((improvised_only, merge_excited)),
        skip_bad=skip_bad,
        find_unusable=find_unusable,
        shortfall=_missing_sessions,
    )


def _missing_sessions(manifest) -> str | None:
    """Which of the release's 5 sessions a partial copy lacks."""
    return lacking(manifest["session"], [f"Ses{n:02d}" for n in range(1, 6)], "sessions")
