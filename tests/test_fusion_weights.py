"""The CNN's fusion weights chosen on validation speakers (:mod:`ser.training.fusion_weights`)."""


def test_perturbed_copies_of_test_and_validation_files_never_reach_a_fit():
    import numpy as np

    from ser.functionals import N_FUNCTIONALS as N_FUNC
    from ser.protocol import Fold
    from ser.training.fusion_weights import fuse_fold, fusion_weights

    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = np.arange(n) % k
    speakers = np.repeat([f"s{i}" for i in range(6)], 10)
    plain = rng.normal(size=(n, N_FUNC)) + y[:, None]
    functionals = np.stack([plain, plain + rng.normal(size=(n, N_FUNC)), plain * 1.1], axis=1)
    fold = Fold(1, np.arange(0, 30), np.arange(30, 40), np.arange(40, 60), ("s4", "s5"), ("s3",))
    logits = rng.normal(size=(20, k))
    val = {"validation_rows": fold.validation, "validation_cnn": rng.normal(size=(10, k))}
    weights = fusion_weights(functionals, y, speakers, fold.train, val, k)
    fused, adapted, _ = fuse_fold(logits, logits, functionals, y, speakers, fold, k, weights)
    spoiled = functionals.copy()
    spoiled[fold.test, 1:] = np.nan  # the test files' copies: never fitted on, never scored
    spoiled_val = spoiled.copy()
    spoiled_val[fold.validation, 1:] = np.nan  # nor the validation files' when they choose
    assert fusion_weights(spoiled_val, y, speakers, fold.train, val, k) == weights
    again, again_adapted, _ = fuse_fold(logits, logits, spoiled, y, speakers, fold, k, weights)
    np.testing.assert_array_equal(again, fused)
    np.testing.assert_array_equal(again_adapted, adapted)
