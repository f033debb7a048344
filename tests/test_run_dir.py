"""The run folder (:mod:`ser.training.run_dir`): finished folds, format version, refusals."""

import json

import pytest

from ser.errors import ConfigError
from tests.conftest import TINY


def test_a_fold_result_is_reused_only_if_it_matches_the_fold(tmp_path):
    import numpy as np

    from ser.io import write_json
    from ser.protocol import Fold
    from ser.training.run_dir import fold_result

    y = np.array([0, 1, 2, 1, 0, 2])
    fold = Fold(2, np.array([0, 1]), np.array([2]), np.array([3, 4, 5]), ("spk2",), ())
    good = {
        "fold": 2,
        "test_speakers": ["spk2"],
        "n": 3,
        "wa": 1.0,
        "ua": 1.0,
        "macro_f1": 1.0,
        "confusion": [],
        "y_true": [1, 0, 2],
        "y_pred": [1, 0, 2],
        "history": {"best_epoch": 1},
        "seconds": 1.0,
    }
    assert fold_result(tmp_path, fold, y) is None  # missing
    (tmp_path / "result.json").write_text('{"fold": 2, "test_sp')  # damaged
    assert fold_result(tmp_path, fold, y) is None
    write_json(tmp_path / "result.json", good)
    assert fold_result(tmp_path, fold, y) == good
    for change in ({"y_true": [1, 1, 2]}, {"test_speakers": ["spk3"]}, {"fold": 1}, {"y_pred": [1]}):
        write_json(tmp_path / "result.json", {**good, **change})
        assert fold_result(tmp_path, fold, y) is None, change
    write_json(tmp_path / "result.json", {k: v for k, v in good.items() if k != "history"})
    assert fold_result(tmp_path, fold, y) is None
    # trained on other files (e.g. one left out by --skip-bad, since fixed): run again
    write_json(tmp_path / "result.json", {**good, "training_files": "abc"})
    assert fold_result(tmp_path, fold, y, "abc") is not None
    assert fold_result(tmp_path, fold, y, "abd") is None
    write_json(tmp_path / "result.json", good)  # without the digest: not trusted
    assert fold_result(tmp_path, fold, y, "abd") is None
    assert fold_result(tmp_path, fold, y) == good


def test_a_run_with_an_older_functionals_head_is_never_resumed(tiny_run, tiny_corpus, tmp_path):
    import shutil

    from ser.functionals import FUNCTIONALS_VERSION
    from ser.training import run_recipe

    out = tmp_path / "v1"
    shutil.copytree(tiny_run[0], out)
    run = json.loads((out / "run.json").read_text())
    assert run["functionals_version"] == FUNCTIONALS_VERSION == 3
    run["functionals_version"] = 2
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match=r"functionals head is of version 2 .* use a new --out folder"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
    del run["functionals_version"]  # a run.json without it: another run
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(
        ConfigError, match=r"holds a run with different settings or data; use a new --out folder"
    ):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)


@pytest.mark.parametrize("version", [None, 0, 2])
def test_a_run_folder_of_another_format_is_refused_in_one_line(tiny_run, tiny_corpus, tmp_path, version):
    import shutil

    from ser.constants import FORMAT_VERSION
    from ser.training import run_recipe

    out = tmp_path / "other"
    shutil.copytree(tiny_run[0], out)
    run = json.loads((out / "run.json").read_text())
    assert run["format_version"] == FORMAT_VERSION
    if version is None:
        del run["format_version"]
    else:
        run["format_version"] = version
    (out / "run.json").write_text(json.dumps(run))
    written = "no format version" if version is None else f"format version {version}"
    with pytest.raises(
        ConfigError, match=f"run.json: written in {written}.*; this ser reads format version"
    ) as caught:
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
    assert "\n" not in str(caught.value)


def test_a_run_with_other_settings_is_refused_even_if_only_a_new_setting_is_missing(
    tiny_run, tiny_corpus, tmp_path
):
    """A run.json lacking a setting holds another run (no defaults are filled in)."""
    import shutil

    from ser.training import run_recipe

    out = tmp_path / "old"
    shutil.copytree(tiny_run[0], out)
    run = json.loads((out / "run.json").read_text())
    del run["settings"]["training"]["members"]
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="holds a run with different settings or data"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
