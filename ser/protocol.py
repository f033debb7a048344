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


def fold_splits(manifest: pd.DataFrame, protocol: dict) -> list[tuple[tuple, np.ndarray]]:
    """The test groups and test rows of every fold.

    Parameters
    ----------
    manifest : pd.DataFrame
        With the column named by ``protocol["group"]``.
    protocol : dict
        ``{"kind": "leave_one_group_out", "group": "speaker"}`` or
        ``{"kind": "group_kfold", "group": "speaker", "k": 5, "seed": 0}``. For k-fold the
        groups are shuffled with ``seed`` (so folds mix genders) and dealt into k folds of
        near-equal group counts.

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
        order = np.random.default_rng(int(protocol.get("seed", 0))).permutation(len(unique))
        parts = [sorted(unique[order[i::k]].tolist()) for i in range(k)]
    return [(tuple(p), np.flatnonzero(np.isin(groups, p))) for p in parts]


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
    are held out whole, so the choice of the best epoch measures generalisation to unseen speakers. With
    fewer (e.g. the 2 speakers of TESS), a label-stratified ``fraction`` of the utterances
    is held out instead, and a warning says so.

    Returns
    -------
    train_rows, validation_rows, validation_groups
    """
    rows = np.asarray(rows)
    rng = np.random.default_rng(seed)
    groups = _groups(manifest, group)[rows]
    unique = np.array(sorted(set(groups)))
    if len(unique) >= min_groups:
        # at least one group, and never all of them: training keeps at least one
        n_val = min(max(1, int(round(fraction * len(unique)))), len(unique) - 1)
        val_groups = sorted(rng.choice(unique, size=n_val, replace=False).tolist())
        is_val = np.isin(groups, val_groups)
        return rows[~is_val], rows[is_val], tuple(val_groups)
    warnings.warn(
        f"only {len(unique)} training {group}{'s' if len(unique) != 1 else ''}: validation uses "
        f"{fraction:.0%} of their utterances "
        f"instead of whole held-out {group}s",
        stacklevel=2,
    )
    labels = manifest["label"].to_numpy()[rows]
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


def make_folds(manifest: pd.DataFrame, protocol: dict, *, seed: int = 0, warn_for=None) -> list[Fold]:
    """All folds of ``protocol`` with their validation splits (see :func:`fold_splits`).

    ``warn_for``: fold numbers whose validation warnings are shown (None: all); the folds
    a run does not train still exist, but warnings about them would only confuse.
    """
    all_rows = np.arange(len(manifest))
    folds = []
    for number, (test_groups, test) in enumerate(fold_splits(manifest, protocol), start=1):
        rest = np.setdiff1d(all_rows, test)
        with warnings.catch_warnings():
            if warn_for is not None and number not in warn_for:
                warnings.simplefilter("ignore")
            train, val, val_groups = split_validation(manifest, rest, protocol, seed=seed + number)
        folds.append(Fold(number, train, val, test, test_groups, val_groups))
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
