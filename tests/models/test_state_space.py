"""The linear-Gaussian state-space model: every inference checked against the joint Gaussian
of the stacked sequence, built here from the noise terms (and against statsmodels)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.models import state_space
from ptheta.models.state_space import LGSSM, StateSpace, kalman_filter, rts_smoother

A = np.array([[0.8, 0.3], [-0.2, 0.7]])  # stable: eigenvalues 0.75 ± 0.24i
Q = np.array([[0.5, 0.1], [0.1, 0.3]])
MU0 = np.array([0.5, -1.0])
S0 = np.array([[1.0, 0.3], [0.3, 0.6]])
C2 = np.array([[1.0, -0.5], [0.4, 1.2]])  # D = 2
D2 = np.array([3.0, -2.0])
R2 = np.array([[0.4, 0.15], [0.15, 0.7]])


def _fit(x: np.ndarray, **params) -> StateSpace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StateSpace(**{"latent_dim": 2, "max_iter": 3, **params}).fit(x)


def _model(t_len: int = 4, dim: int = 2, full: bool = True) -> StateSpace:
    """A fitted model of sequences (T, D) (D = 1: shape (T,)) with the parameters above."""
    shape = (30, t_len, dim) if dim > 1 else (30, t_len)
    m = _fit(
        np.random.default_rng(0).normal(size=shape), covariance_type="full" if full else "diag"
    )
    m.transition_, m.transition_cov_, m.initial_mean_, m.initial_cov_ = A, Q, MU0, S0
    if dim == 2:
        m.observation_, m.observation_offset_ = C2, D2
        m.observation_cov_ = R2 if full else np.diag(np.diag(R2))
    else:
        m.observation_, m.observation_offset_ = C2[:1], D2[:1]
        m.observation_cov_ = R2[:1, :1]
    return m


def _joint(m: StateSpace, t_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean and covariance of the stacked (z_1..T, x_1..T), (T·k + T·D), built as a linear
    map of the independent noise terms (z_1 − μ₀, w_2..w_T, v_1..v_T)."""
    a, q, c, d, r = (
        m.transition_, m.transition_cov_, m.observation_, m.observation_offset_, m.observation_cov_
    )  # fmt: skip
    k, dim = a.shape[0], c.shape[0]
    n_z, n_x = t_len * k, t_len * dim
    lin = np.zeros((n_z + n_x, n_z + n_x))  # (z, x) = mean + lin @ noise
    noise_cov = np.zeros((n_z + n_x, n_z + n_x))
    mean = np.zeros(n_z + n_x)
    for t in range(t_len):
        zt, xt = slice(t * k, (t + 1) * k), slice(n_z + t * dim, n_z + (t + 1) * dim)
        noise_cov[zt, zt] = m.initial_cov_ if t == 0 else q
        noise_cov[xt, xt] = r
        mean[zt] = np.linalg.matrix_power(a, t) @ m.initial_mean_
        for s in range(t + 1):  # z_t = A^t (z_1 part) + Σ_s A^(t−s) w_s
            lin[zt, s * k : (s + 1) * k] = np.linalg.matrix_power(a, t - s)
        mean[xt] = c @ mean[zt] + d
        lin[xt] = c @ lin[zt]
        lin[xt, xt] += np.eye(dim)
    return mean[:n_z], mean[n_z:], lin @ noise_cov @ lin.T, n_z


def _conditional(
    mean: np.ndarray, cov: np.ndarray, n_z: int, x: np.ndarray, upto: int | None = None
):
    """E[z | x_O] and Cov[z | x_O] from the joint of (z, x), O = the observed entries of x
    (among the first ``upto`` of them)."""
    seen = ~np.isnan(x)
    if upto is not None:
        seen[upto:] = False
    o = n_z + np.flatnonzero(seen)
    zi = np.arange(n_z)
    gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, zi)]).T
    cond_mean = mean[:n_z] + gain @ (x[seen] - mean[o])
    return cond_mean, cov[np.ix_(zi, zi)] - gain @ cov[np.ix_(o, zi)]


def _stacked(m: StateSpace, t_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (T·D,) and covariance (T·D, T·D) of the stacked x_1..T."""
    _, mean_x, cov, n_z = _joint(m, t_len)
    return mean_x, cov[n_z:, n_z:]


def _missing(x: np.ndarray) -> np.ndarray:
    """Different missing patterns per sequence: a single entry, a whole step, a whole
    sequence, and one row complete."""
    x = x.astype(np.float64).copy()
    flat = x.reshape(len(x), -1)
    flat[0, 1] = np.nan
    flat[1, 2:4] = np.nan  # with D = 2 a whole step (t = 1)
    flat[2, :] = np.nan
    flat[4, [0, -1]] = np.nan
    return x


# --------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize(("dim", "full"), [(1, True), (2, False), (2, True)])
def test_log_likelihood_is_the_gaussian_density_of_the_stacked_sequence(dim, full, monkeypatch):
    m = _model(t_len=4, dim=dim, full=full)
    x = m.sample(6, random_state=1)
    mean, cov = _stacked(m, 4)
    flat = x.reshape(6, -1)
    expected = stats.multivariate_normal(mean, cov).logpdf(flat)
    np.testing.assert_allclose(m.score_samples(x), expected, rtol=0, atol=1e-9)
    # with missing entries: the marginal density of the observed coordinates
    partial = _missing(x)
    rows = partial.reshape(6, -1)
    marginal = [
        stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(r[o]) if o.any() else 0.0
        for r in rows
        for o in [~np.isnan(r)]
    ]
    scores = m.score_samples(partial)
    np.testing.assert_allclose(scores, marginal, rtol=0, atol=1e-9)
    assert scores[2] == 0.0  # nothing observed: density 1
    np.testing.assert_allclose(m.step_log_likelihood(partial).sum(axis=1), scores, atol=1e-12)
    monkeypatch.setattr(state_space, "_CHUNK_FLOATS", 1)  # one sequence at a time
    np.testing.assert_allclose(m.score_samples(partial), scores, rtol=0, atol=1e-12)
    got_mean, got_cov = m.observation_moments()
    np.testing.assert_allclose(got_mean, mean, atol=1e-12)
    np.testing.assert_allclose(got_cov, cov, atol=1e-12)


def test_log_likelihood_agrees_with_statsmodels():
    from statsmodels.tsa.statespace.kalman_filter import KalmanFilter

    m = _model(t_len=5, dim=2, full=True)
    x = _missing(m.sample(6, random_state=2))
    design = {
        "k_endog": 2, "k_states": 2, "design": C2, "obs_intercept": D2, "obs_cov": R2,
        "transition": A, "selection": np.eye(2), "state_cov": Q,
    }  # fmt: skip
    for seq, steps in zip(x, m.step_log_likelihood(x), strict=True):
        kf = KalmanFilter(**design)  # a fresh filter: a bound one keeps its first results
        kf.initialize_known(MU0, S0)
        kf.bind(np.array(seq))
        np.testing.assert_allclose(steps, kf.loglikeobs(), rtol=0, atol=1e-9)


def test_step_log_likelihood_is_the_conditional_density_of_each_step():
    m = _model(t_len=4, dim=1)
    x = m.sample(3, random_state=3)
    mean, cov = _stacked(m, 4)
    steps = m.step_log_likelihood(x)
    for t in range(4):  # log p(x_t | x_1..t-1) from the stacked Gaussian
        past, now = np.arange(t), np.array([t])
        gain = np.linalg.solve(cov[np.ix_(past, past)], cov[np.ix_(past, now)]).T if t else None
        for i in range(3):
            mu = mean[now] + (gain @ (x[i, past] - mean[past]) if t else 0)
            var = cov[np.ix_(now, now)] - (gain @ cov[np.ix_(past, now)] if t else 0)
            expected = stats.norm(mu[0], np.sqrt(var[0, 0])).logpdf(x[i, t])
            assert steps[i, t] == pytest.approx(expected, abs=1e-10)


# --------------------------------------------------------------------------- states
@pytest.mark.parametrize("missing", [False, True])
def test_filter_and_smoother_are_the_conditional_gaussians_of_the_states(missing):
    m = _model(t_len=4, dim=2)
    x = m.sample(5, random_state=4)
    if missing:
        x = _missing(x)
    mean_z, mean_x, cov, n_z = _joint(m, 4)
    joint_mean = np.concatenate([mean_z, mean_x])
    smooth_mean, smooth_cov = m.smooth(x)
    filt_mean, filt_cov = m.filter(x)
    assert smooth_mean.shape == (5, 4, 2) and smooth_cov.shape == (5, 4, 2, 2)
    # the lag-one covariances Cov[z_t, z_t-1 | x], which EM needs, from the smoother itself
    p = m._standardised()
    z_std = (x - m.shift_) / m.scale_
    lag = rts_smoother(kalman_filter(z_std, p), p)[2]
    lag = np.broadcast_to(lag, (5, *lag.shape[1:]))
    for i, seq in enumerate(x.reshape(5, -1)):
        if np.isnan(seq).all():
            continue
        post_mean, post_cov = _conditional(joint_mean, cov, n_z, seq)
        np.testing.assert_allclose(smooth_mean[i].ravel(), post_mean, atol=1e-10)
        for t in range(4):
            block = slice(2 * t, 2 * t + 2)
            np.testing.assert_allclose(smooth_cov[i, t], post_cov[block, block], atol=1e-10)
            if t:
                before = slice(2 * t - 2, 2 * t)
                np.testing.assert_allclose(lag[i, t], post_cov[block, before], atol=1e-10)
            # filtering: conditioned on the steps up to t only
            prefix_mean, prefix_cov = _conditional(joint_mean, cov, n_z, seq, upto=2 * (t + 1))
            np.testing.assert_allclose(filt_mean[i, t], prefix_mean[block], atol=1e-10)
            np.testing.assert_allclose(filt_cov[i, t], prefix_cov[block, block], atol=1e-10)
    np.testing.assert_allclose(m.embed(x), smooth_mean.mean(axis=1))


# --------------------------------------------------------------------------- forecasting
def test_forecast_is_the_predictive_distribution_and_its_variance_grows():
    m = _model(t_len=4, dim=2)
    x = m.sample(4, random_state=5)
    x[1, 2, 0] = np.nan
    mean, cov = _stacked(m, 6)  # the joint of 6 steps: condition on the first 4
    f_mean, f_cov = m.forecast(x, steps=2)
    assert f_mean.shape == (4, 2, 2) and f_cov.shape == (4, 2, 2, 2)
    for i, seq in enumerate(x.reshape(4, -1)):
        o = np.flatnonzero(~np.isnan(seq))
        for h in range(2):
            ahead = np.arange(8 + 2 * h, 10 + 2 * h)
            gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, ahead)]).T
            np.testing.assert_allclose(
                f_mean[i, h], mean[ahead] + gain @ (seq[o] - mean[o]), atol=1e-10
            )
            expected_cov = cov[np.ix_(ahead, ahead)] - gain @ cov[np.ix_(o, ahead)]
            np.testing.assert_allclose(f_cov[i, h], expected_cov, atol=1e-10)
    # one step ahead of a prefix is the filter's predictive density of the next step
    one_mean, one_cov = m.forecast(x[:, :3], steps=1)
    dens = [
        stats.multivariate_normal(one_mean[i, 0], one_cov[i, 0]).logpdf(x[i, 3]) for i in (0, 2)
    ]
    np.testing.assert_allclose(m.step_log_likelihood(x)[[0, 2], 3], dens, atol=1e-10)
    # for a stable A the predictive variance never shrinks with the horizon
    _, long_cov = m.forecast(x, steps=30)
    variances = np.diagonal(long_cov, axis1=2, axis2=3)  # (N, 30, D)
    assert np.all(np.diff(variances, axis=1) >= -1e-12)
    assert np.all(np.diff(variances, axis=1)[:, 0] > 0)


# --------------------------------------------------------------------------- missing data
def test_impute_mode_is_the_conditional_mean_and_samples_have_the_conditional_law():
    m = _model(t_len=3, dim=2)
    x = m.sample(2, random_state=6)
    x[0, 1] = np.nan  # a whole step
    x[1, 0, 1] = x[1, 2, 0] = np.nan  # single entries (R is full: the step's other entry counts)
    mean, cov = _stacked(m, 3)
    filled = m.impute(x)
    draws = m.sample(4000, given=x[1:], random_state=0)
    for i, seq in enumerate(x.reshape(2, -1)):
        o, mis = np.flatnonzero(~np.isnan(seq)), np.flatnonzero(np.isnan(seq))
        gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, mis)]).T
        cond_mean = mean[mis] + gain @ (seq[o] - mean[o])
        np.testing.assert_allclose(filled[i].ravel()[mis], cond_mean, atol=1e-10)
        np.testing.assert_array_equal(filled[i].ravel()[o], seq[o])
        if i == 1:
            flat = draws.reshape(4000, -1)
            np.testing.assert_array_equal(flat[:, o], np.broadcast_to(seq[o], (4000, len(o))))
            cond_cov = cov[np.ix_(mis, mis)] - gain @ cov[np.ix_(o, mis)]
            sd = np.sqrt(np.diag(cond_cov))
            assert np.all(np.abs(flat[:, mis].mean(0) - cond_mean) < 4 * sd / np.sqrt(4000))
            np.testing.assert_allclose(np.cov(flat[:, mis].T), cond_cov, atol=0.08)


def test_samples_have_the_models_moments():
    m = _model(t_len=3, dim=2)
    x = m.sample(20000, random_state=7).reshape(20000, -1)
    mean, cov = _stacked(m, 3)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(x.mean(0) - mean) < 4 * sd / np.sqrt(20000))
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.06)


# --------------------------------------------------------------------------- EM
def _truth(t_len: int) -> StateSpace:
    return _model(t_len=t_len, dim=2)


@pytest.mark.parametrize(
    "params",
    [{}, {"covariance_type": "diag"}, {"fixed": ("initial_mean", "initial_cov", "transition")}],
)
def test_em_never_lowers_its_objective_nor_the_plain_likelihood_without_floor(params):
    x = _truth(8).sample(60, random_state=8)
    # a large floor: the plain likelihood may then fall (it does here), the penalised never
    for min_covar, keys in ((0.5, ("objective",)), (0.0, ("objective", "log_likelihood"))):
        m = _fit(x, **params, min_covar=min_covar, max_iter=40, tol=0)
        for key in keys:
            values = np.array([h[key] for h in m.history_])
            assert np.all(np.diff(values) >= -1e-9), (min_covar, key)
        if min_covar == 0:
            assert values[-1] > values[0] + 0.1  # it did learn something


def test_em_recovers_what_the_data_identify():
    truth = _truth(10)
    x = truth.sample(300, random_state=9)
    m = _fit(x, covariance_type="full", max_iter=200, tol=1e-6)
    assert m.converged_
    # the latent coordinates are arbitrary: compare the implied law of x (lags 0..2)
    fit_mean, fit_cov = m.observation_moments()
    true_mean, true_cov = truth.observation_moments()
    np.testing.assert_allclose(fit_mean, true_mean, atol=0.2)
    for lag in range(3):
        block = (slice(8, 10), slice(8 - 2 * lag, 10 - 2 * lag))  # Cov(x_5, x_5-lag)
        np.testing.assert_allclose(fit_cov[block], true_cov[block], atol=0.15)
    # the eigenvalues of A do not depend on the coordinates
    true_eig = np.sort_complex(np.linalg.eigvals(A))
    fit_eig = np.sort_complex(np.linalg.eigvals(m.transition_))
    np.testing.assert_allclose(fit_eig, true_eig, atol=0.08)
    assert m.score(x) >= truth.score(x)  # the maximum beats the truth on its own data


def test_fixed_parameters_keep_their_initial_values():
    x = _truth(5).sample(40, random_state=10)
    fixed = ["initial_mean", "initial_cov", "transition"]
    m = _fit(x, fixed=fixed, max_iter=10)
    np.testing.assert_array_equal(m.initial_mean_, np.zeros(2))
    np.testing.assert_array_equal(m.initial_cov_, np.eye(2))
    one = _fit(x, fixed=fixed, max_iter=1)  # after one M-step: A is still the initial one
    np.testing.assert_array_equal(m.transition_, one.transition_)
    free = _fit(x, max_iter=1)
    assert not np.allclose(free.transition_, one.transition_)  # the M-step changes A
    np.testing.assert_allclose(free.observation_, one.observation_)  # the same start
    assert m.fixed == fixed  # stored as given
    diag = _fit(x, covariance_type="diag", max_iter=5)
    r = diag.observation_cov_
    np.testing.assert_array_equal(r, np.diag(np.diag(r)))
    with pytest.raises(ParameterError, match="fixed must be a list of distinct names"):
        _fit(x, fixed=["A"])


def test_fit_does_not_depend_on_units_or_offset():
    x = _truth(5).sample(50, random_state=11)
    base = _fit(x, max_iter=5)
    moved = _fit(1.7e9 + 600 * x, max_iter=5)
    expected = base.score_samples(x) - x[0].size * np.log(600)
    np.testing.assert_allclose(moved.score_samples(1.7e9 + 600 * x), expected, rtol=1e-7)
    np.testing.assert_allclose(moved.transition_, base.transition_, rtol=1e-6, atol=1e-9)
    samples = moved.sample(200, random_state=0)
    assert np.abs((samples - 1.7e9).mean() / 600 - x.mean()) < 0.5


# --------------------------------------------------------------------------- the contract
def test_parameter_count_removes_the_latent_coordinates():
    m = _model(t_len=4, dim=2, full=True)
    # A 4, Q 3, C 4, d 2, R 3, μ₀ 2, Σ₀ 3, less the 4 of z → Mz
    assert m.n_parameters() == 4 + 3 + 4 + 2 + 3 + 2 + 3 - 4
    m.fixed = ("initial_mean", "initial_cov")
    m.initial_mean_, m.initial_cov_ = np.zeros(2), np.eye(2)
    assert m.n_parameters() == 4 + 3 + 4 + 2 + 3 - 1  # only rotations keep Σ₀ = I
    x = m.sample(5, random_state=0)
    scores = m.score_samples(x)
    assert m.bic(x) == pytest.approx(-2 * scores.sum() + m.n_parameters() * np.log(5))
    assert m.aic(x) == pytest.approx(-2 * scores.sum() + 2 * m.n_parameters())
    caps = m.capabilities()
    assert caps.needs_sequence and caps.marginalises and caps.embeds and not caps.classifies
    assert m.likelihood_ == "exact" and m.units_ == "continuous"


def test_sequences_of_another_length_for_filtering_and_forecasting():
    m = _model(t_len=4, dim=1)
    x = m.sample(3, random_state=12)  # (3, 4)
    longer = np.concatenate([x, x[:, :3]], axis=1)  # (3, 7)
    mean, cov = m.filter(longer)
    assert mean.shape == (3, 7, 2) and cov.shape == (3, 7, 2, 2)
    np.testing.assert_allclose(mean[:, :4], m.filter(x)[0], atol=1e-12)
    assert m.forecast(longer, steps=3)[0].shape == (3, 3, 1)
    with pytest.raises(DataError, match="shape"):
        m.score_samples(longer)  # the density is of the fitted length
    with pytest.raises(ParameterError, match="steps"):
        m.forecast(x, steps=0)


def test_discrete_data_are_refused_with_the_fix():
    with pytest.raises(DataError, match="kind='continuous'"):
        _fit(np.array([[0, 1, 2, 1], [1, 2, 0, 0]] * 5))


def test_lgssm_fields_are_the_names_fixed_takes():
    assert set(StateSpace.parameters["fixed"].choices) == set(LGSSM._fields)
    assert ptheta.make("state-space").capabilities().likelihood == "exact"


def test_restarts_keep_the_best_and_the_first_is_the_single_start():
    x = _truth(5).sample(40, random_state=13)
    one, three = _fit(x, max_iter=15), _fit(x, max_iter=15, n_init=3)
    best = three.history_[-1]["objective"]
    assert best >= one.history_[-1]["objective"]
    if three.best_init_ == 0:
        np.testing.assert_array_equal(three.observation_, one.observation_)


def test_em_converges_to_a_stationary_point_of_the_exact_likelihood():
    # the M-step maximises the expected complete-data log-likelihood: at EM's fixed point
    # the gradient of log p(x) vanishes (central differences; EM is not fully converged)
    x = _truth(6).sample(60, random_state=14)
    m = _fit(x, covariance_type="full", min_covar=0.0, max_iter=100, tol=0)
    for attr in ("observation_offset_", "observation_", "transition_", "observation_cov_"):
        base = getattr(m, attr)
        for idx in np.ndindex(base.shape):
            if attr == "observation_cov_" and idx[0] > idx[1]:
                continue
            scores = []
            for h in (1e-5, -1e-5):
                value = base.copy()
                value[idx] += h
                if attr == "observation_cov_":
                    value[idx[::-1]] = value[idx]  # symmetric
                setattr(m, attr, value)
                scores.append(m.score(x))
            setattr(m, attr, base)
            assert abs(scores[0] - scores[1]) / 2e-5 < 0.1, (attr, idx)
