"""Small value checks shared by the validation of settings and layer arguments."""

from __future__ import annotations

import numbers


def is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (never a bool).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
