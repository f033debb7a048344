"""A local pool of worker processes: how many, with how many threads each, and running
tasks in them (``--jobs``; used by ``ser train`` for folds and ``ser classify --list`` for
files).

Workers are started with ``spawn`` (never ``fork``: a forked copy of a process that has
started TensorFlow's thread pools can hang) and set their thread counts before TensorFlow
is imported. A worker whose parent dies (even ``kill -9``) exits within a second, so a rerun
never races an orphan over the same work. Ctrl-C reaches the parent alone, which stops the
workers.
"""

from __future__ import annotations

import os
import threading
import time

from ser.errors import ConfigError, SerError

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


def init_worker(threads: int, parent: int) -> None:
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
        initializer=init_worker,
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
