"""The ``ser`` command: argument parsing only; the work is done by library functions.

The per-file reporting of ``ser classify`` is :mod:`ser.cli.classify`; that of ``ser
attention`` is :mod:`ser.attention.command`.

Heavy modules (TensorFlow, librosa) are imported inside the handlers, so ``ser --help``
answers at once and each command pays only for what it uses. So are :mod:`ser.training` and
:mod:`ser.demo` (they bring in the corpus loaders, pandas and scipy.signal): ``ser classify``
of an export starts in a third of the time TensorFlow alone takes to import.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings

from ser import interrupts
from ser.attention.command import attention_command
from ser.attention.output import check_outputs
from ser.cli.classify import classify_command
from ser.cli.evaluate import add_evaluate, evaluate_command
from ser.cli.serve import add_serve
from ser.errors import ConfigError, SerError
from ser.exported import export_format
from ser.models import SUMMARY, default_model_path

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran but something failed (e.g. an audio file it cannot use)
EXIT_USAGE = 2  # a user error: bad argument, bad model or recipe file, bad corpus


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ start-up lines ("All log messages before absl::InitializeLog() ...",
    "oneDNN custom operations are on ...") are written before ``TF_CPP_MIN_LOG_LEVEL`` is
    read, straight to the process's stderr, so only silencing the descriptor keeps them off
    the terminal. A failed import still raises, as a one-line error.
    """
    if sys.modules.get("tensorflow") is not None:
        return

    try:
        fd = sys.stderr.fileno()
        sys.stderr.flush()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        saved = None
    try:
        if saved is not None:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), fd)
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise SerError(
            f"cannot import TensorFlow ({exc}); training and Keras models need the train extra: "
            'pip install "ser[train]" (or pip install -r requirements.txt)'
        ) from None
    finally:
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _cmd_train(args) -> int:
    from ser.pool import parse_jobs
    from ser.training import run_recipe

    jobs = parse_jobs(args.jobs)  # a bad value fails before TensorFlow loads
    _import_tensorflow_quietly()

    run_recipe(
        args.recipe,
        data_root=args.data_root,
        out_dir=args.out,
        folds=args.folds,
        epochs=args.epochs,
        seed=args.seed,
        members=args.members,
        overrides=args.set,
        skip_bad=args.skip_bad,
        final_model=not args.no_final,
        jobs=jobs,
        executor=args.executor,
        address=args.address,
        init=args.init,
    )
    return EXIT_OK


def _cmd_check(args) -> int:
    from ser.training import check_corpus

    print(check_corpus(args.recipe, data_root=args.data_root, overrides=args.set, skip_bad=args.skip_bad))
    return EXIT_OK


def _cmd_demo(args) -> int:
    from ser.demo import run_demo

    _import_tensorflow_quietly()

    run_demo(args.out, quick=args.quick)
    return EXIT_OK


def _cmd_evaluate(args) -> int:
    with interrupts.deferred():
        return evaluate_command(args, _import_tensorflow_quietly)


def _import_tensorflow_for(model: str) -> None:
    """Import TensorFlow quietly unless ``model`` is an export (run without it)."""
    if export_format(model) is None:
        _import_tensorflow_quietly()


def _cmd_export(args) -> int:
    from ser.export import export_model

    _import_tensorflow_quietly()
    print(export_model(args.model, args.out, args.format, about=args.about))
    return EXIT_OK


#: Extensions that make the first positional argument of classify and attention a model.
MODEL_SUFFIXES = (".keras", ".onnx", ".tflite")

#: The rule, as ``--help`` states it.
MODEL_RULE = (
    "The first argument is the model when it ends in .keras, .onnx or .tflite or is a folder (a run "
    "folder holding model.keras); otherwise every argument is audio and the default model (below) is used."
)


def is_model_argument(arg: str) -> bool:
    """Whether a first positional argument of classify or attention names a model
    (:data:`MODEL_RULE`); a missing ``x.onnx`` counts, so that it gets the model's error."""
    return os.path.splitext(arg)[1].lower() in MODEL_SUFFIXES or os.path.isdir(arg)


def split_model(inputs: list[str], most_audio: int | None = None) -> tuple[str, list[str]]:
    """``(model, audio files)`` of classify's or attention's positional arguments: the first
    when it is a model (:func:`is_model_argument`), else the default model.

    Raises
    ------
    ConfigError
        A model and no audio file, or more audio files than ``most_audio``.
    """
    if inputs and is_model_argument(inputs[0]):
        model, audio = inputs[0], inputs[1:]
    else:
        model, audio = None, list(inputs)
    if not inputs:
        raise ConfigError("no audio file given; expected [MODEL] AUDIO [AUDIO ...] (or --list FILES.txt)")
    if not audio:
        raise ConfigError(f"no audio file given after the model {inputs[0]}; expected [MODEL] AUDIO")
    if most_audio is not None and len(audio) > most_audio:
        raise ConfigError(
            f"one audio file expected, after an optional model (.keras, .onnx, .tflite or a run folder). "
            f"Received: {' '.join(map(str, inputs))}"
        )
    return (model if model is not None else default_model_path()), audio


def _cmd_classify(args) -> int:
    if args.list is not None or args.out is not None:
        return _cmd_classify_list(args)
    model, audio = split_model(args.inputs)
    _import_tensorflow_for(model)

    with interrupts.deferred():  # a Ctrl-C inside TensorFlow waits for the next file or batch
        return classify_command(
            model,
            audio,
            as_json=args.json,
            window=args.window,
            hop=args.hop,
            top=args.top,
            same_speaker=args.same_speaker,
        )


def _cmd_classify_list(args) -> int:
    """``ser classify [MODEL] --list FILES.txt --out results.jsonl``."""
    if args.list is None or args.out is None:
        raise ConfigError("--list FILES.txt and --out FILE.jsonl go together; expected both, or neither")
    if len(args.inputs) > 1 or (args.inputs and not is_model_argument(args.inputs[0])):
        raise ConfigError(
            f"--list takes its audio files from the list, not the command line; expected at most a model "
            f"before it. Received: {' '.join(args.inputs)}"
        )
    if args.same_speaker:
        raise ConfigError(
            "--same-speaker does not combine with --list (the files of an archive are many speakers')"
        )
    model = args.inputs[0] if args.inputs else default_model_path()
    from ser.cli.archive import classify_list

    _import_tensorflow_for(model)
    with interrupts.deferred():
        return classify_list(
            model,
            args.list,
            args.out,
            jobs=args.jobs,
            window=args.window,
            hop=args.hop,
            executor=args.executor,
            address=args.address,
        )


def _cmd_attention(args) -> int:

    model, (audio,) = split_model(args.inputs, most_audio=1)
    check_outputs(args.out, args.npz)  # a bad --out or --npz fails before TensorFlow loads
    _import_tensorflow_for(model)

    with interrupts.deferred():  # a Ctrl-C inside TensorFlow waits for the next model call's end
        return attention_command(
            model,
            audio,
            out=args.out,
            class_name=args.class_name,
            npz=args.npz,
            start=args.start,
            end=args.end,
            same_speaker=args.same_speaker,
            occlusion=args.occlusion,
        )


def _warning_printer(command: str):
    """A ``warnings.showwarning`` that prints each warning once, as one plain line.

    ``ser``'s own warnings are addressed to the user, not to a programmer: the file and
    source line that raised them are noise, and the same warning from every fold is one.
    Other libraries' warnings keep their category.
    """
    folders = (importlib.util.find_spec(name).origin for name in ("ser", "ser.corpora", "ser.recipes"))
    own = tuple(os.path.dirname(os.path.abspath(origin)) + os.sep for origin in folders)
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        kind = "" if os.path.abspath(filename).startswith(own) else f"{category.__name__}: "
        text = f"ser {command}: warning: {kind}{message}"
        if text not in shown:
            shown.add(text)
            print(text, file=file or sys.stderr, flush=True)

    return show


def _add_train(sub) -> None:
    """``ser train`` and its options."""
    p = sub.add_parser(
        "train",
        help="train and evaluate a recipe with speaker-independent cross-validation",
        description="Train a recipe (a name under recipes/ or a recipe folder) with its speaker- or "
        "session-independent folds; writes results.json, results.md, a confusion matrix and model.keras. "
        "Rerunning the same command resumes: finished folds are skipped.",
    )
    p.add_argument("recipe", help="recipe name (e.g. ravdess, emodb, synthetic) or path to a recipe folder")
    p.add_argument(
        "--data-root",
        required=True,
        action="append",
        metavar="[NAME=]DIR",
        help="folder holding the corpus (or a CSV for 'custom'); a recipe of several corpora takes one "
        "NAME=DIR per corpus, e.g. --data-root ravdess=DIR --data-root tess=DIR",
    )
    p.add_argument("--out", required=True, help="output folder for this run")
    p.add_argument("--folds", default="all", help="'all' or a comma list of fold numbers, e.g. 1,3")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs per fold (default: recipe)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: recipe)")
    p.add_argument(
        "--members",
        type=int,
        default=None,
        help="models per fold and in the final model, averaged (an ensemble; default: recipe, 1). "
        "Costs that many times the training time",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe setting, e.g. --set model.head=average --set training.batch_size=16",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="fine-tune: every model starts from this trained model's weights (a model.keras or a run "
        "folder; not an export): its conv blocks, and its head where the labels are the same. Refused if "
        "it was trained on any of this run's speakers",
    )
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable or misnamed corpus files")
    p.add_argument("--no-final", action="store_true", help="do not train the final all-speaker model")
    p.add_argument(
        "--jobs",
        default="auto",
        metavar="N",
        help="train N folds at once, each in a worker process with its share of the CPUs "
        "(default auto: one per CPU, as memory allows; 1: all in this process)",
    )
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where folds and the final model train: this machine's worker processes (--jobs), "
        'or Ray tasks (pip install "ser[ray]"; the corpus, --out and the cache on a shared file system)',
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster's head (default: a Ray instance on this machine)",
    )
    p.set_defaults(func=_cmd_train)


def _add_check(sub) -> None:
    """``ser check`` and its options."""
    p = sub.add_parser(
        "check",
        help="check a corpus folder and show its speaker x label table",
        description="Load a corpus with a recipe's settings, decode every file, report problems and "
        "the speaker x label table.",
    )
    p.add_argument("recipe", help="recipe name or path to a recipe folder")
    p.add_argument(
        "--data-root",
        required=True,
        action="append",
        metavar="[NAME=]DIR",
        help="folder holding the corpus; NAME=DIR per corpus for a recipe of several",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe setting"
    )
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable or misnamed corpus files")
    p.set_defaults(func=_cmd_check)


def _add_demo(sub) -> None:
    """``ser demo`` and its options."""
    p = sub.add_parser(
        "demo",
        help="train, evaluate, classify and explain on a built-in synthetic corpus",
        description="Generate a synthetic emotional-speech corpus, train the attention CNN with "
        "speaker-independent folds, report WA/UA, classify a held-out file and draw its attention map.",
    )
    p.add_argument("--out", default="ser-demo", help="output folder (default: ./ser-demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (for smoke tests)")
    p.set_defaults(func=_cmd_demo)


def _add_classify(sub) -> None:
    """``ser classify`` and its options."""
    p = sub.add_parser(
        "classify",
        help="classify audio files with a trained model",
        description="Classify audio files: one line per file (or --json). Files up to 12 s are classified "
        "whole; longer files in sliding windows (4 s every 2 s), streamed from disk, and scored by the mean "
        "of the windows' probabilities; --json gives the windows' timeline. A file that fails is reported "
        "and the others are still classified (exit status 1). " + MODEL_RULE,
        epilog="Default model: " + SUMMARY,
        usage="ser classify [-h] [options] [MODEL] AUDIO [AUDIO ...]\n"
        "       ser classify [-h] [options] [MODEL] --list FILES.txt --out RESULTS.jsonl",
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="[MODEL] AUDIO",
        help="an optional model (a model.keras file, a run folder holding one, or an export: .onnx, .tflite), then "
        "audio files (wav, flac, ogg, ...)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help="sliding windows of this many seconds (at most 600), for files of any length (default: 4 s, "
        "over 12 s only)",
    )
    p.add_argument(
        "--hop",
        type=float,
        default=None,
        help="hop between windows in seconds, at least 0.1 (default: half a window; without --window, that of files over 12 s)",
    )
    p.add_argument("--top", type=int, default=1, metavar="K", help="show the K most probable classes")
    p.add_argument(
        "--same-speaker",
        action="store_true",
        help="the files are all one speaker's (5 or more, several emotions): the model adapts to them "
        "without labels (batch-norm statistics; per-speaker normalisation for models trained so)",
    )
    _add_list_options(p)
    p.set_defaults(func=_cmd_classify)


def _add_list_options(p) -> None:
    """``ser classify --list`` and its options."""
    g = p.add_argument_group(
        "archives (--list)",
        "Classify the files of a list into a JSON-lines file, one line per file as it finishes: the object "
        "--json prints for it, or {file, error}. Lines come in the order files finish, not the list's. "
        "Rerunning the same command resumes after any interruption (Ctrl-C, kill -9): files already in "
        "--out are skipped and a cut-off last line is dropped. Notes about single files are not printed.",
    )
    g.add_argument(
        "--list",
        default=None,
        metavar="FILES.txt",
        help="audio paths, one per line (blank lines and # comments skipped; relative to the current folder), "
        "or - for standard input",
    )
    g.add_argument(
        "--out", default=None, metavar="RESULTS.jsonl", help="the JSON-lines file to write or resume"
    )
    g.add_argument(
        "--jobs",
        default="auto",
        metavar="N",
        help="worker processes (or Ray actors), each loading the model once (default auto: one per CPU)",
    )
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help='where the workers run: this machine, or a Ray cluster (pip install "ser[ray]")',
    )
    g.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster's head (default: a Ray instance on this machine)",
    )


def _add_attention(sub) -> None:
    """``ser attention`` and its options."""
    p = sub.add_parser(
        "attention",
        help="draw where in the spectrogram the model heard the emotion",
        description="Plot the log-mel spectrogram, the bottom-up and top-down attention maps and their "
        "product, upsampled to the spectrogram's axes. An audio file that cannot be used (unreadable, too "
        "short, silent) is named on a line of its own and the exit status is 1, as in classify: the file "
        "(no picture), or a --same-speaker file (left out of the adaptation; the picture is still drawn). "
        + MODEL_RULE,
        epilog="Default model: " + SUMMARY,
        usage="ser attention [-h] --out FILE [options] [MODEL] AUDIO",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] AUDIO",
        help="an optional model (a model.keras file, a run folder holding one, or an export: .onnx, .tflite), then "
        "one audio file",
    )
    p.add_argument("--out", required=True, help="picture to write: .png (or .pdf, .svg, .jpg by the suffix)")
    p.add_argument("--class", dest="class_name", default=None, help="class to explain (default: predicted)")
    p.add_argument("--npz", default=None, help="also save the raw maps to this .npz file")
    p.add_argument(
        "--start", type=float, default=None, help="start of the range to show, seconds (default: 0)"
    )
    p.add_argument(
        "--end",
        type=float,
        default=None,
        help="end of the range to show, seconds (default: the end; at most 600 s)",
    )
    p.add_argument(
        "--same-speaker",
        nargs="+",
        default=None,
        metavar="FILE",
        help="other recordings of this file's speaker (with the file, 5 or more, several emotions): the "
        "model adapts to them without labels before drawing, as classify --same-speaker does",
    )
    p.add_argument(
        "--occlusion",
        action="store_true",
        help="add a panel of what the CNN's output depends on: the fall of its logit when each region is "
        "replaced by the training mean (one forward pass per region: about 50 per second of audio), and its "
        "rank correlation with t·h",
    )
    p.set_defaults(func=_cmd_attention)


def _add_export(sub) -> None:
    """``ser export`` and its options."""
    p = sub.add_parser(
        "export",
        help="export a trained model to one file that runs without TensorFlow (ONNX or LiteRT)",
        description="Write a model.keras (or a run folder's) as one ONNX or LiteRT file holding the CNN with its "
        "attention maps, the labels, frontend settings, functionals head and provenance; classify and "
        "attention then run it with ONNX Runtime or the LiteRT interpreter, without TensorFlow. --same-speaker batch-norm "
        "adaptation needs the Keras model.",
    )
    p.add_argument("model", help="a model.keras file or a run folder holding one")
    p.add_argument("--out", required=True, help="the file to write (.onnx or .tflite)")
    p.add_argument(
        "--format", choices=["onnx", "tflite"], default=None, help="default: by the extension of --out"
    )
    p.add_argument(
        "--about",
        default=None,
        metavar="FILE.toml",
        help="what the model was trained on, its licence and limits (a TOML table of strings), stored in "
        "the export's metadata with the run folder's cross-validation scores (results.json, always added)",
    )
    p.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser",
        description="Speech emotion recognition: a CNN with attentional pooling over log-mel spectrograms.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for add in (_add_train, _add_check, _add_demo, _add_classify, _add_attention, _add_export):
        add(sub)
    add_evaluate(sub, _cmd_evaluate)
    add_serve(sub, lambda model: model if model is not None else default_model_path(), _import_tensorflow_for)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter off the terminal
    parser = build_parser()
    args = parser.parse_args(argv)

    warnings.showwarning = _warning_printer(args.command)

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe or full disk shows here, not at exit
        return code
    except SerError as exc:
        if args.debug:
            raise
        print(f"ser {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # train keeps its finished folds: rerunning resumes
        resumes = args.command == "train" or getattr(args, "list", None) is not None
        hint = "; rerun the same command to resume" if resumes else ""
        print(f"ser {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except OSError as exc:
        if args.debug or not _stdout_failed():
            raise  # not our output: a bug, or a file error that deserves its traceback
        if isinstance(exc, BrokenPipeError):  # e.g. `ser classify ... | head -1`: the reader has gone
            return 1
        # e.g. a full disk: one line, no traceback (--debug shows it)
        print(f"ser {args.command}: error: standard output: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _stdout_failed() -> bool:
    """Whether standard output cannot be written (a closed pipe, a full disk); if so, it is
    pointed at /dev/null so that Python's own flush at exit does not fail again."""
    try:
        sys.stdout.flush()
        return False
    except OSError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return True


if __name__ == "__main__":
    sys.exit(main())
