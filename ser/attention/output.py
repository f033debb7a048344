"""The files ``ser attention`` writes: names checked before any work, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from ser.errors import ConfigError
from ser.io import probe_writable, write_atomically

#: Picture formats :func:`ser.attention.plot.plot_attention` writes, by file suffix (no suffix: PNG).
FIGURE_FORMATS = {"png": "png", "pdf": "pdf", "svg": "svg", "jpg": "jpg", "jpeg": "jpg"}


def check_output(path) -> Path:
    """``path`` as a Path, checked to name a file that can be made: not a folder, not below a file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected the name of a file to write")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"{path}: {above} is a file; expected a path inside a folder")
    return path


def _check_writable(path: Path) -> None:
    """Check a file can be created in ``path``'s folder, or in the nearest folder above it that
    exists (the rest is made when the file is written), by creating and removing one there."""

    folder = next((p for p in path.parents if p.exists()), Path("."))
    try:
        probe_writable(folder)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write here ({exc.strerror or exc}); expected a folder you can write to"
        ) from None


def check_outputs(out: str | os.PathLike, npz: str | os.PathLike | None = None) -> None:
    """Check ``ser attention``'s output names before any work: ``out`` a picture of a format
    :func:`ser.attention.plot.plot_attention` writes (:func:`figure_format`), ``npz`` a name ending in ``.npz``,
    both files that can be made in folders that can be written.

    Raises
    ------
    ConfigError
    """
    figure_format(out)
    if npz is not None:
        # (so it cannot name the picture too, which it overwrote)
        if Path(npz).suffix.lower() != ".npz":
            raise ConfigError(f"{npz}: not a .npz name; expected a file name ending in .npz for --npz")
    for path in (out, npz):
        if path is not None:
            _check_writable(check_output(path))


def write_checked(path: str | os.PathLike, write) -> None:
    """:func:`ser.io.write_atomically` to ``path``, checked first (:func:`check_output`)."""

    write_atomically(check_output(path), write)


def figure_format(path: str | os.PathLike) -> str:
    """The picture format of ``path`` from its suffix (PNG without one).

    Raises
    ------
    ConfigError
        A suffix of another format, so that ``x.gif`` never silently holds a PNG.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in FIGURE_FORMATS:
        raise ConfigError(
            f"{path}: cannot write a .{suffix} picture; expected a file name ending in "
            f"{', '.join('.' + s for s in FIGURE_FORMATS)}"
        )
    return FIGURE_FORMATS[suffix]
