"""Classical families fit from sufficient statistics summed over batches (issue 18).

Counts (independent, markov, naive Bayes, Chow–Liu, Bayesian-network tables) and moments
(the Gaussians of independent, naive Bayes and the markov autoregression) are summed over
the batches of a data source; a fit from a source read 7 rows at a time, or from a
memory-mapped ``.npy`` file, must give the in-memory model: the same fitted arrays exactly
where they come from counts, to 1e-10 where they come from sums of floats. The sums are
checked against brute force and closed forms, and two processes (under ``torchrun``, here
two threads) must give the model of one.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import ptheta
from ptheta.data import stream
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource, NpySource, accumulate
from ptheta.data.table import ColumnSpec
from ptheta.errors import DataError
from ptheta.models.chow_liu import _counts_from_sums, _pair_sums
from tests.models.test_streaming_contract import _CountingSource, _TwoProcesses

BATCH = 7


# --------------------------------------------------------------------------- data
def _binary(n: int = 120, seed: int = 0) -> np.ndarray:
    """Five binary variables with dependencies (a chain with flips, one free)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 5), dtype=np.int64)
    x[:, 0] = rng.random(n) < 0.4
    for j in (1, 2, 3):
        x[:, j] = x[:, j - 1] ^ (rng.random(n) < 0.2)
    x[:, 4] = rng.random(n) < 0.7
    return x


def _categorical(n: int = 120, k: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, 4), dtype=np.int64)
    x[:, 0] = rng.integers(0, k, n)
    for j in (1, 2, 3):
        x[:, j] = np.where(rng.random(n) < 0.7, x[:, j - 1], rng.integers(0, k, n))
    return x


def _continuous(n: int = 120, offset: float = 0.0, seed: int = 2) -> np.ndarray:
    """Four correlated Gaussian variables (a random walk) around ``offset``."""
    rng = np.random.default_rng(seed)
    return offset + rng.normal(size=(n, 4)).cumsum(axis=1) * np.array([1.0, 0.5, 2.0, 1.0])


def _holes(x: np.ndarray, fraction: float, seed: int = 3) -> np.ndarray:
    out = x.astype(np.float64)
    out[np.random.default_rng(seed).random(x.shape) < fraction] = np.nan
    return out


def _table(n: int = 120, seed: int = 4) -> tuple[np.ndarray, DataSpec]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    x = np.column_stack([
        group,
        np.clip(group + rng.integers(0, 2, n), 0, 2),
        rng.poisson(np.where(group == 1, 4.0, 1.0)),
        rng.normal(size=n) * 0.5 + np.where(group == 1, 1e6 + 2.0, 1e6),
    ]).astype(np.float64)  # fmt: skip
    columns = (
        ColumnSpec("flag", "binary", ("no", "yes")),
        ColumnSpec("city", "categorical", ("a", "b", "c")),
        ColumnSpec("visits", "count"),
        ColumnSpec("price", "continuous"),
    )
    return x, DataSpec("table", (4,), columns=columns)


def _labels(n: int = 120, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, n)


# --------------------------------------------------------------------------- fitting
def _fit(name: str, params: dict[str, Any], data: Any, y: Any = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ptheta.make(name, **params).fit(data, y)


def _three_fits(name, params, x, spec, y, tmp_path):
    """The model fitted in memory, from a source read 7 rows at a time, and from a
    memory-mapped .npy file; and the largest read of the 7-row source."""
    in_memory = _fit(name, params, Split(x, y, spec))
    small = _CountingSource(ArraySource(x, y, spec), rows_per_batch=BATCH)
    batched = _fit(name, params, Split(small, y, spec))
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = _fit(name, params, Split(NpySource(path, y=y), y, spec))
    return in_memory, batched, mapped, small.largest_read


def _same(a: Any, b: Any, exact: bool, where: str = "") -> None:
    """Fitted values equal: exactly, or to rtol 1e-10 (floats anywhere in lists/dicts)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], exact, f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _same(u, v, exact, f"{where}[{i}]")
    elif isinstance(a, (float, np.ndarray)) and not exact:
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(b, a, err_msg=where)
    else:
        assert a == b, where


def _state(model) -> dict[str, Any]:
    arrays, meta = model.get_state()
    return {**arrays, **meta}


def _case(kind: str) -> tuple[np.ndarray, DataSpec]:
    if kind == "binary":
        return _binary(), DataSpec("binary", (5,))
    if kind == "categorical":
        return _categorical(), DataSpec("categorical", (4,), 3)
    if kind == "binary-missing":
        return _holes(_binary(), 0.15), DataSpec("binary", (5,))
    if kind == "categorical-missing":
        return _holes(_categorical(), 0.1), DataSpec("categorical", (4,), 3)
    if kind == "continuous":
        return _continuous(offset=1e6), DataSpec("continuous", (4,))
    if kind == "continuous-missing":
        return _holes(_continuous(offset=1e6), 0.1), DataSpec("continuous", (4,))
    if kind == "table-missing":
        x, spec = _table()
        return _holes(x, 0.1), spec
    if kind == "mostly-missing":  # every row misses a value: too few complete rows
        x = _binary().astype(np.float64)
        x[np.arange(len(x)), np.arange(len(x)) % x.shape[1]] = np.nan
        return x, DataSpec("binary", (5,))
    raise AssertionError(kind)


# (family, hyper-parameters, data kind, needs labels, exact: counts only)
CASES = [
    ("independent", {}, "binary", False, True),
    ("independent", {}, "categorical-missing", False, True),
    ("independent", {}, "continuous-missing", False, False),
    ("independent", {}, "table-missing", False, False),
    ("markov", {"order": 2}, "binary", False, True),
    ("markov", {"order": 1, "homogeneous": True}, "categorical", False, True),
    ("markov", {"order": 2}, "continuous", False, False),
    ("markov", {"order": 2, "homogeneous": True}, "continuous", False, False),
    ("naive-bayes", {}, "binary", True, True),
    ("naive-bayes", {}, "categorical", True, True),
    ("naive-bayes", {}, "continuous", True, False),
    ("chow-liu", {}, "binary", False, True),
    ("chow-liu", {"class_conditional": True}, "categorical", True, True),
    ("bayesian-network", {"max_iter": 30}, "binary", False, True),
    ("bayesian-network", {"structure": "chow-liu"}, "categorical", False, True),
    ("bayesian-network", {"em_max_iter": 15}, "binary-missing", False, False),
    ("bayesian-network", {"em_max_iter": 10}, "table-missing", False, False),
    ("bayesian-network", {"em_max_iter": 10}, "mostly-missing", False, False),
    ("bayes-classifier", {}, "binary", True, True),
    ("bayes-classifier", {"density": "markov"}, "continuous", True, False),
]


def _id(case: tuple) -> str:
    name, params, kind, _, _ = case
    extra = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}[{kind}{',' + extra if extra else ''}]"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_a_streamed_fit_gives_the_in_memory_model(case, tmp_path):
    name, params, kind, labelled, exact = case
    x, spec = _case(kind)
    y = _labels(len(x)) if labelled else None
    in_memory, batched, mapped, largest = _three_fits(name, params, x, spec, y, tmp_path)
    assert in_memory.capabilities().streams
    # 7 rows at a time: never more rows at once than a batch (the bayesian network's
    # structure rows are read batch by batch too)
    assert largest <= BATCH
    reference = _state(in_memory)
    for streamed in (batched, mapped):
        _same(reference, _state(streamed), exact, name)
    tol = 1e-12 if exact else 1e-8  # a fitted mean 1e6 from 0 moves scores more
    np.testing.assert_allclose(
        batched.score_samples(x), in_memory.score_samples(x), rtol=tol, atol=tol
    )


# --------------------------------------------------------------------------- brute force
def test_pairwise_counts_summed_over_batches_are_the_brute_force_counts():
    x, k = _categorical(n=100, k=3), 3
    cls = _labels(100)
    stats = accumulate(ArraySource(x), lambda b, c: _pair_sums(b, k, c, 3), y=cls, batch_size=BATCH)
    counts = _counts_from_sums(stats["high"], stats["n"], 4, k)  # (C, D, D, K, K)
    brute = np.zeros_like(counts)
    for row, c in zip(x, cls, strict=True):
        for i in range(4):
            for j in range(4):
                brute[c, i, j, row[i], row[j]] += 1
    np.testing.assert_array_equal(counts, brute)


def test_independent_levels_are_the_brute_force_counts_of_the_observed_cells():
    x, spec = _case("categorical-missing")
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    model = _fit("independent", {"alpha": 0.5}, Split(small, None, spec))
    for i in range(4):
        counts = np.array([np.sum(x[:, i] == a) for a in range(3)]) + 0.5  # NaN: no level
        np.testing.assert_allclose(model.probs_[i], counts / counts.sum(), rtol=1e-15)


def test_independent_moments_lose_no_precision_far_from_the_origin():
    # values 1e9 from 0 with spread 1e-3: plain sums of x and x² would keep no digit of
    # the variance; the sums about a value of the data keep all (exact rational reference)
    rng = np.random.default_rng(7)
    x = 1e9 + 1e-3 * rng.normal(size=(200, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    spec = DataSpec("continuous", (3,))
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    model = _fit("independent", {"min_var": 0.0}, Split(small, None, spec))
    for j in range(3):
        v = [Fraction(float(a)) for a in x[:, j] if not np.isnan(a)]
        mean = sum(v) / len(v)
        var = sum((a - mean) ** 2 for a in v) / len(v)
        assert model.mean_[j] == pytest.approx(float(mean), rel=1e-15)
        assert model.var_[j] == pytest.approx(float(var), rel=1e-12)


def test_a_constant_column_is_found_exactly_over_batches():
    x, spec = _table()
    x[:, 3] = 1e6 + 0.1  # a constant continuous column, read in 7-row batches
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    with pytest.warns(UserWarning, match="constant"):
        model = ptheta.make("independent", min_var=1e-3).fit(Split(small, None, spec))
    assert model.table_var_[3] == 1e-3  # its variance is exactly 0, plus min_var
    # a feature constant within a class: variance exactly 0, an error without smoothing
    z = _continuous(offset=5.0)
    y = (np.arange(len(z)) % 2).astype(np.int64)
    z[y == 1, 2] = 0.1 + 1e6
    cspec = DataSpec("continuous", (4,))
    batches = _CountingSource(ArraySource(z, y, cspec), rows_per_batch=BATCH)
    nb = ptheta.make("naive-bayes", var_smoothing=0.0)
    with pytest.raises(DataError, match="constant in class 1"):
        nb.fit(Split(batches, y, cspec))


def test_naive_bayes_gaussians_are_the_classes_moments():
    x, y = _continuous(offset=1e6), _labels()
    spec = DataSpec("continuous", (4,))
    small = _CountingSource(ArraySource(x, y, spec), rows_per_batch=BATCH)
    model = _fit("naive-bayes", {"var_smoothing": 1e-9}, Split(small, y, spec))
    for c in range(3):
        rows = x[y == c]
        np.testing.assert_allclose(model.theta_[c], rows.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(model.var_[c] - model.epsilon_, rows.var(axis=0), rtol=1e-9)
    assert model.epsilon_ == pytest.approx(1e-9 * x.var(axis=0).max(), rel=1e-9)
    assert model.class_count_.tolist() == np.bincount(y).tolist()


def test_naive_bayes_tables_are_the_brute_force_class_counts():
    x, y = _categorical(n=90), _labels(90)
    spec = DataSpec("categorical", (4,), 3)
    small = _CountingSource(ArraySource(x, y, spec), rows_per_batch=BATCH)
    model = _fit("naive-bayes", {"alpha": 0.5}, Split(small, y, spec))
    for c in range(3):
        for i in range(4):
            counts = np.array([np.sum((y == c) & (x[:, i] == a)) for a in range(3)]) + 0.5
            expected = np.log(counts / counts.sum())
            np.testing.assert_allclose(model.feature_log_prob_[c, i], expected, rtol=1e-14)


def test_markov_autoregression_is_least_squares_far_from_the_origin():
    x = _continuous(n=300, offset=1.7e9)  # timestamps-like values
    spec = DataSpec("continuous", (4,))
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    model = _fit("markov", {"order": 2, "min_var": 0.0}, Split(small, None, spec))
    for t in range(4):
        lags = x[:, max(0, t - 2) : t][:, ::-1]  # x_{t-1}, x_{t-2}
        centred = lags - lags.mean(axis=0)
        w = np.linalg.lstsq(centred, x[:, t] - x[:, t].mean(), rcond=None)[0]
        intercept = x[:, t].mean() - w @ lags.mean(axis=0)
        resid = x[:, t] - intercept - lags @ w
        np.testing.assert_allclose(model.coef_[t, 1 : 1 + len(w)], w, rtol=1e-8, atol=1e-10)
        # the intercept is a difference of numbers ~1e9: the slopes' rounding moves it
        assert model.coef_[t, 0] == pytest.approx(intercept, rel=1e-10)
        assert model.var_[t] == pytest.approx(np.mean(resid**2), rel=1e-6)
    # homogeneous: one regression pooled over the positions 2 and 3
    pooled = _fit(
        "markov", {"order": 2, "homogeneous": True, "min_var": 0.0}, Split(small, None, spec)
    )
    lags = np.concatenate([x[:, [1, 0]], x[:, [2, 1]]])
    target = np.concatenate([x[:, 2], x[:, 3]])
    centred = lags - lags.mean(axis=0)
    w = np.linalg.lstsq(centred, target - target.mean(), rcond=None)[0]
    resid = target - target.mean() - centred @ w
    for t in (2, 3):
        np.testing.assert_allclose(pooled.coef_[t, 1:], w, rtol=1e-8)
        assert pooled.var_[t] == pytest.approx(np.mean(resid**2), rel=1e-6)
    # an exact linear function of its predecessor, found over batches too
    line = 1e6 + np.linspace(0, 1, 40)
    exact = np.column_stack([line, 2 * line + 1])
    espec = DataSpec("continuous", (2,))
    with pytest.raises(DataError, match="min_var"):
        ptheta.make("markov", min_var=0.0).fit(
            Split(_CountingSource(ArraySource(exact, None, espec), BATCH), None, espec)
        )


def test_markov_counts_are_the_brute_force_transitions():
    x = _categorical(n=90)
    spec = DataSpec("categorical", (4,), 3)
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    model = _fit("markov", {"order": 1, "alpha": 0.0}, Split(small, None, spec))
    for t in range(1, 4):
        counts = np.zeros((3, 3))
        np.add.at(counts, (x[:, t - 1], x[:, t]), 1)
        expected = counts / counts.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(model.probs_[t], expected, rtol=1e-15)


def test_bayesian_network_leaves_are_the_moments_of_their_configurations():
    x, spec = _table()  # price ~ 1e6 + 2·flag + noise
    x[np.random.default_rng(8).random(len(x)) < 0.2, 1] = np.nan  # city: not price's family
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    params = {"structure": [["flag", "price"], ["flag", "city"]], "alpha": 0.0}
    model = _fit("bayesian-network", params, Split(small, None, spec))
    leaf = model.cpts()[3]  # (2, 2): [mean, variance] for flag = 0, 1
    for flag in (0, 1):
        v = [Fraction(float(a)) for a in x[x[:, 0] == flag, 3]]
        mean = sum(v) / len(v)
        var = sum((a - mean) ** 2 for a in v) / len(v)
        assert leaf[flag, 0] == pytest.approx(float(mean), rel=1e-15)
        assert leaf[flag, 1] == pytest.approx(float(var), rel=1e-9)


def test_bayesian_network_em_over_batches_never_lowers_its_objective():
    # the leaf's parent is missing in some rows: its E-step weighs the leaf's values by
    # the parent's posterior, batch by batch
    x, spec = _table()
    x[np.random.default_rng(9).random(len(x)) < 0.3, 0] = np.nan
    small = _CountingSource(ArraySource(x, None, spec), rows_per_batch=BATCH)
    params = {"structure": [["flag", "price"], ["flag", "visits"]], "em_max_iter": 30}
    model = _fit("bayesian-network", params, Split(small, None, spec))
    objective = np.array([h["objective"] for h in model.history_])
    assert len(objective) > 3
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[:-1]))
    means = model.cpts()[3][:, 0]  # price's mean given flag: 1e6 and 1e6 + 2
    np.testing.assert_allclose(means - 1e6, [0.0, 2.0], atol=0.3)


def test_bayesian_network_fills_too_few_complete_rows_with_the_most_frequent_level():
    x, spec = _case("mostly-missing")
    model = ptheta.make("bayesian-network", structure="empty")
    model._columns_in = None
    model.columns_, model.kinds_ = [f"x{i}" for i in range(5)], ["discrete"] * 5
    source = ArraySource(x, None, spec)
    rows, _ = model._structure_rows(source, np.full(5, 2), complete_only=False)
    assert rows.dtype == np.uint8  # compact codes, one byte a cell
    missing = np.isnan(x)
    for j in range(5):
        mode = np.bincount(x[~missing[:, j], j].astype(np.int64)).argmax()
        np.testing.assert_array_equal(rows[:, j], np.where(missing[:, j], mode, x[:, j]))


# --------------------------------------------------------------------------- processes
def test_two_shares_of_the_batches_sum_to_the_statistics_of_one(monkeypatch):
    x, k = _categorical(n=100, k=3), 3

    def stats(batch, _):
        return _pair_sums(batch, k, np.zeros(len(batch), np.int64), 1)

    one = accumulate(ArraySource(x), stats, batch_size=BATCH)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(stream, "process_share", lambda rank=rank: (rank, 2))
        shares.append(accumulate(ArraySource(x), stats, batch_size=BATCH, reduce=False))
    # batches 0, 2, …, 14 (the last of 2 rows) and 1, 3, …, 13
    assert shares[0]["n"][0] == 51 and shares[1]["n"][0] == 49
    for key in one:
        np.testing.assert_array_equal(shares[0][key] + shares[1][key], one[key])


TWO_PROCESS_CASES = [c for c in CASES if c[2] not in ("binary",)]


@pytest.mark.parametrize("case", TWO_PROCESS_CASES, ids=[_id(c) for c in TWO_PROCESS_CASES])
def test_two_processes_give_the_model_of_one(case, monkeypatch):
    name, params, kind, labelled, exact = case
    x, spec = _case(kind)
    y = _labels(len(x)) if labelled else None

    def fit():
        small = _CountingSource(ArraySource(x, y, spec), rows_per_batch=BATCH)
        return _fit(name, params, Split(small, y, spec))

    one = fit()
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    first, second = world.run(fit)
    assert world.reductions > 0
    for fitted in (first, second):
        _same(_state(one), _state(fitted), exact, name)
