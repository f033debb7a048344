"""Tests of :mod:`ser.model`: the Conv1..Conv5 trunk, its heads, variable lengths, saving."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json

import keras
import numpy as np
import pytest

from ser.errors import ConfigError
from ser.layers import AttentionalPooling, MaskedGlobalPooling
from ser.model import ModelConfig, build_model, feature_map_model

LABELS = ["angry", "happy", "neutral"]
N_MELS = 32
WIDTHS = (4, 4, 8, 8, 8)


def small(head="attention", **kwargs):
    return ModelConfig(widths=WIDTHS, head=head, **kwargs)


@pytest.fixture(scope="module")
def models():
    """One small model per head, built once for the module."""
    return {
        head: build_model(LABELS, N_MELS, small(head, dropout=0.2), seed=0)
        for head in ("attention", "average", "max")
    }


def features(t, batch=1, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, t, N_MELS)).astype(np.float32)


def ones(t, batch=1):
    return np.ones((batch, t), np.float32)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("head", ["attention", "average", "max"])
def test_conv1_to_conv5_exist(models, head):
    model = models[head]
    convs = [model.get_layer(f"conv{i}") for i in range(1, 6)]
    assert all(isinstance(c, keras.layers.Conv2D) for c in convs)
    assert tuple(c.filters for c in convs) == WIDTHS
    assert [i.name for i in model.inputs] == ["features", "mask"]
    assert model.output.shape == (None, len(LABELS))
    assert model.get_layer("ser_metadata").labels == LABELS


def test_attention_head_is_attentional_pooling_on_conv5(models):
    model = models["attention"]
    head = model.get_layer("head")
    assert isinstance(head, AttentionalPooling)
    assert (head.num_classes, head.rank, head.bottom_up, head.dropout) == (3, 1, "linear", 0.2)
    # the logits are exactly the head applied to the (masked) Conv5 map and its mask
    x, mask = features(40, batch=2), ones(40, batch=2)
    mask[1, 25:] = 0
    conv5, conv5_mask = feature_map_model(model)([x, mask])
    np.testing.assert_allclose(model([x, mask]), head(conv5, mask=conv5_mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", ["average", "max"])
def test_baseline_heads_are_dense_after_masked_global_pooling(models, head):
    model = models[head]
    assert isinstance(model.get_layer("head"), keras.layers.Dense)
    pooling = model.get_layer("pooling")
    assert isinstance(pooling, MaskedGlobalPooling) and pooling.mode == head
    x, mask = features(40, batch=2, seed=1), ones(40, batch=2)
    mask[1, 25:] = 0
    conv5, conv5_mask = (np.asarray(v) for v in feature_map_model(model)([x, mask]))
    reduce = np.mean if head == "average" else np.max
    pooled = np.stack([reduce(conv5[i][conv5_mask[i] > 0], axis=(0, 1)) for i in range(2)])
    kernel, bias = model.get_layer("head").get_weights()
    np.testing.assert_allclose(model([x, mask]), pooled @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_build_model_rank_and_softmax():
    model = build_model(LABELS, N_MELS, small(rank=2, bottom_up="softmax"), seed=1)
    head = model.get_layer("head")
    assert (head.rank, head.bottom_up) == (2, "softmax")
    assert head.top_down_kernel.shape == (8, 6)


def test_build_model_needs_two_labels():
    with pytest.raises(
        ConfigError, match=r"need at least 2 distinct class names. Received: labels=\['angry'\]"
    ):
        build_model(["angry"], N_MELS, small())


def test_build_model_seed_is_reproducible():
    a = build_model(LABELS, N_MELS, small(), seed=3)
    b = build_model(LABELS, N_MELS, small(), seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_normalisation_statistics_are_applied():
    mean = np.linspace(-5, 5, N_MELS).astype(np.float32)
    variance = np.linspace(0.5, 4, N_MELS).astype(np.float32)
    shifted = build_model(LABELS, N_MELS, small(), mean=mean, variance=variance, seed=4)
    plain = build_model(LABELS, N_MELS, small(), seed=4)
    x = features(30, seed=5)
    np.testing.assert_allclose(
        shifted([x * np.sqrt(variance) + mean, ones(30)]), plain([x, ones(30)]), rtol=1e-4, atol=1e-5
    )


def test_normalisation_statistics_are_saved_and_can_be_replaced(tmp_path):
    """The statistics are weights: saved with the model, and new ones take effect at once."""
    from ser.runtime import forward_function

    mean = np.linspace(-5, 5, N_MELS).astype(np.float32)
    variance = np.linspace(0.5, 4, N_MELS).astype(np.float32)
    model = build_model(LABELS, N_MELS, small(), mean=mean, variance=variance, seed=4)
    x = features(30, seed=6)
    expected = np.asarray(model([x, ones(30)]))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded.get_layer("normalization").mean.numpy(), mean)
    np.testing.assert_allclose(np.asarray(loaded([x, ones(30)])), expected, rtol=1e-5, atol=1e-6)
    forward = forward_function(loaded)  # traced before the statistics change
    forward(x, ones(30))
    loaded.get_layer("normalization").set_statistics(np.zeros(N_MELS), np.ones(N_MELS))
    plain = build_model(LABELS, N_MELS, small(), seed=4)
    np.testing.assert_allclose(
        np.asarray(forward(x, ones(30))), np.asarray(plain([x, ones(30)])), rtol=1e-4, atol=1e-5
    )


# --------------------------------------------------------------------------- variable length


@pytest.mark.parametrize(("seconds", "frames"), [(0.1, 11), (1.0, 101), (20.0, 2001)])
def test_any_length_classifies(models, seconds, frames):
    logits = np.asarray(models["attention"]([features(frames), ones(frames)]))
    assert logits.shape == (1, len(LABELS))
    assert np.all(np.isfinite(logits))


def padded_pair(model, t, total=208, junk_seed=1):
    """Logits of a ``t``-frame item alone and padded to ``total`` frames with masked junk."""
    x = features(t, seed=t)
    junk = 50.0 * features(total - t, seed=junk_seed)
    mask = np.zeros((1, total), np.float32)
    mask[:, :t] = 1
    alone = np.asarray(model([x, ones(t)]))
    padded = np.asarray(model([np.concatenate([x, junk], axis=1), mask]))
    return alone, padded


@pytest.mark.parametrize("head", ["attention", "average", "max"])
def test_padding_never_changes_logits(models, head):
    # The input is masked (junk becomes zeros) and every block zeroes the padding after its
    # ReLU and before its max-pool. ReLU outputs are >= 0, so a pool window straddling the
    # end of the valid frames sees exactly what the unpadded input's shorter window sees, and
    # a 'same' conv at the last valid frames sees zeros either way: padding is exact at any length.
    model = models[head]
    for t in (101, 75, 43, 96, 48, 17):
        alone, padded = padded_pair(model, t)
        np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strided_blocks", [0, 1, 5])
def test_padding_never_changes_logits_with_strided_blocks(strided_blocks):
    # Strided blocks pad explicitly and convolve "valid", so their windows sit at the same
    # frames for odd and even lengths alike (Keras's "same" padding would shift them).
    model = build_model(LABELS, N_MELS, small(strided_blocks=strided_blocks), seed=0)
    strides = [model.get_layer(f"conv{i}").strides for i in range(1, 6)]
    # block 5 of the default pools does not downsample, so it never strides
    assert strides == [(2, 2), (2, 2), (2, 2), (2, 1)][:strided_blocks] + [(1, 1)] * (
        5 - min(strided_blocks, 4)
    )
    for t in (101, 75, 43, 96, 17):
        alone, padded = padded_pair(model, t)
        np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)


def test_delta_features_keep_padding_exact_and_survive_saving(tmp_path):
    model = build_model(LABELS, N_MELS, small(deltas=True), seed=0)
    assert model.get_layer("conv1").kernel.shape[2] == 3  # features, delta, delta-delta
    # the deltas see zeros beyond the valid frames, padded or not
    for t in (101, 75, 43, 17):
        alone, padded = padded_pair(model, t)
        np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)
    path = tmp_path / "deltas.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x, mask = features(40, batch=2, seed=3), ones(40, batch=2)
    np.testing.assert_array_equal(loaded([x, mask]), model([x, mask]))
    without = build_model(LABELS, N_MELS, small(deltas=False), seed=0)
    assert without.get_layer("conv1").kernel.shape[2] == 1 and "deltas" not in {
        layer.name for layer in without.layers
    }


def test_strided_blocks_downsample_by_their_pool():
    model = build_model(LABELS, N_MELS, small(strided_blocks=2), seed=0)
    assert model.get_layer("conv1").strides == (2, 2) and model.get_layer("conv2").strides == (2, 2)
    assert model.get_layer("conv3").strides == (1, 1)
    layer_names = {layer.name for layer in model.layers}
    assert {"pool3", "pool4"} <= layer_names and not {"pool1", "pool2"} & layer_names
    x, m = feature_map_model(model)([features(100), ones(100)])
    assert x.shape == (1, 7, N_MELS // 8, WIDTHS[-1]) and m.shape == (1, 7)


def test_padding_content_is_ignored(models):
    model = models["attention"]
    _, padded = padded_pair(model, 75, junk_seed=1)
    _, other_junk = padded_pair(model, 75, junk_seed=2)
    np.testing.assert_allclose(padded, other_junk, rtol=1e-6, atol=1e-7)


def test_batch_of_different_lengths(models):
    model = models["attention"]
    x = features(64, batch=2, seed=6)
    mask = ones(64, batch=2)
    mask[1, 32:] = 0
    both = np.asarray(model([x, mask]))
    np.testing.assert_allclose(both[0], np.asarray(model([x[:1], ones(64)]))[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[1], np.asarray(model([x[1:, :32], ones(32)]))[0], rtol=1e-5, atol=1e-6)


def test_feature_map_model_shapes_and_mask(models):
    fmap = feature_map_model(models["attention"])
    config = small()
    assert (config.time_stride, config.freq_stride) == (16, 8)
    mask = ones(100, batch=2)
    mask[1, 40:] = 0
    conv5, conv5_mask = (np.asarray(v) for v in fmap([features(100, batch=2), mask]))
    assert conv5.shape == (2, 7, N_MELS // 8, WIDTHS[-1])  # ceil(100 / 16) time steps
    np.testing.assert_array_equal(conv5_mask, [[1] * 7, [1, 1, 1, 0, 0, 0, 0]])  # ceil(40 / 16) = 3
    np.testing.assert_array_equal(conv5[1, 3:], 0.0)
    assert fmap.get_layer("conv1") is models["attention"].get_layer("conv1")  # shared weights


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize("head", ["attention", "max"])
def test_keras_file_round_trip(tmp_path, models, head):
    model = models[head]
    path = tmp_path / f"{head}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("ser_metadata").labels == LABELS
    x = features(50, batch=2, seed=7)
    mask = ones(50, batch=2)
    mask[0, 30:] = 0
    np.testing.assert_array_equal(loaded([x, mask]), model([x, mask]))
    conv5, _ = feature_map_model(loaded)([x, mask])
    np.testing.assert_array_equal(conv5, feature_map_model(model)([x, mask])[0])


# --------------------------------------------------------------------------- ModelConfig


def test_model_config_strides_and_defaults():
    config = ModelConfig()
    assert len(config.widths) == 5 and config.head == "attention"
    assert (config.time_stride, config.freq_stride) == (16, 8)
    assert config.strided_blocks == 2
    assert ModelConfig(pools=[[2, 2], [2, 2], [1, 1], [1, 1], [3, 1]]).time_stride == 12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"widths": (4, 4, 8)},
            r"widths must be 5 positive ints \(Conv1..Conv5\). Received: widths=\(4, 4, 8\)",
        ),
        ({"widths": (4, 4, 0, 8, 8)}, r"Received: widths=\(4, 4, 0, 8, 8\)"),
        ({"pools": ((2, 2),) * 4}, r"pools must be 5 \(time, freq\) pairs >= 1. Received: pools="),
        ({"pools": ((2, 2),) * 4 + ((0, 1),)}, r"pools must be 5 \(time, freq\) pairs >= 1"),
        ({"pools": ((2, 2),) * 4 + ((2,),)}, r"pools must be 5 \(time, freq\) pairs >= 1"),
        ({"head": "lstm"}, r"head must be one of \('attention', 'average', 'max'\). Received: head='lstm'"),
        ({"bottom_up": "tanh"}, r"bottom_up must be 'linear' or 'softmax'. Received: bottom_up='tanh'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\). Received: dropout=1.0"),
        ({"dropout": -0.5}, r"Received: dropout=-0.5"),
        ({"strided_blocks": 6}, r"strided_blocks must be an integer from 0 to 5. Received: strided_blocks=6"),
        ({"strided_blocks": True}, r"strided_blocks must be an integer from 0 to 5"),
        ({"adapt_blocks": (4, 6)}, r"adapt_blocks must be distinct block numbers from 1 to 5 \(or empty\)"),
        ({"adapt_blocks": (5, 5)}, r"Received: adapt_blocks=\(5, 5\)"),
        ({"adapt_blocks": 5}, r"adapt_blocks must be distinct block numbers"),
        ({"adapt_blocks": ("4",)}, r"adapt_blocks must be distinct block numbers"),
        (
            {"functionals_speeds": (1.0,)},
            r"functionals_speeds must be a list of distinct speed factors from 0.5 to 2",
        ),
        ({"functionals_speeds": 0.9}, r"Received: model.functionals_speeds=0.9"),
        ({"deltas": "yes"}, r"deltas must be true or false. Received: deltas='yes'"),
        ({"functionals_speeds": ("0.9",)}, r"functionals_speeds must be a list"),
        ({"functionals_speeds": (0.9, 0.9)}, r"Received: model.functionals_speeds=\(0.9, 0.9\)"),
        ({"functionals_speeds": (3.0,)}, r"other than 1 \(e.g. \[0.9, 1.1\], or \[\] for none\)"),
    ],
)
def test_model_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


def test_model_config_round_trip():
    config = ModelConfig(widths=[4, 4, 8, 8, 8], head="max", rank=2, bottom_up="softmax", dropout=0.1, l2=0.0)
    d = config.to_dict()
    assert d["widths"] == [4, 4, 8, 8, 8] and d["pools"][0] == [2, 2] and "extra" not in d
    assert ModelConfig.from_dict(d) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(d))) == config
    assert ModelConfig.from_dict({}) == ModelConfig()
    assert ModelConfig().adapt_blocks == (4, 5) and d["adapt_blocks"] == [4, 5]
    assert ModelConfig(adapt_blocks=[5, 3]).adapt_blocks == (3, 5)
    assert ModelConfig.from_dict({"adapt_blocks": []}).adapt_blocks == ()
    assert ModelConfig().functionals_speeds == (0.9, 1.1) and d["functionals_speeds"] == [0.9, 1.1]
    assert ModelConfig().deltas is False and d["deltas"] is False
    assert ModelConfig.from_dict({"functionals_speeds": []}).functionals_speeds == ()
    with pytest.raises(ConfigError, match=r"unknown model setting\(s\) \['depth'\]; expected some of"):
        ModelConfig.from_dict({**d, "depth": 5})
