"""Running a model: the forward pass, softmax / log-softmax and the Conv5 stride.

The one home of each, so training, evaluation, adaptation, classification and the attention
maps run a model the same way.
"""

from __future__ import annotations

import numpy as np

from ser import interrupts
from ser.features import pad_batch


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Softmax in float64, stable for any finite logits.

    Parameters
    ----------
    logits : array-like [shape=(..., n_classes)]
    axis : int

    Returns
    -------
    np.ndarray [dtype=float64], the shape of ``logits``; sums to 1 along ``axis``.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """Log of :func:`softmax`, computed stably in float64.

    Parameters
    ----------
    logits : array-like [shape=(..., n_classes)]
    axis : int

    Returns
    -------
    np.ndarray [dtype=float64], the shape of ``logits``.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def forward_function(model):
    """``f(x, mask) -> logits`` for inference, traced once for any batch size and length.

    The model call is one ``tf.function`` with unknown batch and time dimensions, so batches
    of new shapes never retrace. The function is cached on the model and sees later weight
    updates.

    Parameters
    ----------
    model : keras.Model
        Inputs ``[features (b, t, n_mels), mask (b, t)]``.

    Returns
    -------
    callable
        ``f(x, mask)`` with ``x`` float32 ``(b, t, n_mels)`` and ``mask`` float32 ``(b, t)``;
        returns the logits as a tensor ``(b, n_classes)``.
    """
    cached = getattr(model, "_ser_forward", None)
    if cached is not None:
        return cached
    import tensorflow as tf

    def call(x, m):
        return model([x, m], training=False)

    n_mels = model.inputs[0].shape[-1]
    spec = [tf.TensorSpec((None, None, n_mels), tf.float32), tf.TensorSpec((None, None), tf.float32)]
    fn = tf.function(call, input_signature=spec)
    # Each model traces once; many models in one process (folds) would otherwise trip
    # TensorFlow's "frequent retracing" warning.
    fn._omit_frequent_tracing_warning = True
    model._ser_forward = fn
    return fn


def length_batches(features, batch_size: int, multiple: int = 1):
    """Batches of whole utterances grouped by length (little padding), for evaluation.

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(t_i, n_mels)]
        A list, or a :class:`ser.store.FeatureView` (read one batch at a time).
    batch_size : int
    multiple : int
        The padded length is a multiple of this (the model's time stride).

    Yields
    ------
    indices : np.ndarray of int
        Positions in ``features`` of the batch's utterances.
    x : np.ndarray [shape=(b, t, n_mels), dtype=float32]
    mask : np.ndarray [shape=(b, t), dtype=float32]
    """
    lengths = getattr(features, "lengths", None)  # a ser.store.FeatureView's, without reading
    if lengths is None:
        lengths = [f.shape[0] for f in features]
    order = np.argsort(lengths, kind="stable")
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        x, m = pad_batch([features[i] for i in idx], multiple=multiple)
        yield idx, x, m


def predict_logits(model, features, batch_size: int = 32, multiple: int = 16) -> np.ndarray:
    """Logits of whole utterances, batched by length (:func:`length_batches`).

    Parameters
    ----------
    model : keras.Model
    features : list of np.ndarray [shape=(t_i, n_mels)]
    batch_size : int
    multiple : int
        The model's time stride (:func:`conv5_strides`).

    Returns
    -------
    np.ndarray [shape=(len(features), n_classes), dtype=float32]
        In the order of ``features``.
    """
    forward = forward_function(model)
    out = np.zeros((len(features), model.output_shape[-1]), dtype=np.float32)
    for idx, x, m in length_batches(features, batch_size, multiple):
        out[idx] = np.asarray(forward(x, m))
        interrupts.check()  # a Ctrl-C that came during TensorFlow's work (ser.interrupts)
    return out


def conv5_strides(model) -> tuple[int, int]:
    """Input frames and mel bands per Conv5 position.

    The products of the pool sizes and conv strides of the model's layers.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`ser.model.build_model` (a single CNN, not an ensemble).

    Returns
    -------
    time_stride, freq_stride : int
    """
    import keras

    time_stride, freq_stride = 1, 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            time_stride *= int(layer.pool_size[0])
            freq_stride *= int(layer.pool_size[1])
        elif isinstance(layer, keras.layers.Conv2D):
            time_stride *= int(layer.strides[0])
            freq_stride *= int(layer.strides[1])
    return time_stride, freq_stride
