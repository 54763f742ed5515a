"""Likelihood cells for tables: the kind in words (summaries come from ``model.nll_summary``)."""

from __future__ import annotations


def describe_kind(likelihood: str, units: str) -> str:
    """Human text for a table cell: ``exact``, ``bound (dequantised)``, ``exact density``."""
    if likelihood == "none":
        return "none"
    if units == "continuous":
        return f"{likelihood} (density)"
    return likelihood if likelihood != "bound" else "bound (≥ NLL)"
