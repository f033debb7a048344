"""Behaviour every corpus loader shares: root checks, one error listing every problem, skip_bad."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from ser.corpora import CORPORA, CorpusWarning, load_corpus
from ser.corpora.base import COLUMNS, FIX_HINT
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*no speaker information:UserWarning"),
]


@dataclass(frozen=True)
class Case:
    name: str
    make: object  # root -> root
    rows: int  # utterances in the fixture
    bad_name: str  # a file the loader cannot parse, relative to the root
    bad_kind: str = "file name does not parse"
    options: tuple = ()


CASES = [
    Case("iemocap", fx.make_iemocap, 36, "Session1/sentences/wav/Ses01F_impro01/take 2.wav"),
    Case("emodb", fx.make_emodb, 42, "wav/recording 1.wav"),
    Case("ravdess", fx.make_ravdess, 48, "Actor_02/03-01-01-01-01-02.wav"),
    Case("cremad", fx.make_cremad, 36, "AudioWAV/1001_DFA_ANG.wav"),
    Case("tess", fx.make_tess, 42, "OAF_angry/back_angry.wav"),
    Case("savee", fx.make_savee, 42, "DC-a01.wav"),
    Case("urdu", fx.make_urdu, 24, "Angry/SM1_A01.wav"),
    Case("custom", fx.make_class_folders, 7, "loose.wav", bad_kind="not in a class folder"),
]
IDS = [case.name for case in CASES]


def test_every_corpus_has_a_case():
    assert {case.name for case in CASES} == set(CORPORA) - {"synthetic"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_loads_fixture_as_manifest(case, tmp_path):
    root = case.make(tmp_path / case.name)
    manifest = load_corpus(case.name, root)
    assert tuple(manifest.columns) == COLUMNS
    assert len(manifest) == case.rows
    assert manifest["utt_id"].is_unique
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in manifest["path"])
    assert manifest["duration"].dtype == "float64"
    assert manifest["duration"].to_numpy() == pytest.approx(0.3)
    assert set(manifest["gender"]) <= {"F", "M", None}
    assert manifest.attrs["corpus"] == case.name
    assert set(manifest.attrs["classes"]) == set(manifest["label"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missing_root(case, tmp_path):
    with pytest.raises(CorpusError, match=rf"^{case.name} at .*nowhere: corpus root not found"):
        load_corpus(case.name, tmp_path / "nowhere")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_root_without_audio(case, tmp_path):
    (tmp_path / "Session1" / "sentences" / "wav").mkdir(parents=True)  # IEMOCAP's layout, empty
    (tmp_path / "README.txt").write_text("nothing here\n")
    with pytest.raises(
        CorpusError, match=rf"^{case.name} at {re.escape(str(tmp_path))}: no audio files found"
    ):
        load_corpus(case.name, tmp_path)


def _break(case, tmp_path):
    """The fixture with a zero-byte and a text file among the good ones, and one misnamed file."""
    root = case.make(tmp_path / case.name)
    paths = sorted(load_corpus(case.name, root)["path"])
    empty, text = Path(paths[len(paths) // 3]), Path(paths[len(paths) // 2])
    fx.write_empty(empty)
    fx.write_text_as_wav(text)
    fx.write_wav(root / case.bad_name)
    return root, empty, text


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_all_problems_reported_together(case, tmp_path):
    root, empty, text = _break(case, tmp_path)
    with pytest.raises(CorpusError) as caught:
        load_corpus(case.name, root)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{case.name} at {root}: 3 problem(s) in 3 file(s)"
    assert lines[-1] == FIX_HINT
    assert f"{case.bad_kind} (1):" in lines
    assert "unreadable audio (2):" in lines
    body = "\n".join(lines)
    assert f"  {case.bad_name}: " in body
    assert f"  {empty.relative_to(root).as_posix()}: empty file (0 bytes)" in body
    assert f"  {text.relative_to(root).as_posix()}: not a readable audio file" in body


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_skip_bad_returns_the_good_rows_and_warns(case, tmp_path):
    root, empty, text = _break(case, tmp_path)
    with pytest.warns(
        CorpusWarning, match=r"3 problem\(s\) in 3 file\(s\)(.|\n)*skipped the 3 file\(s\) listed"
    ) as record:
        manifest = load_corpus(case.name, root, skip_bad=True)
    assert len(manifest) == case.rows - 2
    assert any(f"using the remaining {len(manifest)} utterance(s)" in str(w.message) for w in record)
    assert not {str(empty), str(text)} & set(manifest["path"])
    warning = next(str(w.message) for w in record if "problem(s)" in str(w.message))
    assert case.bad_name in warning


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_clean_fixture_loads_without_other_warnings(case, tmp_path):
    root = case.make(tmp_path / case.name)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        load_corpus(case.name, root)
    messages = [str(w.message) for w in record if "the full release has" not in str(w.message)]
    if case.name == "custom":  # class folders carry no speakers
        assert len(messages) == 1 and "no speaker information" in messages[0]
    else:
        assert messages == []


LACKS = {
    "iemocap": "; sessions missing: Ses03, Ses04, Ses05",
    "emodb": "; speakers missing: 09, 11, 12, 13, 14, 15, 16",
    "ravdess": "; actors missing: Actor_04, Actor_05, ",
    "cremad": "; actors missing: 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, ... and 78 more",
    "tess": "; speaker and emotion sets with fewer than 200 files: OAF angry (3), OAF disgust (3), ",
    "savee": "; speakers missing: KL; speakers with fewer than 120 files: DC (14), JE (14), JK (14)",
    "urdu": "; classes with fewer than 100 files: angry (6), happy (6), neutral (6), sad (6)",
}


@pytest.mark.parametrize("case", [c for c in CASES if c.name in LACKS], ids=sorted(LACKS, key=IDS.index))
def test_a_partial_copy_names_what_it_lacks(case, tmp_path):
    root = case.make(tmp_path / case.name)
    with pytest.warns(CorpusWarning, match=rf"{case.rows} utterances, but the full release has") as caught:
        load_corpus(case.name, root)
    (text,) = [str(w.message) for w in caught if "the full release has" in str(w.message)]
    assert LACKS[case.name] in text
