"""Training-time augmentation: speed perturbation, SpecAugment and mixup.

Only training uses these; a model classifies a recording as it is.
"""

from __future__ import annotations

import numbers

import numpy as np

from ser.errors import ConfigError

#: The resampler of :func:`speed_perturbed` (librosa's ``res_type``); part of the name of the
#: cached features and functionals of perturbed copies, so a change of it is never read from
#: a stale cache.
SPEED_RESAMPLER = "soxr_hq"


def speed_factors(name: str, speeds) -> tuple:
    """``speeds`` checked as a setting of speed-perturbation factors.

    Parameters
    ----------
    name : str
        The setting's name for the error message (``model.functionals_speeds``,
        ``training.speeds``).
    speeds : list or tuple or np.ndarray of float

    Returns
    -------
    tuple of float

    Raises
    ------
    ConfigError
        Not a sequence of distinct numbers from 0.5 to 2 other than 1.
    """
    if (
        not isinstance(speeds, (list, tuple, np.ndarray))
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in speeds)
        or not all(0.5 <= v <= 2.0 and v != 1.0 for v in speeds)
        or len(set(speeds)) != len(speeds)
    ):
        raise ConfigError(
            f"{name} must be a list of distinct speed factors from 0.5 to 2, other than 1 "
            f"(e.g. [0.9, 1.1], or [] for none). Received: {name}={speeds!r}"
        )
    return tuple(float(v) for v in speeds)


def speed_perturbed(y: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``y`` played ``factor`` times faster (Ko et al., 2015).

    Resampled to ``sample_rate / factor`` and read at ``sample_rate``, so pitch, formants and
    tempo all move by ``factor``, much as they differ between speakers.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sample_rate : int
    factor : float

    Returns
    -------
    np.ndarray [shape=(about n / factor,), dtype=float32]
    """
    import librosa

    target = int(round(sample_rate / factor))
    y = np.asarray(y, dtype=np.float32)
    return librosa.resample(y, orig_sr=sample_rate, target_sr=target, res_type=SPEED_RESAMPLER).astype(
        np.float32
    )


def spec_augment(
    x: np.ndarray, rng: np.random.Generator, *, freq_masks=2, freq_width=8, time_masks=2, time_width=20
) -> np.ndarray:
    """SpecAugment-style masking of one crop, in place: masked cells are set to the crop mean.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, n_mels)]
    rng : np.random.Generator
    freq_masks, time_masks : int
        Masks of each kind.
    freq_width, time_width : int
        Largest mask widths in mel bands and frames (a time mask spans at most a fifth of
        the crop).

    Returns
    -------
    np.ndarray
        ``x`` itself.
    """
    t, f = x.shape
    fill = float(x.mean())
    for _ in range(freq_masks):
        w = int(rng.integers(0, freq_width + 1))
        if w and f > w:
            s = int(rng.integers(0, f - w))
            x[:, s : s + w] = fill
    for _ in range(time_masks):
        w = int(rng.integers(0, min(time_width, max(t // 5, 1)) + 1))
        if w and t > w:
            s = int(rng.integers(0, t - w))
            x[s : s + w, :] = fill
    return x


def mixup(x, mask, targets, weights, rng: np.random.Generator, alpha: float):
    """Blend each crop of a batch with another one of the same batch (mixup).

    Each crop ``i`` gets ``lam_i ~ Beta(alpha, alpha)`` and becomes
    ``lam_i * x_i + (1 - lam_i) * x_j`` for a random partner ``j``; its soft target and
    sample weight are blended the same way. Where only one of the two crops has real frames
    (a short utterance's zero padding), that crop's frames are kept as they are.

    Parameters
    ----------
    x : np.ndarray [shape=(batch, frames, n_mels)]
    mask : np.ndarray [shape=(batch, frames)]
    targets : np.ndarray [shape=(batch, n_classes)]
    weights : np.ndarray [shape=(batch,)]
    rng : np.random.Generator
    alpha : float

    Returns
    -------
    x, mask, targets, weights : the blended batch (new arrays)
    """
    n = len(x)
    lam = rng.beta(alpha, alpha, size=n).astype(np.float32)
    j = rng.permutation(n)
    both = (mask * mask[j])[:, :, None]
    a = lam[:, None, None] * both + mask[:, :, None] * (1 - both)
    b = (1 - lam)[:, None, None] * both + mask[j][:, :, None] * (1 - both)
    x = a * x + b * x[j]
    mask = np.maximum(mask, mask[j])
    targets = lam[:, None] * targets + (1 - lam)[:, None] * targets[j]
    weights = lam * weights + (1 - lam) * weights[j]
    return x.astype(np.float32), mask, targets.astype(np.float32), weights
