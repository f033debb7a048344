"""Custom Keras layers: :class:`AttentionalPooling` and the helpers of the model.

Attentional pooling (Girdhar & Ramanan, "Attentional Pooling for Action Recognition",
NeurIPS 2017), as used for speech emotion recognition by Li et al. (Interspeech 2018).
For a feature map ``X`` of ``n`` positions by ``f`` channels, second-order pooling scores
class ``k`` as ``Tr(X^T X W_k)``; with the rank-1 approximation ``W_k = b a_k^T``

    score(k) = Tr(X^T X b a_k^T) = (X a_k)^T (X b),

the inner product, over the ``n`` time-frequency positions, of a class-specific
*top-down* map ``t_k = X a_k`` and a class-agnostic *bottom-up* map ``h = X b``. Average
pooling followed by a linear classifier is the special case ``h = 1``.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

from ser.checks import is_int

BOTTOM_UP_MODES = ("linear", "softmax")
POOLING_MODES = ("average", "max")


def _position_mask(mask, x):
    """Broadcast a ``(b, t)`` or ``(b, t, f)`` mask to ``(b, t, f, 1)`` floats matching ``x``."""
    if mask is None:
        return ops.ones_like(x[..., :1])
    m = ops.cast(mask, x.dtype)
    if len(m.shape) == 2:
        m = ops.expand_dims(m, 2)
    m = ops.expand_dims(m, -1)  # expand_dims, not [..., None]: LiteRT has no new-axis slices
    return m * ops.ones_like(x[..., :1])


@keras.saving.register_keras_serializable(package="ser")
class AttentionalPooling(keras.layers.Layer):
    """Low-rank attentional pooling of a ``(batch, time, freq, channels)`` feature map.

    Top-down maps ``t_{k,r} = X a_{k,r} + c_{k,r}`` (a 1x1 convolution, one map per class
    and rank) and a bottom-up map ``h_r = X b_r + d_r`` (a 1x1 convolution, class-agnostic).

    - ``bottom_up="linear"``: ``logit_k = mean over valid positions of sum_r t_{k,r} h_r``.
    - ``bottom_up="softmax"``: ``h_r`` is a softmax over the valid positions and
      ``logit_k = sum over positions of sum_r t_{k,r} h_r``.

    Padded positions (``mask == 0``) never change the result.

    Args:
        num_classes: Number of output logits.
        rank: Rank of the approximation of each class's second-order weight matrix.
        bottom_up: ``"linear"`` or ``"softmax"``.
        dropout: Dropout rate on the input features during training.

    Call arguments:
        x: Tensor of shape ``(batch, time, freq, channels)``.
        mask: Optional ``(batch, time)`` or ``(batch, time, freq)`` tensor, 1 for valid.
        return_attention: If ``True``, also return a dict with ``"top_down"``
            ``(batch, time, freq, num_classes * rank)`` (channel ``k * rank + r``) and
            ``"bottom_up"`` ``(batch, time, freq, rank)`` (after the softmax in softmax mode).

    Returns:
        Logits of shape ``(batch, num_classes)``, or ``(logits, maps)``.
    """

    def __init__(self, num_classes, rank=1, bottom_up="linear", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
            )
        if not is_int(rank) or rank < 1:
            raise ValueError(f"`rank` must be a positive integer. Received: rank={rank!r}")
        if bottom_up not in BOTTOM_UP_MODES:
            raise ValueError(
                f"`bottom_up` must be one of {BOTTOM_UP_MODES}. Received: bottom_up={bottom_up!r}"
            )
        if not isinstance(dropout, numbers.Real) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
        self.num_classes = int(num_classes)
        self.rank = int(rank)
        self.bottom_up = bottom_up
        self.dropout = float(dropout)
        self.supports_masking = True
        self._dropout_layer = keras.layers.Dropout(self.dropout) if self.dropout > 0 else None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"AttentionalPooling expects input of shape (batch, time, freq, channels). "
                f"Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        self.top_down_kernel = self.add_weight(
            name="top_down_kernel",
            shape=(channels, self.num_classes * self.rank),
            initializer="glorot_uniform",
        )
        self.top_down_bias = self.add_weight(
            name="top_down_bias", shape=(self.num_classes * self.rank,), initializer="zeros"
        )
        self.bottom_up_kernel = self.add_weight(
            name="bottom_up_kernel", shape=(channels, self.rank), initializer="glorot_uniform"
        )
        self.bottom_up_bias = self.add_weight(name="bottom_up_bias", shape=(self.rank,), initializer="ones")

    def maps(self, x, training=None):
        """Top-down ``(b, t, f, K*R)`` and bottom-up ``(b, t, f, R)`` maps before masking."""
        if self._dropout_layer is not None:
            x = self._dropout_layer(x, training=training)
        top_down = ops.einsum("btfc,ck->btfk", x, self.top_down_kernel) + self.top_down_bias
        bottom_up = ops.einsum("btfc,cr->btfr", x, self.bottom_up_kernel) + self.bottom_up_bias
        return top_down, bottom_up

    def call(self, x, mask=None, training=None, return_attention=False):
        top_down, bottom_up = self.maps(x, training=training)
        m = _position_mask(mask, x)  # (b, t, f, 1)
        if self.bottom_up == "softmax":
            shape = ops.shape(bottom_up)
            flat = ops.reshape(bottom_up, (shape[0], -1, self.rank))
            flat_m = ops.reshape(m, (shape[0], -1, 1))
            flat = ops.where(flat_m > 0, flat, ops.full_like(flat, -1e9))
            weights = ops.softmax(flat, axis=1) * flat_m
            weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1e-12)
            bottom_up = ops.reshape(weights, shape)
            h = bottom_up
        else:
            count = ops.maximum(ops.sum(m, axis=(1, 2, 3)), 1.0)  # valid positions per example
            h = bottom_up * m / ops.reshape(count, (-1, 1, 1, 1))
        td = ops.reshape(top_down, (*ops.shape(top_down)[:3], self.num_classes, self.rank))
        # sum of td * h, not a five-axis einsum: LiteRT has no builtin for it
        logits = ops.sum(td * ops.expand_dims(h, 3), axis=(1, 2, 4))
        if return_attention:
            if self.bottom_up == "linear":
                bottom_up = bottom_up * m
            return logits, {"top_down": top_down * m, "bottom_up": bottom_up}
        return logits

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def compute_output_spec(self, x, mask=None, training=None, return_attention=False):
        # Overridden so that a symbolic (functional-model) call with return_attention=True
        # gets the (logits, maps) structure that the eager call returns.
        logits = keras.KerasTensor(self.compute_output_shape(x.shape), dtype=self.compute_dtype)
        if not return_attention:
            return logits
        b, t, f = x.shape[:3]
        maps = {
            "top_down": keras.KerasTensor((b, t, f, self.num_classes * self.rank), dtype=self.compute_dtype),
            "bottom_up": keras.KerasTensor((b, t, f, self.rank), dtype=self.compute_dtype),
        }
        return logits, maps

    def get_config(self):
        config = {
            "num_classes": self.num_classes,
            "rank": self.rank,
            "bottom_up": self.bottom_up,
            "dropout": self.dropout,
        }
        base_config = super().get_config()
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package="ser")
class MaskedGlobalPooling(keras.layers.Layer):
    """Average or max over the valid positions of a ``(batch, time, freq, channels)`` map.

    The baseline heads of the model: ``mode="average"`` followed by a dense layer is
    attentional pooling with a constant bottom-up map.

    Args:
        mode: ``"average"`` or ``"max"``.

    Returns:
        Tensor of shape ``(batch, channels)``.
    """

    def __init__(self, mode="average", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ValueError(f"`mode` must be one of {POOLING_MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        m = _position_mask(mask, x)
        if self.mode == "average":
            return ops.sum(x * m, axis=(1, 2)) / ops.maximum(ops.sum(m, axis=(1, 2)), 1.0)
        return ops.max(ops.where(m > 0, x, ops.full_like(x, -1e9)), axis=(1, 2))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="ser")
class MetadataLayer(keras.layers.Layer):
    """Identity layer that carries a model's labels and frontend settings in its config.

    Saved with the model, so a ``.keras`` file is self-describing: whoever loads it gets
    the class names and the exact log-mel settings used in training.

    Args:
        labels: Class names in logit order.
        frontend: Dict of :class:`ser.features.FrontendConfig` fields.
        info: Free-form JSON-serialisable dict (recipe, corpus, version, normalisation).
    """

    def __init__(self, labels=(), frontend=None, info=None, **kwargs):
        super().__init__(**kwargs)
        self.labels = [str(label) for label in labels]
        self.frontend = dict(frontend or {})
        self.info = dict(info or {})
        self.supports_masking = True

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"labels": list(self.labels), "frontend": dict(self.frontend), "info": dict(self.info)}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="ser")
class FeatureNormalization(keras.layers.Layer):
    """Standardise the last axis: ``(x - mean) / sqrt(variance)``, with the statistics as weights.

    Like ``keras.layers.Normalization(axis=-1, mean=..., variance=...)``, except that the
    statistics are (non-trainable) variables rather than constants: a traced training step
    reads them at run time, so one traced model can be trained fold after fold with each
    fold's own training statistics (:class:`ser.training.Trainer`). They are saved with the
    model's weights.

    Args:
        mean: Initial mean, shape ``(features,)``; zeros if ``None``.
        variance: Initial variance, shape ``(features,)``; ones if ``None``.
    """

    def __init__(self, mean=None, variance=None, **kwargs):
        super().__init__(**kwargs)
        self._initial = (mean, variance)
        self.supports_masking = True

    def build(self, input_shape):
        n = input_shape[-1]
        if n is None:
            raise ValueError(
                f"FeatureNormalization needs a known last axis. Received: input_shape={input_shape}"
            )
        mean, variance = self._initial
        self.mean = self.add_weight(
            name="mean",
            shape=(n,),
            initializer="zeros" if mean is None else keras.initializers.Constant(mean),
            trainable=False,
        )
        self.variance = self.add_weight(
            name="variance",
            shape=(n,),
            initializer="ones" if variance is None else keras.initializers.Constant(variance),
            trainable=False,
        )

    def set_statistics(self, mean, variance):
        """Assign new statistics (arrays of shape ``(features,)``)."""
        self.mean.assign(ops.cast(ops.convert_to_tensor(mean), self.mean.dtype))
        self.variance.assign(ops.cast(ops.convert_to_tensor(variance), self.variance.dtype))

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        scale = ops.maximum(ops.sqrt(ops.cast(self.variance, x.dtype)), keras.backend.epsilon())
        return (x - ops.cast(self.mean, x.dtype)) / scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        # The statistics are weights, saved and loaded with the others.
        return super().get_config()


@keras.saving.register_keras_serializable(package="ser")
class ApplyMask(keras.layers.Layer):
    """Zero a ``(batch, time, freq, channels)`` map where a ``(batch, time)`` mask is 0."""

    def call(self, x, valid):
        return x * ops.reshape(ops.cast(valid, x.dtype), (*ops.shape(valid)[:2], 1, 1))

    def compute_output_shape(self, x_shape, valid_shape):
        return x_shape


@keras.saving.register_keras_serializable(package="ser")
class TimeDeltas(keras.layers.Layer):
    """Append delta and delta-delta channels along time to a ``(batch, time, freq, c)`` map.

    The delta of ``x`` is the regression slope over ``2 N + 1`` frames (``N = width``; the
    ``delta`` of HTK and :func:`librosa.feature.delta` with ``width=2N+1``, away from the
    ends): ``d[t] = sum_{n=1..N} n (x[t+n] - x[t-n]) / (2 sum_{n=1..N} n^2)``; the
    delta-delta is the delta of ``d``. Frames beyond the valid ones (a ``(batch, time)`` mask
    of 1 and 0) count as zeros in both: ``x`` and ``d`` are masked first, so padding a batch
    never changes a valid frame's result. The output holds ``[x, d, dd]`` along the channels
    (``3 c`` of them), zero beyond the valid frames.
    """

    def __init__(self, width=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise ValueError(f"`width` must be an integer >= 1. Received: width={width!r}")
        self.width = int(width)

    def _delta(self, x):
        n = self.width
        padded = ops.pad(x, [[0, 0], [n, n], [0, 0], [0, 0]])
        t = ops.shape(x)[1]
        out = 0.0
        for k in range(1, n + 1):
            out = out + k * (padded[:, n + k : n + k + t] - padded[:, n - k : n - k + t])
        return out / (2.0 * sum(k * k for k in range(1, n + 1)))

    def call(self, x, valid):
        valid = ops.reshape(ops.cast(valid, x.dtype), (*ops.shape(valid)[:2], 1, 1))
        x = x * valid
        d = self._delta(x) * valid
        return ops.concatenate([x, d, self._delta(d) * valid], axis=-1)

    def compute_output_shape(self, x_shape, valid_shape):
        return (*x_shape[:-1], 3 * x_shape[-1])

    def get_config(self):
        return {**super().get_config(), "width": self.width}


@keras.saving.register_keras_serializable(package="ser")
class PoolMask(keras.layers.Layer):
    """Max-pool a ``(batch, time)`` mask along time by ``pool`` (ceil), like the conv trunk."""

    def __init__(self, pool=2, **kwargs):
        super().__init__(**kwargs)
        if int(pool) < 1:
            raise ValueError(f"`pool` must be >= 1. Received: pool={pool}")
        self.pool = int(pool)

    def call(self, valid):
        m = ops.expand_dims(ops.cast(valid, "float32"), 2)
        return ops.max_pool(m, pool_size=self.pool, strides=self.pool, padding="same")[:, :, 0]

    def compute_output_shape(self, input_shape):
        t = None if input_shape[1] is None else -(-input_shape[1] // self.pool)
        return (input_shape[0], t)

    def get_config(self):
        return {**super().get_config(), "pool": self.pool}
