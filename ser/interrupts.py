"""Ctrl-C that TensorFlow cannot lose.

Python turns SIGINT into a :class:`KeyboardInterrupt` raised in whatever Python code runs
next. While a model is built, traced or trained, that is mostly Keras's and TensorFlow's own
code, and not all of it lets the exception through: Keras catches it with a bare ``except:``
in places (a tensor's shape, a layer built by a trial call, a log value converted to a
float) and carries on, and TensorFlow's C++ code that calls back into Python can drop it or
leave it set, so that it surfaces as a ``SystemError`` or ``TypeError`` with a traceback. A
Ctrl-C that landed there was lost (``ser train`` went on to its end and exited 0) or ended
the run with a traceback instead of its one line.

So while this process trains and evaluates models (``ser train``) or runs them (``ser
classify``, ``ser attention``) inside :func:`deferred`, SIGINT only marks the interrupt, and
:func:`check`, called after each training step and each model call, raises it there, in
``ser``'s own code, where nothing catches it. A second Ctrl-C before
that raises at once, wherever it lands.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_pending = False
_active = False  # inside a deferred() block that installed the handler


def _mark(signum, frame) -> None:
    global _pending
    if _pending:
        raise KeyboardInterrupt  # a second Ctrl-C: now, wherever it lands
    _pending = True


def check() -> None:
    """Raise the Ctrl-C that :func:`deferred` held back, if one came (outside a block: nothing)."""
    if _active and _pending:
        raise KeyboardInterrupt


@contextmanager
def deferred():
    """SIGINT marks an interrupt for :func:`check` instead of raising it wherever Python is
    (e.g. inside TensorFlow); it is raised at the latest on leaving the block.

    A no-op outside the main thread, inside another ``deferred`` block, and where SIGINT is
    not Python's default handler: ignored (a worker process, a job started in the background)
    or handled by the program's own.
    """
    global _pending, _active
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    _pending = False
    signal.signal(signal.SIGINT, _mark)
    _active = True
    try:
        yield
    finally:
        # A Ctrl-C before Python's handler is back is marked and read below; one after it
        # raises at once. A mark it leaves is never stale: check() looks at it only inside a
        # block, and each block starts with none.
        _active = False
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pending, _pending = _pending, False
    if pending:  # one that came after the last check
        raise KeyboardInterrupt
