"""Utterance functionals and the linear head fused with the CNN.

The CNN reads a 64-band log-mel spectrogram in 2-second crops: it hears timbre and its
local changes well, but the harmonics that carry pitch are not resolved by 64 mel bands,
and no crop spans the whole utterance. The classic acoustic descriptors of emotional
speech (Schuller et al.; Eyben et al., eGeMAPS, 2016) are the other way round: statistics
(*functionals*) over the whole utterance of pitch, loudness and spectral shape. The two
disagree in useful ways, so the model of ``ser`` adds one to the other:

- :func:`utterance_functionals`: :data:`N_FUNCTIONALS` numbers per recording, computed with
  librosa from the waveform (no external tool): mean, spread, percentiles, range and slope of
  F0 in semitones (YIN), of its change, of frame loudness and its change, of the spectral
  centroid, flatness, roll-off, alpha ratio (1-5 kHz against 50 Hz-1 kHz) and flux over the
  active frames; means and spreads of MFCC 1-13 and spreads of their deltas; the active
  and voiced fractions, onsets per second and active duration; the spectral envelope band by
  band (mean and spread of 26 log-mel bands), the share of the energy in 5 frequency bands,
  the zero-crossing rate, the lengths and rate of the active stretches and the loudness
  range and rises; all of them of the recording
  brought to a fixed speech level (:func:`ser.features.normalize_level`), so they do not
  change with the recording gain; and last the speech level itself. See
  :data:`FUNCTIONAL_NAMES`.
- :class:`FunctionalsHead`: multinomial logistic regression on the standardised
  functionals, in two variants: one on features standardised with the training corpus's
  statistics (used for a single recording; it leaves out the speech level, which says more
  about the microphone than about the emotion), and one on features standardised *per
  speaker*, where the level says how loud a recording is against the speaker's others (used when several recordings of the speaker are known: the recipe's
  speaker-adapted scores and ``ser classify --same-speaker``; like the batch-norm
  adaptation of :mod:`ser.adaptation`, it is label-free, and erases what is constant within
  a speaker).
- The model's score is the weighted geometric mean of the two experts' probabilities,
  ``softmax(w log p_cnn + (1 - w) log p_functionals)`` (:func:`fuse`), with one CNN weight
  ``w`` for each variant, chosen by the training run on its validation speakers
  (:func:`choose_fusion_weight`; heads saved before that use 0.5). The attention maps explain
  the CNN's part of it.

The regressions are fitted on the training recordings and on copies of them at other speeds
(:func:`speed_perturbed`, ``model.functionals_speeds``), so they see each emotion at more voices.

On RAVDESS (actor-independent 6-fold, level-normalised input, seed 0, 2026-11-29) this lifts UA
from 0.598 (the CNN alone) to 0.660 for single recordings and from 0.639 to 0.743 with the
speaker's other recordings; see ``recipes/ravdess/README.md``. ``model.functionals = false`` in a recipe turns it off.
"""

from __future__ import annotations

import math

import numpy as np

from ser.errors import ConfigError, ModelError

#: Part of the feature cache key: bump it whenever :func:`utterance_functionals` changes.
FUNCTIONALS_VERSION = 3

#: Inverse L2 strength of both logistic regressions (scikit-learn's ``C``). Chosen on the
#: RAVDESS *validation* actors of each fold (0.01-1 tried; 0.03 is within 0.01 of the best
#: fused validation UA of both variants), never on test folds.
DEFAULT_C = 0.03

#: Weight of the CNN in the geometric-mean fusion (the functionals get ``1 - weight``) of a
#: head whose weights were not chosen on validation speakers (heads saved before
#: 2026-11-28, and runs without validation speakers).
FUSION_WEIGHT = 0.5

#: The CNN weights tried when a run chooses them on its validation speakers
#: (:func:`choose_fusion_weight`).
FUSION_GRID = tuple(round(0.05 * i, 2) for i in range(21))

#: Standardised functionals are clipped to this many standard deviations before the
#: regression, so a recording far outside the training data (a near-silent window, another
#: recording level) cannot make the linear head arbitrarily confident. Training rows stay
#: within it (per speaker, ``|z| <= sqrt(n - 1)`` for n files: 7.7 for RAVDESS's 60).
Z_LIMIT = 10.0

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

#: Mel bands of the spectral envelope described band by band (version 3 on).
ENVELOPE_MELS = 26

_V1_NAMES = (
    [f"{c}_{s}" for c in _CONTOURS for s in _STATS]
    + [f"mfcc{i}_{s}" for i in range(1, 14) for s in ("mean", "std")]
    + [f"mfcc{i}_delta_std" for i in range(1, 14)]
    + ["active_fraction", "voiced_fraction", "onsets_per_second", "active_seconds"]
)
_V3_NAMES = (
    [f"mel{i}_{s}" for s in ("mean", "std") for i in range(1, ENVELOPE_MELS + 1)]
    + [f"band{lo}-{hi if hi else 'nyquist'}_share_{s}" for lo, hi in ENERGY_BANDS for s in ("mean", "std")]
    + ["zcr_mean", "zcr_std", "active_run_mean", "active_run_std", "active_runs_per_second"]
    + ["loudness_p95-p5", "loudness_rise_fraction"]
)

#: Names of the functionals, in the order :func:`utterance_functionals` returns them.
FUNCTIONAL_NAMES = tuple(_V1_NAMES + _V3_NAMES + ["speech_level_db"])

#: Functionals that depend on the recording gain (the last one, the speech level): the
#: global regression leaves them out; per speaker, standardisation cancels the gain.
GAIN_DEPENDENT = ("speech_level_db",)

#: Indices of the functionals the global (single-recording) regression uses.
GLOBAL_COLUMNS = np.array([i for i, name in enumerate(FUNCTIONAL_NAMES) if name not in GAIN_DEPENDENT])

#: Number of functionals per recording.
N_FUNCTIONALS = len(FUNCTIONAL_NAMES)

#: Versions of :func:`utterance_functionals` this ser computes, so a model saved with a head
#: of an earlier version keeps working: version 1 (until 2026-11-28) used the recording as it
#: was, without the level normalisation and the speech level (its first 106 functionals);
#: version 2 (2026-11-28) added the normalisation and the level (107); version 3 adds the
#: band-by-band spectral envelope, energy shares, zero-crossing rate and the rhythm of the
#: active stretches (176, the level last).
SUPPORTED_VERSIONS = (1, 2, 3)


def version_names(version: int) -> tuple[str, ...]:
    """Names of the functionals of a version (:data:`FUNCTIONAL_NAMES` for the current one)."""
    if version == 1:
        return tuple(_V1_NAMES)
    if version == 2:
        return tuple(_V1_NAMES + ["speech_level_db"])
    return FUNCTIONAL_NAMES


def _layout(version: int) -> tuple[int, np.ndarray]:
    """``(number of functionals, columns of the global regression)`` of a version."""
    names = version_names(version)
    return len(names), np.array([i for i, name in enumerate(names) if name not in GAIN_DEPENDENT])


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


def utterance_functionals(
    y: np.ndarray, sample_rate: int, *, version: int = FUNCTIONALS_VERSION
) -> np.ndarray:
    """The :data:`N_FUNCTIONALS` functionals of one recording (see :data:`FUNCTIONAL_NAMES`).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform, as :func:`ser.audio.load_audio` returns it; only its first
        :data:`MAX_SECONDS` are used.
    sample_rate : int
    version : int
        One of :data:`SUPPORTED_VERSIONS` (that of the head that will read them).

    Returns
    -------
    np.ndarray [shape=(N_FUNCTIONALS,), dtype=float32]
        Finite values (contours with fewer than two frames give zeros). All but the last,
        the speech level in dB full scale, are computed after bringing the recording to
        :data:`ser.features.DEFAULT_LEVEL_DB` and do not change with its gain.
    """
    import librosa

    from ser.features import DEFAULT_LEVEL_DB, normalize_level, speech_level

    y = np.asarray(y, dtype=np.float32)[: int(MAX_SECONDS * sample_rate)]
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(f"functionals version must be one of {SUPPORTED_VERSIONS}. Received: {version!r}")
    measured = speech_level(y, sample_rate)
    level = max(measured, -120.0)
    if version >= 2:
        y = normalize_level(y, sample_rate, DEFAULT_LEVEL_DB, level=measured)
    hop = max(1, int(round(0.010 * sample_rate)))
    win = max(2, int(round(0.025 * sample_rate)))
    n_fft = 1 << (win - 1).bit_length()
    f0_frame = 1 << int(math.ceil(math.log2(3 * sample_rate / F0_RANGE[0])))
    if y.size < f0_frame:
        y = np.pad(y, (0, f0_frame - y.size))
    rate = sample_rate / hop
    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win)) ** 2
    f0 = librosa.yin(
        y, fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=sample_rate, frame_length=f0_frame, hop_length=hop
    )
    n = min(power.shape[1], f0.size)
    power, f0 = power[:, :n], f0[:n]
    loudness = 10.0 * np.log10(power.mean(axis=0) + 1e-10)
    active = loudness > loudness.max() - ACTIVE_DB
    # Voiced: active frames whose YIN estimate is inside the search range (YIN returns the
    # range's bounds where it finds no period).
    voiced = active & (f0 > F0_RANGE[0] * 1.01) & (f0 < F0_RANGE[1] * 0.99)
    semitones = 12.0 * np.log2(f0[voiced] / 27.5)
    magnitude = np.sqrt(power)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=sample_rate, n_fft=n_fft)[0]
    flatness = np.log(librosa.feature.spectral_flatness(S=magnitude)[0] + 1e-10)
    rolloff = librosa.feature.spectral_rolloff(S=magnitude, sr=sample_rate, n_fft=n_fft)[0]
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    low = power[(freqs >= 50) & (freqs < 1000)].sum(axis=0)
    high = power[(freqs >= 1000) & (freqs < 5000)].sum(axis=0)
    alpha = 10.0 * np.log10((high + 1e-10) / (low + 1e-10))
    log_power = np.log(power + 1e-10)
    flux = np.sqrt((np.diff(log_power, axis=1) ** 2).mean(axis=0)) if n > 1 else np.zeros(0)
    n_mels = min(40, n_fft // 4)
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=n_mels)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=14)[1:]
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
    if version >= 3:
        out += _envelope_and_rhythm(y, sample_rate, power, loudness, active, freqs, rate, win, hop)
    if version >= 2:
        out.append(level)
    x = np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return x.astype(np.float32)


def _envelope_and_rhythm(y, sample_rate, power, loudness, active, freqs, rate, win, hop) -> list[float]:
    """The functionals version 3 adds (see ``_V3_NAMES``), over the active frames."""
    import librosa

    mel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=ENVELOPE_MELS))
    mel = mel[:, active]
    out = [float(v) for v in mel.mean(axis=1)] + [float(v) for v in mel.std(axis=1)]
    total = power.sum(axis=0)[active] + 1e-10
    for lo, hi in ENERGY_BANDS:
        in_band = (freqs >= lo) & ((freqs < hi) if hi else True)
        share = 10.0 * np.log10(power[in_band][:, active].sum(axis=0) / total + 1e-10)
        out += [float(share.mean()), float(share.std())]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=win, hop_length=hop)[0][: active.size]
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


#: The resampler of :func:`speed_perturbed` (librosa's ``res_type``); part of the name of the
#: cached functionals of perturbed copies, so a change of it is never read from a stale cache.
SPEED_RESAMPLER = "soxr_hq"


def speed_perturbed(y: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``y`` played ``factor`` times faster (Ko et al., 2015): resampled to
    ``sample_rate / factor`` and read at ``sample_rate``, so pitch, formants and tempo all
    move by ``factor``, much as they differ between speakers."""
    import librosa

    target = int(round(sample_rate / factor))
    y = np.asarray(y, dtype=np.float32)
    return librosa.resample(y, orig_sr=sample_rate, target_sr=target, res_type=SPEED_RESAMPLER).astype(
        np.float32
    )


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` over the rows of ``x``; constant columns get std 1."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


def speaker_standardize(x: np.ndarray, speakers) -> np.ndarray:
    """Each row standardised by the statistics of all rows of its speaker."""
    x = np.asarray(x, dtype=np.float64)
    speakers = np.asarray(speakers).astype(str)
    out = np.empty_like(x)
    for s in np.unique(speakers):
        idx = speakers == s
        mean, std = standardization(x[idx])
        out[idx] = (x[idx] - mean) / std
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _fit_logistic(z: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced multinomial logistic regression; classes absent from ``y`` get no probability."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((n_classes, z.shape[1]))
    intercept = np.full(n_classes, -30.0)
    present = np.unique(y)
    if present.size < 2:
        intercept[present] = 0.0
        return coef, intercept
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(z, y)
    if present.size == 2:  # scikit-learn keeps one row for two classes
        coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
        intercept[present[0]] = 0.0
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return coef, intercept


class FunctionalsHead:
    """Logistic regression on utterance functionals, global and per-speaker (see the module doc).

    Build it with :meth:`fit`; :meth:`to_dict` / :meth:`from_dict` store it in a model's
    metadata (``info["functionals"]``).
    """

    def __init__(
        self,
        mean,
        std,
        coef,
        intercept,
        speaker_mean=None,
        speaker_std=None,
        speaker_coef=None,
        speaker_intercept=None,
        version: int = FUNCTIONALS_VERSION,
        weight: float = FUSION_WEIGHT,
        speaker_weight: float | None = None,
    ):
        #: The version of :func:`utterance_functionals` the head reads (:meth:`functionals`).
        self.version = int(version)
        #: The CNN's weight in :meth:`fuse` for a single recording, and with a speaker
        #: reference (the per-speaker regression).
        self.weight = float(weight)
        self.speaker_weight = float(weight if speaker_weight is None else speaker_weight)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.speaker = None
        if speaker_coef is not None:
            self.speaker = (
                np.asarray(speaker_mean, dtype=np.float64),
                np.asarray(speaker_std, dtype=np.float64),
                np.asarray(speaker_coef, dtype=np.float64),
                np.asarray(speaker_intercept, dtype=np.float64),
            )

    @property
    def n_classes(self) -> int:
        return int(self.coef.shape[0])

    def functionals(self, y: np.ndarray, sample_rate: int) -> np.ndarray:
        """:func:`utterance_functionals` of a waveform, in the version this head reads."""
        return utterance_functionals(y, sample_rate, version=self.version)

    @classmethod
    def fit(
        cls, x, y, speakers, n_classes: int, *, c: float = DEFAULT_C, min_files: int | None = None
    ) -> FunctionalsHead:
        """Fit both regressions on training recordings.

        Parameters
        ----------
        x : np.ndarray [shape=(n, N_FUNCTIONALS) or (n, 1 + m, N_FUNCTIONALS)]
            The recordings' functionals; in the 3-d form, ``x[:, 0]`` are the recordings'
            and ``x[:, j]`` those of a perturbed copy of each (``model.functionals_speeds``):
            every copy is a training row with its recording's label, and for the
            per-speaker regression copy ``j`` of a speaker is a speaker of its own.
        y : np.ndarray [shape=(n,)] of int
        speakers : sequence of str
            One per recording. The per-speaker regression uses the speakers with at least
            ``min_files`` recordings (default :data:`ser.adaptation.MIN_ADAPTATION_FILES`);
            with none, the head has no per-speaker variant.
        n_classes : int
        """
        from ser.adaptation import MIN_ADAPTATION_FILES

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        if x.ndim == 3 and x.shape[0] == y.shape[0]:
            copies = x.shape[1]
            speakers = np.asarray(speakers).astype(str)
            speakers = np.concatenate(
                [speakers] + [np.char.add(speakers, f"\x1fcopy{j}") for j in range(1, copies)]
            )
            x = np.concatenate([x[:, j] for j in range(copies)])
            y = np.tile(y, copies)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ConfigError(
                f"functionals must be (n, d) with one label per row. Received: {x.shape} and {y.shape}"
            )
        if x.shape[1] != N_FUNCTIONALS:
            raise ConfigError(f"expected {N_FUNCTIONALS} functionals per row. Received: {x.shape[1]}")
        g = x[:, GLOBAL_COLUMNS]
        mean, std = standardization(g)
        coef, intercept = _fit_logistic((g - mean) / std, y, n_classes, c)
        speakers = np.asarray(speakers).astype(str)
        names, counts = np.unique(speakers, return_counts=True)
        keep = np.isin(speakers, names[counts >= (MIN_ADAPTATION_FILES if min_files is None else min_files)])
        speaker_parts = {}
        if keep.any():
            z = speaker_standardize(x[keep], speakers[keep])
            s_mean, s_std = standardization(z)
            s_coef, s_intercept = _fit_logistic((z - s_mean) / s_std, y[keep], n_classes, c)
            speaker_parts = {
                "speaker_mean": s_mean,
                "speaker_std": s_std,
                "speaker_coef": s_coef,
                "speaker_intercept": s_intercept,
            }
        return cls(mean, std, coef, intercept, **speaker_parts)

    def log_probabilities(self, x, reference: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Log class probabilities ``(n, n_classes)`` of functionals ``x`` ``(n, N_FUNCTIONALS)``.

        ``reference``: ``(mean, std)`` of the speaker's functionals (:func:`standardization`
        over several of their recordings); then the per-speaker regression is used, if the
        head has one.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n, columns = _layout(self.version)
        if x.shape[1] != n:
            raise ModelError(
                f"the model's functionals head expects {n} functionals per recording; "
                f"received {x.shape[1]} (features of another version of ser?)"
            )
        if reference is not None and self.speaker is not None:
            s_mean, s_std, coef, intercept = self.speaker
            z = ((x - reference[0]) / reference[1] - s_mean) / s_std
        else:
            z = (x[:, columns] - self.mean) / self.std
            coef, intercept = self.coef, self.intercept
        return _log_softmax(np.clip(z, -Z_LIMIT, Z_LIMIT) @ coef.T + intercept)

    def fuse(self, cnn_logits, x, reference: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The model's fused logits: the CNN's with this head's on functionals ``x`` (:func:`fuse`).

        With a ``reference`` (see :meth:`log_probabilities`) and a per-speaker regression, the
        per-speaker regression and :attr:`speaker_weight`; otherwise :attr:`weight`.
        """
        return fuse(cnn_logits, self.log_probabilities(x, reference), self.weight_for(reference))

    def weight_for(self, reference) -> float:
        """The CNN's weight in :meth:`fuse` with this ``reference`` (or None)."""
        return self.speaker_weight if reference is not None and self.speaker is not None else self.weight

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists of floats)."""
        d = {
            "version": self.version,
            "weight": self.weight,
            "speaker_weight": self.speaker_weight,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }
        if self.speaker is not None:
            for key, value in zip(
                ("speaker_mean", "speaker_std", "speaker_coef", "speaker_intercept"),
                self.speaker,
                strict=True,
            ):
                d[key] = value.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FunctionalsHead:
        """Inverse of :meth:`to_dict`; raises :class:`ModelError` on a malformed or newer head."""
        try:
            version = d.get("version")
            if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
                raise ModelError(
                    f"functionals head of version {version!r}; this ser reads versions "
                    f"{', '.join(map(str, SUPPORTED_VERSIONS))} (a model from a newer ser?)"
                )
            keys = ("speaker_mean", "speaker_std", "speaker_coef", "speaker_intercept")
            head = cls(
                d["mean"],
                d["std"],
                d["coef"],
                d["intercept"],
                **{k: d[k] for k in keys if k in d},
                version=version,
                weight=d.get("weight", FUSION_WEIGHT),
                speaker_weight=d.get("speaker_weight"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed functionals head in the model ({exc})") from None
        if not all(0.0 <= w <= 1.0 for w in (head.weight, head.speaker_weight)):
            raise ModelError(
                f"malformed functionals head in the model (fusion weights {head.weight}, "
                f"{head.speaker_weight}; expected numbers in [0, 1])"
            )
        k, dims = head.coef.shape if head.coef.ndim == 2 else (0, 0)
        arrays = [(head.mean, (dims,)), (head.std, (dims,)), (head.intercept, (k,))]
        full, columns = _layout(head.version)
        if head.speaker is not None:
            arrays += list(zip(head.speaker, [(full,), (full,), (k, full), (k,)], strict=True))
        if (
            dims != columns.size
            or any(a.shape != shape for a, shape in arrays)
            or not all(np.all(np.isfinite(a)) for a, _ in [*arrays, (head.coef, None)])
            or np.any(head.std <= 0)
        ):
            raise ModelError(f"malformed functionals head in the model (shape {head.coef.shape})")
        return head


def fuse(
    cnn_logits: np.ndarray, functional_log_probs: np.ndarray, weight: float = FUSION_WEIGHT
) -> np.ndarray:
    """Fused logits: ``weight * log_softmax(cnn) + (1 - weight) * log p_functionals``.

    Their softmax is the normalised weighted geometric mean of the two experts' probabilities.
    """
    return weight * _log_softmax(cnn_logits) + (1.0 - weight) * np.asarray(
        functional_log_probs, dtype=np.float64
    )


def speaker_log_probabilities(
    head: FunctionalsHead, x, speakers, *, min_files: int | None = None
) -> np.ndarray:
    """Log-probabilities with each speaker's own functionals as the reference (label-free).

    Speakers with fewer than ``min_files`` rows (default
    :data:`ser.adaptation.MIN_ADAPTATION_FILES`) get the global regression.
    """
    from ser.adaptation import MIN_ADAPTATION_FILES

    min_files = MIN_ADAPTATION_FILES if min_files is None else min_files
    x = np.asarray(x, dtype=np.float64)
    speakers = np.asarray(speakers).astype(str)
    out = np.zeros((x.shape[0], head.n_classes))
    for s in np.unique(speakers):
        idx = speakers == s
        reference = standardization(x[idx]) if idx.sum() >= min_files else None
        out[idx] = head.log_probabilities(x[idx], reference)
    return out


def choose_fusion_weight(cnn_logits, functional_log_probs, y) -> float:
    """The CNN weight of :data:`FUSION_GRID` whose fusion best predicts ``y``.

    Meant for validation speakers only: the CNN's logits and the log-probabilities of a head
    fitted without them. "Best" is the lowest class-balanced cross-entropy of the fused
    probabilities (the mean over the classes of ``-log p(true class)`` of their files): a
    proper score that uses every file's probabilities, so it is steadier on a small validation
    set than the count of right answers. Ties go to the weight nearest
    :data:`FUSION_WEIGHT` (equal weights); with fewer than two classes, equal weights.
    """
    y = np.asarray(y)
    present = np.unique(y)
    if present.size < 2:
        return FUSION_WEIGHT
    best, best_loss = FUSION_WEIGHT, math.inf
    for w in sorted(FUSION_GRID, key=lambda w: (abs(w - FUSION_WEIGHT), w)):
        log_p = _log_softmax(fuse(cnn_logits, functional_log_probs, w))
        loss = float(np.mean([-log_p[y == c, c].mean() for c in present]))
        if loss < best_loss - 1e-12:
            best, best_loss = w, loss
    return best
