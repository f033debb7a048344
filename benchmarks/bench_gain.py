"""Robustness to the recording level: one RAVDESS fold, its test actors played quieter and louder.

A user's recording is rarely at the level of the training corpus: another microphone,
distance or gain setting moves it by 10-20 dB. This benchmark trains the ``ravdess``
recipe's model on the training actors of one fold (validation actors from the training
actors, as the recipe does; the functionals head on the same rows), then scores the fold's
test actors with their audio scaled by each gain (louder audio clipped at full scale, as a
recorder would) and prints UA of the fused model, the CNN alone and the functionals head
alone, and each UA as a ratio to the same model's UA at 0 dB.

By default it trains two models in this process, one with the frontend's level
normalisation (``frontend.level_db``, the default) and one with it off (``--set
frontend.level_db=none``: the CNN at the recorded level, as ``ser`` trained it before; the
functionals head is the same level-free one), so the ratios compare them side by side on the
same fold.

Usage::

    python benchmarks/bench_gain.py --ravdess ../shared/corpora/ravdess [--fold 1] [--gains -30,-20,-10,0,6] [--set KEY=VALUE ...]

The numbers in ``recipes/ravdess/README.md`` ("Recording level") were measured before speed
perturbation (2026-11-28); ``--set training.speeds=[] --set model.functionals_speeds=[]``
trains those models again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def scaled(path: str, sample_rate: int, gain_db: float) -> np.ndarray:
    from ser.audio import load_audio

    y = load_audio(path, sample_rate) * np.float32(10.0 ** (gain_db / 20.0))
    return np.clip(y, -1.0, 1.0)


def evaluate(overrides: list[str], data_root: str, fold_number: int, gains: list[float], cache: str) -> dict:
    """UA per (expert, gain) on one fold's test actors, for the recipe with ``overrides``."""
    from one_fold import prepare_fold, train_fold_model

    from ser.evaluation import scores
    from ser.features import model_input
    from ser.functionals import utterance_functionals
    from ser.fusion import FunctionalsHead
    from ser.normalization import normalize
    from ser.runtime import predict_logits
    from ser.training.fusion_weights import fusion_weights, validation_logits

    f = prepare_fold(overrides, data_root, fold_number, cache)
    recipe, manifest, labels, features, y = f.recipe, f.manifest, f.labels, f.features, f.y
    functionals, fold, split = f.functionals, f.fold, f.split
    t0 = time.time()
    model = train_fold_model(f, Path(cache) / "bench_gain_tb")
    speakers = f.speakers
    train = np.concatenate([fold.train, fold.validation])
    head = FunctionalsHead.fit(functionals[train], y[train], speakers[train], len(labels))
    # the fusion weights chosen on the validation actors, as the recipe's folds choose them
    validation = validation_logits(model, split, features, speakers, recipe)
    head.weight, head.speaker_weight = fusion_weights(
        functionals, y, speakers, split.train, validation, len(labels)
    )
    print(f"  trained on {len(train)} files of the training actors in {time.time() - t0:.0f} s", flush=True)
    frontend = recipe["frontend"]
    paths = manifest["path"].tolist()
    out = {}
    for gain in gains:
        waves = [scaled(paths[i], frontend.sample_rate, gain) for i in fold.test]
        feats = normalize(
            [model_input(w, frontend) for w in waves],
            speakers[fold.test].tolist(),
            recipe["features"]["normalization"],
        )
        logits = predict_logits(model, feats, multiple=recipe["model"].time_stride)
        x = np.stack([utterance_functionals(w, frontend.sample_rate) for w in waves])
        own = head.log_probabilities(x)
        for name, s in (("fused", head.fuse(logits, x)), ("CNN alone", logits), ("head alone", own)):
            out[(name, gain)] = scores(y[fold.test], np.asarray(s).argmax(1), len(labels))["ua"]
    return {"ua": out, "test": list(fold.test_groups)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ravdess", required=True, help="RAVDESS speech root (Actor_01 ... Actor_24)")
    p.add_argument("--fold", type=int, default=1, help="which of the recipe's 6 folds (default 1)")
    p.add_argument("--gains", default="-30,-20,-10,0,6", help="comma-separated gains in dB (0 is added)")
    p.add_argument("--cache", default="runs/.ser-cache", help="feature cache folder")
    p.add_argument("--only-default", action="store_true", help="skip the model without level normalisation")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe overrides for both models (e.g. training.speeds=[] for the CNN of before 2026-11-29)",
    )
    args = p.parse_args(argv)
    gains = sorted({float(g) for g in args.gains.split(",")} | {0.0})
    variants = [("level normalised (default)", list(args.set))]
    if not args.only_default:
        variants.append(("recorded level (frontend.level_db=none)", [*args.set, "frontend.level_db=none"]))
    results = {}
    for title, overrides in variants:
        print(f"{title}:", flush=True)
        results[title] = evaluate(overrides, args.ravdess, args.fold, gains, args.cache)
    first = next(iter(results.values()))
    print(
        f"\nRAVDESS 8 classes, fold {args.fold} of the recipe's actor-grouped 6-fold "
        f"(test actors {', '.join(first['test'])}, never in training); UA, and UA / UA at 0 dB:"
    )
    header = "".join(f"{g:+8.0f} dB" for g in gains)
    for title, r in results.items():
        print(f"\n{title}\n{'':14s}{header}")
        for name in ("fused", "CNN alone", "head alone"):
            ua = [r["ua"][(name, g)] for g in gains]
            print(f"{name:14s}" + "".join(f"{u:11.3f}" for u in ua))
            print(f"{'  ratio':14s}" + "".join(f"{u / max(r['ua'][(name, 0.0)], 1e-9):11.2f}" for u in ua))
    return 0


if __name__ == "__main__":
    sys.exit(main())
