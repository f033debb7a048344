"""RAVDESS speech: numeric file names, calm merging, song/video skipped, the real corpus."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ser.corpora import CorpusWarning, load_corpus, ravdess
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")

REAL = Path("/work/shared/corpora/ravdess")


def test_parses_emotion_actor_gender(tmp_path):
    manifest = ravdess.load(fx.make_ravdess(tmp_path))
    assert len(manifest) == 48
    rows = manifest.set_index("utt_id")
    assert tuple(rows.loc["03-01-05-01-02-01-03", ["label", "speaker", "gender"]]) == (
        "angry",
        "Actor_03",
        "M",
    )
    assert tuple(rows.loc["03-01-02-01-01-01-02", ["label", "speaker", "gender"]]) == (
        "calm",
        "Actor_02",
        "F",
    )
    assert set(manifest["label"]) == set(ravdess.CLASSES)
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(ravdess.CLASSES, 6)
    assert manifest["session"].isna().all()


def test_empty_actor_folders_are_listed_with_the_other_problems(tmp_path):
    root = fx.make_ravdess(tmp_path)
    (root / "Actor_09").mkdir()
    (root / "nested" / "actor_10").mkdir(parents=True)
    (root / ".trash" / "Actor_11").mkdir(parents=True)  # hidden: not scanned, not reported
    fx.write_wav(root / "Actor_01" / "hello.wav")
    with pytest.raises(CorpusError) as caught:
        ravdess.load(root)
    lines = str(caught.value).splitlines()
    # one list; a folder is a problem of the corpus, not a file
    assert lines[0] == f"ravdess at {root}: 3 problem(s) in 1 file(s)"
    at = lines.index("actor folder with no audio file (2):")
    assert lines[at + 1 : at + 3] == [
        "  Actor_09: no audio file; expected its actor's 60 speech files (an interrupted copy or extraction?)",
        "  nested/actor_10: no audio file; expected its actor's 60 speech files (an interrupted copy or extraction?)",
    ]
    assert ".trash" not in str(caught.value)
    assert "; actors missing: Actor_04, Actor_05, " in lines[-2]
    # --skip-bad: the same list once, and the counts of files add up
    with pytest.warns(CorpusWarning) as caught:
        manifest = ravdess.load(root, skip_bad=True)
    (text,) = [str(w.message) for w in caught if "problem(s)" in str(w.message)]
    assert text.startswith(f"ravdess at {root}: 3 problem(s) in 1 file(s)\n")
    assert "nested/actor_10: no audio file" in text
    assert text.endswith(
        "--skip-bad: skipped the 1 file(s) listed out of 49; using the remaining 48 utterance(s)."
    )
    assert len(manifest) == 48


def test_an_actor_folder_holding_only_a_linked_folder_of_audio_is_not_empty(tmp_path):
    root = fx.make_ravdess(tmp_path / "ravdess", actors=(1, 2))
    fx.make_ravdess(tmp_path / "elsewhere", actors=(3,))
    (root / "Actor_03").mkdir()
    (root / "Actor_03" / "audio").symlink_to(tmp_path / "elsewhere" / "Actor_03")
    assert len(ravdess.load(root)) == 48


def test_merge_calm(tmp_path):
    manifest = load_corpus("ravdess", fx.make_ravdess(tmp_path), merge_calm=True)
    assert manifest["label"].value_counts()["neutral"] == 12
    assert "calm" not in set(manifest["label"])
    assert manifest.attrs["classes"] == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def test_song_and_video_files_are_skipped_silently(tmp_path):
    root = fx.make_ravdess(tmp_path)
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(3, 1, channel=2))  # song
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(3, 1, modality=1))  # audio track of a video
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*the full release has")
        assert len(ravdess.load(root)) == 48


def test_bad_fields_and_unknown_emotion(tmp_path):
    root = fx.make_ravdess(tmp_path)
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(9, 1))
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(3, 1, modality=4))
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(3, 2, repetition=3))  # actor 02 in Actor_01
    fx.write_wav(root / "Actor_25" / fx.ravdess_name(3, 25))
    fx.write_wav(root / "Actor_01" / fx.ravdess_name(4, 2))  # a valid name in another actor's folder
    with pytest.raises(CorpusError) as caught:
        ravdess.load(root)
    message = str(caught.value)
    assert "5 problem(s) in 5 file(s)" in message
    assert (
        "  Actor_01/03-01-09-01-01-01-01.wav: label '09'; expected one of 01 (neutral), 02 (calm)" in message
    )
    assert "  Actor_01/04-01-03-01-01-01-01.wav: modality 04 out of range" in message
    assert "  Actor_01/03-01-03-01-01-03-02.wav: repetition 03 out of range" in message
    assert (
        "  Actor_01/03-01-04-01-01-01-02.wav: actor 02 in the file name but folder Actor_01; expected "
        "each file in its actor's folder" in message
    )
    assert "  Actor_25/03-01-03-01-01-01-25.wav: actor 25 out of range" in message


def test_a_class_with_no_examples(tmp_path):
    root = fx.make_ravdess(tmp_path, emotions=range(1, 8))
    with pytest.raises(CorpusError, match=r"'surprise' has no utterance"):
        ravdess.load(root)


def test_corpus_copied_twice(tmp_path):
    root = fx.make_ravdess(tmp_path / "ravdess", actors=(1, 2))
    fx.make_ravdess(root / "Audio_Speech_Actors_01-24", actors=(1, 2))
    with pytest.raises(CorpusError) as caught:
        ravdess.load(root)
    message = str(caught.value)
    assert message.startswith(f"ravdess at {root}: 64 problem(s) in 64 file(s)\n")
    assert "duplicate utterance id (64):" in message
    assert "is part of the corpus copied twice?" in message
    assert "  ... and 54 more" in message


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
def test_real_corpus():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no problem, no count mismatch, no confound
        manifest = load_corpus("ravdess", REAL)
    assert len(manifest) == 1440
    assert manifest["speaker"].nunique() == 24
    assert set(manifest["label"]) == set(ravdess.CLASSES)
    assert (manifest.groupby("speaker").size() == 60).all()
    assert manifest["label"].value_counts().to_dict() == {
        **dict.fromkeys(ravdess.CLASSES, 192),
        "neutral": 96,
    }
    assert manifest["gender"].value_counts().to_dict() == {"M": 720, "F": 720}
    assert manifest["duration"].sum() / 60 == pytest.approx(88.8, abs=0.05)


def test_a_file_cut_short_is_used_with_a_warning(tmp_path):
    root = fx.make_ravdess(tmp_path)
    victim = sorted((root / "Actor_01").glob("*.wav"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.warns(
        CorpusWarning, match=r"1 file\(s\) hold less audio than their headers say .*: Actor_01/"
    ):
        manifest = ravdess.load(root)
    assert str(victim) in set(manifest["path"])


def test_a_partial_copy_names_the_actors_it_lacks(tmp_path):
    root = fx.make_ravdess(tmp_path)  # 3 actors of 16 files each
    with pytest.warns(CorpusWarning, match=r"48 utterances, but the full release has 1440") as caught:
        ravdess.load(root)
    (text,) = [str(w.message) for w in caught if "the full release has" in str(w.message)]
    assert "; actors missing: Actor_04, Actor_05, " in text and "... and 11 more" in text
    assert "; actors with fewer than 60 files: Actor_01 (16), Actor_02 (16), Actor_03 (16)" in text
