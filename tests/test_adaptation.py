"""Tests of :mod:`ser.adaptation`: batch-norm statistics re-estimated from a speaker's files."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from ser.adaptation import (
    adapt_batchnorm,
    adapted,
    batchnorm_state,
    set_batchnorm_state,
    speaker_adapted_logits,
)
from ser.errors import ConfigError
from ser.model import ModelConfig, build_model
from ser.runtime import predict_logits

LABELS = ["angry", "happy", "neutral"]
N_MELS = 32


@pytest.fixture(scope="module")
def model():
    return build_model(LABELS, N_MELS, ModelConfig(widths=(4, 4, 8, 8, 8)), seed=0)


def utterances(n, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((int(rng.integers(40, 130)), N_MELS)) + shift).astype(np.float32)
        for _ in range(n)
    ]


def bn_output_stats(model, features, block):
    """Mean and variance per channel of block ``block``'s normalised output over valid positions."""
    sub = keras.Model(model.inputs, model.get_layer(f"bn{block}").output)
    values = []
    for f in features:  # one unpadded file at a time: no padding can enter
        out = np.asarray(sub([f[None], np.ones((1, len(f)), np.float32)], training=False))[0]
        values.append(out.reshape(-1, out.shape[-1]))
    v = np.concatenate(values).astype(np.float64)
    return v.mean(0), v.var(0)


def test_adapted_blocks_standardise_the_speakers_features(model):
    feats = utterances(9, shift=1.5)
    saved = batchnorm_state(model, range(1, 6))
    try:
        adapt_batchnorm(model, feats, [4, 5], batch_size=4)
        for block in (4, 5):
            gamma = np.asarray(model.get_layer(f"bn{block}").gamma)
            beta = np.asarray(model.get_layer(f"bn{block}").beta)
            layer = model.get_layer(f"bn{block}")
            sigma2 = np.asarray(layer.moving_variance)
            mean, var = bn_output_stats(model, feats, block)
            # bn(x) = gamma (x - mu) / sqrt(sigma2 + eps) + beta: with the speaker's own mu and
            # sigma2, the output has mean beta and variance gamma^2 sigma2 / (sigma2 + eps)
            np.testing.assert_allclose(mean, beta, atol=1e-3)
            np.testing.assert_allclose(
                var, gamma**2 * sigma2 / (sigma2 + layer.epsilon), rtol=1e-3, atol=1e-5
            )
        # blocks that were not asked for keep the training statistics
        for block in (1, 2, 3):
            np.testing.assert_array_equal(batchnorm_state(model, [block])[0][0], saved[block - 1][0])
    finally:
        set_batchnorm_state(model, range(1, 6), saved)


def test_statistics_do_not_depend_on_batching_or_padding(model):
    feats = utterances(7, seed=1)
    saved = batchnorm_state(model, [4, 5])
    try:
        adapt_batchnorm(model, feats, [4, 5], batch_size=7)
        batched = batchnorm_state(model, [4, 5])
        set_batchnorm_state(model, [4, 5], saved)
        adapt_batchnorm(model, feats, [4, 5], batch_size=1)
        single = batchnorm_state(model, [4, 5])
    finally:
        set_batchnorm_state(model, [4, 5], saved)
    for (m1, v1), (m2, v2) in zip(batched, single, strict=True):
        np.testing.assert_allclose(m1, m2, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-5)


def test_adapted_context_restores_the_model(model):
    feats = utterances(6, seed=2, shift=2.0)
    before = predict_logits(model, feats)
    with adapted(model, feats, [4, 5]):
        during = predict_logits(model, feats)
    after = predict_logits(model, feats)
    assert not np.allclose(before, during, atol=1e-4)
    np.testing.assert_array_equal(before, after)


def test_each_speaker_is_adapted_to_its_own_files_only(model):
    a, b, few = utterances(6, seed=3, shift=1.0), utterances(6, seed=4, shift=-1.0), utterances(2, seed=5)
    feats = a + b + few
    speakers = ["a"] * 6 + ["b"] * 6 + ["few"] * 2
    out = speaker_adapted_logits(model, feats, speakers, [4, 5], min_files=5)
    with adapted(model, a, [4, 5]):
        np.testing.assert_allclose(out[:6], predict_logits(model, a), rtol=1e-5, atol=1e-5)
    with adapted(model, b, [4, 5]):
        np.testing.assert_allclose(out[6:12], predict_logits(model, b), rtol=1e-5, atol=1e-5)
    # too few files to estimate statistics: the unadapted model
    np.testing.assert_allclose(out[12:], predict_logits(model, few), rtol=1e-5, atol=1e-5)
    # the same speaker's result does not depend on who else is in the list
    alone = speaker_adapted_logits(model, a, ["a"] * 6, [4, 5])
    np.testing.assert_allclose(out[:6], alone, rtol=1e-5, atol=1e-5)


def test_no_blocks_or_no_files(model):
    feats = utterances(5, seed=6)
    np.testing.assert_array_equal(
        speaker_adapted_logits(model, feats, ["s"] * 5, []), predict_logits(model, feats)
    )
    with pytest.raises(ConfigError, match="speaker adaptation needs at least one recording"):
        adapt_batchnorm(model, [], [5])


def test_a_model_without_the_blocks_is_refused():
    inputs = [keras.Input((None, N_MELS)), keras.Input((None,))]
    other = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(inputs[0])))
    with pytest.raises(ConfigError, match="cannot adapt block 5: the model has no conv5/bn5/mask5 layers"):
        adapt_batchnorm(other, utterances(2), [5])
