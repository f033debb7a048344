"""Several corpora in one run: their roots, one manifest, folds, per-corpus scores.

A recipe lists several corpora with ``[corpus] corpora = ["ravdess", "tess"]`` (each read by
its own loader, ``corpus.options.<name>`` its options) and is given one root per corpus,
``--data-root ravdess=DIR --data-root tess=DIR``. The loaders emit the canonical labels
(:data:`ser.corpora.base.CANONICAL_LABELS`), so one class set covers them all: the union of
theirs. Speakers are named ``"<corpus>:<speaker>"``, so that two corpora's speaker ids
cannot collide and folds group by corpus and speaker; the manifest's ``corpus`` column says
where each row comes from.

``corpus.train_only`` names corpora that only add training data: the folds are made from the
other corpora's rows exactly as a run on those alone makes them (the same test and
validation speakers), and every training set also holds every row of the train-only
corpora. This is the comparison "does adding corpus B help on corpus A", with A's test
folds unchanged.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ser.corpora.base import CANONICAL_LABELS, absolute_root
from ser.errors import ConfigError
from ser.evaluation import scores

#: Joins a corpus name and its speaker id into a speaker of a several-corpora run.
SEPARATOR = ":"


def is_several(recipe: dict) -> bool:
    """Whether ``recipe`` lists several corpora."""
    return "corpora" in recipe["corpus"]


def resolve_roots(recipe: dict, data_root, *, absolute: bool = True):
    """The corpus root(s) of a run, made absolute (:func:`ser.corpora.base.absolute_root`)
    unless ``absolute`` is false (a one-corpus root is then returned as given, for its
    loader to check).

    Parameters
    ----------
    recipe : dict
    data_root : str, PathLike, list of str or dict
        One folder (a one-corpus recipe), ``NAME=DIR`` strings (``--data-root``, repeatable)
        or ``{name: folder}``.

    Returns
    -------
    str or dict
        The folder of a one-corpus recipe; ``{name: folder}`` for several, one per corpus.

    Raises
    ------
    ConfigError
        A root missing or unknown, or given twice.
    """
    names = [c["name"] for c in recipe["corpus"]["corpora"]] if is_several(recipe) else None
    items = data_root if isinstance(data_root, (list, tuple)) else [data_root]
    if isinstance(data_root, dict):
        items = [f"{k}={v}" for k, v in data_root.items()]
    if names is None:
        if len(items) != 1:
            raise ConfigError(
                f"recipe {recipe['name']} reads one corpus; expected one --data-root DIR. Received: {items}"
            )
        root = os.fspath(items[0])
        prefix = f"{recipe['corpus']['name']}="
        root = root[len(prefix) :] if root.startswith(prefix) else root
        return str(absolute_root(root)) if absolute else root
    roots = {}
    for item in map(os.fspath, items):
        name, sep, folder = item.partition("=")
        if not sep or name not in names:
            raise ConfigError(
                f"recipe {recipe['name']} reads {', '.join(names)}; expected --data-root NAME=DIR for each. "
                f"Received: --data-root {item}"
            )
        if name in roots:
            raise ConfigError(f"--data-root {name}= given twice; expected one folder per corpus")
        roots[name] = str(absolute_root(folder))
    missing = [n for n in names if n not in roots]
    if missing:
        raise ConfigError(
            f"recipe {recipe['name']} reads {', '.join(names)}; no --data-root for {', '.join(missing)} "
            f"(expected --data-root {missing[0]}=DIR)"
        )
    return roots


def load_several(recipe: dict, roots: dict, load_one):
    """One manifest of every corpus of ``recipe``: ``load_one(name, root, options)`` gives each
    corpus's manifest; speakers are namespaced (``"<corpus>:<speaker>"``) and a ``corpus``
    column added; ``attrs``: ``corpus`` (the recipe's corpus name), ``root`` (the roots'
    common folder), ``roots``, and ``classes``, the union in canonical order."""
    import pandas as pd

    frames, classes = [], set()
    for source in recipe["corpus"]["corpora"]:
        name = source["name"]
        frame = load_one(name, roots[name], source["options"])
        classes |= set(frame.attrs.get("classes") or frame["label"].unique())
        frame = frame.assign(
            corpus=name, speaker=[f"{name}{SEPARATOR}{s}" for s in frame["speaker"].astype(str)]
        )
        frames.append(frame)
    manifest = pd.concat(frames, ignore_index=True)
    order = [c for c in CANONICAL_LABELS if c in classes] + sorted(classes - set(CANONICAL_LABELS))
    manifest.attrs.update(
        {
            "corpus": recipe["corpus"]["name"],
            "root": os.path.commonpath(list(roots.values())),
            "roots": dict(roots),
            "classes": tuple(order),
        }
    )
    return manifest


def train_only_rows(manifest, recipe: dict) -> np.ndarray:
    """The rows of the recipe's train-only corpora (``corpus.train_only``), as a boolean mask."""
    extra = recipe["corpus"].get("train_only") or []
    if not extra or "corpus" not in manifest.columns:
        return np.zeros(len(manifest), dtype=bool)
    return manifest["corpus"].isin(extra).to_numpy()


def tested_part(manifest, recipe: dict):
    """``(tested manifest, its rows in manifest)``: the rows folds are made of (all but the
    train-only corpora's), re-indexed from 0."""
    rows = np.flatnonzero(~train_only_rows(manifest, recipe))
    attrs = dict(manifest.attrs)
    part = manifest.iloc[rows].reset_index(drop=True)
    part.attrs.update(attrs)
    return part, rows


def extend_folds(folds: list, rows: np.ndarray, extra: np.ndarray) -> list:
    """Folds made on a tested part (:func:`tested_part`) with their rows mapped back to the
    whole manifest (``rows``), and the train-only rows ``extra`` added to each training set."""
    return [
        replace(
            fold,
            train=np.concatenate([rows[fold.train], extra]),
            validation=rows[fold.validation],
            test=rows[fold.test],
        )
        for fold in folds
    ]


def per_corpus(done: list[dict], folds: list, manifest, n_classes: int) -> dict:
    """Each corpus's scores in finished folds: ``{corpus: {"n", "folds", "ua_mean", "ua_std",
    "wa_mean", "pooled": {wa, ua, macro_f1, confusion}[, "adapted_pooled"]}}``.

    Parameters
    ----------
    done : list of dict
        The finished folds' ``result.json`` (their ``y_true``/``y_pred`` in the fold's test order).
    folds : list of ser.protocol.Fold
        The run's folds, with the test rows of each.
    manifest : pandas.DataFrame
        With a ``corpus`` column.
    """
    by_number = {f.number: f for f in folds}
    corpus = manifest["corpus"].to_numpy()
    got = {}
    for r in done:
        where = corpus[by_number[r["fold"]].test]
        for name in np.unique(where):
            keep = where == name
            entry = got.setdefault(str(name), {"y": [], "p": [], "a": [], "ua": [], "wa": []})
            y, p = np.asarray(r["y_true"])[keep], np.asarray(r["y_pred"])[keep]
            entry["y"].append(y)
            entry["p"].append(p)
            if "adapted" in r and "y_pred" in r["adapted"]:
                entry["a"].append(np.asarray(r["adapted"]["y_pred"])[keep])
            s = scores(y, p, n_classes)
            entry["ua"].append(s["ua"])
            entry["wa"].append(s["wa"])
    out = {}
    for name, e in got.items():
        y = np.concatenate(e["y"])
        pooled = scores(y, np.concatenate(e["p"]), n_classes)
        out[name] = {
            "n": int(len(y)),
            "folds": len(e["ua"]),
            "ua_mean": float(np.mean(e["ua"])),
            "ua_std": float(np.std(e["ua"])),
            "wa_mean": float(np.mean(e["wa"])),
            "pooled": {k: pooled[k] for k in ("wa", "ua", "macro_f1", "confusion")},
        }
        if len(e["a"]) == len(e["y"]):
            adapted = scores(y, np.concatenate(e["a"]), n_classes)
            out[name]["adapted_pooled"] = {k: adapted[k] for k in ("wa", "ua", "macro_f1")}
    return out
