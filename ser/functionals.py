"""Utterance functionals: statistics over a whole recording of pitch, loudness and spectral shape.

The CNN reads a 64-band log-mel spectrogram in 2-second crops: it hears timbre and its
local changes well, but the harmonics that carry pitch are not resolved by 64 mel bands,
and no crop spans the whole utterance. The classic acoustic descriptors of emotional
speech (Schuller et al.; Eyben et al., eGeMAPS, 2016) are the other way round: statistics
(*functionals*) over the whole utterance of pitch, loudness and spectral shape.

:func:`utterance_functionals` computes :data:`N_FUNCTIONALS` numbers per recording from the
waveform (with :mod:`ser.dsp`, no external tool): mean, spread, percentiles, range and slope of
F0 in semitones (YIN), of its change, of frame loudness and its change, of the spectral
centroid, flatness, roll-off, alpha ratio (1-5 kHz against 50 Hz-1 kHz) and flux over the
active frames; means and spreads of MFCC 1-13 and spreads of their deltas; the active and
voiced fractions, onsets per second and active duration; the spectral envelope band by band
(mean and spread of 26 log-mel bands), the share of the energy in 5 frequency bands, the
zero-crossing rate, the lengths and rate of the active stretches and the loudness range and
rises; all of them of the recording brought to a fixed speech level
(:func:`ser.features.normalize_level`), so they do not change with the recording gain; and
last the speech level itself. See :data:`FUNCTIONAL_NAMES`.

The linear head that reads them and its fusion with the CNN are in :mod:`ser.fusion`.
"""

from __future__ import annotations

import math

import numpy as np

from ser import dsp
from ser.features import DEFAULT_LEVEL_DB, normalize_level, speech_level

#: Part of the feature cache key and of a saved functionals head (:class:`ser.fusion.FunctionalsHead`):
#: bump it whenever :func:`utterance_functionals` changes.
FUNCTIONALS_VERSION = 3

#: Lowest and highest F0 searched (Hz): a low male voice to a high-pitched child or shout.
F0_RANGE = (60.0, 500.0)

#: Frames quieter than the loudest frame by more than this (dB) are not "active".
ACTIVE_DB = 35.0

#: Functionals describe at most this many seconds from the start of a recording (an
#: utterance is shorter; a long speaker-reference file is summarised by its first part), so
#: memory stays bounded (YIN alone holds a 1,024-sample frame per 10 ms hop).
MAX_SECONDS = 30.0

_STATS = ("mean", "std", "p20", "p50", "p80", "p80-p20", "slope")
_CONTOURS = (
    "f0_st",
    "f0_delta",
    "loudness",
    "loudness_delta",
    "centroid",
    "flatness",
    "rolloff",
    "alpha_ratio",
    "flux",
)

#: Bands (Hz) whose share of a frame's energy is described (the last one ends at Nyquist).
ENERGY_BANDS = ((0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, None))

#: Mel bands of the spectral envelope described band by band.
ENVELOPE_MELS = 26

_CONTOUR_NAMES = (
    [f"{c}_{s}" for c in _CONTOURS for s in _STATS]
    + [f"mfcc{i}_{s}" for i in range(1, 14) for s in ("mean", "std")]
    + [f"mfcc{i}_delta_std" for i in range(1, 14)]
    + ["active_fraction", "voiced_fraction", "onsets_per_second", "active_seconds"]
)
_ENVELOPE_NAMES = (
    [f"mel{i}_{s}" for s in ("mean", "std") for i in range(1, ENVELOPE_MELS + 1)]
    + [f"band{lo}-{hi if hi else 'nyquist'}_share_{s}" for lo, hi in ENERGY_BANDS for s in ("mean", "std")]
    + ["zcr_mean", "zcr_std", "active_run_mean", "active_run_std", "active_runs_per_second"]
    + ["loudness_p95-p5", "loudness_rise_fraction"]
)

#: Names of the functionals, in the order :func:`utterance_functionals` returns them.
FUNCTIONAL_NAMES = tuple(_CONTOUR_NAMES + _ENVELOPE_NAMES + ["speech_level_db"])

#: Functionals that depend on the recording gain (the last one, the speech level): the
#: global regression leaves them out; per speaker, standardisation cancels the gain.
GAIN_DEPENDENT = ("speech_level_db",)

#: Indices of the functionals the global (single-recording) regression uses.
GLOBAL_COLUMNS = np.array([i for i, name in enumerate(FUNCTIONAL_NAMES) if name not in GAIN_DEPENDENT])

#: Number of functionals per recording.
N_FUNCTIONALS = len(FUNCTIONAL_NAMES)


def _stats(v: np.ndarray, rate: float) -> list[float]:
    """Mean, std, 20/50/80th percentiles, 80-20 range and slope (per second) of a contour."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return [0.0] * len(_STATS)
    p20, p50, p80 = np.percentile(v, [20, 50, 80])
    t = np.arange(v.size) / rate
    t = t - t.mean()
    slope = float((t * (v - v.mean())).sum() / max((t * t).sum(), 1e-12))
    return [float(v.mean()), float(v.std()), float(p20), float(p50), float(p80), float(p80 - p20), slope]


def utterance_functionals(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """The :data:`N_FUNCTIONALS` functionals of one recording (see :data:`FUNCTIONAL_NAMES`).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform, as :func:`ser.audio.load_audio` returns it; only its first
        :data:`MAX_SECONDS` are used.
    sample_rate : int

    Returns
    -------
    np.ndarray [shape=(N_FUNCTIONALS,), dtype=float32]
        Finite values (contours with fewer than two frames give zeros). All but the last,
        the speech level in dB full scale, are computed after bringing the recording to
        :data:`ser.features.DEFAULT_LEVEL_DB` and do not change with its gain.
    """
    y = np.asarray(y, dtype=np.float32)[: int(MAX_SECONDS * sample_rate)]
    measured = speech_level(y, sample_rate)
    level = max(measured, -120.0)
    y = normalize_level(y, sample_rate, DEFAULT_LEVEL_DB, level=measured)
    hop = max(1, int(round(0.010 * sample_rate)))
    win = max(2, int(round(0.025 * sample_rate)))
    n_fft = 1 << (win - 1).bit_length()
    f0_frame = 1 << int(math.ceil(math.log2(3 * sample_rate / F0_RANGE[0])))
    if y.size < f0_frame:
        y = np.pad(y, (0, f0_frame - y.size))
    rate = sample_rate / hop
    power = np.abs(dsp.stft(y, n_fft, hop, win)) ** 2
    f0 = dsp.yin(y, F0_RANGE[0], F0_RANGE[1], sample_rate, f0_frame, hop)
    n = min(power.shape[1], f0.size)
    power, f0 = power[:, :n], f0[:n]
    loudness = 10.0 * np.log10(power.mean(axis=0) + 1e-10)
    active = loudness > loudness.max() - ACTIVE_DB
    # Voiced: active frames whose YIN estimate is inside the search range (YIN returns the
    # range's bounds where it finds no period).
    voiced = active & (f0 > F0_RANGE[0] * 1.01) & (f0 < F0_RANGE[1] * 0.99)
    semitones = 12.0 * np.log2(f0[voiced] / 27.5)
    magnitude = np.sqrt(power)
    centroid = dsp.spectral_centroid(magnitude, sample_rate, n_fft)
    flatness = np.log(dsp.spectral_flatness(magnitude) + 1e-10)
    rolloff = dsp.spectral_rolloff(magnitude, sample_rate, n_fft)
    freqs = dsp.fft_frequencies(sample_rate, n_fft)
    low = power[(freqs >= 50) & (freqs < 1000)].sum(axis=0)
    high = power[(freqs >= 1000) & (freqs < 5000)].sum(axis=0)
    alpha = 10.0 * np.log10((high + 1e-10) / (low + 1e-10))
    log_power = np.log(power + 1e-10)
    flux = np.sqrt((np.diff(log_power, axis=1) ** 2).mean(axis=0)) if n > 1 else np.zeros(0)
    n_mels = min(40, n_fft // 4)
    mel = dsp.mel_filterbank(sample_rate, n_fft, n_mels) @ power
    mfcc = dsp.mfcc(dsp.power_to_db(mel), 14)[1:]
    d_active = active[1:] & active[:-1]

    out: list[float] = []
    out += _stats(semitones, rate)
    out += _stats(np.diff(semitones), rate)
    out += _stats(loudness[active], rate)
    out += _stats(np.diff(loudness)[d_active], rate)
    for contour in (centroid, flatness, rolloff, alpha):
        out += _stats(contour[active], rate)
    out += _stats(flux[d_active], rate)
    for c in mfcc:
        out += [float(c[active].mean()), float(c[active].std())]
    d_mfcc = np.diff(mfcc, axis=1)
    for c in d_mfcc:
        out += [float(c[d_active].std()) if d_active.any() else 0.0]
    onsets = int(np.sum(np.diff(voiced.astype(np.int8)) == 1))
    seconds = n / rate
    out += [
        float(active.mean()),
        float(voiced.mean()),
        onsets / max(seconds, 0.1),
        float(active.sum()) / rate,
    ]
    out += _envelope_and_rhythm(y, sample_rate, power, loudness, active, freqs, rate, win, hop)
    out.append(level)
    x = np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return x.astype(np.float32)


def _envelope_and_rhythm(y, sample_rate, power, loudness, active, freqs, rate, win, hop) -> list[float]:
    """The spectral envelope and rhythm functionals (``_ENVELOPE_NAMES``), over the active frames."""
    n_fft = 2 * (power.shape[0] - 1)
    mel = dsp.power_to_db(dsp.mel_filterbank(sample_rate, n_fft, ENVELOPE_MELS) @ power)
    mel = mel[:, active]
    out = [float(v) for v in mel.mean(axis=1)] + [float(v) for v in mel.std(axis=1)]
    total = power.sum(axis=0)[active] + 1e-10
    for lo, hi in ENERGY_BANDS:
        in_band = (freqs >= lo) & ((freqs < hi) if hi else True)
        share = 10.0 * np.log10(power[in_band][:, active].sum(axis=0) / total + 1e-10)
        out += [float(share.mean()), float(share.std())]
    zcr = dsp.zero_crossing_rate(y, win, hop)[: active.size]
    zcr = zcr[active[: zcr.size]]
    out += [float(zcr.mean()), float(zcr.std())] if zcr.size else [0.0, 0.0]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = (edges[1::2] - edges[::2]) / rate
    out += [float(runs.mean()), float(runs.std()), runs.size / max(active.size / rate, 0.1)]
    spoken = loudness[active]
    out += [
        float(np.percentile(spoken, 95) - np.percentile(spoken, 5)),
        float(np.mean(np.diff(spoken) > 3.0)) if spoken.size > 1 else 0.0,
    ]
    return out
