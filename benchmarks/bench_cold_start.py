"""Cold start and warm throughput of an export (ONNX Runtime) against the Keras model.

Cold: the wall time of ``ser classify EXPORT file.wav`` (a fresh process each time) as a ratio
to that of ``python -c "import tensorflow"``, the floor of any run through TensorFlow; and of
``ser classify MODEL.keras file.wav`` for comparison. Medians of ``--runs`` runs each,
interleaved, in the same run of this script, so the machine's load hits them alike.

Warm: in one process, a loaded classifier per backend; files per second on ``--files``
RAVDESS files of about 3 s (classified whole), and the real-time factor (seconds of audio per
second of compute) on a 60 s file made of consecutive RAVDESS files (classified in windows).

Usage::

    python benchmarks/bench_cold_start.py --model RUN_OR_MODEL.keras --ravdess ../shared/corpora/ravdess

The model is exported to a temporary ``.onnx`` first (``ser export``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def wall(argv: list[str]) -> float:
    """Seconds a fresh process running ``argv`` takes; it must succeed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=REPO)
    return time.perf_counter() - t


def cold(model: str, export: str, wav: str, runs: int) -> dict:
    """Median wall times (s) of the three commands, run interleaved ``runs`` times."""
    commands = {
        "import tensorflow": [sys.executable, "-c", "import tensorflow"],
        "classify export": [sys.executable, "-m", "ser", "classify", export, wav],
        "classify keras": [sys.executable, "-m", "ser", "classify", model, wav],
    }
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(wall(argv))
    return {name: statistics.median(t) for name, t in times.items()}


def warm(paths: dict, wavs: list[str], long_wav: str, rounds: int = 3) -> dict:
    """Per backend, the median over ``rounds`` of files per second on ``wavs`` and of the
    real-time factor on ``long_wav``; the backends take turns, after a warm-up each."""
    import soundfile as sf

    from ser import load_model

    classifiers = {name: load_model(path) for name, path in paths.items()}
    for classifier in classifiers.values():
        for w in wavs[:3]:
            classifier.classify(w)  # first-call costs (tracing, numba) out of the way
        classifier.classify(long_wav)
    seconds = sf.info(long_wav).duration
    rates = {name: ([], []) for name in classifiers}
    for _ in range(rounds):
        for name, classifier in classifiers.items():
            t = time.perf_counter()
            for w in wavs:
                classifier.classify(w)
            rates[name][0].append(len(wavs) / (time.perf_counter() - t))
            t = time.perf_counter()
            classifier.classify(long_wav)
            rates[name][1].append(seconds / (time.perf_counter() - t))
    return {name: (statistics.median(f), statistics.median(r)) for name, (f, r) in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model.keras file or a run folder")
    parser.add_argument("--ravdess", required=True, help="the RAVDESS folder (Actor_01, ...)")
    parser.add_argument("--runs", type=int, default=5, help="cold runs of each command (median)")
    parser.add_argument("--files", type=int, default=40, help="3 s files for the warm throughput")
    args = parser.parse_args()

    import soundfile as sf

    from ser.export import export_model

    wavs = sorted(str(p) for p in Path(args.ravdess).glob("Actor_0[1-2]/*.wav"))[: args.files]
    with tempfile.TemporaryDirectory() as tmp:
        export = export_model(args.model, Path(tmp) / "model.onnx")
        parts, rate = [], None
        for w in sorted(Path(args.ravdess).glob("Actor_03/*.wav")):
            y, rate = sf.read(w, dtype="float32")
            parts.append(y)
            if sum(p.size for p in parts) >= 60 * rate:
                break
        long_wav = str(Path(tmp) / "long.wav")
        sf.write(long_wav, np.concatenate(parts)[: 60 * rate], rate)

        times = cold(args.model, export, wavs[0], args.runs)
        floor = times["import tensorflow"]
        print(f"cold, median of {args.runs} runs each (s):")
        for name, t in times.items():
            print(f"  {name:<18} {t:6.2f}  ratio to import tensorflow {t / floor:.2f}")
        print(f"warm ({len(wavs)} files of about 3 s; one 60 s file in windows; medians of 3 rounds):")
        paths = {"export (onnxruntime)": export, "keras (tensorflow)": args.model}
        for name, (fps, rtf) in warm(paths, wavs, long_wav).items():
            print(f"  {name:<21} {fps:6.1f} files/s   real-time factor {rtf:6.1f}x on 60 s")


if __name__ == "__main__":
    main()
