"""What a loaded model takes: audio in, features out (KerasHub's Preprocessor role).

:func:`audio_source` is the one place a path or an array (with its sample rate) becomes
audio at the model's rate, with its validation and one-line errors; classification, the
attention maps and the speaker reference all read their input through it.
:func:`model_features` is the one place a waveform becomes the model's input, so
classification and the attention maps always see the same features, and the same as
training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser.audio import (
    AudioInfo,
    audio_info,
    is_silent,
    iter_audio_blocks,
    load_audio,
    prepare_waveform,
    read_mono,
)
from ser.constants import MIN_DURATION, SILENCE_PEAK
from ser.errors import AudioError, ConfigError, SerError
from ser.features import logmel, model_input
from ser.normalization import normalize

#: A speaker-reference recording (``--same-speaker``) longer than this (seconds) takes part in
#: the adaptation with its first this-many seconds that are not silent, so memory stays bounded.
REFERENCE_MAX_SECONDS = 60.0


def silent_error(name: str | None, span: tuple[float, float] | None = None) -> AudioError:
    """The error for silent audio (or a silent ``span`` of it, in seconds).

    Parameters
    ----------
    name : str or None
        The file, or None for an array.
    span : tuple of float or None
        ``(start, end)`` in seconds where a range was asked for.
    """
    where, expected = ("silent", "a recording of speech")
    if span is not None:
        where, expected = f"silent from {span[0]:g} to {span[1]:g} s", "a range holding speech"
    return AudioError(
        f"{name or '<array>'}: {where} (no sample above {20 * math.log10(SILENCE_PEAK):.0f} dB full "
        f"scale); expected {expected}"
    )


def error_text(name: str, exc: Exception) -> str:
    """An error's message without the file name it starts with (the caller names the file)."""
    message = str(exc)
    for prefix in (f"{name}: ", f"{Path(name)}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def read_frames(path: str, a: int, b: int) -> np.ndarray:
    """Samples ``a:b`` of a file, mixed to mono at the file's rate.

    Seeks and reads only the range, a few channels' worth at a time
    (:func:`ser.audio.read_mono`).

    Raises
    ------
    AudioError
        The file cannot be decoded.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            f.seek(a)
            return read_mono(f, b - a)
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioError(f"{path}: cannot decode audio ({reason}); expected a complete audio file") from None


@dataclass(frozen=True, eq=False)
class AudioSource:
    """One input, checked: a file (read when asked) or a waveform at the model's rate.

    Made by :func:`audio_source`.

    Attributes
    ----------
    name : str or None
        The file, or None for an array.
    rate : int
        The model's sample rate (Hz): what every read returns.
    duration : float
        Seconds of audio (a file's as it holds it; an array's after conversion).
    info : AudioInfo or None
        The file's header (None for an array).
    samples : np.ndarray [shape=(n,), dtype=float32] or None
        The array, mono at ``rate`` (None for a file).
    """

    name: str | None
    rate: int
    duration: float
    info: AudioInfo | None = None
    samples: np.ndarray | None = None

    @property
    def label(self) -> str:
        """What error messages call the input: the file, or ``<array>``."""
        return self.name or "<array>"

    def no_longer_than(self, seconds: float) -> bool:
        """Whether the input lasts at most ``seconds`` (an array: counted in samples)."""
        if self.samples is not None:
            return self.samples.size <= seconds * self.rate
        return self.duration <= seconds

    def waveform(self) -> np.ndarray:
        """All of it, mono float32 at :attr:`rate` (a file of any length: see ``max_duration``
        of :func:`ser.audio.load_audio`)."""
        if self.samples is not None:
            return self.samples
        return load_audio(self.name, self.rate, max_duration=None)

    def blocks(self, block_seconds: float) -> Iterable[np.ndarray]:
        """Consecutive pieces of the waveform: a file streamed ``block_seconds`` at a time
        (:func:`ser.audio.iter_audio_blocks`), an array in one piece."""
        if self.samples is not None:
            return [self.samples]
        return iter_audio_blocks(self.name, self.rate, block_seconds=block_seconds)

    def read_range(self, t0: float, t1: float) -> tuple[np.ndarray, float, float]:
        """Seconds ``t0`` to ``t1`` (already checked against :attr:`duration`).

        Returns
        -------
        y : np.ndarray [shape=(n,), dtype=float32]
            Mono at :attr:`rate`; a file's range is read alone (seek, then read).
        t0, t1 : float
            The range read, its end rounded to the samples of the input.
        """
        if self.samples is not None:
            a, b = int(round(t0 * self.rate)), min(self.samples.size, int(round(t1 * self.rate)))
            return self.samples[a:b], t0, t0 + (b - a) / self.rate
        info = self.info
        a = int(round(t0 * info.sample_rate))
        b = min(info.frames, int(round(t1 * info.sample_rate)))
        y = read_frames(info.path, a, b)
        # the range was checked by the caller; rounding its ends to samples may cost it one
        # sample (the extra half keeps floating-point error on the right side)
        shortest = MIN_DURATION - 1.5 / info.sample_rate
        y = prepare_waveform(y, info.sample_rate, self.rate, name=info.path, min_duration=shortest)
        return y, t0, t0 + (b - a) / info.sample_rate


def audio_source(audio, sample_rate: int | None, rate: int) -> AudioSource:
    """Check one input (a file path, or samples with their sample rate) for a model at ``rate``.

    A file's header is read (:func:`ser.audio.audio_info`), its samples only when asked for;
    an array is converted at once (:func:`ser.audio.prepare_waveform`).

    Parameters
    ----------
    audio : str, PathLike or np.ndarray [shape=(n,) or (n, channels)]
    sample_rate : int or None
        Rate of an array in Hz (required); None for a file (its rate is read from it).
    rate : int
        The model's sample rate.

    Returns
    -------
    AudioSource

    Raises
    ------
    ConfigError
        A file with a ``sample_rate``, an array without one, or neither a path nor an array.
    AudioError
        A missing or unreadable file; an empty, too short or non-finite array.
    """
    if isinstance(audio, (str, os.PathLike)):
        if sample_rate is not None:
            raise ConfigError(
                f"sample_rate is for arrays; a file's rate is read from the file. Received: sample_rate={sample_rate}"
            )
        info = audio_info(audio)
        return AudioSource(name=str(audio), rate=rate, duration=info.duration, info=info)
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ConfigError("sample_rate is required when audio is an array. Received: sample_rate=None")
        y = prepare_waveform(audio, sample_rate, rate)
        return AudioSource(name=None, rate=rate, duration=y.size / rate, samples=y)
    raise ConfigError(
        f"audio must be a file path or a numpy array of samples. Received: {type(audio).__name__}"
    )


def reference_audio(audio, rate: int, sample_rate: int | None = None) -> tuple[np.ndarray, bool]:
    """A speaker-reference recording at ``rate``, and whether it was cut.

    A file longer than :data:`REFERENCE_MAX_SECONDS` gives its first that-many seconds that
    are not silent (then the flag is True), so memory stays bounded whatever the files'
    length; a shorter file, or an array, gives all of it.

    Parameters
    ----------
    audio : str, PathLike or np.ndarray
    rate : int
        The model's sample rate.
    sample_rate : int or None
        Rate of array inputs (not used for files).
    """
    source = audio_source(audio, sample_rate if isinstance(audio, np.ndarray) else None, rate)
    if source.info is None or source.duration <= REFERENCE_MAX_SECONDS:
        return source.waveform(), False
    cap, first = int(REFERENCE_MAX_SECONDS * rate), None
    for block in source.blocks(REFERENCE_MAX_SECONDS):
        block = block[:cap]
        first = block if first is None else first
        if not is_silent(block):
            return block, True
    return first, True


def model_features(classifier, waveform: np.ndarray, *, trim: bool = True) -> np.ndarray:
    """The features a classifier's model takes for one waveform.

    The log-mel of :func:`ser.features.logmel` with the model's frontend settings, trimmed of
    leading and trailing silence (:func:`ser.features.model_input`), then normalised by
    :func:`ser.normalization.normalize` with the model's ``normalization``: by the waveform's
    own statistics ("utterance"; also "speaker" without a speaker reference, an
    approximation) or by the speaker reference's ("speaker" after
    :meth:`ser.classifier.EmotionClassifier.set_speaker_reference`). "global" normalisation
    is inside the model.

    Parameters
    ----------
    classifier : EmotionClassifier
        What is read of it: ``frontend``, ``normalization`` and ``speaker_reference``.
    waveform : np.ndarray [shape=(n,)]
        Mono float32 at ``classifier.sample_rate``.
    trim : bool
        Drop leading and trailing silence as training did (:func:`ser.features.trim_silence`);
        sliding windows pass ``False`` so their timeline stays exact.

    Returns
    -------
    np.ndarray [shape=(frames, n_mels), dtype=float32]
    """
    if trim:
        features = model_input(waveform, classifier.frontend)
    else:
        features = logmel(waveform, classifier.frontend)
    return normalize([features], None, classifier.normalization, reference=classifier.speaker_reference)[0]


def band_limit_note(frontend, path, rate: int) -> str | None:
    """A note for a file recorded at a rate too low for the model's mel bands, else None.

    A file at 8 kHz holds nothing above 4 kHz, where a model of the default frontend has
    mel bands up to 8 kHz: it is classified all the same (resampled), but those bands are
    empty, as they never were in training.

    Parameters
    ----------
    frontend : FrontendConfig
        The model's.
    path : str or PathLike
    rate : int
        The file's sample rate.
    """
    fmax = float(frontend.fmax)
    if rate / 2 >= 0.95 * fmax:
        return None
    return (
        f"note: {path}: recorded at {rate} Hz, so nothing above {rate / 2000:g} kHz; the model hears "
        f"up to {fmax / 1000:g} kHz and was trained on full-band audio: expect lower accuracy"
    )


def audio_notes(frontend, path) -> list[str]:
    """Notes about a file that is classified all the same: cut short (see
    :meth:`ser.audio.AudioInfo.truncation_note`) or band-limited (:func:`band_limit_note`).
    No notes for a file that cannot be read (the caller reports its error)."""
    try:
        info = audio_info(path)
    except SerError:
        return []
    notes = [info.truncation_note(), band_limit_note(frontend, path, info.sample_rate)]
    return [n for n in notes if n is not None]
