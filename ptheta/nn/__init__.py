"""Layers and torch helpers shared by families."""

from ptheta.nn.device import resolve_device, resolve_dtype

__all__ = ["resolve_device", "resolve_dtype"]
