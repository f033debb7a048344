"""Match emotion labels by name: one table of synonyms, one matching of two label sets.

Corpora and models name the same emotion differently ("anger" / "angry", "pleasant surprise"
/ "ps" / "surprise"). :data:`SYNONYMS` lists, for each canonical name, the names taken to mean
it; :func:`canonical_label` looks a name up (ignoring case, ``_``, ``-`` and extra spaces), and
:func:`match_labels` pairs a corpus's labels with a model's classes through it, with
``--map FROM=TO`` pairs (:func:`parse_map`) added on top or overriding it.

The canonical names include those of :data:`ser.corpora.CANONICAL_LABELS` (what the bundled
loaders produce) and the other categories of common corpora (IEMOCAP's frustration and
excitement, contempt). Emotions that are close but not the same (excitement and happiness,
calm and neutral) are *not* synonyms: map them explicitly (``--map excited=happy``) when a
protocol merges them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ser.errors import ConfigError

#: Canonical name -> the names (after :func:`normalize_label`) that mean it. Every name
#: appears under one canonical name only.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "ang", "mad"),
    "boredom": ("boredom", "bored", "bor"),
    "calm": ("calm", "calmness"),
    "contempt": ("contempt", "contemptuous"),
    "disgust": ("disgust", "disgusted", "dis"),
    "excited": ("excited", "excitement", "exc"),
    "fear": ("fear", "fearful", "afraid", "scared", "fea"),
    "frustration": ("frustration", "frustrated", "fru"),
    "happy": ("happy", "happiness", "joy", "hap"),
    "neutral": ("neutral", "neu"),
    "sad": ("sad", "sadness", "sa"),
    "surprise": ("surprise", "surprised", "pleasant surprise", "ps", "sur"),
}

_CANONICAL = {name: canon for canon, names in SYNONYMS.items() for name in names}


def normalize_label(name: str) -> str:
    """A label as compared: lower case, ``_`` and ``-`` as spaces, runs of spaces as one.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def canonical_label(name: str) -> str | None:
    """The canonical name of ``name`` in :data:`SYNONYMS`, or None when it is not listed.

    Parameters
    ----------
    name : str
        A label as a corpus or model spells it (``"Pleasant_surprise"``, ``"anger"``).

    Returns
    -------
    str or None
        E.g. ``"surprise"``, ``"angry"``.
    """
    return _CANONICAL.get(normalize_label(name))


def _key(name: str) -> str:
    """What two labels must share to match: the canonical name, else the normalised name."""
    return canonical_label(name) or normalize_label(name)


def parse_map(pairs: Iterable[str] | None) -> dict[str, str | None]:
    """Parse ``--map`` arguments ``FROM=TO`` into ``{FROM: TO}``; ``FROM=`` leaves FROM out.

    Parameters
    ----------
    pairs : iterable of str or None
        Each ``"corpus_label=model_label"`` (spaces around the names are dropped).

    Returns
    -------
    dict of str to (str or None)
        None for ``FROM=`` (the corpus label is left out).

    Raises
    ------
    ConfigError
        A pair without ``=`` or with an empty FROM, or one FROM given twice.
    """
    result: dict[str, str | None] = {}
    for pair in pairs or ():
        source, sep, target = str(pair).partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source:
            raise ConfigError(f"--map expects FROM=TO (a corpus label = a model class); Received: {pair!r}")
        if source in result:
            raise ConfigError(f"--map gives {source!r} twice; Received: {list(pairs)!r}")
        result[source] = target or None
    return result


@dataclass(frozen=True)
class LabelMatch:
    """How a corpus's labels meet a model's classes.

    Attributes
    ----------
    pairs : dict of str to str
        Corpus label -> model class, for every corpus label that has one (several corpus
        labels may share a class).
    corpus_only : tuple of str
        Corpus labels that match no model class (left out of scoring), in corpus order.
    model_only : tuple of str
        Model classes no corpus label maps to, in model order (a prediction of one is an error).
    """

    pairs: dict[str, str]
    corpus_only: tuple[str, ...] = ()
    model_only: tuple[str, ...] = ()
    overrides: dict[str, str | None] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the pairs (``corpus->model`` where the names differ), then what is unmatched."""
        shown = [c if c == m else f"{c}->{m}" for c, m in self.pairs.items()]
        text = f"labels matched: {', '.join(shown) or 'none'}"
        if self.corpus_only:
            text += f"; corpus labels left out (no model class): {', '.join(self.corpus_only)}"
        if self.model_only:
            text += f"; model classes with no corpus label: {', '.join(self.model_only)}"
        return text

    def to_dict(self) -> dict:
        """The match as JSON-ready data (``results.json`` → ``labels``)."""
        return {
            "pairs": dict(self.pairs),
            "corpus_only": list(self.corpus_only),
            "model_only": list(self.model_only),
            "overrides": dict(self.overrides),
        }


def match_labels(
    model_labels: Sequence[str],
    corpus_labels: Sequence[str],
    overrides: Mapping[str, str | None] | None = None,
    strict: bool = True,
) -> LabelMatch:
    """Pair each corpus label with the model class of the same meaning.

    Two labels match when :func:`canonical_label` gives them the same name, or, for names
    outside :data:`SYNONYMS`, when they are equal after :func:`normalize_label`. ``overrides``
    (``--map``, see :func:`parse_map`) come first: ``{FROM: TO}`` pairs corpus label FROM
    with model class TO, and ``{FROM: None}`` leaves FROM out.

    Parameters
    ----------
    model_labels : sequence of str
        The model's classes (or, when pooling corpora, the label set they are mapped onto).
    corpus_labels : sequence of str
        The labels found in the corpus.
    overrides : mapping of str to (str or None), optional
        Explicit pairs, by exact name.
    strict : bool, default True
        Refuse an override whose FROM is not a corpus label. (Its TO must always be a
        model class.)

    Returns
    -------
    LabelMatch

    Raises
    ------
    ConfigError
        An override naming a model class that does not exist, or (``strict``) a corpus label
        that does not exist.
    """
    model_labels, corpus_labels = list(model_labels), list(dict.fromkeys(corpus_labels))
    overrides = dict(overrides or {})
    for source, target in overrides.items():
        if target is not None and target not in model_labels:
            raise ConfigError(
                f"--map {source}={target}: {target!r} is not a model class; expected one of {', '.join(model_labels)}"
            )
        if strict and source not in corpus_labels:
            raise ConfigError(
                f"--map {source}={target or ''}: {source!r} is not a corpus label; expected one of {', '.join(corpus_labels)}"
            )
    by_key: dict[str, str] = {}
    for label in model_labels:
        by_key.setdefault(_key(label), label)
    pairs: dict[str, str] = {}
    for label in corpus_labels:
        target = overrides[label] if label in overrides else by_key.get(_key(label))
        if target is not None:
            pairs[label] = target
    used = set(pairs.values())
    return LabelMatch(
        pairs=pairs,
        corpus_only=tuple(label for label in corpus_labels if label not in pairs),
        model_only=tuple(label for label in model_labels if label not in used),
        overrides=overrides,
    )


__all__ = ["SYNONYMS", "LabelMatch", "canonical_label", "match_labels", "normalize_label", "parse_map"]
