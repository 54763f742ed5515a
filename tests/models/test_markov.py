"""The Markov chain: exact normalisation, counted tables, exact marginals, FFBS / Viterbi, AR."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.linear_model import LinearRegression

from ptheta.data.spec import DataSpec, Split
from ptheta.errors import DataError, ParameterError
from ptheta.models.baselines import Independent
from ptheta.models.markov import MarkovChain


def _configs(d: int, k: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=d)), dtype=np.int64)


def _chain_data(n: int, d: int, k_levels: int, seed: int) -> np.ndarray:
    """Discrete data with dependence between neighbours: a noisy random walk on levels."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.int64)
    x[:, 0] = rng.integers(0, k_levels, n)
    for t in range(1, d):
        step = rng.choice([-1, 0, 1], size=n, p=[0.2, 0.5, 0.3])
        jump = rng.random(n) < 0.15
        x[:, t] = np.where(jump, rng.integers(0, k_levels, n), (x[:, t - 1] + step) % k_levels)
    return x


def _completions(row: np.ndarray, k_levels: int) -> np.ndarray:
    """Every completion of the NaN entries of ``row`` (D,), shape (K^m, D) int64."""
    missing = np.flatnonzero(np.isnan(row))
    filled = np.repeat(row[None], k_levels ** len(missing), axis=0)
    filled[:, missing] = _configs(len(missing), k_levels)
    return filled.astype(np.int64)


def _chi_square_p_value(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square test of counts against probabilities, cells expecting < 5 pooled."""
    expected = probs * counts.sum()
    keep = expected >= 5
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum())[1])


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("homogeneous", [False, True])
@pytest.mark.parametrize(
    ("k_levels", "shape", "order"),
    [(2, (2, 5), 1), (2, (2, 5), 2), (2, (2, 5), 3), (3, (5,), 1), (3, (5,), 2), (3, (5,), 3)],
)
def test_probabilities_sum_to_one_over_every_configuration(k_levels, shape, order, homogeneous):
    d = int(np.prod(shape))
    x = _chain_data(150, d, k_levels, seed=order).reshape(-1, *shape)
    split = Split(x, None, DataSpec("binary" if k_levels == 2 else "categorical", shape, k_levels))
    model = MarkovChain(order, homogeneous=homogeneous).fit(split)
    configs = _configs(d, k_levels).reshape(-1, *shape)
    assert np.exp(model.score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- fitted tables
@pytest.mark.parametrize("homogeneous", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_tables_equal_smoothed_counts_from_a_plain_loop(order, homogeneous):
    k_levels, d, alpha = 3, 6, 0.7
    x = _chain_data(80, d, k_levels, seed=10 + order)
    model = MarkovChain(order, homogeneous=homogeneous, alpha=alpha).fit(
        Split(x, None, DataSpec("categorical", (d,), k_levels))
    )
    for t in range(d):
        c = min(t, order)
        # a homogeneous chain pools the counts of every position t >= order
        positions = range(order, d) if homogeneous and t >= order else [t]
        for context in itertools.product(range(k_levels), repeat=c):  # x_{t-c}, ..., x_{t-1}
            counts = np.zeros(k_levels)
            for s in positions:
                for row in x:
                    if tuple(row[s - c : s]) == context:
                        counts[row[s]] += 1
            expected = (counts + alpha) / (counts.sum() + k_levels * alpha)
            # state: latest value is the lowest digit; the digits of absent predecessors are
            # free (0 in the data) and must not change the table
            state = sum(v * k_levels**j for j, v in enumerate(reversed(context)))
            for pad in range(k_levels ** (order - c)):
                got = model.probs_[t, state + pad * k_levels**c]
                np.testing.assert_allclose(got, expected, rtol=1e-12)
    per = [k_levels**c * (k_levels - 1) for c in range(order + 1)]
    n_params = (
        sum(per[:order]) + per[order] if homogeneous else sum(per[min(t, order)] for t in range(d))
    )
    assert model.n_parameters() == n_params


# --------------------------------------------------------------------------- model selection
def _order2_truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A binary order-2 chain that order 1 cannot express: x_t ≈ x_{t-1} XOR x_{t-2}."""
    p1 = 0.6  # p(x_1 = 1)
    p2 = np.array([0.3, 0.7])  # p(x_2 = 1 | x_1)
    p_next = np.array([[0.1, 0.85], [0.9, 0.2]])  # p(x_t = 1 | x_{t-2}, x_{t-1})
    return np.array(p1), p2, p_next


def _truth_log_prob(x: np.ndarray) -> np.ndarray:
    p1, p2, p_next = _order2_truth()
    bern = lambda p, v: np.log(np.where(v == 1, p, 1 - p))  # noqa: E731
    out = bern(p1, x[:, 0]) + bern(p2[x[:, 0]], x[:, 1])
    for t in range(2, x.shape[1]):
        out += bern(p_next[x[:, t - 2], x[:, t - 1]], x[:, t])
    return out


def _truth_sample(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    p1, p2, p_next = _order2_truth()
    x = np.empty((n, d), dtype=np.int64)
    x[:, 0] = rng.random(n) < p1
    x[:, 1] = rng.random(n) < p2[x[:, 0]]
    for t in range(2, d):
        x[:, t] = rng.random(n) < p_next[x[:, t - 2], x[:, t - 1]]
    return x


@pytest.mark.parametrize("homogeneous", [False, True])
def test_order2_data_prefers_order2_and_reaches_the_true_entropy(homogeneous):
    d, rng = 8, np.random.default_rng(5)
    train, test = _truth_sample(4000, d, rng), _truth_sample(4000, d, rng)
    configs = _configs(d, 2)
    log_p = _truth_log_prob(configs)
    assert np.exp(log_p).sum() == pytest.approx(1.0)
    entropy = -(np.exp(log_p) * log_p).sum()  # the floor of any model's expected NLL

    nll = {
        order: -MarkovChain(order, homogeneous=homogeneous).fit(train).score(test)
        for order in (1, 2)
    }
    nll[0] = -Independent().fit(train).score(test)
    truth = -_truth_log_prob(test)
    assert nll[2] < min(nll[1], nll[0]) - 0.3
    # the fitted chain is as good as the truth on the same test rows (excess = parameter noise)
    assert abs(nll[2] - truth.mean()) < 0.02
    assert abs(truth.mean() - entropy) < 4 * truth.std() / np.sqrt(len(truth))


# --------------------------------------------------------------------------- missing data
@pytest.mark.parametrize(("order", "homogeneous"), [(1, False), (2, True), (3, False), (3, True)])
def test_marginals_with_missing_entries_equal_brute_force_sums(order, homogeneous):
    d = 11
    model = MarkovChain(order, homogeneous=homogeneous).fit(_chain_data(200, d, 2, seed=order))
    rows = _chain_data(7, d, 2, seed=99).astype(np.float64)
    patterns = [[0, 1, 2, 10], [0, 5, 6, 10], [3, 4, 5, 6, 7], [0], [10], list(range(d)), []]
    for row, missing in zip(rows, patterns, strict=True):
        row[missing] = np.nan
    got = model.score_samples(rows)  # partial and complete rows in one batch
    for i, row in enumerate(rows):
        brute = logsumexp(model.score_samples(_completions(row, 2)))
        assert got[i] == pytest.approx(brute, abs=1e-10)
    assert got[5] == pytest.approx(0.0, abs=1e-12)


def test_chunked_recursions_give_the_same_answers(monkeypatch):
    model = MarkovChain(2).fit(_chain_data(100, 8, 3, seed=1))
    rows = _chain_data(5, 8, 3, seed=2).astype(np.float64)
    rows[:, [0, 4]] = np.nan
    whole = model.score_samples(rows), model.impute(rows, method="mode")
    monkeypatch.setattr("ptheta.models.markov._MESSAGE_BUDGET", 1)  # one row per chunk
    # other chunks, other batch sizes: the same numbers up to rounding
    np.testing.assert_allclose(model.score_samples(rows), whole[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.impute(rows, method="mode"), whole[1])


def test_categorical_marginal_equals_brute_force_sum():
    model = MarkovChain(2).fit(
        Split(_chain_data(100, 7, 4, 3), None, DataSpec("categorical", (7,), 4))
    )
    row = _chain_data(1, 7, 4, seed=4)[0].astype(np.float64)
    row[[0, 3, 6]] = np.nan
    brute = logsumexp(model.score_samples(_completions(row, 4)))
    assert model.score_samples(row[None])[0] == pytest.approx(brute, abs=1e-10)


@pytest.mark.parametrize(
    ("order", "k_levels", "missing"), [(2, 2, [0, 3, 4, 8]), (3, 3, [0, 4, 8])]
)
def test_conditional_samples_follow_the_exact_conditional(order, k_levels, missing):
    d = 9
    x = _chain_data(150, d, k_levels, seed=7)
    model = MarkovChain(order).fit(Split(x, None, DataSpec("categorical", (d,), k_levels)))
    row = x[0].astype(np.float64)
    row[missing] = np.nan
    completions = _completions(row, k_levels)
    log_joint = model.score_samples(completions)
    exact = np.exp(log_joint - logsumexp(log_joint))  # p(x_mis | x_obs) by brute force
    n = 6000
    drawn = model.sample(n, given=row[None], random_state=0)
    index = drawn[:, missing] @ (k_levels ** np.arange(len(missing))[::-1])  # row of completions
    counts = np.bincount(index, minlength=len(completions))
    assert _chi_square_p_value(counts, exact) > 1e-3


@pytest.mark.parametrize("order", [1, 2, 3])
def test_viterbi_mode_is_the_brute_force_argmax(order):
    d = 10
    model = MarkovChain(order).fit(_chain_data(120, d, 2, seed=order))
    rows = _chain_data(5, d, 2, seed=20 + order).astype(np.float64)
    for row, missing in zip(
        rows, [[0, 1, 2, 3], [9, 8, 5], [1, 4, 6, 9], list(range(d)), [0]], strict=True
    ):
        row[missing] = np.nan
    mode = model.impute(rows, method="mode")
    for row, got in zip(rows, mode, strict=True):
        completions = _completions(row, 2)
        best = completions[np.argmax(model.score_samples(completions))]
        np.testing.assert_array_equal(got, best)


def test_ancestral_sampler_matches_exact_probabilities_at_order_3():
    d = 6
    model = MarkovChain(3, homogeneous=True).fit(_chain_data(100, d, 2, seed=1))
    configs = _configs(d, 2)
    probs = np.exp(model.score_samples(configs))
    n = 20_000
    index = model.sample(n, random_state=2) @ (2 ** np.arange(d)[::-1])
    counts = np.bincount(index, minlength=len(configs))
    assert _chi_square_p_value(counts, probs) > 1e-3


# --------------------------------------------------------------------------- continuous data
def _random_walk(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).cumsum(axis=1) * 0.5 + rng.normal(size=d)


@pytest.mark.parametrize(("order", "homogeneous"), [(1, False), (2, True), (3, False)])
def test_gaussian_chain_is_its_implied_joint_gaussian(order, homogeneous):
    x = _random_walk(200, 6, seed=order)
    model = MarkovChain(order, homogeneous=homogeneous).fit(x)
    mean, cov = model.joint_gaussian()
    joint = stats.multivariate_normal(mean, cov)
    np.testing.assert_allclose(model.score_samples(x[:20]), joint.logpdf(x[:20]), rtol=1e-10)

    partial = x[:4].copy()
    patterns = [[0, 1], [5], [2, 3, 4], [0, 5]]
    for row, missing in zip(partial, patterns, strict=True):
        row[missing] = np.nan
    got = model.score_samples(partial)
    mode = model.impute(partial, method="mode")
    for i, missing in enumerate(patterns):
        o = np.setdiff1d(np.arange(6), missing)
        expected = stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(x[i, o])
        assert got[i] == pytest.approx(expected, abs=1e-9)
        # conditional mean by the covariance formula μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)
        cond = mean[missing] + cov[np.ix_(missing, o)] @ np.linalg.solve(
            cov[np.ix_(o, o)], x[i, o] - mean[o]
        )
        np.testing.assert_allclose(mode[i, missing], cond, rtol=1e-8)


def test_gaussian_conditional_samples_have_the_conditional_moments():
    x = _random_walk(300, 5, seed=4)
    model = MarkovChain(2).fit(x)
    mean, cov = model.joint_gaussian()
    row = x[0].copy()
    m, o = np.array([1, 2, 4]), np.array([0, 3])
    row[m] = np.nan
    gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
    cond_mean = mean[m] + gain @ (x[0, o] - mean[o])
    cond_cov = cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]
    drawn = model.sample(20_000, given=row[None], random_state=0)[:, m]
    se = np.sqrt(np.diag(cond_cov) / len(drawn))
    assert np.all(np.abs(drawn.mean(axis=0) - cond_mean) < 4 * se)
    # standard error of a sample covariance: sqrt((Σ_ii Σ_jj + Σ_ij²) / n)
    var = np.diag(cond_cov)
    se_cov = np.sqrt((np.outer(var, var) + cond_cov**2) / len(drawn))
    assert np.all(np.abs(np.cov(drawn.T) - cond_cov) < 4 * se_cov)


def test_ar1_coefficients_are_recovered_and_match_least_squares():
    rng = np.random.default_rng(6)
    n, d, a, b, s = 3000, 10, 0.5, 0.8, 0.3
    x = np.empty((n, d))
    x[:, 0] = a / (1 - b) + s / np.sqrt(1 - b**2) * rng.standard_normal(n)  # stationary start
    for t in range(1, d):
        x[:, t] = a + b * x[:, t - 1] + s * rng.standard_normal(n)
    shared = MarkovChain(1, homogeneous=True).fit(x)
    np.testing.assert_allclose(shared.coef_[1:], [[a, b]] * (d - 1), atol=0.03)
    np.testing.assert_allclose(shared.var_[1:], s**2, rtol=0.05)
    assert shared.coef_[0, 0] == pytest.approx(a / (1 - b), abs=0.05)
    # order 3, per position: the extra lags vanish; each fit is ordinary least squares
    model = MarkovChain(3, min_var=0.0).fit(x)
    np.testing.assert_allclose(model.coef_[3:, 1:], [[b, 0, 0]] * (d - 3), atol=0.08)
    t = 5
    lags = x[:, [t - 1, t - 2, t - 3]]
    ols = LinearRegression().fit(lags, x[:, t])
    np.testing.assert_allclose(model.coef_[t], [ols.intercept_, *ols.coef_], rtol=1e-9)
    resid = x[:, t] - ols.predict(lags)
    assert model.var_[t] == pytest.approx(np.mean(resid**2), rel=1e-9)
    assert model.n_parameters() == 2 + 3 + 4 + 5 * (d - 3)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"order": 0}, "order"),
        ({"order": 4}, "order"),
        ({"order": 1.5}, "order"),
        ({"order": True}, "order"),
        ({"alpha": -1.0}, "alpha"),
        ({"min_var": -1.0}, "min_var"),
        ({"homogeneous": "yes"}, "homogeneous"),
    ],
)
def test_bad_hyper_parameters_are_parameter_errors(params, match):
    with pytest.raises(ParameterError, match=match):
        MarkovChain(**params).fit(_chain_data(20, 5, 2, seed=0))


def test_too_large_table_and_bad_data_are_clear_errors():
    x = _chain_data(10, 60, 100, seed=0)
    with pytest.raises(ParameterError, match="table entries"):
        MarkovChain(3).fit(Split(x, None, DataSpec("categorical", (60,), 100)))
    model = MarkovChain(2).fit(_chain_data(30, 5, 2, seed=0))
    with pytest.raises(DataError, match="shape"):
        model.score_samples(np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(DataError, match="continuous"):
        model.joint_gaussian()
    with pytest.raises(DataError, match="NaN"):
        MarkovChain().fit(np.array([[0.5, np.nan], [1.5, 0.0]]))  # continuous: refused
    with pytest.raises(DataError, match="min_var"):
        line = np.linspace(0, 1, 20)
        MarkovChain(1, min_var=0.0).fit(np.column_stack([line, 2 * line + 1]))
    zero = MarkovChain(1, alpha=0.0).fit(np.array([[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(DataError, match="probability 0"):
        zero.impute(np.array([[0.0, 1.0, np.nan]]))  # 0 -> 1 never seen in training
