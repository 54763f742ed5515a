"""Mixed-precision training steps: autocast to bfloat16 or float16, a gradient scaler for float16.

The weights stay float32 (their updates would vanish in 8 or 11 bits of mantissa); only
the forward pass of a training step runs under :func:`torch.autocast`, which computes
matrix products and convolutions in the low precision and keeps reductions, softmaxes and
logarithms in float32. float16's narrow range needs the loss scaled before the backward
pass (:class:`torch.amp.GradScaler`: gradients unscaled before clipping, a step with an
infinite gradient skipped and the scale lowered); bfloat16 has float32's range and needs
none. Losses are summed, and validation runs, in float32 or better: a likelihood is never
accumulated in the low precision.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import nn

from ptheta.errors import ParameterError

# the training precisions a neural family's ``dtype`` names, and the weights' dtype of each
AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHTS = {
    "float32": torch.float32,
    "float64": torch.float64,
    **dict.fromkeys(AUTOCAST, torch.float32),
}


def weights_dtype(dtype: str) -> torch.dtype:
    """The dtype of the weights (and of continuous inputs) for a ``dtype`` setting: float64
    or float32; the autocast precisions keep float32 weights.

    Example:
        >>> weights_dtype("bfloat16"), weights_dtype("float64")
        (torch.float32, torch.float64)
    """
    if dtype not in WEIGHTS:
        raise ParameterError(f"unknown dtype {dtype!r}; use one of {', '.join(WEIGHTS)}")
    return WEIGHTS[dtype]


def autocast_name(dtype: str) -> str | None:
    """The autocast precision of a ``dtype`` setting ("bfloat16", "float16"), or None."""
    return dtype if dtype in AUTOCAST else None


class Precision:
    """How a training step computes: full precision, or autocast (+ a gradient scaler).

    Arguments:
        autocast: ``"bfloat16"``, ``"float16"`` or None (the module's own dtype).
        device: where the module trains.
        module: checked: autocast needs float32 weights.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 1)
        >>> amp = Precision("bfloat16", torch.device("cpu"), net)
        >>> with amp.autocast():
        ...     out = net(torch.ones(2, 3))
        >>> out.dtype, amp.scaler is None
        (torch.bfloat16, True)
    """

    def __init__(self, autocast: str | None, device: torch.device, module: nn.Module) -> None:
        self.dtype = None if autocast is None else AUTOCAST[autocast]
        self.device_type = device.type
        self.scaler: torch.amp.GradScaler | None = None
        if self.dtype is None:
            return
        wrong = sorted({str(p.dtype) for p in module.parameters() if p.dtype != torch.float32})
        if wrong:
            raise ParameterError(
                f"autocast to {autocast} needs float32 weights, the module has {wrong}; "
                "build it in float32 (dtype='float32' weights) or train without autocast"
            )
        _check_supported(autocast, device)
        if self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(device.type)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of a training step's forward pass."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """Gradients back in their true units (before clipping them)."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """The optimiser step (skipped by the scaler when a gradient is not finite)."""
        if self.scaler is None:
            opt.step()
            return
        self.scaler.step(opt)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(state)


def _check_supported(autocast: str, device: torch.device) -> None:
    """A ParameterError where torch cannot autocast to ``autocast`` on ``device``."""
    fix = "use dtype='float32'"
    if not torch.amp.is_autocast_available(device.type):
        raise ParameterError(f"torch cannot autocast on {device.type}; {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "not supported, disabling autocast" is a warning
            with torch.autocast(device.type, dtype=AUTOCAST[autocast]):
                probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, UserWarning) as e:
        raise ParameterError(
            f"torch cannot autocast to {autocast} on {device} ({e}); {fix}"
        ) from None
    if probe.dtype != AUTOCAST[autocast]:
        raise ParameterError(f"torch does not autocast to {autocast} on {device}; {fix}")
