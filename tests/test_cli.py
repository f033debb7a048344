"""The `ser` command: help everywhere, one-line errors, exit codes, --debug, light start-up."""

import subprocess
import sys

import pytest

from ser.cli import build_parser, main

COMMANDS = ["train", "check", "demo", "classify", "attention"]


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
