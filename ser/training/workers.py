"""Worker processes that train a run's folds side by side (``ser train --jobs``).

A recipe's folds are independent, and on a small CPU two processes of one thread each train
more than one process of two threads (TensorFlow's training step on small batches does not
use two threads fully). So ``ser train`` hands the folds to worker processes, each with its
share of the cores, and trains the final model itself once they are done. A worker's task
(:class:`FoldTask`) names the run and its folds; the worker prepares the corpus again from
the feature cache its parent filled and calls :func:`ser.training.fold.train_fold` for each.

The processes themselves come from :mod:`ser.pool` (spawned, one share of the cores each,
gone when their parent dies).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser.data import release_workers
from ser.pool import run_in_workers, threads_per_worker
from ser.recipe import load_recipe
from ser.training.fit import Trainer
from ser.training.fold import model_info, train_folds
from ser.training.prepare import load_manifest, parse_folds, prepare_corpus, run_folds


@dataclass(frozen=True)
class FoldTask:
    """What a worker needs to train some folds of a run: the run's recipe and overrides,
    corpus root, run folder, feature cache, ``--skip-bad``, and its folds (``"1,4"``)."""

    recipe_name: str
    overrides: tuple
    data_root: str
    out_dir: str
    cache_dir: str
    skip_bad: bool
    folds: str


def prepared_for(task: FoldTask):
    """``(recipe, prepared corpus)`` of ``task``'s run, from the feature cache its parent filled
    (the packed features opened read-only, :mod:`ser.store`).

    The worker does not decode the corpus again: its parent did, and a file it found
    unusable fails the worker's feature extraction the same way (and is skipped the same way).
    """
    recipe = load_recipe(task.recipe_name, list(task.overrides))
    manifest = load_manifest(recipe, task.data_root, skip_bad=task.skip_bad, decode=False, progress=False)
    data = prepare_corpus(
        recipe,
        manifest,
        skip_bad=task.skip_bad,
        cache_dir=task.cache_dir,
        progress=False,
        folds=task.folds,
        n_jobs=1,  # its features are in the cache its parent filled
    )
    return recipe, data


def train_task(task: FoldTask) -> None:
    """A worker's share of a run: prepare the corpus from the cache and train its folds."""
    recipe, data = prepared_for(task)
    # the parent has shown the folds' warnings
    all_folds = run_folds(data.manifest, recipe, warn_for=())
    chosen = parse_folds(task.folds, len(all_folds))
    train_folds(
        data,
        [fold for fold in all_folds if fold.number in chosen],
        recipe,
        Path(task.out_dir),
        info=model_info(recipe),
        n_folds=len(all_folds),
        get_trainer=functools.cache(lambda: Trainer(data.labels, recipe)),
    )


def lanes(folds: list, n: int) -> list[str]:
    """``folds`` dealt to ``n`` workers, largest first to the least loaded (``"1,4"`` per worker)."""
    load = [0] * n
    dealt = [[] for _ in range(n)]
    for fold in sorted(folds, key=lambda f: -len(f.train)):
        i = int(np.argmin(load))
        dealt[i].append(fold.number)
        load[i] += len(fold.train)
    return [",".join(str(k) for k in sorted(lane)) for lane in dealt if lane]


def data_bytes(data) -> int:
    """Bytes of the corpus a worker holds in memory: its functionals and the features'
    index (the features themselves are read from the feature cache, :mod:`ser.store`)."""
    total = data.features.store.index.nbytes
    if data.functionals is not None:
        total += data.functionals.nbytes
    return int(total)


def train_in_workers(folds: list, jobs: int, **task) -> None:
    """Train ``folds`` in ``jobs`` worker processes; ``task``: the fields of :class:`FoldTask`
    but ``folds``. Each worker writes its folds' folders as :func:`train_fold` does."""
    release_workers()  # their memory goes to the fold workers
    print(
        f"training {len(folds)} folds in {jobs} worker processes "
        f"({threads_per_worker(jobs)} thread(s) each; --jobs 1 trains them here)",
        file=sys.stderr,
        flush=True,
    )
    tasks = [(FoldTask(**task, folds=lane),) for lane in lanes(folds, jobs)]
    run_in_workers(train_task, tasks, jobs)
