"""The default model shipped with ``ser``: ``ravdess.onnx``.

``ser classify FILE``, ``ser attention FILE --out a.png`` and ``ser.load_model()`` use it when
no model is given. It is the ravdess recipe's final model (trained on all 24 actors),
exported to ONNX, so it runs with the base install (ONNX Runtime, no TensorFlow).

- Trained on: RAVDESS speech, 1,440 recordings by 24 actors, acted North-American English,
  8 classes (angry, calm, disgust, fear, happy, neutral, sad, surprise).
- Measured (speaker-independent, actor-grouped 6-fold cross-validation of the same recipe):
  see :data:`SUMMARY`; the export's metadata (``about["scores"]``) holds the numbers as
  ``ser train`` wrote them in ``results.json``.
- Licence: CC BY-NC-SA 4.0, following its training data: non-commercial, share-alike.
- Limits: accuracy on other languages, spontaneous speech or other recording conditions
  will be lower.

``ravdess.toml`` beside it is the ``about`` text that ``ser export --about`` stored in its
metadata. To rebuild it from the recipe (under 10 minutes on a 2-core CPU)::

    ser train ravdess --data-root RAVDESS_DIR --out runs/ravdess
    ser export runs/ravdess --out ser/models/ravdess.onnx --about ser/models/ravdess.toml
"""

from __future__ import annotations

from pathlib import Path

from ser.errors import ModelError

#: The default model's file name, in this package.
DEFAULT_MODEL = "ravdess.onnx"

#: What the default model is, for ``ser classify --help`` and ``ser attention --help``
#: (tests check its numbers against the model's metadata).
SUMMARY = (
    "the ravdess recipe's final model, shipped with ser (ONNX, runs without TensorFlow). Trained on RAVDESS "
    "speech: 24 actors, acted North-American English, 8 classes (angry, calm, disgust, fear, happy, neutral, "
    "sad, surprise). Speaker-independent scores (actor-grouped 6-fold cross-validation): UA 0.655 ± 0.038, "
    "WA 0.656 ± 0.035; UA 0.740 with --same-speaker adaptation. Licence: CC BY-NC-SA 4.0, following its "
    "training data (non-commercial, share-alike). Accuracy on other languages, spontaneous speech or other "
    "recording conditions will be lower."
)


def default_model_path() -> str:
    """The path of the default model.

    Raises
    ------
    ModelError
        The file is missing (a checkout or build without it).
    """
    path = Path(__file__).resolve().with_name(DEFAULT_MODEL)
    if not path.is_file():
        raise ModelError(
            f"{path}: the default model is missing from this installation; give a model "
            "(.keras, .onnx or a run folder) or rebuild it (see ser/models/__init__.py)"
        )
    return str(path)
