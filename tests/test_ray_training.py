"""``ser train --executor ray``: folds and the final model as Ray tasks (:mod:`ser.training.ray_tasks`)."""

import json
import sys

import numpy as np
import pytest

from tests.conftest import TINY


def test_ray_folds_score_as_jobs_1_and_resume(tiny_corpus, tiny_run, warm_cache, tmp_path):
    pytest.importorskip("ray")
    from ser.training import run_recipe

    reference, _ = tiny_run  # the same recipe, all folds trained with --jobs 1
    out = tmp_path / "out"
    results = run_recipe(
        "synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, folds="1,2",
        progress=False, executor="ray", final_model=False,
    )  # fmt: skip
    assert len(results["folds"]) == 2
    for n in (1, 2):
        got = json.loads((out / "folds" / f"fold_{n:02d}" / "result.json").read_text())
        want = json.loads((reference / "folds" / f"fold_{n:02d}" / "result.json").read_text())
        assert got["test_speakers"] == want["test_speakers"]
        assert got["ua"] == pytest.approx(want["ua"], abs=1e-9)
        assert got["y_pred"] == want["y_pred"]
        logits = np.load(out / "folds" / f"fold_{n:02d}" / "logits.npz")["cnn"]
        np.testing.assert_allclose(
            logits, np.load(reference / "folds" / f"fold_{n:02d}" / "logits.npz")["cnn"], atol=1e-4
        )
    # resume: the finished folds are kept, only fold 3 and the final model (a Ray task too) run
    stamp = (out / "folds" / "fold_01" / "result.json").stat().st_mtime_ns
    results = run_recipe(
        "synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False, executor="ray"
    )
    assert (out / "folds" / "fold_01" / "result.json").stat().st_mtime_ns == stamp
    assert results["complete"] and (out / "model.keras").is_file()
    assert results["ua_mean"] == pytest.approx(
        json.loads((reference / "results.json").read_text())["ua_mean"], abs=1e-9
    )


def _dies_once(marker: str) -> int:
    """Kills its own worker process the first time (as ``kill -9`` or the OOM killer would)."""
    import os
    from pathlib import Path

    attempts = Path(marker)
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    if len(attempts.read_text()) == 1:
        os._exit(1)
    return len(attempts.read_text())


def test_a_task_whose_worker_dies_is_retried(tmp_path):
    pytest.importorskip("ray")
    from ser.training.ray_tasks import MAX_RETRIES, run_on_ray

    assert MAX_RETRIES >= 1
    assert run_on_ray([(_dies_once, (str(tmp_path / "attempts"),))], address=None, cpus_per_task=1) == [2]


def test_executor_ray_without_ray_names_the_extra(tiny_corpus, tmp_path, monkeypatch):
    from ser.errors import ConfigError
    from ser.training import run_recipe

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    with pytest.raises(ConfigError, match=r'--executor ray needs Ray.*pip install "ser\[ray\]"'):
        run_recipe(
            "synthetic", data_root=tiny_corpus, out_dir=tmp_path / "out", overrides=TINY, executor="ray"
        )
    assert not (tmp_path / "out").exists()  # refused before anything was written
