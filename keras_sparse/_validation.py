"""Argument checks with one message shape (internal).

Every check raises with the form Keras uses:

    Received an invalid value for `units`, expected a positive integer.
    Received: units=0

followed by how to fix it when that is not obvious. The helpers return the
normalized value (a Python `int`, `float` or `tuple`), so a caller writes
`units = positive_int(units, "units")`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "float_in_range",
    "format_list",
    "int_in_range",
    "int_tuple",
    "invalid_value",
    "is_int",
    "one_of",
    "positive_int",
]

T = TypeVar("T")


def format_list(items: Iterable[Any], limit: int = 10, total: int | None = None) -> str:
    """Formats the first `limit` items for an error message.

    Args:
        items: the items (each shown with `repr`).
        limit: how many to show.
        total: how many there are in all, when `items` holds only the first
            ones (default: `len(items)`).

    Returns:
        A string such as `"['a', 'b', ... (3 more)]"`.

    Example:

    >>> format_list(["a", "b", "c", "d"], limit=2)
    "['a', 'b', ... (2 more)]"
    >>> format_list(range(3))
    '[0, 1, 2]'
    """
    items = list(items)
    count = len(items) if total is None else total
    shown = ", ".join(repr(x) for x in items[:limit])
    more = count - min(limit, len(items))
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


def invalid_value(
    name: str,
    expected: str,
    value: Any = None,
    fix: str | None = None,
    received: str | None = None,
) -> str:
    """The message: "Received an invalid value for `name`, expected ...".

    Args:
        name: the argument's name.
        expected: what it must be ("a positive integer").
        value: the value received, shown as `name=repr(value)`.
        fix: how to fix it, appended when not obvious.
        received: a description shown instead of `name=repr(value)`, for
            values too large to print (e.g. "3 names", "dtype object").

    Returns:
        The message.

    Example:

    >>> print(invalid_value("units", "an int >= 1", 0))
    Received an invalid value for `units`, expected an int >= 1. Received: units=0
    """
    shown = received if received is not None else f"{name}={value!r}"
    message = f"Received an invalid value for `{name}`, expected {expected}. "
    message += f"Received: {shown}"
    return f"{message}. {fix}" if fix else message


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for `bool`."""
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def positive_int(value: Any, name: str, fix: str | None = None) -> int:
    """Returns `value` as an `int` if it is an integer >= 1, else raises.

    Raises:
        ValueError: naming `name`, for anything but a positive integer
            (`bool` and integral floats included).

    Example:

    >>> positive_int(3, "units")
    3
    """
    if not is_int(value) or value < 1:
        raise ValueError(invalid_value(name, "a positive integer", value, fix))
    return int(value)


def int_in_range(
    value: Any,
    name: str,
    low: int | None = None,
    high: int | None = None,
    fix: str | None = None,
) -> int:
    """Returns `value` as an `int` if it is an integer in `[low, high]`.

    Args:
        value: the value to check.
        name: the argument's name.
        low, high: inclusive bounds; `None` means unbounded.
        fix: how to fix a bad value, appended to the message.

    Raises:
        ValueError: naming `name`, for a non-integer or out-of-range value.

    Example:

    >>> int_in_range(0, "min_fan_in", 0, 5)
    0
    """
    if (
        not is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        if low is not None and high is not None:
            expected = f"an integer in [{low}, {high}]"
        elif low is not None:
            expected = f"an integer >= {low}"
        elif high is not None:
            expected = f"an integer <= {high}"
        else:
            expected = "an integer"
        raise ValueError(invalid_value(name, expected, value, fix))
    return int(value)


def float_in_range(
    value: Any,
    name: str,
    low: float = -np.inf,
    high: float = np.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    fix: str | None = None,
) -> float:
    """Returns `value` as a `float` if it is a real number in the interval.

    Args:
        value: the value to check (`int` accepted, `bool` and NaN refused).
        name: the argument's name.
        low, high: the bounds.
        low_inclusive, high_inclusive: whether each bound is allowed.
        fix: how to fix a bad value, appended to the message.

    Raises:
        ValueError: naming `name` and the interval.

    Example:

    >>> float_in_range(0.5, "density", 0.0, 1.0, low_inclusive=False)
    0.5
    """
    ok = _is_real(value) and not np.isnan(float(value))
    if ok:
        v = float(value)
        ok = (v >= low if low_inclusive else v > low) and (
            v <= high if high_inclusive else v < high
        )
    if not ok:
        if np.isfinite(low) and np.isfinite(high):
            left = "[" if low_inclusive else "("
            right = "]" if high_inclusive else ")"
            expected = f"a float in {left}{_num(low)}, {_num(high)}{right}"
        elif np.isfinite(low):
            expected = f"a float {'>=' if low_inclusive else '>'} {_num(low)}"
        elif np.isfinite(high):
            expected = f"a float {'<=' if high_inclusive else '<'} {_num(high)}"
        else:
            expected = "a float"
        raise ValueError(invalid_value(name, expected, value, fix))
    return float(value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def one_of(value: T, name: str, options: Sequence[Any]) -> T:
    """Returns `value` if it is one of `options`, else raises.

    Raises:
        ValueError: naming `name` and listing the options.

    Example:

    >>> one_of("warn", "empty_outputs", ("warn", "raise", "ignore"))
    'warn'
    """
    if not any(_same(value, o) for o in options):
        expected = "one of " + ", ".join(repr(o) for o in options)
        raise ValueError(invalid_value(name, expected, value))
    return value


def _same(value: Any, option: Any) -> bool:
    # Equal and of a compatible type: "a" matches numpy.str_("a"), but True
    # does not match 1, nor 1.0 match 1.
    if isinstance(value, (bool, np.bool_)) or isinstance(option, (bool, np.bool_)):
        return value is option or (
            isinstance(value, (bool, np.bool_))
            and isinstance(option, (bool, np.bool_))
            and bool(value) == bool(option)
        )
    if isinstance(option, str):
        return isinstance(value, str) and value == option
    return type(value) is type(option) and value == option


def int_tuple(value: Any, rank: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """Returns an int, or a sequence of `rank` ints, as a `rank`-tuple.

    Each entry must be an integer >= `minimum` (1 by default).

    Raises:
        ValueError: naming `name`, for anything else.

    Example:

    >>> int_tuple(3, 2, "kernel_size")
    (3, 3)
    >>> int_tuple([1, 2], 2, "strides")
    (1, 2)
    """
    if is_int(value):
        values: tuple[Any, ...] = (value,) * rank
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
    else:
        values = ()
    if len(values) != rank or not all(is_int(v) and v >= minimum for v in values):
        kind = "positive integer" if minimum == 1 else f"integer >= {minimum}"
        raise ValueError(
            invalid_value(name, f"a {kind} or a tuple of {rank} {kind}s", value)
        )
    return tuple(int(v) for v in values)
