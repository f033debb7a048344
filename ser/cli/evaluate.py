"""``ser evaluate``: its arguments and its handler (the work is :func:`ser.cross_corpus.evaluate_model`)."""

from __future__ import annotations

import sys

#: How ``--help`` names the MODEL argument.
MODEL_HELP = (
    "a model.keras, a run folder holding one, an export (.onnx, .tflite), or 'default': the model shipped "
    "with ser (the ravdess recipe's final model; exports cannot be adapted to a speaker)"
)


def add_evaluate(sub, handler) -> None:
    """``ser evaluate`` and its options; ``handler`` runs it."""
    p = sub.add_parser(
        "evaluate",
        help="score a trained model on a corpus, with no training",
        description="Score a trained model on every file of a corpus read by a recipe's loader, with no "
        "training: WA, UA, macro-F1, recall per class, confusion, per-speaker and speaker-adapted scores, "
        "written as results.json, results.md and confusion.png (the schema of ser train). Corpus labels "
        "are matched with the model's classes by name (anger = angry, ps = pleasant surprise = surprise, "
        "...; see ser/labels.py); labels that match nothing are listed and left out.",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("recipe", help="recipe whose loader reads the corpus (e.g. tess, ravdess, custom)")
    p.add_argument("--data-root", required=True, help="folder holding the corpus (or a CSV for 'custom')")
    p.add_argument("--out", required=True, help="output folder for the results")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="score corpus label FROM as model class TO (adds to or overrides the name matching), e.g. "
        "--map calm=neutral; FROM= leaves FROM out",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe setting (e.g. corpus options)",
    )
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable or misnamed corpus files")
    p.set_defaults(func=handler)


def evaluate_command(args, import_tensorflow) -> int:
    """Run ``ser evaluate``; 0, or 1 when some files could not be classified (they are listed
    in the results) and ``--skip-bad`` was not given."""
    from ser.cross_corpus import evaluate_model, model_path
    from ser.exported import export_format

    if export_format(model_path(args.model)) is None:
        import_tensorflow()
    results = evaluate_model(
        args.model,
        args.recipe,
        data_root=args.data_root,
        out_dir=args.out,
        overrides=args.set,
        mapping=args.map,
        skip_bad=args.skip_bad,
    )
    if results["skipped"] and not args.skip_bad:
        first, why = next(iter(results["skipped"].items()))
        print(
            f"ser evaluate: {len(results['skipped'])} file(s) could not be classified and were left out "
            f"(listed in results.md), e.g. {first}: {why}",
            file=sys.stderr,
        )
        return 1
    return 0
