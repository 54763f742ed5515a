"""Stand-in families of variable-length sequences, with likelihoods known in closed form.

They let the tests of compare, the CLI and the explorer check per-step numbers against
hand maths without depending on any real family: every step i.i.d. (a smoothed
categorical for tokens, a Gaussian for real values) and a geometric length,

    log p(x, L) = Σ_{t<L} log f(x_t) + (L − 1) log(1 − q) + log q,   q = N / Σ L,

so that the end of a sequence is a scored event. ``FakeStates`` adds a state path (two
states: the first half of each sequence and the rest), standing in for a latent-state
family whose most probable path is drawn. Register them with ``registered()``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from ptheta.models import REGISTRY
from ptheta.models.base import GenerativeModel


class FakeIID(GenerativeModel):
    """I.i.d. steps with a geometric length (see the module docstring)."""

    name: ClassVar[str] = "test-iid-seq"
    family: ClassVar[str] = "test"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    abilities: ClassVar[dict[str, Any]] = {"variable_length": True, "needs_sequence": True}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}, "demo": {}}

    def _fit_sequences(self, x, lengths, y, spec):
        steps = x[np.arange(x.shape[1]) < lengths[:, None]]  # (S, *step_shape)
        if spec.is_discrete:
            counts = np.bincount(steps.reshape(-1), minlength=spec.n_categories)
            self.log_theta_ = np.log((counts + 1.0) / (counts.sum() + spec.n_categories))
        else:
            flat = steps.reshape(len(steps), -1)
            self.mean_, self.var_ = flat.mean(0), flat.var(0) + 1e-3
        self.q_ = float(len(lengths) / lengths.sum())

    def step_log_prob(self, steps: np.ndarray) -> np.ndarray:
        """log f of each step, (S,)."""
        if self.fitted_spec.is_discrete:
            return self.log_theta_[np.asarray(steps, dtype=np.int64).reshape(len(steps))]
        flat = np.asarray(steps, dtype=np.float64).reshape(len(steps), -1)
        z = (flat - self.mean_) ** 2 / self.var_
        return -0.5 * (z + np.log(2 * math.pi * self.var_)).sum(1)

    def _score_sequences(self, x, lengths):
        mask = np.arange(x.shape[1]) < lengths[:, None]  # (N, T): the padding is never read
        per_step = np.zeros(mask.shape)
        per_step[mask] = self.step_log_prob(x[mask])
        return per_step.sum(1) + (lengths - 1) * math.log1p(-self.q_) + math.log(self.q_)

    # fixed-length data (the explorer's other views may fit them): every row a sequence of
    # all its steps, i.i.d., with no length to model
    def _fit(self, x, y, spec):
        self._fit_sequences(x, np.full(len(x), x.shape[1]), y, spec)

    def _score_samples(self, x):
        return self._score_sequences(x, np.full(len(x), x.shape[1])) - self._log_length(x)

    def _sample(self, n, y, rng):
        shape = self.fitted_spec.event_shape  # (T,) or (T, *step): steps are what follows T
        return self._draw(n, shape[0], shape[1:], rng)

    def _log_length(self, x):
        return (x.shape[1] - 1) * math.log1p(-self.q_) + math.log(self.q_)

    def _draw(self, n, length, step_shape, rng):
        spec = self.fitted_spec
        shape = (n, length, *step_shape)
        if spec.is_discrete:
            return rng.choice(spec.n_categories, size=shape, p=np.exp(self.log_theta_))
        noise = rng.standard_normal(shape).reshape(n, length, -1)
        return (self.mean_ + np.sqrt(self.var_) * noise).reshape(shape)

    def _sample_sequences(self, n, y, rng):
        lengths = np.minimum(rng.geometric(self.q_, size=n), 40)
        values = self._draw(n, int(lengths.max()), self.fitted_spec.step_shape, rng)
        values[np.arange(values.shape[1]) >= lengths[:, None]] = 0
        return values, lengths

    def _n_parameters(self):
        if self.fitted_spec.is_discrete:
            return len(self.log_theta_)
        return 2 * len(self.mean_) + 1


class FakeUniform(FakeIID):
    """Uniform tokens, the same geometric length: a worse model of skewed tokens."""

    name: ClassVar[str] = "test-uniform-seq"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}

    def _fit_sequences(self, x, lengths, y, spec):
        self.log_theta_ = np.full(spec.n_categories, -math.log(spec.n_categories))
        self.q_ = float(len(lengths) / lengths.sum())

    def _n_parameters(self):
        return 1


class FakeStates(FakeIID):
    """FakeIID with a state path: ``viterbi`` gives state 0 on the first half of each
    sequence, 1 on the rest (padded with −1 after each end, as hmm does)."""

    name: ClassVar[str] = "test-states-seq"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical")
    abilities: ClassVar[dict[str, Any]] = {"state_path": True}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"explorer": {}}

    def viterbi(self, X):
        from ptheta.data.ragged import check_sequences

        x, lengths = check_sequences(X, self.fitted_spec)
        t = np.arange(x.shape[1])
        states = (t[None, :] >= (lengths[:, None] + 1) // 2).astype(np.int64)
        states[t[None, :] >= lengths[:, None]] = -1
        return states


FAKES = (FakeIID, FakeUniform, FakeStates)


@contextlib.contextmanager
def registered() -> Iterator[dict[str, type]]:
    """The fakes in the registry (after every real family), removed afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for cls in FAKES:
            patch.setitem(REGISTRY, cls.name, cls)
        yield {cls.name: cls for cls in FAKES}
