"""Train and evaluate one fold: its members, speaker adaptation and fusion; its fold folder.

A fold's folder ``folds/fold_NN`` holds ``result.json`` (:meth:`FoldResult.to_dict`),
``predictions.csv`` (each test file's label, prediction and class probabilities
``p_<class>``) and ``logits.npz``: the CNN's own test logits (``cnn``, and ``cnn_adapted``
when adapted) with the test files' manifest rows (``rows``), before any fusion, and, when the
model fuses a functionals head, the same for the (first) member's validation speakers
(``validation_rows``, ``validation_cnn``, ``validation_cnn_adapted``: they chose its fusion
weights; an ensemble's are the mean of its members' choices). Each file is written
atomically, ``result.json`` last: a fold with a ``result.json`` is finished.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser import __version__, interrupts
from ser.adaptation import speaker_adapted_logits
from ser.constants import MIN_ADAPTATION_FILES
from ser.evaluation import scores
from ser.io import atomic_path, log, write_json
from ser.protocol import member_splits
from ser.runtime import predict_logits, softmax
from ser.store import take
from ser.training.fit import train_split
from ser.training.fusion_weights import ensemble_weights, fuse_fold, member_fusion_weights
from ser.training.report import groups_text
from ser.training.run_dir import fold_dir, training_files


@dataclass
class FoldResult:
    """One finished fold, as its ``result.json`` holds it (:meth:`to_dict`).

    ``scores`` holds ``n, wa, ua, macro_f1, confusion`` of the test files; ``members`` each
    ensemble member's seed, validation speakers, history and scores (ensembles only);
    ``adapted`` the scores adapted to each test speaker (where adapted); ``parts`` the CNN's
    and the functionals head's scores alone, and the fusion weights (with the head).
    """

    fold: int
    test_speakers: list
    validation_speakers: list
    training_files: str
    scores: dict
    y_true: list
    y_pred: list
    history: dict
    seconds: float
    members: list | None = None
    adapted: dict | None = None
    parts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The ``result.json`` schema."""
        s = self.scores
        return (
            {
                "fold": self.fold,
                "test_speakers": self.test_speakers,
                "validation_speakers": self.validation_speakers,
                "training_files": self.training_files,
                **{k: s[k] for k in ("n", "wa", "ua", "macro_f1", "confusion")},
                "y_true": self.y_true,
                "y_pred": self.y_pred,
                "history": self.history,
                "seconds": self.seconds,
            }
            | ({"members": self.members} if self.members is not None else {})
            | ({"adapted": self.adapted} if self.adapted else {})
            | self.parts
        )


def model_info(recipe: dict) -> dict:
    """The metadata every model of a run carries (``ser_metadata`` info; the format version
    is added where the model is built or reset, :func:`ser.model.stamped_info`)."""
    return {"recipe": recipe["name"], "corpus": recipe["corpus"]["name"], "ser_version": __version__}


def _adapts(data, fold, recipe) -> bool:
    """Whether the fold's scores are also adapted to each test speaker: the CNN's batch-norm
    statistics and/or the functionals head's per-speaker standardisation, whichever the model
    has (as ``--same-speaker`` does), given enough files per speaker."""
    speakers = data.speakers
    _, per_speaker = np.unique(speakers[fold.test], return_counts=True)
    # (the head has a per-speaker regression only if a training speaker has enough files)
    _, per_train_speaker = np.unique(
        speakers[np.concatenate([fold.train, fold.validation])], return_counts=True
    )
    head_adapts = data.functionals is not None and per_train_speaker.max() >= MIN_ADAPTATION_FILES
    return (bool(recipe["model"].adapt_blocks) or head_adapts) and per_speaker.max() >= MIN_ADAPTATION_FILES


def _train_members(data, fold, recipe, *, info, board: Path, prefix: str, trainer, adapt: bool) -> dict:
    """Train each member of the fold and score it on the test files (the test files are
    touched once per member, after that member is fixed)."""
    blocks, stride = recipe["model"].adapt_blocks, recipe["model"].time_stride
    test_features = take(data.features, fold.test)
    y_test, k = data.y[fold.test], len(data.labels)
    got = {"logits": [], "adapted": [], "members": [], "validation": {}, "weights": []}
    for split in member_splits(data.manifest, fold, recipe["protocol"], recipe["training"]):
        model, history = train_split(
            split, data, data.labels, recipe, info=info, board=board, prefix=prefix, trainer=trainer
        )
        logits = predict_logits(model, test_features, multiple=stride)
        got["logits"].append(logits)
        member = {
            "member": split.member,
            "seed": split.seed,
            "validation_speakers": list(split.validation_groups),
            "history": history,
            "ua": scores(y_test, logits.argmax(1), k)["ua"],
        }
        if data.functionals is not None:  # each member's logits on its own validation speakers
            weights, val = member_fusion_weights(model, split, data, recipe)
            got["weights"].append(weights)
            got["validation"] = got["validation"] or val  # the first member's are saved
            member["fusion_weights"] = dict(zip(("single", "adapted"), weights, strict=True))
        if adapt:  # (no CNN blocks to adapt: only the functionals head adapts)
            adapted = (
                speaker_adapted_logits(
                    model, test_features, data.speakers[fold.test], blocks, multiple=stride
                )
                if blocks
                else logits
            )
            got["adapted"].append(adapted)
            member["adapted_ua"] = scores(y_test, adapted.argmax(1), k)["ua"]
        got["members"].append(member)
    return got


def _write_predictions(folder: Path, data, fold, logits, pred, adapted) -> None:
    import pandas as pd

    labels = data.labels
    probabilities = softmax(logits)
    table = pd.DataFrame(
        {
            "path": data.manifest["path"].to_numpy()[fold.test],
            "speaker": data.speakers[fold.test],
            "label": [labels[i] for i in data.y[fold.test]],
            "predicted": [labels[i] for i in pred],
            **{f"p_{name}": probabilities[:, j] for j, name in enumerate(labels)},
            **({"predicted_adapted": [labels[i] for i in adapted["y_pred"]]} if adapted else {}),
        }
    )
    with atomic_path(folder / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.5f")


def _log_scores(prefix, s, adapted, members, parts, seconds) -> None:
    line = f"{prefix}test WA {s['wa']:.3f}  UA {s['ua']:.3f}"
    if adapted:
        line += f"; adapted to each test speaker WA {adapted['wa']:.3f}  UA {adapted['ua']:.3f}"
    if len(members) > 1:
        line += "; members UA " + ", ".join(f"{m['ua']:.3f}" for m in members)
    if parts:
        line += f"; CNN alone UA {parts['cnn']['ua']:.3f}"
        if adapted:
            line += f", adapted {parts['cnn']['adapted_ua']:.3f}"
    log(f"{line}  ({seconds:.0f}s)")


def train_fold(data, fold, recipe: dict, out: Path, *, info: dict, n_folds: int, trainer) -> FoldResult:
    """Train and evaluate one fold of the prepared corpus ``data`` and write its folder in ``out``.

    Parameters
    ----------
    data : ser.training.prepare.Prepared
    fold : ser.protocol.Fold
    recipe : dict
    out : Path
        The run folder (``folds/fold_NN`` and ``tensorboard/fold_NN`` are written there).
    info : dict
        The models' metadata (:func:`model_info`).
    n_folds : int
        How many folds the run has (for the log lines).
    trainer : ser.training.fit.Trainer
    """
    t0 = time.time()
    prefix = f"fold {fold.number}/{n_folds} "
    log(
        f"{prefix}test {groups_text(fold.test_groups)} ({len(fold.test)} files); train {len(fold.train)}, "
        f"validation {len(fold.validation)} files"
    )
    board = Path(out) / "tensorboard" / f"fold_{fold.number:02d}"
    shutil.rmtree(board, ignore_errors=True)  # an interrupted attempt's curves would overlap the new ones
    adapt = _adapts(data, fold, recipe)
    got = _train_members(
        data, fold, recipe, info=info, board=board, prefix=prefix, trainer=trainer, adapt=adapt
    )
    # An ensemble averages its members' logits (as ser.model.ensemble_model does).
    logits = np.mean(got["logits"], axis=0)
    adapted_logits = np.mean(got["adapted"], axis=0) if adapt else None
    folder = fold_dir(out, fold.number)
    with atomic_path(folder / "logits.npz") as tmp, open(tmp, "wb") as fh:
        cnn_adapted = {"cnn_adapted": adapted_logits} if adapt else {}
        np.savez(fh, rows=np.asarray(fold.test), cnn=logits, **cnn_adapted, **got["validation"])
    k, y_test, parts = len(data.labels), data.y[fold.test], {}
    if data.functionals is not None:
        # The functionals head sees the fold's training speakers only (train + validation).
        logits, adapted_logits, parts = fuse_fold(
            logits,
            adapted_logits,
            data.functionals,
            data.y,
            data.speakers,
            fold,
            k,
            ensemble_weights(got["weights"]),
        )
    pred = logits.argmax(1)
    s = scores(y_test, pred, k)
    adapted = None
    if adapt:
        adapted_pred = adapted_logits.argmax(1)
        a = scores(y_test, adapted_pred, k)
        adapted = {key: a[key] for key in ("wa", "ua", "macro_f1", "confusion")} | {
            "y_pred": adapted_pred.tolist()
        }
    _log_scores(prefix, s, adapted, got["members"], parts, time.time() - t0)
    _write_predictions(folder, data, fold, logits, pred, adapted)
    result = FoldResult(
        fold=fold.number,
        test_speakers=list(fold.test_groups),
        validation_speakers=list(fold.validation_groups),
        training_files=training_files(data.manifest, fold),
        scores=s,
        y_true=y_test.tolist(),
        y_pred=pred.tolist(),
        history=got["members"][0]["history"],
        seconds=time.time() - t0,
        members=got["members"] if recipe["training"].members > 1 else None,
        adapted=adapted,
        parts=parts,
    )
    write_json(folder / "result.json", result.to_dict())
    return result


def train_folds(data, folds: list, recipe: dict, out: Path, *, info: dict, n_folds: int, get_trainer) -> list:
    """:func:`train_fold` for each of ``folds`` in turn; ``get_trainer()`` gives the trainer
    (built on first use). A Ctrl-C waits for a safe point between TensorFlow calls: Keras
    and TensorFlow can lose a KeyboardInterrupt raised inside them (see :mod:`ser.interrupts`)."""
    with interrupts.deferred():
        return [
            train_fold(data, fold, recipe, out, info=info, n_folds=n_folds, trainer=get_trainer())
            for fold in folds
        ]
