"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, 2010).

2,800 utterances: 200 target words in the carrier phrase "Say the word ...", spoken by two
actresses (``OAF`` older, ``YAF`` younger) in 7 emotions, as distributed:
``OAF_angry/OAF_back_angry.wav``. The published names spell emotions several ways
(``Fear``/``fear``, ``Pleasant_surprise``, ``pleasant_surprised``, ``ps``, ``Sad``); they are
read case-insensitively, from the file name's trailing token(s), else from the folder.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from ser.corpora.base import UNPARSEABLE, Record, Report, check_root, finalize, lacking, scan_audio

NAME = "tess"
#: The data licence, which models trained on it keep (ser.training.init).
LICENCE = (
    "CC BY-NC-ND 4.0 (TESS, Dupuis & Pichora-Fuller 2010; University of Toronto record; some "
    "mirrors say CC BY-NC 4.0): non-commercial"
)
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EXPECTED_COUNT = 2800
PROTOCOL = {"kind": "leave_one_group_out", "group": "speaker"}
LAYOUT = "<OAF|YAF>_<emotion>/<OAF|YAF>_<word>_<emotion>.wav files such as OAF_angry/OAF_back_angry.wav"

#: Emotion token (lower-cased) -> label, every spelling of the published release.
EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "ps": "surprise",
}

SPEAKERS = ("OAF", "YAF")

LABEL_DISAGREES = "label disagrees with folder"

# "OA_": the release's one short speaker prefix (OAF_neutral/OA_bite_neutral.wav)
_FILE = re.compile(r"^(OAF|YAF|OA|YA)_([^_]+)(?:_(.+))?$", re.IGNORECASE)
_FOLDER = re.compile(r"^(OAF|YAF)_(.+)$", re.IGNORECASE)


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None) -> pd.DataFrame:
    """Manifest of TESS at ``root``.

    Speaker ``"OAF"`` or ``"YAF"``, session None, gender ``"F"``.
    """
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    for path in scan_audio(NAME, root, LAYOUT):
        match = _FILE.match(path.stem)
        if match is None:
            report.add(
                UNPARSEABLE, path, "expected <OAF|YAF>_<word>_<emotion>.wav such as OAF_back_angry.wav"
            )
            continue
        speaker, _, token = match.groups()
        token = (token or "").lower()
        folder = _FOLDER.match(path.parent.name)
        folder_token = folder.group(2).lower() if folder is not None else ""
        if token in EMOTIONS and folder_token in EMOTIONS and EMOTIONS[token] != EMOTIONS[folder_token]:
            report.add(
                LABEL_DISAGREES,
                path,
                f"file name says {token!r} ({EMOTIONS[token]}) but folder {path.parent.name} says "
                f"{folder_token!r} ({EMOTIONS[folder_token]})",
            )
            continue
        if not token and not folder_token:
            report.add(UNPARSEABLE, path, f"no emotion in the file name nor in its folder; expected {LAYOUT}")
            continue
        # the file name's token decides; an unknown one is reported as such (finalize), not
        # replaced by the folder's; only a name without a token takes the folder's emotion
        label = token or folder_token
        speaker = speaker.upper() if len(speaker) == 3 else f"{speaker.upper()}F"
        records.append(Record(str(path), path.stem, label, speaker, None, "F"))
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
        shortfall=_missing_sets,
    )


def _missing_sets(manifest) -> str | None:
    """Which speaker and emotion sets (the release's folders) a partial copy lacks, or holds
    fewer files of than the release's 200."""
    sets = manifest["speaker"] + " " + manifest["label"]
    expected = [f"{speaker} {label}" for speaker in SPEAKERS for label in CLASSES]
    return lacking(sets, expected, "speaker and emotion sets", per_group=EXPECTED_COUNT // len(expected))
