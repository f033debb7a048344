"""SAVEE: both layouts, and the one- and two-letter emotion codes."""

from __future__ import annotations

import pytest

from ser.corpora import savee
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")

EXPECTED = {
    "DC_a01": "angry",
    "DC_sa01": "sad",
    "JE_su02": "surprise",
    "JK_d01": "disgust",
    "JK_n02": "neutral",
}


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_codes_and_speakers_in_both_layouts(tmp_path, layout):
    manifest = savee.load(fx.make_savee(tmp_path, layout=layout))
    assert len(manifest) == 42
    rows = manifest.set_index("utt_id")
    assert {utt: rows.loc[utt, "label"] for utt in EXPECTED} == EXPECTED
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(savee.CLASSES, 6)
    assert manifest.groupby("speaker").size().to_dict() == {"DC": 14, "JE": 14, "JK": 14}
    assert set(manifest["gender"]) == {"M"}


def test_unknown_code_and_speaker(tmp_path):
    root = fx.make_savee(tmp_path)
    fx.write_wav(root / "DC_x01.wav")
    fx.write_wav(root / "AB_a01.wav")
    with pytest.raises(CorpusError) as caught:
        savee.load(root)
    message = str(caught.value)
    assert "  DC_x01.wav: label 'x'; expected one of a (angry), d (disgust)" in message
    assert "  AB_a01.wav: speaker 'AB'; expected <speaker>_<emotion><nn>.wav" in message


def test_both_layouts_at_once_are_duplicates(tmp_path):
    root = fx.make_savee(tmp_path, speakers=("DC",))
    fx.write_wav(root / "AudioData" / "DC" / "sa01.wav")
    with pytest.raises(
        CorpusError, match=r"  AudioData/DC/sa01.wav: utterance id 'DC_sa01' is also used by DC_sa01.wav"
    ):
        savee.load(root)
