"""ser.dsp against the librosa and SciPy functions it stands in for, on real RAVDESS audio
(skipped where the corpus is absent) and on edge cases: very short input, silence, odd lengths."""

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from ser import dsp, features
from ser.audio import load_audio
from ser.features import FrontendConfig, logmel, normalize_level, voiced_fraction
from ser.functionals import F0_RANGE, FUNCTIONAL_NAMES, utterance_functionals
from tests.conftest import RAVDESS

SR = 16000

#: What each ser.dsp function stands in for, with the same arguments.
REFERENCE = {
    "stft": lambda y, n_fft, hop, win=None: librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win),
    "yin": lambda y, fmin, fmax, sr, frame, hop: librosa.yin(
        y, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame, hop_length=hop
    ),
    "spectral_centroid": lambda m, sr, n_fft: librosa.feature.spectral_centroid(S=m, sr=sr, n_fft=n_fft)[0],
    "spectral_flatness": lambda m: librosa.feature.spectral_flatness(S=m)[0],
    "spectral_rolloff": lambda m, sr, n_fft: librosa.feature.spectral_rolloff(S=m, sr=sr, n_fft=n_fft)[0],
    "fft_frequencies": lambda sr, n_fft: librosa.fft_frequencies(sr=sr, n_fft=n_fft),
    "mel_filterbank": lambda sr, n_fft, n_mels, fmin=0.0, fmax=None: librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    ),
    "power_to_db": lambda s: librosa.power_to_db(s),
    "mfcc": lambda db, n: librosa.feature.mfcc(S=db, n_mfcc=n),
    "zero_crossing_rate": lambda y, frame, hop: librosa.feature.zero_crossing_rate(
        y, frame_length=frame, hop_length=hop
    )[0],
    "butter_bandpass": lambda order, lo, hi, sr: scipy.signal.butter(
        order, (lo, hi), btype="band", fs=sr, output="sos"
    ),
    "sosfilt": scipy.signal.sosfilt,
    "autocorrelate": lambda f, m: librosa.autocorrelate(f, max_size=m, axis=-1),
}


def ravdess_waves(n: int = 6) -> list[np.ndarray]:
    files = sorted(RAVDESS.glob("Actor_*/*.wav"))
    if not files:
        pytest.skip(f"RAVDESS not found at {RAVDESS}")
    return [load_audio(f) for f in files[:: len(files) // n][:n]]


def edge_waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    return [
        rng.standard_normal(1).astype(np.float32) * 0.1,  # one sample
        rng.standard_normal(399).astype(np.float32) * 0.1,  # under one window
        rng.standard_normal(1001).astype(np.float32) * 0.1,  # odd length
        np.zeros(SR, np.float32),  # digital silence
        (0.3 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32),
    ]


@pytest.fixture
def with_reference(monkeypatch):
    """ser.dsp with every function replaced by its librosa / SciPy reference."""
    features._voicing_filter.cache_clear()
    for name, fn in REFERENCE.items():
        monkeypatch.setattr(dsp, name, fn)
    yield
    features._voicing_filter.cache_clear()


def reference_logmel(y: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """The log-mel as librosa computes it (the frontend before ser.dsp)."""
    y = normalize_level(y, config.sample_rate, config.level_db)
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    return np.log(mel + features.LOG_FLOOR).T.astype(np.float32)


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100, 48000])
def test_butter_bandpass_is_scipys(sample_rate):
    band = (60.0, min(1000.0, 0.45 * sample_rate))
    expected = scipy.signal.butter(4, band, btype="band", fs=sample_rate, output="sos")
    np.testing.assert_allclose(dsp.butter_bandpass(4, *band, sample_rate), expected, rtol=1e-12, atol=1e-15)


def test_sosfilt_matches_scipy_on_speech_and_edges():
    sos = dsp.butter_bandpass(4, 60.0, 1000.0, SR)
    impulse = np.zeros(1000)
    impulse[0] = 1.0
    for y in ravdess_waves(3) + edge_waves() + [impulse]:
        expected = scipy.signal.sosfilt(sos, y.astype(np.float64))
        out = dsp.sosfilt(sos, y)
        assert out.shape == y.shape
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * max(1.0, np.abs(expected).max()))


def test_stft_and_mel_scale_match_librosa():
    for y in edge_waves() + ravdess_waves(2):
        expected = librosa.stft(y, n_fft=512, hop_length=160, win_length=400)
        out = dsp.stft(y, 512, 160, 400)
        assert out.shape == expected.shape and out.dtype == np.complex64
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 * max(1.0, np.abs(expected).max()))
    for args in [(SR, 512, 64, 50.0, 8000.0), (SR, 512, 40, 0.0, None), (22050, 1024, 128, 0.0, None)]:
        sr, n_fft, n_mels, fmin, fmax = args
        expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        np.testing.assert_allclose(dsp.mel_filterbank(*args), expected, rtol=1e-6, atol=1e-9)
    hz = np.array([0.0, 50.0, 999.9, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(dsp.hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(dsp.mel_to_hz(dsp.hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    assert float(dsp.hz_to_mel(4321.0)) == pytest.approx(float(librosa.hz_to_mel(4321.0)), rel=1e-12)
    np.testing.assert_allclose(
        dsp.mel_frequencies(66, 50.0, 8000.0), librosa.mel_frequencies(66, fmin=50.0, fmax=8000.0), rtol=1e-12
    )


def test_logmel_within_1e4_of_librosa():
    config = FrontendConfig()
    for y in edge_waves() + ravdess_waves():
        out, expected = logmel(y, config), reference_logmel(y, config)
        assert out.shape == expected.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


def test_spectral_descriptors_match_librosa():
    for y in edge_waves() + ravdess_waves(2):
        magnitude = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400))
        for name in ("spectral_centroid", "spectral_rolloff"):
            expected = REFERENCE[name](magnitude, SR, 512)
            np.testing.assert_allclose(getattr(dsp, name)(magnitude, SR, 512), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            dsp.spectral_flatness(magnitude), REFERENCE["spectral_flatness"](magnitude), rtol=1e-5, atol=1e-9
        )
        mel = librosa.feature.melspectrogram(S=magnitude**2, sr=SR, n_mels=40)
        np.testing.assert_allclose(dsp.power_to_db(mel), librosa.power_to_db(mel), rtol=1e-6, atol=1e-5)
        db = librosa.power_to_db(mel)
        # float32 DCT sums of values up to ~100 dB: agree to float32 rounding
        np.testing.assert_allclose(dsp.mfcc(db, 14), librosa.feature.mfcc(S=db, n_mfcc=14), rtol=0, atol=5e-4)
        if y.size >= 400:
            np.testing.assert_array_equal(
                dsp.zero_crossing_rate(y, 400, 160), REFERENCE["zero_crossing_rate"](y, 400, 160)
            )


def test_autocorrelate_matches_librosa():
    frames = np.random.default_rng(1).standard_normal((7, 320)).astype(np.float32)
    expected = librosa.autocorrelate(frames, max_size=140, axis=-1)
    np.testing.assert_allclose(dsp.autocorrelate(frames, 140), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        dsp.autocorrelate(frames.astype(np.float64), 140),
        scipy.fft.irfft(np.abs(scipy.fft.rfft(frames.astype(np.float64), 640)) ** 2)[:, :140],
        atol=1e-10,
    )


def test_yin_matches_librosa_on_voiced_frames():
    """On voiced frames (loud, F0 inside the range) the F0 agrees within 1e-3 relative; both
    sum in float32, so frames off speech (where the difference function is ~0) may differ."""
    frame, hop = 1024, 160
    for y in ravdess_waves() + edge_waves()[3:]:
        y = np.pad(y, (0, max(0, frame - y.size)))
        expected = librosa.yin(
            y, fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=SR, frame_length=frame, hop_length=hop
        )
        out = dsp.yin(y, *F0_RANGE, SR, frame, hop)
        assert out.shape == expected.shape
        loudness = 10 * np.log10((np.abs(dsp.stft(y, 512, hop, 400)) ** 2).mean(axis=0) + 1e-10)
        voiced = (
            (loudness > loudness.max() - 35)
            & (expected > F0_RANGE[0] * 1.01)
            & (expected < F0_RANGE[1] * 0.99)
        )
        np.testing.assert_allclose(out[voiced], expected[voiced], rtol=1e-3)
        if not y.any():  # silence: no period, both at the same bound
            np.testing.assert_array_equal(out, expected)


def contour_levels(functionals: np.ndarray) -> np.ndarray:
    """Each functional's magnitude, except that the spread, percentiles and slope of a contour
    take its mean's: a near-constant contour's spread and slope are rounding of its level."""
    index = {name: i for i, name in enumerate(FUNCTIONAL_NAMES)}
    levels = np.abs(functionals).astype(np.float64)
    for name, i in index.items():
        contour, _, stat = name.rpartition("_")
        if stat in ("std", "p20", "p50", "p80", "p80-p20", "slope") and f"{contour}_mean" in index:
            levels[i] = max(levels[i], abs(functionals[index[f"{contour}_mean"]]))
    return levels


def test_functionals_and_voicing_match_the_librosa_frontend(with_reference, monkeypatch):
    """The functionals vector computed with ser.dsp against the one computed with librosa and
    SciPy. Per frame, F0 moves by at most ~2e-4 relative (both sum in float32; 0.003
    semitones) and spectral values by float32 rounding (1e-7 relative), so a statistic moves
    by under 1e-3 (semitones, dB, ...) plus 1e-4 of its contour's level (Hz: the centroid's
    spread and slope over a near-constant spectrum are rounding of its 4 kHz level).
    voiced_fraction counts frames, and is equal."""
    waves = ravdess_waves() + edge_waves()
    expected = [(utterance_functionals(y, SR), voiced_fraction(y, SR)) for y in waves]
    monkeypatch.undo()
    features._voicing_filter.cache_clear()
    for y, (functionals, voiced) in zip(waves, expected, strict=True):
        out = utterance_functionals(y, SR)
        assert out.shape == (len(FUNCTIONAL_NAMES),)
        assert np.all(np.abs(out - functionals) <= 1e-3 + 1e-4 * contour_levels(functionals))
        assert voiced_fraction(y, SR) == voiced
