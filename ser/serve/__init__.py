"""``ser serve``: a local web page to classify recordings and explore their attention maps.

Built on Starlette (routes, static files, streaming) run by uvicorn: :mod:`ser.serve.app`
holds the routes, :mod:`ser.serve.limits` what keeps the server safe (upload size and
duration, private temporary files, a bounded pool of workers), :mod:`ser.serve.payload` the
JSON. The page (``static/``) is plain HTML, JavaScript and CSS shipped in the package: it
works with no internet connection.
"""

from __future__ import annotations

import ipaddress
import socket
import warnings

from ser.errors import ConfigError
from ser.io import log

#: Seconds Ctrl-C waits for requests still running (an occlusion map) before it closes them.
SHUTDOWN_WAIT = 5


def is_local(host: str) -> bool:
    """Whether ``host`` is reached from this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (port 0: a free one).

    Raises
    ------
    ConfigError
        The address cannot be used (taken, not this machine's, not permitted).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0-65535. Received: port={port!r}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc}); expected a host name or address of this machine"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); expected a free port (--port) on an "
            "address of this machine (--host)"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a listening socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, limits=None, *, tmp_root=None) -> None:
    """Load ``model`` once and serve the page and the API until interrupted (Ctrl-C).

    Prints the address to open. Warns when ``host`` is not this machine only: the server has
    no authentication.

    Parameters
    ----------
    model : str
        A ``model.keras``, a run folder or an export (``.onnx``, ``.tflite``).
    host : str
    port : int
        0: a free port (the printed address says which).
    limits : ser.serve.limits.Limits or None
    tmp_root : str or None
        Where uploads' private folders are made.

    Raises
    ------
    ModelError
        The model cannot be loaded.
    ConfigError
        The address cannot be used.
    """
    import uvicorn

    from ser.classifier import EmotionClassifier
    from ser.serve.app import create_app

    sock = listen(host, port)  # a taken port fails before the model loads
    try:
        classifier = EmotionClassifier.load(model)
        app = create_app(classifier, limits, tmp_root=tmp_root)
        if not is_local(host):
            warnings.warn(
                f"listening on {host}, not only on this machine: anyone who can reach it can use the server "
                "(it has no authentication); use --host 127.0.0.1 unless you mean it",
                stacklevel=2,
            )
        log(f"ser serve: {classifier.path} ({', '.join(classifier.labels)})")
        print(f"ser serve: open {url_of(sock)} (Ctrl-C stops)", flush=True)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=SHUTDOWN_WAIT
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
