"""URDU: speaker and gender from the name; the emotion letter must agree with the folder."""

from __future__ import annotations

import pytest

from ser.corpora import urdu
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")


def test_parses_speaker_gender_emotion(tmp_path):
    manifest = urdu.load(fx.make_urdu(tmp_path))
    assert len(manifest) == 24
    rows = manifest.set_index("utt_id")
    assert tuple(rows.loc["SM1_F1_A01", ["label", "speaker", "gender"]]) == ("angry", "SM1", "M")
    assert tuple(rows.loc["SF2_F2_H02", ["label", "speaker", "gender"]]) == ("happy", "SF2", "F")
    assert tuple(rows.loc["SM12_F3_S01", ["label", "speaker", "gender"]]) == ("sad", "SM12", "M")
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(urdu.CLASSES, 6)


def test_letter_must_agree_with_folder(tmp_path):
    root = fx.make_urdu(tmp_path)
    fx.write_wav(root / "Happy" / "SM1_F9_A01.wav")
    fx.write_wav(root / "Sad" / "SM1_F9_Q01.wav")
    with pytest.raises(CorpusError) as caught:
        urdu.load(root)
    message = str(caught.value)
    assert (
        "label disagrees with folder (1):\n  Happy/SM1_F9_A01.wav: emotion letter A (angry) in a Happy folder; "
        "expected H" in message
    )
    assert "unknown label (1):\n  Sad/SM1_F9_Q01.wav: label 'Q'" in message
