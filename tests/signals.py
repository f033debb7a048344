"""Test signals shared by several test modules."""

from __future__ import annotations

import numpy as np


def speaking_tone(t: np.ndarray, pitch: float = 150.0) -> np.ndarray:
    """A unit sine at a speaking pitch that moves as a voice's does (5 Hz vibrato, +-10%):
    periodic, so :func:`ser.features.voiced_fraction` counts it as voiced; a steady tone
    would count as hum, not speech."""
    return np.sin(2 * np.pi * pitch * t + 3.0 * np.sin(2 * np.pi * 5.0 * t))


def random_features(rng, lengths, n_mels=8, offset=0.0, scale=1.0) -> list[np.ndarray]:
    """Log-mel-like float32 matrices ``(t, n_mels)`` for each ``t`` of ``lengths``."""
    return [(offset + scale * rng.standard_normal((t, n_mels))).astype(np.float32) for t in lengths]
