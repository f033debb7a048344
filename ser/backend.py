"""The one interface between a loaded model and the code that runs it.

:class:`ser.classifier.EmotionClassifier`, the sliding windows and the attention maps call a
*backend*; only the backend knows whether it runs a Keras model
(:class:`ser.keras_backend.KerasBackend`), an ONNX export with ONNX Runtime
(:class:`ser.onnx_backend.OnnxBackend`) or a LiteRT export with the LiteRT interpreter
(:class:`ser.litert_backend.LiteRTBackend`). Padding, softmax, fusion, windowing and the
maps' arithmetic stay in their one home above it. :func:`open_backend` picks the backend
from the path.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from ser.exported import export_format
from ser.keras_backend import KerasBackend
from ser.litert_backend import LiteRTBackend
from ser.onnx_backend import OnnxBackend


class Backend(Protocol):
    """What a loaded model offers.

    Attributes
    ----------
    path : str
        The file loaded.
    labels : list of str
        Class names in logit order.
    frontend : dict
        :class:`ser.features.FrontendConfig` fields.
    info : dict
        Free-form metadata saved with the model (normalisation, functionals head, recipe, ...).
    n_members : int
        CNNs whose logits the model averages (1: a single CNN).
    n_mels, n_outputs : int
        Mel bands the graph takes, logits it returns.
    head : str
        ``"attention"``, ``"average"`` or ``"max"``.
    bottom_up_mode : str
        ``"linear"`` or ``"softmax"`` (attention head), ``"constant"`` (pooling heads).
    time_stride, freq_stride : int
        Frames and mel bands per Conv5 cell.
    can_adapt : bool
        Whether :meth:`adapt` can re-estimate batch-norm statistics.
    """

    path: str
    labels: list
    frontend: dict
    info: dict
    n_members: int
    n_mels: int
    n_outputs: int
    head: str
    bottom_up_mode: str
    time_stride: int
    freq_stride: int
    can_adapt: bool

    def logits(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Logits ``(b, n_classes)`` of a padded batch ``x (b, t, n_mels)``, ``m (b, t)``."""

    def member_maps(self, x: np.ndarray, m: np.ndarray) -> list:
        """Per member, ``(logits, top_down, bottom_up)`` (:func:`ser.model.head_maps`)."""

    def member_logits(self, j: int, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Member ``j``'s logits (0-based) of a padded batch."""

    def occlusion_fill(self, j: int) -> np.ndarray:
        """Member ``j``'s training mean per mel band ``(n_mels,)``."""

    def adapt(self, features: list, blocks, multiple: int) -> None:
        """Re-estimate the batch-norm statistics of ``blocks`` from ``features``."""

    def restore(self, blocks) -> None:
        """Put back the training batch-norm statistics after :meth:`adapt`."""


def open_backend(path: str | os.PathLike) -> Backend:
    """Load a model: an export by its extension (``.onnx``, ``.tflite``), else a ``model.keras``
    file or a run folder.

    Raises
    ------
    ModelError
        The file cannot be loaded as what its extension says (see each backend's ``load``).
    """
    kind = export_format(path)
    if kind == "onnx":
        return OnnxBackend.load(path)
    if kind == "tflite":
        return LiteRTBackend.load(path)
    return KerasBackend.load(path)
