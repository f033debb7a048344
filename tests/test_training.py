"""End-to-end recipe runs on the tiny synthetic corpus: outputs, resume, honesty of folds."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ser.errors import ConfigError
from tests.conftest import TINY


def test_results_json_schema(tiny_run):
    out, results = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["recipe"] == "synthetic"
    assert on_disk["corpus"] == "synthetic"
    assert "leave" in on_disk["protocol"] or "fold" in on_disk["protocol"]
    assert on_disk["classes"] == ["angry", "happy", "neutral", "sad"]
    assert len(on_disk["folds"]) == 3
    for f in on_disk["folds"]:
        assert set(f) >= {"fold", "test_speakers", "n", "wa", "ua", "macro_f1"}
        assert 0 <= f["wa"] <= 1 and 0 <= f["ua"] <= 1
        assert len(f["test_speakers"]) == 1
    assert sum(f["n"] for f in on_disk["folds"]) == 36
    for key in ("wa_mean", "wa_std", "ua_mean", "ua_std", "seconds"):
        assert isinstance(on_disk[key], float)
    pooled = on_disk["pooled"]
    assert set(pooled) == {"wa", "ua", "macro_f1", "confusion"}
    assert sum(map(sum, pooled["confusion"])) == 36
    assert on_disk["complete"] is True


def test_run_writes_all_artefacts(tiny_run):
    out, _ = tiny_run
    for name in ("results.md", "confusion.png", "model.keras", "manifest.csv", "run.json"):
        assert (out / name).is_file(), name
    assert "| fold | test speakers |" in (out / "results.md").read_text()
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    # no temporary files left behind
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_each_speaker_is_tested_once_and_never_trained_on(tiny_run):
    out, _ = tiny_run
    tested = []
    for d in sorted((out / "folds").iterdir()):
        r = json.loads((d / "result.json").read_text())
        tested += r["test_speakers"]
        assert not set(r["test_speakers"]) & set(r["validation_speakers"])
    assert sorted(tested) == ["spk01", "spk02", "spk03"]


def test_final_model_carries_labels_and_frontend(tiny_run):
    out, _ = tiny_run
    import keras

    import ser.layers  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    meta = model.get_layer("ser_metadata")
    assert meta.labels == ["angry", "happy", "neutral", "sad"]
    assert meta.frontend["n_mels"] == 64
    assert meta.info["recipe"] == "synthetic"
    assert meta.info["head"] == "attention"


def test_rerun_skips_finished_work(tiny_run, tiny_corpus):
    out, results = tiny_run
    from ser.training import run_recipe

    before = {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("result.json")}
    model_mtime = (out / "model.keras").stat().st_mtime_ns
    again = run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("result.json")} == before
    assert (out / "model.keras").stat().st_mtime_ns == model_mtime
    assert again["ua_mean"] == results["ua_mean"]


def test_rerun_with_other_settings_is_refused(tiny_run, tiny_corpus):
    out, _ = tiny_run
    from ser.training import run_recipe

    with pytest.raises(ConfigError, match="different settings"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=[*TINY, "model.head=average"])


def test_average_head_and_fold_subset(tiny_corpus, tmp_path):
    from ser.training import run_recipe

    res = run_recipe(
        "synthetic",
        data_root=tiny_corpus,
        out_dir=tmp_path / "avg",
        folds="2",
        overrides=[*TINY, "model.head=average"],
        final_model=False,
        progress=False,
    )
    assert [f["fold"] for f in res["folds"]] == [2]
    assert res["complete"] is False
    assert not (tmp_path / "avg" / "model.keras").exists()


def test_bad_folds_and_recipe_errors(tiny_corpus, tmp_path):
    from ser.training import run_recipe

    with pytest.raises(ConfigError, match="--folds must be between 1 and 3"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=tmp_path / "x", folds="7", overrides=TINY)
    with pytest.raises(ConfigError, match="recipe 'nope' not found"):
        run_recipe("nope", data_root=tiny_corpus, out_dir=tmp_path / "y")


def test_kill_during_training_then_resume(tiny_corpus, tmp_path):
    """kill -9 in the middle of a run, rerun the same command: it finishes, skipping done folds."""
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "ser",
        "train",
        "synthetic",
        "--data-root",
        str(tiny_corpus),
        "--out",
        str(out),
    ]
    for item in TINY:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first = out / "folds" / "fold_01" / "result.json"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "first fold never finished"
    done_before = json.loads(first.read_text())
    assert not (out / "model.keras").exists() or (out / "results.json").exists()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(first.read_text()) == done_before  # the finished fold was not redone
    results = json.loads((out / "results.json").read_text())
    assert len(results["folds"]) == 3 and results["complete"]
    assert (out / "model.keras").is_file()
