"""Throughput of ``ser classify --list`` on an archive of short files, against one call per file.

Cuts ``--n`` clips of 1 to 3 s (uniformly random, seed 0) out of RAVDESS files, as they are
(48 kHz wav), into ``--work`` (a folder OUTSIDE the repository: the corpus licence forbids
copying it in; it is deleted afterwards unless ``--keep``). Then times

- ``ser classify MODEL --list FILES.txt --out results.jsonl --jobs J`` over all of them
  (one fresh process, start-up included), and
- ``ser classify MODEL FILE --json``, one process per file, on a random sample of
  ``--sample`` files; the time of all ``--n`` files one call at a time is extrapolated from
  the sample's mean (said so in the output),

and prints files per second and the real-time factor (seconds of audio per second of wall
time) of each, and checks every file is in the output once.

Usage (heavy: hold the shared CPU lock)::

    flock /work/cpu.lock python benchmarks/bench_archive.py --ravdess ../shared/corpora/ravdess --work /tmp/archive
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def cut_clips(ravdess: Path, work: Path, n: int, seed: int = 0) -> tuple[list[str], float]:
    """``n`` clips of 1-3 s cut from the RAVDESS files in turn; ``(paths, total seconds)``."""
    sources = sorted(ravdess.glob("Actor_*/*.wav"))
    if not sources:
        sys.exit(f"{ravdess}: no Actor_*/*.wav files; expected the RAVDESS speech corpus")
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    paths, total, i = [], 0.0, 0
    while len(paths) < n:
        y, sr = sf.read(sources[i % len(sources)], dtype="int16")
        i += 1
        for _ in range(min(8, n - len(paths))):
            length = int(rng.uniform(1.0, 3.0) * sr)
            start = int(rng.integers(0, max(1, len(y) - length)))
            clip = y[start : start + length]
            path = work / f"{len(paths):05d}.wav"
            sf.write(path, clip, sr, subtype="PCM_16")
            paths.append(str(path))
            total += len(clip) / sr
    return paths, total


def wall(argv: list[str]) -> float:
    """Seconds a fresh process running ``argv`` takes; it must succeed (or exit 1: a bad file)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv[:6])} ...: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ravdess", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path, help="scratch folder outside the repository")
    parser.add_argument("--model", default=None, help="default: the shipped ser/models/ravdess.onnx")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=20, help="single calls timed, then extrapolated")
    parser.add_argument("--jobs", default="auto")
    parser.add_argument("--keep", action="store_true", help="keep --work")
    args = parser.parse_args()
    if REPO in args.work.resolve().parents or args.work.resolve() == REPO:
        sys.exit(f"{args.work}: inside the repository; expected a scratch folder outside it")
    from ser.models import default_model_path

    model = args.model or str(default_model_path())
    ser = [sys.executable, "-m", "ser", "classify", model]
    try:
        t = time.perf_counter()
        paths, seconds = cut_clips(args.ravdess, args.work / "audio", args.n)
        print(
            f"{len(paths)} clips, {seconds:.0f} s of audio (mean {seconds / len(paths):.2f} s), cut from "
            f"RAVDESS 48 kHz wav in {time.perf_counter() - t:.0f} s; model {model}"
        )
        listing, out = args.work / "files.txt", args.work / "results.jsonl"
        listing.write_text("\n".join(paths) + "\n")
        out.unlink(missing_ok=True)
        t_list = wall([*ser, "--list", str(listing), "--out", str(out), "--jobs", str(args.jobs)])
        records = [json.loads(line) for line in out.read_text().splitlines()]
        files = [r["file"] for r in records]
        assert len(files) == len(set(files)) == len(paths), "every file once"
        errors = sum("error" in r for r in records)
        sample = random.Random(0).sample(paths, min(args.sample, len(paths)))
        t_single = [wall([*ser, p, "--json"]) for p in sample]
        mean_single = float(np.mean(t_single))
        t_one_by_one = mean_single * len(paths)
        print(
            f"--list --jobs {args.jobs}: {t_list:.1f} s for {len(paths)} files ({errors} errors): "
            f"{len(paths) / t_list:.1f} files/s, real-time factor {seconds / t_list:.0f}x"
        )
        print(
            f"one call per file: {mean_single:.2f} s per call (mean of {len(sample)} timed calls), "
            f"extrapolated to {len(paths)} files: {t_one_by_one:.0f} s: {1 / mean_single:.2f} files/s, "
            f"real-time factor {seconds / t_one_by_one:.1f}x"
        )
        print(f"--list is {t_one_by_one / t_list:.0f}x faster than one call per file")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
