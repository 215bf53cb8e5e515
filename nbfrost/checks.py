"""Argument checks shared by `Dispatcher` and `Dashboard`.

Both validate before anything starts, and a user who passes a bad value to
either should read the same kind of message.  ``bool`` is refused where a
number is expected: ``workers=True`` is a mistake, not 1.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_number", "check_count"]


def check_number(name: str, value: Any, *, allow_none: bool, positive: bool) -> None:
    """Check that *value* is a real number of seconds (> 0 with *positive*, else >= 0).

    Raises:
        TypeError: not a number (or None when *allow_none*).
        ValueError: NaN or out of range.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__} {value!r}")
    if value != value or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound}{' or None' if allow_none else ''}, got {value!r}")


def check_count(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """Check that *value* is an int in ``[minimum, maximum]`` and return it as an ``int``.

    Raises:
        TypeError: not an int.
        ValueError: out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    number = int(value)
    if maximum is not None and not minimum <= number <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value!r}")
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return number
