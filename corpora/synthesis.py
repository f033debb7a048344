"""The voice of the synthetic corpus: a source-filter model of emotional speech.

**Synthetic.** Nobody spoke it and it carries no real emotion; :mod:`ser.corpora.synthetic`
writes a corpus of it so that the pipeline can be demonstrated and tested anywhere.

Each utterance is a short sequence of syllables produced by a simple source-filter model:

* **source** -- a Rosenberg glottal pulse train (differentiated for lip radiation) whose
  fundamental frequency follows a prosodic contour, with per-cycle jitter and shimmer, a
  one-pole spectral-tilt filter and pitch-synchronous aspiration noise (breathiness);
* **filter** -- a cascade of five second-order resonators (:func:`scipy.signal.lfilter`)
  per syllable, tuned to one of ten vowels (F1-F5) and scaled by the speaker's
  vocal-tract length;
* **consonants** -- band-passed noise (fricatives) or a closure plus burst (stops) before
  most vowels, pauses between groups of syllables, and a little background noise.

The emotion of an utterance sets its prosody and voice quality, roughly as reported in the
literature (e.g. Scherer 2003; Juslin & Laukka 2003):

=========  ======  =========  =====================  ======  =======  =====================
emotion    F0      F0 range   contour                rate    level    voice quality
=========  ======  =========  =====================  ======  =======  =====================
angry      high    wide       sharp falling accents  fast    loud     tense, flat tilt
happy      high    widest     rising                 fast    medium+  modal, slightly bright
neutral    mid     narrow     gentle declination     medium  medium   modal
sad        low     narrowest  falling                slow    quiet    breathy, steep tilt
=========  ======  =========  =====================  ======  =======  =====================

Every utterance draws an emotion *strength* (how far from neutral it is) and jitters every
parameter, so the classes overlap: loudness alone does not separate them, and a small
classifier trained on some speakers reaches well above chance -- but not 100 % -- on the
others. Speakers (:func:`speaker_profile`) differ in base pitch, vocal-tract length,
loudness, spectral tilt and speaking rate, so speaker-independent folds are meaningful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from ser.constants import SAMPLE_RATE
from ser.errors import ConfigError

__all__ = ["CLASSES", "SpeakerProfile", "speaker_profile", "synthesize_utterance"]

#: Emotion classes the voice can speak.
CLASSES = ("angry", "happy", "neutral", "sad")

#: Default range of utterance durations, in seconds.
DURATION_RANGE = (1.2, 2.5)

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 96000
MIN_DURATION = 0.3
MAX_DURATION = 60.0
MAX_SPEAKERS = 99

#: A speaker's name (and folder): ``spk`` and a number of two or more digits.
SPEAKER_RE = re.compile(r"^spk(\d{2,})$")

# --------------------------------------------------------------------------------------
# Plain data: emotion presets, their within-class spread, vowels
# --------------------------------------------------------------------------------------

#: Mean prosody and voice-quality parameters of each emotion. Units:
#: ``pitch_st`` semitones above the speaker's base F0; ``range_st`` height of pitch
#: accents (semitones); ``decl_st`` declination (semitones per second within a phrase);
#: ``glide_st`` pitch movement inside a syllable (semitones per second); ``final_st``
#: phrase-final movement (semitones); ``rate`` syllables per second; ``pause_s`` mean pause
#: between phrases; ``level_db`` peak level (dBFS); ``jitter`` relative per-cycle F0
#: deviation; ``shimmer`` per-cycle amplitude deviation (log units); ``open_q`` glottal open
#: quotient; ``closing`` closing share of the open phase (small = abrupt closure = strong
#: harmonics); ``tilt`` one-pole low-pass coefficient (0 flat .. 0.9 steep); ``breath``
#: aspiration-to-voicing ratio; ``stress_db`` extra level of stressed syllables;
#: ``f1``/``f2`` formant scaling; ``bw`` formant bandwidth scaling.
_EMOTIONS: dict[str, dict[str, float]] = {
    "angry": dict(
        pitch_st=4.5, range_st=5.5, decl_st=-3.0, glide_st=-12.0, final_st=-3.0, rate=5.6,
        pause_s=0.09, level_db=-2.0, jitter=0.014, shimmer=0.10, open_q=0.42, closing=0.15,
        tilt=0.04, breath=0.03, stress_db=6.0, f1=1.08, f2=1.00, bw=0.85,
    ),
    "happy": dict(
        pitch_st=5.5, range_st=7.0, decl_st=-0.5, glide_st=10.0, final_st=3.0, rate=5.2,
        pause_s=0.12, level_db=-5.0, jitter=0.008, shimmer=0.06, open_q=0.55, closing=0.30,
        tilt=0.40, breath=0.05, stress_db=4.0, f1=1.05, f2=1.06, bw=1.00,
    ),
    "neutral": dict(
        pitch_st=0.0, range_st=2.5, decl_st=-2.0, glide_st=-2.0, final_st=-1.5, rate=4.3,
        pause_s=0.17, level_db=-9.0, jitter=0.005, shimmer=0.04, open_q=0.60, closing=0.33,
        tilt=0.45, breath=0.06, stress_db=2.5, f1=1.00, f2=1.00, bw=1.00,
    ),
    "sad": dict(
        pitch_st=-2.0, range_st=1.5, decl_st=-2.5, glide_st=-6.0, final_st=-3.0, rate=3.2,
        pause_s=0.32, level_db=-14.0, jitter=0.010, shimmer=0.08, open_q=0.75, closing=0.45,
        tilt=0.72, breath=0.20, stress_db=1.5, f1=0.96, f2=0.96, bw=1.30,
    ),
}  # fmt: skip

#: Within-class standard deviation of each parameter (added after interpolating between
#: neutral and the emotion with a random strength).
_SPREAD: dict[str, float] = dict(
    pitch_st=1.3, range_st=1.0, decl_st=0.8, glide_st=3.0, final_st=1.0, rate=0.35,
    pause_s=0.03, level_db=2.5, jitter=0.002, shimmer=0.015, open_q=0.05, closing=0.04,
    tilt=0.08, breath=0.02, stress_db=1.0, f1=0.02, f2=0.02, bw=0.08,
)  # fmt: skip

#: Hard limits every drawn parameter is clipped to.
_LIMITS: dict[str, tuple[float, float]] = dict(
    pitch_st=(-6.0, 10.0), range_st=(0.5, 10.0), decl_st=(-6.0, 2.0), glide_st=(-20.0, 20.0),
    final_st=(-6.0, 6.0), rate=(2.2, 7.0), pause_s=(0.04, 0.6), level_db=(-20.0, -1.0),
    jitter=(0.001, 0.03), shimmer=(0.0, 0.2), open_q=(0.35, 0.9), closing=(0.1, 0.6),
    tilt=(0.0, 0.9), breath=(0.0, 0.4), stress_db=(0.0, 9.0), f1=(0.85, 1.2), f2=(0.85, 1.2),
    bw=(0.6, 1.8),
)  # fmt: skip

#: Random strength of a non-neutral emotion: 0 = neutral, 1 = the preset above.
_STRENGTH_RANGE = (0.6, 1.1)

#: Formants F1-F5 (Hz) of ten vowels for an adult male vocal tract (after Peterson &
#: Barney 1952), and their bandwidths (Hz).
_VOWELS = np.array(
    [
        [270, 2290, 3010, 3500, 4500],  # i
        [390, 1990, 2550, 3400, 4500],  # I
        [530, 1840, 2480, 3450, 4500],  # E
        [660, 1720, 2410, 3400, 4500],  # ae
        [730, 1090, 2440, 3350, 4500],  # a
        [570, 840, 2410, 3300, 4500],  # o
        [440, 1020, 2240, 3300, 4500],  # U
        [300, 870, 2240, 3300, 4500],  # u
        [640, 1190, 2390, 3350, 4500],  # V
        [490, 1350, 1690, 3300, 4500],  # 3r
    ],
    dtype=float,
)
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0, 300.0])

#: Fricative noise bands (Hz, male tract; scaled by the speaker) and relative levels (dB).
_FRICATIVES = ((3800.0, 7000.0, -22.0), (2000.0, 4500.0, -20.0), (1200.0, 6500.0, -28.0))


# --------------------------------------------------------------------------------------
# Speakers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerProfile:
    """The fixed voice of one synthetic speaker (see :func:`speaker_profile`).

    Attributes
    ----------
    index : int
        Speaker number, >= 1.
    speaker_id : str
        ``"spk01"``, ``"spk02"``, ...
    gender : str
        ``"F"`` or ``"M"``, from the base pitch.
    f0 : float
        Base (neutral) fundamental frequency in Hz, 95-230.
    formant_scale : float
        Vocal-tract length factor applied to all formants, 0.85-1.2 (1 = adult male).
    level_db : float
        Personal loudness offset in dB.
    tilt : float
        Personal offset of the spectral-tilt coefficient.
    rate : float
        Personal speaking-rate factor.
    range_scale : float
        Personal factor on the pitch range.
    """

    index: int
    speaker_id: str
    gender: str
    f0: float
    formant_scale: float
    level_db: float
    tilt: float
    rate: float
    range_scale: float


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int within ``[low, high]``, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer; Received: {name}={value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name} must be {bounds}; Received: {name}={value!r}")
    return int(value)


def speaker_profile(index: int) -> SpeakerProfile:
    """Return the voice of synthetic speaker number ``index``.

    Odd speakers are female-like (base F0 170-230 Hz, shorter vocal tract), even speakers
    male-like (95-145 Hz, longer tract). Values are spread with a golden-ratio sequence so
    that any handful of speakers covers the ranges, plus a small deterministic jitter.

    Parameters
    ----------
    index : int
        Speaker number, 1 to 99; ``speaker_profile(3).speaker_id == "spk03"``.

    Returns
    -------
    SpeakerProfile
        The same profile for the same ``index``, always.

    Raises
    ------
    ConfigError
        If ``index`` is not an integer between 1 and 99.
    """
    index = check_int("index", index, 1, MAX_SPEAKERS)
    rng = np.random.default_rng(np.random.SeedSequence([0x5E5, index]))
    k = (index + 1) // 2  # rank within gender
    u = (k * 0.6180339887498949) % 1.0
    v = (k * 0.7548776662466927 + 0.31) % 1.0
    if index % 2 == 1:
        f0 = 170.0 + 60.0 * u
        scale = 1.06 + 0.14 * v
    else:
        f0 = 95.0 + 50.0 * u
        scale = 0.85 + 0.15 * v
    f0 *= float(np.exp(rng.normal(0.0, 0.02)))
    return SpeakerProfile(
        index=index,
        speaker_id=f"spk{index:02d}",
        gender="F" if f0 >= 160.0 else "M",
        f0=float(np.clip(f0, 95.0, 230.0)),
        formant_scale=float(np.clip(scale + rng.normal(0.0, 0.01), 0.85, 1.2)),
        level_db=float(rng.uniform(-2.0, 2.0)),
        tilt=float(rng.uniform(-0.08, 0.08)),
        rate=float(rng.uniform(0.9, 1.12)),
        range_scale=float(rng.uniform(0.8, 1.2)),
    )


def _as_profile(speaker) -> SpeakerProfile:
    if isinstance(speaker, SpeakerProfile):
        return speaker
    if isinstance(speaker, str):
        m = SPEAKER_RE.match(speaker)
        if not m:
            raise ConfigError(f"speaker must look like 'spk01'; Received: speaker={speaker!r}")
        return speaker_profile(int(m.group(1)))
    if isinstance(speaker, (int, np.integer)) and not isinstance(speaker, bool):
        return speaker_profile(int(speaker))
    raise ConfigError(
        f"speaker must be a SpeakerProfile, an index >= 1 or an id like 'spk01'; Received: speaker={speaker!r}"
    )


# --------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------


def _draw_params(label: str, spk: SpeakerProfile, rng: np.random.Generator) -> dict[str, float]:
    """Draw the parameters of one utterance: neutral + strength * (emotion - neutral) + noise."""
    neutral, target = _EMOTIONS["neutral"], _EMOTIONS[label]
    strength = 1.0 if label == "neutral" else rng.uniform(*_STRENGTH_RANGE)
    p = {}
    for key in sorted(neutral):  # sorted: the order of draws is part of determinism
        value = neutral[key] + strength * (target[key] - neutral[key]) + _SPREAD[key] * rng.standard_normal()
        p[key] = float(np.clip(value, *_LIMITS[key]))
    p["rate"] = float(np.clip(p["rate"] * spk.rate, *_LIMITS["rate"]))
    p["range_st"] *= spk.range_scale
    p["tilt"] = float(np.clip(p["tilt"] + spk.tilt, *_LIMITS["tilt"]))
    p["level_db"] = float(np.clip(p["level_db"] + spk.level_db, *_LIMITS["level_db"]))
    return p


@dataclass
class _Syllable:
    start: int  # first sample of the syllable (consonant onset, if any)
    nucleus: int  # first sample of the vowel
    end: int  # one past the last sample of the vowel
    vowel: int
    consonant: int  # -1 none, 0.. fricative index, len(_FRICATIVES) stop
    stressed: bool
    phrase_start: int
    phrase_final: bool


def _plan(p: dict[str, float], n: int, sr: int, rng: np.random.Generator) -> list[_Syllable]:
    """Lay out syllables, grouped in phrases with pauses between them, over ``n`` samples."""
    lead = int(rng.uniform(0.04, 0.12) * sr)
    tail = int(rng.uniform(0.05, 0.12) * sr)
    syllables: list[_Syllable] = []
    t = lead
    mean_dur = 1.0 / p["rate"]
    while True:
        size = int(rng.integers(2, 6))
        stress_at = int(rng.integers(0, size))
        phrase_start = t
        phrase: list[_Syllable] = []
        for j in range(size):
            dur = mean_dur * float(np.exp(rng.normal(0.0, 0.18))) * (1.25 if j == stress_at else 1.0)
            cons = int(rng.integers(0, len(_FRICATIVES) + 1)) if rng.random() < 0.7 else -1
            cons_dur = 0.0 if cons < 0 else dur * rng.uniform(0.2, 0.32)
            d, c = int(dur * sr), int(cons_dur * sr)
            if t + d > n - tail:  # shorten a last syllable that almost fits, else stop
                d = n - tail - t if n - tail - t >= 0.6 * d else 0
                c = min(c, d // 3)
            if d <= 0:
                break
            vowel = int(rng.integers(0, len(_VOWELS)))
            phrase.append(_Syllable(t, t + c, t + d, vowel, cons, j == stress_at, phrase_start, False))
            t += d
        if not phrase:
            break
        phrase[-1].phrase_final = True
        syllables.extend(phrase)
        t += int(max(0.03, p["pause_s"] * float(np.exp(rng.normal(0.0, 0.3)))) * sr)
        if t >= n - tail:
            break
    if not syllables:  # very short durations: one syllable filling the middle
        syllables.append(_Syllable(lead, lead, max(lead + 1, n - tail), 4, -1, True, lead, True))
    return syllables


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    pad = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    c = np.cumsum(np.concatenate([[0.0], pad]))
    return (c[width:] - c[:-width]) / width


def _pitch_contour(p: dict[str, float], syllables: list[_Syllable], n: int, sr: int, rng) -> np.ndarray:
    """Semitone offset over time: accents, declination, in-syllable glides, phrase ends."""
    xs, ys = [], []
    for s in syllables:
        accent = p["range_st"] * (rng.uniform(0.6, 1.0) if s.stressed else rng.uniform(0.0, 0.35))
        mid = (s.nucleus + s.end) / 2.0
        base = accent + p["decl_st"] * (mid - s.phrase_start) / sr
        half = (s.end - s.nucleus) / (2.0 * sr)
        y0, y1 = base - p["glide_st"] * half, base + p["glide_st"] * half
        if s.phrase_final:
            y1 += p["final_st"]
        xs += [s.nucleus, s.end]
        ys += [y0, y1]
    contour = np.interp(np.arange(n), xs, ys)
    contour = _moving_average(contour, int(0.04 * sr))
    # a slow wobble (3-6 Hz, 0.3 semitones), as in natural voices
    t = np.arange(n) / sr
    contour += 0.3 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * t + rng.uniform(0, 2 * np.pi))
    return contour


def _glottal_source(p, f0: np.ndarray, sr: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Differentiated Rosenberg pulse train with jitter and shimmer, and the pulse itself."""
    n_periods = int(np.sum(f0) / sr * 1.2) + 4
    jitter = 1.0 + p["jitter"] * rng.standard_normal(n_periods)
    shimmer = np.exp(p["shimmer"] * rng.standard_normal(n_periods))
    phase = np.cumsum(f0) / sr
    k = np.minimum(phase.astype(np.int64), n_periods - 1)
    phase = np.cumsum(f0 * jitter[k]) / sr  # per-cycle F0 perturbation
    k = np.minimum(phase.astype(np.int64), n_periods - 1)
    frac = phase - np.floor(phase)
    tn = p["open_q"] * p["closing"]
    tp = p["open_q"] - tn
    opening = 0.5 * (1.0 - np.cos(np.pi * np.minimum(frac / tp, 1.0)))
    closing = np.cos(0.5 * np.pi * np.clip((frac - tp) / tn, 0.0, 1.0))
    pulse = np.where(frac < tp, opening, np.where(frac < tp + tn, closing, 0.0)) * shimmer[k]
    flow_derivative = np.diff(pulse, prepend=0.0) * (sr / 200.0)
    return flow_derivative, pulse


@lru_cache(maxsize=64)
def _bandpass(low: float, high: float, sr: int) -> np.ndarray:
    high = min(high, 0.45 * sr)
    low = min(low, 0.6 * high)
    return signal.butter(4, [low, high], btype="bandpass", fs=sr, output="sos")


@lru_cache(maxsize=8)
def _highpass(cutoff: float, sr: int) -> np.ndarray:
    return signal.butter(2, cutoff, btype="highpass", fs=sr, output="sos")


def _resonate(x: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of second-order resonators with unity gain at DC."""
    for f, bw in zip(formants, bandwidths, strict=True):
        if f >= 0.45 * sr:
            continue
        r = np.exp(-np.pi * bw / sr)
        c = 2.0 * r * np.cos(2.0 * np.pi * f / sr)
        x = signal.lfilter([1.0 - c + r * r], [1.0, -c, r * r], x)
    return x


def _envelope(length: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(length)
    attack, release = min(attack, length // 2), min(release, length // 2)
    if attack > 0:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release > 0:
        env[length - release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    return env


def _check_label(label) -> str:
    if label not in CLASSES:
        raise ConfigError(f"label must be one of {list(CLASSES)}; Received: label={label!r}")
    return label


def synthesize_utterance(
    label: str,
    speaker: SpeakerProfile | int | str,
    rng: np.random.Generator,
    *,
    sample_rate: int = SAMPLE_RATE,
    duration: float | None = None,
) -> np.ndarray:
    """Synthesize one speech-like utterance of ``label`` spoken by ``speaker``.

    Parameters
    ----------
    label : str
        One of :data:`CLASSES`.
    speaker : SpeakerProfile or int or str
        A profile, a speaker number (``3``) or id (``"spk03"``); see :func:`speaker_profile`.
    rng : numpy.random.Generator
        Source of all randomness; the same generator state gives the same samples.
    sample_rate : int, default 16000
        Output rate in Hz, 8000 to 96000.
    duration : float or None, default None
        Length in seconds (0.3 to 60); ``None`` draws one in 1.2-2.5 s from ``rng``.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono waveform, ``n = round(duration * sample_rate)``, finite, peak-normalized to an
        emotion- and speaker-dependent level between -20 and -1 dBFS (never clips).

    Raises
    ------
    ConfigError
        For an unknown label or speaker, a bad ``rng``, ``sample_rate`` or ``duration``.
    """
    label = _check_label(label)
    spk = _as_profile(speaker)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator; Received: rng={rng!r}")
    sr = check_int("sample_rate", sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    if duration is None:
        duration = float(rng.uniform(*DURATION_RANGE))
    elif (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float, np.floating, np.integer))
        or not np.isfinite(duration)
        or not MIN_DURATION <= duration <= MAX_DURATION
    ):
        raise ConfigError(
            f"duration must be a number of seconds between {MIN_DURATION} and {MAX_DURATION} or None; "
            f"Received: duration={duration!r}"
        )
    n = int(round(float(duration) * sr))
    p = _draw_params(label, spk, rng)
    syllables = _plan(p, n, sr, rng)

    # Source: glottal pulses along the pitch contour, tilt, pitch-synchronous aspiration.
    semitones = p["pitch_st"] + _pitch_contour(p, syllables, n, sr, rng)
    f0 = np.clip(spk.f0 * 2.0 ** (semitones / 12.0), 50.0, 500.0)
    voiced, pulse = _glottal_source(p, f0, sr, rng)
    voiced = signal.lfilter([1.0 - p["tilt"]], [1.0, -p["tilt"]], voiced)
    noise = signal.sosfilt(_highpass(800.0, sr), rng.standard_normal(n))
    aspiration = noise * (0.25 + 0.75 * pulse)
    scale_asp = p["breath"] * np.std(voiced) / max(np.std(aspiration), 1e-12)
    source = voiced + scale_asp * aspiration

    # Filter: one resonator cascade per syllable nucleus, overlap-added with envelopes.
    out = np.zeros(n)
    warm = int(0.02 * sr)
    fscale = np.array([p["f1"], p["f2"], 1.0, 1.0, 1.0]) * spk.formant_scale
    bandwidths = _BANDWIDTHS * p["bw"]
    for s in syllables:
        formants = _VOWELS[s.vowel] * fscale * np.exp(rng.normal(0.0, 0.04, 5))
        lo = max(0, s.nucleus - warm)
        seg = _resonate(source[lo : s.end], formants, bandwidths, sr)[s.nucleus - lo :]
        length = s.end - s.nucleus
        gain = 10.0 ** ((p["stress_db"] if s.stressed else rng.uniform(-1.5, 0.0)) / 20.0)
        if s.phrase_final:
            gain *= 10.0 ** (-2.0 / 20.0)
        env = _envelope(length, int(rng.uniform(0.012, 0.03) * sr), int(rng.uniform(0.03, 0.07) * sr))
        out[s.nucleus : s.end] += gain * env * seg
    vowel_rms = np.sqrt(np.mean(out[out != 0.0] ** 2)) if np.any(out) else 1.0

    # Consonants: fricative noise bands or a stop (closure + burst) before the vowel.
    for s in syllables:
        length = s.nucleus - s.start
        if length < 8 or s.consonant < 0:
            continue
        burst = rng.standard_normal(length)
        if s.consonant < len(_FRICATIVES):
            low, high, level = _FRICATIVES[s.consonant]
            sos = _bandpass(low * spk.formant_scale, high * spk.formant_scale, sr)
            burst = signal.sosfilt(sos, burst) * _envelope(length, length // 3, length // 3)
        else:  # stop: silent closure, then a short burst
            level = -16.0
            b = min(length, int(rng.uniform(0.008, 0.016) * sr))
            burst[: length - b] = 0.0
            burst = signal.sosfilt(_highpass(1500.0, sr), burst)
            burst[length - b :] *= np.exp(-np.arange(b) / max(1.0, b / 3.0))
        rms = max(np.sqrt(np.mean(burst**2)), 1e-12)
        level += p["level_db"] / 4.0  # louder speech: slightly stronger consonants
        out[s.start : s.nucleus] += burst / rms * vowel_rms * 10.0 ** (level / 20.0)

    # Level: peak at the drawn level, plus a little background noise (SNR 30-45 dB).
    peak = float(np.max(np.abs(out))) or 1.0
    target = 10.0 ** (p["level_db"] / 20.0)
    out *= target / peak
    hum = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    hum *= np.sqrt(np.mean(out**2)) * 10.0 ** (-rng.uniform(30.0, 45.0) / 20.0) / np.std(hum)
    out += hum
    out *= target / float(np.max(np.abs(out)))
    return out.astype(np.float32)
