"""The latent-class model of mixed tables: probabilities that sum to one, exact marginals of
missing cells, EM that never goes down, recovery of a known mixture (with 20 % of cells
missing), and a streamed fit that is the in-memory one."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize
from scipy.special import logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import NpySource
from ptheta.data.table import ColumnSpec, check_table
from ptheta.errors import DataError
from ptheta.models.latent_class import LatentClass, truncated_gaussian_fit

COLUMNS = (
    ColumnSpec("member", "binary", ("no", "yes")),
    ColumnSpec("colour", "categorical", ("blue", "green", "red")),
    ColumnSpec("grade", "ordinal", ("low", "mid", "high")),
    ColumnSpec("visits", "count"),
    ColumnSpec("weight", "continuous"),
    ColumnSpec("price", "continuous", lower=0.0),
)
SPEC = DataSpec("table", (len(COLUMNS),), columns=COLUMNS)
# the known two-class mixture: weights, and per class the factor of each column
TRUE = {
    "weights": np.array([0.35, 0.65]),
    "member": np.array([0.85, 0.2]),  # P(yes)
    "colour": np.array([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]]),
    "grade": np.array([[0.2, 0.3, 0.5], [0.5, 0.4, 0.1]]),
    "visits": np.array([1.5, 6.0]),  # Poisson rates
    "weight": (np.array([-1.0, 2.5]), np.array([1.0, 0.6])),  # means, standard deviations
    "price": (np.array([0.5, 3.0]), np.array([1.5, 1.0])),  # before truncation at 0
}


def _draw(n: int, seed: int, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """n rows of the known mixture (their classes too); MCAR cells set to NaN."""
    rng = np.random.default_rng(seed)
    z = (rng.random(n) < TRUE["weights"][1]).astype(int)
    mu, sd = TRUE["price"]
    price = stats.truncnorm.rvs(-mu[z] / sd[z], np.inf, mu[z], sd[z], random_state=rng)
    x = np.column_stack(
        [
            rng.random(n) < TRUE["member"][z],
            (rng.random(n)[:, None] > np.cumsum(TRUE["colour"][z], axis=1)).sum(axis=1),
            (rng.random(n)[:, None] > np.cumsum(TRUE["grade"][z], axis=1)).sum(axis=1),
            rng.poisson(TRUE["visits"][z]),
            TRUE["weight"][0][z] + TRUE["weight"][1][z] * rng.standard_normal(n),
            price,
        ]
    ).astype(np.float64)
    if missing:
        x[rng.random(x.shape) < missing] = np.nan
    return x, z


def _fit(x: np.ndarray, columns=COLUMNS, converges: bool = True, **params) -> LatentClass:
    spec = DataSpec("table", (len(columns),), columns=columns)
    params = {"n_components": 2, "random_state": 0, **params}
    with warnings.catch_warnings():
        # EM must converge (no ConvergenceWarning) unless told it cannot
        warnings.simplefilter("error" if converges else "ignore")
        return LatentClass(**params).fit(Split(x, None, spec))


def _by_hand(model: LatentClass, x: np.ndarray) -> np.ndarray:
    """log p of rows (NaN cells left out of each product) with scipy.stats, factor by
    factor and component by component."""
    k = len(model.weights_)
    log_joint = np.tile(np.log(model.weights_), (len(x), 1))
    for j, col in enumerate(COLUMNS):
        seen = ~np.isnan(x[:, j])
        v = x[seen, j]
        for c in range(k):
            if col.levels is not None:
                part = np.log(model.probs_[c, j, v.astype(int)])
            elif col.type == "count":
                part = stats.poisson(model.means_[c, j]).logpmf(v)
            else:
                m, s = model.means_[c, j], np.sqrt(model.variances_[c, j])
                lo = -np.inf if col.lower is None else (col.lower - m) / s
                part = stats.truncnorm(lo, np.inf, loc=m, scale=s).logpdf(v)
            log_joint[seen, c] += part
    return logsumexp(log_joint, axis=1)


# --------------------------------------------------------------------------- exact maths
def test_scores_equal_a_hand_computation_with_scipy_and_missing_cells_drop_out():
    x, _ = _draw(600, seed=1, missing=0.2)
    model = _fit(x, n_components=3)
    test, _ = _draw(40, seed=2, missing=0.3)
    np.testing.assert_allclose(model.score_samples(test), _by_hand(model, test), rtol=1e-10)
    assert (model.likelihood_, model.units_) == ("exact", "mixed")
    # (K − 1) + K · (1 + 2 + 2 level probabilities, 1 rate, 2 + 2 Gaussian parameters)
    assert model.n_parameters() == 2 + 3 * 10
    assert model.score_samples(np.full((1, 6), np.nan))[0] == pytest.approx(0.0, abs=1e-12)


def test_probabilities_of_every_configuration_of_a_discrete_table_sum_to_one():
    x, _ = _draw(400, seed=3, missing=0.1)
    model = _fit(x[:, :4], COLUMNS[:4], n_components=3)
    assert model.units_ == "discrete"
    counts = range(60)  # far into the tails of Poisson rates near 1.5 and 6
    grid = np.array(list(itertools.product(range(2), range(3), range(3), counts)), float)
    assert np.exp(model.score_samples(grid)).sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize(("j", "lo", "hi"), [(4, -12.0, 12.0), (5, 0.0, 15.0)])
def test_each_continuous_column_integrates_to_one(j, lo, hi):
    model = _fit(_draw(400, seed=4)[0], n_components=3)
    grid = np.linspace(lo, hi, 100_001)
    rows = np.full((len(grid), len(COLUMNS)), np.nan)
    rows[:, j] = grid
    assert np.trapezoid(np.exp(model.score_samples(rows)), grid) == pytest.approx(1.0, abs=1e-7)


def test_score_with_missing_cells_equals_the_brute_force_marginal():
    model = _fit(_draw(400, seed=5, missing=0.2)[0], n_components=3)
    row = _draw(1, seed=6)[0][0]
    # discrete cells (member, grade, visits) summed out over every value
    partial = row.copy()
    partial[[0, 2, 3]] = np.nan
    filled = np.tile(row, (2 * 3 * 80, 1))
    filled[:, [0, 2, 3]] = list(itertools.product(range(2), range(3), range(80)))
    brute = logsumexp(model.score_samples(filled))
    assert model.score_samples(partial[None])[0] == pytest.approx(brute, abs=1e-10)
    # a continuous cell (the bounded price) integrated out on a grid
    partial = row.copy()
    partial[5] = np.nan
    grid = np.linspace(0.0, 20.0, 200_001)
    filled = np.tile(row, (len(grid), 1))
    filled[:, 5] = grid
    integral = np.trapezoid(np.exp(model.score_samples(filled)), grid)
    assert model.score_samples(partial[None])[0] == pytest.approx(np.log(integral), abs=1e-7)


def test_one_class_is_the_independent_model():
    """K = 1 is `independent`, whose count factor is a Poisson when the counts are not
    overdispersed and whose continuous factor is the (untruncated) Gaussian of the
    observed moments: the same maximum-likelihood (MAP for levels) fit, to rounding."""
    rng = np.random.default_rng(7)
    x, _ = _draw(500, seed=7, missing=0.15)
    x[:, 3] = np.where(np.isnan(x[:, 3]), np.nan, rng.binomial(6, 0.5, len(x)))  # var < mean
    columns = COLUMNS[:5]
    model = _fit(x[:, :5], columns, n_components=1, alpha=0.5, min_var=0.0)
    baseline = ptheta.make("independent", alpha=0.5, min_var=0.0)
    baseline.fit(Split(x[:, :5], None, DataSpec("table", (5,), columns=columns)))
    test = _draw(50, seed=8, missing=0.2)[0][:, :5]
    np.testing.assert_allclose(model.score_samples(test), baseline.score_samples(test), rtol=1e-12)
    assert model.n_parameters() == baseline.n_parameters()


def test_truncated_gaussian_fit_is_the_maximum_likelihood():
    x = stats.truncnorm.rvs(-0.5, np.inf, loc=1.0, scale=2.0, size=2000, random_state=9)

    def nll(p):
        return -stats.truncnorm.logpdf(x, -p[0] / p[1], np.inf, p[0], p[1]).sum()

    mu, var = truncated_gaussian_fit(x.mean(), x.var(), 0.0, np.inf, 0.0)
    best = minimize(nll, [x.mean(), x.std()], method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000}).x  # fmt: skip
    np.testing.assert_allclose([mu, np.sqrt(var)], best, rtol=1e-5)
    # the variance floor is a constraint: a tiny spread is held at min_var
    assert truncated_gaussian_fit(1.0, 1e-9, 0.0, 2.0, 0.25)[1] == pytest.approx(0.25)


def test_em_reaches_a_stationary_point_of_the_likelihood():
    """With alpha=0, at convergence every rate, mean and variance (the truncated price's
    too) is a maximum: the log-likelihood's derivative with respect to each is 0."""
    x, _ = _draw(800, seed=10, missing=0.2)
    model = _fit(x, alpha=0.0, min_var=0.0, tol=1e-12, max_iter=2000)
    total = model.score_samples(x).sum()
    for name, j in [("means_", 3), ("means_", 4), ("variances_", 4), ("means_", 5),
                    ("variances_", 5)]:  # fmt: skip
        for c in range(2):
            values = getattr(model, name)
            h = 1e-5 * abs(values[c, j])
            diffs = []
            for step in (h, -h):
                values[c, j] += step
                diffs.append(model.score_samples(x).sum() - total)
                values[c, j] -= step
            slope = (diffs[0] - diffs[1]) / (2 * h)
            curvature = (diffs[0] + diffs[1]) / h**2
            assert abs(slope) < 1e-3 * abs(curvature * values[c, j]), (name, j, c, slope)
            assert curvature < 0  # a maximum


def test_em_never_lowers_the_objective():
    x, _ = _draw(500, seed=11, missing=0.2)
    for alpha in (0.0, 0.5):
        model = _fit(
            x, converges=False, n_components=3, alpha=alpha, tol=0.0, max_iter=40, init="random"
        )
        objective = np.array([h["objective"] for h in model.fit_history()])
        assert len(objective) == 40
        assert np.all(np.diff(objective) >= -1e-12 * np.abs(objective[1:]))
        assert objective[-1] > objective[0] + 0.1
        if alpha == 0:  # the objective is the log-likelihood per example (+ a constant)
            loglik = np.array([h["log_likelihood"] for h in model.fit_history()])
            assert np.ptp(objective - loglik) < 1e-12


# --------------------------------------------------------------------------- recovery
def _aligned(model: LatentClass) -> dict[str, np.ndarray]:
    """The fitted parameters in the true classes' order (class 0: the lower visit rate)."""
    order = np.argsort(model.means_[:, 3])
    mu, var = model.means_[order], model.variances_[order]
    return {
        "weights": model.weights_[order],
        "member": model.probs_[order, 0, 1],
        "colour": model.probs_[order, 1, :3],
        "grade": model.probs_[order, 2, :3],
        "visits": mu[:, 3],
        "weight_mean": mu[:, 4],
        "weight_sd": np.sqrt(var[:, 4]),
        "price_mean": mu[:, 5],
        "price_sd": np.sqrt(var[:, 5]),
    }


def _standard_errors(n: int) -> dict[str, np.ndarray]:
    """Sampling standard errors of each estimate from n rows with every class known (the
    mixture's are somewhat larger: the classes overlap a little)."""
    w = TRUE["weights"]
    nk = n * w
    p = {"member": TRUE["member"], "colour": TRUE["colour"], "grade": TRUE["grade"]}
    out = {key: np.sqrt(v * (1 - v) / (nk if v.ndim == 1 else nk[:, None])) for key, v in p.items()}
    out["weights"] = np.sqrt(w * (1 - w) / n)
    out["visits"] = np.sqrt(TRUE["visits"] / nk)
    out["weight_mean"] = TRUE["weight"][1] / np.sqrt(nk)
    out["weight_sd"] = TRUE["weight"][1] / np.sqrt(2 * nk)
    # the truncated Gaussian's parameters are less certain than an untruncated one's
    out["price_mean"] = 2.0 * TRUE["price"][1] / np.sqrt(nk)
    out["price_sd"] = 2.0 * TRUE["price"][1] / np.sqrt(2 * nk)
    return out


def test_a_known_two_class_mixture_is_recovered_with_and_without_missing_cells():
    n = 3000
    x, z = _draw(n, seed=12)
    truth = {
        "weights": TRUE["weights"], "member": TRUE["member"], "colour": TRUE["colour"],
        "grade": TRUE["grade"], "visits": TRUE["visits"],
        "weight_mean": TRUE["weight"][0], "weight_sd": TRUE["weight"][1],
        "price_mean": TRUE["price"][0], "price_sd": TRUE["price"][1],
    }  # fmt: skip
    se = _standard_errors(n)
    complete = _aligned(_fit(x, tol=1e-8, max_iter=500))
    for key, value in truth.items():  # within 4 standard errors of the truth
        assert np.all(np.abs(complete[key] - value) < 4 * se[key]), key
    # 20 % of the cells missing completely at random: an MCAR fit keeps 80 % of each
    # column's information, so it lies within about sqrt(1/0.8 − 1) = 0.5 standard errors
    # of the complete fit; we allow 2.5
    holes = x.copy()
    holes[np.random.default_rng(13).random(x.shape) < 0.2] = np.nan
    partial = _aligned(_fit(holes, tol=1e-8, max_iter=500))
    for key in truth:
        assert np.all(np.abs(partial[key] - complete[key]) < 2.5 * se[key]), key
    # the classes are found: responsibilities agree with the true classes
    model = _fit(holes, tol=1e-8, max_iter=500)
    predicted = model.predict(holes) == np.argmax(model.means_[:, 3])
    assert np.mean(predicted == z) > 0.93


# --------------------------------------------------------------------------- streaming
def test_a_streamed_fit_in_tiny_batches_is_the_in_memory_fit(tmp_path, monkeypatch):
    x, _ = _draw(300, seed=14, missing=0.2)
    in_memory = _fit(x, n_components=3, tol=1e-6)
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = NpySource(path)
    source.spec = SPEC
    monkeypatch.setenv("PTHETA_BATCH_BYTES", str(7 * 8 * len(COLUMNS)))  # 7 rows a batch
    assert source.batch_rows() == 7
    streamed = LatentClass(n_components=3, tol=1e-6, random_state=0).fit(source)
    assert streamed.n_iter_ == in_memory.n_iter_
    for key in ("weights_", "probs_", "means_", "variances_"):
        np.testing.assert_allclose(getattr(streamed, key), getattr(in_memory, key), rtol=1e-9)
    np.testing.assert_allclose(streamed.score_samples(x), in_memory.score_samples(x), rtol=1e-9)


def test_minibatch_em_fits_the_mixture_too():
    x, _ = _draw(1000, seed=15, missing=0.1)
    full = _fit(x, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepwise EM stops by the epoch budget
        stepwise = LatentClass(
            n_components=2, em="minibatch", batch_size=100, max_iter=10, random_state=0
        ).fit(Split(x, None, SPEC))
    one = _fit(x, n_components=1)
    assert stepwise.score(x) > one.score(x) + 0.5  # found the classes
    assert stepwise.score(x) == pytest.approx(full.score(x), abs=0.02)


# --------------------------------------------------------------------------- sampling
def test_samples_keep_the_column_types():
    model = _fit(_draw(400, seed=16, missing=0.1)[0])
    rows = model.sample(3000, random_state=0)
    check_table(rows, COLUMNS, allow_nan=False)  # codes in range, counts whole, price >= 0
    assert rows.dtype == np.float64 and not np.isnan(rows).any()
    for j in range(4):
        assert np.all(rows[:, j] == np.round(rows[:, j]))
    assert rows[:, 5].min() >= 0.0
    # the sampler draws from the model: the frequency of 'member = yes' is its probability
    p_yes = np.exp(model.score_samples(np.array([[1.0] + [np.nan] * 5])))[0]
    assert rows[:, 0].mean() == pytest.approx(p_yes, abs=4 * np.sqrt(p_yes * (1 - p_yes) / 3000))


def test_conditional_sampling_and_modes_follow_the_exact_conditionals():
    model = _fit(_draw(600, seed=17)[0], n_components=3)
    given = np.array([[np.nan, 2.0, np.nan, 7.0, 2.3, np.nan]])
    # p(grade | observed cells) from exact marginals: p(x_obs, grade) / p(x_obs)
    options = np.tile(given, (3, 1))
    options[:, 2] = [0, 1, 2]
    exact = np.exp(model.score_samples(options) - model.score_samples(given))
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    drawn = model.sample(4000, given=given, random_state=1)
    np.testing.assert_array_equal(drawn[:, [1, 3, 4]], np.tile(given[:, [1, 3, 4]], (4000, 1)))
    frequency = np.bincount(drawn[:, 2].astype(int), minlength=3) / 4000
    assert np.all(np.abs(frequency - exact) < 4 * np.sqrt(exact * (1 - exact) / 4000))
    assert check_table(drawn, COLUMNS, allow_nan=False).shape == (4000, 6)
    mode = model.impute(given)
    assert mode[0, 2] == np.argmax(exact)
    # a continuous cell's "mode" is its conditional mean: Σ_k p(k | x_obs) E_k[price]
    grid = np.linspace(0.0, 25.0, 100_001)
    rows = np.tile(given, (len(grid), 1))
    rows[:, 5] = grid
    density = np.exp(model.score_samples(rows) - model.score_samples(given))
    assert mode[0, 5] == pytest.approx(np.trapezoid(grid * density, grid), rel=1e-6)


# --------------------------------------------------------------------------- other kinds
def test_binary_and_continuous_arrays_are_tables_of_one_type():
    rng = np.random.default_rng(18)
    binary = (rng.random((300, 4)) < np.where(rng.random((300, 1)) < 0.5, 0.8, 0.2)).astype(int)
    model = LatentClass(n_components=2, random_state=0).fit(binary)
    configs = np.array(list(itertools.product(range(2), repeat=4)))
    assert np.exp(model.score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-12)
    assert model.sample(5, random_state=0).dtype == np.int64
    real = rng.normal(size=(300, 2)) + np.where(rng.random((300, 1)) < 0.5, 3.0, -3.0)
    gaussian = LatentClass(n_components=2, random_state=0).fit(real)
    reference = ptheta.make("gmm", n_components=2, covariance_type="diag", reg_covar=0.0,
                            tol=1e-10, max_iter=500).fit(real)  # fmt: skip
    fitted = LatentClass(n_components=2, min_var=0.0, tol=1e-10, max_iter=500).fit(real)
    assert fitted.score(real) == pytest.approx(reference.score(real), abs=1e-6)
    assert gaussian.units_ == "continuous"


# --------------------------------------------------------------------------- bad input
def test_bad_data_are_clear_errors():
    x, _ = _draw(50, seed=19)
    x[:, 4] = np.nan
    with pytest.raises(DataError, match=r"'weight'.*no observed value"):
        _fit(x)
    with pytest.raises(DataError, match="n_components=60 is more than the 50"):
        _fit(_draw(50, seed=19)[0], n_components=60)
    model = _fit(_draw(100, seed=20)[0])
    bad = _draw(2, seed=21)[0]
    bad[0, 5] = -1.0
    with pytest.raises(DataError, match="below its lower bound"):
        model.score_samples(bad)
