"""Cross-validation folds by speaker or session, and validation splits from training speakers.

Test speakers never appear in training or validation: every split here is made on groups
(speakers or sessions), and the validation set that chooses the best epoch is drawn from the
training groups of each fold only.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.checks import is_int
from ser.errors import ConfigError

PROTOCOL_KINDS = ("leave_one_group_out", "group_kfold")

#: Settings of a ``[protocol]`` section and their defaults (``kind`` has none).
PROTOCOL_DEFAULTS = {
    "group": "speaker",
    "k": 5,
    "seed": 0,
    "validation_fraction": 0.15,
    "validation_min_groups": 6,
}


def check_protocol(protocol: dict) -> dict:
    """Validate a ``[protocol]`` section early, before any corpus is loaded.

    Parameters
    ----------
    protocol : dict
        ``kind`` (one of :data:`PROTOCOL_KINDS`) and any of :data:`PROTOCOL_DEFAULTS`.

    Returns
    -------
    dict
        ``protocol`` itself.

    Raises
    ------
    ConfigError
        An unknown key or a value of the wrong type or range, naming the value received.
    """
    unknown = sorted(set(protocol) - {"kind", *PROTOCOL_DEFAULTS})
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {[f'protocol.{k}' for k in unknown]}; expected some of "
            f"{sorted({'kind', *PROTOCOL_DEFAULTS})}"
        )
    kind = protocol.get("kind")
    if kind not in PROTOCOL_KINDS:
        raise ConfigError(f"protocol kind must be one of {PROTOCOL_KINDS}. Received: kind={kind!r}")
    group = protocol.get("group", PROTOCOL_DEFAULTS["group"])
    if not isinstance(group, str) or not group:
        raise ConfigError(f"protocol.group must be a manifest column name. Received: group={group!r}")
    k = protocol.get("k", PROTOCOL_DEFAULTS["k"])
    if not is_int(k) or k < 2:
        raise ConfigError(f"protocol.k must be an integer >= 2. Received: k={k!r}")
    seed = protocol.get("seed", PROTOCOL_DEFAULTS["seed"])
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"protocol.seed must be an integer >= 0. Received: seed={seed!r}")
    fraction = protocol.get("validation_fraction", PROTOCOL_DEFAULTS["validation_fraction"])
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ConfigError(
            f"protocol.validation_fraction must be a number in (0, 1). Received: validation_fraction={fraction!r}"
        )
    min_groups = protocol.get("validation_min_groups", PROTOCOL_DEFAULTS["validation_min_groups"])
    if not is_int(min_groups) or min_groups < 2:
        raise ConfigError(
            "protocol.validation_min_groups must be an integer >= 2. "
            f"Received: validation_min_groups={min_groups!r}"
        )
    return protocol


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: row indices into the manifest."""

    number: int  # 1-based
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    test_groups: tuple
    validation_groups: tuple  # empty when validation holds utterances, not whole groups


def _groups(manifest: pd.DataFrame, group: str) -> np.ndarray:
    if group not in manifest.columns:
        raise ConfigError(f"protocol groups by {group!r} but the manifest has no such column")
    values = manifest[group]
    if values.isna().any():
        raise ConfigError(f"protocol groups by {group!r} but {int(values.isna().sum())} rows have no {group}")
    return values.astype(str).to_numpy()


def stratified_group_parts(groups: np.ndarray, labels: np.ndarray, k: int, seed: int) -> list[list]:
    """Deal groups into ``k`` parts that each hold every label in about the overall proportions.

    scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold` (groups shuffled
    with ``seed``, then placed one by one where they keep the parts' label distributions
    closest, ties going to the smallest part). Where it cannot make ``k`` non-empty parts
    (fewer utterances of every label than ``k``), groups are shuffled and dealt in turn.

    Parameters
    ----------
    groups : np.ndarray [shape=(n,)]
        The group (speaker, session) of each utterance.
    labels : np.ndarray [shape=(n,)]
        The label of each utterance.
    k : int
        Number of parts, at most the number of distinct groups.
    seed : int

    Returns
    -------
    list of list
        ``k`` sorted lists of groups; every group in exactly one.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    unique = np.array(sorted(set(groups)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "least populated class": ser reports classes itself
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            parts = [sorted(set(groups[test].tolist())) for _, test in splitter.split(groups, labels, groups)]
    except ValueError:
        parts = []
    if len(parts) != k or not all(parts):
        order = np.random.default_rng(seed).permutation(len(unique))
        parts = [sorted(unique[order[i::k]].tolist()) for i in range(k)]
    return parts


def fold_splits(manifest: pd.DataFrame, protocol: dict) -> list[tuple[tuple, np.ndarray]]:
    """The test groups and test rows of every fold.

    Parameters
    ----------
    manifest : pd.DataFrame
        With the column named by ``protocol["group"]`` (and ``label``, for k-fold).
    protocol : dict
        ``{"kind": "leave_one_group_out", "group": "speaker"}`` or
        ``{"kind": "group_kfold", "group": "speaker", "k": 5, "seed": 0}``. For k-fold the
        groups are shuffled with ``seed`` and dealt by :func:`stratified_group_parts`, so that
        each fold's test set (and so its training set) holds every class in about the
        corpus's proportions, with folds of similar size.

    Returns
    -------
    list of (test_groups, test_rows)
    """
    kind = protocol.get("kind")
    if kind not in PROTOCOL_KINDS:
        raise ConfigError(f"protocol kind must be one of {PROTOCOL_KINDS}. Received: kind={kind!r}")
    groups = _groups(manifest, protocol.get("group", "speaker"))
    unique = np.array(sorted(set(groups)))
    if len(unique) < 2:
        raise ConfigError(
            f"speaker-independent folds need at least 2 {protocol.get('group', 'speaker')}s; found {len(unique)}"
        )
    if kind == "leave_one_group_out":
        parts = [[g] for g in unique]
    else:
        k = int(protocol.get("k", 5))
        if k < 2:
            raise ConfigError(f"protocol.k must be an integer >= 2. Received: k={k}")
        if k > len(unique):
            group = protocol.get("group", "speaker")
            raise ConfigError(
                f"{k} folds need at least {k} {group}s; found {len(unique)}: "
                f"set fewer folds, e.g. --set protocol.k={len(unique)}"
            )
        labels = manifest["label"].astype(str).to_numpy()
        parts = stratified_group_parts(groups, labels, k, int(protocol.get("seed", 0)))
    return [(tuple(p), np.flatnonzero(np.isin(groups, p))) for p in parts]


def _validation_groups(groups: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> list:
    """About ``fraction`` of the groups (at least one, never all), chosen so that they hold
    every label in about the proportions of all the groups (:func:`stratified_group_parts`)."""
    unique = sorted(set(groups))
    n_val = min(max(1, int(round(fraction * len(unique)))), len(unique) - 1)
    # a part of the wanted size: validation itself, or (for fractions over a half) training
    size = min(n_val, len(unique) - n_val)
    parts = stratified_group_parts(groups, labels, max(2, int(round(len(unique) / size))), seed)
    part = min(parts, key=lambda p: abs(len(p) - size))  # the first of the closest size
    return sorted(part) if size == n_val else sorted(set(unique) - set(part))


def validation_split(
    manifest: pd.DataFrame,
    rows: np.ndarray,
    group: str,
    *,
    fraction: float = 0.15,
    min_groups: int = 6,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Split training rows into train and validation, by group where there are enough groups.

    With at least ``min_groups`` training groups, about ``fraction`` of them (at least one)
    are held out whole, so the choice of the best epoch measures generalisation to unseen
    speakers; they are chosen to hold every class in about the training rows' proportions
    (:func:`stratified_group_parts`). With fewer (e.g. the 2 speakers of TESS), a
    label-stratified ``fraction`` of the utterances is held out instead, and a warning says so.

    Returns
    -------
    train_rows, validation_rows, validation_groups
    """
    rows = np.asarray(rows)
    groups = _groups(manifest, group)[rows]
    labels = manifest["label"].astype(str).to_numpy()[rows]
    unique = np.array(sorted(set(groups)))
    if len(unique) >= min_groups:
        val_groups = _validation_groups(groups, labels, fraction, seed)
        is_val = np.isin(groups, val_groups)
        return rows[~is_val], rows[is_val], tuple(val_groups)
    warnings.warn(
        f"only {len(unique)} training {group}{'s' if len(unique) != 1 else ''}: validation uses "
        f"{fraction:.0%} of their utterances "
        f"instead of whole held-out {group}s",
        stacklevel=2,
    )
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(rows), dtype=bool)
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels == label)
        n_val = max(1, int(round(fraction * len(idx))))
        if len(idx) > 1:
            is_val[rng.choice(idx, size=n_val, replace=False)] = True
    return rows[~is_val], rows[is_val], ()


def validation_group(manifest: pd.DataFrame, protocol: dict) -> str:
    """The column validation splits are grouped by: speakers where the manifest has them.

    Folds may be grouped by session (IEMOCAP: 4 training sessions, too few to hold one out),
    but validation is held out by speaker, so the choice of the best epoch still measures unseen speakers.
    """
    return "speaker" if "speaker" in manifest.columns else protocol.get("group", "speaker")


def split_validation(manifest: pd.DataFrame, rows: np.ndarray, protocol: dict, *, seed: int):
    """:func:`validation_split` of ``rows`` with the protocol's settings."""
    train, val, groups = validation_split(
        manifest,
        rows,
        validation_group(manifest, protocol),
        fraction=float(protocol.get("validation_fraction", 0.15)),
        min_groups=int(protocol.get("validation_min_groups", 6)),
        seed=seed,
    )
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(
            f"cannot split {len(rows)} training utterances into training and validation sets; "
            "expected at least 2 utterances per class"
        )
    return train, val, groups


def coverage_problems(manifest: pd.DataFrame, fold: Fold, group: str = "speaker") -> list[str]:
    """What a fold lacks: one line per set (test, training, validation) missing a class.

    A class missing from a fold's training set because one ``group`` recorded all of it
    (and is tested in this fold) says so; no choice of folds can avoid that.

    Parameters
    ----------
    manifest : pd.DataFrame
        With ``label`` and the ``group`` column.
    fold : Fold
    group : str, default "speaker"
        The column the folds are grouped by.

    Returns
    -------
    list of str
        E.g. ``"fold 3: its training set has no 'sad' (recorded by speaker s07 only, tested
        in this fold)"``; empty when every set holds every class.
    """
    labels = manifest["label"].astype(str).to_numpy()
    groups = manifest[group].astype(str).to_numpy() if group in manifest.columns else None
    classes = sorted(set(labels))
    lines = []
    for name, rows in (("test", fold.test), ("training", fold.train), ("validation", fold.validation)):
        missing = [c for c in classes if c not in set(labels[rows])]
        if not missing:
            continue
        described = []
        for c in missing:
            owners = sorted(set(groups[labels == c])) if groups is not None else []
            if name != "test" and len(owners) == 1 and owners[0] in fold.test_groups:
                described.append(f"{c!r} (recorded by {group} {owners[0]} only, tested in this fold)")
            else:
                described.append(repr(c))
        lines.append(f"fold {fold.number}: its {name} set has no {', '.join(described)}")
    return lines


def make_folds(manifest: pd.DataFrame, protocol: dict, *, seed: int = 0, warn_for=None) -> list[Fold]:
    """All folds of ``protocol`` with their validation splits (see :func:`fold_splits`).

    Each fold whose test, training or validation set lacks a class gets a warning that names
    the fold and the class (:func:`coverage_problems`). ``warn_for``: fold numbers whose
    warnings are shown (None: all); the folds a run does not train still exist, but warnings
    about them would only confuse.
    """
    all_rows = np.arange(len(manifest))
    folds = []
    for number, (test_groups, test) in enumerate(fold_splits(manifest, protocol), start=1):
        rest = np.setdiff1d(all_rows, test)
        with warnings.catch_warnings():
            if warn_for is not None and number not in warn_for:
                warnings.simplefilter("ignore")
            train, val, val_groups = split_validation(manifest, rest, protocol, seed=seed + number)
            fold = Fold(number, train, val, test, test_groups, val_groups)
            for line in coverage_problems(manifest, fold, protocol.get("group", "speaker")):
                warnings.warn(line, stacklevel=2)
        folds.append(fold)
    return folds


def describe_protocol(protocol: dict, n_folds: int) -> str:
    """A one-line description of the protocol for reports."""
    group = protocol.get("group", "speaker")
    if protocol["kind"] == "leave_one_group_out":
        head = f"leave-one-{group}-out ({n_folds} folds)"
    else:
        head = f"{group}-grouped {n_folds}-fold cross-validation"
    # validation is held out by speaker even where folds go by session (see validation_group)
    held_out = "a validation split" if group == "speaker" else "validation speakers"
    return (
        f"{head}; test {group}s never seen in training; best epoch and fusion weights chosen on "
        f"{held_out} drawn from the training {group}s only"
    )


@dataclass(frozen=True)
class MemberSplit:
    """Training and validation rows of one ensemble member (see :func:`member_splits`)."""

    member: int  # 1-based
    seed: int
    train: np.ndarray
    validation: np.ndarray
    validation_groups: tuple


def member_splits(manifest: pd.DataFrame, fold: Fold | None, protocol: dict, training) -> list[MemberSplit]:
    """The split of each of ``training.members`` ensemble members of a fold (or of the final model).

    Member ``j`` (1-based) is trained with seed ``training.seed + j - 1`` and draws its
    validation split as a run with that seed would (:func:`make_folds`): from the fold's
    non-test rows only, so test speakers stay unseen whatever the member. Member 1's split is
    the fold's own. ``fold=None`` splits all rows (the final model).
    """
    if fold is None:
        rows, number = np.arange(len(manifest)), 0
    else:
        rows, number = np.union1d(fold.train, fold.validation), fold.number
    splits = []
    for j in range(int(training.members)):
        seed = int(training.seed) + j
        if j == 0 and fold is not None:
            train, val, groups = fold.train, fold.validation, fold.validation_groups
        else:
            train, val, groups = split_validation(manifest, rows, protocol, seed=seed + number)
        splits.append(MemberSplit(j + 1, seed, train, val, tuple(groups)))
    return splits
