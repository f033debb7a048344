"""Ray, the one home of connecting to a cluster (``--executor ray [--address HOST:PORT]``).

Ray is an optional extra (``pip install "ser[ray]"``); it is imported here, inside the
functions, and nowhere else connects to it. Without an address, Ray starts a local instance
on this machine's CPUs (what the tests use); with one, it joins a running cluster (``ray
start --head`` on one machine, ``ray start --address HEAD:6379`` on the others, each with
``ser`` installed).
"""

from __future__ import annotations

from ser.errors import ConfigError

#: What to install for ``--executor ray``.
RAY_EXTRA = 'pip install "ser[ray]"'

#: The executors ``--executor`` accepts: this machine's process pool, or a Ray cluster.
EXECUTORS = ("local", "ray")


def import_ray():
    """The ``ray`` module.

    Raises
    ------
    ConfigError
        Ray is not installed; the message names the extra to install.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None):
    """Connect to Ray (once per process) and return the ``ray`` module.

    Parameters
    ----------
    address : str or None
        ``HOST:PORT`` of a running cluster's head (or ``"auto"``: the cluster this machine
        joined); None starts a local instance.
    num_cpus : int or None
        CPUs of a local instance (None: all of this machine's); not used with ``address``.

    Raises
    ------
    ConfigError
        Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    options = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": True}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(
            f"cannot connect to {where} ({reason}); expected the HOST:PORT of a running head (ray start --head)"
        ) from None
    return ray


def cluster_cpus(ray) -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
