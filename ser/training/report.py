"""The report of a run, pooled over its finished folds: results.json, results.md, confusion.png."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ser.evaluation import plot_confusion, scores
from ser.io import write_json, write_text

#: How speaker-adapted scores are obtained, for reports.
ADAPTED_PROTOCOL = (
    "the same fold models, with {what} "
    "from all of each test speaker's recordings (label-free; what `ser classify --same-speaker` does)"
)


def groups_text(groups, most: int = 8) -> str:
    """A fold's test speakers for a log line or table cell: all of them, or the first
    ``most`` and a count (one file per group, as without speakers, makes dozens)."""
    groups = list(groups)
    if len(groups) <= most:
        return ", ".join(groups)
    return f"{', '.join(groups[:most])} and {len(groups) - most} more"


def aggregate(fold_results: list[dict], labels: list[str]) -> dict:
    """Per-fold means/stds and pooled WA/UA/macro-F1/confusion over all test predictions.

    Parameters
    ----------
    fold_results : list of dict
        Each with ``y_true``, ``y_pred``, ``wa`` and ``ua`` (as a fold's ``result.json``).
    labels : list of str

    Returns
    -------
    dict
        ``{"wa_mean", "wa_std", "ua_mean", "ua_std", "pooled": {"wa", "ua", "macro_f1", "confusion"}}``.
    """
    y_true = np.concatenate([np.asarray(r["y_true"]) for r in fold_results])
    y_pred = np.concatenate([np.asarray(r["y_pred"]) for r in fold_results])
    wa = np.array([r["wa"] for r in fold_results])
    ua = np.array([r["ua"] for r in fold_results])
    pooled = scores(y_true, y_pred, len(labels))
    return {
        "wa_mean": float(wa.mean()),
        "wa_std": float(wa.std()),
        "ua_mean": float(ua.mean()),
        "ua_std": float(ua.std()),
        "pooled": {k: pooled[k] for k in ("wa", "ua", "macro_f1", "confusion")},
    }


def adapted_summary(done: list[dict], labels: list[str], blocks, functionals: bool = False) -> dict:
    """``{"speaker_adapted": ...}`` when every fold has adapted predictions, else ``{}``."""
    if not done or not all(isinstance(r.get("adapted"), dict) for r in done):
        return {}
    runs = [r | {k: r["adapted"][k] for k in ("wa", "ua", "y_pred")} for r in done]
    what = []
    if blocks:
        what.append(f"the batch-norm statistics of Conv blocks {', '.join(map(str, blocks))} re-estimated")
    if functionals:
        what.append("the functionals standardised")
    return {
        "speaker_adapted": {
            "protocol": ADAPTED_PROTOCOL.format(what=" and ".join(what)),
            **aggregate(runs, labels),
        }
    }


def parts_summary(done: list[dict]) -> dict:
    """Mean scores of the CNN alone and the functionals alone, when every fold has them."""
    if not done or not all("cnn" in r and "functionals" in r for r in done):
        return {}
    out = {}
    for part in ("cnn", "functionals"):
        keys = sorted(set.intersection(*(set(r[part]) for r in done)) - {"macro_f1"})
        out[part] = {}
        for k in keys:
            values = np.array([r[part][k] for r in done], dtype=np.float64)
            out[part][f"{k}_mean"] = float(values.mean())
            out[part][f"{k}_std"] = float(values.std())
    return {"parts": out}


def speeds_text(settings: dict) -> str:
    """What speed perturbation a run's training used, for ``results.md``."""
    cnn = settings["training"].get("speeds") or []
    head = (settings["model"].get("functionals_speeds") or []) if settings["model"].get("functionals") else []
    parts = [
        f"{what} copies at speeds {', '.join(f'{v:g}' for v in speeds)}"
        for what, speeds in (("CNN crops also cut from", cnn), ("functionals head also fitted on", head))
        if speeds
    ]
    return "".join(p + "; " for p in parts)


def _fold_table(results: dict, adapted: bool) -> list[str]:
    if adapted:
        lines = [
            "| fold | test speakers | n | WA | UA | macro-F1 | WA adapted | UA adapted |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines = ["| fold | test speakers | n | WA | UA | macro-F1 |", "|---:|---|---:|---:|---:|---:|"]
    for f in results["folds"]:
        row = (
            f"| {f['fold']} | {groups_text(f['test_speakers'])} | {f['n']} | {f['wa']:.3f} | "
            f"{f['ua']:.3f} | {f['macro_f1']:.3f} |"
        )
        if adapted:
            row += f" {f['adapted']['wa']:.3f} | {f['adapted']['ua']:.3f} |"
        lines.append(row)
    return lines


def _parts_lines(results: dict, adapted: bool) -> list[str]:
    parts = results.get("parts")
    if not parts:
        return []
    cnn, func = parts["cnn"], parts["functionals"]

    def _adapted(d):
        return f", adapted {d['adapted_ua_mean']:.3f}" if "adapted_ua_mean" in d else ""

    weights = [f["fusion_weights"] for f in results["folds"] if "fusion_weights" in f]
    chosen = ""
    if weights:
        chosen = " The CNN's weight in each fold, chosen on the fold's validation speakers: " + ", ".join(
            f"{w['single']:.2f}" for w in weights
        )
        if adapted:
            chosen += " (speaker-adapted: " + ", ".join(f"{w['adapted']:.2f}" for w in weights) + ")"
        chosen += "."
    return [
        "The scores above fuse the CNN with the functionals head (`model.functionals`, weighted "
        f"geometric mean of the probabilities). Alone, the CNN scores UA {cnn['ua_mean']:.3f} ± {cnn['ua_std']:.3f}"
        f"{_adapted(cnn)}; the functionals head UA {func['ua_mean']:.3f}{_adapted(func)}.{chosen}",
        "",
    ]


def _corpus_lines(per_corpus: dict | None) -> list[str]:
    """A table of each corpus's scores (several corpora in one run), or nothing."""
    if not per_corpus:
        return []
    lines = [
        "Per corpus (test files of that corpus only):",
        "",
        "| corpus | test files | folds | WA mean | UA mean ± std | pooled UA | pooled UA, speaker-adapted |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in per_corpus.items():
        adapted = f"{c['adapted_pooled']['ua']:.3f}" if "adapted_pooled" in c else "-"
        lines.append(
            f"| {name} | {c['n']} | {c['folds']} | {c['wa_mean']:.3f} | {c['ua_mean']:.3f} ± {c['ua_std']:.3f} "
            f"| {c['pooled']['ua']:.3f} | {adapted} |"
        )
    return [*lines, ""]


def _data_lines(seen: dict | None) -> list[str]:
    """What the run's models learnt from and their data licence (a fine-tuned model keeps its
    init's), as ``run.json``'s ``trained_on`` (:func:`ser.training.init.trained_on`) says."""
    if not seen:
        return []
    corpora = "; ".join(f"{name}: {len(s)} speakers" for name, s in seen["speakers"].items())
    lines = [f"Data: {corpora}."]
    init = seen.get("init")
    if init:
        lines.append(
            f"Fine-tuned from {init['path']} (recipe {init.get('recipe')}, trained on "
            f"{', '.join(init.get('data_licence') or {}) or init.get('corpus')}): it keeps that model's data licence."
        )
    licences = "; ".join(f"{name}: {text}" for name, text in seen["data_licence"].items())
    return [*lines, f"Data licence of the models: {licences}.", ""]


def results_markdown(results: dict) -> str:
    """``results.md``: the protocol, a table of the folds, the means and pooled scores."""
    sa = results.get("speaker_adapted")
    p, settings = results["pooled"], results["settings"]
    lines = [
        f"# {results['recipe']} on {results['corpus']}",
        "",
        f"Protocol: {results['protocol']}.",
        "",
        f"Classes ({len(results['classes'])}): {', '.join(results['classes'])}. "
        "WA = accuracy; UA = mean per-class recall.",
        "",
        *_fold_table(results, bool(sa)),
        "",
        f"Mean over folds: WA {results['wa_mean']:.3f} ± {results['wa_std']:.3f}, UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f}.",
        f"Pooled over all test predictions: WA {p['wa']:.3f}, UA {p['ua']:.3f}, macro-F1 {p['macro_f1']:.3f}.",
        "",
    ]
    if sa:
        lines += [
            f"Adapted to each test speaker ({sa['protocol']}): WA {sa['wa_mean']:.3f} ± {sa['wa_std']:.3f}, "
            f"UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}; pooled WA {sa['pooled']['wa']:.3f}, "
            f"UA {sa['pooled']['ua']:.3f}, macro-F1 {sa['pooled']['macro_f1']:.3f}. Speaker adaptation "
            "erases what is constant within a speaker: check the speaker x label table (`ser check`).",
            "",
        ]
    lines += _parts_lines(results, bool(sa))
    lines += _corpus_lines(results.get("per_corpus"))
    lines += _data_lines(results.get("trained_on"))
    members = settings["training"].get("members", 1)
    lines += [
        f"Head: {settings['model']['head']}; "
        + (f"an ensemble of {members} models per fold (mean logits); " if members > 1 else "")
        + f"normalisation: {settings['features']['normalization']}; "
        + speeds_text(settings)
        + f"seed {settings['training']['seed']}; {results['seconds']:.0f} s of compute"
        + ("" if results.get("complete", True) else " (INCOMPLETE: not all folds run yet)")
        + ".",
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    return "\n".join(lines)


def build_results(
    done: list[dict], recipe: dict, *, labels, n_folds: int, protocol: str, settings, seconds, trained_on=None
):
    """The results dict (``results.json``) of the finished folds ``done`` (their ``result.json``)
    out of ``n_folds``; ``seconds``: the feature extraction's, added to the folds';
    ``trained_on``: what the models learnt from (``run.json``'s), kept as it is."""
    mcfg = recipe["model"]
    return {
        "recipe": recipe["name"],
        "corpus": recipe["corpus"]["name"],
        "protocol": protocol,
        "classes": labels,
        "complete": len(done) == n_folds,
        "folds": [
            {k: r[k] for k in ("fold", "test_speakers", "n", "wa", "ua", "macro_f1")}
            | {"best_epoch": r["history"]["best_epoch"]}
            | ({"adapted": {k: r["adapted"][k] for k in ("wa", "ua")}} if "adapted" in r else {})
            | {k: r[k] for k in ("cnn", "functionals", "fusion_weights") if k in r}
            for r in done
        ],
        **aggregate(done, labels),
        **adapted_summary(done, labels, mcfg.adapt_blocks, functionals=mcfg.functionals),
        **parts_summary(done),
        "seconds": float(sum(r["seconds"] for r in done) + seconds),
        "settings": settings,
    } | ({"trained_on": trained_on} if trained_on else {})


def write_report(out: Path, results: dict, n_folds: int) -> None:
    """Write ``confusion.png``, ``results.json`` and ``results.md`` into ``out``, and log the summary."""
    done = len(results["folds"])
    plot_confusion(
        results["pooled"]["confusion"],
        results["classes"],
        out / "confusion.png",
        title=f"{results['recipe']}: pooled over {done} test folds (UA {results['pooled']['ua']:.3f})",
    )
    write_json(out / "results.json", results)
    write_text(out / "results.md", results_markdown(results))
    adapted_line = ""
    if "speaker_adapted" in results:
        sa = results["speaker_adapted"]
        adapted_line = (
            f"; adapted to each test speaker (label-free): WA {sa['wa_mean']:.3f} ± {sa['wa_std']:.3f}, "
            f"UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}"
        )
    print(
        f"{results['recipe']}: WA {results['wa_mean']:.3f} ± {results['wa_std']:.3f}, "
        f"UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f} over {done}/{n_folds} folds "
        f"(pooled WA {results['pooled']['wa']:.3f}, UA {results['pooled']['ua']:.3f}){adapted_line} "
        f"-> {out / 'results.md'}",
        file=sys.stderr,
        flush=True,
    )
