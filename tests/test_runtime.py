"""Tests of :mod:`ser.runtime`: softmax, the forward pass and the Conv5 strides."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from ser.model import ModelConfig, build_model
from ser.runtime import conv5_strides, forward_function, length_batches, log_softmax, predict_logits, softmax


def test_softmax_and_log_softmax_are_stable_and_agree():
    z = np.array([[1000.0, 1000.0, 999.0], [-5.0, 0.0, 5.0]])
    p = softmax(z)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(p[0], np.array([1, 1, np.exp(-1)]) / (2 + np.exp(-1)))
    np.testing.assert_allclose(np.exp(log_softmax(z)), p)
    np.testing.assert_allclose(softmax(z.T, axis=0), p.T)
    np.testing.assert_allclose(log_softmax(z.T, axis=0), log_softmax(z).T)


def test_length_batches_cover_every_utterance_once_in_length_order():
    features = [np.ones((t, 4), np.float32) for t in (5, 1, 9, 3, 7)]
    seen = []
    for idx, x, m in length_batches(features, 2, multiple=4):
        assert x.shape[1] % 4 == 0 and x.shape[:2] == m.shape
        np.testing.assert_array_equal(m.sum(axis=1), [features[i].shape[0] for i in idx])
        seen.extend(idx.tolist())
    assert seen == [1, 3, 0, 4, 2]


@pytest.mark.parametrize("strided_blocks", [0, 2])
def test_conv5_strides_are_the_config_strides(strided_blocks):
    config = ModelConfig(strided_blocks=strided_blocks)
    model = build_model(["a", "b"], 64, config, seed=0)
    assert conv5_strides(model) == (config.time_stride, config.freq_stride) == (16, 8)


def test_predict_logits_is_the_model_call_in_input_order():
    model = build_model(["a", "b", "c"], 16, ModelConfig(widths=(2, 2, 2, 2, 2)), seed=0)
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(t, 16)).astype(np.float32) for t in (40, 17, 64)]
    got = predict_logits(model, features, batch_size=2)
    assert got.shape == (3, 3) and got.dtype == np.float32
    for f, row in zip(features, got, strict=True):
        x, m = f[None], np.ones((1, f.shape[0]), np.float32)
        np.testing.assert_allclose(row, np.asarray(model([x, m], training=False))[0], rtol=1e-4, atol=1e-5)
    assert forward_function(model) is forward_function(model)  # cached on the model
