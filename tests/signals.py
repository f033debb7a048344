"""Test signals shared by several test modules."""

from __future__ import annotations

import numpy as np


def speaking_tone(t: np.ndarray, pitch: float = 150.0) -> np.ndarray:
    """A unit sine at a speaking pitch that moves as a voice's does (5 Hz vibrato, +-10%):
    periodic, so :func:`ser.features.voiced_fraction` counts it as voiced; a steady tone
    would count as hum, not speech."""
    return np.sin(2 * np.pi * pitch * t + 3.0 * np.sin(2 * np.pi * 5.0 * t))
