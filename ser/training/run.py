"""``run_recipe``: train and evaluate a recipe end to end (what ``ser train`` calls).

The run folder holds ``run.json`` and ``manifest.csv`` (:mod:`ser.training.run_dir`), one
folder per finished fold (:mod:`ser.training.fold`), the report (:mod:`ser.training.report`),
the final model ``model.keras`` (:mod:`ser.training.final`) and ``tensorboard/`` (training
curves per fold). Every artefact is written atomically, so a crash (even ``kill -9``) never
leaves a truncated file, and rerunning the same command continues where it stopped.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

from ser.cluster import EXECUTORS, import_ray
from ser.errors import ConfigError
from ser.io import atomic_path, ensure_folder, log, write_json
from ser.pool import worker_count
from ser.protocol import describe_protocol
from ser.recipe import load_recipe, recipe_to_dict
from ser.training.final import train_final
from ser.training.fit import Trainer
from ser.training.fold import model_info, train_folds
from ser.training.init import check_init_leak, load_init, speakers_by_corpus, trained_on
from ser.training.prepare import check_labels, chosen_folds, load_manifest, prepare_corpus, run_folds
from ser.training.report import build_results, write_report
from ser.training.run_dir import check_resume, default_cache_dir, finished_folds, run_info
from ser.training.sources import per_corpus, resolve_roots, tested_part
from ser.training.workers import data_bytes, train_in_workers


def with_shortcuts(overrides, *, epochs=None, seed=None, members=None, init=None) -> list[str]:
    """``overrides`` with ``--epochs``, ``--seed``, ``--members`` and ``--init`` (made
    absolute, so that worker processes find it) added as ``training.*=`` ones."""
    overrides = list(overrides or [])
    for key, value in (("epochs", epochs), ("seed", seed), ("members", members)):
        if value is not None:
            overrides.append(f"training.{key}={int(value)}")
    if init is not None:
        overrides.append(f"training.init={json.dumps(os.path.abspath(init))}")
    return overrides


def _trained_on(recipe: dict, manifest) -> dict:
    """What the run's models record of their data (:func:`ser.training.init.trained_on`),
    once an init (``training.init``) is checked not to know any test speaker."""
    init = None
    if recipe["training"].init:
        init = load_init(recipe["training"].init)
        check_init_leak(init, speakers_by_corpus(tested_part(manifest, recipe)[0], recipe["corpus"]["name"]))
    return trained_on(manifest, recipe["corpus"]["name"], init)


def _prepare_run(recipe, data_root: str, out: Path, *, folds, skip_bad, cache_dir, progress):
    """Check the corpus (before ``out`` is touched: a refused run writes nothing), then write
    ``run.json`` and ``manifest.csv`` and return ``(out, cache_dir, prepared corpus, what
    the models are trained on)`` (``run.json``'s ``trained_on``)."""
    info = run_info(recipe, recipe_to_dict(recipe), data_root)
    check_resume(out, info)
    log(f"ser train {recipe['name']}: loading {recipe['corpus']['name']} from {data_root}")
    manifest = load_manifest(recipe, data_root, skip_bad=skip_bad, progress=progress)
    prepare_args = {"skip_bad": skip_bad, "progress": progress, "folds": folds}
    check_labels(manifest, recipe, folds)
    info["trained_on"] = _trained_on(recipe, manifest)
    out = ensure_folder(out)
    write_json(out / "run.json", info)
    cache_dir = default_cache_dir(out) if cache_dir is None else cache_dir
    data = prepare_corpus(recipe, manifest, cache_dir=cache_dir, **prepare_args)
    with atomic_path(out / "manifest.csv") as tmp:
        data.manifest.to_csv(tmp, index=False)
    return out, cache_dir, data, info["trained_on"]


def run_recipe(
    recipe_name: str,
    *,
    data_root,
    out_dir,
    folds="all",
    epochs: int | None = None,
    seed: int | None = None,
    members: int | None = None,
    overrides=(),
    skip_bad: bool = False,
    final_model: bool = True,
    cache_dir=None,
    progress: bool = True,
    jobs=1,
    executor: str = "local",
    address: str | None = None,
    init=None,
) -> dict:
    """Run a recipe end to end (see the module docstring); returns the results dict.

    Parameters
    ----------
    recipe_name : str
        A recipe name (``ser/recipes/``) or a recipe folder.
    data_root : path
        The corpus folder (or CSV for ``custom``).
    out_dir : path
        Output folder; rerunning with the same folder resumes.
    folds : "all" or str
        Comma list of 1-based folds to run now.
    epochs, seed, members : int or None
        Shortcuts for ``--set training.epochs=`` / ``training.seed=`` / ``training.members=``.
    overrides : list of str
        ``key=value`` recipe overrides.
    skip_bad : bool
        Leave out the files whose audio cannot be used (else: refuse the corpus, naming them).
    final_model : bool
        Train ``model.keras`` on all speakers once every fold is done.
    cache_dir : path or None
        Feature cache (default: ``<out_dir>/../.ser-cache`` shared by runs beside each other).
    progress : bool
        Show progress bars while computing features.
    jobs : int or "auto"
        Train this many folds at once, each in a worker process with its share of the CPUs
        (:mod:`ser.training.workers`); ``"auto"`` (what ``ser train`` uses): one per CPU, as
        memory allows. Folds are the same either way, up to floating-point rounding (a worker
        uses fewer threads). The final model is trained here once the folds are done.
    executor : "local" or "ray"
        ``"ray"``: the folds, then the final model, run as Ray tasks
        (:mod:`ser.training.ray_tasks`; ``jobs`` is not used), on the cluster at ``address``
        (``HOST:PORT``) or, without one, on a Ray instance on this machine.

    init : path or None
        Shortcut for ``--set training.init=``: start every model from this trained model's
        weights (:mod:`ser.training.init`); refused if it saw any of the run's speakers.

    Returns
    -------
    dict
        The contents of ``results.json`` (``{}`` when no fold is finished yet).
    """
    t_start = time.time()
    overrides = with_shortcuts(overrides, epochs=epochs, seed=seed, members=members, init=init)
    recipe = load_recipe(recipe_name, overrides)
    ray = _ray_tasks(executor)  # (without Ray installed: one line naming the extra, before any work)
    data_root = resolve_roots(recipe, data_root)  # absolute, as the loader names it (and ser check)
    out, cache_dir, data, seen = _prepare_run(
        recipe,
        data_root,
        Path(out_dir),
        folds=folds,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        progress=progress,
    )
    chosen = chosen_folds(data.manifest, recipe, folds)
    all_folds = run_folds(data.manifest, recipe, warn_for=chosen)
    protocol = describe_protocol(recipe["protocol"], len(all_folds))
    log(
        f"{len(data.manifest)} files, {data.manifest['speaker'].nunique()} speakers, "
        f"classes {data.labels}; {protocol}"
    )
    info = model_info(recipe) | seen
    get_trainer = functools.cache(lambda: Trainer(data.labels, recipe))  # built and traced once
    pending = _pending(out, all_folds, chosen, data)
    task = {"recipe_name": recipe_name, "overrides": tuple(overrides), "data_root": data_root}
    task |= {"out_dir": str(out), "cache_dir": str(cache_dir), "skip_bad": skip_bad}
    if ray is not None:
        ray.train_folds_on_ray(pending, address=address, **task)
    elif (n_jobs := worker_count(jobs, len(pending), data_bytes(data))) > 1:
        train_in_workers(pending, n_jobs, **task)
    else:
        train_folds(data, pending, recipe, out, info=info, n_folds=len(all_folds), get_trainer=get_trainer)
    results = _report(out, data, recipe, all_folds, protocol, seen)
    if final_model and not results.get("complete"):
        log("final model: trained once every fold is done (run the remaining folds, or all)")
    elif final_model and not (out / "model.keras").is_file():
        cv = {"protocol": protocol, "ua_mean": results["ua_mean"], "wa_mean": results["wa_mean"]}
        if ray is not None:
            ray.train_final_on_ray(cv, address=address, **task)
        else:
            train_final(data, recipe, out, info=info | {"cv": cv}, trainer=get_trainer())
    get_trainer.cache_clear()
    _clear_session()
    log(f"done in {time.time() - t_start:.0f}s; outputs in {out}")
    return results


def _ray_tasks(executor: str):
    """:mod:`ser.training.ray_tasks` for ``executor="ray"`` (None for ``"local"``)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {list(EXECUTORS)}. Received: {executor!r}")
    if executor == "local":
        return None
    import_ray()  # one line naming the extra, before anything is trained
    from ser.training import ray_tasks

    return ray_tasks


def _pending(out: Path, all_folds: list, chosen: list, data) -> list:
    """The chosen folds not finished in an earlier run (those are logged as kept)."""
    earlier = finished_folds(out, [f for f in all_folds if f.number in chosen], data)
    for number, r in earlier.items():
        log(f"fold {number}/{len(all_folds)} done in an earlier run (UA {r['ua']:.3f}): kept")
    return [f for f in all_folds if f.number in chosen and f.number not in earlier]


def _report(out: Path, data, recipe: dict, all_folds: list, protocol: str, seen: dict) -> dict:
    """The results of every finished fold, written as the report; ``{}`` when none is."""
    done = list(finished_folds(out, all_folds, data).values())
    if not done:
        return {}
    results = build_results(
        done,
        recipe,
        labels=data.labels,
        n_folds=len(all_folds),
        protocol=protocol,
        settings=recipe_to_dict(recipe),
        seconds=data.seconds,
        trained_on=seen,
    )
    if "corpus" in data.manifest.columns:  # several corpora: each one's scores too
        results["per_corpus"] = per_corpus(done, all_folds, data.manifest, len(data.labels))
    write_report(out, results, len(all_folds))
    return results


def _clear_session() -> None:
    import keras

    keras.backend.clear_session()
