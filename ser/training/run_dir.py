"""The run folder: ``run.json``, the refusal of another run's folder, finished folds.

A run folder holds one run: its ``run.json`` (format version, recipe, resolved settings,
corpus root) is written before any work, and a rerun continues it, skipping the folds
whose ``folds/fold_NN/result.json`` belongs to the same fold of the same corpus. A folder
that holds finished work (a fold result or the final model) of a run with other settings
or data, or written in another format, is refused; one that holds none may be restarted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ser.constants import FORMAT_VERSION
from ser.errors import ConfigError
from ser.functionals import FUNCTIONALS_VERSION
from ser.io import check_format_version, ensure_folder, log, read_json

#: Keys every fold's ``result.json`` must hold to be reused by a rerun.
FOLD_RESULT_KEYS = (
    "fold",
    "test_speakers",
    "n",
    "wa",
    "ua",
    "macro_f1",
    "confusion",
    "y_true",
    "y_pred",
    "history",
    "seconds",
)


def fold_dir(out: Path, number: int) -> Path:
    """``out/folds/fold_NN``."""
    return Path(out) / "folds" / f"fold_{number:02d}"


def run_info(recipe: dict, settings: dict, data_root: str) -> dict:
    """What ``run.json`` holds: the format version, the recipe's name, its resolved
    ``settings``, the corpus root, and the functionals' version when the model has the head."""
    info = {
        "format_version": FORMAT_VERSION,
        "recipe": recipe["name"],
        "settings": settings,
        "data_root": data_root,
    }
    if recipe["model"].functionals:
        info["functionals_version"] = FUNCTIONALS_VERSION
    return info


def has_results(out: Path) -> bool:
    """Whether a run folder holds finished work (a fold result or the final model)."""
    out = Path(out)
    return (out / "model.keras").exists() or any((out / "folds").glob("fold_*/result.json"))


def _comparable(settings) -> dict:
    """Settings without the recipe file's path (a recipe run by name or by folder is the same run)."""
    return {k: v for k, v in (settings or {}).items() if k != "path"}


def check_resume(out: Path, info: dict) -> None:
    """Refuse to continue in ``out`` a run other than ``info`` (:func:`run_info`).

    Only a folder with finished work is checked: its ``run.json`` must be of this
    :data:`~ser.constants.FORMAT_VERSION` (:func:`ser.io.check_format_version`), compute the
    same functionals, and hold the same settings and corpus root. Raises :class:`ConfigError`.
    """
    out = Path(out)
    if not has_results(out):
        return  # e.g. a try stopped by a wrong --data-root may be restarted with other settings
    previous = read_json(out / "run.json")
    check_format_version((previous or {}).get("format_version"), out / "run.json")
    old_version = previous.get("functionals_version")
    if (
        "functionals_version" in info
        and old_version is not None
        and old_version != info["functionals_version"]
    ):
        # its folds' scores and its model.keras come from other functionals: never mix them
        raise ConfigError(
            f"{out}: holds a run whose functionals head is of version {old_version} (this ser computes "
            f"version {info['functionals_version']}); use a new --out folder to train with this ser"
        )
    if (
        _comparable(previous.get("settings")) != _comparable(info["settings"])
        or previous.get("data_root") != info["data_root"]
        or old_version != info.get("functionals_version")
    ):
        raise ConfigError(
            f"{out}: holds a run with different settings or data; use a new --out folder "
            "(or delete this one) to start a different run"
        )


def default_cache_dir(out: Path) -> Path:
    """The feature cache beside the run folder (``out/../.ser-cache``, shared by the runs
    beside each other), or inside it where its parent is not writable."""
    cache_dir = Path(out).resolve().parent / ".ser-cache"
    try:
        ensure_folder(cache_dir, "feature cache folder")
    except ConfigError:
        cache_dir = Path(out) / ".ser-cache"
    return cache_dir


def training_files(manifest, fold) -> str:
    """A digest of the utterances a fold trains and validates on: a saved fold result is
    reused only by a run whose fold would train on the same files (e.g. not after a file
    left out by --skip-bad was fixed)."""
    ids = manifest["utt_id"].astype(str).to_numpy()
    text = "\n".join(ids[np.concatenate([fold.train, fold.validation])])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fold_result(folder: Path, fold, y: np.ndarray, files: str | None = None) -> dict | None:
    """A fold's saved ``result.json`` in ``folder`` if it belongs to this fold of this manifest, else None.

    A result that cannot be read, lacks a key, was computed on other test files or labels, or
    (``files``, see :func:`training_files`) trained on other files (the corpus changed
    between runs, e.g. files fixed or ``--skip-bad`` toggled) is not trusted: the fold is
    run again and its result replaced.
    """
    path = Path(folder) / "result.json"
    r = read_json(path)
    if r is None:
        if path.exists():
            log(f"{path}: unreadable; fold {fold.number} will be run again")
        return None
    expected = y[fold.test].tolist()
    ok = (
        isinstance(r, dict)
        and all(key in r for key in FOLD_RESULT_KEYS)
        and r["fold"] == fold.number
        and r["test_speakers"] == list(fold.test_groups)
        and r["y_true"] == expected
        and isinstance(r["y_pred"], list)
        and len(r["y_pred"]) == len(expected)
        and isinstance(r["history"], dict)
        and "best_epoch" in r["history"]
        and (files is None or r.get("training_files") == files)
    )
    if not ok:
        log(f"{path}: does not match fold {fold.number} of this corpus; the fold will be run again")
        return None
    return r


def finished_folds(out: Path, folds: list, data) -> dict:
    """``{fold number: result}`` of the ``folds`` whose saved result :func:`fold_result` trusts,
    for the prepared corpus ``data``."""
    found = {}
    for fold in folds:
        r = fold_result(fold_dir(out, fold.number), fold, data.y, training_files(data.manifest, fold))
        if r is not None:
            found[fold.number] = r
    return found
