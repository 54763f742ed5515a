"""Hyper-parameter validators shared by every family and the Trainer: one ParameterError each.

Families call these at fit time (scikit-learn's convention: ``__init__`` only stores its
arguments). Every message reads ``"<model>: <name> must be <what>, got <value!r>"``, so
that the CLI prints one line naming the parameter and the values it takes.

Example:
    >>> check_int("gmm", "max_iter", 100, low=1)
    100
    >>> check_int("gmm", "max_iter", 2.5, low=1)
    Traceback (most recent call last):
    ...
    ptheta.errors.ParameterError: gmm: max_iter must be an integer >= 1, got 2.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from ptheta.errors import ParameterError

# What numpy's seeding (SeedSequence, RandomState) and torch.manual_seed all accept.
MAX_SEED = 2**32 - 1


def parameter_error(model: str, name: str, what: str, value: Any, hint: str = "") -> ParameterError:
    """The error "<model>: <name> must be <what>, got <value!r>[; <hint>]" (no prefix
    when ``model`` is empty, e.g. for the Trainer's own settings)."""
    msg = f"{model + ': ' if model else ''}{name} must be {what}, got {value!r}"
    return ParameterError(f"{msg}; {hint}" if hint else msg)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a whole number of an integer type (bool and 2.0 are not)."""
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number of a numeric type (bool is not; NaN is)."""
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_int(
    model: str,
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
    allow_bool: bool = False,
    hint: str = "",
) -> Any:
    """An integer in [low, high] (None too if ``allow_none``; True/False if ``allow_bool``).

    Floats (even 2.0), strings, NaN and booleans are refused: a silent ``int(2.5)`` would
    fit another model than the one asked for.
    """
    if value is None and allow_none:
        return None
    if allow_bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    ok = is_integer(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        what = "an integer" + _range(low, high, False, False)
        what += " (or None)" if allow_none else ""
        raise parameter_error(model, name, what, value, hint)
    return int(value)


def check_float(
    model: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    hint: str = "",
) -> Any:
    """A finite real number in the range (bounds closed unless ``low_open``/``high_open``).

    NaN, ±inf, booleans and strings are refused; None only if ``allow_none``.
    """
    if value is None and allow_none:
        return None
    try:
        ok = is_real(value) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        ok = False
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        what = "a finite number" + _range(low, high, low_open, high_open)
        what += " (or None)" if allow_none else ""
        raise parameter_error(model, name, what, value, hint)
    return float(value)


def check_choice(
    model: str, name: str, value: Any, choices: Sequence[str], *, hint: str = ""
) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        quoted = [repr(c) for c in choices]
        what = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise parameter_error(model, name, what, value, hint)
    return value


def check_bool(model: str, name: str, value: Any) -> bool:
    """True or False (not 0/1, not "yes")."""
    if not isinstance(value, (bool, np.bool_)):
        raise parameter_error(model, name, "True or False", value)
    return bool(value)


def check_str(model: str, name: str, value: Any, *, hint: str = "") -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise parameter_error(model, name, "a non-empty string", value, hint)
    return value


def check_int_list(
    model: str, name: str, value: Any, *, low: int = 1, allow_empty: bool = True
) -> list[int]:
    """Layer sizes: one integer >= ``low``, or a list/tuple of them → list of ints."""
    if is_integer(value):
        value_list: Any = [value]
    elif isinstance(value, (list, tuple)):
        value_list = list(value)
    else:
        value_list = None
    if (
        value_list is None
        or (not value_list and not allow_empty)
        or not all(is_integer(v) and v >= low for v in value_list)
    ):
        what = f"an integer >= {low} or a list of them"
        raise parameter_error(model, name, what, value)
    return [int(v) for v in value_list]


def check_random_state(model: str, name: str, value: Any, *, allow_none: bool = True) -> Any:
    """A seed: an integer in [0, 2**32 − 1], or None (fresh randomness) if ``allow_none``."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or not 0 <= value <= MAX_SEED:
        what = "an integer seed in [0, 2**32 - 1]" + (" or None" if allow_none else "")
        raise parameter_error(model, name, what, value)
    return int(value)
