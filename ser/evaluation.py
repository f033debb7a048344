"""Metrics: WA (accuracy), UA (mean per-class recall), macro-F1 and confusion matrices."""

from __future__ import annotations

import numpy as np

from ser.io import atomic_path


def scores(y_true, y_pred, num_classes: int) -> dict:
    """WA, UA and macro-F1 of integer predictions.

    UA averages the recall of the classes present in ``y_true`` (a fold that lacks a class
    cannot measure its recall); macro-F1 likewise.

    Parameters
    ----------
    y_true, y_pred : array-like of int [shape=(n,)]
    num_classes : int

    Returns
    -------
    dict with ``n``, ``wa``, ``ua``, ``macro_f1`` (floats in [0, 1]) and ``confusion``
    (list of lists, rows = true class, columns = predicted class).
    """
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(
            f"need two equal, non-empty 1-D label arrays. Received: {y_true.shape}, {y_pred.shape}"
        )
    present = np.unique(y_true)
    return {
        "n": int(y_true.size),
        "wa": float(np.mean(y_true == y_pred)),
        "ua": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).tolist(),
    }


def class_recalls(confusion, labels) -> dict:
    """Recall of each class that has examples, from a confusion matrix (rows = true class).

    Returns
    -------
    dict mapping each label with at least one example to its recall (a float in [0, 1]).
    """
    cm = np.asarray(confusion, dtype=float)
    return {label: float(cm[i, i] / cm[i].sum()) for i, label in enumerate(labels) if cm[i].sum() > 0}


def chance_levels(y_true) -> dict:
    """Chance levels of integer labels ``y_true``: ``ua`` of any input-blind guess (1 / the
    classes present) and ``wa`` of always guessing the largest class."""
    counts = np.bincount(np.asarray(y_true, dtype=int))
    counts = counts[counts > 0]
    return {"ua": 1.0 / len(counts), "wa": float(counts.max() / counts.sum())}


def plot_confusion(confusion, labels, path, title: str = "", row_labels=None) -> None:
    """Write a row-normalised confusion matrix (counts annotated) as a PNG.

    Parameters
    ----------
    confusion : array-like [shape=(len(row_labels), len(labels))]
        Counts; rows = true class, columns = predicted class.
    labels : list of str
        The predicted classes (columns), and the true ones unless ``row_labels`` is given.
    path : path
    title : str
    row_labels : list of str, optional
        The true classes (rows), where they differ from ``labels`` (a model scored on a
        corpus with fewer classes).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(labels if row_labels is None else row_labels)
    cm = np.asarray(confusion, dtype=float).reshape(len(rows), len(labels))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k, r = len(labels), len(rows)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * r))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(r):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(r), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    fig.tight_layout()

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
