"""A ``model.keras`` on disk: find it, load it, read its metadata.

Everything that can be wrong with a model file is reported here as one
:class:`~ser.errors.ModelError` line naming the file: a missing path, a run folder without its
final model, not a Keras archive, a model that is not ``ser``'s, or one written in another
format version (:data:`ser.constants.FORMAT_VERSION`).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from ser.errors import ModelError
from ser.io import check_format_version

#: Name of the model file inside a run folder.
MODEL_FILENAME = "model.keras"


def load_keras_model(path: str | os.PathLike):
    """Load a ``model.keras`` file, or the ``model.keras`` in a run folder.

    The file is loaded with ``safe_mode=True``: nothing in it is executed.

    Returns
    -------
    model : keras.Model
    file : str
        The file loaded.

    Raises
    ------
    ModelError
        Missing path, folder without ``model.keras``, not a Keras archive, corrupted, or
        written by an incompatible version of Keras.
    """
    file = model_file(path)
    import keras

    import ser.layers  # noqa: F401  (registers the custom layers before deserialising)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(file, compile=False, safe_mode=True)
    except Exception as exc:  # Keras reports every bad archive its own way
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        saved_with = _saved_keras_version(file)
        version = (
            f"; it was saved with Keras {saved_with}, this is Keras {keras.__version__}"
            if saved_with and saved_with != keras.__version__
            else ""
        )
        raise ModelError(
            f"{file}: cannot load the model ({reason}){version}; expected a model.keras written by "
            "`ser train` with a compatible version of ser"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"{file}: holds a {type(model).__name__}, not a model; expected a ser model")
    return model, file


def metadata_layer(model, path: str):
    """The ``ser_metadata`` layer of a loaded model, its format version checked.

    Raises
    ------
    ModelError
        No such layer (not a ``ser`` model), or another format version than this ``ser`` reads.
    """
    try:
        meta = model.get_layer("ser_metadata")
    except ValueError:
        raise ModelError(
            f"{path}: not a ser model (no 'ser_metadata' layer); expected a model.keras written by `ser train`"
        ) from None
    check_format_version(meta.info.get("format_version"), path, ModelError)
    return meta


def model_file(path: str | os.PathLike) -> str:
    """Resolve a model path (file or run folder) and check it looks like a Keras archive.

    Raises
    ------
    ModelError
        Missing path, folder without ``model.keras`` (a run trained with ``--no-final``), not
        a ``.keras`` file, or not a zip archive holding ``config.json``.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL_FILENAME).is_file():
            if (p / "results.json").is_file() or (p / "folds").is_dir():
                raise ModelError(
                    f"{p}: run folder without a final {MODEL_FILENAME} (trained with --no-final, "
                    "or not all folds done); expected a run folder holding one: rerun its "
                    "`ser train` command without --no-final to train it"
                )
            raise ModelError(
                f"{p}: folder holds no {MODEL_FILENAME}; expected a model.keras file or a run folder"
            )
        p = p / MODEL_FILENAME
    elif not p.exists():
        raise ModelError(f"{p}: not found; expected a model.keras file or a run folder holding one")
    elif not p.is_file():
        raise ModelError(f"{p}: not a regular file; expected a model.keras file")
    if p.suffix != ".keras":
        raise ModelError(f"{p}: not a .keras file; expected a model.keras written by `ser train`")
    try:
        with zipfile.ZipFile(p) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelError(
            f"{p}: not a Keras model archive ({reason}); the file is truncated, corrupted or not a model"
        ) from None
    if "config.json" not in names:
        raise ModelError(f"{p}: zip archive without config.json; not a Keras model")
    return str(p)


def _saved_keras_version(file: str) -> str | None:
    """The Keras version recorded in a ``.keras`` archive, if readable."""
    try:
        with zipfile.ZipFile(file) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version")) or None
    except Exception:
        return None
