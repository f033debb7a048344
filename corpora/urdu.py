"""URDU, an Urdu emotional speech corpus (Latif et al., 2018), from talk shows.

400 utterances by 38 speakers (27 male, 11 female) in 4 emotions, as distributed:
``Angry/SM1_F1_A01.wav`` = speaker ``SM1`` (S, gender M/F, number), file, emotion letter
(A angry, H happy, N neutral, S sad) and number. The letter must agree with the folder.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from ser.corpora.base import UNPARSEABLE, Record, Report, check_root, finalize, lacking, scan_audio

NAME = "urdu"
CLASSES = ("angry", "happy", "neutral", "sad")
EXPECTED_COUNT = 400
PROTOCOL = {"kind": "group_kfold", "group": "speaker", "k": 5}
LAYOUT = "Angry|Happy|Neutral|Sad/S<gender><id>_F<nn>_<emotion><nn>.wav files such as Angry/SM1_F1_A01.wav"

#: Emotion letter -> label.
EMOTIONS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}

LABEL_DISAGREES = "label disagrees with folder"

_NAME = re.compile(r"^(S([MF])\d+)_F\d+_([A-Z])\d+$", re.IGNORECASE)


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of URDU at ``root``.

    Speaker ``"SM1"`` ..., session None, gender from the speaker's second letter.
    """
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    folders = {label: letter for letter, label in EMOTIONS.items()}
    for path in scan_audio(NAME, root, LAYOUT):
        match = _NAME.match(path.stem)
        if match is None:
            report.add(
                UNPARSEABLE, path, "expected S<M|F><id>_F<nn>_<A|H|N|S><nn>.wav such as SM1_F1_A01.wav"
            )
            continue
        speaker, gender, letter = (g.upper() for g in match.groups())
        folder_letter = folders.get(path.parent.name.lower())
        if folder_letter is not None and letter in EMOTIONS and letter != folder_letter:
            report.add(
                LABEL_DISAGREES,
                path,
                f"emotion letter {letter} ({EMOTIONS[letter]}) in a {path.parent.name} folder; expected "
                f"{folder_letter}",
            )
            continue
        records.append(Record(str(path), path.stem, letter, speaker, None, gender))
    return finalize(
        NAME,
        root,
        records,
        report,
        classes=CLASSES,
        label_map=EMOTIONS,
        expected_count=EXPECTED_COUNT,
        skip_bad=skip_bad,
        find_unusable=find_unusable,
        shortfall=_missing_classes,
    )


def _missing_classes(manifest) -> str | None:
    """Which emotions (the release's folders) a partial copy holds fewer than 100 files of."""
    return lacking(manifest["label"], CLASSES, "classes", per_group=EXPECTED_COUNT // len(CLASSES))
