"""The CNN: five conv blocks ("Conv1".."Conv5") and a pooling head.

Input: a batch of log-mel spectrograms ``features`` ``(batch, time, n_mels)`` and a
``mask`` ``(batch, time)`` (1 for real frames). Any length works: the trunk is fully
convolutional and every block re-applies the (time-pooled) mask, so padding frames stay
zero. The Conv5 map ``X`` ``(batch, time/16, n_mels/8, channels)`` feeds the head:

- ``"attention"``: :class:`ser.layers.AttentionalPooling` (the product),
- ``"average"`` / ``"max"``: masked global pooling + a dense layer (baselines that
  measure what attention adds).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ser.augment import speed_factors
from ser.constants import FORMAT_VERSION
from ser.errors import ConfigError

HEADS = ("attention", "average", "max")


def _sequence(value) -> bool:
    """A list, tuple or array (not a string, not a number)."""
    return isinstance(value, (list, tuple, np.ndarray))


def _whole(value) -> bool:
    """An integer, or a float with an integral value (``8.0``); never a bool or a string."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and float(value).is_integer()
    )


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the CNN.

    The defaults are small enough to train on a 2-core CPU: about 0.1 M parameters.
    Blocks 1-3 halve time and frequency, block 4 halves time only, block 5 keeps its
    resolution, so Conv5 sees ``time/16 x n_mels/8`` positions (for 64 mels: 8 frequency
    rows and one column every 160 ms) -- fine enough to show *where* attention falls.

    Attributes
    ----------
    widths : tuple of 5 int
        Channels of Conv1..Conv5.
    kernel_size : int
        Square kernel of every conv.
    pools : tuple of 5 (time, freq) pairs
        Max-pool after each block.
    head : {"attention", "average", "max"}
    rank : int
        Rank of attentional pooling.
    bottom_up : {"linear", "softmax"}
    dropout : float
        Dropout before the head.
    l2 : float
        Weight decay on conv kernels.
    adapt_blocks : tuple of int
        Blocks (1..5) whose batch-norm statistics are re-estimated from a speaker's own
        recordings when they are known (label-free speaker adaptation, see
        :mod:`ser.adaptation`): in cross-validation, from all of a test speaker's files (reported
        beside the unadapted scores); in ``ser classify --same-speaker``, from the files given.
        ``()`` turns it off. Training is unchanged.
    strided_blocks : int
        How many leading blocks downsample by their conv's stride (equal to the block's pool)
        instead of a max-pool after the conv. Blocks 1 and 2 work at high resolution, where a
        stride-1 conv and its normalisation cost most of the training time on a CPU; striding
        them skips those maps (training several times faster, UA within the fold-to-fold
        spread). ``0`` pools every block.
    functionals : bool
        Fuse the CNN with a logistic regression on utterance functionals of pitch, loudness
        and spectral shape (:mod:`ser.fusion`): the model's probabilities are the
        weighted geometric mean of the two (weights chosen on the validation speakers).
        Per-speaker standardised functionals are used wherever the speaker adaptation is
        (the recipe's adapted scores, ``--same-speaker``). The recipe also reports the CNN
        alone.
    functionals_speeds : tuple of float
        Speed perturbation of the functionals head's training data (Ko et al., 2015): each
        training recording also takes part played this many times faster (resampled, so
        pitch, formants and tempo move together, as between speakers), with its label; for
        the per-speaker regression each speed of a speaker counts as another speaker. ``()``
        fits the head on the recordings alone. Only training changes: a model classifies a
        recording as it is.
    deltas : bool
        Feed Conv1 the delta and delta-delta of the normalised log-mel features along time
        (regression over 5 frames, :class:`ser.layers.TimeDeltas`) beside the features
        themselves: 3 input channels. Computed inside the model, so the frontend, the feature
        cache and ``ser classify`` are unchanged. Off by default (its measured effect on the
        fused model is within what a run varies by; see "What we tried" in
        ``recipes/ravdess/README.md``).
    """

    widths: tuple = (8, 16, 32, 64, 128)
    kernel_size: int = 3
    pools: tuple = ((2, 2), (2, 2), (2, 2), (2, 1), (1, 1))
    head: str = "attention"
    rank: int = 1
    bottom_up: str = "linear"
    dropout: float = 0.3
    l2: float = 1e-4
    strided_blocks: int = 2
    adapt_blocks: tuple = (4, 5)
    functionals: bool = True
    functionals_speeds: tuple = (0.9, 1.1)
    deltas: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if not _sequence(self.widths) or not all(_whole(w) for w in self.widths):
            raise ConfigError(f"widths must be integers. Received: widths={self.widths!r}")
        if not _sequence(self.pools) or not all(
            _sequence(p) and all(_whole(v) for v in p) for p in self.pools
        ):
            raise ConfigError(f"pools must be 5 (time, freq) pairs >= 1. Received: pools={self.pools!r}")
        if (
            not _sequence(self.adapt_blocks)
            or not all(_whole(b) and 1 <= b <= 5 for b in self.adapt_blocks)
            or len(set(self.adapt_blocks)) != len(self.adapt_blocks)
        ):
            raise ConfigError(
                f"adapt_blocks must be distinct block numbers from 1 to 5 (or empty). Received: "
                f"adapt_blocks={self.adapt_blocks!r}"
            )
        object.__setattr__(self, "adapt_blocks", tuple(sorted(int(b) for b in self.adapt_blocks)))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "pools", tuple(tuple(int(v) for v in p) for p in self.pools))
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ConfigError(
                f"widths must be 5 positive ints (Conv1..Conv5). Received: widths={self.widths}"
            )
        if len(self.pools) != 5 or any(len(p) != 2 or min(p) < 1 for p in self.pools):
            raise ConfigError(f"pools must be 5 (time, freq) pairs >= 1. Received: pools={self.pools}")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}. Received: head={self.head!r}")
        if self.bottom_up not in ("linear", "softmax"):
            raise ConfigError(
                f"bottom_up must be 'linear' or 'softmax'. Received: bottom_up={self.bottom_up!r}"
            )
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, numbers.Real)
            or not 0 <= self.dropout < 1
        ):
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"rank must be a positive integer. Received: rank={self.rank!r}")
        if (
            isinstance(self.kernel_size, bool)
            or not isinstance(self.kernel_size, int)
            or self.kernel_size < 1
        ):
            raise ConfigError(
                f"kernel_size must be a positive integer. Received: kernel_size={self.kernel_size!r}"
            )
        if (
            isinstance(self.strided_blocks, bool)
            or not isinstance(self.strided_blocks, int)
            or not 0 <= self.strided_blocks <= 5
        ):
            raise ConfigError(
                f"strided_blocks must be an integer from 0 to 5. Received: strided_blocks={self.strided_blocks!r}"
            )
        if isinstance(self.l2, bool) or not isinstance(self.l2, numbers.Real) or not self.l2 >= 0:
            raise ConfigError(f"l2 must be >= 0. Received: l2={self.l2!r}")
        if not isinstance(self.functionals, bool):
            raise ConfigError(
                f"functionals must be true or false. Received: functionals={self.functionals!r}"
            )
        if not isinstance(self.deltas, bool):
            raise ConfigError(f"deltas must be true or false. Received: deltas={self.deltas!r}")
        object.__setattr__(
            self, "functionals_speeds", speed_factors("model.functionals_speeds", self.functionals_speeds)
        )

    @property
    def time_stride(self) -> int:
        """Frames of input per Conv5 position along time."""
        return int(np.prod([p[0] for p in self.pools]))

    @property
    def freq_stride(self) -> int:
        """Mel bands of input per Conv5 position along frequency."""
        return int(np.prod([p[1] for p in self.pools]))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["widths"] = list(self.widths)
        d["pools"] = [list(p) for p in self.pools]
        d["adapt_blocks"] = list(self.adapt_blocks)
        d["functionals_speeds"] = list(self.functionals_speeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**d)


def stamped_info(info: dict | None) -> dict:
    """``info`` with the :data:`ser.constants.FORMAT_VERSION` the file is written in."""
    return {**(info or {}), "format_version": FORMAT_VERSION}


def build_model(
    labels,
    n_mels: int,
    config: ModelConfig = ModelConfig(),
    *,
    mean=None,
    variance=None,
    frontend: dict | None = None,
    info: dict | None = None,
    seed: int | None = None,
    name: str | None = None,
):
    """Build the CNN + head as a functional Keras model.

    Parameters
    ----------
    labels : sequence of str
        Class names in logit order.
    n_mels : int
        Mel bands of the input.
    config : ModelConfig
    mean, variance : np.ndarray [shape=(n_mels,)] or None
        Feature normalisation (computed on the training fold only); identity if None.
    frontend : dict
        :class:`ser.features.FrontendConfig` fields, stored in the model.
    info : dict
        Free-form metadata stored in the model (recipe, normalisation, ...), stamped with
        ``"format_version"`` (:data:`ser.constants.FORMAT_VERSION`).
    seed : int or None
        Seed of the weight initialisers.
    name : str or None
        The model's name (default ``ser_cnn_<head>``).

    Returns
    -------
    keras.Model
        Inputs ``[features (b, t, n_mels), mask (b, t)]``, output logits ``(b, n_classes)``.
    """
    import keras

    from ser.layers import (
        ApplyMask,
        AttentionalPooling,
        FeatureNormalization,
        MaskedGlobalPooling,
        MetadataLayer,
        PoolMask,
        TimeDeltas,
    )

    labels = [str(label) for label in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ConfigError(f"need at least 2 distinct class names. Received: labels={labels}")
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    mean = np.zeros(n_mels, np.float32) if mean is None else np.asarray(mean, np.float32)
    variance = np.ones(n_mels, np.float32) if variance is None else np.asarray(variance, np.float32)

    features = keras.Input(shape=(None, n_mels), name="features")
    mask = keras.Input(shape=(None,), name="mask")
    x = MetadataLayer(labels=labels, frontend=frontend, info=stamped_info(info), name="ser_metadata")(
        features
    )
    x = FeatureNormalization(mean=mean, variance=variance, name="normalization")(x)
    x = keras.layers.Reshape((-1, n_mels, 1), name="add_channel")(x)
    x = ApplyMask(name="mask_input")(x, mask)
    if config.deltas:
        x = TimeDeltas(name="deltas")(x, mask)
    m = mask
    reg = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    for i, (width, pool) in enumerate(zip(config.widths, config.pools, strict=True), start=1):
        strided = i <= config.strided_blocks and pool != (1, 1)
        if strided:
            # Explicit zero padding, then a "valid" strided conv: output j is centred on input
            # stride * j whatever the length (Keras's "same" would shift the windows by one
            # frame for odd lengths), so the padding of a batch never changes a result.
            edges = ((config.kernel_size - 1) // 2, config.kernel_size // 2)
            x = keras.layers.ZeroPadding2D((edges, edges), name=f"pad{i}")(x)
        x = keras.layers.Conv2D(
            width,
            config.kernel_size,
            strides=pool if strided else 1,
            padding="valid" if strided else "same",
            use_bias=False,
            kernel_regularizer=reg,
            name=f"conv{i}",
        )(x)
        if strided and pool[0] > 1:
            m = PoolMask(pool[0], name=f"mask_pool{i}")(m)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        # Zero the padding before pooling: ReLU outputs are >= 0, so a pooling window that
        # straddles the end of the valid frames then sees only valid values (exact masking).
        x = ApplyMask(name=f"mask{i}")(x, m)
        if pool != (1, 1) and not strided:
            x = keras.layers.MaxPooling2D(pool, padding="same", name=f"pool{i}")(x)
            if pool[0] > 1:
                m = PoolMask(pool[0], name=f"mask_pool{i}")(m)
    # x is the Conv5 feature map X: (batch, time', freq', channels); m its (batch, time') mask
    x = keras.layers.Identity(name="conv5_map")(x)
    m = PoolMask(1, name="conv5_mask")(m)
    if config.head == "attention":
        logits = AttentionalPooling(
            len(labels), rank=config.rank, bottom_up=config.bottom_up, dropout=config.dropout, name="head"
        )(x, mask=m)
    else:
        pooled = MaskedGlobalPooling(config.head, name="pooling")(x, mask=m)
        pooled = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
        logits = keras.layers.Dense(len(labels), name="head")(pooled)
    return keras.Model([features, mask], logits, name=name or f"ser_cnn_{config.head}")


def ensemble_model(members, labels, *, frontend: dict | None = None, info: dict | None = None):
    """One model averaging the logits of ``members`` (models built by :func:`build_model`).

    The members keep their own layers (each its feature statistics and batch norms) and are
    layers of the ensemble, named ``member_1``, ``member_2``, ...; the ensemble has its own
    ``ser_metadata`` layer. Averaging logits (not probabilities) keeps the attention maps
    exact: the ensemble's logit of class ``k`` is the mean over members of each member's mean
    over positions of ``t_k * h``, so the members' maps average into the ensemble's. Its
    ``info`` is stamped with the format version, as :func:`build_model` stamps it.

    Returns
    -------
    keras.Model
        Inputs ``[features, mask]``, output the mean logits ``(b, n_classes)``.
    """
    import keras

    from ser.layers import MetadataLayer

    members = list(members)
    if not members:
        raise ConfigError("an ensemble needs at least one member model")
    n_mels = members[0].inputs[0].shape[-1]
    features = keras.Input(shape=(None, n_mels), name="features")
    mask = keras.Input(shape=(None,), name="mask")
    x = MetadataLayer(
        labels=[str(v) for v in labels], frontend=frontend, info=stamped_info(info), name="ser_metadata"
    )(features)
    outputs = []
    for j, member in enumerate(members, start=1):
        if member.name != f"member_{j}":
            raise ConfigError(f"ensemble members must be named member_1, member_2, ...; got {member.name!r}")
        outputs.append(member([x, mask]))
    logits = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="mean_logits")(outputs)
    return keras.Model([features, mask], logits, name="ser_ensemble")


def ensemble_members(model) -> list:
    """The member models of an :func:`ensemble_model`, or ``[model]`` for a single model."""
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return members or [model]


def feature_map_model(model):
    """A model sharing ``model``'s weights that returns its Conv5 map and that map's mask.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`build_model` (or loaded from a file it saved).

    Returns
    -------
    keras.Model
        Inputs ``[features, mask]``; outputs ``[X (b, t', f', channels), mask (b, t')]``.
    """
    import keras

    return keras.Model(
        model.inputs, [model.get_layer("conv5_map").output, model.get_layer("conv5_mask").output]
    )


def head_maps(model, feature_map, x, mask):
    """Logits and attention maps of one model of :func:`build_model`: the one home of the maps.

    Runs eagerly (``ser attention`` with a Keras model) and inside a traced function (the
    graph :mod:`ser.export` writes), so both give the same maps. For the pooling heads the
    maps are class activation maps: the dense layer applied at every position (top-down) and
    a constant 1 (bottom-up), both zero on padding.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`build_model` (a single CNN, not an ensemble).
    feature_map : keras.Model
        :func:`feature_map_model` of ``model``.
    x : tensor [shape=(b, t, n_mels), dtype=float32]
    mask : tensor [shape=(b, t), dtype=float32]

    Returns
    -------
    logits : tensor [shape=(b, n_classes)]
    top_down : tensor [shape=(b, t', f', n_classes * rank)]
    bottom_up : tensor [shape=(b, t', f', rank)]
    """
    from keras import ops

    from ser.layers import AttentionalPooling

    X, valid = feature_map([x, mask], training=False)
    head = model.get_layer("head")
    if isinstance(head, AttentionalPooling):
        logits, maps = head(X, mask=valid, return_attention=True)
        return logits, maps["top_down"], maps["bottom_up"]
    logits = head(model.get_layer("pooling")(X, mask=valid))
    valid = ops.reshape(ops.cast(valid, X.dtype), (*ops.shape(valid)[:2], 1, 1))
    top_down = head(X) * valid
    return logits, top_down, ops.ones_like(top_down[..., :1]) * valid
