"""Memory and time of ``ser train`` as the corpus grows: synthetic corpora of 2,000 to 100,000 files.

For each size, a synthetic corpus of short utterances (``corpora/synthetic.py``, 50 speakers,
4 classes, every file ``--duration`` seconds) is generated once under ``--out`` (reused by
later runs) and then, each in a fresh process:

1. **features**: the ``synthetic`` recipe's feature extraction on every core (log-mel,
   speed copies, the pack of :mod:`ser.store`; the functionals head only with
   ``--functionals``: its pitch tracking costs ten times the rest), from an empty cache;
2. **one fold**: fold 1 of the recipe's speaker-grouped 3-fold cross-validation, trained
   for ``--epochs`` epoch(s) from that cache (``--jobs 1``: one process).

It prints each size's extraction time, time per epoch (training steps and the validation
pass; with ``--max-steps``, the steps are capped and the epoch time is scaled up to the
full epoch from the time per step), peak RSS of each process (``os.wait4``: the child's
own peak resident memory), and the ratios between sizes. Target (issue 32): peak RSS of
the fold at 100,000 files within 1.3 x that at 20,000, and time per epoch linear in files.

Usage::

    python benchmarks/bench_scale.py --out /tmp/ser-scale --sizes 2000,20000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPEAKERS = 50
CLASSES = 4


def corpus(out: Path, size: int, duration: float) -> tuple[Path, float]:
    """The corpus of about ``size`` files (generated on every core unless already there) and
    the seconds generating it took (0 when reused)."""
    from corpora import synthetic

    per_class = max(1, round(size / (SPEAKERS * CLASSES)))
    root = out / f"corpus-{size}"
    t0 = time.perf_counter()
    synthetic.generate(
        root, n_speakers=SPEAKERS, per_class=per_class, seed=0, duration=duration, workers=os.cpu_count() or 1
    )
    return root, time.perf_counter() - t0


def _prepare(root: str, cache: str, overrides: list, n_jobs: int):
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, prepare_corpus

    recipe = load_recipe("synthetic", overrides)
    manifest = load_manifest(recipe, root, skip_bad=False, decode=False, progress=False)
    return recipe, prepare_corpus(
        recipe, manifest, skip_bad=False, cache_dir=cache, progress=False, n_jobs=n_jobs
    )


def child_features(root: str, cache: str, overrides: list) -> dict:
    t0 = time.perf_counter()
    _, data = _prepare(root, cache, overrides, -1)
    return {"files": len(data.manifest), "seconds": time.perf_counter() - t0}


def child_fold(root: str, cache: str, overrides: list, run: str, max_steps: int) -> dict:
    """Fold 1 of the recipe, its ``fit_epochs`` timed (steps capped at ``max_steps`` if > 0)."""
    import itertools

    import ser.training.fit as fit
    from ser.protocol import make_folds
    from ser.training.fold import model_info, train_folds

    recipe, data = _prepare(root, cache, overrides, 1)
    folds = make_folds(data.manifest, recipe["protocol"], seed=recipe["training"].seed)
    timed, real = {}, fit.fit_epochs

    def fit_epochs(trainer, epochs, make_epoch, callbacks):
        steps = []

        def epoch():
            batches = make_epoch()
            if max_steps > 0:
                batches = itertools.islice(batches, max_steps)
            steps.append(0)
            for batch in batches:
                steps[-1] += 1
                yield batch

        t0 = time.perf_counter()
        history = real(trainer, epochs, epoch, callbacks)
        timed.update(seconds=(time.perf_counter() - t0) / len(history["loss"]), steps=steps[0])
        return history

    fit.fit_epochs = fit_epochs
    fold = folds[0]
    batch = recipe["training"].batch_size
    full = -(-len(fold.train) // batch)  # steps of a full epoch (ser.training.fit.crop_batches)
    train_folds(
        data,
        [fold],
        recipe,
        Path(run),
        info=model_info(recipe),
        n_folds=len(folds),
        get_trainer=lambda: fit.Trainer(data.labels, recipe),
    )
    return {"train": len(fold.train), "validation": len(fold.validation), "full_steps": full, **timed}


def in_child(args: list) -> tuple[dict, int]:
    """Run this script with ``--child ARGS`` in a fresh process: ``(its JSON result, its peak RSS in bytes)``."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(args)], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"error: child {args[0]} failed (status {status})")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="folder for the corpora (kept) and runs (outside the repo)")
    ap.add_argument("--sizes", default="2000,20000,100000", help="comma list of corpus sizes")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per utterance")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0, help="cap training steps per epoch (0: none)")
    ap.add_argument("--set", action="append", default=[], help="recipe overrides (key=value)")
    ap.add_argument(
        "--functionals",
        action="store_true",
        help="keep the functionals head (about 0.23 s of extraction per 1 s file: hours at 100,000 files)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        result = child_features(*rest) if kind == "features" else child_fold(*rest)
        print(json.dumps(result), flush=True)
        return 0
    if not args.out:
        ap.error("--out is required")
    out = Path(args.out).resolve()
    overrides = [f"training.epochs={args.epochs}", *([] if args.functionals else ["model.functionals=false"])]
    overrides += args.set
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        root, generated = corpus(out, size, args.duration)
        cache, run = out / f"cache-{size}", out / f"run-{size}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        feats, feats_rss = in_child(["features", str(root), str(cache), overrides])
        fold, fold_rss = in_child(["fold", str(root), str(cache), overrides, str(run), args.max_steps])
        per_step = fold["seconds"] / max(fold["steps"], 1)
        epoch = fold["seconds"] + per_step * (fold["full_steps"] - fold["steps"])  # (equal unless capped)
        rows.append(
            {
                "size": feats["files"],
                "generated": generated,
                "features": feats["seconds"],
                "features_rss": feats_rss,
                "epoch": epoch,
                "steps": fold["steps"],
                "full_steps": fold["full_steps"],
                "train": fold["train"],
                "fold_rss": fold_rss,
            }
        )
        r = rows[-1]
        print(
            f"{r['size']:>7} files: generated in {generated:.0f} s; features {r['features']:.0f} s "
            f"(peak RSS {feats_rss / 2**20:.0f} MiB); one fold ({r['train']} training files): "
            f"{r['epoch']:.1f} s per epoch ({r['steps']} of {r['full_steps']} steps run), "
            f"peak RSS {fold_rss / 2**20:.0f} MiB",
            flush=True,
        )
    print(
        f"\nprotocol: synthetic recipe, fold 1 of speaker-grouped 3-fold CV, {args.epochs} epoch(s); "
        f"overrides {overrides}; {args.duration:g} s utterances, {SPEAKERS} speakers, {CLASSES} classes"
    )
    for a, b in zip(rows, rows[1:], strict=False):
        n = b["size"] / a["size"]
        print(
            f"{a['size']} -> {b['size']} files (x{n:.1f}): fold peak RSS x{b['fold_rss'] / a['fold_rss']:.2f} "
            f"(target <= 1.3), time per epoch x{b['epoch'] / a['epoch']:.2f} (linear: x{n:.1f}), "
            f"features x{b['features'] / a['features']:.2f}"
        )
    (out / "bench_scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # corpora/ of this checkout
    raise SystemExit(main())
