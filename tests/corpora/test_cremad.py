"""CREMA-D: actor_sentence_emotion_level names."""

from __future__ import annotations

import pytest

from ser.corpora import cremad
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")


def test_parses_actor_and_emotion(tmp_path):
    manifest = cremad.load(fx.make_cremad(tmp_path))
    assert len(manifest) == 36
    rows = manifest.set_index("utt_id")
    assert tuple(rows.loc["1091_IEO_NEU_LO", ["label", "speaker"]]) == ("neutral", "1091")
    assert tuple(rows.loc["1001_DFA_FEA_XX", ["label", "speaker"]]) == ("fear", "1001")
    assert manifest["gender"].isna().all() and manifest["session"].isna().all()
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(cremad.CLASSES, 6)


def test_level_x_of_older_copies_is_accepted(tmp_path):
    root = fx.make_cremad(tmp_path)
    fx.write_wav(root / "AudioWAV" / "1002_ITH_SAD_X.wav")
    assert cremad.load(root).set_index("utt_id").loc["1002_ITH_SAD_X", "label"] == "sad"


def test_bad_names_and_unknown_emotion(tmp_path):
    root = fx.make_cremad(tmp_path)
    fx.write_wav(root / "AudioWAV" / "1001_DFA_CAL_XX.wav")
    fx.write_wav(root / "AudioWAV" / "1001_ABC_ANG_XX.wav")
    fx.write_wav(root / "AudioWAV" / "1092_DFA_ANG_XX.wav")
    with pytest.raises(CorpusError) as caught:
        cremad.load(root)
    message = str(caught.value)
    assert (
        "unknown label (1):\n  AudioWAV/1001_DFA_CAL_XX.wav: label 'CAL'; expected one of ANG (angry)"
        in message
    )
    assert "  AudioWAV/1001_ABC_ANG_XX.wav: sentence 'ABC'; expected one of DFA, IEO" in message
    assert "  AudioWAV/1092_DFA_ANG_XX.wav: expected <actor>_<sentence>_<emotion>_<level>.wav" in message


def test_a_class_with_no_examples(tmp_path):
    root = fx.make_cremad(tmp_path, emotions=("ANG", "DIS", "FEA", "HAP", "NEU"))
    with pytest.raises(CorpusError, match=r"'sad' has no utterance"):
        cremad.load(root)
