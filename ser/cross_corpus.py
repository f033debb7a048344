"""``ser evaluate``: score a trained model on a corpus, with no training.

The corpus is read by a recipe's loader; its labels are matched with the model's classes by
name (:mod:`ser.labels`); every file of a matched label is classified by the model as ``ser
classify`` would (:class:`ser.classifier.EmotionClassifier`), then again after adapting the
model to its speaker as ``ser classify --same-speaker`` would (:mod:`ser.speaker`). The
scores are written as ``results.json``, ``results.md`` and ``confusion.png``, in the schema
``ser train`` uses, with each speaker in place of a fold.

An export runs without TensorFlow but cannot re-estimate batch-norm statistics: the
speaker-adapted scores of such a model are reported as not available.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ser.classifier import EmotionClassifier
from ser.corpora.base import warn
from ser.errors import ConfigError, CorpusError, SerError
from ser.evaluation import chance_levels, class_recalls, plot_confusion, scores
from ser.io import ensure_folder, log, write_json, write_text
from ser.labels import match_labels, parse_map
from ser.models import default_model_path
from ser.preprocessor import error_text
from ser.recipe import load_recipe
from ser.speaker import adapt_to_speaker
from ser.training.prepare import load_manifest
from ser.training.report import aggregate

#: The MODEL argument that names the model shipped with ``ser`` (:mod:`ser.models`).
DEFAULT_MODEL_NAME = "default"

#: Why an export has no speaker-adapted scores, for ``results.json`` and ``results.md``.
EXPORT_CANNOT_ADAPT = (
    "not available for exports: adapting re-estimates the batch-norm statistics of Conv blocks {blocks}, "
    "which needs the Keras model (model.keras) the export was made from"
)


def model_path(model: str) -> str:
    """The file ``model`` names: :data:`DEFAULT_MODEL_NAME` (unless a file or folder of that
    name exists) is the bundled default model."""
    if str(model) == DEFAULT_MODEL_NAME and not os.path.exists(model):
        return default_model_path()
    return str(model)


def _predict(classifier: EmotionClassifier, paths, bar) -> tuple[list, dict]:
    """Class indices of ``paths`` (None where a file cannot be classified) and those files' errors."""
    preds, errors = [], {}
    for path in paths:
        try:
            preds.append(classifier.labels.index(classifier.classify(path).label))
        except SerError as exc:
            preds.append(None)
            errors[path] = error_text(path, exc)
        bar.update(1)
    return preds, errors


def _predict_adapted(classifier: EmotionClassifier, paths, speakers, bar) -> list:
    """Class indices of ``paths`` with the model adapted to each speaker's files (label-free)."""
    preds = [None] * len(paths)
    for speaker in dict.fromkeys(speakers):
        rows = [i for i, s in enumerate(speakers) if s == speaker]
        adapt_to_speaker(classifier, [paths[i] for i in rows])
        sub, _ = _predict(classifier, [paths[i] for i in rows], bar)
        for i, p in zip(rows, sub, strict=True):
            preds[i] = p
        classifier.set_speaker_reference(None)
    return preds


def _can_adapt(classifier: EmotionClassifier) -> str | None:
    """None when the model can be adapted to a speaker, else why not."""
    if classifier.adapt_blocks and not classifier.backend.can_adapt:
        return EXPORT_CANNOT_ADAPT.format(blocks=", ".join(map(str, classifier.adapt_blocks)))
    if not (
        classifier.adapt_blocks or classifier.functionals is not None or classifier.normalization == "speaker"
    ):
        return "not available: the model has nothing to adapt to a speaker"
    return None


def _per_speaker(y_true, pred, speakers, n_classes: int, adapted=None) -> list[dict]:
    """One entry per speaker in the shape of ``ser train``'s folds (``fold`` numbers them)."""
    out = []
    for number, speaker in enumerate(sorted(set(speakers)), start=1):
        rows = np.flatnonzero(np.asarray(speakers) == speaker)
        s = scores(y_true[rows], pred[rows], n_classes)
        entry = {"fold": number, "test_speakers": [speaker], "y_true": y_true[rows], "y_pred": pred[rows]}
        entry |= {k: s[k] for k in ("n", "wa", "ua", "macro_f1")}
        if adapted is not None:
            a = scores(y_true[rows], adapted[rows], n_classes)
            entry["adapted"] = {"wa": a["wa"], "ua": a["ua"], "y_pred": adapted[rows]}
        out.append(entry)
    return out


def _protocol(classifier: EmotionClassifier, corpus: str, root) -> str:
    trained = classifier.info.get("corpus") or "an unknown corpus"
    return (
        f"no training: the model (trained on {trained}) classifies every file of {corpus} at {root} whose "
        "label matches one of its classes, each file whole as `ser classify` does; per-speaker scores; "
        "speaker-adapted: the model adapted to each speaker's scored files, label-free, as "
        "`ser classify --same-speaker` does"
    )


def _summary(folds: list[dict], labels: list[str], why_not: str | None) -> dict:
    """The pooled and per-speaker scores, and the speaker-adapted ones (or why there are none)."""
    summary = aggregate(folds, labels)
    summary["per_class_recall"] = class_recalls(summary["pooled"]["confusion"], labels)
    if why_not is not None:
        summary["speaker_adapted"] = {"available": False, "reason": why_not}
        return summary
    runs = [f | {k: f["adapted"][k] for k in ("wa", "ua", "y_pred")} for f in folds]
    adapted = aggregate(runs, labels)
    adapted["per_class_recall"] = class_recalls(adapted["pooled"]["confusion"], labels)
    summary["speaker_adapted"] = {"available": True, "protocol": "each speaker's scored files", **adapted}
    return summary


def _score(classifier, manifest, match, *, progress: bool) -> tuple[dict, dict]:
    """Classify the matched files (and again adapted); the summary and the files that failed."""
    from tqdm.auto import tqdm

    kept = manifest[manifest["label"].isin(list(match.pairs))].reset_index(drop=True)
    paths, speakers = kept["path"].tolist(), kept["speaker"].astype(str).tolist()
    why_not = _can_adapt(classifier)
    log(
        f"ser evaluate: scoring {len(paths)} files of {len(set(speakers))} speakers"
        + (" (then again, adapted to each speaker)" if why_not is None else "")
    )
    total = len(paths) * (1 if why_not else 2)
    with tqdm(total=total, desc="scoring", unit="file", disable=None if progress else True) as bar:
        pred, errors = _predict(classifier, paths, bar)
        adapted = None if why_not else _predict_adapted(classifier, paths, speakers, bar)
    ok = [i for i, p in enumerate(pred) if p is not None and (adapted is None or adapted[i] is not None)]
    if not ok:
        first, why = next(iter(errors.items()))
        raise CorpusError(f"none of the {len(paths)} files could be classified; e.g. {first}: {why}")
    labels = classifier.labels
    y_true = np.array([labels.index(match.pairs[kept["label"][i]]) for i in ok])
    y_pred = np.array([pred[i] for i in ok])
    y_adapted = None if adapted is None else np.array([adapted[i] for i in ok])
    folds = _per_speaker(y_true, y_pred, [speakers[i] for i in ok], len(labels), y_adapted)
    summary = _summary(folds, labels, why_not)
    summary["folds"] = [
        {k: v for k, v in f.items() if k not in ("y_true", "y_pred")}
        | ({"adapted": {k: f["adapted"][k] for k in ("wa", "ua")}} if "adapted" in f else {})
        for f in folds
    ]
    summary["chance"] = chance_levels(y_true)
    return summary, errors


def evaluate_model(
    model: str,
    recipe_name: str,
    *,
    data_root,
    out_dir,
    overrides=(),
    mapping=(),
    skip_bad: bool = False,
    progress: bool = True,
) -> dict:
    """Score ``model`` on the corpus a recipe reads, with no training; write the results.

    Parameters
    ----------
    model : str
        A ``model.keras``, a run folder, an export (``.onnx``, ``.tflite``) or
        :data:`DEFAULT_MODEL_NAME` (the model shipped with ``ser``).
    recipe_name : str
        The recipe whose loader (and ``[corpus]`` options) reads the corpus; its model and
        training settings are not used.
    data_root : path
    out_dir : path
        Receives ``results.json``, ``results.md`` and ``confusion.png``.
    overrides : sequence of str
        ``--set key=value`` recipe overrides.
    mapping : sequence of str
        ``--map FROM=TO`` pairs (:func:`ser.labels.parse_map`).
    skip_bad : bool
        Leave out corpus files the loader cannot use (as ``ser train --skip-bad``).
    progress : bool
        A progress bar on a terminal.

    Returns
    -------
    dict
        The contents of ``results.json``; ``skipped`` maps each file that could not be
        classified to its error (those files are left out of the scores).

    Raises
    ------
    ConfigError
        Unknown recipe, bad ``--map`` or ``--set``, no label in common.
    CorpusError
        An empty or unusable corpus.
    ModelError
        Not a ``ser`` model.
    """
    t0 = time.time()
    recipe = load_recipe(recipe_name, list(overrides or []))
    overrides_map = parse_map(mapping)
    out = ensure_folder(Path(out_dir), "output folder")
    classifier = EmotionClassifier.load(model_path(model))
    manifest = load_manifest(recipe, data_root, skip_bad=skip_bad, decode=False, progress=progress)
    corpus = recipe["corpus"]["name"]
    match = match_labels(classifier.labels, sorted(manifest["label"].unique()), overrides_map)
    if not match.pairs:
        raise ConfigError(
            f"{corpus} labels ({', '.join(sorted(manifest['label'].unique()))}) share none with the model's "
            f"classes ({', '.join(classifier.labels)}); pair them with --map FROM=TO"
        )
    log(f"ser evaluate: {match.describe()}")
    if classifier.info.get("corpus") == corpus:
        warn(f"the model was trained on {corpus}: these scores include its training speakers")
    if match.corpus_only:
        left = manifest["label"].isin(match.corpus_only)
        warn(f"{int(left.sum())} files of {', '.join(match.corpus_only)} left out: no model class matches")
    summary, errors = _score(classifier, manifest, match, progress=progress)
    results = {
        "recipe": recipe["name"],
        "corpus": corpus,
        "protocol": _protocol(classifier, corpus, manifest.attrs.get("root", data_root)),
        "classes": classifier.labels,
        "complete": not errors,
        "model": {
            "path": classifier.path,
            "trained_on": classifier.info.get("corpus"),
            "recipe": classifier.info.get("recipe"),
        },
        "labels": match.to_dict(),
        **summary,
        "skipped": errors,
        "seconds": time.time() - t0,
        "settings": {"corpus": recipe["corpus"], "map": overrides_map, "skip_bad": skip_bad},
    }
    write_results(out, results)
    return results


#: Speakers listed in ``results.md`` (``results.json`` lists all).
MOST_SPEAKERS_SHOWN = 40


def _speaker_table(results: dict) -> list[str]:
    adapted = results["speaker_adapted"].get("available", False)
    head = "| speaker | n | WA | UA | macro-F1 |" + (" WA adapted | UA adapted |" if adapted else "")
    lines = [head, "|---|---:|---:|---:|---:|" + ("---:|---:|" if adapted else "")]
    for f in results["folds"][:MOST_SPEAKERS_SHOWN]:
        row = f"| {f['test_speakers'][0]} | {f['n']} | {f['wa']:.3f} | {f['ua']:.3f} | {f['macro_f1']:.3f} |"
        if adapted:
            row += f" {f['adapted']['wa']:.3f} | {f['adapted']['ua']:.3f} |"
        lines.append(row)
    if len(results["folds"]) > MOST_SPEAKERS_SHOWN:
        lines.append(
            f"\n... and {len(results['folds']) - MOST_SPEAKERS_SHOWN} more speakers in results.json."
        )
    return lines


def _label_lines(results: dict) -> list[str]:
    labels = results["labels"]
    pairs = ", ".join(c if c == m else f"{c} → {m}" for c, m in labels["pairs"].items())
    lines = [f"Corpus labels scored (corpus → model class): {pairs}."]
    if labels["corpus_only"]:
        lines.append(f"Left out (no model class matches): {', '.join(labels['corpus_only'])}.")
    if labels["model_only"]:
        lines.append(
            f"Model classes with no corpus label: {', '.join(labels['model_only'])}; predicting one is an error."
        )
    return lines


def results_markdown(results: dict) -> str:
    """``results.md`` of ``ser evaluate``: protocol, labels, pooled and per-speaker scores."""
    p, sa, chance = results["pooled"], results["speaker_adapted"], results["chance"]
    recall = ", ".join(f"{k} {v:.2f}" for k, v in results["per_class_recall"].items())
    lines = [
        f"# {results['model']['path']} on {results['corpus']}",
        "",
        f"Protocol: {results['protocol']}.",
        "",
        *_label_lines(results),
        "",
        f"Pooled over {sum(f['n'] for f in results['folds'])} files: WA {p['wa']:.3f}, UA {p['ua']:.3f}, "
        f"macro-F1 {p['macro_f1']:.3f} (chance: UA {chance['ua']:.3f}, WA {chance['wa']:.3f} by always "
        f"answering the largest class). Recall per class: {recall}.",
        f"Mean over speakers: WA {results['wa_mean']:.3f} ± {results['wa_std']:.3f}, "
        f"UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f}.",
        "",
    ]
    if sa.get("available"):
        lines += [
            f"Adapted to each speaker ({sa['protocol']}, label-free): pooled WA {sa['pooled']['wa']:.3f}, "
            f"UA {sa['pooled']['ua']:.3f}, macro-F1 {sa['pooled']['macro_f1']:.3f}; mean over speakers "
            f"UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}.",
            "",
        ]
    else:
        lines += [f"Speaker-adapted scores: {sa['reason']}.", ""]
    lines += _speaker_table(results) + [""]
    if results["skipped"]:
        lines += [f"{len(results['skipped'])} file(s) could not be classified and are left out:", ""]
        lines += [f"- {path}: {why}" for path, why in list(results["skipped"].items())[:20]] + [""]
    lines += ["![confusion matrix](confusion.png)", ""]
    return "\n".join(lines)


def write_results(out: Path, results: dict) -> None:
    """Write ``confusion.png`` (rows: the classes with examples), ``results.json`` and ``results.md``."""
    confusion = np.asarray(results["pooled"]["confusion"])
    rows = [i for i, label in enumerate(results["classes"]) if label in results["per_class_recall"]]
    plot_confusion(
        confusion[rows],
        results["classes"],
        out / "confusion.png",
        title=f"{Path(results['model']['path']).name} on {results['corpus']} (UA {results['pooled']['ua']:.3f})",
        row_labels=[results["classes"][i] for i in rows],
    )
    write_json(out / "results.json", results)
    write_text(out / "results.md", results_markdown(results))
    p, sa = results["pooled"], results["speaker_adapted"]
    adapted = (
        f", adapted UA {sa['pooled']['ua']:.3f}"
        if sa.get("available")
        else " (speaker-adapted: not available)"
    )
    log(
        f"ser evaluate: {results['corpus']}: WA {p['wa']:.3f}, UA {p['ua']:.3f} (chance {results['chance']['ua']:.3f})"
        f"{adapted} -> {out / 'results.md'}"
    )
