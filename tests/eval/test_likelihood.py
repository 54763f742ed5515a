"""How a likelihood was computed, in words: kinds and ODE solvers (ptheta/eval/likelihood.py)."""

from __future__ import annotations

import warnings

import numpy as np

import ptheta
from ptheta.eval.likelihood import describe_kind, describe_solver


def test_kinds_in_words():
    assert describe_kind("exact", "discrete") == "exact"
    assert describe_kind("bound", "discrete") == "bound (≥ NLL)"
    assert describe_kind("estimate", "continuous") == "estimate (density)"
    assert describe_kind("none", None) == "none"


def test_a_solver_line_names_steps_or_tolerances_and_the_divergence():
    fixed = {"ode_solver": "rk4", "ode_steps": 8, "nfe": 32, "divergence": "exact"}
    assert describe_solver(fixed) == (
        "ODE likelihood: rk4, 8 steps, 32 function evaluations per solve, exact divergence"
    )
    adaptive = {
        "ode_solver": "dopri5",
        "ode_rtol": 1e-5,
        "ode_atol": 1e-6,
        "nfe": 74,
        "divergence": "hutchinson",
        "n_probes": 4,
        "n_dequant_samples": 2,
    }
    line = describe_solver(adaptive)
    assert "rtol 1e-05, atol 1e-06" in line and "74 function evaluations" in line
    assert "Hutchinson divergence (4 probes)" in line and "2 dequantisation draws" in line
    assert describe_solver({"nfe": 3}) is None  # no solver, no line


def test_a_fitted_ode_family_reports_the_solver_of_its_last_scores():
    x = np.random.default_rng(0).normal(size=(64, 2))
    model = ptheta.make("flow-matching", **ptheta.models.REGISTRY["flow-matching"].quick_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x)
    summary = model.nll_summary(x[:5])
    details = model.likelihood_details()
    assert summary["ode_solver"] == details["ode_solver"] == model.ode_solver
    assert details["nfe"] == 4 * model.ode_steps  # rk4: four evaluations per step
    assert describe_solver(summary).startswith(f"ODE likelihood: rk4, {model.ode_steps} steps")
    assert ptheta.make("independent").fit(x).likelihood_details() == {}
