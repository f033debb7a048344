"""Tests of :mod:`ser.layers`: the attentional-pooling maths, masking, serialisation."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from ser.layers import ApplyMask, AttentionalPooling, MaskedGlobalPooling, MetadataLayer, PoolMask, TimeDeltas


def random_x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def make_layer(x, num_classes=3, rank=1, bottom_up="linear", seed=0, zero_bias=False, **kwargs):
    """A built layer with random weights (and random or zero biases)."""
    layer = AttentionalPooling(num_classes, rank=rank, bottom_up=bottom_up, **kwargs)
    layer.build(x.shape)
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.standard_normal(w.shape).astype(np.float32)
        w.assign(np.zeros_like(value) if zero_bias and "bias" in w.path else value)
    return layer


def weights(layer):
    """(A (f, K, R), c (K, R), B (f, R), d (R,)) as float64 numpy arrays."""
    k, r = layer.num_classes, layer.rank
    a = np.asarray(layer.top_down_kernel, np.float64).reshape(-1, k, r)  # channel k * R + r
    c = np.asarray(layer.top_down_bias, np.float64).reshape(k, r)
    b = np.asarray(layer.bottom_up_kernel, np.float64)
    d = np.asarray(layer.bottom_up_bias, np.float64)
    return a, c, b, d


def reference(layer, x, valid=None):
    """The layer's logits computed in numpy straight from the documented formulas.

    ``valid`` is an optional boolean ``(b, t, f)`` array of the positions that count.
    """
    a, c, b, d = weights(layer)
    out = np.zeros((x.shape[0], layer.num_classes))
    for i in range(x.shape[0]):
        keep = np.ones(x.shape[1:3], bool) if valid is None else valid[i]
        xn = x[i][keep].astype(np.float64)  # (n, f): the valid positions only
        t = np.einsum("nf,fkr->nkr", xn, a) + c  # top-down maps
        h = xn @ b + d  # bottom-up maps (n, R)
        if layer.bottom_up == "softmax":
            e = np.exp(h - h.max(axis=0))
            out[i] = np.einsum("nkr,nr->k", t, e / e.sum(axis=0))
        else:
            out[i] = np.einsum("nkr,nr->k", t, h) / len(xn)
    return out


def assert_close(actual, expected, rtol=1e-5):
    """Relative closeness, scaled by the largest expected value (logits may cross zero)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


SHAPES = [(1, 3, 2, 4), (2, 5, 3, 6), (3, 7, 4, 8), (2, 16, 8, 16)]

# --------------------------------------------------------------------------- the low-rank identity


@pytest.mark.parametrize("shape", SHAPES)
def test_rank1_logits_equal_trace_of_second_order_pooling(shape):
    x = random_x(shape, seed=sum(shape))
    layer = make_layer(x, num_classes=3, rank=1, zero_bias=True, seed=1)
    logits = np.asarray(layer(x))
    assert logits.shape == (shape[0], 3)
    a, _, b, _ = weights(layer)
    n = shape[1] * shape[2]
    for i in range(shape[0]):
        xn = x[i].reshape(n, shape[3]).astype(np.float64)  # X: (n positions, f channels)
        for k in range(3):
            a_k, b_0 = a[:, k, :], b  # (f, 1) each
            trace = np.trace(xn.T @ xn @ b_0 @ a_k.T) / n  # Tr(X^T X b a_k^T) / n
            inner = ((xn @ a_k).T @ (xn @ b_0)).item() / n  # (X a_k)^T (X b) / n
            assert_close(trace, inner, rtol=1e-10)
            assert_close(logits[i, k], trace)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("shape", SHAPES[1:3])
def test_rank_r_logits_sum_over_ranks(shape, rank):
    x = random_x(shape, seed=rank)
    layer = make_layer(x, num_classes=4, rank=rank, zero_bias=True, seed=2)
    logits = np.asarray(layer(x))
    a, _, b, _ = weights(layer)
    n = shape[1] * shape[2]
    for i in range(shape[0]):
        xn = x[i].reshape(n, shape[3]).astype(np.float64)
        gram = xn.T @ xn
        for k in range(4):
            by_rank = sum(np.trace(gram @ b[:, [r]] @ a[:, k, [r]].T) for r in range(rank)) / n
            w_k = b @ a[:, k, :].T  # the rank-R second-order weights W_k = sum_r b_r a_{k,r}^T
            assert_close(by_rank, np.trace(gram @ w_k) / n, rtol=1e-10)
            assert_close(logits[i, k], by_rank)


@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
@pytest.mark.parametrize("rank", [1, 2])
def test_logits_match_the_documented_formula_with_biases(bottom_up, rank):
    x = random_x((2, 6, 3, 5), seed=3)
    layer = make_layer(x, num_classes=3, rank=rank, bottom_up=bottom_up, seed=4)
    assert_close(layer(x), reference(layer, x))


@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
def test_constant_bottom_up_is_average_pooling(bottom_up):
    x = random_x((3, 5, 4, 6), seed=5)
    layer = make_layer(x, num_classes=4, bottom_up=bottom_up, seed=6)
    layer.bottom_up_kernel.assign(np.zeros((6, 1), np.float32))
    layer.bottom_up_bias.assign(np.ones(1, np.float32))
    expected = x.mean(axis=(1, 2)) @ np.asarray(layer.top_down_kernel) + np.asarray(layer.top_down_bias)
    assert_close(layer(x), expected)


def tiny():
    """X has two positions, [1, 2] and [3, 4]; A = identity, c = 0, b = [1, 1], d = 0."""
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]], np.float32)  # (1, t=2, f=1, c=2)
    return x


def set_tiny_weights(layer, b=(1.0, 1.0), d=0.0, c=(0.0, 0.0)):
    layer.top_down_kernel.assign(np.eye(2, dtype=np.float32))
    layer.top_down_bias.assign(np.float32(c))
    layer.bottom_up_kernel.assign(np.float32(b)[:, None])
    layer.bottom_up_bias.assign(np.float32([d]))


def test_tiny_example_linear():
    # t_1 = [1, 3], t_2 = [2, 4], h = X b = [3, 7]: logits = [(3 + 21) / 2, (6 + 28) / 2].
    # Check: X^T X = [[10, 14], [14, 20]], Tr(X^T X b a_1^T) = 10 + 14 = 24, / n = 12.
    layer = AttentionalPooling(2)
    layer.build((1, 2, 1, 2))
    set_tiny_weights(layer)
    np.testing.assert_allclose(layer(tiny()), [[12.0, 17.0]], rtol=1e-6)


def test_tiny_example_softmax():
    # h = softmax([3, 7]) = [1 - s, s] with s = sigmoid(4); logits = t . h = [1 + 2 s, 2 + 2 s].
    layer = AttentionalPooling(2, bottom_up="softmax")
    layer.build((1, 2, 1, 2))
    set_tiny_weights(layer)
    s = 1.0 / (1.0 + np.exp(-4.0))
    np.testing.assert_allclose(layer(tiny()), [[1 + 2 * s, 2 + 2 * s]], rtol=1e-6)
    np.testing.assert_allclose(layer(tiny()), [[2.9640276, 3.9640276]], rtol=1e-6)


@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
def test_tiny_example_average_pooling(bottom_up):
    # h = 1: logits = mean(X) A + c = [2, 3] + [0.5, -0.5].
    layer = AttentionalPooling(2, bottom_up=bottom_up)
    layer.build((1, 2, 1, 2))
    set_tiny_weights(layer, b=(0.0, 0.0), d=1.0, c=(0.5, -0.5))
    np.testing.assert_allclose(layer(tiny()), [[2.5, 2.5]], rtol=1e-6)


def test_default_initialisation_starts_as_average_pooling_plus_attention():
    layer = AttentionalPooling(3)
    layer(random_x((1, 2, 2, 4)))
    np.testing.assert_array_equal(layer.top_down_bias, np.zeros(3))
    np.testing.assert_array_equal(layer.bottom_up_bias, np.ones(1))
    assert [w.shape for w in layer.weights] == [(4, 3), (3,), (4, 1), (1,)]


# --------------------------------------------------------------------------- masking


def pad_time(x, extra, seed=9):
    junk = 100.0 * random_x((x.shape[0], extra, *x.shape[2:]), seed=seed)
    return np.concatenate([x, junk], axis=1)


@pytest.mark.parametrize("mask_kind", ["bt", "btf"])
@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
def test_padded_time_steps_do_not_change_logits(bottom_up, mask_kind):
    x = random_x((2, 5, 3, 4), seed=10)
    layer = make_layer(x, num_classes=3, rank=2, bottom_up=bottom_up, seed=11)
    padded = pad_time(x, 4)
    mask = np.zeros((2, 9), np.float32)
    mask[:, :5] = 1
    if mask_kind == "btf":
        mask = np.repeat(mask[:, :, None], 3, axis=2)
    np.testing.assert_allclose(layer(padded, mask=mask), layer(x), rtol=1e-5, atol=1e-5)
    # and a shorter item in the same batch equals that item alone.
    mask[1, 3:] = 0
    both = np.asarray(layer(padded, mask=mask))
    np.testing.assert_allclose(both[1], np.asarray(layer(x[1:2, :3]))[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
def test_time_frequency_mask_counts_only_valid_positions(bottom_up):
    x = random_x((2, 4, 3, 5), seed=12)
    layer = make_layer(x, num_classes=2, bottom_up=bottom_up, seed=13)
    valid = np.random.default_rng(14).random((2, 4, 3)) > 0.4
    valid[:, 0, 0] = True
    assert_close(layer(x, mask=valid.astype(np.float32)), reference(layer, x, valid))
    assert_close(layer(x, mask=valid), reference(layer, x, valid))  # a boolean mask works too


def test_softmax_weights_sum_to_one_over_valid_positions():
    x = pad_time(random_x((2, 6, 3, 4), seed=15), 3)
    layer = make_layer(x, num_classes=3, rank=2, bottom_up="softmax", seed=16)
    mask = np.zeros((2, 9), np.float32)
    mask[0, :6] = 1
    mask[1, :2] = 1
    logits, maps = layer(x, mask=mask, return_attention=True)
    h = np.asarray(maps["bottom_up"])
    assert h.shape == (2, 9, 3, 2)
    np.testing.assert_allclose(h.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    assert np.all(h >= 0)
    np.testing.assert_array_equal(h[0, 6:], 0.0)
    np.testing.assert_array_equal(h[1, 2:], 0.0)
    np.testing.assert_array_equal(np.asarray(maps["top_down"])[1, 2:], 0.0)
    # the logits are the h-weighted sums of the returned top-down maps
    td = np.asarray(maps["top_down"]).reshape(2, 9, 3, 3, 2)
    np.testing.assert_allclose(logits, np.einsum("btfkr,btfr->bk", td, h), rtol=1e-5, atol=1e-5)


def test_return_attention_maps_in_linear_mode():
    x = random_x((2, 4, 3, 5), seed=17)
    layer = make_layer(x, num_classes=3, rank=2, seed=18)
    mask = np.ones((2, 4), np.float32)
    mask[1, 3] = 0
    logits, maps = layer(x, mask=mask, return_attention=True)
    assert set(maps) == {"top_down", "bottom_up"}
    a, c, b, d = weights(layer)
    top_down = np.einsum("btfc,ckr->btfkr", x, a) + c  # channel k * R + r
    np.testing.assert_allclose(maps["top_down"][0], top_down[0].reshape(4, 3, 6), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps["bottom_up"][0], x[0] @ b + d, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(maps["bottom_up"][1, 3], 0.0)
    np.testing.assert_array_equal(logits, layer(x, mask=mask))


def test_return_attention_in_a_functional_model():
    x_in, m_in = keras.Input((None, 3, 4)), keras.Input((None,))
    logits, maps = AttentionalPooling(3, rank=2, bottom_up="softmax")(x_in, mask=m_in, return_attention=True)
    assert logits.shape == (None, 3)
    assert maps["top_down"].shape == (None, None, 3, 6) and maps["bottom_up"].shape == (None, None, 3, 2)
    model = keras.Model([x_in, m_in], [logits, maps["bottom_up"]])
    out, h = model([random_x((2, 5, 3, 4)), np.ones((2, 5), np.float32)])
    assert out.shape == (2, 3) and h.shape == (2, 5, 3, 2)


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize(
    "kwargs", [{}, {"rank": 2, "bottom_up": "softmax", "dropout": 0.25}, {"rank": 3, "name": "head"}]
)
def test_config_round_trip(kwargs):
    x = random_x((2, 4, 3, 5), seed=19)
    layer = make_layer(x, num_classes=4, seed=20, **kwargs)
    config = layer.get_config()
    assert {k: config[k] for k in ("num_classes", "rank", "bottom_up", "dropout")} == {
        "num_classes": 4,
        "rank": kwargs.get("rank", 1),
        "bottom_up": kwargs.get("bottom_up", "linear"),
        "dropout": kwargs.get("dropout", 0.0),
    }
    clone = AttentionalPooling.from_config(config)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == config
    mask = np.ones((2, 4), np.float32)
    mask[0, 2:] = 0
    np.testing.assert_array_equal(clone(x, mask=mask), layer(x, mask=mask))


@pytest.mark.parametrize("bottom_up", ["linear", "softmax"])
def test_keras_file_round_trip(tmp_path, bottom_up):
    x_in, m_in = keras.Input((None, 3, 4), name="x"), keras.Input((None,), name="mask")
    head = AttentionalPooling(3, rank=2, bottom_up=bottom_up, dropout=0.1, name="head")
    model = keras.Model([x_in, m_in], head(x_in, mask=m_in))
    for w, v in zip(head.weights, make_layer(random_x((1, 1, 3, 4)), 3, 2, seed=21).weights, strict=True):
        w.assign(v)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("head"), AttentionalPooling)
    assert loaded.get_layer("head").get_config() == head.get_config()
    x = random_x((2, 6, 3, 4), seed=22)
    mask = np.ones((2, 6), np.float32)
    mask[1, 4:] = 0
    np.testing.assert_array_equal(loaded([x, mask]), model([x, mask]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, r"`num_classes` must be a positive integer. Received: num_classes=0"),
        ({"num_classes": 2.5}, r"Received: num_classes=2.5"),
        ({"num_classes": True}, r"Received: num_classes=True"),
        ({"num_classes": "3"}, r"Received: num_classes='3'"),
        ({"num_classes": 3, "rank": 0}, r"`rank` must be a positive integer. Received: rank=0"),
        ({"num_classes": 3, "rank": 1.0}, r"Received: rank=1.0"),
        ({"num_classes": 3, "bottom_up": "tanh"}, r"`bottom_up` must be one of .*Received: bottom_up='tanh'"),
        (
            {"num_classes": 3, "dropout": 1.0},
            r"`dropout` must be a number in \[0, 1\). Received: dropout=1.0",
        ),
        ({"num_classes": 3, "dropout": -0.1}, r"Received: dropout=-0.1"),
        ({"num_classes": 3, "dropout": "0.5"}, r"Received: dropout='0.5'"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionalPooling(**kwargs)


def test_numpy_integers_are_accepted():
    layer = AttentionalPooling(np.int64(3), rank=np.int32(2))
    assert (layer.num_classes, layer.rank) == (3, 2)
    assert type(layer.get_config()["num_classes"]) is int


def test_build_rejects_wrong_input_rank():
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, time, freq, channels\). Received"):
        AttentionalPooling(3)(random_x((2, 5, 4)))


def test_dropout_only_in_training():
    x = random_x((2, 6, 4, 8), seed=23)
    layer = make_layer(x, num_classes=3, dropout=0.5, seed=24)
    plain = make_layer(x, num_classes=3, seed=24)
    expected = np.asarray(plain(x))
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(layer(x, training=False), expected)
    assert not np.allclose(layer(x, training=True), expected)


def test_compute_output_shape():
    assert AttentionalPooling(7).compute_output_shape((None, None, 4, 16)) == (None, 7)


# --------------------------------------------------------------------------- the other layers


@pytest.mark.parametrize("mode", ["average", "max"])
def test_masked_global_pooling(mode):
    x = random_x((2, 6, 3, 4), seed=25)
    x[:, 4:] = 1e3  # junk in the padding must not show through
    mask = np.ones((2, 6), np.float32)
    mask[:, 4:] = 0
    mask[1, 2:] = 0
    pool = MaskedGlobalPooling(mode)
    out = np.asarray(pool(x, mask=mask))
    reduce = np.mean if mode == "average" else np.max
    expected = np.stack([reduce(x[0, :4], axis=(0, 1)), reduce(x[1, :2], axis=(0, 1))])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # a (b, t, f) mask with the same zeros, and no mask at all
    np.testing.assert_allclose(pool(x, mask=np.repeat(mask[:, :, None], 3, axis=2)), expected, rtol=1e-6)
    np.testing.assert_allclose(pool(x), reduce(x, axis=(1, 2)), rtol=1e-6)
    assert pool.compute_output_shape((None, None, 3, 4)) == (None, 4)


def test_masked_global_pooling_config_and_validation():
    pool = MaskedGlobalPooling("max", name="pooling")
    clone = MaskedGlobalPooling.from_config(pool.get_config())
    assert clone.mode == "max" and clone.name == "pooling"
    with pytest.raises(ValueError, match=r"`mode` must be one of \('average', 'max'\). Received: mode='sum'"):
        MaskedGlobalPooling("sum")


def test_metadata_layer_round_trip():
    layer = MetadataLayer(
        labels=["angry", "happy", 3],
        frontend={"n_mels": 64, "hop_ms": 10.0},
        info={"corpus": "ravdess", "fold": 2},
        name="ser_metadata",
    )
    config = layer.get_config()
    assert config["labels"] == ["angry", "happy", "3"]
    clone = MetadataLayer.from_config(config)
    assert (clone.labels, clone.frontend, clone.info, clone.name) == (
        ["angry", "happy", "3"],
        {"n_mels": 64, "hop_ms": 10.0},
        {"corpus": "ravdess", "fold": 2},
        "ser_metadata",
    )
    x = random_x((2, 5, 8))
    np.testing.assert_array_equal(clone(x), x)
    assert MetadataLayer().get_config()["frontend"] == {}


def test_pool_mask_and_apply_mask():
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(PoolMask(2)(mask), [[1, 1, 0], [1, 0, 0]])  # ceil(5 / 2) steps
    np.testing.assert_array_equal(PoolMask(1)(mask), mask)
    assert PoolMask(4).compute_output_shape((None, 9)) == (None, 3)
    assert PoolMask.from_config(PoolMask(4).get_config()).pool == 4
    with pytest.raises(ValueError, match=r"`pool` must be >= 1. Received: pool=0"):
        PoolMask(0)
    x = np.ones((2, 5, 3, 2), np.float32)
    out = np.asarray(ApplyMask()(x, mask))
    np.testing.assert_array_equal(out.sum(axis=(1, 2, 3)), [3 * 6, 1 * 6])


def test_time_deltas_are_regression_slopes_with_zeros_beyond_the_ends():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 30, 4, 1)).astype(np.float32)
    out = np.asarray(TimeDeltas(width=2)(x, np.ones((2, 30), np.float32)))
    assert out.shape == (2, 30, 4, 3)
    assert TimeDeltas().compute_output_shape((None, None, 4, 1), (None, None)) == (None, None, 4, 3)
    np.testing.assert_array_equal(out[..., :1], x)

    def delta(v):
        p = np.pad(v, ((0, 0), (2, 2), (0, 0), (0, 0)))
        return sum(n * (p[:, 2 + n : 32 + n] - p[:, 2 - n : 32 - n]) for n in (1, 2)) / 10.0

    np.testing.assert_allclose(out[..., 1:2], delta(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[..., 2:], delta(delta(x)), rtol=1e-5, atol=1e-6)
    # away from the ends, librosa's delta (HTK's regression over 5 frames)
    import librosa

    np.testing.assert_allclose(
        out[:, 2:-2, :, 1], librosa.feature.delta(x[..., 0], width=5, axis=1)[:, 2:-2], rtol=1e-4, atol=1e-5
    )
    # a ramp's slope
    ramp = np.broadcast_to(np.arange(10, dtype=np.float32)[None, :, None, None], (1, 10, 2, 1))
    np.testing.assert_allclose(
        np.asarray(TimeDeltas()(ramp, np.ones((1, 10))))[0, 2:-2, :, 1], 1.0, rtol=1e-6
    )
    # the padding of a batch: what lies beyond the valid frames never reaches them
    mask = np.ones((2, 30), np.float32)
    mask[1, 20:] = 0
    padded = np.asarray(TimeDeltas()(x, mask))
    alone = np.asarray(TimeDeltas()(x[1:, :20], np.ones((1, 20), np.float32)))
    np.testing.assert_allclose(padded[1, :20], alone[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(padded[1, 20:], 0.0)
    assert TimeDeltas.from_config(TimeDeltas(width=3).get_config()).width == 3
    with pytest.raises(ValueError, match=r"`width` must be an integer >= 1. Received: width=0"):
        TimeDeltas(width=0)
