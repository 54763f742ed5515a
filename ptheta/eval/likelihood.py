"""Likelihood cells for tables: the kind in words, and how an ODE likelihood was computed
(summaries come from ``model.nll_summary``)."""

from __future__ import annotations


def describe_kind(likelihood: str, units: str) -> str:
    """Human text for a table cell: ``exact``, ``bound (dequantised)``, ``exact density``,
    ``exact (probability × density)`` for a table of discrete and continuous columns."""
    if likelihood == "none":
        return "none"
    if units == "continuous":
        return f"{likelihood} (density)"
    if units == "mixed":
        return f"{likelihood} (probability × density)"
    return likelihood if likelihood != "bound" else "bound (≥ NLL)"


def describe_solver(details: dict) -> str | None:
    """One line on how an ODE likelihood was computed (from ``likelihood_details()`` or an
    ``nll_summary``), or None for a likelihood without a solver.

    Example:
        >>> print(describe_solver({"ode_solver": "rk4", "ode_steps": 32, "nfe": 128,
        ...                        "divergence": "exact"}))
        ODE likelihood: rk4, 32 steps, 128 function evaluations per solve, exact divergence
        >>> describe_solver({}) is None
        True
    """
    solver = details.get("ode_solver")
    if solver is None:
        return None
    if "ode_steps" in details:
        how = f"{solver}, {details['ode_steps']} steps"
    else:
        how = f"{solver}, rtol {details.get('ode_rtol')}, atol {details.get('ode_atol')}"
    parts = [f"ODE likelihood: {how}, {details.get('nfe')} function evaluations per solve"]
    divergence = details.get("divergence")
    if divergence == "hutchinson":
        probes = details.get("n_probes")
        parts.append("Hutchinson divergence" + (f" ({probes} probes)" if probes else ""))
    elif divergence:
        parts.append(f"{divergence} divergence")
    if details.get("n_dequant_samples"):
        kind = details.get("dequantization")
        kind = f" ({kind})" if kind else ""
        parts.append(f"{details['n_dequant_samples']} dequantisation draws{kind}")
    return ", ".join(parts)
