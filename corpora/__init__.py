"""Corpus loaders: each turns a corpus folder, as distributed, into a manifest.

A manifest is a :class:`pandas.DataFrame` with one row per utterance and the columns
``path, utt_id, label, speaker, session, gender, duration`` (see :mod:`corpora.base`).
Each corpus module has ``CLASSES``, ``EXPECTED_COUNT``, ``PROTOCOL`` and
``load(root, *, skip_bad=False, find_unusable=None, **options)``; :func:`load_corpus` picks one
by name.

>>> manifest = load_corpus("ravdess", "/data/ravdess")  # doctest: +SKIP
>>> print(describe_manifest(manifest))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import os
import types

import pandas as pd

from ser.corpora import cremad, custom, emodb, iemocap, ravdess, savee, tess, urdu
from ser.corpora.base import (
    CANONICAL_LABELS,
    COLUMNS,
    CorpusWarning,
    check_bool,
    describe_manifest,
    speaker_label_table,
)
from ser.errors import ConfigError

__all__ = [
    "CANONICAL_LABELS",
    "COLUMNS",
    "CORPORA",
    "CorpusWarning",
    "describe_manifest",
    "get_corpus",
    "load_corpus",
    "speaker_label_table",
]


class _LazyModule(types.ModuleType):
    """Stands for a module until an attribute is asked for, then imports it and delegates."""

    def __init__(self, name: str):
        super().__init__(name)

    def _load(self) -> types.ModuleType:
        return importlib.import_module(self.__name__)

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


#: Corpus name -> module. ``synthetic`` is imported on first use.
CORPORA: dict[str, types.ModuleType] = {
    "iemocap": iemocap,
    "emodb": emodb,
    "ravdess": ravdess,
    "cremad": cremad,
    "tess": tess,
    "savee": savee,
    "urdu": urdu,
    "custom": custom,
    "synthetic": _LazyModule("ser.corpora.synthetic"),
}


def get_corpus(name: str) -> types.ModuleType:
    """The module of corpus ``name`` (case-insensitive), imported.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the valid ones), or a module that is not installed.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in CORPORA:
        raise ConfigError(f"unknown corpus {name!r}; expected one of: {', '.join(sorted(CORPORA))}")
    module = CORPORA[key]
    if isinstance(module, _LazyModule):
        try:
            module = module._load()
        except ModuleNotFoundError as exc:
            if exc.name != module.__name__:
                raise  # the module exists but one of its imports is missing: a bug, keep the traceback
            raise ConfigError(
                f"corpus {key!r} is not available: module {module.__name__} not found"
            ) from None
    return module


def load_corpus(
    name: str, root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None, **options
) -> pd.DataFrame:
    """Load corpus ``name`` from ``root`` as a manifest.

    Parameters
    ----------
    name : str
        One of :data:`CORPORA` (``"iemocap"``, ``"emodb"``, ``"ravdess"``, ...).
    root : str or PathLike
        The corpus folder as distributed (for ``custom``, a CSV file or a folder).
    skip_bad : bool
        Drop files with problems (with a warning listing them) instead of raising.
    find_unusable : callable, optional
        ``find_unusable(paths) -> {index: AudioError}`` (:func:`ser.data.find_unusable` at the
        model's rate): decode the files whose headers are fine and list those whose audio
        cannot be used (NaN, silent, ...) with the other problems.
    **options
        The corpus's own options, e.g. ``improvised_only=True`` for IEMOCAP,
        ``merge_calm=True`` for RAVDESS.

    Returns
    -------
    pd.DataFrame
        The manifest (see :mod:`corpora.base`).

    Raises
    ------
    ConfigError
        Unknown corpus name or option, or an option of the wrong type.
    CorpusError
        Missing root, no audio, or problems with files (unless ``skip_bad``).
    """
    module = get_corpus(name)
    check_bool("skip_bad", skip_bad)
    parameters = inspect.signature(module.load).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        accepted = [
            p.name
            for p in parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("skip_bad", "find_unusable")
        ]
        unknown = [option for option in options if option not in accepted]
        if unknown:
            what = f"accepted options: {', '.join(accepted)}" if accepted else "it accepts no options"
            corpus = module.__name__.rsplit(".", 1)[-1]
            unknown_list = ", ".join(repr(u) for u in unknown)
            raise ConfigError(f"unknown option(s) {unknown_list} for corpus {corpus!r}; {what}")
    return module.load(root, skip_bad=skip_bad, find_unusable=find_unusable, **options)
