"""What keeps ``ser serve`` safe under any upload and any load.

- :func:`receive_upload` streams a request's body into a private temporary folder, counting
  its bytes as they arrive (:attr:`Limits.max_bytes`), then reads the file's header
  (:func:`ser.audio.audio_info`) to check its duration (:attr:`Limits.max_seconds`) before
  anything is decoded. The folder is removed by :meth:`Upload.close`, also when the request
  fails; the file's name comes from the client only as a display name (:func:`upload_name`),
  never as a path.
- :class:`Workers` runs the model in a bounded pool of threads; a request that finds every
  worker busy waits at most :attr:`Limits.wait` seconds, then gets a :class:`ser.errors.BusyError`
  (503), so memory stays that of ``workers`` requests however many arrive.
"""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ser.audio import AudioInfo, audio_info
from ser.errors import AudioError, BusyError, ConfigError, LimitError, SerError

#: Largest upload accepted by default (bytes): 50 MB.
DEFAULT_MAX_BYTES = 50 * 1000 * 1000

#: Longest upload accepted by default (seconds of audio, from the file's header).
DEFAULT_MAX_SECONDS = 600.0

#: Requests the model runs at once by default; more wait (:data:`DEFAULT_WAIT`) or get a 503.
DEFAULT_WORKERS = 2

#: Seconds a request waits for a free worker before it gets a 503.
DEFAULT_WAIT = 30.0

#: The name given to an upload that comes without one.
DEFAULT_UPLOAD_NAME = "upload.wav"


@dataclass(frozen=True)
class Limits:
    """The limits of one server.

    Attributes
    ----------
    max_bytes : int
        Largest upload, in bytes.
    max_seconds : float
        Longest upload, in seconds of audio (from its header, before decoding).
    workers : int
        Requests run at once.
    wait : float
        Seconds a request waits for a free worker before it gets a 503.

    Raises
    ------
    ConfigError
        A value that is not a positive number.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_seconds: float = DEFAULT_MAX_SECONDS
    workers: int = DEFAULT_WORKERS
    wait: float = DEFAULT_WAIT

    def __post_init__(self):
        for key in ("max_bytes", "max_seconds", "workers", "wait"):
            value = getattr(self, key)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            if bad or value <= 0 or (key in ("max_bytes", "workers") and value != int(value)):
                kind = "a positive integer" if key in ("max_bytes", "workers") else "a positive number"
                raise ConfigError(f"{key} must be {kind}. Received: {key}={value!r}")


def upload_name(raw: str | None) -> str:
    """A safe display name for an upload from the name its client gave.

    The last component of ``raw`` (``/`` or ``\\``), with every character outside letters,
    digits, ``.``, ``_`` and ``-`` replaced by ``_``, at most 100 characters, not starting
    with a dot; :data:`DEFAULT_UPLOAD_NAME` where nothing is left.
    """
    base = re.split(r"[/\\]", raw or "")[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-100:]
    return safe or DEFAULT_UPLOAD_NAME


class Upload:
    """One received upload: its file in a private temporary folder, and its header.

    Attributes
    ----------
    path : Path
        The file (inside the folder :meth:`close` removes).
    name : str
        The name error messages and results give it (:func:`upload_name`).
    info : AudioInfo
    range : tuple of (float or None)
        ``(start, end)`` in seconds that a request asks of it (``(None, None)``: all of it).
    """

    def __init__(self, folder: tempfile.TemporaryDirectory, path: Path, name: str, info: AudioInfo):
        self._folder, self.path, self.name, self.info = folder, path, name, info
        self.range: tuple[float | None, float | None] = (None, None)

    def message(self, exc: BaseException) -> str:
        """``exc``'s message with the temporary path replaced by :attr:`name`."""
        return str(exc).replace(str(self.path), self.name)

    def close(self, running: Future | None = None) -> None:
        """Remove the folder now, or once ``running`` (a model call still reading the file,
        e.g. after the client went away) has finished."""
        if running is not None and not running.done():
            running.add_done_callback(lambda _: self._folder.cleanup())
        else:
            self._folder.cleanup()


async def receive_upload(request, limits: Limits, tmp_root: str | None = None) -> Upload:
    """Stream a request's body (the audio file itself) into a new private folder and check it.

    The file's display name comes from the query's ``name`` (:func:`upload_name`). The caller
    owns the result and must :meth:`Upload.close` it (in a ``finally``).

    Parameters
    ----------
    request : starlette.requests.Request
    limits : Limits
    tmp_root : str or None
        Where the private folder is made (default: the system's temporary folder).

    Raises
    ------
    LimitError
        More than ``max_bytes`` (declared or received) or more than ``max_seconds`` of audio.
    AudioError
        Empty, not audio, cut short (the header promises more than arrived), or another
        header problem; the message names the upload by its display name.
    """
    name = upload_name(request.query_params.get("name"))
    folder = tempfile.TemporaryDirectory(prefix="ser-serve-", dir=tmp_root)
    path = Path(folder.name) / name
    try:
        await _write_body(request, path, name, limits.max_bytes)
        info = audio_info(path)
        if info.promised_frames is not None:
            raise AudioError(
                f"{name}: cut short: its header promises {info.promised_frames / info.sample_rate:.2f} s, "
                f"the upload holds {info.duration:.2f} s; expected a complete file"
            )
        if info.duration > limits.max_seconds:
            raise LimitError(
                f"{name}: {info.duration:.1f} s of audio; expected at most {limits.max_seconds:g} s "
                "(the server's --max-seconds)"
            )
        return Upload(folder, path, name, info)
    except SerError as exc:
        folder.cleanup()
        raise type(exc)(str(exc).replace(str(path), name)) from None
    except BaseException:
        folder.cleanup()
        raise


async def _write_body(request, path: Path, name: str, max_bytes: int) -> None:
    """Write the body to ``path``, stopping as soon as it passes ``max_bytes``."""
    too_large = (
        f"{name}: upload larger than {max_bytes / 1e6:g} MB; expected at most that (the server's --max-mb)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise LimitError(too_large)
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise LimitError(too_large)
            f.write(chunk)
    if size == 0:
        raise AudioError(f"{name}: empty upload (0 bytes); expected an audio file")


class Workers:
    """Runs model calls in at most ``limits.workers`` threads; the rest wait, then get a 503.

    Parameters
    ----------
    limits : Limits
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self.executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="ser-serve")
        self._slots: asyncio.Semaphore | None = None

    async def acquire(self) -> None:
        """Take one of the workers (give it back with :meth:`release`).

        Raises
        ------
        BusyError
            No worker came free within ``limits.wait`` seconds.
        """
        if self._slots is None:  # made in the server's event loop
            self._slots = asyncio.Semaphore(self.limits.workers)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.limits.wait)
        except asyncio.TimeoutError:
            raise BusyError(
                f"the server is busy: all {self.limits.workers} workers taken for {self.limits.wait:g} s; "
                "expected fewer requests at once (try again, or start it with more --workers)"
            ) from None

    def release(self) -> None:
        """Give back a worker taken by :meth:`acquire`."""
        self._slots.release()

    @asynccontextmanager
    async def slot(self):
        """Hold one of the workers for the ``async with`` block (:meth:`acquire`)."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Run ``fn(*args, **kwargs)`` in a worker thread (inside :meth:`slot`)."""
        return self.executor.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop taking calls; calls already running finish on their own."""
        self.executor.shutdown(wait=False, cancel_futures=True)
