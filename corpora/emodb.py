"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005).

535 utterances by 10 actors (5 female, 5 male) speaking 10 German sentences in 7
emotions, as distributed: ``wav/03a01Fa.wav`` = speaker ``03``, text ``a01``, emotion
``F`` (German initial), version ``a``.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from ser.corpora.base import UNPARSEABLE, Record, Report, check_root, finalize, lacking, scan_audio

NAME = "emodb"
CLASSES = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
EXPECTED_COUNT = 535
PROTOCOL = {"kind": "leave_one_group_out", "group": "speaker"}
LAYOUT = "wav/<speaker><text><emotion><version>.wav files such as wav/03a01Fa.wav"

#: Emotion letter (German initial) -> label.
EMOTIONS = {
    "W": "angry",  # Wut / Ärger
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}

#: Speaker -> gender, from the corpus documentation.
SPEAKERS = {
    "03": "M",
    "08": "F",
    "09": "F",
    "10": "M",
    "11": "M",
    "12": "M",
    "13": "F",
    "14": "F",
    "15": "M",
    "16": "F",
}

_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([a-z])([a-z])$", re.IGNORECASE)


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of EmoDB at ``root`` (the folder holding ``wav/``, or ``wav/`` itself).

    Speaker ``"03"`` ..., session None, gender from the corpus documentation.
    """
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    for path in scan_audio(NAME, root, LAYOUT, prefer="wav"):
        match = _NAME.match(path.stem)
        if match is None or match.group(1) not in SPEAKERS:
            report.add(
                UNPARSEABLE,
                path,
                "expected <speaker><text><emotion><version>.wav such as 03a01Fa.wav, with speaker one of "
                + " ".join(SPEAKERS),
            )
            continue
        speaker, _, emotion, _ = match.groups()
        records.append(Record(str(path), path.stem, emotion.upper(), speaker, None, SPEAKERS[speaker]))
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
        shortfall=_missing_speakers,
    )


def _missing_speakers(manifest) -> str | None:
    """Which of the release's 10 speakers a partial copy lacks."""
    return lacking(manifest["speaker"], list(SPEAKERS), "speakers")
