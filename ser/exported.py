"""What an export holds besides its graph: the metadata schema, written and read here.

``ser export`` (:mod:`ser.export`) writes one file, an ONNX model (``.onnx``) or a LiteRT
flatbuffer (``.tflite``), whose graph takes ``features (b, t, n_mels)`` and ``mask (b, t)``
(float32) and returns the ensemble's mean ``logits`` and, per member ``j`` (from 1), its
``logits_j``, ``top_down_j`` and ``bottom_up_j`` (:func:`ser.model.head_maps`). The feature
normalisation is in the graph. Everything else a classifier needs is one JSON object under
the metadata key :data:`METADATA_KEY` (ONNX ``metadata_props``; a LiteRT metadata buffer):
:func:`export_metadata` makes it, :func:`read_metadata` checks it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ser.constants import FORMAT_VERSION
from ser.errors import ModelError
from ser.io import check_format_version

#: The metadata key of an export's JSON object.
METADATA_KEY = "ser"

#: The export formats ``ser export`` writes, by file extension.
EXPORT_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}

#: Keys every export's metadata holds (besides ``format_version``).
REQUIRED = (
    "labels",
    "frontend",
    "info",
    "head",
    "bottom_up_mode",
    "time_stride",
    "freq_stride",
    "members",
    "n_mels",
    "occlusion_fill",
)


def export_format(path) -> str | None:
    """``"onnx"`` or ``"tflite"`` for a path with an export's extension, else None."""
    return EXPORT_SUFFIXES.get(Path(path).suffix.lower())


def output_names(members: int) -> list[str]:
    """The graph's outputs: ``logits``, then ``logits_j, top_down_j, bottom_up_j`` per member."""
    names = ["logits"]
    for j in range(1, members + 1):
        names += [f"logits_{j}", f"top_down_{j}", f"bottom_up_{j}"]
    return names


def run_scores(results: dict) -> dict:
    """The cross-validation scores of a run's ``results.json``, as an export's
    ``about["scores"]``: the protocol, the number of folds, UA and WA (mean and standard
    deviation over the folds) and the same with speaker adaptation, where measured."""
    scores = {
        "recipe": results.get("recipe"),
        "corpus": results.get("corpus"),
        "protocol": results.get("protocol"),
        "folds": len(results.get("folds", [])),
        "complete": bool(results.get("complete")),
    }
    for key in ("ua_mean", "ua_std", "wa_mean", "wa_std"):
        if results.get(key) is not None:
            scores[key] = round(float(results[key]), 4)
    adapted = results.get("speaker_adapted") or {}
    if adapted.get("ua_mean") is not None:
        scores["speaker_adapted"] = {
            key: round(float(adapted[key]), 4) if key != "protocol" else adapted[key]
            for key in ("ua_mean", "ua_std", "wa_mean", "wa_std", "protocol")
            if adapted.get(key) is not None
        }
    return scores


def export_metadata(backend, source: str, ser_version: str, about: dict | None = None) -> dict:
    """The metadata of an export of ``backend`` (a :class:`ser.keras_backend.KerasBackend`).

    Labels, frontend settings, ``info`` (the functionals head and fusion weights, the
    normalisation, the recipe, corpus, classes, training speakers and scores as ``ser
    train`` stored them), the head and its strides, each member's training mean per mel
    band (the occlusion fill), where it was exported from, the format version and, where
    given, ``about``: what the model was trained on, its measured scores, its licence and
    its limits (``ser export --about``; :func:`run_scores`).
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "labels": list(backend.labels),
        "frontend": dict(backend.frontend),
        "info": dict(backend.info),
        "head": backend.head,
        "bottom_up_mode": backend.bottom_up_mode,
        "time_stride": int(backend.time_stride),
        "freq_stride": int(backend.freq_stride),
        "members": int(backend.n_members),
        "n_mels": int(backend.n_mels),
        "occlusion_fill": [backend.occlusion_fill(j).tolist() for j in range(backend.n_members)],
        "exported_from": str(source),
        "ser_version": ser_version,
    }
    if about:
        meta["about"] = dict(about)
    return meta


def read_metadata(text: str | None, path) -> dict:
    """Parse and check an export's metadata (what :func:`export_metadata` wrote).

    Raises
    ------
    ModelError
        No metadata (a model not written by ``ser export``), not JSON, another format
        version, or a required key missing.
    """
    if text is None:
        raise ModelError(
            f"{path}: holds no ser metadata ('{METADATA_KEY}'); expected a file written by `ser export`"
        )
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ModelError(
            f"{path}: its ser metadata is not a JSON object; expected a file written by `ser export`"
        )
    check_format_version(meta.get("format_version"), path, ModelError)
    missing = [key for key in REQUIRED if meta.get(key) is None]
    if missing:
        raise ModelError(
            f"{path}: export without its {', '.join(missing)}; expected a file written by `ser export`"
        )
    if not isinstance(meta["labels"], list) or not isinstance(meta["frontend"], dict):
        raise ModelError(
            f"{path}: labels or frontend settings of the wrong type; expected a file written by `ser export`"
        )
    return meta


def check_export_file(path) -> str:
    """The path of an export file, checked to exist and be a regular file.

    Raises
    ------
    ModelError
        Missing path, or not a regular file.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: not found; expected a model exported by `ser export`")
    if not p.is_file():
        raise ModelError(f"{p}: not a regular file; expected a model exported by `ser export`")
    return str(p)
