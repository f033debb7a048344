"""EmoDB: names like 03a01Fa.wav, German emotion initials, documented genders."""

from __future__ import annotations

import pytest

from ser.corpora import emodb
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")


def test_parses_speaker_emotion_gender(tmp_path):
    manifest = emodb.load(fx.make_emodb(tmp_path))
    assert len(manifest) == 42
    rows = manifest.set_index("utt_id")
    expected = {
        "03a01Wa": ("angry", "03", "M"),
        "03a01La": ("boredom", "03", "M"),
        "08b02Ea": ("disgust", "08", "F"),
        "08a01Aa": ("fear", "08", "F"),
        "10a01Fa": ("happy", "10", "M"),
        "10b02Ta": ("sad", "10", "M"),
        "08a01Na": ("neutral", "08", "F"),
    }
    for utt_id, values in expected.items():
        assert tuple(rows.loc[utt_id, ["label", "speaker", "gender"]]) == values
    assert manifest["session"].isna().all()
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(emodb.CLASSES, 6)


def test_wav_folder_is_optional(tmp_path):
    root = fx.make_emodb(tmp_path)
    assert len(emodb.load(root / "wav")) == 42


def test_unknown_emotion_and_speaker(tmp_path):
    root = fx.make_emodb(tmp_path)
    fx.write_wav(root / "wav" / "03a01Xa.wav")
    fx.write_wav(root / "wav" / "07a01Wa.wav")
    with pytest.raises(CorpusError) as caught:
        emodb.load(root)
    message = str(caught.value)
    assert (
        "unknown label (1):\n  wav/03a01Xa.wav: label 'X'; expected one of W (angry), L (boredom)" in message
    )
    assert (
        "file name does not parse (1):\n  wav/07a01Wa.wav: expected <speaker><text><emotion><version>.wav"
        in message
    )


def test_a_class_with_no_examples(tmp_path):
    root = fx.make_emodb(tmp_path, emotions="WEAFTN")
    with pytest.raises(CorpusError, match=r"^emodb at .*: 1 problem\(s\)\n(.|\n)*'boredom' has no utterance"):
        emodb.load(root)


def test_duplicate_utterance_ids(tmp_path):
    root = fx.make_emodb(tmp_path)
    fx.write_wav(root / "wav" / "backup" / "03a01Wa.wav")
    with pytest.raises(CorpusError) as caught:
        emodb.load(root)
    message = str(caught.value)
    assert "2 problem(s) in 2 file(s)" in message
    assert "  wav/03a01Wa.wav: utterance id '03a01Wa' is also used by wav/backup/03a01Wa.wav" in message
    assert "  wav/backup/03a01Wa.wav: utterance id '03a01Wa' is also used by wav/03a01Wa.wav" in message
