"""Likelihood summaries in one unit: nats per example and bits per dimension, with their kind."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ptheta.models.base import GenerativeModel


def nll_summary(model: GenerativeModel, x: Any) -> dict[str, Any]:
    """Mean negative log-likelihood of ``x`` under a fitted ``model``.

    Returns a dict with ``n``, ``nll_nats`` (per example), ``bits_per_dim``, ``std_err``
    (of the mean, nats), ``likelihood`` (exact / bound / estimate / none) and ``units``
    (``discrete``: −log P, comparable across discrete models and their bounds;
    ``continuous``: −log density, comparable only with other densities of the same data).
    A model with no likelihood gives None for the numbers.
    """
    spec = model.fitted_spec
    out: dict[str, Any] = {
        "n": len(x),
        "likelihood": model.likelihood_,
        "units": model.units_,
        "nll_nats": None,
        "bits_per_dim": None,
        "std_err": None,
    }
    if model.likelihood_ == "none":
        return out
    log_p = model.score_samples(x)
    nll = float(-log_p.mean())
    out["nll_nats"] = nll
    out["bits_per_dim"] = nll / (spec.n_dims * math.log(2.0))
    out["std_err"] = float(log_p.std(ddof=1) / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0
    return out


def describe_kind(likelihood: str, units: str) -> str:
    """Human text for a table cell: ``exact``, ``bound (dequantised)``, ``exact density``."""
    if likelihood == "none":
        return "none"
    if units == "continuous":
        return f"{likelihood} (density)"
    return likelihood if likelihood != "bound" else "bound (≥ NLL)"


def finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]
