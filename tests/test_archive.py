"""Tests of ``ser classify --list``: JSON lines equal to ``--json``, bad files, resuming after
``kill -9``, standard input, Ray, and the error paths."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.cli import main
from ser.errors import ConfigError
from ser.io import JsonLines
from ser.models import default_model_path
from tests.conftest import RAVDESS
from tests.signals import speaking_tone

SR = 16000
MODEL = str(default_model_path())  # the shipped ONNX model: no TensorFlow, no training


def tone(path, seconds=1.0, pitch=150.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.1 * speaking_tone(t, pitch) + rng.normal(0, 0.01, t.size)
    sf.write(path, y.astype(np.float32), SR)
    return str(path)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Three generated recordings (one of 14 s: windowed), two RAVDESS files where present, a
    text file named .wav and a missing file; ``(folder, paths)``."""
    d = tmp_path_factory.mktemp("archive")
    paths = [tone(d / "a.wav"), tone(d / "b.flac", 2.0, 220.0, 1), tone(d / "long.wav", 14.0, 180.0, 2)]
    paths += [str(p) for p in sorted(RAVDESS.glob("Actor_01/*.wav"))[:2]]
    (d / "text.wav").write_text("not audio\n")
    paths += [str(d / "text.wav"), str(d / "missing.wav")]
    return d, paths


def records(path) -> dict:
    """``file -> object`` of a JSON-lines file, checking each file appears once."""
    lines = Path(path).read_text().splitlines()
    out = {}
    for line in lines:
        record = json.loads(line)
        assert record["file"] not in out, "a file twice"
        out[record["file"]] = record
    return out


def run(capsys, *argv):
    code = main(["classify", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_lines_equal_json_and_bad_files_go_on(archive, tmp_path, capsys, jobs):
    folder, paths = archive
    listing = tmp_path / "files.txt"
    listing.write_text("# an archive\n\n" + "\n".join(paths + paths[:1]) + "\n")  # a repeat is done once
    code, _, expected_err = run(capsys, MODEL, *paths, "--json")
    expected = {r["file"]: r for r in json.loads(_)}
    code_list, out, err = run(capsys, MODEL, "--list", listing, "--out", tmp_path / "r.jsonl", "--jobs", jobs)
    assert code == code_list == 1  # two bad files
    assert out == ""
    got = records(tmp_path / "r.jsonl")
    assert got == expected
    assert set(got) == set(paths)
    assert got[str(folder / "missing.wav")] == {
        "file": str(folder / "missing.wav"),
        "error": "file not found; expected an audio file",
    }
    assert "error" in got[str(folder / "text.wav")]
    assert got[str(folder / "long.wav")]["segments"]  # windowed as --json windows it
    assert f"{len(paths) - 2} file(s) classified, 2 error(s), 0 already in" in err


def test_window_options_and_keras_model(archive, tmp_path, capsys):
    from ser.features import FrontendConfig
    from ser.model import ModelConfig, build_model

    model = tmp_path / "model.keras"
    info = {"head": "attention"}
    build_model(
        ["a", "b"], 64, ModelConfig(widths=(4, 4, 8, 8, 8)), frontend=FrontendConfig().to_dict(), info=info
    ).save(model)
    paths = archive[1][:3]
    (tmp_path / "l.txt").write_text("\n".join(paths))
    _, out, _ = run(capsys, model, *paths, "--json", "--window", "1", "--hop", "0.5")
    listed = ["--list", tmp_path / "l.txt", "--out", tmp_path / "r.jsonl", "--jobs", "1"]
    code, _, _ = run(capsys, model, *listed, "--window", "1", "--hop", "0.5")
    assert code == 0
    assert records(tmp_path / "r.jsonl") == {r["file"]: r for r in json.loads(out)}


def test_standard_input_and_resume(archive, tmp_path, capsys, monkeypatch):
    paths = archive[1][:3]
    out = tmp_path / "r.jsonl"
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(paths[:2]) + "\n"))
    assert run(capsys, "--list", "-", "--out", out, "--jobs", "1")[0] == 0  # the default model
    first = out.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(paths) + "\n"))
    code, _, err = run(capsys, "--list", "-", "--out", out, "--jobs", "1")
    assert code == 0 and "1 file(s) classified, 0 error(s), 2 already in" in err
    assert out.read_text().startswith(first) and set(records(out)) == set(paths)


def test_resume_after_kill_9(tmp_path):
    """A run killed with SIGKILL mid-way, plus a half line as a cut-off write leaves, resumes
    to every file exactly once."""
    folder = tmp_path / "audio"
    folder.mkdir()
    source = tone(folder / "0.wav")
    paths = [source] + [str(folder / f"{i}.wav") for i in range(1, 150)]
    for p in paths[1:]:
        os.link(source, p)
    (tmp_path / "l.txt").write_text("\n".join(paths))
    out = tmp_path / "r.jsonl"
    listing = str(tmp_path / "l.txt")
    command = [sys.executable, "-m", "ser", "classify", "--list", listing, "--out", str(out), "--jobs", "1"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 10):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = out.read_text().count("\n")
    assert 10 <= done < len(paths), "the kill came after the end"
    with open(out, "ab") as fh:
        fh.write(b'{"file": "' + paths[-1].encode())  # a cut-off write
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"already in {out}" in finished.stderr
    text = out.read_text()
    assert text.endswith("}\n")
    assert set(records(out)) == set(paths)  # each once, every line whole


def test_json_lines_cuts_partial_line_and_refuses_foreign_files(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"file": "a"}\n{"file": "b"}\n{"fi')
    with JsonLines(path) as lines:
        assert lines.done == {"a", "b"}
        lines.write({"file": "c", "label": "x"})
    assert path.read_text() == '{"file": "a"}\n{"file": "b"}\n{"file": "c", "label": "x"}\n'
    path.write_text('{"file": "a"}\nhello\n')
    with pytest.raises(ConfigError, match=r"r.jsonl: line 2 is not a JSON object with 'file'"):
        JsonLines(path)
    with pytest.raises(ConfigError, match="is a folder"):
        JsonLines(tmp_path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--list", "nowhere.txt", "--out", "r.jsonl"], "nowhere.txt: cannot read the list"),
        (["a.wav", "--list", "l.txt", "--out", "r.jsonl"], "--list takes its audio files from the list"),
        (["--list", "l.txt"], "--list FILES.txt and --out FILE.jsonl go together"),
        (["a.wav", "--out", "r.jsonl"], "--list FILES.txt and --out FILE.jsonl go together"),
        (["--list", "l.txt", "--out", "r.jsonl", "--same-speaker"], "--same-speaker does not combine"),
        (["--list", "l.txt", "--out", "r.jsonl", "--jobs", "0"], "--jobs: expected 'auto' or a positive"),
        (["--list", "l.txt", "--out", "r.jsonl", "--address", "h:1"], "--address h:1 needs --executor ray"),
        (["--list", "l.txt", "--out", "."], "is a folder"),
        (["--list", "l.txt", "--out", "r.jsonl", "--window", "0.01"], "window"),
        (["nomodel.onnx", "--list", "l.txt", "--out", "r.jsonl"], "nomodel.onnx"),
    ],
)
def test_error_paths_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l.txt").write_text("a.wav\n")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "r.jsonl").exists()


def test_ray_missing_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    (tmp_path / "l.txt").write_text("a.wav\n")
    code, _, err = run(
        capsys, "--list", tmp_path / "l.txt", "--out", tmp_path / "r.jsonl", "--executor", "ray"
    )
    assert code == 2 and 'pip install "ser[ray]"' in err


def test_ray_local_mode_equals_local(archive, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    paths = archive[1]
    (tmp_path / "l.txt").write_text("\n".join(paths))
    run(capsys, "--list", tmp_path / "l.txt", "--out", tmp_path / "local.jsonl", "--jobs", "1")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        code, _, _ = run(
            capsys, "--list", tmp_path / "l.txt", "--out", tmp_path / "ray.jsonl", "--executor", "ray"
        )
    finally:
        ray.shutdown()
    assert code == 1
    assert records(tmp_path / "ray.jsonl") == records(tmp_path / "local.jsonl")


def test_export_runs_without_tensorflow(archive, tmp_path):
    (tmp_path / "l.txt").write_text("\n".join(archive[1][:2]))
    code = (
        "import sys; from ser.cli import main; "
        f"code = main(['classify', '--list', {str(tmp_path / 'l.txt')!r}, '--out', {str(tmp_path / 'r.jsonl')!r}]); "
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    assert len(records(tmp_path / "r.jsonl")) == 2
