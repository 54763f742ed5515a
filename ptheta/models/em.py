"""The EM driver every latent-class family shares: restarts, convergence, progress, history;
full-batch EM over batches of data, and stepwise (mini-batch) EM.

A family supplies three functions over its own parameters (a tuple of arrays or tensors):
``init(seed) -> params`` for one restart, ``e_step(params) -> (objective, log_likelihood,
posteriors)`` with per-example means, and ``m_step(posteriors) -> params``. :func:`run_em`
alternates them from ``n_init`` seeded starts until the objective per example changes by
less than ``tol`` and keeps the best run. EM never lowers the objective (the history
records it per step, so tests can check it).

Families whose E-step is a sum over examples describe it as an :class:`EMProblem` instead
(expected sufficient statistics summed over batches); :func:`fit_em` then runs either

- **full-batch EM** (``em="full"``): each E-step sums the statistics over the batches of
  the data with :func:`~ptheta.data.stream.accumulate` (under ``torchrun`` each process
  sums its share of the batches and the sums are all-reduced), then one M-step; or
- **stepwise EM** (``em="minibatch"``; Sato & Ishii 2000, Cappé & Moulines 2009, Liang &
  Klein 2009): every epoch visits the examples in a new seeded random order, in batches of
  ``batch_size``; after each batch the running statistics move towards the batch's,
  s ← (1 − ρ_t) s + ρ_t ŝ(batch), with step sizes ρ_t = (t + 2)^−α (t = 0, 1, … counts
  the steps over all epochs, α = ``step_decay`` in (0.5, 1], so Σ ρ_t = ∞ and Σ ρ_t² < ∞),
  and the parameters are the M-step of s. Under ``torchrun`` each process reads its share
  of every batch and the batch's statistics are all-reduced, so every process takes the
  same step. Its history records per epoch the mean of the batches' objectives and
  log-likelihoods, each at the parameters of its step (an online estimate that EM does
  not make monotone), and ``step_size``, the ρ of the epoch's last step.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ptheta.data import stream
from ptheta.data.stream import Source, accumulate
from ptheta.errors import ParameterError
from ptheta.progress import Advance, progress_bar

Params = tuple[Any, ...]  # arrays or tensors, one tuple per family
# e_step(params) -> (mean objective, mean log-likelihood, posteriors, e.g. (N, K))
EStep = Callable[[Params], tuple[float, float, Any]]
MStep = Callable[[Any], Params]
# expected sufficient statistics, as totals over the data (see EMProblem)
Stats = dict[str, np.ndarray]
Statistics = Callable[[np.ndarray, "np.ndarray | None"], Mapping[str, Any]]


@dataclass
class EMResult:
    """The best of the restarts: its parameters (float64 arrays) and how it went."""

    params: tuple[np.ndarray, ...]
    objective: float
    converged: bool
    n_iter: int
    history: list[dict[str, float]]
    best_init: int
    timed_out: bool = False  # stopped at max_time, before converging or max_iter


class EMProblem(Protocol):
    """EM whose E-step is a sum over examples, in the pieces :func:`fit_em` drives.

    ``statistics(params)`` returns the function of one batch of examples (and its labels)
    whose values are summed over batches (``accumulate``), keys ``"objective"`` and
    ``"log_likelihood"`` (sums over the batch) among them; ``expected(sums, params,
    count)`` turns the sums over ``count`` examples into (objective per example,
    log-likelihood per example, statistics scaled to the whole data set); ``m_step``
    maximises for such statistics; ``blend(s, s_hat, rho)`` is (1 − ρ) s + ρ ŝ in the
    space where the statistics are linear; ``init(seed)`` gives a restart's parameters and
    the statistics they are the M-step of (None: stepwise EM starts from the statistics of
    a full E-step at those parameters).
    """

    def init(self, seed: np.random.SeedSequence) -> tuple[Params, Stats | None]: ...

    def statistics(self, params: Params) -> Statistics: ...

    def expected(
        self, sums: Mapping[str, np.ndarray], params: Params, count: int
    ) -> tuple[float, float, Stats]: ...

    def m_step(self, stats: Stats) -> Params: ...

    def blend(self, stats: Stats, new: Stats, rho: float) -> Stats: ...


def step_size(t: int, decay: float) -> float:
    """Stepwise EM's step size ρ_t = (t + 2)^−decay for step t = 0, 1, … (ρ_0 < 1, so the
    initial statistics keep some weight)."""
    return float((t + 2.0) ** -decay)


def blend_moments(
    n_a: np.ndarray,
    mean_a: np.ndarray,
    cov_a: np.ndarray,
    n_b: np.ndarray,
    mean_b: np.ndarray,
    cov_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, means and covariances of the union of two weighted sets, per component
    (Chan, Golub & LeVeque's pairwise update): counts (K,), means (K, D), covariances
    (K, D, D) or, diagonal, (K, D). Adding the sufficient statistics (n, Σx, Σxxᵀ) of the
    two sets, written without the cancellation of Σxxᵀ − n·mean·meanᵀ.

    Example:
        >>> import numpy as np
        >>> a, b = np.array([[0.0], [2.0]]), np.array([[4.0]])
        >>> n, m, c = blend_moments(np.array([2.0]), a.mean(0)[None], a.var(0)[None],
        ...                         np.array([1.0]), b.mean(0)[None], b.var(0)[None])
        >>> n.tolist(), m.tolist(), np.allclose(c, np.var([0.0, 2.0, 4.0]))
        ([3.0], [[2.0]], True)
    """
    n = n_a + n_b
    w_b = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)  # (K,)
    w_a = 1.0 - w_b
    delta = mean_b - mean_a  # (K, D)
    mean = mean_a + w_b[:, None] * delta
    if cov_a.ndim == 3:
        spread = np.einsum("ki,kj->kij", delta, delta)
        cov = w_a[:, None, None] * cov_a + w_b[:, None, None] * cov_b
        cov += (w_a * w_b)[:, None, None] * spread
    else:
        cov = w_a[:, None] * cov_a + w_b[:, None] * cov_b + (w_a * w_b)[:, None] * delta**2
    return n, mean, cov


class Deadline:
    """``max_time`` seconds from now (None: no limit). :meth:`passed` is every process's
    common answer under ``torchrun`` (late anywhere: late everywhere, so all stop at the
    same step), and it remembers whether it ever answered yes."""

    def __init__(self, max_time: float | None) -> None:
        self.max_time = max_time
        self.end = None if max_time is None else time.monotonic() + float(max_time)
        self.hit = False

    def passed(self) -> bool:
        if self.end is None:
            return False
        late = time.monotonic() > self.end
        if stream.process_share()[1] > 1:
            late = bool(stream.all_reduce_sum({"late": np.array([float(late)])})["late"][0])
        self.hit = self.hit or late
        return late


def fit_em(
    problem: EMProblem,
    data: Source,
    *,
    em: str,
    batch_size: int | None,
    step_decay: float,
    n_init: int,
    max_iter: int,
    tol: float,
    random_state: Any,
    y: np.ndarray | None = None,
    label: str = "EM",
    verbose: bool = False,
    max_time: float | None = None,
) -> EMResult:
    """Full-batch (``em="full"``) or stepwise (``em="minibatch"``) EM of ``problem`` on the
    examples of ``data`` (labels ``y`` passed to its statistics), ``n_init`` restarts.

    ``batch_size``: rows per batch; for full-batch EM None reads the source's batches (about
    32 MB each), for stepwise EM it is the batch of one step (None: 1024). ``max_time``:
    seconds for all the restarts together, from now: EM stops after the step (epoch) that
    passes it, keeps the best run so far and warns (``timed_out``); no restart starts after
    it (the first always runs).
    """
    rank_world = stream.process_share()
    if rank_world[1] > 1 and random_state is None:
        raise ParameterError(
            "under torchrun every process must start EM from the same initialisation: "
            "set random_state to an integer"
        )
    if em == "full":

        def e_step(params: Params) -> tuple[float, float, Stats]:
            sums = accumulate(data, problem.statistics(params), y=y, batch_size=batch_size)
            return problem.expected(sums, params, len(data))

        return run_em(
            lambda seed: problem.init(seed)[0], e_step, problem.m_step, n_init=n_init,
            max_iter=max_iter, tol=tol, random_state=random_state, label=label, verbose=verbose,
            max_time=max_time,
        )  # fmt: skip
    return run_stepwise_em(
        problem, data, y=y, batch_size=batch_size or 1024, step_decay=step_decay,
        n_init=n_init, max_iter=max_iter, tol=tol, random_state=random_state, label=label,
        verbose=verbose, max_time=max_time,
    )  # fmt: skip


def batch_sums(
    data: Source, index: np.ndarray, statistics: Statistics, y: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``statistics`` summed over the examples ``index`` (sorted) of ``data``: under
    ``torchrun`` each process reads every W-th of them and the sums are all-reduced."""
    rank, world = stream.process_share()
    part = index[rank::world]
    labels = None if y is None else y[part]
    sums = statistics(data.read(part), labels)
    return stream.all_reduce_sum({k: np.asarray(v, dtype=np.float64) for k, v in sums.items()})


def run_stepwise_em(
    problem: EMProblem,
    data: Source,
    *,
    batch_size: int,
    step_decay: float,
    n_init: int,
    max_iter: int,
    tol: float,
    random_state: Any,
    y: np.ndarray | None = None,
    label: str = "EM",
    verbose: bool = False,
    max_time: float | None = None,
) -> EMResult:
    """Stepwise EM (see the module's docstring): ``max_iter`` epochs at most, each a pass
    over the examples in a seeded random order in batches of ``batch_size``, stopping when
    the epoch's mean objective per example changes by less than ``tol`` (or at
    ``max_time``, as in :func:`fit_em`); the best of ``n_init`` restarts (by the last
    epoch's objective). Warns like :func:`run_em`."""
    seeds = np.random.SeedSequence(random_state).spawn(int(n_init))
    n, size = len(data), max(1, int(batch_size))
    best: dict[str, Any] | None = None
    deadline = Deadline(max_time)
    with progress_bar(int(n_init) * int(max_iter), label, enabled=bool(verbose)) as advance:
        for run, seed in enumerate(seeds):
            if run and deadline.passed():
                break
            params, stats = problem.init(seed)
            if stats is None:  # the initial parameters alone: a full E-step's statistics
                sums = accumulate(data, problem.statistics(params), y=y, batch_size=size)
                stats = problem.expected(sums, params, n)[2]
            # the order of the examples: its own stream of the restart's seed
            order = np.random.default_rng(int(seed.generate_state(2)[1]))
            history: list[dict[str, float]] = []
            prev, change, converged, t, epoch = -math.inf, math.inf, False, 0, 0
            for epoch in range(1, int(max_iter) + 1):
                perm = order.permutation(n)
                total_objective = total_loglik = 0.0
                for start in range(0, n, size):
                    index = np.sort(perm[start : start + size])
                    sums = batch_sums(data, index, problem.statistics(params), y)
                    objective, loglik, new = problem.expected(sums, params, len(index))
                    total_objective += objective * len(index)
                    total_loglik += loglik * len(index)
                    rho = step_size(t, step_decay)
                    stats = problem.blend(stats, new, rho)
                    params = problem.m_step(stats)
                    t += 1
                objective = total_objective / n
                history.append({"step": epoch, "objective": objective,
                                "log_likelihood": total_loglik / n, "step_size": rho})  # fmt: skip
                change, prev = objective - prev, objective
                advance(1, objective=objective)
                if abs(change) < tol:
                    converged = True
                    break
                if deadline.passed():
                    break
            advance(int(max_iter) - epoch)
            result = {"params": params, "objective": prev, "converged": converged,
                      "n_iter": epoch, "history": history, "last_change": abs(change),
                      "init": run}  # fmt: skip
            if best is None or result["objective"] > best["objective"]:
                best = result
    assert best is not None
    return _result(best, max_iter, tol, deadline)


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
    max_time: float | None = None,
) -> EMResult:
    """EM from ``n_init`` initialisations ``init(seed)``; the run with the best objective
    (stopping at ``max_time``, as in :func:`fit_em`).

    Warns (scikit-learn's ``ConvergenceWarning``) when the best run did not converge.
    """
    seeds = np.random.SeedSequence(random_state).spawn(int(n_init))
    best: dict[str, Any] | None = None
    deadline = Deadline(max_time)
    with progress_bar(int(n_init) * int(max_iter), label, enabled=bool(verbose)) as advance:
        for run, seed in enumerate(seeds):
            if run and deadline.passed():
                break
            result = _em_loop(init(seed), e_step, m_step, int(max_iter), tol, advance, deadline)
            result["init"] = run
            if best is None or result["objective"] > best["objective"]:
                best = result
    assert best is not None
    return _result(best, max_iter, tol, deadline)


def _result(
    best: dict[str, Any], max_iter: int, tol: float, deadline: Deadline | None = None
) -> EMResult:
    """The best run as an :class:`EMResult`; a ConvergenceWarning if it did not converge
    (saying so when it stopped at the deadline)."""
    from sklearn.exceptions import ConvergenceWarning

    timed_out = deadline is not None and deadline.hit and not best["converged"]
    if timed_out:
        assert deadline is not None
        warnings.warn(
            f"EM stopped at max_time={deadline.max_time:g}s after {best['n_iter']} of "
            f"max_iter={max_iter} iterations (last change of the objective per example: "
            f"{best['last_change']:.3g}); raise max_time, or use fewer components, "
            "covariance_type='diag' or em='minibatch'",
            ConvergenceWarning,
            stacklevel=4,
        )
    elif not best["converged"]:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change of "
            f"the objective per example: {best['last_change']:.3g} > tol={tol:g}); "
            "raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=4,
        )
    return EMResult(
        params=tuple(_float64(p) for p in best["params"]),
        objective=float(best["objective"]),
        converged=bool(best["converged"]),
        n_iter=int(best["n_iter"]),
        history=best["history"],
        best_init=int(best["init"]),
        timed_out=timed_out,
    )


def _float64(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a).astype(np.float64)


def _em_loop(
    params: Params,
    e_step: EStep,
    m_step: MStep,
    max_iter: int,
    tol: float,
    advance: Advance,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Alternate E and M steps from ``params`` until the mean objective per example changes
    by less than ``tol``, for ``max_iter`` steps, or until the ``deadline`` passes."""
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
        if deadline is not None and deadline.passed():
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
