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
