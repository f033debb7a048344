"""The shared machinery: finding audio, the problem summary, finalize's checks."""

from __future__ import annotations

import warnings

import pytest

from ser.corpora import COLUMNS, CorpusWarning, emodb
from ser.corpora.base import (
    FIX_HINT,
    Record,
    Report,
    absolute_root,
    check_root,
    finalize,
    find_audio,
    relative,
)
from ser.errors import AudioError, CorpusError
from tests.corpora import fixtures as fx


def test_find_audio_is_recursive_case_insensitive_and_skips_hidden(tmp_path):
    for name in [
        "b/x.WAV",
        "a.flac",
        "a/deep/er/y.Wav",
        "c.txt",
        "._a.wav",
        ".hidden/z.wav",
        "__MACOSX/a/._q.wav",
    ]:
        fx.write_wav(tmp_path / name)
    (tmp_path / "folder.wav").mkdir()
    found = [relative(p, tmp_path) for p in find_audio(tmp_path)]
    assert found == ["a.flac", "a/deep/er/y.Wav", "b/x.WAV"]
    assert find_audio(tmp_path / "missing") == []


def test_find_audio_survives_a_link_loop(tmp_path):
    fx.write_wav(tmp_path / "a" / "x.wav")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [relative(p, tmp_path) for p in find_audio(tmp_path)] == ["a/x.wav"]


def test_check_root(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(
        CorpusError, match=r"^demo at .*file.txt: not a folder; expected a folder with <layout>$"
    ):
        check_root("demo", tmp_path / "file.txt", "<layout>")
    with pytest.raises(CorpusError, match=r"^demo at .*gone: corpus root not found"):
        check_root("demo", tmp_path / "gone", "<layout>")
    with pytest.raises(CorpusError, match="is not a path"):
        check_root("demo", None, "<layout>")
    assert check_root("demo", str(tmp_path / "x" / ".."), "<layout>") == tmp_path


def test_a_linked_root_is_named_by_the_folder_it_links_to(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    assert absolute_root("link") == check_root("demo", "link", "<layout>") == tmp_path / "real"
    csv = tmp_path / "real" / "m.csv"
    csv.write_text("path,label\n")
    (tmp_path / "m.csv").symlink_to(csv)
    assert absolute_root("m.csv") == csv


def test_summary_groups_by_kind_and_truncates(tmp_path):
    report = Report("demo", tmp_path)
    for i in range(13):
        report.add("unreadable audio", tmp_path / f"f{i:02d}.wav", "empty file (0 bytes)")
    report.add("class with no examples", None, "'sad' has no utterance")
    report.add("unknown label", "/elsewhere/x.wav", "label 'Q'")
    lines = report.summary("last line", ["(a note)"]).splitlines()
    assert lines[0] == f"demo at {tmp_path}: 15 problem(s) in 14 file(s)"
    assert lines[1] == "unreadable audio (13):"
    assert lines[2] == "  f00.wav: empty file (0 bytes)"
    assert lines[11] == "  f09.wav: empty file (0 bytes)"
    assert lines[12] == "  ... and 3 more"
    assert lines[13:] == [
        "class with no examples (1):",
        "  'sad' has no utterance",
        "unknown label (1):",
        "  /elsewhere/x.wav: label 'Q'",
        "(a note)",
        "last line",
    ]


def _records(tmp_path, n=4, speakers=("s1", "s2")):
    records = []
    for i in range(n):
        path = fx.write_wav(tmp_path / f"{i}.wav", seconds=0.25 + 0.25 * i)
        records.append(
            Record(str(path), f"u{i}", "a" if i % 2 else "b", speakers[i % len(speakers)], "x", "F")
        )
    return records


def test_finalize_builds_the_manifest(tmp_path):
    records = _records(tmp_path)
    manifest = finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=("b", "a"))
    assert tuple(manifest.columns) == COLUMNS
    assert manifest["utt_id"].tolist() == ["u0", "u1", "u2", "u3"]
    assert manifest["duration"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert manifest.attrs == {"corpus": "demo", "root": str(tmp_path), "classes": ("b", "a")}


@pytest.mark.filterwarnings("ignore:.*single file:UserWarning")
def test_finalize_maps_and_excludes_labels(tmp_path):
    records = _records(tmp_path)
    records[0].label = "drop"
    manifest = finalize(
        "demo",
        tmp_path,
        records,
        Report("demo", tmp_path),
        classes=("x",),
        label_map={"a": "x", "b": "x", "drop": None},
    )
    assert manifest["utt_id"].tolist() == ["u1", "u2", "u3"]
    assert set(manifest["label"]) == {"x"}


def test_label_outside_classes_is_a_problem(tmp_path):
    with pytest.raises(
        CorpusError, match=r"label outside the class set \(2\):\n  1.wav: label 'a'; expected one of b"
    ):
        finalize("demo", tmp_path, _records(tmp_path), Report("demo", tmp_path), classes=("b",))


def test_too_short_file_is_a_problem(tmp_path):
    records = _records(tmp_path)
    fx.write_wav(tmp_path / "1.wav", seconds=0.05)
    with pytest.raises(
        CorpusError, match=r"too short \(1\):\n  1.wav: 50 ms of audio; expected at least 100 ms"
    ):
        finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=())


def test_skip_bad_with_nothing_left(tmp_path):
    records = _records(tmp_path, n=1)
    fx.write_empty(tmp_path / "0.wav")
    with pytest.raises(CorpusError, match=r"--skip-bad, but no usable utterance is left\.$"):
        finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=(), skip_bad=True)


def test_skip_bad_notes_a_class_left_empty(tmp_path):
    records = _records(tmp_path)
    fx.write_empty(tmp_path / "1.wav")
    fx.write_empty(tmp_path / "3.wav")
    with pytest.warns(CorpusWarning, match=r"every utterance of 'a' has a problem") as record:
        manifest = finalize(
            "demo", tmp_path, records, Report("demo", tmp_path), classes=("a", "b"), skip_bad=True
        )
    assert manifest.attrs["classes"] == ("b",)
    assert record[0].filename == __file__  # attributed to the caller, not to corpora


def test_error_without_skip_bad_ends_with_the_fix(tmp_path):
    records = _records(tmp_path)
    fx.write_empty(tmp_path / "2.wav")
    with pytest.raises(CorpusError) as caught:
        finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=())
    assert str(caught.value).splitlines()[-1] == FIX_HINT


def test_files_whose_audio_is_unusable_are_listed_with_the_other_problems(tmp_path):
    # find_unusable decodes the files whose headers are fine; what it rejects joins one list
    records = _records(tmp_path)
    fx.write_empty(tmp_path / "2.wav")
    asked = []

    def find_unusable(paths):
        asked.extend(paths)
        return {1: AudioError(f"{paths[1]}: silent (no sample above -80 dB full scale)")}

    with pytest.raises(CorpusError) as caught:
        finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=(), find_unusable=find_unusable)
    assert asked == [str(tmp_path / f"{i}.wav") for i in (0, 1, 3)]  # not the empty file
    lines = str(caught.value).splitlines()
    assert lines[0] == f"demo at {tmp_path}: 2 problem(s) in 2 file(s)"
    assert lines[1:5] == [
        "unreadable audio (1):",
        "  2.wav: empty file (0 bytes); expected audio",
        "unusable audio (1):",
        "  1.wav: silent (no sample above -80 dB full scale)",
    ]
    with pytest.warns(CorpusWarning) as caught:
        manifest = finalize(
            "demo",
            tmp_path,
            records,
            Report("demo", tmp_path),
            classes=(),
            skip_bad=True,
            find_unusable=find_unusable,
        )
    assert manifest["utt_id"].tolist() == ["u0", "u3"]
    message = str(caught[0].message)
    assert message.endswith(
        "\n--skip-bad: skipped the 2 file(s) listed out of 4; using the remaining 2 utterance(s)."
    )


def test_a_refused_partial_copy_lists_what_it_lacks_with_the_problems(tmp_path):
    root = fx.make_emodb(tmp_path, speakers=("03", "08"))  # 28 files
    fx.write_empty(root / "wav" / "03a01Wa.wav")
    with pytest.raises(CorpusError) as caught:
        emodb.load(root)
    assert str(caught.value).splitlines()[-2:] == [
        "without the files listed: 27 utterances, but the full release has 535 (a partial copy? results "
        "will not be comparable with published ones); speakers missing: 09, 10, 11, 12, 13, 14, 15, 16",
        FIX_HINT,
    ]


def test_single_file_speaker_is_a_warning_only(tmp_path):
    records = _records(tmp_path, n=3, speakers=("s1", "s1", "lonely"))
    with pytest.warns(CorpusWarning, match=r"1 speaker\(s\) with a single file: lonely"):
        manifest = finalize("demo", tmp_path, records, Report("demo", tmp_path), classes=())
    assert len(manifest) == 3


def test_count_mismatch_is_a_loud_warning(tmp_path):
    root = fx.make_emodb(tmp_path, speakers=("03", "08"))
    with pytest.warns(CorpusWarning, match=r"28 utterances, but the full release has 535 \(a partial copy\?"):
        manifest = emodb.load(root)
    assert len(manifest) == 28
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finalize(
            "demo", tmp_path, _records(tmp_path / "x"), Report("demo", tmp_path), classes=(), expected_count=4
        )
