"""Feature statistics and the label-free standardisations, with one dispatch.

A model is trained and run on log-mel features normalised one of :data:`NORMALIZATIONS`
ways (``features.normalization`` of a recipe, ``info["normalization"]`` of a saved model):

- ``"global"``: the features as they are; the model standardises them with the statistics of
  its training data (:class:`ser.layers.FeatureNormalization`);
- ``"utterance"``: each utterance by its own per-band mean and variance;
- ``"speaker"``: each utterance by the statistics of all files of its speaker (no label is
  used; beware a speaker recorded in a single emotion, whose emotion is then erased).

:func:`normalize` is the one place training and inference choose among them, and
:func:`standardize` the one place they do the arithmetic, so both standardise identically.
The utterance functionals have their own row statistics (:func:`standardization`,
:func:`speaker_standardize`), in float64 and without the variance floor of the log-mel bands.
"""

from __future__ import annotations

import numpy as np

from ser.errors import ConfigError

#: The feature normalisations a recipe can ask for and a model can hold (see the module doc).
NORMALIZATIONS = ("global", "utterance", "speaker")


def feature_stats(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and variance over all frames of ``features``.

    Parameters
    ----------
    features : list of np.ndarray [shape=(frames, n_mels)]

    Returns
    -------
    mean, variance : np.ndarray [shape=(n_mels,), dtype=float32]
        The variance is floored at 1e-6, so silence and constant bands standardise to zeros.

    Raises
    ------
    ConfigError
        ``features`` is empty.
    """
    if not features:
        raise ConfigError("feature_stats needs at least one feature matrix")
    total = sum(f.shape[0] for f in features)
    s = np.zeros(features[0].shape[1], dtype=np.float64)
    ss = np.zeros_like(s)
    for f in features:
        f64 = f.astype(np.float64)
        s += f64.sum(axis=0)
        ss += (f64**2).sum(axis=0)
    mean = s / total
    var = np.maximum(ss / total - mean**2, 1e-6)
    return mean.astype(np.float32), var.astype(np.float32)


def standardize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Shift and scale every mel band: ``(features - mean) / std`` as float32.

    Parameters
    ----------
    features : np.ndarray [shape=(frames, n_mels)]
    mean, std : np.ndarray [shape=(n_mels,)]

    Returns
    -------
    np.ndarray [shape=(frames, n_mels), dtype=float32]
    """
    return ((features - mean) / std).astype(np.float32)


def standardize_utterance(features: np.ndarray) -> np.ndarray:
    """Standardise each mel band of one utterance by its own mean and variance over frames.

    Parameters
    ----------
    features : np.ndarray [shape=(frames, n_mels)]

    Returns
    -------
    np.ndarray [shape=(frames, n_mels), dtype=float32]
    """
    mean, var = feature_stats([features])
    return standardize(features, mean, np.sqrt(var))


def _speaker_rows(speakers) -> dict[str, np.ndarray]:
    """Per speaker (sorted by name), the indices of its rows."""
    speakers = np.asarray(speakers).astype(str)
    return {s: np.flatnonzero(speakers == s) for s in np.unique(speakers)}


def speaker_normalize(features: list[np.ndarray], speakers) -> list[np.ndarray]:
    """Standardise each utterance with label-free statistics of its own speaker's files.

    Every band is shifted and scaled by the mean and standard deviation over all frames of
    all files of the same speaker (:func:`feature_stats`), so a test speaker's statistics
    come only from that speaker's own (unlabelled) audio.

    Parameters
    ----------
    features : list of np.ndarray [shape=(frames, n_mels)]
    speakers : sequence of str, one per utterance

    Returns
    -------
    list of np.ndarray [dtype=float32], same shapes

    Raises
    ------
    ConfigError
        ``features`` and ``speakers`` differ in length.
    """
    if len(features) != len(speakers):
        raise ConfigError(f"got {len(features)} feature matrices but {len(speakers)} speakers")
    out: list = [None] * len(features)
    for rows in _speaker_rows(speakers).values():
        mean, var = feature_stats([features[i] for i in rows])
        for i in rows:
            out[i] = standardize(features[i], mean, np.sqrt(var))
    return out


def normalize(features: list[np.ndarray], speakers, mode: str, *, reference=None) -> list[np.ndarray]:
    """The normalisation ``mode`` (one of :data:`NORMALIZATIONS`) of a list of utterances.

    Parameters
    ----------
    features : list of np.ndarray [shape=(frames, n_mels)]
    speakers : sequence of str or None
        One per utterance, for ``"speaker"`` without a ``reference``; ``None`` then
        standardises each utterance by its own statistics (an approximation, as at inference
        without a speaker reference).
    mode : str
    reference : (mean, std) or None
        Per-band statistics of the speaker's recordings (:func:`feature_stats`): with
        ``"speaker"``, every utterance is standardised by them.

    Returns
    -------
    list of np.ndarray [shape=(frames, n_mels)]
        ``features`` itself for ``"global"``; new float32 arrays otherwise.

    Raises
    ------
    ConfigError
        An unknown ``mode``, or ``speakers`` of another length than ``features``.
    """
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}. Received: {mode!r}")
    if mode == "global":
        return features
    if mode == "speaker" and reference is not None:
        return [standardize(f, *reference) for f in features]
    if mode == "speaker" and speakers is not None:
        return speaker_normalize(features, list(speakers))
    return [standardize_utterance(f) for f in features]


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` over the rows of ``x`` in float64; constant columns get std 1.

    Parameters
    ----------
    x : np.ndarray [shape=(n, d)]

    Returns
    -------
    mean, std : np.ndarray [shape=(d,), dtype=float64]
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


def speaker_standardize(x: np.ndarray, speakers) -> np.ndarray:
    """Each row standardised by the statistics (:func:`standardization`) of its speaker's rows.

    Parameters
    ----------
    x : np.ndarray [shape=(n, d)]
    speakers : sequence of str, one per row

    Returns
    -------
    np.ndarray [shape=(n, d), dtype=float64]
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for rows in _speaker_rows(speakers).values():
        mean, std = standardization(x[rows])
        out[rows] = (x[rows] - mean) / std
    return out
