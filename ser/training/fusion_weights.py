"""The CNN's fusion weights with the functionals head, chosen on validation speakers, and a
fold's logits fused with the head (:mod:`ser.fusion` holds the head and the fusion itself)."""

from __future__ import annotations

import numpy as np

from ser.adaptation import speaker_adapted_logits
from ser.evaluation import scores
from ser.fusion import FUSION_WEIGHT, FunctionalsHead, choose_fusion_weight, fuse, speaker_log_probabilities
from ser.runtime import predict_logits
from ser.store import take


def validation_logits(model, split, features, speakers, recipe) -> dict:
    """The CNN's logits on a split's validation rows (plain, and adapted to each speaker
    where the model has blocks to adapt).

    Returns
    -------
    dict
        ``{"validation_rows", "validation_cnn"[, "validation_cnn_adapted"]}``; ``{}`` without
        validation rows.
    """
    rows = np.asarray(split.validation)
    if rows.size == 0:
        return {}
    val_features = take(features, rows)
    multiple = recipe["model"].time_stride
    out = {"validation_rows": rows, "validation_cnn": predict_logits(model, val_features, multiple=multiple)}
    blocks = recipe["model"].adapt_blocks
    if blocks:
        out["validation_cnn_adapted"] = speaker_adapted_logits(
            model, val_features, speakers[rows], blocks, multiple=multiple
        )
    return out


def fusion_weights(functionals, y, speakers, train_rows, validation: dict, n_classes: int) -> tuple:
    """The CNN's fusion weights ``(single file, speaker-adapted)``, chosen on validation speakers.

    A head fitted on ``train_rows`` alone scores the validation rows; each weight is the one
    of :data:`ser.fusion.FUSION_GRID` whose fusion with the CNN's validation logits
    (``validation``, from :func:`validation_logits`) predicts them best (see
    :func:`ser.fusion.choose_fusion_weight`). Without validation rows both are
    :data:`ser.fusion.FUSION_WEIGHT`.
    """
    rows = validation.get("validation_rows")
    if rows is None or len(rows) == 0 or len(train_rows) == 0:
        return FUSION_WEIGHT, FUSION_WEIGHT
    train_rows = np.asarray(train_rows)
    head = FunctionalsHead.fit(functionals[train_rows], y[train_rows], speakers[train_rows], n_classes)
    single = choose_fusion_weight(
        validation["validation_cnn"], head.log_probabilities(functionals[rows, 0]), y[rows]
    )
    adapted = single
    if head.speaker is not None:
        own = speaker_log_probabilities(head, functionals[rows, 0], speakers[rows])
        cnn = validation.get("validation_cnn_adapted", validation["validation_cnn"])
        adapted = choose_fusion_weight(cnn, own, y[rows])
    return single, adapted


def member_fusion_weights(model, split, data, recipe) -> tuple:
    """``(weights, validation logits)`` of one trained member on the prepared corpus ``data``:
    the fusion weights it chooses on its own validation speakers (:func:`fusion_weights`),
    and the logits they came from."""
    val = validation_logits(model, split, data.features, data.speakers, recipe)
    weights = fusion_weights(data.functionals, data.y, data.speakers, split.train, val, len(data.labels))
    return weights, val


def ensemble_weights(member_weights: list) -> tuple:
    """The fusion weights of an ensemble: the mean of those its members chose, each on its
    own validation speakers, so every member's split counts and no member's choice looks at
    speakers it trained on."""
    single, adapted = np.mean(np.asarray(member_weights, dtype=np.float64), axis=0)
    return float(single), float(adapted)


def fuse_fold(logits, adapted_logits, functionals, y, speakers, fold, n_classes, weights):
    """Fold logits fused with the functionals head (:mod:`ser.fusion`).

    The head is fitted on the fold's training speakers (train + validation rows); the test
    rows are scored with the global regression, and, for the adapted scores, with the
    per-speaker one (each test speaker's own functionals as the reference, label-free).

    Returns
    -------
    (fused logits, fused adapted logits or None, parts)
        ``parts``: ``{"cnn": ..., "functionals": ..., "fusion_weights": ...}``, the scores of
        each expert alone and the weights used.
    """
    train = np.concatenate([fold.train, fold.validation])
    head = FunctionalsHead.fit(functionals[train], y[train], speakers[train], n_classes)
    head.weight, head.speaker_weight = weights
    y_test = y[fold.test]
    plain = head.log_probabilities(functionals[fold.test, 0])
    cnn = scores(y_test, logits.argmax(1), n_classes)
    parts = {
        "cnn": {"wa": cnn["wa"], "ua": cnn["ua"], "macro_f1": cnn["macro_f1"]},
        "functionals": {"ua": scores(y_test, plain.argmax(1), n_classes)["ua"]},
        "fusion_weights": {"single": head.weight, "adapted": head.speaker_weight},
    }
    fused_adapted = None
    if adapted_logits is not None:
        own = speaker_log_probabilities(head, functionals[fold.test, 0], speakers[fold.test])
        cnn_adapted = scores(y_test, adapted_logits.argmax(1), n_classes)
        parts["cnn"] |= {"adapted_wa": cnn_adapted["wa"], "adapted_ua": cnn_adapted["ua"]}
        parts["functionals"]["adapted_ua"] = scores(y_test, own.argmax(1), n_classes)["ua"]
        fused_adapted = fuse(adapted_logits, own, head.speaker_weight)
    return fuse(logits, plain, head.weight), fused_adapted, parts
