"""Hyper-parameter declarations and validators, shared by every family and the Trainer.

A family declares each hyper-parameter once (``parameters = {"max_iter": Int(low=1), ...}``,
see :class:`Param`); ``fit`` checks them all first (scikit-learn's convention: ``__init__``
only stores its arguments). Every message reads ``"<model>: <name> must be <what>, got
<value!r>"``, so that the CLI prints one line naming the parameter and the values it takes.
A neural family's module is built from one frozen :class:`Config` of them.

Example:
    >>> Int(low=1).describe()
    'int ≥ 1'
    >>> check_int("gmm", "max_iter", 100, low=1)
    100
    >>> check_int("gmm", "max_iter", 2.5, low=1)
    Traceback (most recent call last):
    ...
    ptheta.errors.ParameterError: gmm: max_iter must be an integer >= 1, got 2.5
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from types import MappingProxyType
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


# ---------------------------------------------------------------------------- declarations
# Each family declares its hyper-parameters once, as ``parameters = {"name": Int(low=1),
# ...}`` (scikit-learn's ``_parameter_constraints``): ``GenerativeModel.fit`` checks them all
# before anything else, ``ptheta models NAME`` prints ``describe()``, and the tests refuse
# every value of ``bad_values()``.


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _span(low: Any, high: Any, low_open: bool = False, high_open: bool = False) -> str:
    """The short form of a range in ``describe``: " ≥ 1", " in (0, 1)", " ≤ 3" or ""."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '≥'} {_num(low)}"
    if high is not None:
        return f" {'<' if high_open else '≤'} {_num(high)}"
    return ""


class Param:
    """A declared hyper-parameter: what values it takes.

    ``check(model, name, value)`` returns the value normalised (numpy scalars as Python
    numbers, a layer size as a list of them) or raises the one-line ParameterError
    "<model>: <name> must be <what>, got <value!r>"; ``describe()`` is the short form that
    ``ptheta models NAME`` prints ("int ≥ 1"); ``bad_values()`` lists values that ``check``
    refuses (the generated tests pass each one to ``fit``).
    """

    __slots__ = ()
    none: bool = False

    def check(self, model: str, name: str, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def bad_values(self) -> list[Any]:
        raise NotImplementedError

    def _or_none(self, text: str) -> str:
        return f"{text} or None" if self.none else text

    def _bad_none(self) -> list[Any]:
        return [] if self.none else [None]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__dataclass_fields__)  # type: ignore[attr-defined]
        return f"{type(self).__name__}({fields})"


@dataclass(frozen=True, repr=False)
class Int(Param):
    """An integer in [low, high] (None too with ``none``; True/False too with ``flag``, as
    ``verbose`` takes; only odd values with ``odd``). Floats, strings and booleans are refused."""

    low: int | None = None
    high: int | None = None
    none: bool = False
    flag: bool = False
    odd: bool = False
    hint: str = ""

    def check(self, model: str, name: str, value: Any) -> Any:
        out = check_int(model, name, value, low=self.low, high=self.high, allow_none=self.none,
                        allow_bool=self.flag, hint=self.hint)  # fmt: skip
        if self.odd and is_integer(out) and out % 2 == 0:
            what = "an odd integer" + _range(self.low, self.high, False, False)
            raise parameter_error(model, name, what, value, self.hint)
        return out

    def describe(self) -> str:
        text = ("odd int" if self.odd else "int") + _span(self.low, self.high)
        return self._or_none(text + (" or bool" if self.flag else ""))

    def bad_values(self) -> list[Any]:
        bad: list[Any] = [2.5, "3", math.nan, [1, 2], *self._bad_none()]
        bad += [] if self.flag else [True]
        bad += [] if self.low is None else [self.low - 1]
        bad += [] if self.high is None else [self.high + 1]
        low = self.low or 0
        bad += [low + low % 2] if self.odd else []  # the first even value in range
        return bad


@dataclass(frozen=True, repr=False)
class Float(Param):
    """A finite real number in the range (bounds closed unless ``low_open``/``high_open``);
    integers are accepted (as floats), NaN, ±inf, booleans and strings refused."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: bool = False
    hint: str = ""

    def check(self, model: str, name: str, value: Any) -> Any:
        return check_float(model, name, value, low=self.low, high=self.high,
                           low_open=self.low_open, high_open=self.high_open,
                           allow_none=self.none, hint=self.hint)  # fmt: skip

    def describe(self) -> str:
        return self._or_none("float" + _span(self.low, self.high, self.low_open, self.high_open))

    def bad_values(self) -> list[Any]:
        bad: list[Any] = [math.nan, math.inf, "x", True, [0.5], *self._bad_none()]
        if self.low is not None:
            bad.append(self.low if self.low_open else self.low - 1)
        if self.high is not None:
            bad.append(self.high if self.high_open else self.high + 1)
        return bad


class Choice(Param):
    """One of the given strings: ``Choice("full", "diag")``."""

    __slots__ = ("hint", "values")

    def __init__(self, *values: str, hint: str = "") -> None:
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "hint", hint)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a declaration is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and other.values == self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"Choice({', '.join(map(repr, self.values))})"

    def check(self, model: str, name: str, value: Any) -> Any:
        return check_choice(model, name, value, self.values, hint=self.hint)

    def describe(self) -> str:
        return " | ".join(repr(v) for v in self.values)

    def bad_values(self) -> list[Any]:
        return ["nope", 1, None, list(self.values[:1])]


@dataclass(frozen=True, repr=False)
class Bool(Param):
    """True or False (not 0/1, not "yes")."""

    def check(self, model: str, name: str, value: Any) -> Any:
        return check_bool(model, name, value)

    def describe(self) -> str:
        return "bool"

    def bad_values(self) -> list[Any]:
        return [1, "true", None]


@dataclass(frozen=True, repr=False)
class Str(Param):
    """A non-empty string."""

    hint: str = ""

    def check(self, model: str, name: str, value: Any) -> Any:
        return check_str(model, name, value, hint=self.hint)

    def describe(self) -> str:
        return "str"

    def bad_values(self) -> list[Any]:
        return ["", 1, None]


@dataclass(frozen=True, repr=False)
class Device(Param):
    """A torch device that exists here: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``
    (CUDA when available)."""

    def check(self, model: str, name: str, value: Any) -> Any:
        check_str(model, name, value, hint="use cpu, cuda or auto")
        from ptheta.nn.device import resolve_device  # torch, only when a model is fitted

        try:
            resolve_device(value)
        except ParameterError as e:
            raise parameter_error(model, name, "a device that exists here", value, str(e)) from None
        return value

    def describe(self) -> str:
        return "'auto' | 'cpu' | 'cuda[:i]'"

    def bad_values(self) -> list[Any]:
        return ["", 1, None, "nodevice"]


@dataclass(frozen=True, repr=False)
class IntList(Param):
    """Layer sizes: one integer ≥ ``low`` (a single layer; only with ``scalar``) or a
    list/tuple of them (empty only with ``empty``) → a list of ints."""

    low: int = 1
    empty: bool = True
    scalar: bool = True

    def check(self, model: str, name: str, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()  # an integer array; floats are refused below
        if not self.scalar and is_integer(value):
            what = f"a list of integers >= {self.low}"
            raise parameter_error(model, name, what, value)
        return check_int_list(model, name, value, low=self.low, allow_empty=self.empty)

    def describe(self) -> str:
        each = f"int{_span(self.low, None)}"
        text = f"{each} or list of them" if self.scalar else f"list of {each}"
        return text + ("" if self.empty else " (not empty)")

    def bad_values(self) -> list[Any]:
        bad: list[Any] = ["8", 2.5, [8, 2.5], [True], [self.low - 1], None, True]
        bad += [] if self.empty else [[]]
        bad += [] if self.scalar else [self.low + 1]
        return bad


@dataclass(frozen=True, repr=False)
class Seed(Param):
    """``random_state``, the same everywhere: an integer seed in [0, 2**32 − 1] (numpy's and
    torch's seeds), or None for fresh randomness (each fit then differs). Every family
    that has one defaults to 0, so a default fit is reproducible."""

    none: bool = True

    def check(self, model: str, name: str, value: Any) -> Any:
        return check_random_state(model, name, value, allow_none=self.none)

    def describe(self) -> str:
        return self._or_none("int seed in [0, 2**32-1]")

    def bad_values(self) -> list[Any]:
        return [-1, MAX_SEED + 1, 2.5, "0", True, *self._bad_none()]


@dataclass(frozen=True, repr=False)
class Dict(Param):
    """A dict with string keys (None too with ``none``), e.g. keyword arguments for another
    model."""

    none: bool = True

    def check(self, model: str, name: str, value: Any) -> Any:
        if value is None and self.none:
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise parameter_error(model, name, self._or_none("a dict of named values"), value)
        return value

    def describe(self) -> str:
        return self._or_none("dict")

    def bad_values(self) -> list[Any]:
        return [[1], "x", 1, {1: 2}, *self._bad_none()]


@dataclass(frozen=True, repr=False)
class Name(Param):
    """The name of a registered model (``ptheta models`` lists them)."""

    def check(self, model: str, name: str, value: Any) -> Any:
        from ptheta.models import REGISTRY  # the registry imports the families, not this

        check_str(model, name, value, hint="a model name such as 'gmm'")
        if value not in REGISTRY:
            close = difflib.get_close_matches(value, list(REGISTRY), n=3, cutoff=0.5)
            hint = "see `ptheta models`"
            hint = f"did you mean {' or '.join(map(repr, close))}?" if close else hint
            raise parameter_error(model, name, "a registered model name", value, hint)
        return value

    def describe(self) -> str:
        return "model name"

    def bad_values(self) -> list[Any]:
        return ["", "nope", 1, None]


class OneOf(Param):
    """Any value one of the options accepts: ``OneOf(Choice("auto"), Int(low=0))``;
    ``what`` words the error (default: the options' descriptions)."""

    __slots__ = ("options", "what")

    def __init__(self, *options: Param, what: str = "") -> None:
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "what", what)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a declaration is frozen")

    def __repr__(self) -> str:
        return f"OneOf({', '.join(map(repr, self.options))})"

    @property
    def none(self) -> bool:  # type: ignore[override]
        return any(o.none for o in self.options)

    def check(self, model: str, name: str, value: Any) -> Any:
        for option in self.options:
            try:
                return option.check(model, name, value)
            except ParameterError:
                continue
        raise parameter_error(model, name, self.what or self.describe(), value)

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def bad_values(self) -> list[Any]:
        """The options' bad values that every option refuses."""
        out: list[Any] = []
        for option in self.options:
            for value in option.bad_values():
                if not any(_accepts(o, value) for o in self.options) and not any(
                    _same(value, v) for v in out
                ):
                    out.append(value)
        return out


def _accepts(param: Param, value: Any) -> bool:
    try:
        param.check("", "x", value)
    except ParameterError:
        return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


class Config(Mapping[str, Any]):
    """A frozen record of hyper-parameters: ``config.hidden``, ``config["hidden"]``,
    ``dict(config)``; ``config.replace(n_dims=64)`` gives a new one.

    What a neural family's estimator hands its module (``Module.from_config(config, spec,
    n_classes)``): the family's own hyper-parameters, checked and normalised, plus what the
    data decide — so the estimator's signature is the only list of its hyper-parameters.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] = MappingProxyType({}), /, **more: Any) -> None:
        object.__setattr__(self, "_values", MappingProxyType({**values, **more}))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"this config has no {key!r} (it has {', '.join(self)})") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"a Config is frozen; use config.replace({key}=...)")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def replace(self, **changes: Any) -> Config:
        return Config(self._values, **changes)

    def __reduce__(self) -> Any:
        return (Config, (dict(self._values),))
