"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson, 2009).

480 British English utterances by 4 male speakers (DC, JE, JK, KL) in 7 emotions, in either
of the distributed layouts: flat ``DC_a01.wav`` or ``AudioData/DC/a01.wav``. Emotion codes:
a (anger), d (disgust), f (fear), h (happiness), n (neutral), sa (sadness), su (surprise).
"""

from __future__ import annotations

import os
import re

import pandas as pd

from ser.corpora.base import UNPARSEABLE, Record, Report, check_root, finalize, lacking, scan_audio

NAME = "savee"
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EXPECTED_COUNT = 480
PROTOCOL = {"kind": "leave_one_group_out", "group": "speaker"}
LAYOUT = "files such as DC_a01.wav (flat) or AudioData/DC/a01.wav (speakers DC, JE, JK, KL)"

#: Emotion code -> label. Two-letter codes "sa"/"su" are matched whole, never as "s" + "a".
EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}

SPEAKERS = ("DC", "JE", "JK", "KL")

_FLAT = re.compile(r"^([a-z]{2})_([a-z]+)(\d\d)$", re.IGNORECASE)
_NESTED = re.compile(r"^([a-z]+)(\d\d)$", re.IGNORECASE)
_EXPECTED = (
    "expected <speaker>_<emotion><nn>.wav such as DC_sa01.wav, or <speaker>/<emotion><nn>.wav, "
    "with speaker one of DC, JE, JK, KL"
)


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of SAVEE at ``root``.

    Utterance ids are ``"DC_a01"`` in both layouts. Speaker ``"DC"`` ..., session None,
    gender ``"M"``.
    """
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    for path in scan_audio(NAME, root, LAYOUT):
        flat = _FLAT.match(path.stem)
        nested = _NESTED.match(path.stem)
        if flat is not None:
            speaker, code, number = flat.groups()
        elif nested is not None:
            speaker = path.parent.name
            code, number = nested.groups()
        else:
            report.add(UNPARSEABLE, path, _EXPECTED)
            continue
        speaker = speaker.upper()
        if speaker not in SPEAKERS:
            report.add(UNPARSEABLE, path, f"speaker {speaker!r}; {_EXPECTED}")
            continue
        code = code.lower()
        records.append(Record(str(path), f"{speaker}_{code}{number}", code, speaker, None, "M"))
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
    """Which speakers a partial copy lacks, or holds fewer files of than the release's 120."""
    return lacking(manifest["speaker"], SPEAKERS, "speakers", per_group=EXPECTED_COUNT // len(SPEAKERS))
