"""The EM driver every latent-class family shares: restarts, convergence, progress, history.

A family supplies three functions over its own parameters (a tuple of tensors):
``init(seed) -> params`` for one restart, ``e_step(params) -> (objective, log_likelihood,
posteriors)`` with per-example means, and ``m_step(posteriors) -> params``. :func:`run_em`
alternates them from ``n_init`` seeded starts until the objective per example changes by
less than ``tol`` and keeps the best run. EM never lowers the objective (the history
records it per step, so tests can check it). Mixtures use it today; hidden Markov models
(posteriors over state paths) fit the same three functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptheta.progress import Advance, progress_bar

Params = tuple[torch.Tensor, ...]
# e_step(params) -> (mean objective, mean log-likelihood, posteriors, e.g. (N, K))
EStep = Callable[[Params], tuple[float, float, torch.Tensor]]
MStep = Callable[[torch.Tensor], Params]


@dataclass
class EMResult:
    """The best of the restarts: its parameters (float64 arrays) and how it went."""

    params: tuple[np.ndarray, ...]
    objective: float
    converged: bool
    n_iter: int
    history: list[dict[str, float]]
    best_init: int


def run_em(
    init: Callable[[np.random.SeedSequence], Params],
    e_step: EStep,
    m_step: MStep,
    *,
    n_init: int,
    max_iter: int,
    tol: float,
    random_state: Any,
    label: str = "EM",
    verbose: bool = False,
) -> EMResult:
    """EM from ``n_init`` initialisations ``init(seed)``; the run with the best objective.

    Warns (scikit-learn's ``ConvergenceWarning``) when the best run did not converge.
    """
    from sklearn.exceptions import ConvergenceWarning

    seeds = np.random.SeedSequence(random_state).spawn(int(n_init))
    best: dict[str, Any] | None = None
    with progress_bar(int(n_init) * int(max_iter), label, enabled=bool(verbose)) as advance:
        for run, seed in enumerate(seeds):
            result = _em_loop(init(seed), e_step, m_step, int(max_iter), tol, advance)
            result["init"] = run
            if best is None or result["objective"] > best["objective"]:
                best = result
    assert best is not None
    if not best["converged"]:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change of "
            f"the objective per example: {best['last_change']:.3g} > tol={tol:g}); "
            "raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return EMResult(
        params=tuple(t.cpu().numpy().astype(np.float64) for t in best["params"]),
        objective=float(best["objective"]),
        converged=bool(best["converged"]),
        n_iter=int(best["n_iter"]),
        history=best["history"],
        best_init=int(best["init"]),
    )


def _em_loop(
    params: Params, e_step: EStep, m_step: MStep, max_iter: int, tol: float, advance: Advance
) -> dict[str, Any]:
    """Alternate E and M steps from ``params`` until the mean objective per example changes
    by less than ``tol``, or for ``max_iter`` steps."""
    history: list[dict[str, float]] = []
    prev, change, converged, it = -math.inf, math.inf, False, 0
    for it in range(1, max_iter + 1):
        objective, loglik, resp = e_step(params)
        history.append({"step": it, "objective": objective, "log_likelihood": loglik})
        params = m_step(resp)
        change, prev = objective - prev, objective
        advance(1, objective=objective)
        if abs(change) < tol:
            converged = True
            break
    advance(max_iter - it)
    # The parameters returned are those after the last M-step, one step beyond the last
    # recorded objective; EM guarantees they are at least as good.
    return {
        "params": params,
        "objective": prev,
        "converged": converged,
        "n_iter": it,
        "history": history,
        "last_change": abs(change),
    }
