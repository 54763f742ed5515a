"""Batch, event and sample shapes at the module level, as ``torch.distributions`` has them.

A module's per-example methods are written for a flat batch: x (N, *event_shape) → (N,).
:func:`batched` makes such a method take x of shape (*batch, *event_shape) and return
(*batch,) (an unbatched example (*event_shape) gives a scalar), and :func:`sampled` makes
``sample(n, ...)`` take ``sample_shape`` (an int n, a tuple, or () for one example) and
return (*sample_shape, *event_shape). Both read what the module declares:

- ``event_shape``: the shape of one example;
- ``n_categories``: K of discrete inputs (levels 0..K−1: any integer dtype or bool, or
  floats holding whole numbers, all converted to int64 here), or None for real inputs
  (any float or integer dtype, cast to the module's floating dtype);
- ``variable_length`` (class attribute, default False): sequence models, whose last axis
  is time and may have any length L ≥ 1: (*batch, L) is a batch of sequences of length L.

Where the event has several axes, flat examples (*batch, D), D = prod(event_shape), in
raster order are accepted too (the estimators feed flat digits (64,) to image models of
(1, 8, 8)); when both readings fit, the event shape wins, as in torch.distributions.
Class labels ``y`` have the batch shape (or broadcast to it) and are flattened with x.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Coins(nn.Module):  # three independent coins
    ...     event_shape, n_categories = (3,), 2
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.logit = nn.Parameter(torch.zeros(3))
    ...     @batched
    ...     def log_prob(self, x, y=None):  # written for x (N, 3) → (N,)
    ...         signed = torch.where(x.bool(), -self.logit, self.logit)
    ...         return -nn.functional.softplus(signed).sum(1)
    ...     @sampled
    ...     def sample(self, n, y=None, generator=None):  # written for → (n, 3)
    ...         u = torch.rand(n, 3, generator=generator)
    ...         return (u < self.logit.sigmoid()).long()
    >>> coins = Coins()
    >>> coins.log_prob(torch.ones(2, 5, 3, dtype=torch.int32)).shape
    torch.Size([2, 5])
    >>> coins.log_prob(torch.tensor([1, 0, 1])).shape  # one example: a scalar
    torch.Size([])
    >>> coins.sample((2, 4)).shape, coins.sample(0).shape
    (torch.Size([2, 4, 3]), torch.Size([0, 3]))
    >>> coins.log_prob(torch.ones(4))
    Traceback (most recent call last):
    ...
    ptheta.errors.DataError: log_prob expects (..., 3) for this module's event shape (3,), got (4,)
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.errors import DataError

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def module_dtype(module: nn.Module) -> torch.dtype:
    """The module's floating dtype: of its first floating parameter or buffer."""
    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _device(module: nn.Module) -> torch.device:
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _expected(event: tuple[int, ...], variable_length: bool) -> str:
    if variable_length:
        return "(..., T) sequences of any length T >= 1"
    out = f"(..., {', '.join(str(s) for s in event)})"
    if len(event) > 1:
        out += f" (or flat (..., {math.prod(event)}))"
    return out


def flatten_events(
    module: nn.Module, x: Any, what: str = "log_prob"
) -> tuple[Tensor, tuple[int, ...]]:
    """x (*batch, *event_shape) → (N, *event_shape) in the module's input dtype, and batch.

    Sequence models (``variable_length``) give (N, L) (or (N, *event_shape)). Raises a
    DataError (a ValueError) naming the expected shape, or the dtype problem.
    """
    event = tuple(module.event_shape)
    variable_length = bool(getattr(module, "variable_length", False))
    x = torch.as_tensor(x)
    shape, k = tuple(x.shape), len(event)
    if x.dim() >= k and shape[x.dim() - k :] == event:
        batch, inner = shape[: x.dim() - k], event
    elif variable_length and x.dim() >= 1 and shape[-1] >= 1:
        batch, inner = shape[:-1], shape[-1:]
    elif k > 1 and x.dim() >= 1 and shape[-1] == math.prod(event):
        batch, inner = shape[:-1], event
    else:
        raise DataError(
            f"{what} expects {_expected(event, variable_length)} for this module's event "
            f"shape {_shape(event)}, got {_shape(shape)}"
        )
    x = x.reshape(math.prod(batch), *inner)
    return _as_input(module, x, what), batch


def _as_input(module: nn.Module, x: Tensor, what: str) -> Tensor:
    """Discrete inputs → int64 levels in 0..K−1; real inputs → the module's dtype."""
    levels = getattr(module, "n_categories", None)
    if levels is None:
        if x.dtype not in _INTEGER_DTYPES and not x.is_floating_point():
            raise DataError(f"{what} takes real values, got dtype {x.dtype}")
        return x.to(module_dtype(module))
    if x.is_floating_point():
        if not bool(torch.all(x == x.round())):  # NaN fails here, ±inf the range check
            raise DataError(
                f"{what} takes integer levels 0..{levels - 1} for this discrete module, got "
                f"{x.dtype} values that are not whole numbers"
            )
    elif x.dtype not in _INTEGER_DTYPES:
        raise DataError(f"{what} takes integer levels, got dtype {x.dtype}")
    x = x.to(torch.long)
    if x.numel():
        low, high = torch.stack(torch.aminmax(x)).tolist()  # one device sync
        if low < 0 or high >= levels:
            raise DataError(f"{what} takes levels 0..{levels - 1}, got values from {low} to {high}")
    return x


def flatten_labels(y: Any, batch: tuple[int, ...], what: str = "log_prob") -> Tensor | None:
    """Class labels of the batch shape (or broadcastable to it) → int64 (N,); None stays."""
    if y is None:
        return None
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype not in _INTEGER_DTYPES:
        raise DataError(f"{what}: class labels y must be integers, got dtype {y.dtype}")
    try:
        y = torch.broadcast_to(y, batch)
    except RuntimeError:
        raise DataError(
            f"{what}: class labels y must have the batch shape {_shape(batch)}, got "
            f"{_shape(tuple(y.shape))}"
        ) from None
    return y.reshape(math.prod(batch)).to(torch.long)


def _flatten_extra(value: Any, batch: tuple[int, ...], extra: int) -> Any:
    """A per-example argument (*batch, *rest) with ``extra`` = len(rest) → (N, *rest);
    anything of another shape is left as it is (a shared value)."""
    if value is None:
        return None
    if not isinstance(value, (Tensor, np.ndarray)):
        value = np.asarray(value)
    shape = tuple(value.shape)
    if len(shape) == len(batch) + extra and shape[: len(batch)] == batch:
        return value.reshape(math.prod(batch), *shape[len(batch) :])
    return value


def _unflatten(out: Any, batch: tuple[int, ...]) -> Any:
    if isinstance(out, tuple):
        return tuple(_unflatten(o, batch) for o in out)
    return out.reshape((*batch, *out.shape[1:]))


def batched(
    method: Callable | None = None,
    *,
    per_example: Mapping[str, int] | None = None,
    outputs: int = 1,
) -> Callable:
    """Decorate ``method(self, x, y=None, ...)`` written for x (N, *event_shape) and labels
    y (N,), returning (N,) values (or a tuple of them), so that it takes x (*batch,
    *event_shape) and y (*batch) and returns (*batch,): see the module docstring.

    ``per_example`` names keyword arguments that hold one entry per example (name → the
    number of axes after the batch axes, e.g. ``{"keys": 0}``); they are flattened too.
    Inputs already of shape (N, *event_shape) pass through unchanged, which is how the
    Trainer calls ``loss``. An empty batch gives empty results (``outputs`` of them, in the
    module's dtype) without calling the method.
    """
    extras = dict(per_example or {})

    def wrap(method: Callable) -> Callable:
        what = method.__name__

        @functools.wraps(method)
        def wrapper(self: nn.Module, x: Any, y: Any = None, *args: Any, **kwargs: Any) -> Any:
            flat, batch = flatten_events(self, x, what)
            if not len(flat):
                empty = torch.empty(batch, dtype=module_dtype(self), device=_device(self))
                return empty if outputs == 1 else (empty,) * outputs
            for name, extra in extras.items():
                if name in kwargs:
                    kwargs[name] = _flatten_extra(kwargs[name], batch, extra)
            if y is None and not args:  # methods without labels (an energy) take x alone
                return _unflatten(method(self, flat, **kwargs), batch)
            out = method(self, flat, flatten_labels(y, batch, what), *args, **kwargs)
            return _unflatten(out, batch)

        return wrapper

    return wrap if method is None else wrap(method)


def sample_shape_of(sample_shape: Any) -> tuple[int, ...]:
    """An int n → (n,); a tuple, list or torch.Size of whole numbers ≥ 0 → that tuple."""
    shape = (sample_shape,) if isinstance(sample_shape, Integral) else sample_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if shape is None or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise DataError(
            "sample_shape must be a whole number n >= 0 or a tuple of them (torch.Size), "
            f"got {sample_shape!r}"
        )
    return tuple(int(s) for s in shape)


def sampled(method: Callable | None = None, *, per_example: Mapping[str, int] | None = None):
    """Decorate ``sample(self, n, y=None, ...)`` returning (n, *event_shape) so that it
    takes ``sample_shape`` (an int n, a tuple, or () for one example) and returns
    (*sample_shape, *event_shape); labels y have the sample shape (or broadcast to it).

    Zero samples give an empty tensor of shape (*sample_shape, *event_shape) without
    calling the method: int64 for discrete samples, the module's dtype otherwise.
    ``per_example``: as for :func:`batched` (e.g. ``{"prompt": 1}``).
    """
    extras = dict(per_example or {})

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: nn.Module, sample_shape: Any = (), y: Any = None, *args, **kwargs):
            shape = sample_shape_of(sample_shape)
            n = math.prod(shape)
            if n == 0:
                levels = getattr(self, "n_categories", None)
                discrete = getattr(self, "discrete", levels is not None)  # VAEs: their output's
                dtype = torch.long if discrete else module_dtype(self)
                return torch.empty((*shape, *self.event_shape), dtype=dtype, device=_device(self))
            if y is not None:
                y = flatten_labels(y, shape, "sample").to(_device(self))
            for name, extra in extras.items():
                if name in kwargs:
                    kwargs[name] = _flatten_extra(kwargs[name], shape, extra)
            out = method(self, n, y, *args, **kwargs)
            return out.reshape((*shape, *out.shape[1:]))

        params = list(inspect.signature(method).parameters.values())
        params[1] = params[1].replace(
            name="sample_shape", default=(), annotation="int | tuple[int, ...]"
        )
        wrapper.__signature__ = inspect.signature(method).replace(parameters=params)
        return wrapper

    return wrap if method is None else wrap(method)
