"""Ordinary differential equations for continuous-time models: integration through
torchdiffeq, divergences, and the instantaneous change of variables.

A continuous-time model moves examples along ``dx/dt = v(x, t)``. Its samples come from
integrating ``v`` from the noise end to the data end, and its log-density of an example
from integrating ``v`` *and* its divergence the other way (Chen et al. 2018, FFJORD):

    log p_data(x) = log p_noise(x(t_noise)) + ∫_{t_data}^{t_noise} ∇·v(x(t), t) dt,

with ``x(t_data) = x``. The divergence is exact (one gradient per dimension, from
autograd) or Hutchinson's estimate εᵀ (∂v/∂x) ε with one fixed probe ε per example and
solve (unbiased; its error comes from several probes).

Solvers are torchdiffeq's: ``"dopri5"`` (adaptive Dormand–Prince; ``rtol``/``atol``) and
the fixed-grid ``"rk4"``, ``"heun2"``, ``"midpoint"`` and ``"euler"`` (``steps`` equal
steps). A fixed grid makes an example's result a function of that example alone; an
adaptive solver picks one step sequence for the whole batch (its error control uses the
largest per-example error, so every example meets the tolerance), so an example's result
can move within the tolerance with its batch. Every call reports its number of function
evaluations (NFE).

Example:
    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0]])
    >>> end, nfe = integrate(lambda x, t: -x, x, 0.0, 1.0, solver="rk4", steps=20)
    >>> torch.allclose(end, x * torch.exp(torch.tensor(-1.0)), atol=1e-6), nfe
    (True, 80)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]  # v(x (N, *event), t scalar tensor) -> (N, *event)

ADAPTIVE_SOLVERS: tuple[str, ...] = ("dopri5",)
FIXED_SOLVERS: tuple[str, ...] = ("rk4", "heun2", "midpoint", "euler")
SOLVERS: tuple[str, ...] = ADAPTIVE_SOLVERS + FIXED_SOLVERS
DIVERGENCES: tuple[str, ...] = ("exact", "hutchinson")
# evaluations of v per step of each fixed-grid solver (torchdiffeq's rk4 is the 3/8 rule)
_EVALS_PER_STEP = {"rk4": 4, "heun2": 2, "midpoint": 2, "euler": 1}


@dataclass(frozen=True)
class ODESolver:
    """How to integrate: ``solver`` (one of :data:`SOLVERS`), its tolerances (adaptive)
    or number of equal ``steps`` (fixed grid)."""

    solver: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    steps: int = 100

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")

    @property
    def adaptive(self) -> bool:
        return self.solver in ADAPTIVE_SOLVERS

    def details(self, nfe: int) -> dict[str, Any]:
        """The solver as JSON-able values, with the NFE of one solve (for reports)."""
        out: dict[str, Any] = {"ode_solver": self.solver, "nfe": int(nfe)}
        if self.adaptive:
            out.update(ode_rtol=self.rtol, ode_atol=self.atol)
        else:
            out["ode_steps"] = self.steps
        return out


class _Counted:
    """``v`` in torchdiffeq's calling convention ``f(t, state)``, counting its calls."""

    def __init__(self, f: Callable[[Tensor, Any], Any]) -> None:
        self.f = f
        self.nfe = 0

    def __call__(self, t: Tensor, state: Any) -> Any:
        self.nfe += 1
        return self.f(t, state)


def _per_example_rms(state: Any) -> Tensor:
    """torchdiffeq's error norm, made per example: the largest RMS over the examples, so
    every example (not only the batch on average) meets the tolerance."""
    parts = state if isinstance(state, tuple) else (state,)
    n = parts[0].shape[0]
    squares = sum(p.reshape(n, -1).pow(2).sum(1) for p in parts)
    size = sum(p.reshape(n, -1).shape[1] for p in parts)
    return (squares / size).sqrt().max()


def _solve(f: _Counted, state: Any, times: Tensor, solver: ODESolver) -> Any:
    from torchdiffeq import odeint  # imported on first use: `import ptheta` stays light

    if solver.adaptive:
        options = {"norm": _per_example_rms}
        return odeint(
            f,
            state,
            times,
            rtol=solver.rtol,
            atol=solver.atol,
            method=solver.solver,
            options=options,
        )
    span = float(times[-1] - times[0])
    options = {"step_size": abs(span) / solver.steps}
    if len(times) > 2:  # output times need not sit on the grid: torchdiffeq interpolates
        options["perturb"] = False
    return odeint(f, state, times, method=solver.solver, options=options)


def _times(t0: float, t1: float, n_frames: int, like: Tensor) -> Tensor:
    return torch.linspace(float(t0), float(t1), n_frames, dtype=like.dtype, device=like.device)


def integrate(
    velocity: Velocity,
    x: Tensor,
    t0: float,
    t1: float,
    *,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    steps: int = 100,
    n_frames: int = 2,
) -> tuple[Tensor, int]:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t0`` to ``t1`` (either direction).

    Arguments:
        velocity: v(x, t) with x (N, *event) and t a scalar tensor.
        x: the state at ``t0``.
        solver, rtol, atol, steps: see :class:`ODESolver`.
        n_frames: 2 returns the end state only; more returns the path at ``n_frames``
            equally spaced times from ``t0`` to ``t1``, (n_frames, N, *event).

    Returns:
        (the end state, or the path; the number of function evaluations).
    """
    how = ODESolver(solver, rtol, atol, steps)
    f = _Counted(lambda t, state: velocity(state, t))
    path = _solve(f, x, _times(t0, t1, max(n_frames, 2), x), how)
    return (path[-1] if n_frames <= 2 else path), f.nfe


def divergence(
    v: Tensor, x: Tensor, *, probe: Tensor | None = None, create_graph: bool = False
) -> Tensor:
    """∇·v at x, per example (N,): exact (one gradient per dimension) when ``probe`` is
    None, else Hutchinson's εᵀ (∂v/∂x) ε with ``probe`` = ε (N, *event), unbiased when ε
    has mean 0 and identity covariance.

    ``v`` must have been computed from ``x`` with gradients on, each example's output
    from that example alone (no batch statistics), so that sums over the batch separate.
    """
    n = x.shape[0]
    if probe is not None:
        (vjp,) = torch.autograd.grad(v, x, probe, create_graph=create_graph)
        return (vjp * probe).reshape(n, -1).sum(1)
    flat = v.reshape(n, -1)
    total = torch.zeros(n, dtype=v.dtype, device=v.device)
    for i in range(flat.shape[1]):
        (g,) = torch.autograd.grad(
            flat[:, i].sum(), x, retain_graph=True, create_graph=create_graph
        )
        total = total + g.reshape(n, -1)[:, i]
    return total


def log_prob(
    velocity: Velocity,
    x: Tensor,
    base_log_prob: Callable[[Tensor], Tensor],
    *,
    t_data: float,
    t_noise: float,
    solver: ODESolver,
    probe: Tensor | None = None,
) -> tuple[Tensor, Tensor, int]:
    """log p(x) by the instantaneous change of variables along ``velocity``.

    Integrates (x, ℓ) from ``t_data`` to ``t_noise`` with dℓ/dt = ∇·v (exact, or
    Hutchinson's estimate with ``probe``), then adds the noise end's log-density:
    log p(x) = base_log_prob(x(t_noise)) + ℓ(t_noise).

    Arguments:
        velocity: v(x, t), a function of each example alone (see :func:`divergence`).
        x: examples (N, *event) at ``t_data``.
        base_log_prob: log-density of the noise end, (N, *event) -> (N,).
        t_data, t_noise: the times of the data and of the noise.
        solver: how to integrate.
        probe: Hutchinson's probe ε, (N, *event), fixed along the path; None for the
            exact divergence.

    Returns:
        (log p(x) (N,), x(t_noise), number of function evaluations). Gradients do not flow
        back to ``x`` or the velocity's parameters (a likelihood for scoring).
    """

    def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        z = state[0].detach().requires_grad_(True)
        with torch.enable_grad():
            v = velocity(z, t)
            div = divergence(v, z, probe=probe)
        return v.detach(), div.detach()

    f = _Counted(dynamics)
    start = (x.detach(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    zs, logdet = _solve(f, start, _times(t_data, t_noise, 2, x), solver)
    end = zs[-1]
    with torch.no_grad():
        out = base_log_prob(end) + logdet[-1]
    return out, end, f.nfe


def standard_normal_log_prob(z: Tensor, std: float = 1.0) -> Tensor:
    """log N(z; 0, std² I) per example (N,): the noise end of most continuous-time models."""
    flat = z.reshape(z.shape[0], -1)
    d = flat.shape[1]
    return -0.5 * (flat / std).pow(2).sum(1) - d * (math.log(std) + 0.5 * math.log(2 * math.pi))
