"""The one small exception hierarchy of ``ser``.

Every error a user can cause (a bad file, a bad corpus folder, a bad option, a file that
is not a ``ser`` model) is a :class:`SerError`. The command line prints its message on one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class SerError(Exception):
    """Base class of every user-facing error raised by ``ser``."""


class AudioError(SerError):
    """An audio file (or array) that cannot be used: missing, not audio, empty, too short, ..."""


class CorpusError(SerError):
    """A corpus folder or manifest with missing, misnamed or unusable files."""


class ConfigError(SerError):
    """A recipe, option or argument with a value outside what is accepted."""


class ModelError(SerError):
    """A model file that is missing, corrupted, not a ``ser`` model or from another version."""


class LimitError(SerError):
    """An input over a limit that keeps a service safe: an upload too large or too long."""


class BusyError(SerError):
    """A service that has all its workers busy for longer than a request may wait."""
