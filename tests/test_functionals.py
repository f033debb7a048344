"""Tests of :mod:`ser.functionals`: utterance functionals, the logistic head and its fusion."""

import numpy as np
import pytest

from ser.augment import speed_perturbed
from ser.functionals import FUNCTIONAL_NAMES, GLOBAL_COLUMNS, N_FUNCTIONALS, utterance_functionals

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


def test_functionals_are_cached_with_the_features(tmp_path, monkeypatch):
    import soundfile as sf

    import ser.data
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

    monkeypatch.setattr(ser.data, "utterance_functionals", fail)
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
    monkeypatch.setattr(ser.data, "utterance_functionals", fail)
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
