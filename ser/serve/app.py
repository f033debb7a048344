"""The routes of ``ser serve``: the page, and the API it calls.

- ``GET /``: the page (:mod:`ser.serve` ``static/``: plain HTML, JS and CSS, nothing from the web).
- ``GET /api/model``: the model's classes, what it is, and the server's limits.
- ``POST /api/classify``: the body is an audio file (``?name=`` its file name, optional
  ``window``, ``hop`` in seconds); the answer is the object ``ser classify --json`` prints for it.
- ``POST /api/attention``: the same body (``?name=``, optional ``start``, ``end`` in seconds,
  at most :data:`ATTENTION_MAX_SECONDS` apart); the maps and axes
  (:func:`ser.serve.payload.attention_json`).
- ``POST /api/occlusion``: as attention, with ``class`` to explain; answers newline-delimited
  JSON: ``{"done", "total"}`` lines while the occlusion map is computed, then
  ``{"result": ...}`` (the attention object with its ``occlusion``) or ``{"error": ...}``.

Errors are ``{"error": "..."}`` with a 4xx status (503 when busy), the message the command
line gives for the same problem, the upload named by its display name.
"""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ser.attention.maps import compute_attention
from ser.classifier import EmotionClassifier
from ser.errors import AudioError, BusyError, ConfigError, LimitError, SerError
from ser.serve.limits import Limits, Workers, receive_upload
from ser.serve.payload import attention_json, prediction_json

#: The page's files.
STATIC = Path(__file__).resolve().parent / "static"

#: The longest range (seconds) one attention answer covers: a long file is explored a window
#: at a time (the page asks for the window chosen on its timeline).
ATTENTION_MAX_SECONDS = 60.0

#: Status of each error class (others: 400).
STATUS = {LimitError: 413, AudioError: 422, BusyError: 503}

#: Seconds between progress lines of ``/api/occlusion``.
PROGRESS_EVERY = 0.25


def _number(request, key: str) -> float | None:
    """The query parameter ``key`` as a finite number of seconds, or None when absent."""
    raw = request.query_params.get(key)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a number of seconds. Received: {key}={raw!r}")
    return value


def _attention_range(request, duration: float) -> tuple[float | None, float | None]:
    """``start, end`` of an attention request, checked to span at most :data:`ATTENTION_MAX_SECONDS`."""
    start, end = _number(request, "start"), _number(request, "end")
    t0, t1 = start or 0.0, duration if end is None else min(end, duration)
    if t1 - t0 > ATTENTION_MAX_SECONDS:
        raise ConfigError(
            f"a range of {t1 - t0:.1f} s; the server draws at most {ATTENTION_MAX_SECONDS:g} s at a time: "
            "expected start and end closer together (the page shows a long file a window at a time)"
        )
    return start, end


def create_app(classifier: EmotionClassifier, limits: Limits | None = None, *, tmp_root=None) -> Starlette:
    """The server's application, with ``classifier`` loaded once for every request.

    Parameters
    ----------
    classifier : EmotionClassifier
    limits : Limits or None
        Upload, duration and concurrency limits (default :class:`Limits()`).
    tmp_root : str or None
        Where each upload's private folder is made (default: the system's temporary folder).

    Returns
    -------
    starlette.applications.Starlette
    """
    limits = limits or Limits()
    workers = Workers(limits)

    async def run(request, call, **params):
        """Receive the upload, run ``call(upload, **params)`` in a worker, remove the upload."""
        upload, future = await receive_upload(request, limits, tmp_root), None
        try:
            async with workers.slot():
                future = workers.submit(call, upload, **params)
                return await asyncio.wrap_future(future)
        except SerError as exc:
            raise type(exc)(upload.message(exc)) from None
        finally:
            upload.close(future)

    def classify(upload, window, hop):
        prediction = classifier.classify(upload.path, window=window, hop=hop)
        return prediction_json(prediction, upload.name)

    def attention(upload, class_name=None, occlusion=False, progress=None):
        start, end = upload.range
        maps = compute_attention(
            classifier,
            upload.path,
            class_name=class_name,
            start=start,
            end=end,
            occlusion=occlusion,
            progress=progress,
        )
        return attention_json(maps, upload.name)

    async def classify_route(request):
        window, hop = _number(request, "window"), _number(request, "hop")
        return JSONResponse(await run(request, classify, window=window, hop=hop))

    async def attention_route(request):
        return JSONResponse(await run(request, _with_range(request, attention)))

    async def occlusion_route(request):
        class_name = request.query_params.get("class") or None
        return await _occlusion_stream(request, limits, workers, tmp_root, attention, class_name)

    async def model_route(request):
        return JSONResponse(_model_json(classifier, limits))

    async def index(request):
        return FileResponse(STATIC / "index.html")

    @asynccontextmanager
    async def lifespan(app):
        yield
        workers.close()

    routes = [
        Route("/", index),
        Route("/api/model", model_route),
        Route("/api/classify", classify_route, methods=["POST"]),
        Route("/api/attention", attention_route, methods=["POST"]),
        Route("/api/occlusion", occlusion_route, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {SerError: _error_response, HTTPException: _http_error, Exception: _internal_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def _with_range(request, attention):
    """``attention`` with the request's range checked against the upload's duration first."""

    def call(upload, **params):
        upload.range = _attention_range(request, upload.info.duration)
        return attention(upload, **params)

    return call


async def _occlusion_stream(request, limits, workers, tmp_root, attention, class_name):
    """``/api/occlusion``: the upload, the range and the maps (the quick part) are checked before
    the answer starts, so their errors get a 4xx; then progress lines while the occlusion runs."""
    upload, future, streaming = await receive_upload(request, limits, tmp_root), None, False
    progress = {"done": 0, "total": 0}

    def report(done, total):
        progress.update(done=done, total=total)

    try:
        upload.range = _attention_range(request, upload.info.duration)
        await workers.acquire()
        try:
            future = workers.submit(attention, upload, class_name=class_name, occlusion=True, progress=report)
            while not future.done() and not progress["total"]:  # the occlusion starts once the maps are made
                await asyncio.sleep(PROGRESS_EVERY / 5)
            if future.done() and future.exception() is not None:
                future.result()
        except BaseException:
            workers.release()
            raise
        streaming = True
        return StreamingResponse(
            _progress_lines(upload, future, progress, workers), media_type="application/x-ndjson"
        )
    except SerError as exc:
        raise type(exc)(upload.message(exc)) from None
    finally:
        if not streaming:
            upload.close(future)


async def _progress_lines(upload, future, progress: dict, workers: Workers):
    """The lines of ``/api/occlusion`` while ``future`` runs, then its result or error; gives
    back the worker and removes the upload at the end."""
    try:
        while not future.done():
            yield json.dumps(progress) + "\n"
            await asyncio.sleep(PROGRESS_EVERY)
        yield json.dumps({"result": future.result()}) + "\n"
    except SerError as exc:
        yield json.dumps({"error": upload.message(exc)}) + "\n"
    finally:
        workers.release()
        upload.close(future)


def _model_json(classifier: EmotionClassifier, limits: Limits) -> dict:
    """What ``/api/model`` answers: the classes, the model's name and ``about``, the limits."""
    about = classifier.info.get("about") or {}
    return {
        "model": Path(classifier.path).name,
        "labels": list(classifier.labels),
        "about": {str(k): str(v) for k, v in about.items()} if isinstance(about, dict) else {},
        "sample_rate": classifier.sample_rate,
        "max_bytes": limits.max_bytes,
        "max_seconds": limits.max_seconds,
        "attention_max_seconds": ATTENTION_MAX_SECONDS,
    }


async def _error_response(request, exc: SerError) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _http_error(request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": f"{request.url.path}: {exc.detail}"}, status_code=exc.status_code)


async def _internal_error(request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": f"internal error ({type(exc).__name__}); see the server's log"}, status_code=500
    )
