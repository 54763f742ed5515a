"""Fitting the linear-Gaussian state-space model with missing entries: EM on the observed-data
likelihood, its expected statistics checked against the joint Gaussian of the stacked
(z_1..T, x_1..T) conditioned on the observed entries, built here independently."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec
from ptheta.data.stream import ArraySource
from ptheta.errors import DataError
from ptheta.models import state_space
from ptheta.models.state_space import LGSSM, StateSpace

A = np.array([[0.8, 0.3], [-0.2, 0.7]])
Q = np.array([[0.5, 0.1], [0.1, 0.3]])
MU0 = np.array([0.5, -1.0])
S0 = np.array([[1.0, 0.3], [0.3, 0.6]])
C3 = np.array([[1.0, -0.5], [0.4, 1.2], [0.7, 0.2]])  # D = 3
D3 = np.array([3.0, -2.0, 0.5])
R3 = np.array([[0.4, 0.15, 0.05], [0.15, 0.7, -0.1], [0.05, -0.1, 0.5]])
TRUE = LGSSM(A, Q, C3, D3, R3, MU0, S0)


def _fit(x, **params) -> StateSpace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StateSpace(**{"latent_dim": 2, "min_covar": 0.0, **params}).fit(x)


def _draw(p: LGSSM, n: int, t_len: int, seed: int) -> np.ndarray:
    """n sequences (n, T, D) drawn from the model p."""
    rng = np.random.default_rng(seed)
    k, dim = len(p.initial_mean), len(p.observation_offset)
    z = p.initial_mean + rng.standard_normal((n, k)) @ np.linalg.cholesky(p.initial_cov).T
    out = np.empty((n, t_len, dim))
    for t in range(t_len):
        if t:
            z = (
                z @ p.transition.T
                + rng.standard_normal((n, k)) @ np.linalg.cholesky(p.transition_cov).T
            )
        noise = rng.standard_normal((n, dim)) @ np.linalg.cholesky(p.observation_cov).T
        out[:, t] = z @ p.observation.T + p.observation_offset + noise
    return out


def _holes(x: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``rate`` of the entries missing completely at random, plus a whole step missing in
    some sequences and one sequence missing entirely."""
    rng = np.random.default_rng(seed)
    out = x.copy()
    out[rng.random(x.shape) < rate] = np.nan
    out[: len(x) // 4, 2] = np.nan  # a whole step
    out[-1] = np.nan  # a whole sequence
    return out


def _joint(p: LGSSM, t_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the stacked w = (z_1..T, x_1..T), (T·k + T·D)."""
    a, q, c, d, r, mu0, s0 = p
    k = len(mu0)
    n_z = t_len * k
    means, var = [mu0], [s0]
    for _ in range(t_len - 1):
        means.append(a @ means[-1])
        var.append(a @ var[-1] @ a.T + q)
    cov_z = np.zeros((n_z, n_z))
    for t in range(t_len):
        for s in range(t, t_len):  # Cov(z_s, z_t) = A^(s−t) V_t
            block = np.linalg.matrix_power(a, s - t) @ var[t]
            cov_z[s * k : (s + 1) * k, t * k : (t + 1) * k] = block
            cov_z[t * k : (t + 1) * k, s * k : (s + 1) * k] = block.T
    big_c = np.kron(np.eye(t_len), c)
    mean = np.concatenate(
        [np.concatenate(means), big_c @ np.concatenate(means) + np.tile(d, t_len)]
    )
    cov = np.block(
        [
            [cov_z, cov_z @ big_c.T],
            [big_c @ cov_z, big_c @ cov_z @ big_c.T + np.kron(np.eye(t_len), r)],
        ]
    )
    return mean, cov


def _posterior(p: LGSSM, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, the mean (N, W) and covariance (N, W, W) of w = (z, x) given the observed
    entries of x (N, T, D) (observed coordinates: their value, zero variance)."""
    n, t_len, dim = x.shape
    mean, cov = _joint(p, t_len)
    n_z = len(mean) - t_len * dim
    out_mean, out_cov = np.empty((n, len(mean))), np.empty((n, len(mean), len(mean)))
    for i, seq in enumerate(x.reshape(n, -1)):
        o = n_z + np.flatnonzero(~np.isnan(seq))
        gain = np.linalg.solve(cov[np.ix_(o, o)], cov[o]).T if len(o) else np.zeros((len(mean), 0))
        out_mean[i] = mean + gain @ (seq[o - n_z] - mean[o])
        out_cov[i] = cov - gain @ cov[o]
    return out_mean, out_cov


def _stats_by_conditioning(p: LGSSM, x: np.ndarray) -> dict[str, np.ndarray]:
    """E[Σ x_t], E[Σ x_t x_tᵀ], E[Σ x_t z_tᵀ] given the observed entries, from the joint."""
    t_len, dim = x.shape[1:]
    k = len(p.initial_mean)
    mean, cov = _posterior(p, x)
    second = cov + np.einsum("ni,nj->nij", mean, mean)
    out = {"x": np.zeros(dim), "xx": np.zeros((dim, dim)), "xz": np.zeros((dim, k))}
    for t in range(t_len):
        zt = slice(t * k, (t + 1) * k)
        xt = slice(t_len * k + t * dim, t_len * k + (t + 1) * dim)
        out["x"] += mean[:, xt].sum(axis=0)
        out["xx"] += second[:, xt, xt].sum(axis=0)
        out["xz"] += second[:, xt, zt].sum(axis=0)
    return out


def _e_step(p: LGSSM, x: np.ndarray) -> dict[str, np.ndarray]:
    smoothed = state_space.rts_smoother(state_space.kalman_filter(x, p), p)
    stats = state_space._expectations(x, *smoothed[:3])
    stats.update(state_space._missing_expectations(x, p, *smoothed[:2]))
    return stats


# --------------------------------------------------------------------------- E-step
@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("shared", [False, True])
def test_expected_statistics_equal_gaussian_conditioning(full, shared):
    p = TRUE if full else TRUE._replace(observation_cov=np.diag(np.diag(R3)))
    x = _draw(p, 6, 4, seed=1)
    if shared:  # the same pattern in every sequence: covariances shared by the filter
        x[:, 1] = np.nan
        x[:, 2, [0, 2]] = np.nan
    else:
        x = _holes(x, 0.3, seed=2)
        x[1, 0, 1] = np.nan
    got, want = _e_step(p, x), _stats_by_conditioning(p, x)
    for key in ("x", "xx", "xz"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9, err_msg=key)


# --------------------------------------------------------------------------- M-step
def _q_function(theta: dict[str, torch.Tensor], mean, cov, t_len: int, k: int, dim: int):
    """Q(θ) = E[log p(z, x; θ) | x_observed] (up to a constant) for the posterior moments of
    w = (z, x) per sequence, each Gaussian factor's expectation in closed form:
    E[(Lw − b)ᵀ S⁻¹ (Lw − b)] = (Lμ − b)ᵀ S⁻¹ (Lμ − b) + tr(S⁻¹ L Σ Lᵀ)."""
    mean, cov = torch.from_numpy(mean), torch.from_numpy(cov)
    width = mean.shape[1]
    eye = torch.eye(width, dtype=torch.float64)

    def z(t):
        return eye[t * k : (t + 1) * k]

    def xs(t):
        return eye[t_len * k + t * dim : t_len * k + (t + 1) * dim]

    def term(lin, offset, s):
        resid = mean @ lin.T - offset  # (N, m)
        inv = torch.linalg.inv(s)
        quad = torch.einsum("ni,ij,nj->n", resid, inv, resid)
        trace = torch.einsum("ij,nji->n", inv, lin @ cov @ lin.T)
        return -0.5 * (torch.logdet(s) + quad + trace).sum()

    a, q, c, d, r = theta["a"], theta["q"], theta["c"], theta["d"], theta["r"]
    total = term(z(0), theta["mu0"], theta["s0"])
    for t in range(t_len):
        if t:
            total = total + term(z(t) - a @ z(t - 1), torch.zeros(k, dtype=torch.float64), q)
        total = total + term(xs(t) - c @ z(t), d, r)
    return total


@pytest.mark.parametrize("full", [True, False])
def test_m_step_maximises_the_expected_complete_log_likelihood(full):
    """One EM step from known parameters: the gradient of Q(θ | θ_old), by autograd of the
    expected complete-data log-density (posterior from the joint Gaussian), is 0 at the
    M-step's θ."""
    old = TRUE if full else TRUE._replace(observation_cov=np.diag(np.diag(R3)))
    x = _holes(_draw(old, 8, 4, seed=3), 0.25, seed=4)
    x[0, 0, 1] = np.nan
    stats = _e_step(old, x)
    moments = state_space._data_moments(x)
    new = state_space._m_step(old, stats, moments, frozenset(), diag=not full, eps=0.0)
    mean, cov = _posterior(old, x)
    names = ("a", "q", "c", "d", "r", "mu0", "s0")
    theta = {
        key: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for key, v in zip(names, new, strict=True)
    }
    _q_function(theta, mean, cov, 4, 2, 3).backward()
    for key in names:
        grad = theta[key].grad.numpy()
        if key == "r" and not full:
            grad = np.diag(grad)  # R diagonal: only its diagonal is free
        np.testing.assert_allclose(grad, 0, atol=1e-8, err_msg=key)


# --------------------------------------------------------------------------- EM
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_em_is_monotone_and_its_history_is_the_scorer(covariance_type):
    x = _holes(_draw(TRUE, 40, 8, seed=5), 0.2, seed=6)
    assert 0.18 < np.isnan(x).mean() < 0.35
    for min_covar in (0.0, 1e-3):
        params = {"covariance_type": covariance_type, "min_covar": min_covar, "tol": 0}
        m = _fit(x, max_iter=25, **params)
        objective = np.array([h["objective"] for h in m.history_])
        assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:]))
        assert objective[-1] > objective[0] + 1e-3  # it learnt something
        # history[j] is the parameters after j M-steps: those of a fit with max_iter = j
        m_short = _fit(x, max_iter=24, **params)
        scores = m_short.score_samples(x)
        np.testing.assert_allclose(m.history_[-1]["log_likelihood"], scores.mean(), rtol=1e-10)
        loglik = [h["log_likelihood"] for h in m.history_]
        np.testing.assert_allclose(m_short.history_[-1]["log_likelihood"], loglik[-2], rtol=1e-12)


def test_complete_data_fit_is_unchanged_by_the_missing_path():
    """No NaN: the statistics are the data's own; an all-observed pattern adds nothing."""
    x = _draw(TRUE, 10, 5, seed=7)
    p = TRUE._replace(observation_offset=np.zeros(3))
    smoothed = state_space.rts_smoother(state_space.kalman_filter(x, p), p)
    extra = state_space._missing_expectations(x, p, *smoothed[:2])
    moments = state_space._data_moments(x)
    flat = x.reshape(-1, 3)
    np.testing.assert_array_equal(extra["x"], moments["x"])
    np.testing.assert_allclose(extra["xx"], moments["xx"], rtol=1e-14)
    np.testing.assert_allclose(
        extra["xz"], np.einsum("nd,nk->dk", flat, smoothed[0].reshape(-1, 2))
    )


def _torch_log_lik(theta: dict[str, torch.Tensor], x: np.ndarray) -> torch.Tensor:
    """Σ over sequences of log p(x_observed), by a Kalman filter in torch (one sequence at a
    time, the observed rows of C, d, R at each step)."""
    a, q, c, d, r, mu0, s0 = (theta[key] for key in ("a", "q", "c", "d", "r", "mu0", "s0"))
    total = torch.zeros((), dtype=torch.float64)
    for seq in x:
        m, p = mu0, s0
        for t, step in enumerate(seq):
            if t:
                m, p = a @ m, a @ p @ a.T + q
            o = np.flatnonzero(~np.isnan(step))
            if not len(o):
                continue
            co, e = c[o], torch.from_numpy(step[o]) - c[o] @ m - d[o]
            s = co @ p @ co.T + r[o][:, o]
            gain = p @ co.T @ torch.linalg.inv(s)
            total = total - 0.5 * (len(o) * np.log(2 * np.pi) + torch.logdet(s))
            total = total - 0.5 * e @ torch.linalg.solve(s, e)
            m, p = m + gain @ e, p - gain @ co @ p
    return total


def test_a_fixed_point_is_a_stationary_point_of_the_observed_data_likelihood():
    """After EM has converged, the autograd gradient of the exact log p(x_observed) (a
    Kalman filter written in torch here) vanishes at the fitted parameters (standardised
    units), and nudging single parameters lowers ``score_samples(train).sum()``."""
    truth = LGSSM(
        np.array([[0.9]]), np.array([[0.19]]), C3[:, :1], D3, np.diag([0.3, 0.5, 0.4]),
        np.zeros(1), np.eye(1),
    )  # fmt: skip
    x = _holes(_draw(truth, 60, 6, seed=8), 0.2, seed=9)
    m = _fit(x, latent_dim=1, max_iter=3000, tol=1e-12, fixed=("initial_mean", "initial_cov"))
    assert m.converged_
    p = m._standardised()
    z = (x - m.shift_) / m.scale_
    theta = {
        key: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for key, v in zip(("a", "q", "c", "d", "r", "mu0", "s0"), p, strict=True)
    }
    loglik = _torch_log_lik(theta, z)
    jacobian = -(~np.isnan(z) * np.log(m.scale_)).sum()
    np.testing.assert_allclose(
        float(loglik.detach()) + jacobian, m.score_samples(x).sum(), rtol=1e-10
    )
    loglik.backward()
    for key in ("a", "q", "c", "d"):
        np.testing.assert_allclose(theta[key].grad.numpy(), 0, atol=1e-3, err_msg=key)
    np.testing.assert_allclose(np.diag(theta["r"].grad.numpy()), 0, atol=1e-3)
    base = m.score_samples(x).sum()
    for attr, index in [
        ("observation_", (0, 0)), ("observation_offset_", (1,)), ("observation_cov_", (2, 2)),
        ("transition_", (0, 0)), ("transition_cov_", (0, 0)),
    ]:  # fmt: skip
        for step in (-1e-3, 1e-3):
            nudged = _fit(x, latent_dim=1, max_iter=1)
            for key in m._expected_shapes(m.fitted_spec):
                setattr(nudged, key, getattr(m, key).copy())
            getattr(nudged, attr)[index] += step * abs(getattr(m, attr)[index])
            assert nudged.score_samples(x).sum() < base, (attr, step)


# --------------------------------------------------------------------------- recovery
def test_recovery_beats_the_complete_case_fit():
    """20 % of entries missing: the fit recovers what the true model implies for x (mean and
    covariance of the stacked sequence, invariant to the latent basis) and scores held-out
    sequences better than the same model fitted on the complete sequences only."""
    t_len = 6
    x = _draw(TRUE, 400, t_len, seed=10)
    test = _draw(TRUE, 400, t_len, seed=11)
    rng = np.random.default_rng(12)
    x[rng.random(x.shape) < 0.2] = np.nan
    complete = x[~np.isnan(x).any(axis=(1, 2))]
    assert 0.01 < len(complete) / len(x) < 0.05  # 0.8^18 ≈ 1.8 % complete sequences
    m = _fit(x, covariance_type="full", max_iter=300, tol=1e-6)
    cc = _fit(complete, covariance_type="full", max_iter=300, tol=1e-6)
    mean, cov = state_space.joint_moments(TRUE, t_len)
    got_mean, got_cov = m.observation_moments()
    assert np.abs(got_mean - mean).max() < 0.2
    assert np.abs(got_cov - cov).max() < 0.25 * np.abs(cov).max()
    cc_cov_err = np.abs(cc.observation_moments()[1] - cov).max()
    assert np.abs(got_cov - cov).max() < cc_cov_err
    assert m.score_samples(test).mean() > cc.score_samples(test).mean() + 0.5


# --------------------------------------------------------------------------- data
def test_a_source_with_nan_fits_as_the_array():
    x = _holes(_draw(TRUE, 20, 5, seed=13), 0.2, seed=14)
    params = {"covariance_type": "full", "max_iter": 5}
    a, b = (
        _fit(x, **params),
        _fit(ArraySource(x, spec=DataSpec("continuous", x.shape[1:])), **params),
    )
    for key in a._expected_shapes(a.fitted_spec):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert ptheta.make("state-space").capabilities().fits_missing


def test_standardisation_and_jacobian_use_the_observed_entries():
    """Units: fitting 10·x + 5 gives the same model in the new units, and scores lower by
    log 10 per observed entry, however the entries are missing."""
    x = _holes(_draw(TRUE, 20, 5, seed=15), 0.2, seed=16)
    a, b = _fit(x, max_iter=5), _fit(10 * x + 5, max_iter=5)
    np.testing.assert_allclose(b.observation_cov_, 100 * a.observation_cov_, rtol=1e-8)
    np.testing.assert_allclose(b.observation_offset_, 10 * a.observation_offset_ + 5, rtol=1e-8)
    seen = (~np.isnan(x)).sum(axis=(1, 2))
    np.testing.assert_allclose(
        b.score_samples(10 * x + 5), a.score_samples(x) - seen * np.log(10), rtol=1e-8, atol=1e-8
    )
    np.testing.assert_allclose(
        a.history_[-1]["log_likelihood"], _fit(x, max_iter=4).score_samples(x).mean(), rtol=1e-10
    )


def test_a_feature_never_observed_is_one_clear_error():
    x = _draw(TRUE, 10, 4, seed=17)
    x[:, :, 1] = np.nan
    with pytest.raises(DataError, match=r"feature 1 .*no observed value.*drop that feature"):
        _fit(x, max_iter=2)
