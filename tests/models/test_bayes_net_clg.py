"""Conditional linear Gaussians in the Bayesian network: continuous columns with continuous
parents (issue 17), and ``sample(given=...)`` by labels.

Every number is checked against an independent computation: numpy's (weighted) least
squares per configuration, grid integrals, the closed-form multivariate Gaussian of each
discrete configuration (built by hand from the fitted coefficients), moments of samples,
hand-computed BIC, brute-force maximisation on a grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource
from ptheta.data.table import ColumnSpec
from ptheta.errors import DataError, ParameterError
from ptheta.models.dag_search import FamilyScorer, Leaf
from tests.models.test_streaming_contract import _CountingSource

# D (3 levels) -> U -> V, D -> V: V | D=d, U ~ N(A[d] + B[d] U, S2[d])
COLUMNS = (
    ColumnSpec("D", "categorical", ("a", "b", "c")),
    ColumnSpec("U", "continuous"),
    ColumnSpec("V", "continuous"),
)
SPEC = DataSpec("table", (3,), columns=COLUMNS)
CHAIN = "D -> U; D -> V; U -> V"
P_D = np.array([0.5, 0.3, 0.2])
U_MEAN, U_STD = np.array([0.0, 1.0, -1.0]), np.array([1.0, 2.0, 0.5])
A, B, S = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, -1.0]), np.array([0.3, 0.6, 1.0])


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.choice(3, n, p=P_D)
    u = U_MEAN[d] + U_STD[d] * rng.normal(size=n)
    v = A[d] + B[d] * u + S[d] * rng.normal(size=n)
    return np.column_stack([d, u, v]).astype(np.float64)


@pytest.fixture(scope="module")
def fitted():
    x = _sample(2000, 0)
    model = ptheta.make("bayesian-network", structure=CHAIN).fit(Split(x, None, SPEC))
    return model, x


def _closed_form(model):
    """p(d) and the mean (3, 2) and covariance (3, 2, 2) of (U, V) given each d, by hand."""
    t = dict(zip(model.columns_, model.cpts(), strict=True))
    p_d = t["D"]
    m, s2 = t["U"][:, 0], t["U"][:, 1]
    a, var, b = t["V"][:, 0, 0], t["V"][:, 0, 1], t["V"][:, 0, 2]
    mean = np.column_stack([m, a + b * m])
    cov = np.stack([[s2, b * s2], [b * s2, b * b * s2 + var]]).transpose(2, 0, 1)
    return p_d, mean, cov


# --------------------------------------------------------------------------- fitting
def test_coefficients_are_numpy_least_squares_per_configuration(fitted):
    model, x = fitted
    assert model.kinds_ == ["discrete", "continuous", "continuous"]
    assert model.parents_ == [[], [0], [0, 1]]
    assert model.cpts()[2].shape == (3, 1, 3)  # [intercept, variance, slope] per level of D
    # alpha = 0: no pseudo-rows, the plain least squares of each level's rows
    exact = ptheta.make("bayesian-network", structure=CHAIN, alpha=0.0).fit(Split(x, None, SPEC))
    fit = exact.cpts()[2]
    for d in range(3):
        rows = x[x[:, 0] == d]
        design = np.column_stack([np.ones(len(rows)), rows[:, 1]])
        coef = np.linalg.lstsq(design, rows[:, 2], rcond=None)[0]
        rss = np.sum((rows[:, 2] - design @ coef) ** 2)
        np.testing.assert_allclose(fit[d, 0, [0, 2]], coef, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(fit[d, 0, 1], rss / len(rows), rtol=1e-9)
    # and the truth is near
    np.testing.assert_allclose(fit[:, 0, 2], B, atol=0.1)
    assert exact.n_parameters() == 2 + 3 * 2 + 3 * 3


def test_em_weights_the_rows_whose_discrete_parent_is_missing():
    # D missing in a third of the rows: at EM's fixed point the regression of V on U is
    # numpy's weighted least squares with each such row weighted by p(d | u, v)
    x = _sample(1500, 1)
    holes = x.copy()
    holes[np.random.default_rng(2).random(len(x)) < 0.3, 0] = np.nan
    model = ptheta.make("bayesian-network", structure=CHAIN, alpha=0.0, em_tol=1e-13)
    model.fit(Split(holes, None, SPEC))
    objective = [h["objective"] for h in model.history_]
    assert np.all(np.diff(objective) >= -1e-10)
    gone = np.isnan(holes[:, 0])
    filled = np.repeat(holes[gone], 3, axis=0)
    filled[:, 0] = np.tile(np.arange(3), gone.sum())
    post = np.exp(model.score_samples(filled).reshape(-1, 3))
    post /= post.sum(axis=1, keepdims=True)
    fit = model.cpts()[2]
    for d in range(3):
        w = np.where(gone, 0.0, holes[:, 0] == d)
        w[gone] = post[:, d]
        design = np.column_stack([np.ones(len(x)), x[:, 1]]) * np.sqrt(w)[:, None]
        coef = np.linalg.lstsq(design, x[:, 2] * np.sqrt(w), rcond=None)[0]
        np.testing.assert_allclose(fit[d, 0, [0, 2]], coef, rtol=1e-5, atol=1e-6)


def test_a_streamed_fit_is_the_in_memory_fit():
    x = _sample(150, 3)
    x[::9, 0] = np.nan  # EM too
    x[1::7, 1] = np.nan  # and missing continuous cells under continuous edges
    x[2::11, 2] = np.nan
    for structure in (CHAIN, "hill-climb"):
        memory = ptheta.make("bayesian-network", structure=structure).fit(Split(x, None, SPEC))
        small = _CountingSource(ArraySource(x, None, SPEC), rows_per_batch=7)
        streamed = ptheta.make("bayesian-network", structure=structure)
        streamed.fit(Split(small, None, SPEC))
        assert small.largest_read <= 7 and streamed.edges_ == memory.edges_
        np.testing.assert_allclose(streamed.slopes_, memory.slopes_, rtol=1e-10)
        np.testing.assert_allclose(streamed.leaf_params_, memory.leaf_params_, rtol=1e-10)
        np.testing.assert_allclose(streamed.cpt_, memory.cpt_, rtol=1e-10)
    assert [1, 2] in memory.edges_ or [2, 1] in memory.edges_  # a continuous edge searched


# --------------------------------------------------------------------------- missing cells
def _holes(x: np.ndarray, seed: int, rate: float = 0.25) -> np.ndarray:
    out = x.copy()
    out[np.random.default_rng(seed).random(x.shape) < rate] = np.nan  # every column
    return out


@pytest.fixture(scope="module")
def with_holes():
    holes = _holes(_sample(2500, 11), seed=12)
    model = ptheta.make("bayesian-network", structure=CHAIN, alpha=0.0, em_tol=1e-13,
                        em_max_iter=400)  # fmt: skip
    return model.fit(Split(holes, None, SPEC)), holes


def test_em_with_missing_continuous_cells_climbs_the_likelihood_it_reports(with_holes):
    # a quarter of every column missing, the continuous ones under U -> V included: EM
    # never lowers the observed-data log-likelihood, and it is the one score_samples gives
    model, holes = with_holes
    objective = np.array([h["objective"] for h in model.history_])
    assert len(objective) > 3 and np.all(np.diff(objective) >= -1e-12)
    assert model.history_[-1]["log_likelihood"] == pytest.approx(
        model.score_samples(holes).mean(), abs=1e-10
    )


def test_em_with_missing_continuous_cells_stops_at_a_local_maximum(with_holes):
    # nudging any mean, variance or slope of the fitted Gaussians lowers Σ log p(x_observed)
    model, holes = with_holes
    best = model.score_samples(holes).sum()
    for name in ("leaf_params_", "slopes_"):
        values = getattr(model, name)
        for index in np.ndindex(values.shape):
            for step in (1e-4, -1e-4):
                nudged = values.copy()
                nudged[index] += step * (nudged[index] if name == "leaf_params_" and
                                         index[-1] == 1 else 1.0)  # fmt: skip
                setattr(model, name, nudged)
                try:
                    assert model.score_samples(holes).sum() < best + 1e-9, (name, index, step)
                finally:
                    setattr(model, name, values)


def test_em_with_missing_continuous_cells_recovers_the_network():
    # 40 % of every column missing: the fit is near the truth, and on average over draws
    # of the data better on held-out rows than the fit of the complete rows (a fifth)
    test, gains = _sample(4000, 13), []
    for seed in range(100, 104):
        holes = _holes(_sample(2000, seed), seed=seed + 100, rate=0.4)
        model = ptheta.make("bayesian-network", structure=CHAIN, alpha=0.0)
        model.fit(Split(holes, None, SPEC))
        complete = holes[~np.isnan(holes).any(axis=1)]
        assert len(complete) < 0.25 * len(holes)
        baseline = ptheta.make("bayesian-network", structure=CHAIN, alpha=0.0)
        baseline.fit(Split(complete, None, SPEC))
        gains.append(model.score_samples(test).mean() - baseline.score_samples(test).mean())
    assert np.mean(gains) > 0.003, gains  # 0.007-0.018 nats each for these four draws
    fit = model.cpts()[2][:, 0]
    rows = 2000 * P_D * 0.6**2  # rows per level with U and V both observed
    assert np.all(np.abs(fit[:, 2] - B) < 4 * S / (U_STD * np.sqrt(rows)))  # 4 s.e.
    assert np.all(np.abs(fit[:, 1] / S**2 - 1) < 4 * np.sqrt(2 / rows))
    assert np.all(np.abs(model.cpts()[1][:, 0] - U_MEAN) < 4 * U_STD / np.sqrt(rows))


def test_the_search_links_continuous_columns_with_missing_cells():
    holes = _holes(_sample(1500, 15), seed=16, rate=0.15)
    searched = ptheta.make("bayesian-network").fit(Split(holes, None, SPEC))
    assert [1, 2] in searched.edges_ or [2, 1] in searched.edges_
    objective = [h["objective"] for h in searched.history_]
    assert np.all(np.diff(objective) >= -1e-12)


# --------------------------------------------------------------------------- likelihood
def test_the_joint_is_the_closed_form_gaussian_mixture(fitted):
    model, _ = fitted
    p_d, mean, cov = _closed_form(model)
    rng = np.random.default_rng(4)
    points = np.column_stack([rng.integers(0, 3, 40), rng.normal(0, 2, (40, 2))])
    by_hand = np.log(p_d[points[:, 0].astype(int)]) + np.array([
        stats.multivariate_normal.logpdf(r[1:], mean[int(r[0])], cov[int(r[0])]) for r in points
    ])  # fmt: skip
    np.testing.assert_allclose(model.score_samples(points), by_hand, rtol=1e-10)
    # D missing: the mixture; U missing: V's marginal per d; both: the mixture of those
    per_d = np.array([
        [np.log(p_d[d]) + stats.multivariate_normal.logpdf(r[1:], mean[d], cov[d])
         for d in range(3)]
        for r in points
    ])  # fmt: skip
    no_d = points.copy()
    no_d[:, 0] = np.nan
    np.testing.assert_allclose(model.score_samples(no_d), logsumexp(per_d, axis=1), rtol=1e-10)
    no_u = points.copy()
    no_u[:, 1] = np.nan
    d = points[:, 0].astype(int)
    marginal_v = np.log(p_d[d]) + stats.norm.logpdf(points[:, 2], mean[d, 1], np.sqrt(cov[d, 1, 1]))
    np.testing.assert_allclose(model.score_samples(no_u), marginal_v, rtol=1e-10)
    only_v = no_u.copy()
    only_v[:, 0] = np.nan
    mix = np.log(p_d)[None] + stats.norm.logpdf(
        points[:, 2, None], mean[None, :, 1], np.sqrt(cov[None, :, 1, 1])
    )
    np.testing.assert_allclose(model.score_samples(only_v), logsumexp(mix, axis=1), rtol=1e-10)


def test_the_density_of_a_continuous_chain_integrates_to_one(fitted):
    model, _ = fitted
    p_d, mean, _ = _closed_form(model)
    t = model.cpts()
    total = 0.0
    for d in range(3):
        sd_u = np.sqrt(t[1][d, 1])
        u = np.linspace(mean[d, 0] - 9 * sd_u, mean[d, 0] + 9 * sd_u, 801)
        sd_v = np.sqrt(t[2][d, 0, 1]) + abs(t[2][d, 0, 2]) * sd_u
        v = np.linspace(mean[d, 1] - 9 * sd_v, mean[d, 1] + 9 * sd_v, 801)
        uu, vv = np.meshgrid(u, v, indexing="ij")
        rows = np.column_stack([np.full(uu.size, d), uu.ravel(), vv.ravel()])
        density = np.exp(model.score_samples(rows)).reshape(uu.shape)
        total += np.trapezoid(np.trapezoid(density, v, axis=1), u)
        # a missing U cell is the integral over U of the joint (the block's marginal)
        at_v = np.array([[d, np.nan, mean[d, 1] + 0.3]])
        line = np.column_stack([np.full(len(u), d), u, np.full(len(u), at_v[0, 2])])
        integral = np.trapezoid(np.exp(model.score_samples(line)), u)
        assert np.exp(model.score_samples(at_v))[0] == pytest.approx(integral, rel=1e-6)
    assert total == pytest.approx(1.0, abs=1e-6)
    assert p_d.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- sampling, imputing
def test_samples_follow_the_fitted_regression(fitted):
    model, _ = fitted
    s = model.sample(30000, random_state=0)
    fit = model.cpts()[2]
    for d in range(3):
        rows = s[s[:, 0] == d]
        design = np.column_stack([np.ones(len(rows)), rows[:, 1]])
        coef, res, *_ = np.linalg.lstsq(design, rows[:, 2], rcond=None)
        resid_var = res[0] / len(rows)
        slope_se = np.sqrt(fit[d, 0, 1] / len(rows)) / rows[:, 1].std()
        assert abs(coef[1] - fit[d, 0, 2]) < 4 * slope_se
        assert abs(resid_var - fit[d, 0, 1]) < 4 * fit[d, 0, 1] * np.sqrt(2 / len(rows))


def test_conditional_samples_given_a_child_are_the_exact_gaussian_conditional(fitted):
    model, _ = fitted
    p_d, mean, cov = _closed_form(model)
    v = 1.7
    # U given D = b and V = v: the Gaussian conditional of the block
    drawn = model.sample(20000, given={"D": "b", "V": v}, random_state=1)
    assert np.all(drawn[:, 0] == 1) and np.all(drawn[:, 2] == v)
    m = mean[1, 0] + cov[1, 0, 1] / cov[1, 1, 1] * (v - mean[1, 1])
    var = cov[1, 0, 0] - cov[1, 0, 1] ** 2 / cov[1, 1, 1]
    assert abs(drawn[:, 1].mean() - m) < 4 * np.sqrt(var / len(drawn))
    assert abs(drawn[:, 1].var() - var) < 4 * var * np.sqrt(2 / len(drawn))
    # D and U given V: D's posterior, then U's conditional per level
    drawn = model.sample(20000, given={"V": v}, random_state=2)
    log_w = np.log(p_d) + stats.norm.logpdf(v, mean[:, 1], np.sqrt(cov[:, 1, 1]))
    post = np.exp(log_w - logsumexp(log_w))
    table = model.query("D", evidence={"V": v})  # the same posterior, by elimination
    np.testing.assert_allclose(table["probability"], post, rtol=1e-10)
    freq = np.bincount(drawn[:, 0].astype(int), minlength=3) / len(drawn)
    assert np.all(np.abs(freq - post) < 4 * np.sqrt(post * (1 - post) / len(drawn)) + 1e-12)
    means = mean[:, 0] + cov[:, 0, 1] / cov[:, 1, 1] * (v - mean[:, 1])
    for d in np.flatnonzero(post > 0.05):
        got = drawn[drawn[:, 0] == d, 1]
        var_d = cov[d, 0, 0] - cov[d, 0, 1] ** 2 / cov[d, 1, 1]
        assert abs(got.mean() - means[d]) < 4 * np.sqrt(var_d / len(got))


def test_mode_imputation_maximises_the_joint_density_on_a_grid(fitted):
    model, _ = fitted
    p_d, mean, cov = _closed_form(model)
    v = np.linspace(-4.0, 6.0, 11)
    filled = model.impute(np.column_stack([np.full((11, 2), np.nan), v]))
    u = np.linspace(-12, 12, 24001)
    for row, at in zip(filled, v, strict=True):
        grid = np.column_stack(
            [np.repeat(np.arange(3), len(u)), np.tile(u, 3), np.full(3 * len(u), at)]
        )
        best = int(np.argmax(model.score_samples(grid)))
        assert row[0] == best // len(u)
        assert row[1] == pytest.approx(u[best % len(u)], abs=2e-3)
    # the level picked weighs p(d | v) by the height of U's conditional density: here
    # that changes the choice for some v (without it the test above could not tell)
    log_w = np.log(p_d) + stats.norm.logpdf(v[:, None], mean[:, 1], np.sqrt(cov[:, 1, 1]))
    height = -0.5 * np.log(2 * np.pi * (cov[:, 0, 0] - cov[:, 0, 1] ** 2 / cov[:, 1, 1]))
    assert np.any(np.argmax(log_w, axis=1) != np.argmax(log_w + height, axis=1))


def test_an_observed_parent_outside_a_block_enters_its_mean():
    # U -> W <- V with V missing: W's mean has U's observed value as an input
    x, spec = _v_structure(1000, 8)
    edges = "D -> U; U -> W; V -> W"
    model = ptheta.make("bayesian-network", structure=edges).fit(Split(x, None, spec))
    t = model.cpts()
    rows = x[:20].copy()
    rows[:, 2] = np.nan
    d = rows[:, 0].astype(int)
    w = t[3].reshape(4)  # (1, 1, 4): [intercept, variance, slope of U, slope of V]
    mean_w = w[0] + w[2] * rows[:, 1] + w[3] * t[2][0]
    sd_w = np.sqrt(w[1] + w[3] ** 2 * t[2][1])
    by_hand = (
        np.log(t[0][d])
        + stats.norm.logpdf(rows[:, 1], t[1][d, 0], np.sqrt(t[1][d, 1]))
        + stats.norm.logpdf(rows[:, 3], mean_w, sd_w)
    )
    np.testing.assert_allclose(model.score_samples(rows), by_hand, rtol=1e-10)
    # and V's mode given them is its Gaussian conditional mean
    gain = w[3] * t[2][1] / sd_w**2
    np.testing.assert_allclose(
        model.impute(rows)[:, 2], t[2][0] + gain * (rows[:, 3] - mean_w), rtol=1e-10
    )


# --------------------------------------------------------------------------- structure
def _v_structure(n: int, seed: int) -> tuple[np.ndarray, DataSpec]:
    """D -> U; U -> W <- V (U and V independent): the directions are identifiable."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 2, n)
    u = np.where(d == 1, 2.0, -1.0) + rng.normal(size=n)
    v = rng.normal(size=n) * 1.5
    w = 0.8 * u - 0.6 * v + 0.5 * rng.normal(size=n)
    columns = (
        ColumnSpec("D", "binary", ("no", "yes")),
        ColumnSpec("U", "continuous"),
        ColumnSpec("V", "continuous"),
        ColumnSpec("W", "continuous"),
    )
    return np.column_stack([d, u, v, w]).astype(float), DataSpec("table", (4,), columns=columns)


def test_hill_climbing_recovers_continuous_edges_and_obeys_the_lists():
    x, spec = _v_structure(3000, 5)
    model = ptheta.make("bayesian-network").fit(Split(x, None, spec))
    learned = {(model.columns_[p], model.columns_[c]) for p, c in model.edges_}
    assert learned == {("D", "U"), ("U", "W"), ("V", "W")}
    assert model.edge_weights_[model.edges_.index([1, 3])] > 0.1
    black = ptheta.make("bayesian-network", black_list="U -> W").fit(Split(x, None, spec))
    assert [1, 3] not in black.edges_
    white = ptheta.make("bayesian-network", white_list="W -> V").fit(Split(x, None, spec))
    assert [3, 2] in white.edges_ and [2, 3] not in white.edges_


def test_bic_of_a_conditional_linear_gaussian_equals_a_hand_computation():
    rng = np.random.default_rng(6)
    n = 60
    d = rng.integers(0, 2, n)
    u = rng.normal(size=n)
    v = 1.0 + d + (0.5 + d) * u + rng.normal(size=n) * 0.7
    x = np.column_stack([d, np.zeros(n), np.zeros(n)]).astype(int)
    pooled = {1: (u.mean(), u.var()), 2: (v.mean(), v.var())}
    cov = np.cov(np.vstack([u, v]), bias=True)
    covariance = np.full((3, 3), np.nan)
    covariance[1:, 1:] = cov
    for alpha in (0.0, 0.5):
        scorer = FamilyScorer(
            x, np.array([2, 1, 1]), "bic", alpha=alpha, covariance=covariance,
            leaves={j: (Leaf("continuous"), z, pooled[j]) for j, z in ((1, u), (2, v))},
        )  # fmt: skip
        loglik = 0.0
        for level in range(2):
            rows = d == level
            design = np.column_stack([np.ones(rows.sum()), u[rows]])
            target, weight = v[rows], np.ones(rows.sum())
            if alpha:
                # alpha pseudo-rows with the pooled mean and covariance of (u, v): four
                # points m ± 2^{1/2} L e_i, each of weight alpha / 4 (exact first and second
                # moments)
                chol = np.linalg.cholesky(cov)
                centre = np.array([pooled[1][0], pooled[2][0]])
                points = [centre + s * np.sqrt(2) * chol[:, i] for i in range(2) for s in (1, -1)]
                points = np.array(points)
                design = np.vstack([design, np.column_stack([np.ones(4), points[:, 0]])])
                target = np.concatenate([target, points[:, 1]])
                weight = np.concatenate([weight, np.full(4, alpha / 4)])
            root = np.sqrt(weight)[:, None]
            coef = np.linalg.lstsq(design * root, target * root[:, 0], rcond=None)[0]
            var = np.sum(weight * (target - design @ coef) ** 2) / weight.sum()
            loglik += stats.norm.logpdf(v[rows], design[: rows.sum()] @ coef, np.sqrt(var)).sum()
        expected = loglik - 0.5 * np.log(n) * 2 * 3  # q = 2 configurations, 3 parameters each
        assert scorer(2, [0, 1]) == pytest.approx(expected, abs=1e-8)
    # one continuous parent, no discrete one: the plain regression
    ml = stats.norm.logpdf(v, *_ols(u, v)).sum() - 0.5 * np.log(n) * 3
    scorer = FamilyScorer(
        x, np.array([2, 1, 1]), "bic", covariance=covariance,
        leaves={j: (Leaf("continuous"), z, pooled[j]) for j, z in ((1, u), (2, v))},
    )  # fmt: skip
    assert scorer(2, [1]) == pytest.approx(ml, abs=1e-8)


def _ols(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, float]:
    design = np.column_stack([np.ones(len(u)), u])
    coef = np.linalg.lstsq(design, v, rcond=None)[0]
    fit = design @ coef
    return fit, float(np.sqrt(np.mean((v - fit) ** 2)))


def test_continuous_edges_are_refused_where_they_cannot_be_exact():
    x = _sample(200, 7)
    bounded = DataSpec(
        "table", (3,), columns=(*COLUMNS[:2], ColumnSpec("V", "continuous", lower=-100.0))
    )
    with pytest.raises(ParameterError, match="'V' has bounds"):
        ptheta.make("bayesian-network", structure=CHAIN).fit(Split(x, None, bounded))
    with pytest.raises(ParameterError, match="'U' -> 'D' starts at a continuous column"):
        ptheta.make("bayesian-network", structure="U -> D").fit(Split(x, None, SPEC))


# --------------------------------------------------------------------------- labelled given
def test_labelled_given_equals_coded_given(fitted):
    model, _ = fitted
    coded = np.array([[1.0, np.nan, 0.5], [np.nan, 0.2, np.nan]])
    want = model.sample(2, given=coded, random_state=3)
    frame = pd.DataFrame({"D": ["b", None], "U": [None, 0.2], "V": [0.5, None]})
    np.testing.assert_array_equal(model.sample(2, given=frame, random_state=3), want)
    partial = pd.DataFrame({"V": [0.5, None], "D": ["b", None]})  # some columns, any order
    got = model.sample(2, given=partial, random_state=3)
    np.testing.assert_array_equal(got[0, [0, 2]], want[0, [0, 2]])
    one = model.sample(5, given={"D": "b", "V": 0.5}, random_state=4)
    np.testing.assert_array_equal(
        one, model.sample(5, given=np.array([[1.0, np.nan, 0.5]]), random_state=4)
    )
    np.testing.assert_array_equal(model.impute(frame), model.impute(coded))
    with pytest.raises(DataError, match="not one of its levels"):
        model.sample(1, given={"D": "z"})
    with pytest.raises(DataError, match="unknown variable 'Q'"):
        model.sample(1, given={"Q": 1.0})


def test_a_saved_network_with_continuous_parents_loads_back(fitted, tmp_path):
    from ptheta.runs.store import load_run, save_run

    model, x = fitted
    save_run(model, tmp_path / "run", data={"name": "clg"})
    loaded = load_run(tmp_path / "run")
    holes = x[:50].copy()
    holes[::2, 1] = np.nan
    np.testing.assert_array_equal(loaded.slopes_, model.slopes_)
    np.testing.assert_array_equal(loaded.score_samples(holes), model.score_samples(holes))
