"""RAVDESS, speech part (Livingstone & Russo, PLoS ONE 2018).

1,440 utterances by 24 actors (``Actor_01`` ... ``Actor_24``; odd male, even female), two
English statements in 8 emotions, as distributed: ``Actor_12/03-01-05-02-01-01-12.wav`` =
modality (03 audio-only) - vocal channel (01 speech) - emotion - intensity - statement -
repetition - actor. Song (vocal channel 02) and video files (modality 01/02) are skipped.
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
    lacking,
    relative,
    scan_audio,
    walk_visible,
)

NAME = "ravdess"
#: The data licence, which models trained on it keep (ser.training.init).
LICENCE = "CC BY-NC-SA 4.0 (RAVDESS, Livingstone & Russo 2018): non-commercial, share-alike"
CLASSES = ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EXPECTED_COUNT = 1440
PROTOCOL = {"kind": "group_kfold", "group": "speaker", "k": 6}
LAYOUT = "Actor_01 ... Actor_24/MM-VC-EE-II-SS-RR-AA.wav files such as Actor_12/03-01-05-02-01-01-12.wav"

#: Emotion code -> label.
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}

EMPTY_ACTOR = "actor folder with no audio file"

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_ACTOR_DIR = re.compile(r"^actor_(\d+)$", re.IGNORECASE)
_EXPECTED = "expected MM-VC-EE-II-SS-RR-AA.wav such as 03-01-05-02-01-01-12.wav"


def load(
    root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None, merge_calm: bool = False
) -> pd.DataFrame:
    """Manifest of the RAVDESS speech files under ``root``.

    Parameters
    ----------
    merge_calm : bool
        Label calm as neutral (7 classes) instead of keeping it (8 classes).

    Speaker ``"Actor_01"`` ..., session None, gender ``"M"`` for odd actors.
    """
    check_bool("merge_calm", merge_calm)
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    files = scan_audio(NAME, root, LAYOUT)
    # an actor folder without a single audio file is a failed copy, not an actor to skip
    # quietly: a problem of the corpus as a whole (as a class with no utterance is), listed
    # with the others but not counted as a file
    for folder in _empty_actor_folders(root, files):
        report.add(
            EMPTY_ACTOR,
            None,
            f"{relative(folder, root)}: no audio file; expected its actor's "
            f"{EXPECTED_COUNT // 24} speech files (an interrupted copy or extraction?)",
        )
    for path in files:
        match = _NAME.match(path.stem)
        if match is None:
            report.add(UNPARSEABLE, path, _EXPECTED)
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
        if modality in ("01", "02") or channel == "02":
            continue  # video or song: not part of the speech corpus
        fields = {
            "modality": (modality, ("03",)),
            "vocal channel": (channel, ("01",)),
            "intensity": (intensity, ("01", "02")),
            "statement": (statement, ("01", "02")),
            "repetition": (repetition, ("01", "02")),
        }
        wrong = [f"{field} {value}" for field, (value, valid) in fields.items() if value not in valid]
        if not "01" <= actor <= "24":
            wrong.append(f"actor {actor}")
        if wrong:
            report.add(UNPARSEABLE, path, f"{', '.join(wrong)} out of range; {_EXPECTED}")
            continue
        folder = _ACTOR_DIR.match(path.parent.name)
        if folder is not None and int(folder.group(1)) != int(actor):
            report.add(
                UNPARSEABLE,
                path,
                f"actor {actor} in the file name but folder {path.parent.name}; expected each file "
                "in its actor's folder (misplaced, or renamed?)",
            )
            continue
        gender = "M" if int(actor) % 2 else "F"
        records.append(Record(str(path), path.stem, emotion, f"Actor_{actor}", None, gender))
    emotions = dict(EMOTIONS)
    classes = CLASSES
    if merge_calm:
        emotions["02"] = "neutral"
        classes = tuple(c for c in CLASSES if c != "calm")
    return finalize(
        NAME,
        root,
        records,
        report,
        classes=classes,
        label_map=emotions,
        expected_count=EXPECTED_COUNT,
        skip_bad=skip_bad,
        find_unusable=find_unusable,
        shortfall=_missing_actors,
    )


def _empty_actor_folders(root: Path, files: list[Path]) -> list[Path]:
    """The ``Actor_NN`` folders under ``root`` (at any depth, hidden folders aside, as
    :func:`corpora.base.find_audio` scans) with no audio file in them, sorted."""
    holding = {folder for path in files for folder in path.parents}
    empty = [
        Path(dirpath) / d
        for dirpath, dirnames, _ in walk_visible(root)
        for d in dirnames
        if _ACTOR_DIR.match(d) and Path(dirpath) / d not in holding
    ]
    return sorted(empty, key=lambda p: p.as_posix())


def _missing_actors(manifest) -> str | None:
    """Which actors a partial copy lacks, or holds fewer files of than the release's 60."""
    actors = [f"Actor_{a:02d}" for a in range(1, 25)]
    return lacking(manifest["speaker"], actors, "actors", per_group=EXPECTED_COUNT // 24)
