"""A run's folds and final model as Ray tasks (``ser train ... --executor ray [--address HOST:PORT]``).

The local process pool (:mod:`ser.training.workers`) stays the default; with ``--executor
ray`` each pending fold is one Ray task (:func:`ser.training.workers.train_task`, the same
work a local worker does), and once every fold is finished the final model is one more
(:func:`final_task`). A task prepares the corpus from the feature cache its driver filled
and opens the packed features read-only (:mod:`ser.store`), so on a cluster the corpus, the
run folder and the cache must be on a file system every node mounts at the same path.

A task whose worker process dies (killed, out of memory, a node lost) is retried up to
:data:`MAX_RETRIES` times by Ray; an error of the run itself (a :class:`ser.errors.SerError`)
is not retried and is raised here with its one-line message. Finished folds are written
atomically by the task, so a rerun skips them as a local rerun does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ser.cluster import cluster_cpus, connect
from ser.errors import SerError
from ser.training.workers import FoldTask, train_task

#: Retries of a task whose worker process died (Ray's ``max_retries``).
MAX_RETRIES = 3

#: Thread variables set in a task's worker process before TensorFlow starts.
THREAD_VARIABLES = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def final_task(task: FoldTask, cv: dict) -> None:
    """Train and write the run's final model (:func:`ser.training.final.train_final`) from
    the feature cache; ``cv``: the cross-validation scores its metadata carries."""
    import functools

    from ser.training.final import train_final
    from ser.training.fit import Trainer
    from ser.training.fold import model_info
    from ser.training.workers import prepared_for

    recipe, data = prepared_for(task)
    trainer = functools.cache(lambda: Trainer(data.labels, recipe))
    train_final(data, recipe, Path(task.out_dir), info=model_info(recipe) | {"cv": cv}, trainer=trainer())


def _task(function, *args):
    """What a Ray task runs: ``function(*args)``, without the warnings its driver has shown once."""
    import warnings

    warnings.simplefilter("ignore")
    return function(*args)


def remote_function(ray, cpus: int):
    """:func:`_task` as a Ray remote function of ``cpus`` CPUs (and as many TensorFlow
    threads), retried :data:`MAX_RETRIES` times when its worker process dies."""
    env = {name: str(cpus) for name in THREAD_VARIABLES} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    return ray.remote(num_cpus=cpus, max_retries=MAX_RETRIES, runtime_env={"env_vars": env})(_task)


def run_on_ray(calls: list, *, address: str | None, cpus_per_task: int | None = None) -> list:
    """``[function(*args) for function, args in calls]``, each a Ray task; waits for all.

    Parameters
    ----------
    calls : list of (callable, tuple)
    address : str or None
        ``HOST:PORT`` of a Ray cluster's head (:func:`ser.cluster.connect`); None: a Ray
        instance on this machine.
    cpus_per_task : int or None
        CPUs (and TensorFlow threads) per task; None: the cluster's CPUs shared by the tasks.

    Raises
    ------
    SerError
        A task's own error (its message), or a task that failed after its retries.
    """
    ray = connect(address)
    cpus = cpus_per_task or max(1, cluster_cpus(ray) // max(len(calls), 1))
    task = remote_function(ray, cpus)
    refs = [task.remote(function, *args) for function, args in calls]
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        _cancel(ray, refs)
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        if isinstance(cause, SerError):
            raise cause from None
        raise SerError(
            f"a Ray task failed ({type(cause or exc).__name__}: {cause or exc}); finished folds are kept"
        ) from None
    except ray.exceptions.RayError as exc:  # a worker died more than MAX_RETRIES times, a node lost, ...
        _cancel(ray, refs)
        raise SerError(
            f"a Ray task failed after {MAX_RETRIES} retries ({type(exc).__name__}); finished folds are kept: rerun"
        ) from None
    except BaseException:  # Ctrl-C: the tasks stop too
        _cancel(ray, refs)
        raise


def _cancel(ray, refs) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already finished or gone
            pass


def train_folds_on_ray(folds: list, *, address: str | None, **task) -> None:
    """Train ``folds`` as Ray tasks, one per fold; ``task``: the fields of
    :class:`ser.training.workers.FoldTask` but ``folds``. Nothing to train: nothing is started."""
    if not folds:
        return
    print(
        f"training {len(folds)} fold(s) as Ray tasks ({'cluster at ' + address if address else 'on this machine'})",
        file=sys.stderr,
        flush=True,
    )
    run_on_ray([(train_task, (FoldTask(**task, folds=str(f.number)),)) for f in folds], address=address)


def train_final_on_ray(cv: dict, *, address: str | None, **task) -> None:
    """Train the final model as one Ray task (:func:`final_task`)."""
    run_on_ray([(final_task, (FoldTask(**task, folds="all"), cv))], address=address)
