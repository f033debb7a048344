"""``ser classify``: classify files, one line (or JSON object) per file.

A file that cannot be classified is reported and the others are still classified, as
whisper's ``transcribe`` does with many input files.
"""

from __future__ import annotations

import json

from ser.classifier import NO_SPEECH_NOTE, EmotionClassifier, Prediction
from ser.errors import ConfigError, SerError
from ser.io import log
from ser.preprocessor import audio_notes, error_text
from ser.speaker import adapt_to_speaker
from ser.windows import check_window


def format_line(prediction: Prediction, top: int) -> str:
    """One file's line: the ``top`` classes with their probabilities, and for windowed input
    how many windows were averaged (and how many without speech were left out)."""
    best = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top(top))
    line = f"{prediction.file}: {best}"
    if prediction.segments:
        n, counted = len(prediction.segments), sum(s.counted for s in prediction.segments)
        if counted < n:
            left = n - counted
            line += (
                f"  (mean of {counted} of {n} windows over {prediction.duration:.1f} s; "
                f"{left} window{'s' if left != 1 else ''} without speech left out)"
            )
        else:
            line += f"  (mean of {n} window{'s' if n != 1 else ''} over {prediction.duration:.1f} s)"
    return line


def classify_command(
    model_path: str,
    audio_paths: list[str],
    *,
    as_json: bool = False,
    window: float | None = None,
    hop: float | None = None,
    top: int = 1,
    same_speaker: bool = False,
) -> int:
    """``ser classify``: classify files, one line (or JSON object) per file.

    A file that cannot be classified is reported (a ``{"file", "error"}`` object in JSON, a
    line on stderr otherwise) and the other files are still classified. With
    ``same_speaker``, the files are taken to be one speaker's (:func:`ser.speaker.adapt_to_speaker`).

    Returns
    -------
    int
        0 if every file was classified, 1 if any failed.

    Raises
    ------
    ModelError
        The model cannot be loaded.
    ConfigError
        Bad ``window``, ``hop`` or ``top``.
    """
    if window is not None or hop is not None:
        check_window(window, hop)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer. Received: top={top!r}")
    classifier = EmotionClassifier.load(model_path)
    if same_speaker:
        for note in adapt_to_speaker(classifier, audio_paths).notes:
            log(note)
    elif classifier.normalization == "speaker":
        log(
            "note: this model was trained with per-speaker normalisation; without --same-speaker each "
            "file is normalised by its own statistics (less accurate)"
        )
    results = []
    try:
        failed = _classify_each(classifier, audio_paths, results, as_json, window, hop, top)
    except KeyboardInterrupt:
        if as_json:  # what was finished is not lost: valid JSON of the files done so far
            print(json.dumps(results, indent=2), flush=True)
        raise
    if as_json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def classify_file(classifier, path, window=None, hop=None) -> Prediction | dict:
    """Classify one file; a file that cannot be classified gives its error object instead.

    Returns
    -------
    Prediction or dict
        The prediction, or ``{"file": str(path), "error": message}`` where ``message`` is
        the one-line reason without the file name (:func:`ser.preprocessor.error_text`).
    """
    try:
        return classifier.classify(path, window=window, hop=hop)
    except SerError as exc:
        return {"file": str(path), "error": error_text(str(path), exc)}


def json_result(classifier, path, window=None, hop=None) -> dict:
    """The object ``ser classify --json`` prints for one file: :meth:`Prediction.to_dict
    <ser.classifier.Prediction.to_dict>`, or ``{"file", "error"}`` (:func:`classify_file`)."""
    result = classify_file(classifier, path, window, hop)
    return result if isinstance(result, dict) else result.to_dict()


def _classify_each(classifier, audio_paths, results: list, as_json: bool, window, hop, top) -> int:
    """Classify each file in turn (JSON objects appended to ``results``); the number failed."""
    failed = 0
    for path in audio_paths:
        for note in audio_notes(classifier.frontend, path):
            log(note)
        prediction = classify_file(classifier, path, window, hop)
        if isinstance(prediction, dict):
            failed += 1
            if as_json:
                results.append(prediction)
            else:
                log(f"{path}: error: {prediction['error']}")
            continue
        if not prediction.speech:
            log(f"note: {path}: {NO_SPEECH_NOTE}")
        if as_json:
            results.append(prediction.to_dict())
        else:
            print(format_line(prediction, top), flush=True)
    return failed
