"""Audio input: any file soundfile reads -> mono float32 at the model rate.

Everything that reads audio in ``ser`` goes through this module, so every caller gets the
same validation and the same one-line :class:`~ser.errors.AudioError` messages, each naming
the file and what was expected.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser.constants import MAX_LOAD_DURATION, MIN_DURATION, SAMPLE_RATE, SILENCE_PEAK
from ser.errors import AudioError

#: Sample rates accepted from files and arrays, in Hz (telephone 8 kHz to studio 96 kHz,
#: with some headroom on both sides).
MIN_INPUT_RATE = 4000
MAX_INPUT_RATE = 192000

#: Largest sample magnitude accepted (60 dB above full scale). Float files may exceed 1 a
#: little; values far beyond are a corrupted file or unscaled data, and would overflow the
#: spectrogram's float32 power.
MAX_PEAK = 1000.0

#: Samples (frames x channels) read from a file at a time, mixed to mono as they are read: the
#: memory a file takes is that of its mono waveform, whatever its channel count (a 12 s file
#: of 1024 channels at 192 kHz would otherwise be read as 9 GB of float32).
READ_SAMPLES = 1 << 20


def is_silent(y: np.ndarray) -> bool:
    """Whether no sample of ``y`` is above :data:`ser.constants.SILENCE_PEAK` in magnitude.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)]
        A waveform (any shape; an empty one is silent).

    Returns
    -------
    bool
    """
    return not np.any(np.abs(y) > SILENCE_PEAK)


def _check_peak(y: np.ndarray, name: str) -> None:
    peak = float(np.max(np.abs(y), initial=0.0))
    if peak > MAX_PEAK:
        raise AudioError(
            f"{name}: samples reach {peak:.3g} ({20 * np.log10(peak):.0f} dB above full scale); "
            "expected audio scaled to about -1..1 (a corrupted file or unscaled float data?)"
        )


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says (see :func:`audio_info`)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    #: Frames the header promises where the file holds fewer (cut short, e.g. by an
    #: interrupted copy); None otherwise. ``frames`` is what the file holds.
    promised_frames: int | None = None

    @property
    def duration(self) -> float:
        """Length in seconds (of the audio the file holds)."""
        return self.frames / float(self.sample_rate)

    def truncation_note(self) -> str | None:
        """A one-line note for a file cut short, else None."""
        if self.promised_frames is None:
            return None
        return (
            f"note: {self.path}: cut short: its header promises {self.promised_frames / self.sample_rate:.2f} s, "
            f"the file holds {self.duration:.2f} s (an interrupted copy?); using what is there"
        )


def read_mono(f: sf.SoundFile, frames: int | None = None) -> np.ndarray:
    """Read ``frames`` frames (None: to the end) of an open file from where it stands, mixed
    to mono float32 in pieces of at most :data:`READ_SAMPLES` samples, so memory stays that
    of the mono result. Fewer frames come back where the file ends first."""
    step = max(1, READ_SAMPLES // max(1, f.channels))
    parts = []
    remaining = frames
    while remaining is None or remaining > 0:
        n = step if remaining is None else min(step, remaining)
        data = f.read(n, dtype="float32", always_2d=True)
        if data.shape[0] == 0:
            break
        parts.append(data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32))
        if remaining is not None:
            remaining -= data.shape[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _promised_frames(info) -> int | None:
    """Frames a WAV header promises beyond what the file holds (libsndfile's "should be")."""
    found = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", getattr(info, "extra_info", ""), re.M)
    if found is None:
        return None
    header, actual = int(found.group(1)), int(found.group(2))
    # 0 and 0xFFFFFFFF-like sizes are streaming writers' placeholders, not a cut
    if not 0 < actual < header < 0xFFFFFF00:
        return None
    promised = int(round(info.frames * header / actual))
    return promised if promised > info.frames else None


def _check_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking it names a non-empty regular file."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AudioError(f"{p}: file not found; expected an audio file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(f"{p}: symbolic link loop; expected an audio file") from None
        raise AudioError(f"{p}: cannot open ({exc.strerror}); expected an audio file") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{p}: is a directory; expected an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{p}: is not a regular file; expected an audio file")
    if st.st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes); expected audio")
    return p


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read and check the header of an audio file.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile reads (wav, flac, ogg, aiff, mp3, ...).

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        Missing file, directory, empty file, not audio, no frames, unsupported rate.
    """
    p = _check_path(path)
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile reports every unreadable file its own way
        reason = " ".join(str(exc).split()) or type(exc).__name__
        # libsndfile's "Error opening '/the/whole/path': Format not recognised." names the file again
        reason = re.sub(r"^Error opening .*?: ", "", reason) or reason
        raise AudioError(
            f"{p}: not a readable audio file ({reason}); expected wav, flac, ogg or "
            "another format libsndfile reads"
        ) from None
    if info.frames <= 0:
        raise AudioError(f"{p}: contains no audio frames; expected at least {MIN_DURATION} s")
    if not MIN_INPUT_RATE <= info.samplerate <= MAX_INPUT_RATE:
        raise AudioError(
            f"{p}: sample rate {info.samplerate} Hz; expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz"
        )
    return AudioInfo(
        path=str(p),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
        promised_frames=_promised_frames(info),
    )


def prepare_waveform(
    y: np.ndarray,
    sample_rate: int,
    target_rate: int = SAMPLE_RATE,
    *,
    name: str = "<array>",
    min_duration: float = MIN_DURATION,
    frames_first: bool = False,
) -> np.ndarray:
    """Check a waveform array and convert it to mono float32 at ``target_rate``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n, channels)]
        Samples; integer arrays are scaled to [-1, 1] by their dtype's range.
    sample_rate : int
        Rate of ``y`` in Hz.
    target_rate : int
        Rate of the result in Hz.
    name : str
        What to call the input in error messages (usually its file name).
    min_duration : float
        Shortest accepted duration in seconds.
    frames_first : bool
        ``y`` is known to be ``(frames, channels)`` (as soundfile reads it); otherwise a 2-D
        array with at most 32 rows and more columns is taken as ``(channels, frames)``.

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]
    """
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        info = np.iinfo(y.dtype)
        y = (y.astype(np.float64) - (info.max + info.min + 1) / 2.0) / ((info.max - info.min + 1) / 2.0)
    elif y.dtype.kind != "f":
        raise AudioError(f"{name}: samples of dtype {y.dtype}; expected integer or float samples")
    if y.ndim not in (1, 2):
        raise AudioError(f"{name}: array of shape {y.shape}; expected (samples,) or (samples, channels)")
    if not isinstance(sample_rate, (int, np.integer)) or not MIN_INPUT_RATE <= sample_rate <= MAX_INPUT_RATE:
        raise AudioError(
            f"{name}: sample rate {sample_rate!r}; expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz"
        )
    if y.size == 0:
        raise AudioError(f"{name}: contains no audio samples; expected at least {min_duration} s")
    if y.ndim == 2:
        # (frames, channels) as soundfile returns it; a (channels, frames) array with few
        # rows and many columns is transposed, as librosa users often pass it that way.
        if not frames_first and y.shape[0] < y.shape[1] and y.shape[0] <= 32:
            y = y.T
        y = y.mean(axis=1)
    if not np.all(np.isfinite(y)):
        bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
        raise AudioError(f"{name}: contains {bad} NaN or infinite samples; expected finite audio")
    _check_peak(y, name)
    duration = y.size / float(sample_rate)
    if duration < min_duration:
        raise AudioError(
            f"{name}: too short ({duration * 1000:.0f} ms); expected at least {min_duration * 1000:.0f} ms"
        )
    y = y.astype(np.float32, copy=False)
    if sample_rate != target_rate:
        # The resampler's ringing overshoots clipped (full-scale) input by a few percent;
        # clip it back so audio in [-1, 1] stays in [-1, 1].
        limit = max(1.0, float(np.max(np.abs(y))))
        y = soxr.resample(y, int(sample_rate), int(target_rate), quality="HQ").astype(np.float32, copy=False)
        y = np.clip(y, -limit, limit)
    return np.ascontiguousarray(y)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    min_duration: float = MIN_DURATION,
    max_duration: float | None = MAX_LOAD_DURATION,
) -> np.ndarray:
    """Load an audio file as mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile reads: wav (int16/24/32, float32/64), flac, ogg, ...; 4-192 kHz;
        any number of channels (averaged to mono).
    sample_rate : int
        Rate of the result in Hz (resampled with soxr, high quality).
    min_duration : float
        Shorter files raise :class:`AudioError`.
    max_duration : float or None
        Longer files raise :class:`AudioError` instead of filling memory; use
        :func:`iter_audio_blocks` for them. ``None`` disables the check.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        Silence is valid and returned as zeros.
    """
    info = audio_info(path)
    if max_duration is not None and info.duration > max_duration:
        raise AudioError(
            f"{info.path}: too long to load whole ({info.duration:.0f} s); expected at most "
            f"{max_duration:.0f} s (cut it into utterances to train on it; `ser classify` reads "
            "long files in windows)"
        )
    try:
        with sf.SoundFile(info.path) as f:
            y, sr = read_mono(f), f.samplerate
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioError(
            f"{info.path}: cannot decode audio ({reason}); expected a complete audio file"
        ) from None
    return prepare_waveform(y, int(sr), sample_rate, name=info.path, min_duration=min_duration)


def iter_audio_blocks(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    block_seconds: float = 60.0,
) -> Iterator[np.ndarray]:
    """Stream a file of any length as consecutive mono float32 blocks at ``sample_rate``.

    Memory stays bounded by ``block_seconds`` whatever the file's length; resampling is
    continuous across blocks (soxr streaming), so concatenating the blocks equals loading
    the whole file.

    Yields
    ------
    np.ndarray [shape=(n,), dtype=float32]
    """
    info = audio_info(path)
    block_frames = max(1, int(block_seconds * info.sample_rate))
    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    total = 0
    limit = 1.0  # as in prepare_waveform: resampling never leaves [-max(1, peak), max(1, peak)]
    try:
        with sf.SoundFile(info.path) as f:
            while (mono := read_mono(f, block_frames)).size:
                if not np.all(np.isfinite(mono)):
                    raise AudioError(f"{info.path}: contains NaN or infinite samples; expected finite audio")
                _check_peak(mono, info.path)
                total += mono.size
                if stream is None:
                    out = mono
                else:
                    limit = max(limit, float(np.max(np.abs(mono), initial=0.0)))
                    out = np.clip(stream.resample_chunk(mono, last=False), -limit, limit)
                if out.size:
                    yield np.ascontiguousarray(out, dtype=np.float32)
        if stream is not None:
            tail = np.clip(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), -limit, limit)
            if tail.size:
                yield np.ascontiguousarray(tail, dtype=np.float32)
    except AudioError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioError(
            f"{info.path}: cannot decode audio ({reason}); expected a complete audio file"
        ) from None
    if total / info.sample_rate < MIN_DURATION:
        raise AudioError(
            f"{info.path}: too short ({total / info.sample_rate * 1000:.0f} ms); expected at least "
            f"{MIN_DURATION * 1000:.0f} ms"
        )
