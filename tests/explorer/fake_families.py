"""Stand-in families for the explorer's score-field, ODE and probability-budget views.

Each is a Gaussian whose score, ODE and density are known in closed form, so the tests can
compare what a view shows with hand maths. They declare the same capabilities as the real
families (``score_field``, ``sample_paths``) and are registered by the ``fake_families``
fixture (conftest.py) for one test module at a time.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ptheta.models.base import GenerativeModel

LANGEVIN_STEP = 0.05  # step ε of the chains, in units of the fitted variance
LANGEVIN_STEPS = 200
LANGEVIN_START = 3.0  # chains start from N(0, LANGEVIN_START² I): wide noise


class FakeLangevin(GenerativeModel):
    """N(μ, s² I) fitted by moments, known only by its score −(x − μ)/s², sampled by the
    unadjusted Langevin algorithm x ← x + ε ∇log p(x) + √(2ε) z."""

    name: ClassVar[str] = "toy-langevin"
    family: ClassVar[str] = "test"
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    abilities: ClassVar[dict[str, Any]] = {
        "score_field": True,
        "sample_paths": "langevin",
        "anomaly_score": None,
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}

    def __init__(self, *, n_steps: int = LANGEVIN_STEPS) -> None:
        self.n_steps = n_steps

    def _fit(self, x, y, spec):
        self.mean_ = x.mean(axis=0)
        self.var_ = float(x.var(axis=0).mean())

    def score_field(self, X) -> np.ndarray:
        return -(np.asarray(X, dtype=np.float64) - self.mean_) / self.var_

    def sample_paths(self, n_samples: int, *, n_frames: int = 10, random_state: Any = 0):
        rng = np.random.default_rng(random_state)
        step = LANGEVIN_STEP * self.var_
        x = LANGEVIN_START * rng.standard_normal((n_samples, self.mean_.size))
        keep = set(np.round(np.linspace(0, self.n_steps, n_frames)).astype(int).tolist())
        frames = [x] if 0 in keep else []
        for t in range(1, self.n_steps + 1):
            noise = rng.standard_normal(x.shape)
            x = x + step * self.score_field(x) + math.sqrt(2 * step) * noise
            if t in keep:
                frames.append(x)
        return np.stack(frames)  # (n_frames, n, D)

    def _sample(self, n, y, rng):
        return self.mean_ + math.sqrt(self.var_) * rng.standard_normal((n, self.mean_.size))

    def _n_parameters(self):
        return self.mean_.size + 1


class FakeODE(GenerativeModel):
    """N(μ, diag(σ²)) fitted by moments, reached from N(0, I) by the linear ODE whose flow
    is x(t) = ((1 − t) + t σ) z + t μ, t from 0 (noise) to 1 (data); its density at t = 1
    is the Gaussian's, exactly."""

    name: ClassVar[str] = "toy-ode"
    family: ClassVar[str] = "test"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    abilities: ClassVar[dict[str, Any]] = {"sample_paths": "ode"}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}

    def _fit(self, x, y, spec):
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0)

    def _score_samples(self, x):
        z = (x - self.mean_) / self.std_
        return (
            -0.5 * (z**2).sum(1)
            - np.log(self.std_).sum()
            - 0.5 * x.shape[1] * math.log(2 * math.pi)
        )

    def sample_paths(self, n_samples: int, *, n_frames: int = 10, random_state: Any = 0):
        z = np.random.default_rng(random_state).standard_normal((n_samples, self.mean_.size))
        t = np.linspace(0.0, 1.0, n_frames)[:, None, None]  # (F, 1, 1)
        return ((1 - t) + t * self.std_) * z + t * self.mean_  # (F, n, D)

    def likelihood_details(self) -> dict[str, Any]:
        return {"ode_solver": "closed form", "nfe": 0}

    def _sample(self, n, y, rng):
        return self.mean_ + self.std_ * rng.standard_normal((n, self.mean_.size))

    def _n_parameters(self):
        return 2 * self.mean_.size


class FakeUnnormalised(GenerativeModel):
    """An "autoregressive" family on binary data whose probabilities are those of
    independent pixels times 1.25: it claims an exact likelihood but spends 1.25 units of
    mass, which the probability budget must show."""

    name: ClassVar[str] = "toy-overspent"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}
    EXTRA = 1.25

    def _fit(self, x, y, spec):
        self.p_ = (x.sum(0) + 1) / (len(x) + 2)

    def _score_samples(self, x):
        log_p = x * np.log(self.p_) + (1 - x) * np.log1p(-self.p_)
        return log_p.sum(1) + math.log(self.EXTRA)

    def _sample(self, n, y, rng):
        return (rng.random((n, self.p_.size)) < self.p_).astype(np.int64)

    def _n_parameters(self):
        return self.p_.size


FAKES: tuple[type[GenerativeModel], ...] = (FakeLangevin, FakeODE)
