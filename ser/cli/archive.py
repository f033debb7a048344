"""``ser classify --list``: classify an archive of files into one resumable JSON-lines file.

Each file's line is the object ``ser classify --json`` prints for it
(:func:`ser.cli.classify.json_result`), written whole as soon as the file is done
(:class:`ser.io.JsonLines`), so a run stopped any way (Ctrl-C, ``kill -9``, a power cut) is
resumed by rerunning it: the files already in the output are skipped.

Decoding, features and functionals take nearly all of a short file's time (the model's forward
pass is a few per cent of it), so the files are spread over worker processes that each load the
model once and classify whole files (``--jobs``), or over the actors of a Ray cluster
(``--executor ray``, :mod:`ser.cluster`), each likewise holding the model. Lines come in the
order the files finish, not the list's.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ser import interrupts
from ser.classifier import EmotionClassifier
from ser.cli.classify import json_result
from ser.cluster import EXECUTORS, cluster_cpus, connect
from ser.errors import ConfigError, SerError
from ser.io import JsonLines, log
from ser.pool import init_worker, parse_jobs, threads_per_worker, worker_count
from ser.windows import check_window

#: Files a Ray actor classifies per call (fewer round trips to the driver).
RAY_CHUNK = 8

#: Files queued per local worker beyond the one it is classifying.
QUEUE_PER_WORKER = 4


def read_list(source: str, stdin=None) -> list[str]:
    """The audio paths of a list file: one per line, blank lines and ``#`` comments skipped,
    surrounding white space stripped, each path once (its first line). ``-`` reads ``stdin``
    (default :data:`sys.stdin`). Relative paths are taken from the current folder, as on the
    command line.

    Raises
    ------
    ConfigError
        The list file is missing or unreadable.
    """
    if source == "-":
        lines = (stdin or sys.stdin).read().splitlines()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(
                f"{source}: cannot read the list ({reason}); expected a text file of audio paths, one per "
                "line (or - for standard input)"
            ) from None
    paths = (line.strip() for line in lines)
    return list(dict.fromkeys(p for p in paths if p and not p.startswith("#")))


def classify_list(
    model_path: str,
    list_file: str,
    out: str,
    *,
    jobs="auto",
    window: float | None = None,
    hop: float | None = None,
    executor: str = "local",
    address: str | None = None,
    stdin=None,
) -> int:
    """``ser classify --list``: classify the files of ``list_file`` into the JSON-lines ``out``.

    Parameters
    ----------
    model_path : str
        A ``model.keras``, a run folder or an export (run without TensorFlow).
    list_file : str
        See :func:`read_list` (``"-"``: standard input).
    out : str
        The JSON-lines file; files already in it are skipped, a partial last line is cut.
    jobs : int or "auto"
        Worker processes (local) or actors (Ray); ``"auto"``: one per CPU (of the cluster).
    window, hop : float or None
        As ``ser classify --window/--hop``.
    executor : {"local", "ray"}
    address : str or None
        ``HOST:PORT`` of a Ray cluster's head (with ``executor="ray"``); None: a local instance.

    Returns
    -------
    int
        0 if every file of this run was classified, 1 if any gave an error line.

    Raises
    ------
    ConfigError
        Bad list file, output, window, jobs, executor, or no Ray where it is asked for.
    ModelError
        The model cannot be loaded (checked before any file is read).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: expected one of {', '.join(EXECUTORS)}. Received: {executor!r}")
    if address and executor != "ray":
        raise ConfigError(f"--address {address} needs --executor ray")
    if window is not None or hop is not None:
        check_window(window, hop)
    jobs = parse_jobs(jobs)
    paths = read_list(list_file, stdin)
    ray = connect(address) if executor == "ray" else None  # a missing Ray fails before the model loads
    classifier = EmotionClassifier.load(model_path)
    with JsonLines(out) as results:
        todo = [p for p in paths if p not in results.done]
        if ray is not None:
            stream = _ray_results(ray, model_path, todo, window, hop, jobs)
        elif worker_count(jobs, len(todo)) > 1:
            stream = _pool_results(model_path, todo, window, hop, worker_count(jobs, len(todo)))
        else:
            stream = _in_process(classifier, todo, window, hop)
        failed = _write_all(stream, results, len(todo))
    log(
        f"{len(todo) - failed} file(s) classified, {failed} error(s), {len(paths) - len(todo)} already in {out}"
    )
    return 1 if failed else 0


def _write_all(stream: Iterator[dict], results: JsonLines, total: int) -> int:
    """Write each record of ``stream`` as it comes (a progress bar on a terminal); the errors."""
    from tqdm import tqdm

    failed = 0
    with contextlib.closing(stream), tqdm(total=total, unit="file", disable=None, file=sys.stderr) as bar:
        for record in stream:
            results.write(record)
            failed += "error" in record
            bar.update()
    return failed


def _in_process(classifier, paths, window, hop) -> Iterator[dict]:
    for path in paths:
        yield json_result(classifier, path, window, hop)
        interrupts.check()


# -- local worker processes ------------------------------------------------------------------

_worker: dict = {}


def _start_worker(model_path: str, window, hop, threads: int, parent: int) -> None:
    """Runs first in each spawned worker: process set-up, then the model, loaded once."""
    init_worker(threads, parent)
    _worker.update(classifier=EmotionClassifier.load(model_path), window=window, hop=hop)


def _classify_in_worker(path: str) -> dict:
    return json_result(_worker["classifier"], path, _worker["window"], _worker["hop"])


def _pool_results(model_path, paths, window, hop, workers: int) -> Iterator[dict]:
    """The records of ``paths`` from ``workers`` spawned processes, as they finish; at most
    :data:`QUEUE_PER_WORKER` files per worker are queued at a time."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(model_path, window, hop, threads_per_worker(workers), os.getpid()),
    )
    pending, queue = set(), iter(paths)
    try:
        while True:
            for path in queue:
                pending.add(pool.submit(_classify_in_worker, path))
                if len(pending) >= workers * (QUEUE_PER_WORKER + 1):
                    break
            if not pending:
                break
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            interrupts.check()  # a Ctrl-C held back while waiting
            for future in done:
                yield future.result()
    except BrokenProcessPool:
        raise SerError(
            "a worker process died (out of memory, or a crash decoding a file?); the finished lines are kept: "
            "rerun to resume, with --jobs 1 to find the file"
        ) from None
    finally:
        _stop(pool, pending)


def _stop(pool, pending) -> None:
    """Cancel what is queued and end the workers now (a file half done is redone on resume)."""
    for future in pending:
        future.cancel()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


# -- Ray -------------------------------------------------------------------------------------


class RayClassifier:
    """A Ray actor holding the model, loaded once (``ray.remote`` is applied at run time)."""

    def __init__(self, model_path: str, window, hop):
        self.classifier = EmotionClassifier.load(model_path)
        self.window, self.hop = window, hop

    def classify(self, paths: list[str]) -> list[dict]:
        """The records of ``paths`` (:func:`ser.cli.classify.json_result`)."""
        return [json_result(self.classifier, p, self.window, self.hop) for p in paths]


def _ray_results(ray, model_path, paths, window, hop, jobs) -> Iterator[dict]:
    """The records of ``paths`` from a pool of Ray actors (one per CPU of the cluster, or
    ``jobs``), in chunks of :data:`RAY_CHUNK`. An actor whose process dies is restarted and
    its chunk retried."""
    from ray.util import ActorPool

    if not paths:
        return
    actors = cluster_cpus(ray) if jobs == "auto" else jobs
    chunks = [paths[i : i + RAY_CHUNK] for i in range(0, len(paths), RAY_CHUNK)]
    actors = max(1, min(actors, len(chunks)))
    remote = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)(RayClassifier)
    handles = [remote.remote(model_path, window, hop) for _ in range(actors)]
    pool = ActorPool(handles)
    try:
        for records in pool.map_unordered(lambda actor, chunk: actor.classify.remote(chunk), chunks):
            yield from records
            interrupts.check()
    finally:
        for handle in handles:
            ray.kill(handle)
