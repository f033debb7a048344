"""Log-mel frontend, level normalisation, voicing and cropping (signal processing in :mod:`ser.dsp`).

The frontend settings live in one dataclass, :class:`FrontendConfig`, which the trained
model stores in its own config (see :mod:`ser.model`), so training and inference always
compute the same features.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from ser import dsp
from ser.constants import SAMPLE_RATE, SILENCE_PEAK
from ser.errors import ConfigError

#: Floor added to mel power before the log, so silence gives finite values.
LOG_FLOOR = 1e-6

#: Speech level (dB full scale, :func:`speech_level`) that :func:`normalize_level` brings
#: every recording to by default: about RAVDESS's average (-33 dB), a normal level for
#: speech recorded close to a microphone.
DEFAULT_LEVEL_DB = -30.0

#: Largest gain (dB, up or down) :func:`normalize_level` applies: enough to bring the quietest
#: RAVDESS file (-57 dB) recorded 30 dB quieter up to speech level, not enough to lift
#: 16-bit quantisation noise (-96 dB) to it.
MAX_GAIN_DB = 60.0

#: :func:`speech_level` is never more than this many dB below the 99th percentile of the
#: frame power, so a recording that is mostly silence or background (speech in under 5% of
#: its frames, where the 95th percentile falls outside the speech) is not raised as if the
#: background were speech. On RAVDESS the 99th percentile is at most 12.3 dB above the 95th
#: (median 2.8 dB), so the bound changes no file of the corpus.
PEAK_MARGIN_DB = 15.0


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel settings, chosen for speech emotion recognition.

    25 ms windows every 10 ms are the standard for speech (they resolve pitch harmonics
    of most voices at 512-point FFTs); 64 mel bands from 50 Hz to 8 kHz cover F0 (low
    male voices start near 60 Hz), formants and the high-frequency energy that separates
    high-arousal speech, at the full band of 16 kHz audio.

    Attributes
    ----------
    sample_rate : int
        Audio rate in Hz; input is resampled to it.
    win_ms, hop_ms : float
        Analysis window and hop in milliseconds.
    n_fft : int
        FFT size (>= the window in samples).
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Mel filterbank range in Hz (``fmax <= sample_rate / 2``).
    trim_db : float or None
        Leading and trailing frames more than this many dB below the loudest frame are
        dropped (see :func:`trim_silence`); ``None`` keeps everything.
    level_db : float or None
        Every waveform is scaled so that its speech level (:func:`speech_level`) is this many
        dB full scale before the log-mel (:func:`normalize_level`), so a recording made
        quieter or louder gives the same features and the same prediction; ``None`` (or
        ``"none"`` in a recipe) keeps the recorded level. Without it, accuracy falls as a
        recording's level moves away from the training corpus's (``benchmarks/bench_gain.py``
        measures it on one RAVDESS fold; results in ``recipes/ravdess/README.md``).
    """

    sample_rate: int = SAMPLE_RATE
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    trim_db: float | None = 40.0
    level_db: float | None = DEFAULT_LEVEL_DB

    def __post_init__(self):
        if isinstance(self.level_db, str) and self.level_db.lower() == "none":
            object.__setattr__(self, "level_db", None)
        if self.level_db is not None and not (
            isinstance(self.level_db, numbers.Real)
            and not isinstance(self.level_db, bool)
            and -60.0 <= self.level_db <= 0.0
        ):
            raise ConfigError(
                f'level_db must be a number of dB full scale in [-60, 0] or "none". Received: level_db={self.level_db!r}'
            )
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive. Received: sample_rate={self.sample_rate}")
        if not 0 < self.hop_ms <= self.win_ms:
            raise ConfigError(
                f"need 0 < hop_ms <= win_ms. Received: hop_ms={self.hop_ms}, win_ms={self.win_ms}"
            )
        if self.hop_length < 1:
            raise ConfigError(
                f"hop_ms must be at least one sample ({1000.0 / self.sample_rate:.4g} ms). "
                f"Received: hop_ms={self.hop_ms}"
            )
        for name in ("n_fft", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{name} must be an integer. Received: {name}={value!r}")
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"n_fft must be >= the window ({self.win_length} samples). Received: n_fft={self.n_fft}"
            )
        if self.n_mels < 8:
            raise ConfigError(f"n_mels must be >= 8. Received: n_mels={self.n_mels}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(
                f"need 0 <= fmin < fmax <= sample_rate/2. Received: fmin={self.fmin}, fmax={self.fmax}, "
                f"sample_rate={self.sample_rate}"
            )
        if self.trim_db is not None and not (isinstance(self.trim_db, numbers.Real) and self.trim_db >= 0):
            raise ConfigError(f"trim_db must be a number >= 0 or None. Received: trim_db={self.trim_db!r}")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.win_ms * self.sample_rate / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.hop_ms * self.sample_rate / 1000.0))

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FrontendConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown frontend setting(s) {unknown}; expected some of {sorted(known)}")
        # settings saved before level normalisation existed kept the recorded level
        return cls(**{"level_db": None, **d})


def speech_level(y: np.ndarray, sample_rate: int) -> float:
    """Speech level of a waveform in dB full scale: the 95th percentile of its frame RMS.

    Frames are 25 ms every 10 ms. The percentile is the level of the loud part of the speech,
    whatever share of the recording is pause or silence, and unlike the peak it is not set
    by a single click. Where speech fills under 5% of the frames the 95th percentile falls on
    the background, so the level is never taken lower than :data:`PEAK_MARGIN_DB` below the
    99th percentile. A gain of ``g`` dB changes it by exactly ``g``. Silence gives -200.
    """
    y = np.asarray(y, dtype=np.float32)
    frame = max(1, int(round(0.025 * sample_rate)))
    hop = max(1, int(round(0.010 * sample_rate)))
    if y.size < frame:
        y = np.pad(y, (0, frame - y.size))
    n = 1 + (y.size - frame) // hop
    energy = np.concatenate([[0.0], np.cumsum(np.square(y, dtype=np.float64))])
    starts = np.arange(n) * hop
    power = np.maximum(energy[starts + frame] - energy[starts], 0.0) / frame
    p95, p99 = 10.0 * np.log10(np.percentile(power, [95, 99]) + 1e-20)
    return float(max(p95, p99 - PEAK_MARGIN_DB))


#: A 40 ms frame is voiced where its signal, band-passed to :data:`VOICING_BAND` Hz, has a
#: normalised autocorrelation peak of at least this at the lag of a pitch in
#: :data:`VOICING_PITCH` Hz. The band holds voiced speech's strongest harmonics and little of
#: broadband noise's power; a peak (not the range's edge) is required, so low-pass noise,
#: whose autocorrelation only falls with the lag, is not voiced (speech files keep a good
#: share of voiced frames, even under noise as loud as the speech; white and pink noise none).
VOICED_PEAK = 0.7
VOICING_BAND = (60.0, 1000.0)
VOICING_PITCH = (60.0, 400.0)
#: A steady tone is not speech: where, over :data:`STEADY_SECONDS`, at least half the frames
#: are voiced and their pitch stays within :data:`STEADY_SPREAD` of its median (or one
#: sample of lag at the analysis rate), those frames do not count as voiced. Mains hum, a
#: beep or a held electronic note is periodic, so the autocorrelation alone takes it for a
#: voice; speech's pitch moves more within a second (no frame of real speech is steady).
STEADY_SECONDS = 1.0
STEADY_SPREAD = 0.02
#: Audio with fewer voiced frames than this fraction holds no speech worth classifying:
#: pauses, noise, unpitched sound (see :func:`voiced_fraction`).
MIN_VOICED_FRACTION = 0.05


@functools.lru_cache(maxsize=8)
def _voicing_filter(sample_rate: int) -> np.ndarray:
    """The :data:`VOICING_BAND` band-pass (4th-order Butterworth, second-order sections)."""
    return dsp.butter_bandpass(4, VOICING_BAND[0], min(VOICING_BAND[1], 0.45 * sample_rate), sample_rate)


def voiced_fraction(y: np.ndarray, sample_rate: int) -> float:
    """The fraction of a waveform's 40 ms frames (every 20 ms) that are voiced (see
    :data:`VOICED_PEAK`). Gain does not change it, but frames with no sample above the
    silence threshold (:data:`ser.constants.SILENCE_PEAK`) are never voiced, nor are those of
    a steady tone such as mains hum (see :data:`STEADY_SECONDS`). The band-passed
    signal is analysed at about 8 kHz (every k-th sample), which its band allows."""
    y = np.asarray(y, dtype=np.float64)
    step = max(1, int(sample_rate // 8000))
    rate = sample_rate / step
    n = int(round(0.040 * rate))
    hop = int(round(0.020 * rate))
    if y.size < n * step:
        y = np.pad(y, (0, n * step - y.size))
    # frames whose samples stay under the silence threshold are never voiced
    peak = np.abs(y[: (y.size // step) * step].reshape(-1, step)).max(axis=1)
    loud = np.lib.stride_tricks.sliding_window_view(peak, n)[::hop].max(axis=1) > SILENCE_PEAK
    y = dsp.sosfilt(_voicing_filter(int(sample_rate)), y)[::step]
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop][: loud.size].astype(np.float32)
    frames = frames - frames.mean(axis=1, keepdims=True)
    lo = int(rate / VOICING_PITCH[1])
    hi = min(int(rate / VOICING_PITCH[0]), n - 2)
    acf = dsp.autocorrelate(frames, hi + 2)
    # normalised by the energy of the two overlapping parts at each lag
    energy = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(hi + 2)
    r = acf / np.sqrt(energy[:, n - lags] * (energy[:, n : n + 1] - energy[:, lags]) + 1e-30)
    inner = r[:, lo : hi + 1]
    peaks = (inner >= r[:, lo - 1 : hi]) & (inner >= r[:, lo + 1 : hi + 2])
    scores = np.where(peaks, inner, -1.0)
    voiced = (scores.max(axis=1) >= VOICED_PEAK) & loud[: len(frames)]
    return float(np.mean(voiced & ~_steady(np.where(voiced, scores.argmax(axis=1) + lo, np.nan), hop / rate)))


def _steady(lags: np.ndarray, hop_seconds: float) -> np.ndarray:
    """Which frames belong to a steady tone (see :data:`STEADY_SECONDS`), given each frame's
    pitch lag in samples (NaN where unvoiced)."""
    width = int(round(STEADY_SECONDS / hop_seconds))
    if lags.size < width:
        return np.zeros(lags.size, bool)
    spans = np.lib.stride_tricks.sliding_window_view(lags, width)
    count = np.sum(~np.isnan(spans), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spans
        spread = np.nanmax(spans, axis=1) - np.nanmin(spans, axis=1)
        steady = (count >= width / 2) & (
            spread <= np.maximum(1.0, STEADY_SPREAD * np.nanmedian(spans, axis=1))
        )
    # every frame of a steady span
    return np.convolve(steady, np.ones(width), mode="full")[: lags.size] > 0


def normalize_level(
    y: np.ndarray, sample_rate: int, level_db: float, *, level: float | None = None
) -> np.ndarray:
    """``y`` scaled so that its :func:`speech_level` is ``level_db`` dB full scale.

    ``level``: ``speech_level(y, sample_rate)`` where the caller has it already.

    The gain is limited to +-:data:`MAX_GAIN_DB`, so near-silence is not blown up into noise
    at speech level (and digital silence stays silence). Samples may exceed 1 afterwards:
    the features are computed in floating point, nothing is clipped.
    """
    y = np.asarray(y, dtype=np.float32)
    level = speech_level(y, sample_rate) if level is None else level
    gain = float(np.clip(level_db - level, -MAX_GAIN_DB, MAX_GAIN_DB))
    return (y * np.float32(10.0 ** (gain / 20.0))).astype(np.float32, copy=False)


def logmel(y: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Log-mel spectrogram of a mono waveform.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono float waveform at ``config.sample_rate``; with ``config.level_db`` set it is
        first brought to that speech level (:func:`normalize_level`).
    config : FrontendConfig

    Returns
    -------
    np.ndarray [shape=(frames, n_mels), dtype=float32]
        ``log(mel_power + 1e-6)``, one row every ``hop_ms``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"logmel expects a mono waveform of shape (n,). Received: shape={y.shape}")
    if config.level_db is not None:
        y = normalize_level(y, config.sample_rate, config.level_db)
    power = np.abs(dsp.stft(y, config.n_fft, config.hop_length, config.win_length)) ** 2
    filters = dsp.mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    mel = filters @ power
    return np.log(mel + LOG_FLOOR).T.astype(np.float32)


def trim_bounds(features: np.ndarray, top_db: float | None, min_frames: int = 10) -> tuple[int, int]:
    """First and one-past-last frame kept by :func:`trim_silence`.

    Parameters
    ----------
    features : np.ndarray [shape=(frames, n_mels)]
        Output of :func:`logmel`.
    top_db : float or None
        Threshold in dB below the loudest frame; ``None`` keeps every frame.
    min_frames : int
        Never keep fewer than this many frames (centred on the loud region).

    Returns
    -------
    start, end : int
    """
    if top_db is not None and not float(top_db) >= 0:
        raise ConfigError(f"top_db must be >= 0 or None. Received: top_db={top_db!r}")
    n = features.shape[0]
    if top_db is None or n <= min_frames:
        return 0, n
    power = np.exp(features.astype(np.float64))
    energy_db = 10.0 * np.log10(power.sum(axis=1))
    # Frames the log-mel cannot tell from digital silence (energy over the log floor 20 dB
    # under the floor itself) are silence whatever the threshold: after level normalisation
    # the floor sits only about 40 dB under the loudest frame, so a threshold measured with
    # the floor included would keep zero padding around a steady signal.
    floor = features.shape[1] * LOG_FLOOR
    audible = np.maximum(power - LOG_FLOOR, 0.0).sum(axis=1) >= 0.01 * floor
    loud = np.flatnonzero((energy_db >= energy_db.max() - float(top_db)) & audible)
    if loud.size == 0:  # all of it digital silence
        return 0, n
    start, end = int(loud[0]), int(loud[-1]) + 1
    if end - start < min_frames:
        centre = (start + end) // 2
        start = max(0, min(centre - min_frames // 2, n - min_frames))
        end = start + min_frames
    return start, end


def trim_silence(features: np.ndarray, top_db: float | None, min_frames: int = 10) -> np.ndarray:
    """Drop leading and trailing frames quieter than ``top_db`` below the loudest frame.

    Works on log-mel features, so training and inference trim identically. Frame energy
    includes the log floor (after level normalisation about 40 dB under the loudest frame),
    so a 40 dB threshold trims little beyond it; frames at the floor itself (digital silence)
    are always trimmed. Silence in the middle of an utterance is kept (pauses carry
    emotion). Training trims every utterance; inference trims utterances classified whole
    (sliding windows over long recordings are not trimmed, so their timeline stays exact).

    Parameters
    ----------
    features : np.ndarray [shape=(frames, n_mels)]
        Output of :func:`logmel`.
    top_db : float or None
        Threshold in dB; ``None`` returns ``features`` unchanged.
    min_frames : int
        Never trim below this many frames (centred on the loud region).

    Returns
    -------
    np.ndarray [shape=(frames', n_mels)]
    """
    start, end = trim_bounds(features, top_db, min_frames)
    return features if (start, end) == (0, features.shape[0]) else features[start:end]


def model_input(y: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """The features a model is trained and run on: :func:`logmel` then :func:`trim_silence`."""
    return trim_silence(logmel(y, config), config.trim_db)


def crop_or_pad(features: np.ndarray, frames: int, start: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``features`` to exactly ``frames`` rows, zero-padding at the end if shorter.

    Parameters
    ----------
    features : np.ndarray [shape=(t, n_mels)]
    frames : int
    start : int or None
        First frame of the crop (default: centred crop).

    Returns
    -------
    crop : np.ndarray [shape=(frames, n_mels)]
    mask : np.ndarray [shape=(frames,), dtype=float32]
        1 for real frames, 0 for padding.
    """
    t = features.shape[0]
    mask = np.zeros(frames, dtype=np.float32)
    if t >= frames:
        if start is None:
            start = (t - frames) // 2
        start = int(min(max(start, 0), t - frames))
        mask[:] = 1.0
        return features[start : start + frames], mask
    out = np.zeros((frames, features.shape[1]), dtype=features.dtype)
    out[:t] = features
    mask[:t] = 1.0
    return out, mask


def pad_batch(features: list[np.ndarray], multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad matrices of different lengths into one batch with a mask.

    Parameters
    ----------
    features : list of np.ndarray [shape=(t_i, n_mels)]
    multiple : int
        Round the padded length up to a multiple of this (the model's time stride).

    Returns
    -------
    batch : np.ndarray [shape=(b, t, n_mels), dtype=float32]
    mask : np.ndarray [shape=(b, t), dtype=float32]
    """
    t = max(f.shape[0] for f in features)
    t = int(np.ceil(t / multiple) * multiple)
    batch = np.zeros((len(features), t, features[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(features), t), dtype=np.float32)
    for i, f in enumerate(features):
        batch[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = 1.0
    return batch, mask
