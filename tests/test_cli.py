"""The `ser` command: help everywhere, one-line errors, exit codes, --debug, light start-up."""

import os
import subprocess
import sys

import pytest

from ser.cli import build_parser, main

COMMANDS = ["train", "check", "evaluate", "demo", "classify", "attention"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"] if command is None else [command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: ser" in out


def test_parser_lists_every_command():
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


def test_user_error_is_one_line_with_exit_code_2(tmp_path, capsys):
    code = main(["train", "ravdess", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) >= 1 and err[-1].startswith("ser train: error: ")
    assert "corpus root not found" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_debug_shows_the_traceback(tmp_path):
    from ser.errors import CorpusError

    with pytest.raises(CorpusError, match="corpus root not found"):
        main(
            [
                "--debug",
                "train",
                "ravdess",
                "--data-root",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "o"),
            ]
        )


def test_bad_set_value_is_a_one_line_error(tmp_path, capsys):
    code = main(["check", "synthetic", "--data-root", str(tmp_path), "--set", "training.epochs=ten"])
    assert code == 2
    assert "epochs" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["train"])
    assert exc.value.code == 2


def test_help_does_not_import_tensorflow():
    code = "import sys; from ser.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('tensorflow' in sys.modules, 'librosa' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_check_on_a_partial_corpus_shows_the_table_then_the_fix(tmp_path, capsys):
    from tests.corpora import fixtures as fx

    root = fx.make_ravdess(tmp_path / "ravdess")  # 3 actors: too few for the recipe's 6 folds
    code = main(["check", "ravdess", "--data-root", str(root)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "utterances per speaker and label:" in out and "Actor_03" in out
    lines = err.splitlines()
    # warnings and the error are one plain line each, without Python's source lines
    assert all(line.startswith(("ser check: warning: ", "ser check: error: ")) for line in lines), err
    assert any("but the full release has 1440" in line for line in lines)
    assert lines[-1] == (
        f"ser check: error: ravdess at {root}: 6 folds need at least 6 speakers; found 3: "
        "set fewer folds, e.g. --set protocol.k=3"
    )
    assert main(["check", "ravdess", "--data-root", str(root), "--set", "protocol.k=3"]) == 0
    out, _ = capsys.readouterr()
    assert "fold 3: test" in out


def test_check_lists_an_empty_actor_folder_with_the_other_problems(tmp_path, capsys):
    from tests.corpora import fixtures as fx

    root = fx.make_ravdess(tmp_path / "ravdess")
    (root / "Actor_04").mkdir()
    fx.write_wav(root / "Actor_01" / "hello.wav")
    assert main(["check", "ravdess", "--data-root", str(root), "--set", "protocol.k=3"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    # one list, no warning of its own
    assert err.startswith(f"ser check: error: ravdess at {root}: 2 problem(s) in 1 file(s)\n"), err
    assert "warning" not in err
    assert (
        "actor folder with no audio file (1):\n  Actor_04: no audio file; expected its actor's 60 "
        "speech files (an interrupted copy or extraction?)\n"
    ) in err
    assert "  Actor_01/hello.wav: expected MM-VC-EE-II-SS-RR-AA.wav" in err
    assert main(["check", "ravdess", "--data-root", str(root), "--set", "protocol.k=3", "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    assert "ravdess: 48 utterances, 3 speakers" in out
    assert err.count("problem(s)") == 1 and err.count("Actor_04: no audio file") == 1
    assert "--skip-bad: skipped the 1 file(s) listed out of 49; using the remaining 48 utterance(s)." in err


def test_tensorflow_start_up_lines_stay_off_the_terminal():
    # TensorFlow writes "All log messages before absl::InitializeLog() ..." and "oneDNN custom
    # operations are on ..." to file descriptor 2 while importing; commands import it quietly.
    code = (
        "import sys\nfrom ser.cli import _import_tensorflow_quietly\n_import_tensorflow_quietly()\n"
        "print('tensorflow' in sys.modules)\nprint('after', file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "True"
    assert proc.stderr == "after\n"


def test_a_reader_that_has_gone_ends_the_command_quietly(tiny_corpus):
    # `ser check ... | head -1`: the pipe closes before the output is written; with Python's
    # usual buffering the write fails at the final flush, which must not print a traceback
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = [sys.executable, "-m", "ser", "check", "synthetic", "--data-root", str(tiny_corpus)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader has gone before anything was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "Exception ignored" not in err


def test_check_names_the_class_and_fold_the_folds_cannot_keep(tmp_path, capsys):
    from ser.corpora import synthetic

    root = synthetic.generate(tmp_path / "corpus", n_speakers=6, per_class=2, seed=0)
    for path in root.glob("*/*_sad_*.wav"):
        if not path.name.startswith("spk01_"):
            path.unlink()  # only spk01 recorded sad
    assert main(["check", "synthetic", "--data-root", str(root), "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    fold = next(line for line in out.splitlines() if "fold" in line and "spk01" in line).split(":")[0].strip()
    assert (
        f"ser check: warning: {fold}: its training set has no 'sad' (recorded by speaker spk01 only, "
        "tested in this fold)"
    ) in err.splitlines()
    assert "its test set has no 'sad'" in err
