"""Several corpora in one run (``[corpus] corpora = [...]``, ``--data-root NAME=DIR``)."""

import json

import numpy as np
import pytest

from ser.errors import ConfigError
from tests.conftest import TINY

#: A recipe of two corpora: the synthetic one and a second synthetic corpus read as `custom`.
TWO = """
[corpus]
corpora = ["synthetic", "custom"]
{extra}

[protocol]
kind = "group_kfold"
group = "speaker"
k = {k}
seed = 0
"""


@pytest.fixture(scope="module")
def second_corpus(tmp_path_factory):
    """Two more synthetic speakers (named spk01 and spk02, as two of the tiny corpus's are),
    listed in a CSV for the ``custom`` loader."""
    import pandas as pd

    from ser.corpora import synthetic

    root = tmp_path_factory.mktemp("second") / "corpus"
    synthetic.generate(root, n_speakers=2, per_class=3, seed=5)
    rows = [
        {"path": str(p), "label": p.stem.split("_")[1], "speaker": p.parent.name}
        for p in sorted(root.rglob("*.wav"))
    ]
    csv = root.parent / "second.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _recipe(tmp_path, extra="", k=5):
    folder = tmp_path / "two"
    folder.mkdir(exist_ok=True)
    (folder / "recipe.toml").write_text(TWO.format(extra=extra, k=k))
    return str(folder)


def test_speakers_are_namespaced_and_folds_group_by_corpus_and_speaker(tiny_corpus, second_corpus, tmp_path):
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, run_folds

    recipe = load_recipe(_recipe(tmp_path), TINY)
    roots = [f"synthetic={tiny_corpus}", f"custom={second_corpus}"]
    manifest = load_manifest(recipe, roots, skip_bad=False, decode=False, progress=False)
    assert sorted(manifest["speaker"].unique()) == [
        "custom:spk01",
        "custom:spk02",
        "synthetic:spk01",
        "synthetic:spk02",
        "synthetic:spk03",
    ]
    assert set(manifest["corpus"]) == {"synthetic", "custom"}
    folds = run_folds(manifest, recipe)
    assert len(folds) == 5
    tested = [g for f in folds for g in f.test_groups]
    assert sorted(tested) == sorted(manifest["speaker"].unique())  # each speaker in one test fold
    speakers = manifest["speaker"].to_numpy()
    for fold in folds:
        test = set(speakers[fold.test])
        assert not test & set(speakers[np.concatenate([fold.train, fold.validation])])


def test_train_only_corpora_join_every_training_set_and_leave_the_folds_as_they_were(
    tiny_corpus, second_corpus, tmp_path
):
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, run_folds

    recipe = load_recipe(_recipe(tmp_path, 'train_only = ["custom"]', k=3), TINY)
    roots = {"synthetic": tiny_corpus, "custom": second_corpus}
    manifest = load_manifest(recipe, roots, skip_bad=False, decode=False, progress=False)
    folds = run_folds(manifest, recipe)
    alone = load_recipe("synthetic", TINY)
    alone_manifest = load_manifest(alone, tiny_corpus, skip_bad=False, decode=False, progress=False)
    alone_folds = run_folds(alone_manifest, alone)
    custom = np.flatnonzero(manifest["corpus"].to_numpy() == "custom")
    ids = manifest["utt_id"].to_numpy()
    alone_ids = alone_manifest["utt_id"].to_numpy()
    assert len(folds) == len(alone_folds) == 3
    for fold, same in zip(folds, alone_folds, strict=True):
        assert list(ids[fold.test]) == list(alone_ids[same.test])
        assert list(ids[fold.validation]) == list(alone_ids[same.validation])
        assert set(custom) <= set(fold.train)
        assert set(fold.train) - set(custom) == {
            int(np.flatnonzero(ids == u)[0]) for u in alone_ids[same.train]
        }


def test_a_run_reports_each_corpus_beside_the_pooled_scores(tiny_corpus, second_corpus, tmp_path, warm_cache):
    from ser.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "train",
            _recipe(tmp_path),
            "--data-root",
            f"synthetic={tiny_corpus}",
            "--data-root",
            f"custom={second_corpus}",
            "--out",
            str(out),
            "--no-final",
            "--jobs",
            "1",
            *[a for s in TINY for a in ("--set", s)],
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    per = results["per_corpus"]
    assert set(per) == {"synthetic", "custom"}
    assert per["synthetic"]["n"] == 36 and per["custom"]["n"] == 24
    assert sum(f["n"] for f in results["folds"]) == 36 + 24
    assert per["synthetic"]["folds"] == 3 and per["custom"]["folds"] == 2
    md = (out / "results.md").read_text()
    assert "| synthetic | 36 |" in md and "| custom | 24 |" in md
    run = json.loads((out / "run.json").read_text())
    assert run["trained_on"]["speakers"] == {
        "custom": ["spk01", "spk02"],
        "synthetic": ["spk01", "spk02", "spk03"],
    }


def test_roots_must_name_each_corpus(tmp_path, capsys):
    from ser.cli import main
    from ser.recipe import load_recipe
    from ser.training.sources import resolve_roots

    recipe = load_recipe(_recipe(tmp_path))
    with pytest.raises(ConfigError, match="no --data-root for custom"):
        resolve_roots(recipe, ["synthetic=/x"])
    with pytest.raises(ConfigError, match="expected --data-root NAME=DIR for each. Received: --data-root /x"):
        resolve_roots(recipe, ["/x", "custom=/y"])
    assert main(["check", _recipe(tmp_path), "--data-root", "tess=/x"]) == 2
    assert "expected --data-root NAME=DIR" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="reads one corpus; expected one --data-root DIR"):
        resolve_roots(load_recipe("synthetic"), ["/x", "/y"])
    assert resolve_roots(load_recipe("synthetic"), ["synthetic=/x"]) == "/x"


def test_bad_corpus_lists_are_refused(tmp_path):
    from ser.recipe import load_recipe

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "recipe.toml").write_text('[corpus]\ncorpora = ["synthetic", "synthetic"]\n')
    with pytest.raises(ConfigError, match="two or more different corpora"):
        load_recipe(str(tmp_path / "one"))
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['corpus.name'\]"):
        load_recipe("synthetic", ['corpus.corpora=["synthetic", "tess"]'])
    with pytest.raises(ConfigError, match="train_only must list some"):
        load_recipe(_recipe(tmp_path, 'train_only = ["synthetic", "custom"]'))


def test_check_describes_several_corpora(tiny_corpus, second_corpus, tmp_path):
    from ser.training import check_corpus

    text = check_corpus(
        _recipe(tmp_path),
        data_root=[f"synthetic={tiny_corpus}", f"custom={second_corpus}"],
        decode=False,
        progress=False,
    )
    assert "synthetic:spk03" in text and "custom:spk02" in text
    assert "fold 5: test" in text
