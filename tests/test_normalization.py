"""Tests of :mod:`ser.normalization`: feature statistics and the standardisations."""

import inspect

import numpy as np
import pytest

from ser.errors import ConfigError
from ser.normalization import (
    NORMALIZATIONS,
    feature_stats,
    normalize,
    speaker_normalize,
    standardize,
    standardize_utterance,
)
from tests.signals import random_features


def test_feature_stats_equals_numpy():
    rng = np.random.default_rng(0)
    features = random_features(rng, [3, 50, 17], offset=-12.0, scale=2.5)
    mean, var = feature_stats(features)
    allframes = np.concatenate(features).astype(np.float64)
    assert mean.dtype == var.dtype == np.float32
    assert mean.shape == var.shape == (8,)
    np.testing.assert_allclose(mean, allframes.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, allframes.var(axis=0), rtol=1e-5)


def test_feature_stats_exact_small_example():
    mean, var = feature_stats([np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[5.0, 5.0]])])
    np.testing.assert_array_equal(mean, np.float32([3.0, 5.0]))
    np.testing.assert_allclose(var, np.float32([8.0 / 3.0, 1e-6]), rtol=1e-6)  # a constant band is floored


def test_feature_stats_needs_input():
    with pytest.raises(ConfigError, match="at least one feature matrix"):
        feature_stats([])


def test_speaker_normalize_standardises_each_speaker():
    rng = np.random.default_rng(1)
    a = random_features(rng, [40, 25], offset=-10.0, scale=3.0)
    b = random_features(rng, [30, 31, 12], offset=2.0, scale=0.5)
    c = random_features(rng, [60], offset=0.0, scale=10.0)
    features = [a[0], b[0], c[0], a[1], b[1], b[2]]
    speakers = ["a", "b", "c", "a", "b", "b"]
    out = speaker_normalize(features, speakers)
    assert [o.shape for o in out] == [f.shape for f in features]
    assert all(o.dtype == np.float32 for o in out)
    for spk in "abc":
        frames = np.concatenate([o for o, s in zip(out, speakers, strict=True) if s == spk])
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-4)


def test_speaker_normalize_uses_only_each_speakers_own_unlabelled_audio():
    assert list(inspect.signature(speaker_normalize).parameters) == ["features", "speakers"]
    rng = np.random.default_rng(2)
    features = random_features(rng, [20, 30, 40, 50])
    speakers = ["s1", "s2", "s1", "s2"]
    out = speaker_normalize(features, speakers)
    # changing speaker s2's audio changes nothing for s1 ...
    changed = [features[0], features[1] * 7 + 3, features[2], -features[3]]
    out2 = speaker_normalize(changed, speakers)
    np.testing.assert_array_equal(out[0], out2[0])
    np.testing.assert_array_equal(out[2], out2[2])
    # ... and the order of the files does not matter.
    out3 = speaker_normalize(features[::-1], speakers[::-1])
    for o, o3 in zip(out, out3[::-1], strict=True):
        np.testing.assert_allclose(o, o3, atol=1e-6)


def test_speaker_normalize_checks_lengths():
    with pytest.raises(ConfigError, match="got 2 feature matrices but 1 speakers"):
        speaker_normalize([np.zeros((3, 8))] * 2, ["a"])


def test_normalize_dispatches_on_the_mode():
    rng = np.random.default_rng(2)
    features = random_features(rng, [20, 30, 25], offset=3.0, scale=2.0)
    speakers = ["a", "a", "b"]
    assert NORMALIZATIONS == ("global", "utterance", "speaker")
    assert normalize(features, speakers, "global") is features
    for got, f in zip(normalize(features, speakers, "utterance"), features, strict=True):
        np.testing.assert_array_equal(got, standardize_utterance(f))
    for got, want in zip(
        normalize(features, speakers, "speaker"), speaker_normalize(features, speakers), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    # without speakers, each utterance stands for its speaker; a reference replaces both
    np.testing.assert_array_equal(normalize(features, None, "speaker")[0], standardize_utterance(features[0]))
    mean, var = feature_stats(features[:2])
    reference = (mean, np.sqrt(var))
    np.testing.assert_array_equal(
        normalize(features[2:], None, "speaker", reference=reference)[0], standardize(features[2], *reference)
    )
    with pytest.raises(ConfigError, match=r"normalization must be one of .* Received: 'cepstral'"):
        normalize(features, speakers, "cepstral")
