"""The local process pool (``--jobs``): worker count, ``--jobs`` values, tasks in workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ser.errors import ConfigError
from ser.pool import parse_jobs, run_in_workers, worker_count


def _square_and_threads(x):
    return x * x, os.environ["TF_NUM_INTRAOP_THREADS"], os.getpid()


def _fail_on(x):
    if x == 2:
        raise ConfigError("task 2 refused")
    return x


def _sleep_forever(pid_file):
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(600)


def test_worker_count(monkeypatch):
    import ser.pool as w

    monkeypatch.setattr(w, "usable_cpus", lambda: 4)
    monkeypatch.setattr(w, "available_memory", lambda: 64 * 10**9)
    assert worker_count("auto", 10) == 4
    assert worker_count("auto", 3) == 3
    assert worker_count("auto", 1) == 1
    assert worker_count(2, 10) == 2 and worker_count(8, 3) == 3
    # each worker needs its base plus the features it loads: memory caps the count
    monkeypatch.setattr(w, "available_memory", lambda: 5 * 10**9)
    assert worker_count("auto", 10, data_bytes=10**9) == 1  # 0.8 * 5 GB holds one 2.5 GB worker
    monkeypatch.setattr(w, "available_memory", lambda: None)
    assert worker_count("auto", 10, data_bytes=10**12) == 4  # unknown memory: the CPUs decide


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5"])
def test_bad_jobs_are_refused(text):
    with pytest.raises(ConfigError, match="--jobs: expected 'auto' or a positive integer"):
        parse_jobs(text)


def test_jobs_values():
    assert parse_jobs("auto") == "auto" and parse_jobs(None) == "auto" and parse_jobs("3") == 3


def test_tasks_run_in_separate_processes_with_their_share_of_threads(monkeypatch):
    import ser.pool as w

    monkeypatch.setattr(w, "usable_cpus", lambda: 4)
    out = run_in_workers(_square_and_threads, [(1,), (2,), (3,)], 2)
    assert [r[0] for r in out] == [1, 4, 9]
    assert {r[1] for r in out} == {"2"}  # 4 CPUs, 2 workers: 2 threads each
    assert os.getpid() not in {r[2] for r in out}


def test_a_failing_task_raises_its_error_here():
    with pytest.raises(ConfigError, match="task 2 refused"):
        run_in_workers(_fail_on, [(1,), (2,)], 2)


def test_a_worker_exits_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from ser.pool import run_in_workers; from tests.test_pool import _sleep_forever;"
        "run_in_workers(_sleep_forever, [(sys.argv[2],), (sys.argv[2] + '.2',)], 2)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", code, root, str(pid_file)])
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")
