"""``ser demo``: the whole job on a built-in synthetic corpus, no download needed.

Generates the synthetic emotional-speech corpus (cached), trains the attention CNN with the
``synthetic`` recipe (the same corpus, protocol, training and evaluation code as every real
recipe), prints WA/UA on held-out speakers, classifies a file of a speaker the model has
never heard, draws its attention map, and says what to run next.

The corpus is synthetic: the demo shows the pipeline working, not real-world accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ser.attention.maps import compute_attention
from ser.attention.plot import plot_attention
from ser.classifier import EmotionClassifier
from ser.corpora import synthetic
from ser.errors import ConfigError
from ser.io import atomic_path, ensure_folder
from ser.training import has_results, run_recipe

#: Corpus size of the full demo and of ``--quick`` (speakers, utterances per class).
DEMO_SIZE = {"n_speakers": 6, "per_class": 12}
QUICK_SIZE = {"n_speakers": 6, "per_class": 10}


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _check_earlier_demo(out: Path, size: dict, seed: int) -> None:
    """Refuse, before anything is rewritten, a folder holding a demo run of another size or seed."""
    import json

    try:
        earlier = json.loads((out / "corpus" / "synthetic.json").read_text())
    except (OSError, ValueError):
        return

    if not has_results(out / "run"):
        return  # no finished work to keep: the corpus is simply made again
    wanted = {**size, "seed": seed}
    if any(earlier.get(k) != v for k, v in wanted.items()):
        raise ConfigError(
            f"{out}: holds a demo of another size or seed ({earlier.get('n_speakers')} speakers x "
            f"{earlier.get('per_class')} per class, seed {earlier.get('seed')}); use a new --out "
            "folder (or delete this one)"
        )


def run_demo(out_dir="ser-demo", *, quick: bool = False, seed: int = 0) -> dict:
    """Run the demo; returns ``{"results", "model", "prediction", "attention_png"}``.

    Parameters
    ----------
    out_dir : path
        Everything goes here: ``corpus/``, ``run/`` (the ``ser train`` outputs),
        ``heldout/`` (a new speaker's file) and ``attention.png``.
    quick : bool
        Smaller corpus and fewer epochs (for smoke tests).
    """

    out = ensure_folder(out_dir)
    size = QUICK_SIZE if quick else DEMO_SIZE
    _check_earlier_demo(out, size, seed)
    _say(
        f"[1/4] synthetic corpus: {size['n_speakers']} speakers x {len(synthetic.CLASSES)} emotions x "
        f"{size['per_class']} utterances -> {out / 'corpus'}"
    )
    synthetic.generate(out / "corpus", seed=seed, workers=2, **size)

    _say("[2/4] training with speaker-independent folds (recipe 'synthetic') ...")
    overrides = ["training.epochs=10", "training.patience=5"] if quick else []
    results = run_recipe(
        "synthetic",
        data_root=out / "corpus",
        out_dir=out / "run",
        overrides=overrides,
        seed=seed,
        progress=True,
    )
    _say(
        f"      held-out speakers: WA {results['wa_mean']:.3f}, UA {results['ua_mean']:.3f} "
        f"(chance {1 / len(results['classes']):.2f}; {results['protocol']})"
    )
    adapted = results.get("speaker_adapted")
    if adapted:
        _say(
            f"      adapted to each held-out speaker (label-free, from their own files): "
            f"WA {adapted['wa_mean']:.3f}, UA {adapted['ua_mean']:.3f}"
        )

    _say("[3/4] classifying a file of a new speaker the model never heard ...")
    heldout = out / "heldout"
    new_speaker = size["n_speakers"] + 1
    wav = heldout / "new_speaker_angry.wav"
    if not wav.is_file():
        heldout.mkdir(parents=True, exist_ok=True)
        with atomic_path(wav) as tmp:
            synthetic.write_utterance(tmp, "angry", new_speaker, seed=seed + 1)
    classifier = EmotionClassifier.load(out / "run" / "model.keras")
    prediction = classifier.classify(wav)
    ranked = sorted(prediction.scores.items(), key=lambda kv: -kv[1])
    _say(f"      {wav} (truly angry): " + ", ".join(f"{k} {v:.2f}" for k, v in ranked))

    _say("[4/4] attention map: where in the spectrogram the model heard it ...")
    png = out / "attention.png"
    maps = compute_attention(classifier, wav)
    plot_attention(maps, png)
    _say(f"      {png}")
    _say()
    _say("Everything is in " + str(out) + ":")
    _say(f"  {out / 'run' / 'results.md'}    WA/UA per fold and pooled, confusion matrix")
    _say(f"  {out / 'run' / 'model.keras'}    the final model (trained on all synthetic speakers)")
    _say(f"  {png}    the attention picture")
    _say("Next:")
    _say(f"  ser classify {out / 'run'} {wav} --json")
    _say(f"  ser attention {out / 'run'} {wav} --out attention.png --npz attention.npz")
    _say(f"  ser attention {out / 'run'} {wav} --out occlusion.png --occlusion    # + what the output needs")
    _say("  ser train ravdess --data-root /path/to/RAVDESS --out runs/ravdess")
    _say("Note: this corpus is synthetic; it demonstrates the pipeline, not real-world accuracy.")
    sys.stdout.flush()
    return {
        "results": results,
        "model": str(out / "run" / "model.keras"),
        "prediction": prediction,
        "attention_png": str(png),
    }
