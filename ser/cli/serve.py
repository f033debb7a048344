"""``ser serve``: its parser and handler (the server itself is :mod:`ser.serve`)."""

from __future__ import annotations

from ser.errors import ConfigError
from ser.models import SUMMARY


def add_serve(sub, model_for, import_tensorflow_for) -> None:
    """Add ``ser serve`` to the subcommands ``sub``.

    Parameters
    ----------
    model_for : callable
        ``model_for(args.model)``: the model to load (the default model for None).
    import_tensorflow_for : callable
        Imports TensorFlow quietly where the model needs it.
    """
    from ser.serve.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, DEFAULT_WAIT, DEFAULT_WORKERS

    p = sub.add_parser(
        "serve",
        help="a local web page to classify recordings and explore their attention maps",
        description="Serve a web page (and its HTTP API: POST /api/classify, /api/attention, /api/occlusion "
        "with the audio file as the body) on this machine: drop, choose or record audio, see the label, "
        "the probabilities, the windows of a long file and the attention over the spectrogram. Only this "
        "machine can reach it unless --host says otherwise. Ctrl-C stops it.",
        epilog="Default model: " + SUMMARY,
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="a model.keras file, a run folder holding one, or an export (.onnx, .tflite); default: the "
        "default model (below)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: a free one)")
    p.add_argument(
        "--max-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 1e6,
        help="largest upload in MB (default: %(default)g)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="longest upload in seconds of audio, read from its header (default: %(default)g)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="requests the model runs at once; more wait (default: %(default)d)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        help="seconds a request waits for a free worker before it gets 503 busy (default: %(default)g)",
    )

    def handler(args) -> int:
        from ser.serve import serve
        from ser.serve.limits import Limits

        if not args.max_mb > 0:
            raise ConfigError(f"--max-mb must be a positive number. Received: --max-mb {args.max_mb:g}")
        limits = Limits(
            max_bytes=int(round(args.max_mb * 1e6)),
            max_seconds=args.max_seconds,
            workers=args.workers,
            wait=args.wait,
        )
        model = model_for(args.model)
        import_tensorflow_for(model)
        try:
            serve(model, args.host, args.port, limits)
        except KeyboardInterrupt:
            pass
        print("ser serve: stopped", flush=True)
        return 0

    p.set_defaults(func=handler)
