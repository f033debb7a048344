"""Tests of ``ser classify``: output formats, per-file errors and exit statuses."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import re

import numpy as np
import pytest
import soundfile as sf

from ser.classifier import NO_SPEECH_NOTE
from ser.cli import main
from ser.features import FrontendConfig
from ser.model import ModelConfig, build_model
from tests.signals import speaking_tone

LABELS = ["angry", "calm", "sad"]
SR = 16000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = build_model(
        LABELS,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8)),
        frontend=FrontendConfig().to_dict(),
        info={"head": "attention"},
        seed=0,
    )
    model.save(d / "model.keras")
    rng = np.random.default_rng(0)
    good = 0.1 * speaking_tone(np.arange(2 * SR) / SR) + rng.normal(0, 0.01, 2 * SR)
    sf.write(d / "good.wav", good.astype(np.float32), SR)  # voiced, as speech is
    long = 0.1 * speaking_tone(np.arange(20 * 8000) / 8000) + rng.normal(0, 0.01, 20 * 8000)
    sf.write(d / "long.flac", long.astype(np.float32), 8000)  # voiced all through
    (d / "text.wav").write_text("not audio at all\n")
    (d / "notmodel.keras").write_text("not a model\n")
    (d / "empty_run").mkdir()
    return d


def run(capsys, *argv):
    code = main(["classify", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_json_one_object_per_file(files, capsys):
    code, out, err = run(capsys, files / "model.keras", files / "good.wav", "--json")
    assert code == 0 and err == ""
    (result,) = json.loads(out)
    assert list(result) == ["file", "duration", "label", "scores", "speech", "segments"]
    assert result["file"] == str(files / "good.wav")
    assert result["duration"] == pytest.approx(2.0)
    assert list(result["scores"]) == LABELS
    assert sum(result["scores"].values()) == pytest.approx(1.0)
    assert result["label"] == max(result["scores"], key=result["scores"].get)
    assert result["segments"] == []


def test_text_line_with_top_k(files, capsys):
    code, out, _ = run(capsys, files, files / "good.wav", "--top", "2")  # a run folder works too
    assert code == 0
    (line,) = out.splitlines()
    name, rest = line.split(": ")
    assert name == str(files / "good.wav")
    pairs = [item.split() for item in rest.split(", ")]
    assert len(pairs) == 2 and all(label in LABELS for label, _ in pairs)
    assert float(pairs[0][1]) >= float(pairs[1][1])
    code, out, _ = run(capsys, files, files / "good.wav", "--top", "9")  # more than there are classes
    assert len(out.strip().split(", ")) == 3


def test_long_file_gets_a_timeline(files, capsys):
    code, out, err = run(capsys, files / "model.keras", files / "long.flac", "--json")
    assert code == 0
    # an 8 kHz file is classified, with a note that its upper bands are empty
    assert err == (
        f"note: {files / 'long.flac'}: recorded at 8000 Hz, so nothing above 4 kHz; the model hears "
        "up to 8 kHz and was trained on full-band audio: expect lower accuracy\n"
    )
    (result,) = json.loads(out)
    segments = result["segments"]
    assert [(s["start"], s["end"]) for s in segments] == [(2.0 * i, 2.0 * i + 4.0) for i in range(9)]
    assert all(list(s) == ["start", "end", "label", "scores", "counted"] for s in segments)
    assert all(s["counted"] for s in segments)  # voiced all through: every window votes
    code, out, _ = run(capsys, files / "model.keras", files / "good.wav", "--window", "1", "--json")
    assert [(s["start"], s["end"]) for s in json.loads(out)[0]["segments"]] == [
        (0.0, 1.0),
        (0.5, 1.5),
        (1.0, 2.0),
    ]
    code, out, _ = run(capsys, files / "model.keras", files / "long.flac")
    assert out.strip().endswith("(mean of 9 windows over 20.0 s)")


def voiced(seconds, freq=150.0, rate=SR, scale=0.1):
    """A tone at a speaking pitch: periodic, so its frames count as voiced speech."""
    t = np.arange(int(seconds * rate)) / rate
    return (scale * speaking_tone(t, freq)).astype(np.float32)


def test_windows_without_speech_are_marked(files, capsys, tmp_path):
    rng = np.random.default_rng(1)
    hiss = rng.normal(0, 0.1, 10 * SR)  # as loud as the voice, but no pitch: not speech
    sf.write(tmp_path / "pause.wav", np.concatenate([voiced(10.0), hiss]).astype(np.float32), SR)
    code, out, err = run(capsys, files / "model.keras", tmp_path / "pause.wav", "--json")
    assert code == 0 and err == ""
    (result,) = json.loads(out)
    assert result["speech"] is True
    assert [s["counted"] for s in result["segments"]] == [s["start"] < 10.0 for s in result["segments"]]
    code, out, _ = run(capsys, files / "model.keras", tmp_path / "pause.wav")
    assert out.strip().endswith("(mean of 5 of 9 windows over 20.0 s; 4 windows without speech left out)")


def test_audio_without_speech_is_classified_with_a_note(files, capsys, tmp_path):
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, np.random.default_rng(2).normal(0, 0.1, 2 * SR).astype(np.float32), SR)
    code, out, err = run(capsys, files / "model.keras", hiss, "--json")
    assert code == 0
    assert err == f"note: {hiss}: {NO_SPEECH_NOTE}\n"
    assert json.loads(out)[0]["speech"] is False


def test_bad_files_are_reported_and_the_rest_classified_json(files, capsys):
    argv = [files / "model.keras", files / "text.wav", files / "good.wav", files / "missing.wav", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 1 and err == ""
    bad, good, missing = json.loads(out)
    assert bad["file"] == str(files / "text.wav") and list(bad) == ["file", "error"]
    assert bad["error"].startswith("not a readable audio file")
    assert missing == {"file": str(files / "missing.wav"), "error": "file not found; expected an audio file"}
    assert good["label"] in LABELS


def test_bad_files_are_reported_and_the_rest_classified_text(files, capsys):
    code, out, err = run(
        capsys, files / "model.keras", files / "text.wav", files / "good.wav", files / "missing.wav"
    )
    assert code == 1
    assert out.startswith(f"{files / 'good.wav'}: ") and len(out.splitlines()) == 1
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{files / 'text.wav'}: error: not a readable audio file")
    assert lines[1] == f"{files / 'missing.wav'}: error: file not found; expected an audio file"


@pytest.mark.parametrize(
    "model, match",
    [
        ("notmodel.keras", r"notmodel\.keras: not a Keras model archive"),
        ("nothere.keras", r"nothere\.keras: not found; expected a model\.keras file"),
        ("empty_run", r"empty_run: folder holds no model\.keras"),
    ],
)
def test_bad_model_is_a_one_line_usage_error(files, capsys, model, match):
    code, out, err = run(capsys, files / model, files / "good.wav")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ser classify: error: ")
    assert re.search(match, err)


@pytest.mark.parametrize(
    "options, match",
    [
        (["--window", "0"], r"window must be a positive number of seconds\. Received: window=0\.0"),
        (["--window", "2", "--hop", "3"], r"hop must not exceed the window"),
        (["--top", "0"], r"top must be a positive integer\. Received: top=0"),
    ],
)
def test_bad_options_are_usage_errors(files, capsys, options, match):
    code, out, err = run(capsys, files / "model.keras", files / "good.wav", *options)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ser classify: error: ")
    assert re.search(match, err)


def test_interrupted_json_keeps_the_files_done(files, capsys, monkeypatch):
    from ser.classifier import EmotionClassifier

    real, calls = EmotionClassifier.classify, []

    def classify(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(EmotionClassifier, "classify", classify)
    good = files / "good.wav"
    code, out, err = run(capsys, files / "model.keras", good, files / "text.wav", good, good, "--json")
    assert code == 130
    assert err.strip() == "ser classify: interrupted"  # no resume hint: classify does not resume
    done = json.loads(out)
    assert [r["file"] for r in done] == [str(good), str(files / "text.wav")]
    assert "error" in done[1] and done[0]["label"] in LABELS


def test_a_ctrl_c_that_tensorflow_would_swallow_still_stops_classify(files, capsys, monkeypatch):
    """A Ctrl-C landing in Keras's or TensorFlow's code can be caught there (a bare ``except:``,
    or C++ that clears it): ``ser classify`` holds it back (ser.interrupts) and stops after
    that model call, with its one line, instead of going on or ending in a traceback."""
    import os
    import signal

    from ser.classifier import EmotionClassifier

    real, calls = EmotionClassifier.logits, []

    def logits(self, features):
        calls.append(1)
        if len(calls) == 2:
            try:  # as Keras calls code it only tries
                os.kill(os.getpid(), signal.SIGINT)
            except:  # noqa: E722
                pass
        return real(self, features)

    monkeypatch.setattr(EmotionClassifier, "logits", logits)
    good = files / "good.wav"
    code, out, err = run(capsys, files / "model.keras", good, good, good, good)
    assert code == 130 and err.strip() == "ser classify: interrupted"
    assert len(calls) == 2 and len(out.splitlines()) == 1  # the first file, then stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_output_that_cannot_be_written_is_one_line(files, capsys, monkeypatch):
    import errno
    import sys

    class Full:  # a full disk: what was written cannot be flushed
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", Full())
    code = main(["classify", str(files / "model.keras"), str(files / "good.wav")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "ser classify: error: standard output: No space left on device"


def test_a_file_cut_short_is_classified_with_a_note(files, capsys, tmp_path):
    cut = tmp_path / "cut.wav"
    sf.write(cut, voiced(3.0), SR, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: 44 + 2 * SR])
    code, out, err = run(capsys, files / "model.keras", cut)
    assert code == 0 and out.startswith(f"{cut}: ")
    assert err.strip() == f"note: {cut}: cut short: its header promises 3.00 s, the file holds 1.00 s " + (
        "(an interrupted copy?); using what is there"
    )
