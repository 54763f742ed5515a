"""Choosing torch devices and dtypes from the strings users write."""

from __future__ import annotations

import torch

from ptheta.errors import ParameterError


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (CUDA when available) → torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"unknown device {device!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device='cuda' was asked for but no CUDA GPU is available; use cpu")
    return dev


def resolve_dtype(dtype: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` → torch dtype."""
    table = {"float32": torch.float32, "float64": torch.float64}
    if not isinstance(dtype, str) or dtype not in table:
        raise ParameterError(f"unknown dtype {dtype!r}; use float32 or float64")
    return table[dtype]
