"""table-ar: the autoregressive neural model of tables (ptheta/models/table_ar.py and its
heads, ptheta/nn/table_heads.py).

Every check holds only if the maths is right: the probabilities of every configuration of
an all-discrete table sum to 1 (also of the observed cells, for a fixed pattern of missing
cells), a continuous column's density integrates to 1 on a grid in the user's units
(bounded columns through their transform's Jacobian), the heads equal scipy's
distributions, the network's head parameters do not depend on the column itself or on any
later column (autograd), the missing indicators change nothing on complete rows, samples
follow the exact probabilities, and a fit on a table with dependence beats `independent`
on held-out rows.
"""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import expit, logsumexp

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import NpySource
from ptheta.data.table import ColumnSpec, decode
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.table_ar import TableAR, TableARNetwork
from ptheta.nn.table_heads import (
    CumulativeLogitHead,
    GaussianMixtureHead,
    NegativeBinomialMixtureHead,
    sample_gamma,
)

QUICK = {**TableAR.quick_params, "epochs": 8}

DISCRETE = (
    ColumnSpec("A", "binary", ("no", "yes")),
    ColumnSpec("G", "ordinal", ("low", "mid", "high", "top")),
    ColumnSpec("C", "categorical", ("x", "y", "z")),
    ColumnSpec("N", "count"),
)
DISCRETE_SPEC = DataSpec("table", (4,), columns=DISCRETE)


def _discrete_rows(n: int, seed: int = 0) -> np.ndarray:
    """A → G → C, and a count N whose rate follows G: dependence to learn."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.6).astype(float)
    g = np.clip(np.round(1 + 1.2 * a + rng.normal(0, 0.7, n)), 0, 3)
    c = np.where(rng.random(n) < 0.7, g % 3, rng.integers(0, 3, n)).astype(float)
    k = rng.poisson(0.5 + 0.8 * g).astype(float)
    return np.stack([a, g, c, k], axis=1)


def _fit(x: np.ndarray, spec: DataSpec, **params) -> TableAR:
    model = TableAR(**{**QUICK, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(Split(x, None, spec))


@pytest.fixture(scope="module")
def discrete_model() -> TableAR:
    return _fit(_discrete_rows(400), DISCRETE_SPEC, ordinal="cumulative")


def _all_rows(levels: list[int], count_max: int) -> np.ndarray:
    """Every configuration of label columns with these level counts, then counts 0..max."""
    grids = [range(k) for k in levels] + [range(count_max + 1)]
    return np.array(list(itertools.product(*grids)), dtype=np.float64)


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("ordinal", ["softmax", "cumulative"])
def test_probabilities_of_every_configuration_sum_to_one(ordinal, discrete_model):
    model = discrete_model if ordinal == "cumulative" else _fit(_discrete_rows(400), DISCRETE_SPEC)
    rows = _all_rows([2, 4, 3], 150)  # counts beyond 150 carry < 1e-12 here
    log_p = model.score_samples(rows)
    assert abs(np.exp(logsumexp(log_p)) - 1) < 1e-9
    tail = log_p.reshape(2 * 4 * 3, 151)[:, -1]
    assert tail.max() < np.log(1e-15)
    # one pattern of missing cells: a distribution over the observed cells
    for j in (1, 2):  # G missing, then C missing: columns after them see the indicator
        partial = np.unique(np.delete(rows, j, axis=1), axis=0)
        partial = np.insert(partial, j, np.nan, axis=1)
        total = np.exp(logsumexp(model.observed_log_prob(partial)))
        assert abs(total - 1) < 1e-9


CONTINUOUS_CASES = {
    "unbounded": ColumnSpec("X", "continuous"),
    "lower": ColumnSpec("X", "continuous", lower=0.0),
    "upper": ColumnSpec("X", "continuous", upper=5.0),
    "both": ColumnSpec("X", "continuous", lower=0.0, upper=10.0),
}


def _mixed_rows(n: int, column: ColumnSpec, seed: int = 0) -> np.ndarray:
    """A (binary), X (continuous, within the column's bounds) by A, C (categorical) by X."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.4).astype(float)
    u = rng.normal(0.5 + a, 0.6, n)
    if column.lower is not None and column.upper is not None:
        x = column.lower + (column.upper - column.lower) * expit(u)
    elif column.lower is not None:
        x = column.lower + np.exp(u)
    elif column.upper is not None:
        x = column.upper - np.exp(u)
    else:
        x = 3 * u
    c = np.digitize(u + rng.normal(0, 0.5, n), [0.2, 1.2]).astype(float)
    return np.stack([a, x, c], axis=1)


def _grid(column: ColumnSpec, model: TableAR) -> np.ndarray:
    """Points of X in the user's units covering ±15 standard deviations of t(X): dense
    where the density lives, and close to each bound."""
    t = model.column_shift_[1] + model.column_scale_[1] * np.linspace(-15, 15, 30_001)
    lo, hi = column.lower, column.upper
    if lo is not None and hi is not None:
        return lo + (hi - lo) * expit(t)
    if lo is not None:
        return lo + np.exp(t)
    if hi is not None:
        return np.sort(hi - np.exp(t))
    return t


@pytest.mark.parametrize("bounds", list(CONTINUOUS_CASES))
def test_a_continuous_density_integrates_to_one_in_the_users_units(bounds):
    column = CONTINUOUS_CASES[bounds]
    columns = (DISCRETE[0], column, DISCRETE[2])
    spec = DataSpec("table", (3,), columns=columns)
    model = _fit(_mixed_rows(400, column), spec, n_components=3)
    assert model.units_ == "mixed"
    grid = _grid(column, model)
    for a in (0.0, 1.0):
        # Σ_c ∫ p(a, x, c) dx over a grid of x: trapezoids in x itself (an independent check
        # of the Jacobian that makes the score a density of x, not of the transformed z)
        per_c = []
        for c in range(3):
            rows = np.column_stack([np.full(len(grid), a), grid, np.full(len(grid), c)])
            per_c.append(np.trapezoid(np.exp(model.score_samples(rows)), grid))
        p_a = np.exp(model.observed_log_prob(np.array([[a, np.nan, np.nan]]))[0])
        assert sum(per_c) / p_a == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- the heads
def test_heads_equal_the_closed_forms():
    rng = np.random.default_rng(1)
    # a one-component negative binomial is scipy's nbinom(n=r, p=r/(r+μ))
    head = NegativeBinomialMixtureHead(1, log_mean=np.log(3.0)).double()
    params = torch.tensor(rng.normal(size=(5, 3)))
    k = torch.tensor([0.0, 1.0, 4.0, 11.0, 30.0], dtype=torch.float64)
    _, log_mu, log_r = (t[:, 0].numpy() for t in head.components(params))
    mu, r = np.exp(log_mu), np.exp(log_r)
    expected = stats.nbinom.logpmf(k.numpy(), r, r / (r + mu))
    np.testing.assert_allclose(head.log_prob(params, k).numpy(), expected, rtol=1e-10)
    # a Gaussian mixture equals the weighted sum of scipy's normal densities
    gauss = GaussianMixtureHead(3, min_scale=1e-3).double()
    params = torch.tensor(rng.normal(size=(4, 9)))
    z = torch.tensor(rng.normal(size=4))
    log_w, means, scales = (t.detach().numpy() for t in gauss.components(params))
    mixture = np.exp(log_w) * stats.norm.pdf(z.numpy()[:, None], means, scales)
    np.testing.assert_allclose(
        gauss.log_prob(params, z).detach().numpy(), np.log(mixture.sum(1)), rtol=1e-12
    )
    # the cumulative logit: P(x <= k) = σ(θ_k − η) at every threshold
    ordinal = CumulativeLogitHead(5).double()
    with torch.no_grad():
        ordinal.gaps.copy_(torch.tensor([0.3, -1.0, 2.0]))
    eta = torch.tensor([[-4.0], [0.0], [1.5], [9.0]], dtype=torch.float64)
    cdf = ordinal.log_probs(eta).exp().cumsum(-1).detach().numpy()
    theta = ordinal.thresholds().detach().numpy()
    np.testing.assert_allclose(cdf[:, :-1], expit(theta[None, :] - eta.numpy()), atol=1e-14)
    np.testing.assert_allclose(cdf[:, -1], 1.0, atol=1e-14)
    assert np.all(np.diff(theta) > 0)


def _chi_square_p(draws: np.ndarray, probs: np.ndarray) -> float:
    """p-value of draws (integer outcomes 0..K−1) against probabilities (K,), outcomes of
    expected count below 5 pooled."""
    observed = np.bincount(draws.astype(np.int64), minlength=len(probs))[: len(probs)]
    expected = probs * len(draws)
    keep = expected >= 5
    if not keep.all():
        observed = np.append(observed[keep], len(draws) - observed[keep].sum())
        expected = np.append(expected[keep], len(draws) - expected[keep].sum())
    return float(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)


def test_head_samples_follow_their_probabilities():
    g = torch.Generator().manual_seed(0)
    n = 20000
    head = NegativeBinomialMixtureHead(2, log_mean=np.log(4.0)).double()
    params = torch.tensor([[0.3, -0.3, -1.0, 0.8, -2.0, 3.0]], dtype=torch.float64).expand(n, -1)
    draws = head.sample(params, generator=g).numpy()
    assert np.all(draws >= 0) and np.all(draws == np.round(draws))
    ks = torch.arange(200, dtype=torch.float64)
    pmf = head.log_prob(params[:1].expand(200, -1), ks).exp().numpy()
    assert _chi_square_p(draws, pmf) > 1e-3
    gauss = GaussianMixtureHead(2).double()
    params = torch.tensor([[1.0, 0.0, -1.5, 1.0, -1.0, 0.5]], dtype=torch.float64).expand(n, -1)
    z = gauss.sample(params, generator=g).numpy()
    log_w, means, scales = (t[0].numpy() for t in gauss.components(params[:1]))
    cdf = lambda v: np.exp(log_w) @ stats.norm.cdf(v, means, scales)  # noqa: E731
    assert stats.kstest(z, np.vectorize(cdf)).pvalue > 1e-3
    shape = torch.tensor([0.3, 1.0, 7.5], dtype=torch.float64).repeat_interleave(n // 2)
    gamma = sample_gamma(shape, g).reshape(3, -1).numpy()
    for s, row in zip([0.3, 1.0, 7.5], gamma, strict=True):
        assert stats.kstest(row, stats.gamma(s).cdf).pvalue > 1e-3


# --------------------------------------------------------------------------- autoregressive
def _units_of_columns(net: TableARNetwork) -> list[np.ndarray]:
    """The input units of each column (its encoding and its missing indicator)."""
    ends = net.indicator_unit.numpy() + 1
    starts = np.concatenate([[0], ends[:-1]])
    return [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]


def test_each_columns_parameters_depend_only_on_earlier_columns():
    columns = (
        *DISCRETE,
        ColumnSpec("X", "continuous", lower=0.0),
        ColumnSpec("B", "binary", ("0", "1")),
    )
    torch.manual_seed(0)
    net = TableARNetwork(columns, [12, 10], n_components=2, ordinal="cumulative").double()
    units = _units_of_columns(net)
    inputs = torch.randn(3, int(units[-1][-1]) + 1, dtype=torch.float64)
    for j in range(len(columns)):
        jac = torch.autograd.functional.jacobian(lambda u, j=j: net.params(u)[j], inputs)
        jac = jac.abs().sum(dim=(0, 1, 2))  # (I,): total dependence on each input unit
        later = np.concatenate(units[j:])
        assert float(jac[later].sum()) == 0.0, f"column {j} sees itself or a later column"
        if j > 0:  # and it does see the columns before it (the check can fail)
            assert all(float(jac[units[k]].sum()) > 0 for k in range(j))
    # values: changing a later cell leaves an earlier column's conditional as it was
    x = torch.tensor([[1.0, 2.0, 0.0, 3.0, 0.7, 1.0]], dtype=torch.float64)
    changed = x.clone()
    changed[0, 3:] = torch.tensor([9.0, -1.0, 0.0])
    before, after = net.log_conditionals(x), net.log_conditionals(changed)
    torch.testing.assert_close(before[:, :3], after[:, :3], rtol=0, atol=0)
    assert not torch.allclose(before[:, 4:], after[:, 4:])


# --------------------------------------------------------------------------- missing cells
def _indicator_weights(net: TableARNetwork) -> list[torch.Tensor]:
    """The weight columns of the first layer and the direct connection read from the
    missing indicators."""
    return [layer.weight[:, net.indicator_unit] for layer in (net.layers[0], net.direct)]


def test_a_missing_cell_enters_as_zeros_and_its_indicator(discrete_model):
    net = discrete_model.module
    units = _units_of_columns(net)
    row = torch.tensor([[1.0, np.nan, 2.0, np.nan], [0.0, 3.0, np.nan, 4.0]], dtype=torch.float64)
    inputs = net.encode(row).numpy()
    np.testing.assert_array_equal(inputs[0, units[1]], [0, 0, 0, 0, 1])  # G: 4 levels + indicator
    np.testing.assert_array_equal(inputs[1, units[1]], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(inputs[0, units[2]], [0, 0, 1, 0])  # C: 3 levels + indicator
    np.testing.assert_array_equal(inputs[1, units[2]], [0, 0, 0, 1])
    np.testing.assert_array_equal(inputs[0, units[3]], [0, 1])  # N: its feature + indicator
    scaled = (np.log1p(4.0) - discrete_model.column_shift_[3]) / discrete_model.column_scale_[3]
    np.testing.assert_allclose(inputs[1, units[3]], [scaled, 0], rtol=1e-12)


def test_missing_indicators_change_nothing_on_complete_rows(discrete_model):
    rows = _discrete_rows(50, seed=3)
    complete = discrete_model.score_samples(rows)
    holes = rows.copy()
    holes[::2, 1] = np.nan
    partial = discrete_model.observed_log_prob(holes)
    net = discrete_model.module
    saved = [w.clone() for w in _indicator_weights(net)]
    try:
        with torch.no_grad():
            for layer in (net.layers[0], net.direct):
                layer.weight[:, net.indicator_unit] += torch.randn(len(layer.weight), 4).double()
        np.testing.assert_array_equal(discrete_model.score_samples(rows), complete)
        moved = discrete_model.observed_log_prob(holes)
        assert np.all(moved[::2] != partial[::2]) and np.all(moved[1::2] == partial[1::2])
    finally:
        with torch.no_grad():
            for layer, w in zip((net.layers[0], net.direct), saved, strict=True):
                layer.weight[:, net.indicator_unit] = w


def test_a_missing_cell_drops_its_term_and_only_later_columns_see_it(discrete_model):
    rows = _discrete_rows(30, seed=4)
    full = discrete_model.log_conditionals(rows)
    np.testing.assert_allclose(full.sum(1), discrete_model.score_samples(rows), rtol=1e-12)
    # the last column missing: the sum of the other columns' terms of the complete row
    last = rows.copy()
    last[:, 3] = np.nan
    np.testing.assert_allclose(
        discrete_model.observed_log_prob(last), full[:, :3].sum(1), rtol=1e-12
    )
    # a middle column missing: its term is 0, earlier terms are unchanged, later ones
    # condition on "G is missing" instead of its value
    middle = rows.copy()
    middle[:, 1] = np.nan
    terms = discrete_model.log_conditionals(middle)
    assert np.all(terms[:, 1] == 0)
    np.testing.assert_allclose(terms[:, 0], full[:, 0], rtol=1e-12)
    assert not np.allclose(terms[:, 2:], full[:, 2:])
    np.testing.assert_allclose(
        discrete_model.observed_log_prob(middle), np.delete(terms, 1, axis=1).sum(1), rtol=1e-12
    )


def test_fit_takes_missing_cells_but_score_samples_does_not_marginalise():
    rng = np.random.default_rng(5)
    column = CONTINUOUS_CASES["lower"]
    spec = DataSpec("table", (3,), columns=(DISCRETE[0], column, DISCRETE[2]))
    x = _mixed_rows(300, column)
    holes = np.where(rng.random(x.shape) < 0.15, np.nan, x)
    val = Split(holes[:40], None, spec)  # validation rows with missing cells, too
    model = TableAR(**QUICK).fit(Split(holes[40:], None, spec), validation_data=val)
    caps = model.capabilities()
    assert caps.fits_missing and not caps.marginalises and not caps.imputes
    assert np.all(np.isfinite(model.observed_log_prob(holes)))
    with pytest.raises(DataError, match="cannot marginalise"):
        model.score_samples(holes)
    with pytest.raises(CapabilityError, match="cannot"):
        model.impute(holes)


# --------------------------------------------------------------------------- sampling
def test_samples_follow_the_exact_probabilities(discrete_model):
    draws = discrete_model.sample(20000, random_state=0)
    assert draws.dtype == np.float64 and np.all(draws == np.round(draws))
    assert np.all(draws >= 0) and np.all(draws[:, :3].max(0) <= [1, 3, 2])
    # the label configurations against their exact probabilities (N, the last, summed out)
    labels = _all_rows([2, 4, 3], 0)
    labels[:, 3] = np.nan
    probs = np.exp(discrete_model.observed_log_prob(labels))
    code = (draws[:, 0] * 4 + draws[:, 1]) * 3 + draws[:, 2]
    assert _chi_square_p(code, probs) > 1e-3
    # and the count's mean against the exact one
    rows = _all_rows([2, 4, 3], 150)
    p = np.exp(discrete_model.score_samples(rows))
    mean, var = p @ rows[:, 3], p @ rows[:, 3] ** 2 - (p @ rows[:, 3]) ** 2
    assert abs(draws[:, 3].mean() - mean) < 4 * np.sqrt(var / len(draws))


def test_samples_stay_within_bounds_and_decode_to_labels():
    column = CONTINUOUS_CASES["both"]
    columns = (DISCRETE[0], column, DISCRETE[3])
    spec = DataSpec("table", (3,), columns=columns)
    rng = np.random.default_rng(2)
    x = _mixed_rows(300, column)
    x[:, 2] = rng.poisson(3, len(x))
    model = _fit(x, spec)
    draws = model.sample(500, random_state=1)
    assert np.all((draws[:, 1] >= 0) & (draws[:, 1] <= 10))
    assert np.all(draws[:, 2] >= 0) and np.all(draws[:, 2] == np.round(draws[:, 2]))
    frame = decode(draws, columns)
    assert set(frame["A"]) <= {"no", "yes"} and frame["N"].dtype == "Int64"
    np.testing.assert_array_equal(draws, model.sample(500, random_state=1))


# --------------------------------------------------------------------------- fitting
def _structured(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.5).astype(float)
    b = np.where(rng.random(n) < 0.8, a * 2, rng.integers(0, 3, n)).astype(float)
    k = rng.poisson(np.array([0.5, 3.0, 8.0])[b.astype(int)]).astype(float)
    v = rng.normal(2 * a - 1 + 0.3 * k, 0.4)
    return np.stack([a, b, k, v], axis=1)


def test_a_fit_on_a_table_with_structure_beats_independent_on_held_out_rows():
    columns = (DISCRETE[0], ColumnSpec("B", "categorical", ("p", "q", "r")),
               DISCRETE[3], ColumnSpec("V", "continuous"))  # fmt: skip
    spec = DataSpec("table", (4,), columns=columns)
    train, test = _structured(1500, 0), _structured(500, 1)
    model = _fit(train, spec, hidden=[32], epochs=15, lr=0.01)
    baseline = ptheta.make("independent").fit(Split(train, None, spec))
    gain = model.score(test) - baseline.score(test)
    assert gain > 1.0, gain  # the dependence is worth about 2 nats per row here


def test_a_memory_mapped_table_trains_as_the_array(tmp_path):
    x = _discrete_rows(200, seed=6)
    x[::7, 1] = np.nan
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = NpySource(path)
    source.spec = DISCRETE_SPEC
    in_memory = _fit(x, DISCRETE_SPEC, epochs=3)
    streamed = _fit(source, DISCRETE_SPEC, epochs=3)
    assert in_memory.capabilities().streams
    np.testing.assert_allclose(streamed.column_shift_, in_memory.column_shift_, rtol=1e-12)
    np.testing.assert_allclose(
        streamed.observed_log_prob(x), in_memory.observed_log_prob(x), rtol=1e-9
    )


def test_values_at_a_log_transformed_bound_are_refused_at_fit_and_score_minus_inf():
    column = CONTINUOUS_CASES["lower"]
    spec = DataSpec("table", (3,), columns=(DISCRETE[0], column, DISCRETE[2]))
    x = _mixed_rows(200, column)
    at_bound = x.copy()
    at_bound[[0, 3], 1] = 0.0  # the first row too: the shift of the moments
    with pytest.raises(DataError, match=r"'X'.*2 value\(s\) at its bound 0"):
        _fit(at_bound, spec)
    model = _fit(x, spec, epochs=2)
    scores = model.score_samples(at_bound[:5])
    assert np.all(scores[[0, 3]] == -np.inf) and np.all(np.isfinite(scores[[1, 2, 4]]))


def test_bad_data_and_hyper_parameters_are_clear_errors():
    with pytest.raises(DataError, match="table"):
        TableAR(**QUICK).fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ParameterError, match=r"^table-ar: ordinal must be"):
        TableAR(ordinal="logit").fit(Split(_discrete_rows(20), None, DISCRETE_SPEC))
    with pytest.raises(ParameterError, match=r"^table-ar: n_components must be"):
        TableAR(n_components=0).fit(Split(_discrete_rows(20), None, DISCRETE_SPEC))
    empty = _discrete_rows(20)
    empty[:, 2] = np.nan
    with pytest.raises(DataError, match="'C' of the training data has no observed cell"):
        _fit(empty, DISCRETE_SPEC)


def test_the_state_round_trips_and_low_precision_training_scores_in_full(discrete_model):
    rows = _discrete_rows(20, seed=8)
    arrays, meta = discrete_model.get_state()
    loaded = TableAR(**discrete_model.get_params()).set_state(arrays, meta)
    np.testing.assert_array_equal(loaded.score_samples(rows), discrete_model.score_samples(rows))
    np.testing.assert_array_equal(
        loaded.sample(9, random_state=2), discrete_model.sample(9, random_state=2)
    )
    bf16 = _fit(_discrete_rows(200), DISCRETE_SPEC, dtype="bfloat16", epochs=1)
    assert np.all(np.isfinite(bf16.score_samples(rows)))
    assert bf16.module.layers[0].weight.dtype == torch.float32


def test_module_log_prob_and_sample_follow_the_shape_conventions(discrete_model):
    net = discrete_model.module
    x = torch.as_tensor(_discrete_rows(6, seed=9))
    flat = net.log_prob(x)
    torch.testing.assert_close(net.log_prob(x.reshape(2, 3, 4)), flat.reshape(2, 3))
    assert net.log_prob(x[0]).shape == ()
    assert net.sample((2, 5), generator=torch.Generator().manual_seed(0)).shape == (2, 5, 4)
    assert net.sample(0).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        net.log_prob(x[:, :3])


# --------------------------------------------------------------------------- ptheta synth
@pytest.fixture
def registered():
    """table-ar in the registry for the CLI (until its registry line is added)."""
    import ptheta.models

    added = "table-ar" not in ptheta.models.REGISTRY
    if added:
        ptheta.models.register("table-ar", "ptheta.models.table_ar:TableAR")
    yield
    if added:
        del ptheta.models.REGISTRY["table-ar"]


def test_synth_writes_rows_with_the_tables_labels(registered, tmp_path):
    from tests.cli.clirun import run

    rng = np.random.default_rng(0)
    n = 150
    colour = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame({
        "colour": colour,
        "size": np.round(rng.normal(size=n) + (colour == "red"), 3),
        "legs": rng.poisson(2, n),
        "ok": np.where(rng.random(n) < 0.3, "yes", "no"),
    })  # fmt: skip
    frame.loc[::10, "size"] = np.nan
    path = tmp_path / "pets.csv"
    frame.to_csv(path, index=False)
    out, report = tmp_path / "synth.csv", tmp_path / "report.json"
    run("synth", str(path), "--model", "table-ar", "--set", "hidden=[16]", "--set", "epochs=3",
        "-n", "60", "--out", str(out), "--report", str(report), "--quiet")  # fmt: skip
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["colour", "size", "legs", "ok"] and len(rows) == 60
    assert set(rows["colour"]) <= {"red", "green", "blue"} and set(rows["ok"]) <= {"yes", "no"}
    assert rows["legs"].dtype.kind == "i" and (rows["legs"] >= 0).all()
    content = json.loads(report.read_text())
    assert content["likelihood"]["likelihood"] == "exact"
    assert content["likelihood"]["units"] == "mixed"
