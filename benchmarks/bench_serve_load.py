"""Load on ``ser serve``: concurrent uploads of ~3 s RAVDESS files over loopback.

Starts ``ser serve`` (the default model unless ``--model``) in a subprocess, sends
``--single`` requests one at a time (the server's peak memory for one request at a time),
then ``--clients`` threads upload files in a loop until ``--requests`` answers or
``--seconds`` have passed, whichever comes first. Prints throughput, p50/p95 latency,
errors, and the server's peak resident memory (VmHWM, Linux) after each phase, with the
ratio of the two (target: at most 1.5).

Usage::

    python benchmarks/bench_serve_load.py --ravdess ../shared/corpora/ravdess [--clients 20] [--requests 200]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serving import start_server  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far, in MB (VmHWM of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/PID/status (Linux only)")


def three_second_files(root: Path, n: int) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the first ``n`` RAVDESS files (sorted) of 2.8-3.5 s."""
    chosen = []
    for path in sorted(root.glob("Actor_*/*.wav")):
        if 2.8 <= sf.info(str(path)).duration <= 3.5:
            chosen.append((path.name, path.read_bytes()))
            if len(chosen) == n:
                return chosen
    if not chosen:
        raise SystemExit(f"no RAVDESS files of about 3 s under {root}")
    return chosen


def upload(port: int, name: str, body: bytes) -> tuple[int, float]:
    """``(status, seconds)`` of one POST /api/classify."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", f"/api/classify?name={name}", body=body, headers={"Content-Type": "audio/wav"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - t
    finally:
        conn.close()


def load(port: int, files, clients: int, requests: int, seconds: float):
    """``(latencies, errors, wall seconds)`` of ``clients`` threads sharing ``requests`` uploads."""
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(requests))
    deadline = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            name, body = files[i % len(files)]
            try:
                status, dt = upload(port, name, body)
            except OSError as exc:
                status, dt = repr(exc), float("nan")
            with lock:
                (latencies.append(dt) if status == 200 else errors.append(status))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ravdess", type=Path, default=REPO.parent / "shared" / "corpora" / "ravdess")
    parser.add_argument("--model", default=None, help="default: the default model (ONNX)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200, help="uploads in all (the bound on the count)")
    parser.add_argument("--seconds", type=float, default=120.0, help="the bound on the time")
    parser.add_argument("--single", type=int, default=10, help="uploads one at a time first")
    parser.add_argument("--files", type=int, default=40, help="distinct files uploaded")
    parser.add_argument("--workers", type=int, default=None, help="ser serve --workers (default: its own)")
    args = parser.parse_args()

    files = three_second_files(args.ravdess, args.files)
    serve_args = ([args.model] if args.model else []) + (
        ["--workers", str(args.workers)] if args.workers else []
    )
    proc, url = start_server(*serve_args)
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    try:
        base = peak_rss_mb(proc.pid)
        single = [upload(port, *files[i % len(files)]) for i in range(args.single)]
        assert all(status == 200 for status, _ in single), single
        single_peak = peak_rss_mb(proc.pid)
        latencies, errors, wall = load(port, files, args.clients, args.requests, args.seconds)
        load_peak = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)

    one = statistics.median(dt for _, dt in single)
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [float("nan")] * 19
    print(
        f"protocol: ser serve {' '.join(serve_args) or '(default model, default workers)'} on loopback; "
        f"the first {len(files)} RAVDESS files (sorted by path) of 2.8-3.5 s, POST /api/classify"
    )
    print(f"one at a time ({args.single} uploads): median latency {one * 1000:.0f} ms")
    print(
        f"{args.clients} clients, {len(latencies) + len(errors)} uploads in {wall:.1f} s: "
        f"{len(latencies) / wall:.2f} answers/s, p50 {q[9] * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms, "
        f"errors {len(errors)}{' ' + str(sorted(set(map(str, errors)))) if errors else ''}"
    )
    print(
        f"server peak RSS: {base:.0f} MB after start, {single_peak:.0f} MB after single uploads, "
        f"{load_peak:.0f} MB under load: ratio {load_peak / single_peak:.2f} (target <= 1.5)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
