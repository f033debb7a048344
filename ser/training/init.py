"""Fine-tuning: start a run's models from a trained model's weights (``ser train --init MODEL``).

Every model of the run (each fold's, each ensemble member's and the final one) starts from
the init's weights where they fit: the conv blocks (convolutions and batch norm, with its
running statistics) always, and the pooling head where the label sets are the same (in any
order: the class-specific weights are permuted to the run's class order); a head over other
labels starts from fresh random weights. The feature normalisation is set from each fold's
training files, as without an init. The init is a ``model.keras`` or a run folder holding
one; an export (``.onnx``, ``.tflite``) holds no Keras weights and cannot be used.

A model records what it was trained on (:func:`trained_on`): the corpora and their speakers,
and each corpus's data licence; a model fine-tuned from another adds the init's provenance
and keeps its licence too. A run refuses an init that saw any speaker it tests
(:func:`check_init_leak`): that speaker would be known to every fold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser.corpora import get_corpus
from ser.errors import ConfigError
from ser.saved_model import load_keras_model

#: Layers whose weights a fine-tuned model always takes from its init (the conv blocks).
BLOCK_PREFIXES = ("conv", "bn")

#: What the licence of a corpus without a ``LICENCE`` is recorded as.
UNKNOWN_LICENCE = "unknown: see the corpus's own terms"


@dataclass
class InitModel:
    """A trained model to start from, as :func:`load_init` reads it.

    Attributes
    ----------
    path : str
        The ``model.keras`` file.
    labels : list of str
        Its classes, in the order of its outputs.
    weights : dict
        Layer name -> list of np.ndarray, for the layers with weights (of the first member
        of an ensemble).
    info : dict
        Its ``ser_metadata`` info (recipe, corpus, speakers, licence, ...).
    """

    path: str
    labels: list
    weights: dict
    info: dict


def load_init(path: str | os.PathLike) -> InitModel:
    """Read the model at ``path`` (a ``model.keras`` or a run folder) as an init.

    Raises
    ------
    ConfigError
        An export (no Keras weights to start from).
    ModelError
        Not a loadable ``model.keras`` (:func:`ser.saved_model.load_keras_model`).
    """
    from ser.model import ensemble_members

    if Path(path).suffix.lower() in (".onnx", ".tflite"):
        raise ConfigError(
            f"--init {path}: an export cannot be fine-tuned (it holds no Keras weights); expected a "
            "model.keras or a run folder holding one"
        )
    model, file = load_keras_model(path)
    meta = model.get_layer("ser_metadata")
    member = ensemble_members(model)[0]
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in member.layers}
    weights = {name: w for name, w in weights.items() if w}
    return InitModel(file, [str(v) for v in meta.labels], weights, dict(meta.info))


def head_permutation(init_labels, labels) -> np.ndarray | None:
    """``perm`` with ``labels[j] == init_labels[perm[j]]``, or ``None`` unless the two label
    sets are the same."""
    if sorted(init_labels) != sorted(labels) or len(set(labels)) != len(labels):
        return None
    return np.array([list(init_labels).index(label) for label in labels])


def _permuted_head(weights: list, perm: np.ndarray, n_classes: int) -> list:
    """The head's weights with the class axis in the run's order: the first two are a
    ``Dense`` head's kernel ``(C, K)`` and bias ``(K,)``, or an ``AttentionalPooling``'s
    top-down kernel ``(C, K*R)`` and bias ``(K*R,)`` (columns class-major); the bottom-up
    weights that follow are class-agnostic and stay as they are."""
    out = list(weights)
    for i in (0, 1):
        rank = weights[i].shape[-1] // n_classes
        columns = (perm[:, None] * rank + np.arange(rank)[None, :]).ravel()
        out[i] = weights[i][..., columns]
    return out


def transfer_weights(model, init: InitModel, labels) -> list[str]:
    """Set ``model``'s conv blocks (and its head where the labels match) to ``init``'s weights.

    Parameters
    ----------
    model : keras.Model
        A freshly built model of the run (:func:`ser.model.build_model`).
    init : InitModel
    labels : list of str
        The run's classes, in the order of ``model``'s outputs.

    Returns
    -------
    list of str
        The names of the layers set from the init.

    Raises
    ------
    ConfigError
        The init's conv blocks are not the recipe's (other layers or shapes).
    """
    perm = head_permutation(init.labels, labels)
    done = []
    for layer in model.layers:
        own = layer.get_weights()
        if not own:
            continue
        if layer.name.startswith(BLOCK_PREFIXES):
            source = init.weights.get(layer.name)
        elif layer.name == "head" and perm is not None:
            source = init.weights.get("head")
            source = None if source is None else _permuted_head(source, perm, len(labels))
        else:
            continue
        shapes = [w.shape for w in own]
        if source is None or [w.shape for w in source] != shapes:
            if layer.name == "head":
                continue  # another kind of head: it starts fresh
            got = "none" if source is None else [tuple(w.shape) for w in source]
            raise ConfigError(
                f"--init {init.path}: its layer {layer.name!r} has weights of shapes {got}; the recipe's "
                f"model needs {[tuple(s) for s in shapes]} (the same [model] and frontend.n_mels settings)"
            )
        layer.set_weights(source)
        done.append(layer.name)
    return done


def corpus_licence(name: str) -> str:
    """The data licence of corpus ``name`` (its module's ``LICENCE``)."""
    return getattr(get_corpus(name), "LICENCE", None) or UNKNOWN_LICENCE


def speakers_by_corpus(manifest, corpus: str) -> dict:
    """``{corpus: sorted speaker ids}`` of ``manifest``: one corpus ``corpus``, or, for a
    manifest of several (a ``corpus`` column; speakers named ``"<corpus>:<speaker>"``),
    each corpus's own speaker ids."""
    if "corpus" not in manifest.columns:
        return {corpus: sorted(set(manifest["speaker"].astype(str)))}
    out = {}
    for name, rows in manifest.groupby("corpus", sort=True):
        prefix = f"{name}:"
        own = rows["speaker"].astype(str)
        out[str(name)] = sorted({s[len(prefix) :] if s.startswith(prefix) else s for s in own})
    return out


def trained_on(manifest, corpus: str, init: InitModel | None = None) -> dict:
    """What a model trained on ``manifest`` records in its metadata.

    Returns
    -------
    dict
        ``{"speakers": {corpus: [speaker, ...]}, "data_licence": {corpus: licence}}``, the
        speakers of every row (the validation speakers too: they chose the model), and, when
        fine-tuned from ``init``, ``"init": {"path", "recipe", "corpus", "speakers",
        "data_licence"}``, whose licences the model keeps (merged into its own).
    """
    speakers = speakers_by_corpus(manifest, corpus)
    licences = {name: corpus_licence(name) for name in speakers}
    out = {"speakers": speakers, "data_licence": licences}
    if init is not None:
        inherited = init.info.get("data_licence") or (
            {init.info["corpus"]: corpus_licence(init.info["corpus"])} if init.info.get("corpus") else {}
        )
        out["init"] = {
            "path": init.path,
            "recipe": init.info.get("recipe"),
            "corpus": init.info.get("corpus"),
            "speakers": init.info.get("speakers"),
            "data_licence": inherited,
        }
        out["data_licence"] = {**inherited, **licences}
    return out


def check_init_leak(init: InitModel, tested: dict) -> None:
    """Refuse an init that saw any speaker the run tests.

    Parameters
    ----------
    init : InitModel
    tested : dict
        Corpus name -> the speakers the run tests (every speaker of its folds).

    Raises
    ------
    ConfigError
        The init was trained on one of those speakers, or on the same corpus without a
        record of its speakers (and those of the init's own init likewise).
    """
    seen = dict(init.info.get("speakers") or {})
    if not seen and init.info.get("corpus"):
        seen = {init.info["corpus"]: None}  # trained before models recorded their speakers
    inner = init.info.get("init") or {}
    for name, speakers in (inner.get("speakers") or {}).items():
        seen[name] = sorted(set(seen.get(name) or ()) | set(speakers))
    for corpus, speakers in tested.items():
        if corpus not in seen:
            continue
        if seen[corpus] is None:
            raise ConfigError(
                f"--init {init.path}: it was trained on {corpus} but records no speakers, so it may have "
                f"heard this run's test speakers; expected a model trained on other speakers"
            )
        leak = sorted(set(map(str, speakers)) & set(map(str, seen[corpus])))
        if leak:
            shown = ", ".join(leak[:8]) + (", ..." if len(leak) > 8 else "")
            raise ConfigError(
                f"--init {init.path}: it was trained on {len(leak)} of this run's test speakers of "
                f"{corpus} ({shown}), which would leak them into every fold; expected a model trained "
                "on other speakers (e.g. --set corpus.speakers=[...])"
            )
