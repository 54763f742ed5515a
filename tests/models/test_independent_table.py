"""The independent model on a table: one factor per column type, checked against scipy
and by summing / integrating its probabilities; missing cells in fit and score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.data import groundtruth_table
from ptheta.data.spec import DataSpec, Split
from ptheta.data.table import ColumnSpec, decode
from ptheta.runs.store import save_run

COLUMNS = (
    ColumnSpec("colour", "categorical", ("blue", "green", "red")),
    ColumnSpec("member", "binary", ("no", "yes")),
    ColumnSpec("grade", "ordinal", ("low", "mid", "high")),
    ColumnSpec("visits", "count"),  # overdispersed: negative binomial
    ColumnSpec("calm", "count"),  # underdispersed: Poisson
    ColumnSpec("weight", "continuous"),
    ColumnSpec("price", "continuous", lower=0.0),
    ColumnSpec("share", "continuous", lower=0.0, upper=1.0),
)
SPEC = DataSpec("table", (len(COLUMNS),), columns=COLUMNS)


def _table(n: int = 400, seed: int = 0, missing: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.choice(3, n, p=[0.5, 0.3, 0.2]),
            rng.random(n) < 0.3,
            rng.choice(3, n, p=[0.2, 0.5, 0.3]),
            rng.negative_binomial(2, 0.3, n),
            rng.binomial(4, 0.5, n),  # variance 1 < mean 2
            rng.normal(70.0, 12.0, n),
            np.abs(rng.normal(1.0, 3.0, n)),
            rng.beta(2.0, 5.0, n),
        ]
    ).astype(np.float64)
    if missing:
        x[rng.random(x.shape) < missing] = np.nan
    return x


def _fit(x: np.ndarray, columns=COLUMNS, **params):
    spec = DataSpec("table", (len(columns),), columns=columns)
    return ptheta.make("independent", **params).fit(Split(x, None, spec))


def _by_hand(x: np.ndarray, train: np.ndarray, alpha: float, min_var: float) -> np.ndarray:
    """log p of each complete row of ``x``, column by column with scipy.stats."""
    out = np.zeros(len(x))
    for j, col in enumerate(COLUMNS):
        seen = train[~np.isnan(train[:, j]), j]
        v = x[:, j]
        if col.levels is not None:
            k = len(col.levels)
            probs = (np.bincount(seen.astype(int), minlength=k) + alpha) / (len(seen) + k * alpha)
            out += np.log(probs[v.astype(int)])
        elif col.type == "count":
            m, var = seen.mean(), seen.var()
            if var > m:  # scipy's nbinom(n, p): mean n(1 − p)/p, variance n(1 − p)/p²
                out += stats.nbinom(m**2 / (var - m), m / var).logpmf(v)
            else:
                out += stats.poisson(m).logpmf(v)
        else:
            m, s = seen.mean(), np.sqrt(seen.var() + min_var)
            lo = -np.inf if col.lower is None else (col.lower - m) / s
            hi = np.inf if col.upper is None else (col.upper - m) / s
            out += stats.truncnorm(lo, hi, loc=m, scale=s).logpdf(v)
    return out


def test_log_likelihood_equals_a_hand_computation_per_column():
    train, test = _table(seed=0), _table(n=50, seed=1)
    model = _fit(train, alpha=0.5, min_var=1e-3)
    np.testing.assert_allclose(
        model.score_samples(test), _by_hand(test, train, 0.5, 1e-3), rtol=1e-10
    )
    assert (model.likelihood_, model.units_) == ("exact", "mixed")
    # K − 1 per label column (2 + 1 + 2), 2 for the negative binomial, 1 for the Poisson,
    # 2 per Gaussian
    assert model.n_parameters() == 5 + 2 + 1 + 3 * 2


def test_discrete_probabilities_sum_to_one_over_every_combination():
    model = _fit(_table(seed=2))
    counts = np.arange(120.0)  # far into both count tails
    grid = np.array(list(itertools.product(range(3), range(2), range(3), counts, counts)))
    rows = np.full((len(grid), len(COLUMNS)), np.nan)
    rows[:, :5] = grid  # the real columns missing: marginalised
    total = np.exp(model.score_samples(rows)).sum()
    assert total == pytest.approx(1.0, abs=1e-9)
    assert model.units_ == "mixed"
    discrete = _fit(_table(seed=2)[:, :5], COLUMNS[:5])
    assert discrete.units_ == "discrete"
    assert discrete.score_samples(grid[:7]).max() < 0


@pytest.mark.parametrize(("j", "lo", "hi"), [(5, 0.0, 140.0), (6, 0.0, 20.0), (7, 0.0, 1.0)])
def test_each_density_integrates_to_one_on_a_grid(j, lo, hi):
    model = _fit(_table(seed=3))
    grid = np.linspace(lo, hi, 200_001)
    rows = np.full((len(grid), len(COLUMNS)), np.nan)
    rows[:, j] = grid
    density = np.exp(model.score_samples(rows))
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    if COLUMNS[j].lower is not None:  # no mass below a bound: values there are refused
        with pytest.raises(ptheta.errors.DataError, match="below its lower bound"):
            model.score_samples(np.where(np.arange(len(COLUMNS)) == j, lo - 0.1, np.nan)[None])
    continuous = _fit(_table(seed=3)[:, 5:], COLUMNS[5:])
    assert continuous.units_ == "continuous"


def test_fit_with_missing_cells_equals_each_column_fitted_on_its_observed_cells():
    x = _table(seed=4, missing=0.2)
    model = _fit(x)
    test = _table(n=30, seed=5)
    per_column = np.zeros(len(test))
    for j, col in enumerate(COLUMNS):
        alone = _fit(x[~np.isnan(x[:, j]), j : j + 1], (col,))
        per_column += alone.score_samples(test[:, j : j + 1])
    np.testing.assert_allclose(model.score_samples(test), per_column, rtol=1e-12)
    # a missing cell drops its factor: the score of the rest
    partial = test.copy()
    partial[:, 3] = np.nan
    rest = _fit(x[:, [0, 1, 2, 4, 5, 6, 7]], COLUMNS[:3] + COLUMNS[4:])
    np.testing.assert_allclose(
        model.score_samples(partial), rest.score_samples(np.delete(test, 3, axis=1)), rtol=1e-12
    )


@pytest.mark.parametrize("kind", ["categorical", "continuous"])
def test_fixed_kinds_fit_missing_entries_on_the_observed_ones(kind):
    rng = np.random.default_rng(6)
    full = rng.integers(0, 4, (80, 3)) if kind == "categorical" else rng.normal(size=(80, 3))
    spec = DataSpec(kind, (3,), 4 if kind == "categorical" else None)
    x = full.astype(np.float64)
    x[rng.random(x.shape) < 0.25] = np.nan
    model = ptheta.make("independent").fit(Split(x, None, spec))
    for j in range(3):
        seen = x[~np.isnan(x[:, j]), j]
        alone = ptheta.make("independent").fit(Split(seen[:, None], None, DataSpec(
            kind, (1,), spec.n_categories)))  # fmt: skip
        if kind == "categorical":
            np.testing.assert_allclose(model.probs_[j], alone.probs_[0], rtol=1e-15)
        else:
            assert model.mean_[j] == pytest.approx(alone.mean_[0], rel=1e-14)
            assert model.var_[j] == pytest.approx(alone.var_[0], rel=1e-12)
    with pytest.raises(ptheta.errors.DataError, match=r"variable 1 .*no observed value"):
        x[:, 1] = np.nan
        ptheta.make("independent").fit(Split(x, None, spec))


def test_samples_follow_the_factors_and_decode_to_labels():
    model = _fit(_table(seed=7))
    s = model.sample(20_000, random_state=0)
    assert s.dtype == np.float64 and not np.isnan(s).any()
    np.testing.assert_array_equal(s, model.sample(20_000, random_state=0))
    assert np.all(s[:, 3:5] == np.round(s[:, 3:5])) and s[:, 3:5].min() >= 0
    assert s[:, 6].min() >= 0 and s[:, 7].min() >= 0 and s[:, 7].max() <= 1
    # label column: counts match the fitted probabilities
    counts = np.bincount(s[:, 0].astype(int), minlength=3)
    assert stats.chisquare(counts, model.table_probs_[0, :3] * len(s)).pvalue > 1e-3
    # counts: the negative binomial's and the Poisson's pmf
    for j in (3, 4):
        k = np.arange(60)
        rows = np.full((len(k), len(COLUMNS)), np.nan)
        rows[:, j] = k
        pmf = np.exp(model.score_samples(rows))
        observed = np.bincount(s[:, j].astype(int), minlength=60)[:60]
        keep = pmf * len(s) > 5
        expected = pmf[keep] * len(s)
        observed = observed[keep]
        expected *= observed.sum() / expected.sum()
        assert stats.chisquare(observed, expected).pvalue > 1e-3, j
        mean, var = model.table_mean_[j], model.table_var_[j]  # the fitted moments
        assert abs(s[:, j].mean() - mean) < 4 * np.sqrt(max(var, mean) / len(s)), j
    # the truncated Gaussian: its CDF (from the model's own density) against the draws
    grid = np.linspace(0.0, 20.0, 40_001)
    rows = np.full((len(grid), len(COLUMNS)), np.nan)
    rows[:, 6] = grid
    cdf = np.concatenate([[0.0], np.cumsum(np.diff(grid) * np.exp(model.score_samples(rows))[1:])])
    assert stats.kstest(s[:, 6], lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3
    frame = decode(s[:5], COLUMNS)
    assert set(frame["colour"]) <= {"blue", "green", "red"}
    assert str(frame["visits"].dtype) == "Int64"


def test_impute_fills_modes_and_keeps_observed_cells():
    train = _table(seed=8)
    model = _fit(train)
    partial = _table(n=6, seed=9)
    partial[:, [0, 3, 4, 6]] = np.nan
    filled = model.impute(partial)
    observed = ~np.isnan(partial)
    np.testing.assert_array_equal(filled[observed], partial[observed])
    probs = model.table_probs_[0, :3]
    assert np.all(filled[:, 0] == probs.argmax())
    for j in (3, 4):  # the count's mode: the most probable count (brute force)
        k = np.arange(100)
        rows = np.full((len(k), len(COLUMNS)), np.nan)
        rows[:, j] = k
        assert np.all(filled[:, j] == k[model.score_samples(rows).argmax()])
    assert np.all(filled[:, 6] == max(model.table_mean_[6], 0.0))
    drawn = model.impute(partial, method="sample", random_state=0)
    np.testing.assert_array_equal(drawn[observed], partial[observed])
    assert not np.isnan(drawn).any()


def test_the_normaliser_of_a_truncated_gaussian_is_exact_in_both_tails():
    from ptheta.models.baselines import _log_normal_mass

    for a, b in [(-np.inf, 0.3), (-2.0, np.inf), (-1.0, 2.0), (5.0, 8.0), (-30.0, -25.0)]:
        exact = np.log(stats.norm.cdf(b) - stats.norm.cdf(a)) if a < 0 < b else None
        if exact is None:  # in a tail: the smaller side, without cancellation
            exact = np.log(stats.norm.sf(a) - stats.norm.sf(b)) if a > 0 else np.log(
                stats.norm.cdf(b) - stats.norm.cdf(a))  # fmt: skip
        assert _log_normal_mass(a, b) == pytest.approx(exact, rel=1e-12), (a, b)


def test_dataframes_of_labels_are_scored_with_the_fitted_columns():
    model = _fit(_table(seed=10))
    x = _table(n=5, seed=11)
    np.testing.assert_allclose(model.score_samples(decode(x, COLUMNS)), model.score_samples(x))


def test_run_directory_round_trip(tmp_path):
    data = ptheta.data.load("groundtruth-table")
    model = ptheta.make("independent").fit(data.train)
    save_run(model, tmp_path / "run", data={"name": data.name})
    again = ptheta.load(tmp_path / "run")
    assert again.fitted_spec == data.spec and again.units_ == "mixed"
    np.testing.assert_array_equal(
        again.score_samples(data.test.x), model.score_samples(data.test.x)
    )
    np.testing.assert_array_equal(again.sample(5, random_state=1), model.sample(5, random_state=1))
    # the floor: no model beats the true entropy by more than noise
    nll = -model.score_samples(data.test.x)
    assert nll.mean() > data.entropy - 3 * nll.std() / np.sqrt(len(nll))
    assert nll.mean() > groundtruth_table.entropy()  # the independent model is far from it
