"""IEMOCAP: labels from EmoEvaluation, the 4-class map, speakers by the person speaking."""

from __future__ import annotations

import pytest

from ser.corpora import CorpusWarning, iemocap, load_corpus
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")


def test_parses_labels_speakers_sessions(tmp_path):
    manifest = iemocap.load(fx.make_iemocap(tmp_path))
    assert len(manifest) == 36
    assert manifest["label"].value_counts().to_dict() == {"happy": 12, "neutral": 8, "angry": 8, "sad": 8}
    rows = manifest.set_index("utt_id")
    # speaker is the person speaking: an M turn in a dialog led by F, and the reverse
    assert rows.loc["Ses01F_impro01_M001", ["label", "speaker", "session", "gender"]].tolist() == [
        "happy",
        "Ses01M",
        "Ses01",
        "M",
    ]
    assert rows.loc["Ses02M_script01_1_F000", ["label", "speaker", "session", "gender"]].tolist() == [
        "neutral",
        "Ses02F",
        "Ses02",
        "F",
    ]
    assert sorted(manifest["speaker"].unique()) == ["Ses01F", "Ses01M", "Ses02F", "Ses02M"]
    assert manifest.groupby("speaker").size().to_dict() == {
        "Ses01F": 10,
        "Ses01M": 8,
        "Ses02F": 10,
        "Ses02M": 8,
    }
    # fru and xxx are left out by design, and whole-dialog recordings are not utterances
    assert not manifest["utt_id"].str.endswith(("M002", "F005")).any()
    assert not manifest["path"].str.contains("/dialog/wav/").any()
    assert manifest.attrs["classes"] == iemocap.CLASSES == ("angry", "happy", "neutral", "sad")


def test_excited_can_be_left_out(tmp_path):
    manifest = iemocap.load(fx.make_iemocap(tmp_path), merge_excited=False)
    assert len(manifest) == 28
    assert manifest["label"].value_counts()["happy"] == 4
    assert "Ses01F_impro01_M001" not in set(manifest["utt_id"])


def test_improvised_only(tmp_path):
    manifest = load_corpus("iemocap", fx.make_iemocap(tmp_path), improvised_only=True)
    assert len(manifest) == 18
    assert manifest["utt_id"].str.contains("_impro").all()


def test_count_checked_against_full_release(tmp_path):
    with pytest.warns(CorpusWarning, match=r"36 utterances, but the full release has 5531"):
        iemocap.load(fx.make_iemocap(tmp_path))
    with pytest.warns(CorpusWarning, match=r"28 utterances, but the full release has 4490"):
        iemocap.load(tmp_path, merge_excited=False)


def test_macos_resource_forks_are_ignored(tmp_path):
    root = fx.make_iemocap(tmp_path)
    fx.write_text_as_wav(root / "Session1/sentences/wav/Ses01F_impro01/._Ses01F_impro01_F000.wav")
    (root / "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07garbage")
    assert len(iemocap.load(root)) == 36


def test_wav_without_label_and_label_without_wav_are_reported(tmp_path):
    root = fx.make_iemocap(tmp_path)
    fx.write_wav(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav")
    (root / "Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_M000.wav").unlink()  # ang
    (root / "Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_M002.wav").unlink()  # fru: left out anyway
    with pytest.raises(CorpusError) as caught:
        iemocap.load(root)
    message = str(caught.value)
    assert message.startswith(f"iemocap at {root}: 2 problem(s) in 2 file(s)\n")
    assert (
        "no label line (1):\n  Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav: "
        "no line for Ses01F_impro01_F099 in Session1/dialog/EmoEvaluation/*.txt" in message
    )
    assert (
        "label line with no audio file (1):\n  Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_M000.wav: "
        "labelled 'ang' in Session2/dialog/EmoEvaluation/Ses02F_impro01.txt, but the audio file is missing"
        in message
    )
    assert "M002" not in message


def test_unknown_and_conflicting_labels(tmp_path):
    root = fx.make_iemocap(tmp_path)
    evaluation = root / "Session1/dialog/EmoEvaluation"
    with open(evaluation / "Ses01F_impro01.txt", "a") as handle:
        handle.write(fx.iemocap_line("Ses01F_impro01_F000", "sad", 99.0))  # was neu
    text = (evaluation / "Ses01M_script01_1.txt").read_text()
    (evaluation / "Ses01M_script01_1.txt").write_text(text.replace("_M004\tneu", "_M004\tzzz"))
    with pytest.raises(CorpusError) as caught:
        iemocap.load(root)
    message = str(caught.value)
    assert (
        "conflicting label lines (1):\n  Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav: "
        in message
    )
    assert "labelled 'neu' in Session1/dialog/EmoEvaluation/Ses01F_impro01.txt, 'sad' in" in message
    assert (
        "unknown label (1):\n  Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_M004.wav: label 'zzz'"
        in message
    )


def test_a_class_with_no_examples(tmp_path):
    turns = [(turn, code) for turn, code in fx.IEMOCAP_TURNS if code != "sad"]
    root = fx.make_iemocap(tmp_path, turns=turns)
    with pytest.raises(CorpusError, match=r"class with no examples \(1\):\n  'sad' has no utterance"):
        iemocap.load(root)


def test_root_without_sessions(tmp_path):
    fx.write_wav(tmp_path / "Ses01F_impro01_F000.wav")
    with pytest.raises(CorpusError, match=r"no Session1 \.\.\. Session5 folders; expected Session1"):
        iemocap.load(tmp_path)


def test_a_missing_label_file_is_named(tmp_path):
    root = fx.make_iemocap(tmp_path)
    (root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").unlink()
    with pytest.raises(CorpusError) as caught:
        iemocap.load(root)
    assert (
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav: its dialog's label file "
        "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt is missing" in str(caught.value)
    )
