"""Tests of :mod:`ser.fusion`: the functionals head and its fusion with the CNN."""

import json

import numpy as np
import pytest

from ser.errors import ModelError
from ser.functionals import FUNCTIONALS_VERSION, GLOBAL_COLUMNS, N_FUNCTIONALS
from ser.fusion import (
    FUSION_GRID,
    FUSION_WEIGHT,
    Z_LIMIT,
    FunctionalsHead,
    choose_fusion_weight,
    fuse,
    speaker_log_probabilities,
)
from ser.normalization import standardization


def _toy(n_speakers=6, per_class=10, n_classes=3, seed=0):
    """Functionals whose class shows as a direction on top of a large per-speaker offset."""
    rng = np.random.default_rng(seed)
    class_dirs = rng.normal(0, 1, (n_classes, N_FUNCTIONALS))
    x, y, spk = [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, 6, N_FUNCTIONALS)
        for k in range(n_classes):
            for _ in range(per_class):
                x.append(offset + class_dirs[k] + rng.normal(0, 0.7, N_FUNCTIONALS))
                y.append(k)
                spk.append(f"s{s}")
    return np.array(x), np.array(y), np.array(spk)


def test_head_learns_and_the_per_speaker_head_removes_speaker_offsets():
    x, y, spk = _toy()
    test = np.isin(spk, ["s4", "s5"])
    head = FunctionalsHead.fit(x[~test], y[~test], spk[~test], 3)
    plain = head.log_probabilities(x[test]).argmax(1)
    own = speaker_log_probabilities(head, x[test], spk[test]).argmax(1)
    assert (own == y[test]).mean() >= 0.9
    assert (own == y[test]).mean() >= (plain == y[test]).mean()
    probs = np.exp(head.log_probabilities(x[test]))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)


def test_speakers_with_too_few_files_get_the_global_head():
    x, y, spk = _toy()
    head = FunctionalsHead.fit(x, y, spk, 3)
    few = x[:3]
    np.testing.assert_allclose(speaker_log_probabilities(head, few, ["a"] * 3), head.log_probabilities(few))
    ref = standardization(x[:30])
    assert not np.allclose(head.log_probabilities(x[:30], ref), head.log_probabilities(x[:30]))
    # no speaker with enough files: no per-speaker head, a reference changes nothing
    lone = FunctionalsHead.fit(x[:12], y[:12], [str(i) for i in range(12)], 3)
    assert lone.speaker is None
    np.testing.assert_allclose(lone.log_probabilities(x[:5], ref), lone.log_probabilities(x[:5]))


def test_perturbed_copies_train_as_more_rows_and_more_speakers():
    # fit on (files, 1 + copies, N): each copy a row with its file's label, and for the
    # per-speaker regression each copy of a speaker a speaker of its own
    x, y, spk = _toy()
    rng = np.random.default_rng(1)
    copies = np.stack([x, x + rng.normal(0, 0.3, x.shape), x * 1.1], axis=1)
    head = FunctionalsHead.fit(copies, y, spk, 3)
    stacked = FunctionalsHead.fit(
        np.concatenate([copies[:, j] for j in range(3)]),
        np.tile(y, 3),
        np.concatenate([spk, [s + "/1" for s in spk], [s + "/2" for s in spk]]),
        3,
    )
    np.testing.assert_allclose(head.log_probabilities(x), stacked.log_probabilities(x), atol=1e-8)
    own = speaker_log_probabilities(head, x[:30], spk[:30])
    np.testing.assert_allclose(own, speaker_log_probabilities(stacked, x[:30], spk[:30]), atol=1e-8)
    # one copy (the file's own) is the 2-d fit
    one = FunctionalsHead.fit(x[:, None], y, spk, 3)
    np.testing.assert_allclose(
        one.log_probabilities(x), FunctionalsHead.fit(x, y, spk, 3).log_probabilities(x)
    )


def test_a_class_missing_from_training_gets_no_probability():
    x, y, spk = _toy(n_classes=3)
    keep = y != 1
    head = FunctionalsHead.fit(x[keep], y[keep], spk[keep], 4)  # classes 1 and 3 never seen
    p = np.exp(head.log_probabilities(x))
    assert p.shape == (len(x), 4) and p[:, [1, 3]].max() < 1e-6
    two = FunctionalsHead.fit(x[y < 2], y[y < 2], spk[y < 2], 3)  # scikit-learn's binary case
    assert (np.exp(two.log_probabilities(x[y < 2])).argmax(1) == y[y < 2]).mean() > 0.9


def test_head_round_trips_through_json_and_rejects_bad_heads():
    x, y, spk = _toy()
    head = FunctionalsHead.fit(x, y, spk, 3)
    again = FunctionalsHead.from_dict(json.loads(json.dumps(head.to_dict())))
    ref = standardization(x[:30])
    np.testing.assert_allclose(again.log_probabilities(x), head.log_probabilities(x))
    np.testing.assert_allclose(again.log_probabilities(x, ref), head.log_probabilities(x, ref))
    bad = head.to_dict()
    for broken in (
        {**bad, "version": 99},
        {k: v for k, v in bad.items() if k != "coef"},
        {**bad, "mean": [1.0]},
    ):
        with pytest.raises(ModelError):
            FunctionalsHead.from_dict(broken)
    with pytest.raises(ModelError, match="expects"):
        head.log_probabilities(np.zeros((1, 5)))


def test_fusion_is_the_geometric_mean_of_the_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4, 5))
    p_cnn = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_fun = rng.dirichlet(np.ones(5), 4)
    fused = fuse(logits, np.log(p_fun))
    p = np.exp(fused) / np.exp(fused).sum(1, keepdims=True)
    expected = np.sqrt(p_cnn * p_fun)
    np.testing.assert_allclose(p, expected / expected.sum(1, keepdims=True))


def test_bad_heads_are_model_errors_and_outliers_are_clipped():

    x, y, spk = _toy()
    head = FunctionalsHead.fit(x, y, spk, 3)
    d = head.to_dict()
    for broken in (
        {**d, "std": [0.0] * GLOBAL_COLUMNS.size},
        {**d, "mean": d["speaker_mean"]},
        {**d, "intercept": [float("nan")] * 3},
        {**d, "speaker_coef": d["speaker_coef"][:2]},
    ):
        with pytest.raises(ModelError, match="malformed"):
            FunctionalsHead.from_dict(broken)
    # a recording far outside the training data scores as one at the clip limit
    far, edge = np.zeros((1, N_FUNCTIONALS)), np.zeros((1, N_FUNCTIONALS))
    far[:, GLOBAL_COLUMNS] = head.mean + 1e6 * head.std
    edge[:, GLOBAL_COLUMNS] = head.mean + Z_LIMIT * head.std
    np.testing.assert_allclose(head.log_probabilities(far), head.log_probabilities(edge))


def test_heads_of_other_functionals_versions_are_refused():
    """Only heads of the current functionals (:data:`FUNCTIONALS_VERSION`) are read."""
    x, y, spk = _toy()
    d = FunctionalsHead.fit(x, y, spk, 3).to_dict()
    assert d["version"] == FUNCTIONALS_VERSION
    for version in (1, 2, FUNCTIONALS_VERSION + 1, True, None):
        with pytest.raises(
            ModelError, match=f"version {version!r}; this ser reads version {FUNCTIONALS_VERSION}"
        ):
            FunctionalsHead.from_dict({**d, "version": version})


def test_the_fusion_weight_follows_the_better_expert_on_validation():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    right = np.eye(4)[y] * 3.0 + rng.normal(0, 0.3, (100, 4))  # logits of an expert that is right
    noise = rng.normal(0, 3.0, (100, 4))  # an expert that guesses
    log_softmax = lambda z: z - np.log(np.exp(z).sum(1, keepdims=True))  # noqa: E731

    def loss(w, a, b):  # class-balanced cross-entropy of the fusion
        log_p = log_softmax(fuse(a, log_softmax(b), w))
        return np.mean([-log_p[y == c, c].mean() for c in range(4)])

    for a, b in ((right, noise), (noise, right)):
        w = choose_fusion_weight(a, log_softmax(b), y)
        assert w in FUSION_GRID and loss(w, a, b) == min(loss(v, a, b) for v in FUSION_GRID)
        assert (w >= 0.8) if a is right else (w <= 0.2)
    # two equally right experts: every weight ties, and the tie goes to equal weights
    assert choose_fusion_weight(right, log_softmax(right), y) == FUSION_WEIGHT == 0.5
    # one class only on validation: nothing to choose on
    assert choose_fusion_weight(noise[:25], log_softmax(right[:25]), y[:25]) == FUSION_WEIGHT


def test_a_head_fuses_with_its_own_weights_and_stores_them():
    x, y, speakers = _toy()
    head = FunctionalsHead.fit(x, y, speakers, 3)
    assert head.weight == head.speaker_weight == FUSION_WEIGHT
    head.weight, head.speaker_weight = 0.3, 0.2
    logits = np.random.default_rng(1).normal(0, 1, (len(y), 3))
    np.testing.assert_allclose(head.fuse(logits, x), fuse(logits, head.log_probabilities(x), 0.3))
    reference = standardization(x[:10])
    np.testing.assert_allclose(
        head.fuse(logits, x, reference), fuse(logits, head.log_probabilities(x, reference), 0.2)
    )
    back = FunctionalsHead.from_dict(json.loads(json.dumps(head.to_dict())))
    assert (back.weight, back.speaker_weight) == (0.3, 0.2)
    # a head without its fusion weights is malformed
    for key in ("weight", "speaker_weight"):
        with pytest.raises(ModelError, match="malformed"):
            FunctionalsHead.from_dict({k: v for k, v in head.to_dict().items() if k != key})
    with pytest.raises(ModelError, match="fusion weights"):
        FunctionalsHead.from_dict({**head.to_dict(), "weight": 1.5})
