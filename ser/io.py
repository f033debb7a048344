"""Atomic file writes (a crash never leaves a truncated artefact behind) and folder checks.

The one home of atomic writing in ``ser``: every artefact (models, reports, cached features,
figures, ``.npz`` maps) is written through :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

from ser.constants import FORMAT_VERSION
from ser.errors import ConfigError, SerError


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The suffix is kept (``model.keras`` -> ``.model.XXXX.keras``) so writers that look at
    the extension still work. On error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600; artefacts get the usual mode
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomically(path, write) -> None:
    """Call ``write(file_object)`` on a temporary binary file beside ``path``, then rename it.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; missing folders above it are made.
    write : callable
        Takes a file object opened for binary writing (``np.savez_compressed``,
        ``Figure.savefig`` with an explicit ``format``).

    Raises
    ------
    ConfigError
        The folder cannot be made or written, or the write fails (a full disk).
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            write(f)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write here ({exc.strerror or exc}); expected a folder you can write to"
        ) from None


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path):
    """Read a JSON file, or return None if it is missing or unreadable (e.g. a crash mid-write)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def probe_writable(folder) -> None:
    """Create and remove a file in ``folder``; raises :class:`OSError` where that fails."""
    fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
    os.close(fd)
    os.unlink(probe)


def ensure_folder(path, what: str = "output folder") -> Path:
    """Create folder ``path`` if needed and check it can be written to.

    Raises
    ------
    ConfigError
        ``path`` is a file, or cannot be created or written (permissions, read-only disk).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; expected an {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_writable(path)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write here ({exc.strerror or exc}); expected an {what} you can write to"
        ) from None
    return path


def check_format_version(found, path, error: type[SerError] = ConfigError) -> None:
    """Refuse a file ``ser`` wrote in another format than :data:`~ser.constants.FORMAT_VERSION`.

    Parameters
    ----------
    found : int or None
        The ``format_version`` the file holds (``None``: it holds none, as files written
        before formats were versioned).
    path : str or os.PathLike
        The file, for the message.
    error : type of SerError
        What to raise (e.g. :class:`~ser.errors.ModelError` for a model).

    Raises
    ------
    error
        ``found`` is not the current version; the message names both and what to do.
    """
    if found == FORMAT_VERSION:
        return
    written = "no format version (an earlier pre-release)" if found is None else f"format version {found}"
    raise error(
        f"{path}: written in {written}; this ser reads format version {FORMAT_VERSION}: "
        "retrain with this release, or use the release that wrote it"
    )


def log(message: str) -> None:
    """Print one progress line on standard error (standard output stays for results)."""
    print(message, file=sys.stderr, flush=True)


class JsonLines:
    """An append-only JSON-lines file that survives ``kill -9``: the resumable output of
    ``ser classify --list``.

    Opening it resumes: a trailing partial line (a write cut off by a crash) is truncated
    away and the ``key`` of every complete line is collected in :attr:`done`. Each record
    is then appended by one ``write`` of its whole line on an unbuffered descriptor opened
    with ``O_APPEND``, so a crash leaves whole lines and at most one partial last line; the
    file is ``fsync``-ed every :attr:`sync_seconds` and on :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
        The file; created (with its folders) if missing.
    key : str
        The field that names a record (``"file"``); every line must be a JSON object with it.
    sync_seconds : float
        Longest time between two ``fsync`` calls while writing.

    Raises
    ------
    ConfigError
        ``path`` is a folder or cannot be written, or a complete line is not a JSON object
        holding ``key`` (not a file this writer made).
    """

    def __init__(self, path, key: str = "file", sync_seconds: float = 5.0):
        import time

        self.path = Path(path)
        self.key = key
        self.sync_seconds = float(sync_seconds)
        self.done: set = set()
        self._clock = time.monotonic
        if self.path.is_dir():
            raise ConfigError(f"{self.path}: is a folder; expected a .jsonl file to write results to")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot write here ({exc.strerror or exc}); expected a file you can write to"
            ) from None
        self._resume()
        self._synced = self._clock()

    def _resume(self) -> None:
        """Collect :attr:`done` from the complete lines; cut a trailing partial line."""
        end = 0  # offset just after the last complete line
        with open(self._fd, "rb", closefd=False) as fh:
            fh.seek(0)
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    break  # cut off by a crash mid-write: written again below
                end += len(line)
                if line.strip():
                    self.done.add(self._key_of(line, number))
        if end < os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, end)

    def _key_of(self, line: bytes, number: int):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or self.key not in record:
            raise ConfigError(
                f"{self.path}: line {number} is not a JSON object with {self.key!r}; expected the output "
                "of an earlier run to resume (or a new file)"
            )
        return record[self.key]

    def write(self, record: dict) -> None:
        """Append ``record`` as one line (one ``write``), and add its key to :attr:`done`."""
        data = (json.dumps(record) + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # only a full disk cuts a regular file's write short
            raise ConfigError(f"{self.path}: wrote {written} of {len(data)} bytes (disk full?)")
        self.done.add(record[self.key])
        if self._clock() - self._synced >= self.sync_seconds:
            os.fsync(self._fd)
            self._synced = self._clock()

    def close(self) -> None:
        """``fsync`` and close (again: nothing)."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
