"""Training one model (:mod:`ser.training.fit`): the schedule, a reused trainer, keep-best."""

import pytest

from ser.errors import ConfigError


def test_warmup_cosine_matches_keras_cosine_decay():
    import keras
    import numpy as np

    from ser.training.fit import warmup_cosine

    ours = warmup_cosine(3e-3)
    ours.set_lengths(7, 50)
    reference = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=50, warmup_target=3e-3, warmup_steps=7
    )
    for step in [0, 1, 3, 6, 7, 8, 20, 56, 57, 80]:
        assert float(ours(step)) == pytest.approx(float(reference(step)), abs=1e-8), step
    ours.set_lengths(3, 10)
    assert float(ours(13)) == pytest.approx(0.0, abs=1e-9)
    assert np.isclose(float(ours(3)), 3e-3)


def test_reused_trainer_gives_the_same_model_as_a_fresh_one():
    """A trainer reused after another fold trains exactly what a freshly built one would."""
    import numpy as np

    from ser.recipe import load_recipe
    from ser.training.fit import Trainer, train_model

    recipe = load_recipe("synthetic", ["training.epochs=2", "training.batch_size=4"])
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    n_mels = recipe["frontend"].n_mels

    def data(n, offset):
        feats = [
            rng.standard_normal((int(rng.integers(60, 140)), n_mels)).astype(np.float32) + offset
            for _ in range(n)
        ]
        return feats, np.arange(n) % 3

    fold_a, fold_b, val = data(10, 1.0), data(13, -0.5), data(6, 0.0)
    trainer = Trainer(labels, recipe)
    train_model(*fold_a, *val, labels, recipe, trainer=trainer)  # another fold first
    reused, _ = train_model(*fold_b, *val, labels, recipe, trainer=trainer, info={"fold": 2})
    reused_weights = [np.array(w) for w in reused.get_weights()]
    fresh, _ = train_model(*fold_b, *val, labels, recipe, info={"fold": 2})
    for a, b in zip(reused_weights, fresh.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert reused is trainer.model and reused.get_layer("ser_metadata").info["fold"] == 2


def test_keep_last_or_best_epoch():
    import numpy as np

    from ser.recipe import load_recipe
    from ser.training.fit import Trainer, train_model

    rng = np.random.default_rng(1)
    labels = ["a", "b", "c"]

    def data(n, offset):
        feats = [
            rng.standard_normal((int(rng.integers(60, 140)), 64)).astype(np.float32) + offset * (i % 3)
            for i in range(n)
        ]
        return feats, np.arange(n) % 3

    train, val = data(12, 0.5), data(6, 0.5)
    base = [
        "training.epochs=6",
        "training.batch_size=4",
        "training.patience=0",
        "model.widths=[4, 8, 8, 8, 8]",
    ]
    trainer = Trainer(labels, load_recipe("synthetic", base))
    runs = {}
    for keep in ("last", "best"):
        recipe = load_recipe("synthetic", [*base, f"training.keep='{keep}'"])
        model, history = train_model(*train, *val, labels, recipe, trainer=trainer)
        runs[keep] = ([np.array(w) for w in model.get_weights()], history)
    (last, h_last), (best, h_best) = runs["last"], runs["best"]
    # the same training (same seed); only the kept weights differ
    assert [p["val_ua"] for p in h_last["curve"]] == [p["val_ua"] for p in h_best["curve"]]
    assert h_last["best_epoch"] == 6
    top = max(p["val_ua"] for p in h_best["curve"])
    assert h_best["curve"][h_best["best_epoch"] - 1]["val_ua"] == top == h_best["best_val_ua"]
    same = all(np.allclose(a, b) for a, b in zip(last, best, strict=True))
    assert same == (h_best["best_epoch"] == 6)
    with pytest.raises(ConfigError, match="training.keep"):
        load_recipe("synthetic", ["training.keep='first'"])


def test_only_the_training_files_speed_copies_are_cut_into_crops(monkeypatch):
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    import ser.training.fit
    from ser.protocol import make_folds, member_splits
    from ser.recipe import TrainingConfig

    manifest = pd.DataFrame(
        {
            "path": [f"{i}.wav" for i in range(60)],
            "label": np.arange(60) % 3,
            "speaker": [f"s{i % 6}" for i in range(60)],
        }
    )
    protocol = {"kind": "group_kfold", "group": "speaker", "k": 3, "seed": 0}
    fold = make_folds(manifest, protocol, seed=0)[0]
    split = member_splits(manifest, fold, protocol, TrainingConfig())[0]
    copies = [(f"slow {i}", f"fast {i}") for i in range(60)]
    seen = {}

    def fake_train_model(train_features, *args, train_copies=None, **kwargs):
        seen["features"], seen["copies"] = train_features, train_copies
        return None, {}

    monkeypatch.setattr(ser.training.fit, "train_model", fake_train_model)
    features = [f"file {i}" for i in range(60)]
    y = np.arange(60) % 3
    recipe = {"training": TrainingConfig()}
    data = SimpleNamespace(features=features, y=y, copies=copies)
    ser.training.fit.train_split(
        split, data, ["a", "b", "c"], recipe, info={}, board=None, prefix="", trainer=None
    )
    assert seen["features"] == [f"file {i}" for i in split.train]
    assert seen["copies"] == [(f"slow {i}", f"fast {i}") for i in split.train]
    assert not {int(c[0].split()[1]) for c in seen["copies"]} & {*fold.test, *split.validation}
    data = SimpleNamespace(features=features, y=y, copies=None)
    ser.training.fit.train_split(
        split, data, ["a", "b", "c"], recipe, info={}, board=None, prefix="", trainer=None
    )
    assert seen["copies"] is None
