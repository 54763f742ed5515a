"""Mixtures fitted with missing (NaN) entries: EM on the observed-data likelihood.

Monotone EM, the history's log-likelihood equals the scorer's, one EM step against an
independent implementation (explicit inverses; enumeration of the missing cells), a
vanishing autograd gradient of the observed-data log-likelihood at a converged fit,
recovery of a known model better than the complete-case fit, streaming and bad input.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource, NpySource
from ptheta.errors import DataError


def _gaussians(n: int, seed: int, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n draws of a known two-component Gaussian mixture in d dimensions (and its labels)."""
    rng = np.random.default_rng(seed)
    means = np.stack([np.zeros(d), np.r_[3.0, -2.0, np.ones(d - 2)][:d]])
    a = np.linalg.cholesky(0.5 * np.eye(d) + 0.4)  # correlated coordinates
    labels = rng.random(n) < 0.4
    x = (
        means[labels.astype(int)]
        + rng.standard_normal((n, d)) @ a.T * np.where(labels, 0.7, 1.0)[:, None]
    )
    return x, means, labels


def _mcar(x: np.ndarray, rate: float, seed: int, whole_rows: int = 0) -> np.ndarray:
    """A copy of x with each entry NaN with probability ``rate`` and the first
    ``whole_rows`` rows entirely NaN."""
    rng = np.random.default_rng(seed)
    out = np.asarray(x, dtype=np.float64).copy()
    out[rng.random(out.shape) < rate] = np.nan
    out[:whole_rows] = np.nan
    return out


def _categorical(n: int, seed: int, d: int = 6, levels: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(0.3 * np.ones(levels), size=(2, d))  # (K, D, L), well apart
    comp = (rng.random(n) < 0.35).astype(int)
    u = rng.random((n, d, 1))
    x = (u > probs[comp].cumsum(axis=2)).sum(axis=2).astype(np.float64)
    return x, probs, np.array([0.65, 0.35])


def _split(x: np.ndarray, levels: int) -> Split:
    kind = "binary" if levels == 2 else "categorical"
    return Split(x, None, DataSpec(kind, (x.shape[1],), None if levels == 2 else levels))


def _fit(data, family: str = "gmm", **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: "did not converge"
        return ptheta.make(family, **params).fit(data)


# Every EM mixture's configurations: (family, data of 25 % MCAR entries and 3 NaN rows, params)
def _cases() -> list:
    x, _, _ = _gaussians(240, seed=1)
    xc, _, _ = _categorical(240, seed=2)
    levels = np.clip(np.floor(x + 3.0), 0, 7)
    return [
        ("gmm", _mcar(x, 0.25, 3, 3), {"covariance_type": "full"}),
        ("gmm", _mcar(x, 0.25, 3, 3), {"covariance_type": "diag"}),
        ("gmm", _mcar(x, 0.25, 3, 3), {"covariance_type": "full", "init": "random"}),
        ("gmm", _split(_mcar(levels, 0.25, 4, 3), 8), {"covariance_type": "full"}),
        ("gmm", _split(_mcar(levels, 0.25, 4, 3), 8), {"covariance_type": "diag"}),
        ("categorical-mixture", _split(_mcar(xc, 0.25, 5, 3), 3), {"alpha": 0.5}),
        ("categorical-mixture", _split(_mcar(xc, 0.25, 5, 3), 3), {"alpha": 0.0}),
        ("bernoulli-mixture", _split(_mcar(xc > 1, 0.25, 6, 3), 2), {"init": "random"}),
    ]


CASES = _cases()
IDS = ["gmm-full", "gmm-diag", "gmm-random", "gmm-deq-full", "gmm-deq-diag",
       "categorical", "categorical-ml", "bernoulli"]  # fmt: skip


@pytest.mark.parametrize(("family", "data", "params"), CASES, ids=IDS)
def test_em_objective_never_decreases_and_the_history_is_the_scorer(family, data, params):
    model = _fit(data, family, n_components=3, max_iter=25, tol=0.0, random_state=0, **params)
    objective = np.array([h["objective"] for h in model.history_])
    assert len(objective) == 25 and objective[-1] > objective[0]
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:]))
    # the history's last entry is at the parameters before the last M-step: one more
    # iteration of the same run records the log-likelihood of this model's parameters
    longer = _fit(data, family, n_components=3, max_iter=26, tol=0.0, random_state=0, **params)
    x = data.x if isinstance(data, Split) else data
    assert longer.history_[-1]["log_likelihood"] == pytest.approx(
        model.score_samples(x).mean(), rel=1e-10
    )


# --------------------------------------------------------------------------- one EM step
def _gmm_em_step(model, y: np.ndarray, smooth: float) -> tuple[np.ndarray, ...]:
    """One EM step from ``model``'s parameters on rows y (of the modelled variable) by
    explicit inverses, row by row: r ∝ π_k N(y_O; μ_O, Σ_OO)·exp(−½·smooth·tr Σ_z⁻¹) (Σ_z the
    covariance of the standardised z = (y − shift_) / scale_), then
    μ = Σ r E[y] / Σ r and Σ = Σ r (E[y] E[y]ᵀ + Cov[y]) / Σ r − μ μᵀ + smooth·diag(scale²)."""
    w, mu = model.weights_, model.means_
    cov = model.covariances_
    if cov.ndim == 2:
        cov = np.stack([np.diag(c) for c in cov])
    k, d = mu.shape
    n_k, s1, s2 = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    for row in y:
        o, m = ~np.isnan(row), np.isnan(row)
        log_r, fills, extras = np.zeros(k), [], []
        for j in range(k):
            s_oo = cov[j][np.ix_(o, o)]
            diff = row[o] - mu[j, o]
            # the smoothing is in standardised units, z = (y − shift) / scale
            precision = np.linalg.inv(cov[j]) * np.outer(model.scale_, model.scale_)
            log_r[j] = np.log(w[j]) - 0.5 * smooth * np.trace(precision)
            log_r[j] -= 0.5 * (diff @ np.linalg.inv(s_oo) @ diff + np.log(np.linalg.det(s_oo)))
            log_r[j] -= 0.5 * o.sum() * np.log(2 * np.pi)
            fill, extra = row.copy(), np.zeros((d, d))
            gain = cov[j][np.ix_(m, o)] @ np.linalg.inv(s_oo) if o.any() else np.zeros((m.sum(), 0))
            fill[m] = mu[j, m] + gain @ diff
            extra[np.ix_(m, m)] = cov[j][np.ix_(m, m)] - gain @ cov[j][np.ix_(o, m)]
            fills.append(fill)
            extras.append(extra)
        r = np.exp(log_r - logsumexp(log_r))
        for j in range(k):
            n_k[j] += r[j]
            s1[j] += r[j] * fills[j]
            s2[j] += r[j] * (np.outer(fills[j], fills[j]) + extras[j])
    means = s1 / n_k[:, None]
    covs = s2 / n_k[:, None, None] - np.einsum("ki,kj->kij", means, means)
    covs += smooth * np.diag(model.scale_**2)
    if model.covariances_.ndim == 2:
        covs = np.diagonal(covs, axis1=1, axis2=2)
    return n_k / n_k.sum(), means, covs


@pytest.mark.parametrize(
    ("covariance_type", "discrete"), [("full", False), ("diag", False), ("full", True)]
)
def test_one_gmm_em_step_equals_explicit_conditionals(covariance_type, discrete):
    x, _, _ = _gaussians(90, seed=7)
    data = _mcar(x, 0.3, 8, whole_rows=2)
    params = {"n_components": 2, "covariance_type": covariance_type, "reg_covar": 1e-3,
              "tol": 0.0, "random_state": 0}  # fmt: skip
    smooth = 1e-3
    if discrete:
        data = _split(_mcar(np.clip(np.floor(x + 3), 0, 7), 0.3, 8, whole_rows=2), 8)
        smooth += 1.0 / 12  # dequantisation's variance: EM's smoothing
    before = _fit(data, **params, max_iter=4)
    after = _fit(data, **params, max_iter=5)
    y = (data.x + 0.5) if discrete else data
    weights, means, covs = _gmm_em_step(before, y, smooth)
    np.testing.assert_allclose(after.weights_, weights, rtol=1e-9)
    np.testing.assert_allclose(after.means_, means, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(after.covariances_, covs, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(("levels", "alpha"), [(3, 0.5), (2, 0.0)])
def test_one_categorical_em_step_equals_enumeration_of_the_missing_cells(levels, alpha):
    x, _, _ = _categorical(60, seed=9, d=4, levels=3)
    x = np.minimum(x, levels - 1)
    data = _split(_mcar(x, 0.3, 10, whole_rows=2), levels)
    family = "bernoulli-mixture" if levels == 2 else "categorical-mixture"
    params = {"n_components": 2, "alpha": alpha, "tol": 0.0, "random_state": 0}
    before = _fit(data, family, **params, max_iter=3)
    after = _fit(data, family, **params, max_iter=4)
    w, theta = before.weights_, before.probs_  # (K,), (K, D, L)
    k, d, _ = theta.shape
    n_k, counts, seen = np.zeros(k), np.zeros((k, d, levels)), np.zeros((k, d))
    for row in data.x:
        missing = np.flatnonzero(np.isnan(row))
        # p(k, x_obs) by summing the joint over every completion of the missing cells
        joint = np.zeros(k)
        for fill in itertools.product(range(levels), repeat=len(missing)):
            full = row.copy()
            full[missing] = fill
            cells = theta[:, np.arange(d), full.astype(int)]  # (K, D)
            joint += w * cells.prod(axis=1)
        r = joint / joint.sum()
        n_k += r
        for j in np.flatnonzero(~np.isnan(row)):
            counts[:, j, int(row[j])] += r
            seen[:, j] += r
    # the M-step: each θ_k,d normalised by the component's observed mass of variable d
    probs = (counts + alpha) / (seen + levels * alpha)[:, :, None]
    np.testing.assert_allclose(after.weights_, n_k / n_k.sum(), rtol=1e-10)
    np.testing.assert_allclose(after.probs_, probs, rtol=1e-10, atol=1e-300)


# --------------------------------------------------------------------------- fixed point
def _gmm_log_likelihood(x, logits, means, cov, diag: bool) -> torch.Tensor:
    """Σ_n log Σ_k π_k N(x_O; μ_O, Σ_OO) in torch, pattern by pattern."""
    log_w = torch.log_softmax(logits, 0)
    covs = torch.diag_embed(cov) if diag else cov
    total = torch.zeros((), dtype=torch.float64)
    patterns = np.unique(np.isnan(x), axis=0)
    for pattern in patterns:
        rows = (np.isnan(x) == pattern).all(axis=1)
        o = np.flatnonzero(~pattern)
        if not len(o):
            continue
        xo = torch.as_tensor(x[rows][:, o])
        dist = torch.distributions.MultivariateNormal(means[:, o], covs[:, o][:, :, o])
        total = total + torch.logsumexp(dist.log_prob(xo[:, None, :]) + log_w, dim=1).sum()
    return total


def _gmm_gradient(model, x: np.ndarray) -> float:
    diag = model.covariance_type == "diag"
    params = [
        torch.tensor(np.log(model.weights_), requires_grad=True),
        torch.tensor(model.means_, requires_grad=True),
        torch.tensor(model.covariances_, requires_grad=True),
    ]
    _gmm_log_likelihood(x, *params, diag=diag).backward()
    return max(float(p.grad.abs().max()) for p in params) / len(x)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gmm_fixed_point_has_zero_gradient_of_the_observed_log_likelihood(covariance_type):
    x, _, _ = _gaussians(200, seed=11, d=3)
    data = _mcar(x, 0.25, 12, whole_rows=2)
    params = {"n_components": 2, "covariance_type": covariance_type, "reg_covar": 0.0,
              "random_state": 0}  # fmt: skip
    early = _fit(data, **params, max_iter=2, tol=0.0)
    fitted = _fit(data, **params, max_iter=3000, tol=1e-14)
    assert _gmm_gradient(early, data) > 1e-3  # far from the fixed point: a steep slope
    assert _gmm_gradient(fitted, data) < 1e-6


def test_categorical_fixed_point_has_zero_gradient_of_the_log_posterior():
    x, _, _ = _categorical(200, seed=13, d=5, levels=3)
    data = _split(_mcar(x, 0.25, 14, whole_rows=2), 3)
    alpha = 0.5

    def gradient(model) -> float:
        logits = [torch.tensor(np.log(model.weights_), requires_grad=True),
                  torch.tensor(np.log(model.probs_), requires_grad=True)]  # fmt: skip
        log_w, log_theta = torch.log_softmax(logits[0], 0), torch.log_softmax(logits[1], 2)
        codes = torch.as_tensor(np.nan_to_num(data.x, nan=0).astype(np.int64))
        seen = torch.as_tensor(~np.isnan(data.x))
        cells = log_theta[:, torch.arange(5), codes].transpose(0, 1)  # (N, K, D)
        joint = log_w + (cells * seen[:, None, :]).sum(2)
        # log-posterior: the observed-data log-likelihood and the Dirichlet(α + 1) prior
        (torch.logsumexp(joint, 1).sum() + alpha * log_theta.sum()).backward()
        return max(float(p.grad.abs().max()) for p in logits) / len(data.x)

    params = {"n_components": 2, "alpha": alpha, "random_state": 0}
    early = _fit(data, "categorical-mixture", **params, max_iter=2, tol=0.0)
    fitted = _fit(data, "categorical-mixture", **params, max_iter=3000, tol=1e-14)
    assert gradient(early) > 1e-3
    assert gradient(fitted) < 1e-6


def test_rows_with_nothing_observed_keep_the_fixed_point():
    # an all-NaN row's responsibilities are the weights π: it adds π_k to every count and
    # nothing else, so the maximum-likelihood fit is the same with or without such rows
    x, _, _ = _gaussians(300, seed=15, d=2)
    data = _mcar(x, 0.2, 16)
    params = {"n_components": 2, "reg_covar": 0.0, "max_iter": 3000, "tol": 1e-13,
              "random_state": 0}  # fmt: skip
    plain = _fit(data, **params)
    padded = _fit(np.vstack([data, np.full((60, 2), np.nan)]), **params)
    order = np.argsort(plain.means_[:, 0]), np.argsort(padded.means_[:, 0])
    np.testing.assert_allclose(padded.weights_[order[1]], plain.weights_[order[0]], rtol=1e-5)
    np.testing.assert_allclose(padded.means_[order[1]], plain.means_[order[0]], rtol=1e-5)
    np.testing.assert_allclose(
        padded.covariances_[order[1]], plain.covariances_[order[0]], rtol=1e-5
    )


# --------------------------------------------------------------------------- recovery
def test_gmm_recovers_a_known_mixture_with_a_coordinate_missing_in_30_percent_of_rows():
    x, means, _ = _gaussians(4000, seed=17, d=2)
    rng = np.random.default_rng(18)
    data = x.copy()
    data[rng.random(4000) < 0.3, 1] = np.nan
    model = _fit(data, n_components=2, random_state=0)
    match = np.argsort(model.means_[:, 0])  # the truth's component 0 has the smaller x₁
    np.testing.assert_allclose(model.weights_[match], [0.6, 0.4], atol=0.03)
    np.testing.assert_allclose(model.means_[match], means, atol=0.08)
    base = 0.5 * np.eye(2) + 0.4
    np.testing.assert_allclose(model.covariances_[match], [base, 0.49 * base], atol=0.08)


def test_gmm_beats_the_complete_case_fit_on_held_out_rows_with_missing_entries():
    x, _, _ = _gaussians(6000, seed=19, d=6)
    data = _mcar(x, 0.3, 20)  # about 12 % of the rows are complete
    train, test = data[:4000], data[4000:]
    complete = train[~np.isnan(train).any(axis=1)]
    ours = _fit(train, n_components=2, random_state=0)
    cases = _fit(complete, n_components=2, random_state=0)
    assert ours.score(test) > cases.score(test) + 0.02


def test_categorical_recovers_a_known_mixture_and_beats_the_complete_case_fit():
    x, probs, weights = _categorical(5000, seed=21, d=8, levels=3)
    data = _mcar(x, 0.2, 22)
    train, test = _split(data[:3000], 3), data[3000:]
    model = _fit(train, "categorical-mixture", n_components=2, random_state=0)
    cost = np.abs(model.probs_[:, None] - probs[None]).sum(axis=(2, 3))  # (fitted, true)
    fitted, true = linear_sum_assignment(cost)
    np.testing.assert_allclose(model.weights_[fitted], weights[true], atol=0.03)
    np.testing.assert_allclose(model.probs_[fitted], probs[true], atol=0.05)
    complete = data[:3000][~np.isnan(data[:3000]).any(axis=1)]  # about 17 % of the rows
    cases = _fit(_split(complete, 3), "categorical-mixture", n_components=2, random_state=0)
    assert model.score(test) > cases.score(test) + 0.01


# --------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("family", ["gmm", "categorical-mixture"])
def test_streamed_fit_with_nan_equals_the_in_memory_fit(family, tmp_path):
    if family == "gmm":
        data = _mcar(_gaussians(300, seed=23)[0], 0.25, 24, whole_rows=2)
        spec = DataSpec("continuous", (3,))
    else:
        data = _mcar(_categorical(300, seed=25)[0], 0.25, 26, whole_rows=2)
        spec = DataSpec("categorical", (6,), 3)
    params = {"n_components": 2, "max_iter": 20, "random_state": 0}
    np.save(tmp_path / "x.npy", data)
    memory = _fit(Split(data, None, spec), family, **params)
    for source in (ArraySource(data, spec=spec), NpySource(tmp_path / "x.npy")):
        streamed = _fit(Split(source, None, spec), family, **params)
        for name in ("weights_", "means_", "covariances_", "probs_"):
            if hasattr(memory, name):
                np.testing.assert_array_equal(getattr(streamed, name), getattr(memory, name))
    # stepwise EM runs with NaN and lands near the full-batch fit
    mini = _fit(Split(data, None, spec), family, **params, em="minibatch", batch_size=64)
    assert mini.score(data) == pytest.approx(memory.score(data), abs=0.1)


def test_float32_fit_with_nan_matches_float64():
    data = _mcar(_gaussians(300, seed=27)[0], 0.25, 28)
    single = _fit(data, n_components=2, max_iter=20, dtype="float32", random_state=0)
    double = _fit(data, n_components=2, max_iter=20, random_state=0)
    np.testing.assert_allclose(single.means_, double.means_, atol=1e-4)


# --------------------------------------------------------------------------- bad input
def test_gmm_feature_never_observed_is_a_clear_error():
    data = _mcar(_gaussians(100, seed=29)[0], 0.2, 30)
    data[:, 1] = np.nan
    with pytest.raises(DataError, match=r"feature 1 .*no observed value.*drop that feature"):
        ptheta.make("gmm", n_components=2).fit(data)


def test_categorical_variable_never_observed_gets_the_prior_mode_or_a_clear_error():
    data = _mcar(_categorical(100, seed=31)[0], 0.2, 32)
    data[:, 2] = np.nan
    with pytest.raises(DataError, match=r"feature 2 .*no observed value.*alpha > 0"):
        ptheta.make("categorical-mixture", n_components=2, alpha=0.0).fit(_split(data, 3))
    model = _fit(_split(data, 3), "categorical-mixture", n_components=2, alpha=0.5)
    np.testing.assert_allclose(model.probs_[:, 2], 1.0 / 3, rtol=1e-12)
