"""speaker_label_table and describe_manifest: counts, and loud flags for speaker/label confounds."""

from __future__ import annotations

import pandas as pd
import pytest

from ser.corpora import COLUMNS, describe_manifest, speaker_label_table, tess
from tests.corpora import fixtures as fx


def _manifest(rows, classes=None):
    frame = pd.DataFrame(
        [
            (f"/x/{i}.wav", f"u{i}", label, speaker, None, None, 2.0)
            for i, (speaker, label) in enumerate(rows)
        ],
        columns=list(COLUMNS),
    )
    frame.attrs.update({"corpus": "demo", "classes": classes or tuple(sorted({label for _, label in rows}))})
    return frame


BALANCED = [(s, label) for s in ("s1", "s2") for label in ("sad", "angry", "happy") for _ in range(2)]


def test_speaker_label_table_counts_with_totals():
    manifest = _manifest(BALANCED + [("s3", "angry")] * 3, classes=("sad", "happy", "angry"))
    table = speaker_label_table(manifest)
    assert list(table.columns) == ["sad", "happy", "angry", "total"]
    assert list(table.index) == ["s1", "s2", "s3", "total"]
    assert table.loc["s3"].tolist() == [0, 0, 3, 3]
    assert table.loc["total"].tolist() == [4, 4, 7, 15]


def test_balanced_manifest_has_no_warning():
    text = describe_manifest(_manifest(BALANCED))
    lines = text.splitlines()
    assert (
        lines[0]
        == "demo: 12 utterances, 2 speakers, 3 labels, 0.4 min of audio (mean 2.00 s, min 2.00 s, max 2.00 s)"
    )
    assert "  angry       4   33.3%" in lines
    assert "WARNING" not in text and "NOTE" not in text


def test_confounds_are_flagged():
    manifest = _manifest(BALANCED + [("s3", "angry")] * 3 + [("s1", "calm"), ("s1", "calm"), ("s4", "sad")])
    text = describe_manifest(manifest)
    assert "WARNING: 1 speaker(s) with only one label: s3 (angry, 3 files)" in text
    assert "WARNING: 1 label(s) recorded by only one speaker: calm (only s1)" in text
    assert "WARNING: 1 speaker(s) with a single file: s4" in text
    assert (
        "NOTE: per-speaker normalisation subtracts each speaker's own statistics, so it erases the label"
        in text
    )


def test_speakers_missing_a_label_are_noted():
    manifest = _manifest(BALANCED + [("s3", "sad"), ("s3", "angry")])
    text = describe_manifest(manifest)
    assert "NOTE: 1 speaker(s) without every label: s3 (no happy); their per-speaker statistics" in text
    assert "WARNING" not in text and "erases the label" not in text


def test_many_confounds_are_summarised():
    manifest = _manifest([(f"s{i:02d}", "angry" if i % 2 else "sad") for i in range(30)])
    text = describe_manifest(manifest)
    assert "WARNING: every speaker has a single file (no speaker information?)" in text
    assert len(text.splitlines()) < 50


def test_empty_manifest():
    assert describe_manifest(_manifest([])) == "demo: empty manifest (0 utterances)"
    assert speaker_label_table(_manifest([])).empty


@pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")
def test_describe_a_loaded_corpus(tmp_path):
    text = describe_manifest(tess.load(fx.make_tess(tmp_path)))
    assert text.startswith("tess: 42 utterances, 2 speakers, 7 labels, 0.2 min of audio")
    assert "WARNING" not in text
