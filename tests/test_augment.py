"""Tests of :mod:`ser.augment`: speed perturbation, SpecAugment and mixup."""

import numpy as np
import pytest

from ser.augment import mixup, speed_factors, speed_perturbed
from ser.errors import ConfigError
from ser.functionals import utterance_functionals
from tests.test_functionals import SR, _value, _voice


def test_mixup_blends_features_targets_and_weights_alike():
    n = 8
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 10, 3)).copy()
    m = np.ones((n, 10), np.float32)
    t = np.eye(n, dtype=np.float32)  # crop i is class i: its target shows who it was mixed with
    w = np.arange(1, n + 1, dtype=np.float64)
    mx, mm, mt, mw = mixup(x, m, t, w, np.random.default_rng(0), 0.4)
    assert mx.dtype == np.float32 and mt.dtype == np.float32
    np.testing.assert_array_equal(mm, m)
    np.testing.assert_allclose(mt.sum(1), 1, rtol=1e-6)
    assert ((mt > 0).sum(1) <= 2).all() and (mt.diagonal() > 0).all()  # itself and one partner
    assert (mt.diagonal() < 1).any()  # some crops really are blends
    # the features and the sample weights are blended with the target's proportions
    np.testing.assert_allclose(mx, np.broadcast_to((mt @ np.arange(n))[:, None, None], mx.shape), atol=1e-5)
    np.testing.assert_allclose(mw, mt @ w, rtol=1e-5)


def test_mixup_keeps_the_real_frames_where_the_partner_is_padding():
    x, m, _, w = batch_of([10, 4])
    t = np.eye(2, dtype=np.float32)
    rng = np.random.default_rng(3)
    blends = 0
    for _ in range(10):
        mx, mm, mt, _ = mixup(x, m, t, w, rng, 1.0)
        for i in range(2):
            if mt[i, 1 - i] == 0:  # paired with itself: unchanged
                np.testing.assert_allclose(mx[i], x[i], atol=1e-6)
                np.testing.assert_array_equal(mm[i], m[i])
                continue
            blends += 1
            np.testing.assert_array_equal(mm[i], 1)  # the union of both crops' frames
            # frames 4..9 exist in the long crop only: the blend holds them unchanged
            np.testing.assert_allclose(mx[i, 4:], x[0, 4:], atol=1e-6)
            lam = mt[i, i]
            np.testing.assert_allclose(mx[i, :4], lam * x[i, :4] + (1 - lam) * x[1 - i, :4], atol=1e-5)
    assert blends > 0


def test_mixup_lambda_follows_beta_alpha():
    x, m, t, w = batch_of([10] * 4000, k=2)
    x[:] = 0
    x[::2] = 1  # even crops are 1, odd crops 0 (two classes alternate as well)
    _, _, mt, _ = mixup(x, m, t, w, np.random.default_rng(0), 0.2)
    lam_like = mt[:, 0]
    # Beta(0.2, 0.2) is U-shaped: most blends stay close to one of the two crops
    assert np.mean((lam_like < 0.1) | (lam_like > 0.9)) > 0.5


def test_speed_perturbation_moves_pitch_and_duration_by_the_factor():
    y = _voice(150.0, seconds=1.0)
    fast = speed_perturbed(y, SR, 1.1)
    assert fast.dtype == np.float32 and len(fast) == pytest.approx(len(y) / 1.1, abs=2)
    f0 = _value(utterance_functionals(y, SR), "f0_st_p50")
    fast_f0 = _value(utterance_functionals(fast, SR), "f0_st_p50")
    assert fast_f0 - f0 == pytest.approx(12 * np.log2(1.1), abs=0.3)  # semitones


def test_speed_factors_are_checked_and_returned_as_floats():
    assert speed_factors("x", [0.9, 1.1]) == (0.9, 1.1)
    assert speed_factors("x", np.array([0.5, 2.0])) == (0.5, 2.0) and speed_factors("x", []) == ()
    for bad in ([1.0], [0.4], (0.9, 0.9), 0.9, ["0.9"], [True]):
        with pytest.raises(
            ConfigError,
            match=r"training.speeds must be a list of distinct speed factors .* Received: training.speeds=",
        ):
            speed_factors("training.speeds", bad)


def batch_of(lengths, frames=10, n_mels=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), frames, n_mels), np.float32)
    m = np.zeros((len(lengths), frames), np.float32)
    for i, t in enumerate(lengths):
        x[i, :t] = rng.standard_normal((t, n_mels))
        m[i, :t] = 1
    targets = np.eye(k, dtype=np.float32)[np.arange(len(lengths)) % k]
    weights = np.arange(1, len(lengths) + 1, dtype=np.float64)
    return x, m, targets, weights
