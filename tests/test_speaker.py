"""Tests of ser.speaker: ``--same-speaker`` adapting a classifier to one speaker's files."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json

import numpy as np
import pytest
import soundfile as sf

from ser.classifier import EmotionClassifier
from tests.test_classifier import SR, save_model, tone


def test_same_speaker_says_when_the_model_has_nothing_to_adapt(tmp_path, capsys):
    from ser.cli import main

    path = save_model(tmp_path / "plain.keras")  # global normalisation, no blocks, no head
    sf.write(tmp_path / "a.wav", tone(1.0, 200), SR)
    assert main(["classify", str(path), str(tmp_path / "a.wav"), "--same-speaker"]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"note: --same-speaker: {path} has nothing to adapt to a speaker (no batch-norm blocks to "
        "adapt, no functionals head, no per-speaker normalisation); ignored\n"
    )


def test_same_speaker_leaves_out_files_that_cannot_be_classified(tmp_path, capsys):
    # A silent, a too short and a non-finite file are reported like any failed file, and
    # take no part in the adaptation: the others score exactly as without them.
    from ser.cli import main

    path = save_model(tmp_path / "ada.keras", info={"adapt_blocks": [4, 5]})
    names = []
    for i in range(5):
        sf.write(tmp_path / f"r{i}.wav", tone(1.0 + 0.1 * i, 200 + 90 * i, seed=i), SR)
        names.append(str(tmp_path / f"r{i}.wav"))
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "short.wav", tone(0.05, 300), SR)
    sf.write(tmp_path / "nan.wav", np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    bad = [str(tmp_path / n) for n in ("silent.wav", "short.wav", "nan.wav")]
    assert main(["classify", str(path), *names, "--same-speaker", "--json"]) == 0
    clean, clean_err = capsys.readouterr()
    assert "re-estimated from 5 recordings" in clean_err
    assert (
        main(["classify", str(path), *names[:2], bad[0], *names[2:], *bad[1:], "--same-speaker", "--json"])
        == 1
    )
    out, err = capsys.readouterr()
    assert "re-estimated from 5 recordings (3 file(s) that cannot be classified left out)" in err
    results = {r["file"]: r for r in json.loads(out)}
    assert results[bad[0]]["error"].startswith("silent")
    assert results[bad[1]]["error"].startswith("too short")
    assert "NaN" in results[bad[2]]["error"]
    for r in json.loads(clean):
        assert results[r["file"]]["scores"] == pytest.approx(r["scores"], abs=1e-5)


def test_same_speaker_notes_recordings_heard_as_one_class(tmp_path, capsys, monkeypatch):
    import ser.speaker
    from ser.cli import main

    path = save_model(tmp_path / "ada.keras", info={"adapt_blocks": [4, 5]})
    names = []
    for i in range(5):
        sf.write(tmp_path / f"r{i}.wav", tone(1.0, 200 + 90 * i, seed=i), SR)
        names.append(str(tmp_path / f"r{i}.wav"))
    clf = EmotionClassifier.load(path)
    heard = [clf.classify(n).label for n in names]
    top = max(heard, key=heard.count)
    share = heard.count(top) / len(heard)
    monkeypatch.setattr(ser.speaker, "ONE_EMOTION_SHARE", share)
    assert main(["classify", str(path), *names, "--same-speaker"]) == 0
    err = capsys.readouterr().err
    assert f"without adaptation the model hears {heard.count(top)} of 5 recordings as {top}" in err
    monkeypatch.setattr(ser.speaker, "ONE_EMOTION_SHARE", share + 0.01)
    assert main(["classify", str(path), *names, "--same-speaker"]) == 0
    assert "without adaptation the model hears" not in capsys.readouterr().err


def test_a_long_reference_recording_takes_part_with_its_first_seconds(tmp_path, capsys, monkeypatch):
    # memory stays bounded whatever the reference files' length
    import ser.preprocessor
    from ser.cli import main

    monkeypatch.setattr(ser.preprocessor, "REFERENCE_MAX_SECONDS", 1.0)
    path = save_model(tmp_path / "ada.keras", info={"adapt_blocks": [4, 5]})
    refs = [tone(1.0, 200 + 90 * i, seed=i) for i in range(5)] + [tone(3.0, 250, seed=9)]
    names = []
    for i, r in enumerate(refs):
        sf.write(tmp_path / f"r{i}.wav", r, SR)
        names.append(str(tmp_path / f"r{i}.wav"))
    assert main(["classify", str(path), *names, "--same-speaker", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "from 6 recordings (1 s of each of 1 longer file(s))" in err
    clf = EmotionClassifier.load(path)
    from ser.audio import load_audio

    clf.set_speaker_reference(
        [load_audio(n) for n in names[:5]] + [load_audio(names[5])[:SR]], sample_rate=SR
    )
    for r in json.loads(out)[:5]:
        assert clf.classify(r["file"]).scores == pytest.approx(r["scores"], abs=1e-5)
