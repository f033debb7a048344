"""``ser export``: a trained Keras model as one file that runs without TensorFlow.

The graph (:func:`export_function`) takes ``features`` and ``mask`` and returns the mean
``logits`` and each member's logits and maps (:func:`ser.model.head_maps`), so
classification, windows, attention and occlusion run from the export as from the Keras
model; the metadata (:func:`ser.exported.export_metadata`) carries the rest. The file is
written atomically, then opened again with its runtime and checked against the Keras model
on a test input (:data:`EXPORT_TOLERANCE`). Needs the ``train`` extra (TensorFlow, tf2onnx,
onnx); a ``.tflite`` export is converted with TensorFlow's LiteRT converter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ser import __version__
from ser.errors import ConfigError, ModelError
from ser.exported import (
    EXPORT_SUFFIXES,
    METADATA_KEY,
    export_format,
    export_metadata,
    output_names,
    run_scores,
)
from ser.io import atomic_path
from ser.keras_backend import KerasBackend
from ser.litert_backend import LiteRTBackend, with_metadata
from ser.model import head_maps
from ser.onnx_backend import OnnxBackend

#: ONNX operator set of the exported graph.
ONNX_OPSET = 17

#: Largest absolute difference in logits between an export and its Keras model, on the test
#: input, that :func:`export_model` accepts.
EXPORT_TOLERANCE = 1e-4


def export_function(backend: KerasBackend):
    """``f(features, mask) -> {"logits", "logits_j", "top_down_j", "bottom_up_j"}``, traced
    for any batch size and length (``tf.function``).

    Parameters
    ----------
    backend : KerasBackend
    """
    import tensorflow as tf
    from keras import ops

    maps = backend.feature_map_models()

    def call(features, mask):
        out, logits = {}, []
        for j, (member, fmap) in enumerate(zip(backend.members, maps, strict=True), start=1):
            out[f"logits_{j}"], out[f"top_down_{j}"], out[f"bottom_up_{j}"] = head_maps(
                member, fmap, features, mask
            )
            logits.append(out[f"logits_{j}"])
        out["logits"] = ops.mean(ops.stack(logits), axis=0)
        return out

    spec = [
        tf.TensorSpec((None, None, backend.n_mels), tf.float32, name="features"),
        tf.TensorSpec((None, None), tf.float32, name="mask"),
    ]
    return tf.function(call, input_signature=spec), spec


def _onnx_bytes(backend: KerasBackend, metadata: dict) -> bytes:
    """The ONNX model of ``backend``'s export graph, with ``metadata`` in its ``metadata_props``."""
    import json
    import logging
    import warnings

    with warnings.catch_warnings():  # tf2onnx's use of numpy names deprecated in numpy 2
        warnings.simplefilter("ignore")
        try:
            import tf2onnx
        except ImportError as exc:
            raise ConfigError(
                f'exporting to ONNX needs tf2onnx and onnx ({exc}); install them with: pip install "ser[train]"'
            ) from None
        from keras.src.export.onnx import patch_tf2onnx

        patch_tf2onnx()  # tf2onnx with numpy 2, as Keras's own ONNX export does
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        fn, spec = export_function(backend)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=ONNX_OPSET)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    proto.producer_name, proto.producer_version = "ser", __version__
    return proto.SerializeToString()


def _tflite_bytes(backend: KerasBackend, metadata: dict) -> bytes:
    """The LiteRT flatbuffer of ``backend``'s export graph (builtin operators only, variables
    frozen, dynamic batch and length), with ``metadata`` as its ``ser`` metadata entry."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn, _ = export_function(backend)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    holder = tf.Module()
    holder.variables_ = [v for member in backend.members for v in member.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        data = converter.convert()
    except Exception as exc:  # the converter's own error types
        reason = " ".join(str(exc).split())[:300]
        raise ModelError(f"the model cannot be converted to LiteRT ({reason})") from None
    # the outputs come out numbered in the order of the graph's flattened dict: sorted names
    return with_metadata(data, json.dumps(metadata), sorted(output_names(backend.n_members)))


def _check_parity(backend: KerasBackend, exported, path: str) -> float:
    """Largest absolute difference of the logits of a test input (two lengths, one padded).

    Raises
    ------
    ModelError
        Over :data:`EXPORT_TOLERANCE`.
    """
    rng = np.random.default_rng(0)
    frames = 4 * backend.time_stride
    x = rng.standard_normal((2, frames, backend.n_mels)).astype(np.float32)
    m = np.ones((2, frames), np.float32)
    m[1, frames // 2 :] = 0.0
    x[1, frames // 2 :] = 0.0
    gap = float(np.max(np.abs(backend.logits(x, m) - exported.logits(x, m))))
    if not gap <= EXPORT_TOLERANCE:
        raise ModelError(
            f"{path}: the export's logits differ from the Keras model's by {gap:.2g} (at most "
            f"{EXPORT_TOLERANCE:g} expected); the export was removed"
        )
    return gap


def read_about(about_path: str | os.PathLike | None, model_file: str) -> dict:
    """An export's ``about``: the TOML table of ``about_path`` (what the model was trained
    on, its licence, its limits: free-form strings) and, where the model lies in a run
    folder with a ``results.json``, its cross-validation scores (:func:`run_scores`).

    Raises
    ------
    ConfigError
        An ``about_path`` that cannot be read, is not TOML, or already holds ``scores``;
        a ``results.json`` that is not JSON.
    """
    from ser.recipe import tomllib

    about = {}
    if about_path is not None:
        try:
            about = tomllib.loads(Path(about_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(
                f"{about_path}: not a readable TOML file ({exc}). Received: --about {about_path}"
            ) from None
        if "scores" in about:
            raise ConfigError(
                f"{about_path}: 'scores' comes from the run folder's results.json, not from --about; remove it"
            )
    results = Path(model_file).parent / "results.json"
    if results.is_file():
        try:
            about["scores"] = run_scores(json.loads(results.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise ConfigError(f"{results}: not valid JSON ({exc})") from None
    return about


def export_model(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str | None = None,
    about: str | os.PathLike | None = None,
) -> str:
    """Export a ``model.keras`` (or the one in a run folder) to ``out``.

    Parameters
    ----------
    model_path : str or PathLike
    out : str or PathLike
        The file to write; its extension names the format (``.onnx``, ``.tflite``).
    fmt : {"onnx", "tflite"} or None
        Must agree with the extension of ``out`` where given.
    about : str or PathLike or None
        A TOML file of what the model was trained on, its licence and limits, stored with
        the scores of the run folder's ``results.json`` as the metadata's ``about``
        (:func:`read_about`).

    Returns
    -------
    str
        The file written.

    Raises
    ------
    ConfigError
        ``out`` with an extension that is not an export's, or that disagrees with ``fmt``.
    ModelError
        The model cannot be loaded, or its export does not reproduce its logits.
    """
    out = Path(out)
    kind = export_format(out)
    if kind is None or (fmt is not None and fmt != kind):
        wanted = f".{fmt}" if fmt else " or ".join(EXPORT_SUFFIXES)
        raise ConfigError(f"{out}: an export is written to a {wanted} file. Received: --out {out}")
    if about is not None and not Path(about).is_file():
        raise ConfigError(f"{about}: not found; expected a TOML file. Received: --about {about}")
    backend = KerasBackend.load(model_path)
    meta = export_metadata(backend, backend.path, __version__, read_about(about, backend.path))
    data = (_onnx_bytes if kind == "onnx" else _tflite_bytes)(backend, meta)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)
        _check_parity(backend, (OnnxBackend if kind == "onnx" else LiteRTBackend).load(tmp), str(out))
    return str(out)
