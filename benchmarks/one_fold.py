"""One fold of the ``ravdess`` recipe, for benchmarks that train its model on the fold's training
actors and look at its held-out test actors (``bench_gain.py``, ``bench_attention_deletion.py``).

The corpus is loaded and checked as ``ser train`` does, features come from (or go to) the
cache, and the model is trained by the recipe's own code: validation actors drawn from the
training actors choose its best epoch; the test actors are never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Fold:
    """The recipe, its prepared corpus (:class:`ser.training.prepare.Prepared`, also as its
    fields) and one fold."""

    recipe: dict
    manifest: object
    labels: list
    features: list
    y: np.ndarray
    functionals: np.ndarray | None
    copies: list | None
    fold: object
    split: object
    speakers: np.ndarray
    data: object


def prepare_fold(overrides: list[str], data_root: str, fold_number: int, cache: str) -> Fold:
    """The ``ravdess`` recipe with ``overrides``, the corpus under ``data_root`` and fold
    ``fold_number`` (1-based) of its folds with its first member's split."""
    from ser.protocol import make_folds, member_splits
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, prepare_corpus

    recipe = load_recipe("ravdess", overrides)
    manifest = load_manifest(recipe, data_root, skip_bad=False, progress=False)
    d = prepare_corpus(recipe, manifest, skip_bad=False, cache_dir=Path(cache), progress=False)
    fold = make_folds(d.manifest, recipe["protocol"], seed=recipe["training"].seed)[fold_number - 1]
    split = member_splits(d.manifest, fold, recipe["protocol"], recipe["training"])[0]
    return Fold(
        recipe, d.manifest, d.labels, d.features, d.y, d.functionals, d.copies, fold, split, d.speakers, d
    )


def train_fold_model(f: Fold, board: Path):
    """The recipe's CNN trained on the fold's training actors (TensorBoard logs in ``board``)."""
    from ser.training.fit import train_split

    model, _ = train_split(f.split, f.data, f.labels, f.recipe, info={}, board=board, prefix="", trainer=None)
    return model
