"""Long audio: the one windowing of ``ser classify`` and ``ser attention``.

Audio up to :data:`WHOLE_MAX_DURATION` seconds is classified in one pass. Longer audio, or
any audio when a window is asked for, is cut into windows of :data:`DEFAULT_WINDOW` seconds
every :data:`DEFAULT_HOP` seconds (:func:`check_window`, :func:`iter_windows`), read block by
block (memory stays bounded for a file of any length) and run through the model
:data:`BATCH_WINDOWS` windows at a time (fewer, long ones: :data:`BATCH_SECONDS`)
(:func:`window_probabilities`). A recording's scores are the mean of its windows'
probabilities over those that hold speech (:func:`window_vote`). The attention maps of a long
range are drawn from consecutive windows (:func:`consecutive_bounds`), so that every frame is
drawn once; their label is the vote above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ser.audio import is_silent
from ser.constants import MAX_LOAD_DURATION, MIN_DURATION
from ser.errors import ConfigError
from ser.features import MIN_VOICED_FRACTION, voiced_fraction
from ser.preprocessor import silent_error

#: Audio up to this long (seconds) is classified whole; longer audio in sliding windows.
WHOLE_MAX_DURATION = 12.0

#: Sliding-window length in seconds (about one emotional utterance).
DEFAULT_WINDOW = 4.0

#: Hop between sliding windows in seconds (windows overlap by half).
DEFAULT_HOP = 2.0

#: Windows run through the model together.
BATCH_WINDOWS = 16

#: Seconds of audio run through the model together at most: fewer than
#: :data:`BATCH_WINDOWS` windows when they are longer than :data:`DEFAULT_WINDOW`, so memory
#: does not grow with ``--window``.
BATCH_SECONDS = BATCH_WINDOWS * DEFAULT_WINDOW

#: Longest window (seconds) and so the longest audio classified in one pass: the model holds
#: a window whole in memory, as ``ser attention`` draws at most this much.
MAX_WINDOW = MAX_LOAD_DURATION

#: Seconds of audio read from disk at a time when streaming a long file.
STREAM_BLOCK_SECONDS = 30.0


def _speech_mask(voiced) -> np.ndarray:
    """Which of ``voiced`` (:func:`ser.features.voiced_fraction` of each window, or of a
    whole recording) hold speech: at least :data:`ser.features.MIN_VOICED_FRACTION`."""
    return np.asarray(voiced, dtype=np.float64) >= MIN_VOICED_FRACTION


def holds_speech(voiced) -> bool:
    """Whether any of ``voiced`` (see :func:`_speech_mask`) holds speech."""
    return bool(_speech_mask(voiced).any())


def counted_windows(voiced) -> np.ndarray:
    """Which windows of a recording count toward its label (a boolean mask).

    Those that hold speech, at least :data:`ser.features.MIN_VOICED_FRACTION` of their frames
    voiced (``voiced``: each window's :func:`ser.features.voiced_fraction`). Pauses and noise
    are still classified and listed, but do not vote: every window is brought to speech
    level before it is classified, so noise would otherwise vote like speech. Voicing, unlike
    loudness, does not leave out a speaker's ordinary speech beside their shouting. Where no
    window holds speech, all count (the prediction says there is no speech).
    """
    mask = _speech_mask(voiced)
    return mask if mask.any() else np.ones_like(mask)


def window_vote(probs, voiced) -> np.ndarray:
    """A recording's probabilities from its windows': the mean over those that count
    (:func:`counted_windows`), renormalised.

    Parameters
    ----------
    probs : array-like [shape=(windows, n_classes)]
    voiced : array-like [shape=(windows,)]

    Returns
    -------
    np.ndarray [shape=(n_classes,), dtype=float64]
    """
    probs = np.asarray(probs, dtype=np.float64)
    mean = probs[counted_windows(voiced)].mean(axis=0)
    return mean / mean.sum()


def _check_seconds(name: str, value) -> None:
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number of seconds. Received: {name}={value!r}")


def check_window(window: float | None, hop: float | None) -> tuple[float, float]:
    """Validate sliding-window settings and fill in the defaults.

    A window without a hop hops by half a window (at least 0.1 s); a hop without a window uses
    :data:`DEFAULT_WINDOW`. The hop may not exceed the window, so windows cover the audio, and
    the window may not exceed :data:`MAX_WINDOW`, so memory stays bounded. Both are at least
    0.1 s (:data:`ser.constants.MIN_DURATION`): the shortest audio classified, and at most ten
    windows a second.

    Returns
    -------
    window, hop : float
        In seconds.

    Raises
    ------
    ConfigError
        A value that is not a positive number, or out of the bounds above.
    """
    _check_seconds("window", window)
    _check_seconds("hop", hop)
    if window is None:
        window = DEFAULT_WINDOW
        hop = DEFAULT_HOP if hop is None else hop
    elif hop is None:
        hop = max(window / 2.0, MIN_DURATION)
    if window < MIN_DURATION:
        raise ConfigError(f"window must be at least {MIN_DURATION} s. Received: window={window}")
    if window > MAX_WINDOW:
        raise ConfigError(
            f"window must be at most {MAX_WINDOW:.0f} s (each window is classified in one pass, "
            f"in memory). Received: window={window:g}"
        )
    if hop < MIN_DURATION:
        # (a hop of 1 ms would classify an hour-long file as 3.6 million windows)
        raise ConfigError(f"hop must be at least {MIN_DURATION} s. Received: hop={hop:g}")
    if hop > window:
        raise ConfigError(
            f"hop must not exceed the window, or audio between windows is never heard. "
            f"Received: window={window}, hop={hop}"
        )
    return float(window), float(hop)


def iter_windows(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a stream of sample blocks into windows, keeping only what the next window needs.

    Windows of ``window`` samples start every ``hop`` samples; if they do not reach the end
    of the stream, one more full-length window is aligned with the end. A stream shorter
    than one window gives a single window holding all of it.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,)]
        Consecutive pieces of one waveform (e.g. :func:`ser.audio.iter_audio_blocks`).
    window, hop : int
        In samples, ``0 < hop <= window``.

    Yields
    ------
    start : int
        First sample of the window.
    samples : np.ndarray [shape=(window,) or shorter for the single short window]
    """
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # stream position of buf[0]
    next_start = 0
    covered = 0  # end of the last window yielded
    total = 0
    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        total += len(block)
        while next_start + window <= total:
            i = next_start - buf_start
            yield next_start, buf[i : i + window].copy()
            covered = next_start + window
            next_start += hop
        # keep what the next window needs, and the last `window` samples for an end-aligned one
        drop = min(next_start, total - window) - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    if total > covered:
        start = max(0, total - window)
        yield start, buf[start - buf_start :].copy()


@dataclass(frozen=True)
class WindowScores:
    """What :func:`window_probabilities` returns: one row per window, in time order.

    Attributes
    ----------
    starts, ends : list of int
        Each window's span in samples.
    probs : np.ndarray [shape=(windows, n_classes)]
    voiced : list of float
        Each window's :func:`ser.features.voiced_fraction`.
    """

    starts: list
    ends: list
    probs: np.ndarray
    voiced: list

    @property
    def end(self) -> int:
        """The last sample heard: the length of the audio."""
        return max(self.ends)

    def vote(self) -> np.ndarray:
        """The recording's probabilities (:func:`window_vote`)."""
        return window_vote(self.probs, self.voiced)

    def counted(self) -> np.ndarray:
        """Which windows vote (:func:`counted_windows`)."""
        return counted_windows(self.voiced)


def window_probabilities(
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    window: float,
    hop: float,
    probabilities: Callable[[list[np.ndarray]], np.ndarray],
    *,
    name: str | None = None,
) -> WindowScores:
    """Run the sliding windows of a stream through a model, a bounded batch at a time.

    Windows are batched :data:`BATCH_WINDOWS` at a time, fewer where that would exceed
    :data:`BATCH_SECONDS` of audio (a window longer than that goes alone).

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,)]
        Consecutive pieces of one waveform at ``sample_rate``.
    sample_rate : int
    window, hop : float
        In seconds (checked by :func:`check_window`).
    probabilities : callable
        ``probabilities(waveforms) -> np.ndarray [shape=(len(waveforms), n_classes)]``.
    name : str or None
        What the error for silent audio calls it (None: an array).

    Returns
    -------
    WindowScores

    Raises
    ------
    AudioError
        No window holds a sample above :data:`ser.constants.SILENCE_PEAK`.
    """
    win_n = max(1, int(round(window * sample_rate)))
    hop_n = max(1, int(round(hop * sample_rate)))
    starts, ends, probs, voiced = [], [], [], []
    batch: list[tuple[int, np.ndarray]] = []

    def flush():
        probs.extend(probabilities([w for _, w in batch]))
        starts.extend(s for s, _ in batch)
        ends.extend(s + w.size for s, w in batch)
        voiced.extend(voiced_fraction(w, sample_rate) for _, w in batch)
        batch.clear()

    heard = False
    for start, w in iter_windows(blocks, win_n, hop_n):
        heard = heard or not is_silent(w)
        if batch and sum(b.size for _, b in batch) + w.size > BATCH_SECONDS * sample_rate:
            flush()
        batch.append((start, w))
        if len(batch) == BATCH_WINDOWS:
            flush()
    if batch:
        flush()
    if not heard:
        raise silent_error(name)
    return WindowScores(starts=starts, ends=ends, probs=np.asarray(probs), voiced=voiced)


def consecutive_bounds(n_samples: int, step: int) -> list[int]:
    """Bounds of consecutive windows of ``step`` samples covering ``n_samples``.

    A remainder shorter than half a step joins the last window rather than stand alone.

    Returns
    -------
    list of int
        ``[0, step, 2 * step, ..., n_samples]``: window ``i`` is ``bounds[i]:bounds[i + 1]``.
    """
    bounds = list(range(0, n_samples, step))
    if len(bounds) > 1 and n_samples - bounds[-1] < step // 2:
        bounds.pop()
    bounds.append(n_samples)
    return bounds
