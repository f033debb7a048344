"""CREMA-D, the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014).

7,442 utterances by 91 actors (``1001`` ... ``1091``), 12 English sentences in 6 emotions,
as distributed: ``AudioWAV/1001_DFA_ANG_XX.wav`` = actor, sentence, emotion, level (LO, MD,
HI, or XX for unspecified). Gender is not in the file names and is left unknown.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from ser.corpora.base import UNPARSEABLE, Record, Report, check_root, finalize, lacking, scan_audio

NAME = "cremad"
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad")
EXPECTED_COUNT = 7442
PROTOCOL = {"kind": "group_kfold", "group": "speaker", "k": 5}
LAYOUT = "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav files such as AudioWAV/1001_DFA_ANG_XX.wav"

#: Emotion code -> label.
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}

#: The 12 sentence codes.
SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")

# "X" besides "XX": copies made before 2022 name one file 1040_ITH_SAD_X.wav.
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_(LO|MD|HI|XX|X)$", re.IGNORECASE)
_EXPECTED = (
    "expected <actor>_<sentence>_<emotion>_<level>.wav such as 1001_DFA_ANG_XX.wav "
    "(actor 1001-1091, level LO, MD, HI or XX)"
)


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of CREMA-D at ``root`` (the folder holding ``AudioWAV/``, or that folder).

    Speaker ``"1001"`` ..., session None, gender None.
    """
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    for path in scan_audio(NAME, root, LAYOUT, prefer="AudioWAV"):
        match = _NAME.match(path.stem)
        if match is None or not 1001 <= int(match.group(1)) <= 1091:
            report.add(UNPARSEABLE, path, _EXPECTED)
            continue
        actor, sentence, emotion, _ = match.groups()
        if sentence.upper() not in SENTENCES:
            report.add(UNPARSEABLE, path, f"sentence {sentence!r}; expected one of {', '.join(SENTENCES)}")
            continue
        records.append(Record(str(path), path.stem, emotion.upper(), actor, None, None))
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
        shortfall=_missing_actors,
    )


def _missing_actors(manifest) -> str | None:
    """Which of the release's actors (1001-1091) a partial copy lacks."""
    return lacking(manifest["speaker"], [str(a) for a in range(1001, 1092)], "actors")
