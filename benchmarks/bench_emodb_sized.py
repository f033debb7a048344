"""Speed of an EmoDB-sized corpus: the whole ``emodb`` recipe on real speech, timed end to end.

EmoDB is not on this machine, so this benchmark builds a stand-in with EmoDB's layout, size
and protocol out of real RAVDESS speech: 10 actors (5 female, 5 male) become EmoDB's 10
speakers, and their files in EmoDB's 7 emotions (calm standing in for boredom; surprised
left out) are linked as ``wav/<speaker><text><emotion><version>.wav``. That is 520 files
(EmoDB has 535: every RAVDESS actor has 52 in these emotions), about 2.4 s of speech each
after silence trimming (EmoDB: 2.8 s on average).

It then runs ``ser train emodb`` in a fresh process with an empty feature cache (features,
10 leave-one-speaker-out folds and the final model, as a user would) and prints:

- the wall time against the target of issue #3 (an EmoDB-sized corpus in < 10 min);
- the same wall time as a ratio to a reference run in this script: the seconds this
  machine needs to train the default model on 1,000 two-second crops, so that runs on
  other machines can be compared.

Usage::

    python benchmarks/bench_emodb_sized.py --ravdess ../shared/corpora/ravdess --out runs/emodb-sized

``--init MODEL`` fine-tunes from a trained model: one that never heard RAVDESS actors 1-10,
e.g. a ravdess run restricted to actors 13-24 (``--set 'corpus.speakers=["Actor_13", ...]'``).
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

import numpy as np

TARGET_SECONDS = 600

#: RAVDESS emotion code -> EmoDB emotion letter (calm stands in for boredom).
EMOTION_LETTERS = {"01": "N", "02": "L", "03": "F", "04": "T", "05": "W", "06": "A", "07": "E"}
#: RAVDESS actors 1-10 -> EmoDB speakers of the same gender (odd actors are male).
SPEAKERS = {1: "03", 3: "10", 5: "11", 7: "12", 9: "15", 2: "08", 4: "09", 6: "13", 8: "14", 10: "16"}


def build_corpus(ravdess: Path, target: Path) -> int:
    """Link RAVDESS files into an EmoDB layout under ``target/wav``; returns the file count."""
    wav = target / "wav"
    if wav.exists():
        shutil.rmtree(wav)
    wav.mkdir(parents=True)
    n = 0
    for actor, speaker in SPEAKERS.items():
        folder = ravdess / f"Actor_{actor:02d}"
        if not folder.is_dir():
            raise SystemExit(f"error: {folder}: missing; expected the RAVDESS speech corpus under {ravdess}")
        for path in sorted(folder.glob("03-01-*.wav")):
            _, _, emotion, intensity, statement, repetition, _ = path.stem.split("-")
            if emotion not in EMOTION_LETTERS:
                continue
            text = f"a{int(statement):02d}"
            version = "abcd"[(int(intensity) - 1) * 2 + int(repetition) - 1]
            (wav / f"{speaker}{text}{EMOTION_LETTERS[emotion]}{version}.wav").symlink_to(path.resolve())
            n += 1
    return n


def reference_seconds(crops: int = 1000, batch: int = 32, repeats: int = 3) -> float:
    """Seconds to train the default model on ``crops`` random two-second crops (after warm-up).

    The best of ``repeats`` timings, so that a moment of other load on the machine does not
    inflate the reference.
    """
    import keras

    from ser.model import ModelConfig, build_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 208, 64)).astype(np.float32)
    m = np.ones((batch, 208), np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, batch)]
    model = build_model([str(i) for i in range(7)], 64, ModelConfig(), seed=0)
    model.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    for _ in range(3):
        model.train_on_batch([x, m], y)
    steps = int(np.ceil(crops / batch))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch([x, m], y)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ravdess", required=True, help="the RAVDESS speech corpus (Actor_01 ... folders)")
    ap.add_argument("--out", default="runs/emodb-sized")
    ap.add_argument("--set", action="append", default=[], help="recipe overrides passed to ser train")
    ap.add_argument("--jobs", default="auto", help="passed to ser train --jobs (default auto)")
    ap.add_argument(
        "--init",
        default=None,
        help="passed to ser train --init: fine-tune from this model, which must not have heard RAVDESS "
        "actors 1-10 (the stand-in's speakers; its corpus is named emodb, so ser cannot check it)",
    )
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)  # a timing run starts from nothing: no cached features, no finished folds
    out.mkdir(parents=True)
    n = build_corpus(Path(args.ravdess), out / "corpus")
    cmd = [sys.executable, "-m", "ser", "train", "emodb", "--data-root", str(out / "corpus")]
    cmd += ["--out", str(out / "run"), "--jobs", str(args.jobs)]
    for item in args.set:
        cmd += ["--set", item]
    if args.init:
        cmd += ["--init", str(Path(args.init).resolve())]
    print(f"{n} files in EmoDB layout; running: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    results = json.loads((out / "run" / "results.json").read_text())
    ref = reference_seconds()

    print()
    print(f"EmoDB-sized stand-in ({n} RAVDESS files, 7 classes); protocol: {results['protocol']}")
    print(
        f"  UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f}, WA {results['wa_mean']:.3f} (mean over folds)"
    )
    sa = results.get("speaker_adapted")
    if sa:
        print(
            f"  speaker-adapted (label-free): UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}, WA {sa['wa_mean']:.3f}"
        )
    for part, d in results.get("parts", {}).items():
        adapted = f", adapted {d['adapted_ua_mean']:.3f}" if "adapted_ua_mean" in d else ""
        print(f"  {'CNN' if part == 'cnn' else 'functionals head'} alone: UA {d['ua_mean']:.3f}{adapted}")
    print(
        f"  full recipe wall time (features, folds, final model; --jobs {args.jobs}): "
        f"{wall:.0f} s = {wall / 60:.1f} min"
    )
    print(
        f"  target < {TARGET_SECONDS / 60:.0f} min: ratio {wall / TARGET_SECONDS:.2f} "
        f"({'met' if wall < TARGET_SECONDS else 'NOT met'})"
    )
    print(
        f"  reference (default model, 1,000 training crops): {ref:.1f} s; recipe / reference = {wall / ref:.0f}"
    )
    (out / "bench.json").write_text(
        json.dumps(
            {
                "files": n,
                "jobs": args.jobs,
                "wall_seconds": wall,
                "reference_seconds": ref,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
