"""Inference latency: warm in-process classification and a cold ``ser classify`` command.

Measures, on this machine:

1. warm latency (model loaded once, median of ``--runs`` calls) of a 3-second utterance
   (from a file and from an array) and of a 60-second file (sliding windows, streamed);
2. warm time of the attention maps of the 3-second file (``ser attention``'s computation,
   without the picture), without and with ``--occlusion``, as a ratio to classifying it;
3. cold wall time of ``python -m ser classify MODEL 3s.wav`` in a fresh process, against
   ``python -c "import tensorflow"`` measured the same way, so the ratio shows what
   ``ser`` adds on top of the unavoidable TensorFlow import.

Without a model argument it builds and saves an untrained default-size model (the timing
does not depend on the weights).

Usage::

    python benchmarks/bench_inference.py [MODEL] [--runs 7] [--cold-runs 3]
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def write_references(folder: Path, n: int) -> list[str]:
    """``n`` 3-second recordings of one "speaker" (the tone at different pitches)."""
    import soundfile as sf

    rng = np.random.default_rng(1)
    t = np.arange(3 * SR) / SR
    paths = []
    for i in range(n):
        y = 0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * (120 + 5 * i) * t)
        path = folder / f"reference_{i:02d}.wav"
        sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(path))
    return paths


def write_audio(folder: Path) -> tuple[Path, Path]:
    """A 3-second and a 60-second wav file (noise with a gliding tone)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    for seconds in (3, 60):
        t = np.arange(seconds * SR) / SR
        y = 0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * (150 + 20 * np.sin(t)) * t)
        path = folder / f"speech_{seconds}s.wav"
        sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        paths.append(path)
    return paths[0], paths[1]


def default_model(folder: Path) -> Path:
    from ser.features import FrontendConfig
    from ser.model import ModelConfig, build_model

    labels = ["angry", "happy", "neutral", "sad"]
    model = build_model(
        labels, 64, ModelConfig(), frontend=FrontendConfig().to_dict(), info={"head": "attention"}, seed=0
    )
    path = folder / "model.keras"
    model.save(path)
    return path


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_time(argv: list[str], runs: int) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a model.keras (default: an untrained default-size model)")
    parser.add_argument("--runs", type=int, default=7, help="warm calls per measurement (median)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes per command (median)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short, long = write_audio(tmp)
        model_path = Path(args.model) if args.model else default_model(tmp)

        import ser
        from ser.audio import load_audio

        t0 = time.perf_counter()
        classifier = ser.load_model(model_path)
        load_s = time.perf_counter() - t0
        y = load_audio(short)
        t0 = time.perf_counter()
        classifier.classify(short)  # first call: imports librosa, builds mel filters, eager model call
        first_s = time.perf_counter() - t0
        for _ in range(3):  # warm up, including the switch to the traced graph
            classifier.classify(short)
        warm_file = median_time(lambda: classifier.classify(short), args.runs)
        warm_array = median_time(lambda: classifier.classify(y, sample_rate=SR), args.runs)
        classifier.classify(long)
        warm_long = median_time(lambda: classifier.classify(long), max(3, args.runs // 2))
        n_windows = len(classifier.classify(long).segments)
        # --same-speaker: adapting to 20 recordings, against classifying them unadapted
        import contextlib
        import io

        from ser.speaker import adapt_to_speaker

        references = write_references(tmp, 20)
        with contextlib.redirect_stderr(io.StringIO()):
            adapt_s = median_time(lambda: adapt_to_speaker(classifier, references), 3)
        classifier.set_speaker_reference(None)
        classify_refs = median_time(lambda: [classifier.classify(r) for r in references], 3)

        # the maps of `ser attention`, without and with the occlusion panel (one pass per cell)
        from ser.attention.maps import compute_attention

        compute_attention(classifier, short, occlusion=True)
        maps_s = median_time(lambda: compute_attention(classifier, short), args.runs)
        occluded_s = median_time(lambda: compute_attention(classifier, short, occlusion=True), 3)
        cells = compute_attention(classifier, short).product.size

        python = sys.executable
        cold_tf = cold_time([python, "-c", "import tensorflow"], args.cold_runs)
        cold_help = cold_time([python, "-m", "ser", "--help"], args.cold_runs)
        cold_classify = cold_time(
            [python, "-m", "ser", "classify", str(model_path), str(short)], args.cold_runs
        )

    params = classifier.model.count_params()
    print(
        f"model: {model_path if args.model else 'untrained default ModelConfig()'} ({params / 1e6:.2f} M params)"
    )
    print(f"load_model: {load_s:.3f} s; first classify in the process: {first_s:.3f} s")
    print()
    print("warm, in process (median)                 seconds   x real time")
    print(f"  3 s utterance, file                    {warm_file:8.4f}   {3 / warm_file:8.0f}")
    print(f"  3 s utterance, array                   {warm_array:8.4f}   {3 / warm_array:8.0f}")
    print(f"  60 s file ({n_windows} windows of 4 s, hop 2 s)  {warm_long:8.4f}   {60 / warm_long:8.0f}")
    print()
    print("attention maps of the 3 s file, warm (median)                   seconds   / classifying it")
    print(
        f"  the maps (ser attention without the picture)               {maps_s:8.3f}   {maps_s / warm_file:8.2f}"
    )
    print(
        f"  with --occlusion ({cells} cells, one pass each)               "
        f"{occluded_s:8.3f}   {occluded_s / warm_file:8.2f}"
    )
    print()
    print("speaker adaptation (--same-speaker), 20 recordings of 3 s      seconds   / classifying them")
    print(
        f"  adapt_to_speaker (features, unadapted labels, batch norm)  {adapt_s:8.3f}   {adapt_s / classify_refs:8.2f}"
    )
    print(f"  classifying the 20 recordings, unadapted                   {classify_refs:8.3f}   {1.0:8.2f}")
    print()
    print("cold, fresh process (median)              seconds   / import tensorflow")
    print(f"  python -c 'import tensorflow'          {cold_tf:8.2f}   {1.0:8.2f}")
    print(f"  python -m ser --help                   {cold_help:8.2f}   {cold_help / cold_tf:8.2f}")
    print(f"  python -m ser classify MODEL 3s.wav    {cold_classify:8.2f}   {cold_classify / cold_tf:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
