"""Worker processes that train a run's folds side by side (``ser train --jobs``).

A recipe's folds are independent, and on a small CPU two processes of one thread each train
more than one process of two threads (TensorFlow's training step on small batches does not
use two threads fully). So ``ser train`` hands the folds to worker processes, each with its
share of the cores, and trains the final model itself once they are done. A worker's task
(:class:`FoldTask`) names the run and its folds; the worker prepares the corpus again from
the feature cache its parent filled and calls :func:`ser.training.fold.train_fold` for each.

Workers are started with ``spawn`` (never ``fork``: a forked copy of a process that has
started TensorFlow's thread pools can hang) and set their thread counts before TensorFlow
is imported. A worker whose parent dies (even ``kill -9``) exits within a second, so a rerun
never races an orphan over the same fold.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser.data import release_workers
from ser.errors import ConfigError, SerError
from ser.recipe import load_recipe
from ser.training.fit import Trainer
from ser.training.fold import model_info, train_folds
from ser.training.prepare import load_manifest, parse_folds, prepare_corpus, run_folds

#: Memory a worker needs beside the features it loads: TensorFlow, the model, its optimiser
#: and batches.
WORKER_BASE_BYTES = 1_500_000_000


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(jobs: int) -> int:
    """Threads each of ``jobs`` workers gets: its share of the usable CPUs, at least one."""
    return max(1, usable_cpus() // jobs)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def worker_count(jobs, tasks: int, data_bytes: int = 0) -> int:
    """How many worker processes to use for ``tasks`` independent tasks; 1 means none.

    ``jobs`` is a positive int (at most that many) or ``"auto"``: one per usable CPU, no more
    than the tasks, and no more than fit in 80% of the available memory, each worker needing
    :data:`WORKER_BASE_BYTES` plus ``data_bytes`` (the features it loads).
    """
    if tasks <= 1:
        return 1
    if jobs == "auto" or jobs is None:
        n = min(usable_cpus(), tasks)
        memory = available_memory()
        if memory is not None:
            n = min(n, int(0.8 * memory // (WORKER_BASE_BYTES + max(int(data_bytes), 0))))
        return max(1, n)
    return max(1, min(int(jobs), tasks))


def parse_jobs(text):
    """``--jobs`` as given: ``"auto"`` or a positive integer."""

    if text is None or str(text).strip().lower() == "auto":
        return "auto"
    try:
        n = int(str(text).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--jobs: expected 'auto' or a positive integer, got {text!r}")
    return n


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: stop at once, its rerun will redo this work
        time.sleep(0.5)


def _init_worker(threads: int, parent: int) -> None:
    """Runs first in each spawned worker: thread counts, quiet warnings, parent watch."""
    import signal
    import warnings

    # Ctrl-C reaches the whole process group: the parent alone handles it, and stops workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    for name in (
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    ):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:  # numpy's BLAS was loaded with the module that holds the task: limit it now
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    # the parent has already shown the corpus's warnings once
    warnings.simplefilter("ignore")
    # tqdm's default lock is a multiprocessing semaphore; a worker stopped by the parent
    # could not release it, and Python would warn of a leaked semaphore at exit
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def run_in_workers(function, tasks: list, jobs: int) -> list:
    """``[function(*task) for task in tasks]``, computed by ``jobs`` spawned processes.

    Each worker gets :func:`threads_per_worker` threads. The first task to
    fail stops the others (its exception is raised here, e.g. a
    :class:`ser.errors.SerError` with its one-line message); so does Ctrl-C. Work a task
    finished and saved before that is kept.
    """
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = threads_per_worker(jobs)
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads, os.getpid()),
    )
    futures = []
    try:
        futures = [pool.submit(function, *task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        results = [future.result() for future in futures]
    except BrokenProcessPool:
        _stop(pool, futures)
        raise SerError(
            "a worker process died (out of memory?); finished folds are kept: rerun with --jobs 1"
        ) from None
    except BaseException:  # a task's error, or Ctrl-C: the other workers stop too
        _stop(pool, futures)
        raise
    pool.shutdown(wait=True)
    return results


def _stop(pool, futures) -> None:
    for future in futures:
        future.cancel()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()
    pool.shutdown(wait=True, cancel_futures=True)


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
