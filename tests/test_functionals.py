"""Tests of :mod:`ser.functionals`: utterance functionals, the logistic head and its fusion."""

import json

import numpy as np
import pytest

from ser.errors import ModelError
from ser.functionals import (
    FUNCTIONAL_NAMES,
    FUSION_GRID,
    FUSION_WEIGHT,
    GLOBAL_COLUMNS,
    N_FUNCTIONALS,
    FunctionalsHead,
    choose_fusion_weight,
    fuse,
    speaker_log_probabilities,
    speed_perturbed,
    standardization,
    utterance_functionals,
)

SR = 16000


def _voice(f0: float, seconds: float = 1.5, amplitude: float = 0.1, sr: int = SR) -> np.ndarray:
    """A harmonic tone with fundamental ``f0`` (6 harmonics), with 0.2 s of silence around it."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 7))
    y = amplitude * y / np.abs(y).max()
    pad = np.zeros(int(0.2 * sr))
    return np.concatenate([pad, y, pad]).astype(np.float32)


def _value(x, name):
    return float(x[FUNCTIONAL_NAMES.index(name)])


def test_functionals_have_names_and_are_finite():
    x = utterance_functionals(_voice(150.0), SR)
    assert x.shape == (N_FUNCTIONALS,) == (len(FUNCTIONAL_NAMES),) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and len(set(FUNCTIONAL_NAMES)) == N_FUNCTIONALS


def test_pitch_and_loudness_functionals_measure_what_they_say():
    low, high = utterance_functionals(_voice(120.0), SR), utterance_functionals(_voice(240.0), SR)
    # F0 in semitones re 27.5 Hz: 240 Hz is one octave (12 semitones) above 120 Hz
    assert _value(low, "f0_st_p50") == pytest.approx(12 * np.log2(120 / 27.5), abs=0.5)
    assert _value(high, "f0_st_p50") - _value(low, "f0_st_p50") == pytest.approx(12.0, abs=0.5)
    assert _value(low, "voiced_fraction") > 0.6
    # the recording gain shows in the speech level only
    loud = utterance_functionals(_voice(120.0, amplitude=0.5), SR)
    assert _value(loud, "speech_level_db") - _value(low, "speech_level_db") == pytest.approx(
        20 * np.log10(5), abs=0.01
    )
    np.testing.assert_allclose(loud[GLOBAL_COLUMNS], low[GLOBAL_COLUMNS], rtol=1e-3, atol=1e-3)
    assert FUNCTIONAL_NAMES[-1] == "speech_level_db" and N_FUNCTIONALS - 1 not in GLOBAL_COLUMNS
    # the active duration ignores the silence around the tone
    assert _value(low, "active_seconds") == pytest.approx(1.5, abs=0.1)


def test_functionals_of_short_silent_and_other_rate_audio_are_finite():
    for y, sr in (
        (np.zeros(800, np.float32), SR),
        (_voice(200.0, seconds=0.05), SR),
        (_voice(200.0, sr=8000), 8000),
        (np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), SR),
    ):
        x = utterance_functionals(y, sr)
        assert x.shape == (N_FUNCTIONALS,) and np.all(np.isfinite(x))


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


def test_speed_perturbation_moves_pitch_and_duration_by_the_factor():
    y = _voice(150.0, seconds=1.0)
    fast = speed_perturbed(y, SR, 1.1)
    assert fast.dtype == np.float32 and len(fast) == pytest.approx(len(y) / 1.1, abs=2)
    f0 = _value(utterance_functionals(y, SR), "f0_st_p50")
    fast_f0 = _value(utterance_functionals(fast, SR), "f0_st_p50")
    assert fast_f0 - f0 == pytest.approx(12 * np.log2(1.1), abs=0.3)  # semitones


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


def test_functionals_are_cached_with_the_features(tmp_path, monkeypatch):
    import soundfile as sf

    import ser.functionals
    from ser.data import extract_all
    from ser.features import FrontendConfig

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], _voice(120.0 + 40 * i), SR)
    cache = tmp_path / "cache"
    feats, func = extract_all(paths, FrontendConfig(), cache_dir=cache, progress=False, functionals=True)
    assert len(feats) == 3 and func.shape == (3, N_FUNCTIONALS)
    from ser.audio import load_audio

    np.testing.assert_array_equal(func[1], utterance_functionals(load_audio(paths[1], SR), SR))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(ser.functionals, "utterance_functionals", fail)
    _, again = extract_all(
        paths, FrontendConfig(), cache_dir=cache, progress=False, functionals=True, n_jobs=1
    )
    np.testing.assert_array_equal(again, func)
    plain = extract_all(paths, FrontendConfig(), cache_dir=cache, progress=False, n_jobs=1)
    assert isinstance(plain, list) and len(plain) == 3
    # with speeds: the file's own functionals (cached) and each speed's, cached too
    monkeypatch.undo()
    _, sped = extract_all(
        paths, FrontendConfig(), cache_dir=cache, progress=False, functionals=True, speeds=(0.9, 1.1)
    )
    assert sped.shape == (3, 3, N_FUNCTIONALS)
    np.testing.assert_array_equal(sped[:, 0], func)
    y = load_audio(paths[2], SR)
    np.testing.assert_allclose(sped[2, 2], utterance_functionals(speed_perturbed(y, SR, 1.1), SR), rtol=1e-6)
    monkeypatch.setattr(ser.functionals, "utterance_functionals", fail)
    _, again = extract_all(
        paths,
        FrontendConfig(),
        cache_dir=cache,
        progress=False,
        functionals=True,
        speeds=(0.9, 1.1),
        n_jobs=1,
    )
    np.testing.assert_array_equal(again, sped)


def test_a_long_recording_is_described_by_its_first_part():
    from ser.functionals import MAX_SECONDS

    y = _voice(150.0, seconds=MAX_SECONDS + 5)
    np.testing.assert_array_equal(
        utterance_functionals(y, SR), utterance_functionals(y[: int(MAX_SECONDS * SR)], SR)
    )


def test_bad_heads_are_model_errors_and_outliers_are_clipped():
    from ser.functionals import Z_LIMIT

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


def test_a_head_of_version_1_still_reads_its_own_functionals():
    """Models saved before the level normalisation keep working, at the recorded level."""
    quiet, loud = _voice(120.0), _voice(120.0, amplitude=0.5)
    v1 = [utterance_functionals(v, SR, version=1) for v in (quiet, loud)]
    assert v1[0].shape == (106,)
    # version 1 heard the recorded level in the loudness functionals
    i = FUNCTIONAL_NAMES.index("loudness_mean")
    assert v1[1][i] - v1[0][i] == pytest.approx(20 * np.log10(5), abs=0.5)
    rng = np.random.default_rng(0)
    d = 106
    old = FunctionalsHead(
        rng.normal(0, 1, d), np.ones(d), rng.normal(0, 0.1, (3, d)), np.zeros(3), version=1
    ).to_dict()
    head = FunctionalsHead.from_dict(json.loads(json.dumps(old)))
    assert head.version == 1 and head.to_dict() == old
    np.testing.assert_array_equal(head.functionals(loud, SR), v1[1])
    assert head.log_probabilities(head.functionals(loud, SR)).shape == (1, 3)
    with pytest.raises(ModelError, match="expects 106 functionals"):
        head.log_probabilities(utterance_functionals(loud, SR))
    with pytest.raises(ModelError, match="version 4"):
        FunctionalsHead.from_dict({**old, "version": 4})


def test_a_head_of_version_2_reads_the_first_functionals_and_the_level():
    """Version 2 (level-normalised, 2026-11-28): version 3 without the envelope and rhythm."""
    y = _voice(150.0)
    v2, v3 = utterance_functionals(y, SR, version=2), utterance_functionals(y, SR)
    assert v2.shape == (107,) and v3.shape == (N_FUNCTIONALS,) == (176,)
    np.testing.assert_array_equal(v2[:106], v3[:106])
    assert v2[-1] == v3[-1] == _value(v3, "speech_level_db")
    rng = np.random.default_rng(0)
    old = FunctionalsHead(
        rng.normal(0, 1, 106),
        np.ones(106),
        rng.normal(0, 0.1, (3, 106)),
        np.zeros(3),
        rng.normal(0, 1, 107),
        np.ones(107),
        rng.normal(0, 0.1, (3, 107)),
        np.zeros(3),
        version=2,
    ).to_dict()
    head = FunctionalsHead.from_dict(json.loads(json.dumps(old)))
    assert head.version == 2
    np.testing.assert_array_equal(head.functionals(y, SR), v2)
    reference = standardization(np.stack([v2, v2 + 1.0]))
    assert head.log_probabilities(v2, reference).shape == (1, 3)
    with pytest.raises(ModelError, match="expects 107 functionals"):
        head.log_probabilities(v3)


def test_envelope_and_rhythm_functionals_measure_what_they_say():
    low, high = utterance_functionals(_voice(150.0), SR), utterance_functionals(_voice(1500.0), SR)
    # a 150 Hz voice has most of its energy below 500 Hz; one at 1.5 kHz above 1 kHz
    assert _value(low, "band0-500_share_mean") > _value(high, "band0-500_share_mean") + 10
    assert _value(high, "band1000-2000_share_mean") > _value(low, "band1000-2000_share_mean") + 10
    assert _value(high, "zcr_mean") > 3 * _value(low, "zcr_mean")
    assert _value(high, "mel1_mean") < _value(low, "mel1_mean")
    # one stretch of 1.5 s, against three of 0.4 s separated by silence
    gap = np.zeros(int(0.3 * SR), np.float32)
    burst = _voice(150.0, seconds=0.4)
    three = utterance_functionals(np.concatenate([burst, gap, burst, gap, burst]), SR)
    assert _value(low, "active_run_mean") == pytest.approx(1.5, abs=0.1)
    assert _value(three, "active_run_mean") == pytest.approx(0.4, abs=0.1)
    # (each burst has 0.2 s of silence either side: 3 stretches in 3.0 s, 1 in 1.9 s)
    assert _value(three, "active_runs_per_second") == pytest.approx(3 / 3.0, abs=0.05)
    assert _value(low, "active_runs_per_second") == pytest.approx(1 / 1.9, abs=0.05)


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
    # heads saved before the weights were chosen fuse with equal weights
    old = {k: v for k, v in head.to_dict().items() if k not in ("weight", "speaker_weight")}
    assert FunctionalsHead.from_dict(old).weight == FunctionalsHead.from_dict(old).speaker_weight == 0.5
    with pytest.raises(ModelError, match="fusion weights"):
        FunctionalsHead.from_dict({**head.to_dict(), "weight": 1.5})
