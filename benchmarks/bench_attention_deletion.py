"""Do the attention maps point where the CNN heard the emotion? A deletion test on held-out actors.

``ser attention`` draws ``t_k * h``, the evidence for class ``k`` per Conv5 cell (the CNN's
logit is its mean). A map can look plausible and still not be what the network's decision
depends on: the conv layers before the pooling mix neighbouring cells. This benchmark checks
the map against the network itself, with the *deletion* test (Petsiuk et al., RISE, BMVC
2018; Samek et al., IEEE TNNLS 2017): it removes the input regions a map ranks highest and
measures how fast the CNN's belief in its own prediction falls. A faithful map makes it fall
faster than removing regions at random.

It trains the ``ravdess`` recipe's model on the training actors of one fold (validation actors
from the training actors, as the recipe does), then, for each file of the fold's held-out test
actors, takes the class the CNN alone predicts and ranks the file's Conv5 cells (160 ms x 8
mel bands: the regions the picture colours) by

- ``t*h``: the evidence ``t_k * h`` for the predicted class, highest first (what the
  picture's red marks);
- ``|h|``: the bottom-up map alone, largest magnitude first (class-agnostic);
- ``loudness``: the cell's mean log-mel power in the input, loudest first (a baseline that
  needs no model: "the model listens to the loud parts");
- ``random``: a random order (the mean of three).

For each ranking it replaces the top 5, 10, 20, 30 and 50 % of the cells' input regions by the
training actors' mean log-mel power of each band (the value the model's input normalisation
maps to zero) and reports the mean probability the CNN still gives its first prediction, the
share of files whose prediction is unchanged, and the CNN's UA on the test actors. The drop
for a ranking divided by the drop at random is the ratio printed: above 1, the ranking finds
the regions the decision rests on better than chance.

With ``--occlusion`` it also occludes each cell alone (one forward pass per cell), reports
the Spearman correlation, per file, between each ranking's scores and the fall of the
predicted class's logit when that cell alone is replaced, and adds the ranking by that fall
(``occlusion``: an oracle that costs a forward pass per cell, the best a map of single cells
can be expected to do). ``t*h 3x3`` is the evidence summed over each cell and its 8
neighbours, since an input region feeds the neighbouring cells too.

Usage::

    python benchmarks/bench_attention_deletion.py --ravdess ../shared/corpora/ravdess [--fold 1] [--occlusion] [--set KEY=VALUE ...]

The model file of a fold can be kept with ``--keep FILE.keras`` and reused by a later run with
the same fold and settings (the fold, its test actors and the settings are stored beside it
and checked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
RANKINGS = ("t*h", "t*h 3x3", "|h|", "loudness", "random")
RANDOM_REPEATS = 3


def fold_model(overrides: list[str], data_root: str, fold_number: int, cache: str, keep: str | None):
    """Train (or reload from ``keep``) the recipe's CNN on one fold's training actors.

    Returns the model, the fold's test features (as the model takes them), their labels,
    the label names, the training features' per-band mean, the test actors and the strides.
    """
    from one_fold import prepare_fold, train_fold_model

    from ser.normalization import feature_stats, normalize

    f = prepare_fold(overrides, data_root, fold_number, cache)
    recipe, fold, split, speakers = f.recipe, f.fold, f.split, f.speakers
    stamp = {"fold": fold_number, "test": list(map(str, fold.test_groups)), "set": sorted(overrides)}
    model = None
    if keep and Path(keep).exists():
        import keras

        import ser.layers  # noqa: F401  (registers the model's layers for loading)

        saved = json.loads(Path(keep + ".json").read_text())
        if saved != stamp:
            raise SystemExit(f"{keep} was trained for {saved}, not {stamp}; remove it or pick another --keep")
        model = keras.models.load_model(keep)
        print(f"  reloaded {keep}", flush=True)
    if model is None:
        t0 = time.time()
        model = train_fold_model(f, Path(cache) / "bench_deletion_tb")
        print(
            f"  trained on {len(split.train)} files of the training actors in {time.time() - t0:.0f} s",
            flush=True,
        )
        if keep:
            model.save(keep)
            Path(keep + ".json").write_text(json.dumps(stamp))
    normalization = recipe["features"]["normalization"]
    features = f.features
    test = normalize([features[i] for i in fold.test], speakers[fold.test].tolist(), normalization)
    train = normalize([features[i] for i in split.train], speakers[split.train].tolist(), normalization)
    mean, _ = feature_stats(train)
    return model, test, f.y[fold.test], f.labels, mean, list(fold.test_groups), recipe["model"].time_stride


def cell_maps(model, features: list[np.ndarray], time_stride: int):
    """Per file: the CNN's logits, and per Conv5 cell of its valid frames the evidence ``t_k*h``
    for its predicted class ``k``, the bottom-up map ``h`` (summed over the rank) and the cell
    size in frames and bands."""
    from ser.features import pad_batch
    from ser.model import feature_map_model

    fmap = feature_map_model(model)
    head = model.get_layer("head")
    out = []
    for i in range(len(features)):
        x, m = pad_batch([features[i]], multiple=time_stride)
        X, mask = fmap([x, m], training=False)
        logits, maps = head(X, mask=mask, return_attention=True)
        logits = np.asarray(logits, dtype=np.float64)[0]
        td = np.asarray(maps["top_down"])[0]  # (t', f', k * rank)
        bu = np.asarray(maps["bottom_up"])[0]  # (t', f', rank)
        rank = bu.shape[-1]
        k = int(np.argmax(logits))
        cells = int(np.asarray(mask)[0].sum())
        evidence = (td[..., k * rank : (k + 1) * rank] * bu).sum(-1)[:cells]
        st = x.shape[1] // X.shape[1]
        sf = -(-x.shape[2] // X.shape[2])
        out.append(
            {"logits": logits, "k": k, "th": evidence, "h": np.abs(bu.sum(-1))[:cells], "st": st, "sf": sf}
        )
    return out


def cell_loudness(f: np.ndarray, st: int, sf: int, shape: tuple) -> np.ndarray:
    """Mean input value (log-mel power) over each cell's frames and bands."""
    t, b = shape
    out = np.zeros(shape)
    for i in range(t):
        for j in range(b):
            out[i, j] = f[i * st : (i + 1) * st, j * sf : (j + 1) * sf].mean()
    return out


def cell_scores(m: dict, f: np.ndarray) -> dict:
    """Each ranking's score per cell of one file (``m`` from :func:`cell_maps`), random aside."""
    loud = cell_loudness(f, m["st"], m["sf"], m["th"].shape)
    return {"t*h": m["th"], "t*h 3x3": smoothed(m["th"]), "|h|": m["h"], "loudness": loud}


def smoothed(evidence: np.ndarray) -> np.ndarray:
    """The evidence summed over each cell's 3x3 neighbourhood of cells: an input region also
    feeds its neighbours' Conv5 cells (their receptive fields overlap it)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(evidence, size=3, mode="constant")


def occlude(f: np.ndarray, cells, st: int, sf: int, fill: np.ndarray) -> np.ndarray:
    """``f`` with the input regions of ``cells`` ((time, band) index pairs) set to ``fill`` per band."""
    g = f.copy()
    for i, j in cells:
        g[i * st : (i + 1) * st, j * sf : (j + 1) * sf] = fill[j * sf : (j + 1) * sf]
    return g


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ravdess", required=True, help="RAVDESS speech root (Actor_01 ... Actor_24)")
    p.add_argument("--fold", type=int, default=1, help="which of the recipe's 6 folds (default 1)")
    p.add_argument("--cache", default="runs/.ser-cache", help="feature cache folder")
    p.add_argument("--keep", help="save the fold's model here (FILE.keras), or reload it if it exists")
    p.add_argument("--occlusion", action="store_true", help="also occlude each cell alone and correlate")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rankings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe overrides")
    args = p.parse_args(argv)

    from ser.attention.maps import occlusion_falls
    from ser.evaluation import scores
    from ser.runtime import predict_logits, softmax

    t_start = time.time()
    model, feats, y, labels, fill, test_actors, stride = fold_model(
        args.set, args.ravdess, args.fold, args.cache, args.keep
    )
    maps = cell_maps(model, feats, stride)
    base = predict_logits(model, feats, multiple=stride)
    pred = base.argmax(1)
    own = np.array([m["k"] for m in maps])
    if not np.array_equal(own, pred):  # one file at a time and batched must agree
        print(f"  note: {int((own != pred).sum())} file(s) predicted differently batched", flush=True)
    k = own
    n_classes = len(labels)
    p0 = softmax(base)[np.arange(len(k)), k]
    ua0 = scores(y, pred, n_classes)["ua"]

    # With --occlusion: each cell's own importance, the fall of the predicted class's logit
    # when its input region alone is replaced; a ranking by it is the oracle of the deletion.
    drops, corr = [], {}
    if args.occlusion:
        corr = {name: [] for name in RANKINGS[:-1]}
        for m, f in zip(maps, feats, strict=True):
            # what `ser attention --occlusion` draws, computed by the same function
            falls = occlusion_falls([model], f, m["k"], m["st"], m["sf"], multiple=stride, name="fold model")
            drops.append(falls.ravel().astype(np.float64))
            for name, key in cell_scores(m, f).items():
                corr[name].append(spearman(key.ravel(), drops[-1]))
    rankings = RANKINGS + (("occlusion",) if drops else ())

    rng = np.random.default_rng(args.seed)
    orders = {}  # ranking -> per file list of orders (random: RANDOM_REPEATS of them)
    for m, f in zip(maps, feats, strict=True):
        for name, key in cell_scores(m, f).items():
            orders.setdefault(name, []).append([np.argsort(-key.ravel(), kind="stable")])
        orders.setdefault("random", []).append([rng.permutation(m["th"].size) for _ in range(RANDOM_REPEATS)])
    if drops:
        orders["occlusion"] = [[np.argsort(-d, kind="stable")] for d in drops]

    prob = {}
    kept = {}
    ua = {}
    for name in rankings:
        for frac in FRACTIONS:
            ps, same, preds = [], [], []
            for r in range(len(orders[name][0])):
                occluded = []
                for m, f, o in zip(maps, feats, orders[name], strict=True):
                    shape = m["th"].shape
                    n = max(1, int(round(frac * o[r].size)))
                    cells = [np.unravel_index(c, shape) for c in o[r][:n]]
                    occluded.append(occlude(f, cells, m["st"], m["sf"], fill))
                logits = predict_logits(model, occluded, multiple=stride)
                ps.append(softmax(logits)[np.arange(len(k)), k])
                same.append(logits.argmax(1) == k)
                preds.append(logits.argmax(1))
            prob[name, frac] = float(np.mean(ps))
            kept[name, frac] = float(np.mean(same))
            ua[name, frac] = float(np.mean([scores(y, q, n_classes)["ua"] for q in preds]))
        print(f"  {name}: done", flush=True)

    print(
        f"\nRAVDESS 8 classes, fold {args.fold} of the recipe's actor-grouped 6-fold (test actors "
        f"{', '.join(test_actors)}, never in training); {len(k)} test files; the CNN alone "
        f"(UA {ua0:.3f}), its predicted class; cells' input regions set to the training mean."
    )
    print(f"mean probability of the first prediction (before any deletion: {p0.mean():.3f}):")
    header = "".join(f"{int(f * 100):>8d}%" for f in FRACTIONS)
    print(f"{'deleted':12s}{header}")
    for name in rankings:
        print(f"{name:12s}" + "".join(f"{prob[name, f]:9.3f}" for f in FRACTIONS))
    print("drop in that probability, as a ratio to the drop at random:")
    for name in (n for n in rankings if n != "random"):
        cells = []
        for f in FRACTIONS:
            d_rand = p0.mean() - prob["random", f]
            d = p0.mean() - prob[name, f]
            cells.append(d / d_rand if d_rand > 1e-9 else float("nan"))
        print(f"{name:12s}" + "".join(f"{c:9.2f}" for c in cells))
    print("share of files whose prediction is unchanged:")
    for name in rankings:
        print(f"{name:12s}" + "".join(f"{kept[name, f]:9.3f}" for f in FRACTIONS))
    print(f"UA of the CNN on the test actors (labels), before any deletion {ua0:.3f}:")
    for name in rankings:
        print(f"{name:12s}" + "".join(f"{ua[name, f]:9.3f}" for f in FRACTIONS))
    if corr:
        print(
            "Spearman correlation per file with the logit's fall when the cell alone is replaced (mean, median):"
        )
        for name, c in corr.items():
            c = np.array(c, dtype=float)
            print(f"{name:12s}{np.nanmean(c):9.3f}{np.nanmedian(c):9.3f}")
    print(f"\n{time.time() - t_start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
