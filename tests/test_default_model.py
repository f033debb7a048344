"""The default model shipped with ``ser`` (``ser/models/ravdess.onnx``): what its metadata
says, and classify / attention / ``ser.load_model()`` with no model argument."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.cli import main, split_model
from ser.errors import ConfigError
from ser.models import SUMMARY, default_model_path
from ser.onnx_backend import OnnxBackend
from tests.signals import speaking_tone

REPO = Path(__file__).resolve().parents[1]
SR = 16000
RAVDESS_LABELS = ["angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("default_model")
    t = np.arange(2 * SR) / SR
    sf.write(d / "my.wav", (0.1 * speaking_tone(t)).astype(np.float32), SR)
    return d / "my.wav"


def test_the_default_model_is_small_and_says_what_it_is():
    path = Path(default_model_path())
    assert path == REPO / "ser" / "models" / "ravdess.onnx"
    assert path.stat().st_size <= 5 * 2**20
    meta = OnnxBackend.load(path).meta
    assert meta["labels"] == RAVDESS_LABELS
    about = meta["about"]
    for words in ("RAVDESS", "24 professional actors", "acted North-American English", "8 classes"):
        assert words in about["trained_on"]
    assert about["licence"].startswith("CC BY-NC-SA 4.0") and "non-commercial" in about["licence"]
    for words in ("other languages", "spontaneous speech", "other recording conditions", "lower"):
        assert words in about["limits"]
    assert "ser train ravdess" in about["rebuild"] and "ser export" in about["rebuild"]
    scores = about["scores"]
    assert scores["recipe"] == "ravdess" and scores["folds"] == 6 and scores["complete"]
    assert scores["protocol"].startswith("speaker-grouped 6-fold cross-validation")
    assert scores["ua_mean"] == pytest.approx(0.655, abs=5e-4)
    # the --help text quotes the metadata's numbers
    ua, wa, adapted = scores["ua_mean"], scores["wa_mean"], scores["speaker_adapted"]["ua_mean"]
    assert f"UA {ua:.3f} ± {scores['ua_std']:.3f}" in SUMMARY
    assert f"WA {wa:.3f} ± {scores['wa_std']:.3f}" in SUMMARY
    assert f"UA {adapted:.3f} with --same-speaker" in SUMMARY
    assert "CC BY-NC-SA 4.0" in SUMMARY and "24 actors" in SUMMARY


def test_help_describes_the_default_model_and_the_rule(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping inside the phrases looked for
    for command in ("classify", "attention"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "[MODEL] AUDIO" in text
        assert (
            "The first argument is the model when it ends in .keras, .onnx or .tflite or is a folder" in text
        )
        assert "Default model: " + SUMMARY in text


def test_classify_attention_and_load_model_without_a_model_and_without_tensorflow(wav, tmp_path):
    png = tmp_path / "a.png"
    script = f"""
import sys
import ser
from ser.cli import main
assert main(["classify", {str(wav)!r}, "--json"]) == 0
assert main(["attention", {str(wav)!r}, "--out", {str(png)!r}]) == 0
print("api:", ser.load_model().classify({str(wav)!r}).label)
print("loaded:", sorted(m for m in ("tensorflow", "keras", "tf2onnx") if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    *_, api, loaded = done.stdout.strip().splitlines()
    assert loaded == "loaded: []"
    (found,) = json.JSONDecoder().raw_decode(done.stdout)[0]
    assert sorted(found["scores"]) == RAVDESS_LABELS
    assert sum(found["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert api == f"api: {found['label']}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cold_classify_of_an_export_loads_no_heavy_library(wav, tmp_path):
    """``python -m ser classify ser/models/ravdess.onnx FILE`` (what a cold start runs) computes
    its features with numpy alone: no TensorFlow, Keras, librosa, numba, scipy.signal, pandas
    or matplotlib in ``sys.modules`` when it exits."""
    heavy = ("tensorflow", "keras", "librosa", "numba", "scipy.signal", "scipy.fft", "pandas", "matplotlib")
    script = f"""
import atexit, runpy, sys
atexit.register(lambda: print("loaded:", sorted(m for m in {heavy!r} if m in sys.modules)))
sys.argv = ["ser", "classify", {str(default_model_path())!r}, {str(wav)!r}]
runpy.run_module("ser", run_name="__main__", alter_sys=True)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result, loaded = done.stdout.strip().splitlines()
    assert result.split(": ")[1].split()[0] in RAVDESS_LABELS
    assert loaded == "loaded: []"


def test_a_model_given_first_wins(wav, tmp_path, capsys):
    from ser.features import FrontendConfig
    from ser.model import ModelConfig, build_model

    labels = ["angry", "calm", "sad"]
    build_model(
        labels,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8)),
        frontend=FrontendConfig().to_dict(),
        info={"head": "attention"},
        seed=0,
    ).save(tmp_path / "model.keras")
    for model in (tmp_path / "model.keras", tmp_path):  # the file, or its run folder
        assert main(["classify", str(model), str(wav), "--json"]) == 0
        (found,) = json.loads(capsys.readouterr().out)
        assert sorted(found["scores"]) == labels


def test_which_argument_is_the_model(tmp_path):
    default = default_model_path()
    assert split_model(["a.wav", "b.flac"]) == (default, ["a.wav", "b.flac"])
    assert split_model(["missing.onnx", "a.wav"]) == ("missing.onnx", ["a.wav"])  # gets the model's error
    assert split_model(["M.KERAS", "a.wav"]) == ("M.KERAS", ["a.wav"])
    assert split_model([str(tmp_path), "a.wav"]) == (str(tmp_path), ["a.wav"])
    assert split_model(["m.onnx", "a.wav"], most_audio=1) == ("m.onnx", ["a.wav"])
    with pytest.raises(ConfigError, match=r"no audio file given after the model m\.onnx"):
        split_model(["m.onnx"])
    with pytest.raises(ConfigError, match=r"one audio file expected.*Received: a\.wav b\.wav"):
        split_model(["a.wav", "b.wav"], most_audio=1)


def test_a_missing_audio_file_is_one_line_as_before(wav, tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    assert main(["classify", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"{missing}: error: file not found; expected an audio file\n"
    assert main(["attention", str(missing), "--out", str(tmp_path / "a.png")]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == f"{missing}: error: file not found; expected an audio file"
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["classify", "m.onnx"], r"^ser classify: error: no audio file given after the model m\.onnx"),
        (
            ["attention", "a.wav", "b.wav", "--out", "a.png"],
            r"^ser attention: error: one audio file expected",
        ),
        (["classify", "nothere.onnx", "a.wav"], r"^ser classify: error: nothere\.onnx: not found"),
    ],
)
def test_argument_mistakes_are_one_line_usage_errors(argv, match, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and re.search(match, err), err
