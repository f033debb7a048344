"""Folds trained side by side in worker processes (``ser train --jobs``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import TINY


def _group_exits(pgid: int, seconds: float) -> bool:
    """Whether every process of group ``pgid`` has exited within ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_run_with_workers_killed_then_resumed_matches_the_folds_of_a_run_without(
    tiny_run, tiny_corpus, tmp_path, capfd, warm_cache
):
    """``kill -9`` of a ``ser train --jobs 2`` process in the middle of its run; rerunning
    the same command finishes it, skipping the fold done before the kill and training the
    others in workers; its folds are those of the run without workers.

    (One run serves both checks: a killed run's workers and a fresh run's are started the
    same way, and each start of a worker imports TensorFlow again.)
    """
    from ser import load_model
    from ser.cli import main
    from ser.training import run_recipe

    sequential, _ = tiny_run
    out = tmp_path / "jobs2"
    args = ["train", "synthetic", "--data-root", str(tiny_corpus), "--out", str(out), "--jobs", "2"]
    for item in TINY:
        args += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = tmp_path / "killed.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ser", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # (its workers with it, to wait for them below)
        )
        first = out / "folds" / "fold_01" / "result.json"
        deadline = time.time() + 240
        while not first.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # its orphaned workers stop (no result written after this)
        if not _group_exits(proc.pid, 20):
            os.killpg(proc.pid, signal.SIGKILL)
    assert first.exists(), "first fold never finished"
    assert "training 3 folds in 2 worker processes" in log.read_text()
    done_before = json.loads(first.read_text())
    assert not (out / "model.keras").exists() or (out / "results.json").exists()
    # the folds not finished, or finished since: two damaged results (whichever the kill left)
    for k, text in ((2, "{"), (3, "{}")):
        (out / "folds" / f"fold_{k:02d}").mkdir(parents=True, exist_ok=True)
        (out / "folds" / f"fold_{k:02d}" / "result.json").write_text(text)
    capfd.readouterr()
    assert main(args) == 0  # the same command again: those folds are trained again in workers
    log = capfd.readouterr().err  # the workers' lines too
    assert "training 2 folds in 2 worker processes" in log
    assert log.count("fold_02/result.json: unreadable") == 1, log
    assert log.count("fold_03/result.json: does not match") == 1, log
    assert log.count("done in an earlier run") == 1
    assert json.loads(first.read_text()) == done_before  # the finished fold was not redone
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and len(results["folds"]) == 3
    for k in (1, 2, 3):
        mine = json.loads((out / "folds" / f"fold_{k:02d}" / "result.json").read_text())
        theirs = json.loads((sequential / "folds" / f"fold_{k:02d}" / "result.json").read_text())
        assert mine["fold"] == k
        for key in ("test_speakers", "validation_speakers", "training_files", "y_true"):
            assert mine[key] == theirs[key]
        assert (out / "folds" / f"fold_{k:02d}" / "logits.npz").is_file()
    assert (out / "model.keras").is_file()
    assert load_model(out / "model.keras").labels == results["classes"]
    # a rerun finds every fold done: no workers are started
    run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False, jobs=2)
    log = capfd.readouterr()
    assert "worker processes" not in log.err
    assert log.err.count("done in an earlier run") == 3


def test_bad_jobs_on_the_command_line(tmp_path, capsys):
    from ser.cli import main

    code = main(
        ["train", "synthetic", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "0"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "ser train: error: --jobs: expected 'auto' or a positive integer, got '0'"
    ]


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_ctrl_c_stops_the_workers_and_keeps_what_is_done(tiny_corpus, tmp_path, jobs, warm_cache):
    """Ctrl-C (SIGINT to the whole process group) during a run with fold workers, or in one
    process beside joblib's idle feature workers: one line, exit 130, no traceback or
    warning, no process left.

    (With ``--jobs 1`` the SIGINT lands as the first fold's model is built and traced, in
    Keras's and TensorFlow's code, which could lose the KeyboardInterrupt or turn it into a
    traceback: the run then finished, exit 0, or failed, exit 1. ``ser.interrupts`` holds it
    back to a safe point; test_interrupts.py lands one there on purpose.)"""
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "ser", "train", "synthetic", "--data-root", str(tiny_corpus)]
    cmd += ["--out", str(out), "--jobs", jobs, "--no-final"]
    for item in TINY:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # as from a terminal: a job started in the background (e.g. CI's `... &`) would
            # pass SIGINT on as ignored, and Python would then never raise KeyboardInterrupt
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.time() + 240
        while "test spk" not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # a worker has started its first fold
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        if not _group_exits(proc.pid, 10):
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("worker processes outlived the interrupted run")
    text = log.read_text()  # with what any process of the run printed as it exited
    assert proc.returncode == 130, text
    assert text.strip().splitlines()[-1] == "ser train: interrupted; rerun the same command to resume"
    assert "Traceback" not in text and "Warning" not in text, text
    # (rerunning resumes: test_a_run_with_workers_killed_then_resumed_... kills a run with
    # workers and reruns it)
