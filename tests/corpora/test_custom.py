"""Your own data: a CSV manifest or one folder per class."""

from __future__ import annotations

import pytest

from ser.corpora import CorpusWarning, custom, load_corpus
from ser.errors import CorpusError
from tests.corpora import fixtures as fx


def _csv(tmp_path, text):
    path = tmp_path / "data" / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_with_speakers(tmp_path):
    for name in ("a/1.wav", "a/2.wav", "b/3.flac"):
        fx.write_wav(tmp_path / "data" / name)
    absolute = fx.write_wav(tmp_path / "elsewhere" / "4.wav")
    csv = _csv(
        tmp_path,
        "path,label,speaker,session,notes\n"
        "a/1.wav, Happy ,spk1,day1,whatever\n"
        "a/2.wav,sad,spk1,,\n"
        "b/3.flac,Frustrated,spk2,day2,x\n"
        f"{absolute},sad,spk2,,\n",
    )
    manifest = load_corpus("custom", csv)
    assert manifest["path"].tolist() == [
        str(tmp_path / "data/a/1.wav"),
        str(tmp_path / "data/a/2.wav"),
        str(tmp_path / "data/b/3.flac"),
        str(absolute),
    ]
    assert manifest["utt_id"].tolist()[:3] == ["a/1", "a/2", "b/3"]
    assert manifest["label"].tolist() == ["happy", "sad", "frustrated", "sad"]
    assert manifest["speaker"].tolist() == ["spk1", "spk1", "spk2", "spk2"]
    assert manifest["session"].tolist() == ["day1", None, "day2", None]
    assert manifest["gender"].tolist() == [None] * 4
    assert manifest.attrs["classes"] == ("frustrated", "happy", "sad")
    assert custom.CLASSES == ()


def test_csv_without_speakers_warns(tmp_path):
    for name in ("1.wav", "2.wav"):
        fx.write_wav(tmp_path / "data" / name)
    csv = _csv(tmp_path, "label,path\nhappy,1.wav\nsad,2.wav\n")
    with pytest.warns(CorpusWarning, match="no speaker information.*cannot be speaker-independent"):
        manifest = custom.load(csv)
    assert manifest["speaker"].tolist() == manifest["utt_id"].tolist() == ["1", "2"]


@pytest.mark.filterwarnings("ignore:.*single file:UserWarning")
def test_csv_written_by_ser_reads_back(tmp_path):
    path = fx.write_wav(tmp_path / "data" / "x.wav")
    csv = _csv(
        tmp_path, f"path,utt_id,label,speaker,session,gender,duration\n{path},utt7,angry,s1,,female,0.3\n"
    )
    row = custom.load(csv).iloc[0]
    assert (row["utt_id"], row["gender"], row["duration"]) == ("utt7", "F", pytest.approx(0.3))


def test_csv_missing_columns(tmp_path):
    csv = _csv(tmp_path, "file,emotion,speaker\n1.wav,happy,s1\n")
    with pytest.raises(
        CorpusError, match=r"missing column\(s\) path, label \(found: file, emotion, speaker\)"
    ):
        custom.load(csv)


def test_csv_that_is_not_a_csv(tmp_path):
    csv = _csv(tmp_path, "")
    with pytest.raises(CorpusError, match=r"cannot read as CSV"):
        custom.load(csv)


def test_csv_row_problems_reported_together(tmp_path):
    fx.write_wav(tmp_path / "data" / "1.wav")
    fx.write_wav(tmp_path / "data" / "2.wav")
    csv = _csv(
        tmp_path,
        "path,label,speaker,gender\n1.wav,happy,s1,F\n2.wav,,s1,\n,sad,s2,\nmissing.wav,sad,s2,\n1.wav,happy,s1,F\n2.wav,sad,s2,x\n",
    )
    with pytest.raises(CorpusError) as caught:
        custom.load(csv)
    message = str(caught.value)
    assert message.startswith(f"custom at {csv}: 5 problem(s) in 3 file(s)\n")
    assert "  2.wav: line 3 of manifest.csv: empty label" in message
    assert "  line 4 of manifest.csv: empty path" in message
    assert "  2.wav: line 7 of manifest.csv: gender 'x'; expected F, M or empty" in message
    assert "  missing.wav: file not found" in message
    # a file listed twice is named by the CSV line that repeats it
    assert (
        "  1.wav: line 6 of manifest.csv: the file is listed again (first on line 2); expected each file once"
        in message
    )


def test_class_folders(tmp_path):
    root = fx.make_class_folders(tmp_path)
    with pytest.warns(CorpusWarning, match="no speaker information"):
        manifest = custom.load(root)
    assert manifest["label"].value_counts().to_dict() == {"happy": 3, "sad": 2, "angry": 2}
    assert "Angry/take2/001" in set(manifest["utt_id"])
    assert (manifest["speaker"] == manifest["utt_id"]).all()
    assert manifest.attrs["classes"] == ("angry", "happy", "sad")


def test_empty_class_folder_is_a_problem(tmp_path):
    root = fx.make_class_folders(tmp_path)
    (root / "fear").mkdir()
    with pytest.raises(CorpusError, match=r"class with no examples \(1\):\n  'fear' has no utterance"):
        with pytest.warns(CorpusWarning):
            custom.load(root)


@pytest.mark.filterwarnings("ignore:.*single file:UserWarning")
def test_trailing_commas_are_fine_but_extra_fields_are_refused(tmp_path):
    for name in ("1.wav", "2.wav"):
        fx.write_wav(tmp_path / "data" / name)
    csv = _csv(tmp_path, "path,label,speaker\n1.wav,happy,s1,\n2.wav,sad,s2,\n")  # a spreadsheet's export
    manifest = custom.load(csv)
    assert manifest["label"].tolist() == ["happy", "sad"] and manifest["speaker"].tolist() == ["s1", "s2"]
    csv = _csv(tmp_path, "path,label,speaker\n1.wav,happy,s1\n2.wav,sad,s2,oops\n")
    with pytest.raises(CorpusError, match=r"line 3 has 4 fields but the header has 3 \(path,label,speaker\)"):
        custom.load(csv)


def test_a_folder_with_one_class_is_refused_with_a_hint(tmp_path):
    root = tmp_path / "data"
    for name in ("1.wav", "2.wav"):
        fx.write_wav(root / "clips" / name)
    with pytest.raises(CorpusError, match=r"audio in 1 class folder\(s\) \(clips\); expected one subfolder"):
        custom.load(root)
    (root / "manifest.csv").write_text("path,label\nclips/1.wav,happy\nclips/2.wav,sad\n")
    with pytest.raises(
        CorpusError, match=r"found manifest.csv here: to use a CSV manifest, pass the file itself"
    ):
        custom.load(root)
