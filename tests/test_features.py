"""Tests of :mod:`ser.features`: log-mel frontend, its config, normalisation, cropping."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json

import numpy as np
import pytest

from ser.constants import SAMPLE_RATE
from ser.errors import ConfigError
from ser.features import (
    LOG_FLOOR,
    MAX_GAIN_DB,
    MIN_VOICED_FRACTION,
    PEAK_MARGIN_DB,
    FrontendConfig,
    crop_or_pad,
    logmel,
    model_input,
    normalize_level,
    pad_batch,
    speech_level,
    trim_silence,
    voiced_fraction,
)
from tests.signals import random_features, speaking_tone

# --------------------------------------------------------------------------- logmel


@pytest.mark.parametrize("n", [1600, 1601, 1759, 16000, 12345])
def test_logmel_shape_and_dtype(n):
    rng = np.random.default_rng(n)
    features = logmel(rng.uniform(-0.5, 0.5, n).astype(np.float32))
    assert features.shape == (1 + n // 160, 64)  # center=True: one frame per hop, plus one
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_logmel_of_silence_is_the_log_floor():
    features = logmel(np.zeros(SAMPLE_RATE, np.float32))
    assert features.shape == (101, 64)
    np.testing.assert_allclose(features, np.log(LOG_FLOOR), rtol=1e-6)


def test_logmel_follows_its_config():
    config = FrontendConfig(sample_rate=8000, win_ms=32.0, hop_ms=20.0, n_fft=256, n_mels=40, fmax=4000.0)
    assert (config.win_length, config.hop_length, config.frame_rate) == (256, 160, 50.0)
    features = logmel(np.zeros(8000, np.float32), config)
    assert features.shape == (1 + 8000 // 160, 40)


def test_logmel_puts_a_tone_in_the_right_band():
    import librosa

    config = FrontendConfig()
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    features = logmel((0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32), config)
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1]
    band = int(np.argmax(features[10:-10].mean(axis=0)))
    assert abs(centres[band] - 1000.0) < 100.0
    # at the recorded level, a louder tone gives exactly log(4) more in its band (power
    # scales by 2**2); with the default level normalisation, the same features
    louder = (1.0 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    np.testing.assert_allclose(logmel(louder, config), features, atol=1e-4)
    recorded = FrontendConfig(level_db=None)
    gain = logmel(louder, recorded)[50, band] - logmel(louder / 2, recorded)[50, band]
    assert gain == pytest.approx(np.log(4.0), abs=1e-3)


@pytest.mark.parametrize("gain_db", [-30.0, -12.0, 6.0, 20.0])
def test_the_frontend_does_not_hear_the_recording_gain(gain_db):
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    speech = (0.05 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    y = np.concatenate(
        [np.zeros(4000, np.float32), speech + rng.normal(0, 1e-3, speech.size).astype(np.float32)]
    )
    g = np.float32(10 ** (gain_db / 20))
    assert speech_level(g * y, SAMPLE_RATE) - speech_level(y, SAMPLE_RATE) == pytest.approx(gain_db, abs=1e-4)
    assert speech_level(normalize_level(g * y, SAMPLE_RATE, -30.0), SAMPLE_RATE) == pytest.approx(
        -30.0, abs=1e-4
    )
    np.testing.assert_allclose(
        model_input(g * y, FrontendConfig()), model_input(y, FrontendConfig()), atol=1e-3
    )


def test_level_normalisation_limits_its_gain_and_keeps_silence_silent():
    assert speech_level(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE) == -200.0
    np.testing.assert_array_equal(normalize_level(np.zeros(800, np.float32), SAMPLE_RATE, -30.0), 0.0)
    hiss = np.full(SAMPLE_RATE, 1e-5, np.float32)  # -100 dB: raised by MAX_GAIN_DB only
    assert speech_level(normalize_level(hiss, SAMPLE_RATE, -30.0), SAMPLE_RATE) == pytest.approx(
        -100.0 + MAX_GAIN_DB, abs=1e-3
    )


def test_speech_level_of_a_mostly_silent_recording_stays_near_its_speech():
    # 0.3 s of speech (-20 dB) in 20 s of background at -70 dB: 1.5% of the frames. The 95th
    # percentile is the background; without the bound, normalising to -30 dB would have
    # raised the speech to +20 dB full scale.
    rng = np.random.default_rng(0)
    y = rng.normal(0, 10 ** (-70 / 20), 20 * SAMPLE_RATE).astype(np.float32)
    burst = np.arange(int(0.3 * SAMPLE_RATE))
    y[5 * SAMPLE_RATE + burst] += (0.1 * np.sqrt(2) * np.sin(2 * np.pi * 200 * burst / SAMPLE_RATE)).astype(
        np.float32
    )
    level = speech_level(y, SAMPLE_RATE)
    assert -20.0 - PEAK_MARGIN_DB - 1 <= level <= -20.0 - PEAK_MARGIN_DB + 1
    louder = normalize_level(y, SAMPLE_RATE, -30.0)
    speech_db = 10 * np.log10(np.mean(np.square(louder[5 * SAMPLE_RATE + burst], dtype=np.float64)))
    assert speech_db <= -30.0 + PEAK_MARGIN_DB + 1  # not +20 dB
    # a recording that is all speech keeps the 95th percentile: the speech's own level
    assert speech_level(y[5 * SAMPLE_RATE + burst], SAMPLE_RATE) == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize("shape", [(2, 1600), (1600, 1), ()])
def test_logmel_rejects_non_mono_input(shape):
    with pytest.raises(
        ConfigError, match=r"logmel expects a mono waveform of shape \(n,\). Received: shape="
    ):
        logmel(np.zeros(shape, np.float32))


# --------------------------------------------------------------------------- silence trimming


def loud_and_quiet(pattern, n_mels=8):
    """Log-mel rows: 'L' a loud frame (power 1 per band), 'q' a quiet one (power 1e-6, 60 dB
    below), 'z' digital silence (power 0: the log floor)."""
    value = {"L": 0.0, "q": np.log(1e-6 + LOG_FLOOR), "z": np.log(LOG_FLOOR)}
    return np.array([[value[c]] * n_mels for c in pattern], np.float32)


def test_trim_silence_drops_leading_and_trailing_silence_only():
    features = loud_and_quiet("q" * 30 + "L" * 20 + "q" * 15 + "L" * 20 + "q" * 25)
    trimmed = trim_silence(features, 40.0)
    np.testing.assert_array_equal(trimmed, features[30:85])  # the pause in the middle is kept
    assert trim_silence(features, None) is features
    # The silent frames are 60 dB below the loud ones: a 70 dB threshold keeps everything.
    assert trim_silence(features, 70.0).shape == features.shape


def test_digital_silence_is_trimmed_whatever_the_threshold():
    # frames at the log floor are digital silence: trimmed even with a 100 dB threshold
    # (before 2026-11-29 they read 60 dB below these loud frames and were kept)
    features = loud_and_quiet("z" * 30 + "q" * 5 + "L" * 20 + "z" * 10 + "L" * 20 + "q" * 5 + "z" * 20)
    np.testing.assert_array_equal(trim_silence(features, 100.0), features[30:90])
    np.testing.assert_array_equal(trim_silence(features, 40.0), features[35:85])


def test_trim_silence_keeps_min_frames_around_a_short_burst():
    features = loud_and_quiet("q" * 40 + "LLL" + "q" * 40)
    trimmed = trim_silence(features, 40.0, min_frames=10)
    np.testing.assert_array_equal(trimmed, features[36:46])
    short = loud_and_quiet("qLq")
    assert trim_silence(short, 40.0) is short


@pytest.mark.parametrize("top_db", [-1.0, float("nan")])
def test_trim_silence_rejects_a_negative_threshold(top_db):
    with pytest.raises(ConfigError, match=r"top_db must be >= 0 or None. Received: top_db="):
        trim_silence(loud_and_quiet("qLLLLLLLLLLLq"), top_db)


def test_model_input_is_trimmed_logmel():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    y = np.zeros(3 * SAMPLE_RATE, np.float32)
    y[SAMPLE_RATE : 2 * SAMPLE_RATE] = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    config = FrontendConfig()
    features = model_input(y, config)
    np.testing.assert_array_equal(features, trim_silence(logmel(y, config), config.trim_db))
    assert 95 <= features.shape[0] <= 110  # about the one loud second of the three
    assert model_input(y, FrontendConfig(trim_db=None)).shape == (301, 64)


# --------------------------------------------------------------------------- FrontendConfig


def test_frontend_defaults():
    config = FrontendConfig()
    assert (config.sample_rate, config.win_length, config.hop_length, config.n_fft, config.n_mels) == (
        16000,
        400,
        160,
        512,
        64,
    )
    assert config.frame_rate == 100.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 0}, r"sample_rate must be positive. Received: sample_rate=0"),
        ({"hop_ms": 0.0}, r"need 0 < hop_ms <= win_ms. Received: hop_ms=0.0, win_ms=25.0"),
        ({"hop_ms": 30.0}, r"need 0 < hop_ms <= win_ms. Received: hop_ms=30.0, win_ms=25.0"),
        ({"hop_ms": 0.01}, r"hop_ms must be at least one sample .* Received: hop_ms=0.01"),
        ({"n_fft": 256}, r"n_fft must be >= the window \(400 samples\). Received: n_fft=256"),
        ({"n_fft": 512.0}, r"n_fft must be an integer. Received: n_fft=512.0"),
        ({"n_mels": 4}, r"n_mels must be >= 8. Received: n_mels=4"),
        ({"n_mels": 64.5}, r"n_mels must be an integer. Received: n_mels=64.5"),
        ({"n_mels": True}, r"n_mels must be an integer. Received: n_mels=True"),
        ({"fmin": -1.0}, r"need 0 <= fmin < fmax <= sample_rate/2. Received: fmin=-1.0, fmax=8000.0"),
        ({"fmax": 9000.0}, r"Received: fmin=50.0, fmax=9000.0, sample_rate=16000"),
        ({"fmin": 8000.0}, r"Received: fmin=8000.0, fmax=8000.0"),
        ({"trim_db": -5.0}, r"trim_db must be a number >= 0 or None. Received: trim_db=-5.0"),
        ({"trim_db": float("nan")}, r"trim_db must be a number >= 0 or None. Received: trim_db=nan"),
        ({"trim_db": "40"}, r"trim_db must be a number >= 0 or None. Received: trim_db='40'"),
        (
            {"level_db": 3.0},
            r"level_db must be a number of dB full scale in \[-60, 0\] or \"none\". Received: level_db=3.0",
        ),
        ({"level_db": "loud"}, r"Received: level_db='loud'"),
        ({"level_db": True}, r"Received: level_db=True"),
    ],
)
def test_frontend_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FrontendConfig(**kwargs)


def test_frontend_config_round_trip():
    config = FrontendConfig(sample_rate=22050, n_mels=80, fmax=11025.0, n_fft=1024)
    d = config.to_dict()
    assert d == {
        "sample_rate": 22050,
        "win_ms": 25.0,
        "hop_ms": 10.0,
        "n_fft": 1024,
        "n_mels": 80,
        "fmin": 50.0,
        "fmax": 11025.0,
        "trim_db": 40.0,
        "level_db": -30.0,
    }
    assert FrontendConfig.from_dict(d) == config
    assert FrontendConfig.from_dict(json.loads(json.dumps(d))) == config
    # a model saved before level normalisation existed kept the recorded level
    assert FrontendConfig.from_dict({}) == FrontendConfig(level_db=None)
    assert FrontendConfig(level_db="none").level_db is None == FrontendConfig(level_db="None").level_db
    assert FrontendConfig.from_dict({"n_mels": 40}).n_mels == 40
    no_trim = FrontendConfig(trim_db=None)
    assert FrontendConfig.from_dict(json.loads(json.dumps(no_trim.to_dict()))) == no_trim


def test_frontend_config_rejects_unknown_keys():
    with pytest.raises(
        ConfigError, match=r"unknown frontend setting\(s\) \['bogus', 'hop'\]; expected some of"
    ):
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), "bogus": 1, "hop": 2})


def test_frontend_config_from_dict_validates_values():
    with pytest.raises(ConfigError, match="n_mels must be >= 8"):
        FrontendConfig.from_dict({"n_mels": 2})


# --------------------------------------------------------------------------- statistics and normalisation


# --------------------------------------------------------------------------- cropping and padding


def test_crop_or_pad_crops_the_centre_by_default():
    features = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    crop, mask = crop_or_pad(features, 8)
    np.testing.assert_array_equal(crop, features[6:14])
    np.testing.assert_array_equal(mask, np.ones(8, np.float32))
    assert mask.dtype == np.float32


@pytest.mark.parametrize(("start", "first"), [(0, 0), (5, 5), (12, 12), (100, 12), (-3, 0)])
def test_crop_or_pad_start_is_clamped(start, first):
    features = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    crop, _ = crop_or_pad(features, 8, start=start)
    np.testing.assert_array_equal(crop, features[first : first + 8])


def test_crop_or_pad_pads_short_input_with_zeros():
    features = np.ones((5, 4), np.float64)
    out, mask = crop_or_pad(features, 8)
    assert out.shape == (8, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out[:5], 1.0)
    np.testing.assert_array_equal(out[5:], 0.0)
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 0, 0, 0])


def test_crop_or_pad_exact_length_is_identity():
    features = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    out, mask = crop_or_pad(features, 8)
    np.testing.assert_array_equal(out, features)
    assert mask.sum() == 8


@pytest.mark.parametrize(("multiple", "expected_t"), [(1, 9), (4, 12), (16, 16)])
def test_pad_batch_shapes_and_masks(multiple, expected_t):
    rng = np.random.default_rng(0)
    lengths = [5, 9, 3]
    features = random_features(rng, lengths, n_mels=6)
    batch, mask = pad_batch(features, multiple=multiple)
    assert batch.shape == (3, expected_t, 6) and mask.shape == (3, expected_t)
    assert batch.dtype == mask.dtype == np.float32
    np.testing.assert_array_equal(mask.sum(axis=1), lengths)
    for i, (f, t) in enumerate(zip(features, lengths, strict=True)):
        np.testing.assert_array_equal(batch[i, :t], f)
        np.testing.assert_array_equal(batch[i, t:], 0.0)
        np.testing.assert_array_equal(mask[i, :t], 1.0)
        np.testing.assert_array_equal(mask[i, t:], 0.0)


# --------------------------------------------------------------------------- voicing


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_voiced_fraction_tells_pitched_sound_from_noise(rate):
    rng = np.random.default_rng(0)
    t = np.arange(2 * rate) / rate
    # a vowel-like sound: harmonics of a 140-160 Hz pitch, with a little noise
    pitch = 2 * np.pi * np.cumsum(150 + 10 * np.sin(2 * np.pi * 3 * t)) / rate
    vowel = sum(np.sin(k * pitch) / k for k in range(1, 8)) * 0.1 + rng.normal(0, 0.005, t.size)
    assert voiced_fraction(vowel, rate) > 0.9
    assert voiced_fraction(0.01 * vowel, rate) == voiced_fraction(vowel, rate)  # gain does not matter
    white = rng.normal(0, 0.1, t.size)
    brown = np.cumsum(rng.normal(0, 0.01, t.size))  # low-pass noise: high correlation, no pitch
    assert voiced_fraction(white, rate) < 0.01
    assert voiced_fraction(brown, rate) < MIN_VOICED_FRACTION  # (2% at 8 kHz, under 1% above)
    half = np.concatenate([vowel[:rate], white[:rate]])
    assert 0.4 < voiced_fraction(half, rate) < 0.6
    assert voiced_fraction(np.zeros(rate), rate) == 0.0  # digital silence
    assert voiced_fraction(vowel[:100], rate) == 0.0  # shorter than a frame: padded, no error


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_voiced_fraction_leaves_out_steady_tones(rate):
    rng = np.random.default_rng(0)
    t = np.arange(4 * rate) / rate
    hum = 0.05 * sum(np.sin(2 * np.pi * 60 * k * t) / k for k in range(1, 6))  # mains hum
    assert voiced_fraction(hum, rate) < 0.01
    assert voiced_fraction(0.1 * np.sin(2 * np.pi * 220 * t), rate) < 0.01  # a beep
    assert voiced_fraction(hum + rng.normal(0, 0.01, t.size), rate) < 0.01
    # a voice's pitch moves: the same tone with a 5 Hz vibrato is voiced
    assert voiced_fraction(0.1 * speaking_tone(t, 220.0), rate) > 0.9
    # a voice over quiet hum: the voice is voiced, the hum in its pauses is not
    voice = np.where((t % 3) < 1, 0.5 * speaking_tone(t), 0.0)  # a 2 s pause
    assert 0.4 < voiced_fraction(voice + hum / 10, rate) < 0.6
    # a steady stretch shorter than STEADY_SECONDS is not judged
    assert voiced_fraction(hum[: int(0.8 * rate)], rate) > 0.9
