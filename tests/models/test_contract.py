"""The contract every registered family must pass: one parametrised test over the registry."""

from __future__ import annotations

import inspect
import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.base import clone

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, NotFittedError
from ptheta.models import LIKELIHOOD_KINDS, REGISTRY
from ptheta.runs.store import load_run, save_run


def _data(
    kind: str, n: int = 240, seed: int = 0, image: bool = False
) -> tuple[np.ndarray, np.ndarray, Split]:
    """Small data with structure (two clusters) of the given kind, labels, and a Split.

    ``image=True`` gives the 6 discrete variables as 1×2×3 images.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    d = 6
    if kind == "binary":
        p = np.where(y[:, None] == 1, 0.8, 0.2) * np.ones(d)
        x = (rng.random((n, d)) < p).astype(np.int64)
        spec = DataSpec("binary", (d,))
    elif kind == "categorical":
        centre = np.where(y[:, None] == 1, 3, 1)
        x = np.clip(centre + rng.integers(-1, 2, size=(n, d)), 0, 4).astype(np.int64)
        spec = DataSpec("categorical", (d,), 5)
    elif kind == "table":  # one column of each type, levels and counts by cluster
        from ptheta.data.table import ColumnSpec

        x = np.stack(
            [
                (rng.random(n) < np.where(y == 1, 0.8, 0.2)).astype(float),
                np.clip(np.where(y == 1, 2, 0) + rng.integers(0, 2, size=n), 0, 2),
                np.clip(np.where(y == 1, 3, 1) + rng.integers(-1, 2, size=n), 0, 3),
                rng.poisson(np.where(y == 1, 4.0, 1.0)).astype(float),
                rng.normal(size=n) * 0.5 + np.where(y == 1, 2.0, -2.0),
            ],
            axis=1,
        ).astype(np.float64)
        columns = (
            ColumnSpec("flag", "binary", ("no", "yes")),
            ColumnSpec("city", "categorical", ("a", "b", "c")),
            ColumnSpec("grade", "ordinal", ("low", "mid", "high", "top")),
            ColumnSpec("visits", "count"),
            ColumnSpec("price", "continuous"),
        )
        spec = DataSpec("table", (5,), columns=columns)
    else:
        x = rng.normal(size=(n, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
        spec = DataSpec("continuous", (2,))
    if image:
        x = x.reshape(n, 1, 2, 3)
        spec = DataSpec(spec.kind, (1, 2, 3), spec.n_categories, image_shape=(1, 2, 3))
    return x, y, Split(x, y, spec)


CASES = [(name, kind) for name, cls in REGISTRY.items() for kind in cls.data_kinds]


def _fit(name: str, kind: str):
    x, y, split = _data(kind, image=REGISTRY[name].needs_image)
    model = ptheta.make(name, **REGISTRY[name].quick_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(split, y if model.needs_labels else None)
    return model, fitted, x, y, split


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_fit_score_sample_contract(name, kind):
    model, fitted, x, _, split = _fit(name, kind)
    assert fitted is model, "fit must return self"
    cls = type(model)
    assert cls.likelihood in LIKELIHOOD_KINDS
    assert model.likelihood_ in LIKELIHOOD_KINDS
    assert model.units_ in (("mixed",) if kind == "table" else ("discrete", "continuous"))
    assert model.fitted_spec == split.spec
    assert model.n_parameters() > 0

    if cls.likelihood != "none":
        s = model.score_samples(x[:17])
        assert s.shape == (17,)
        assert np.all(np.isfinite(s))
        assert model.score(x[:17]) == pytest.approx(s.mean())
        if model.units_ == "discrete":
            assert np.all(s <= 1e-9), "a log-probability (or a bound on one) is never above 0"
    else:
        with pytest.raises(CapabilityError):
            model.score_samples(x[:3])

    samples = model.sample(11, random_state=0)
    assert samples.shape == (11, *split.spec.event_shape)
    if split.spec.is_discrete:
        assert samples.dtype == np.int64
        assert samples.min() >= 0 and samples.max() <= split.spec.n_categories - 1
    else:
        assert samples.dtype == np.float64 and np.all(np.isfinite(samples))
    np.testing.assert_array_equal(samples, model.sample(11, random_state=0))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_sklearn_conventions(name):
    cls = REGISTRY[name]
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    # arguments after the first are keyword-only (neural families also take the shared
    # training arguments through **training)
    allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
    assert all(p.kind in allowed for p in params[1:]), name
    model = ptheta.make(name, **cls.quick_params)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not copy.is_fitted()
    # __init__ only stores its arguments: no fitted attribute exists before fit
    assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
    assert cls.name == name and cls.family and cls.data_kinds


@pytest.mark.parametrize("name", list(REGISTRY))
def test_unfitted_model_raises(name):
    model = ptheta.make(name)
    x, _, _ = _data(REGISTRY[name].data_kinds[0], image=REGISTRY[name].needs_image)
    if model.capabilities().has_likelihood:
        with pytest.raises(NotFittedError, match="not fitted"):
            model.score_samples(x)
    else:  # absent whether fitted or not: a CapabilityError that says why
        with pytest.raises(CapabilityError, match="likelihood"):
            model.score_samples(x)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.sample(3)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_save_load_round_trip(name, kind, tmp_path):
    model, _, x, _, _ = _fit(name, kind)
    save_run(model, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    assert loaded.likelihood_ == model.likelihood_
    if type(model).likelihood != "none":
        np.testing.assert_array_equal(loaded.score_samples(x), model.score_samples(x))
    np.testing.assert_array_equal(loaded.sample(7, random_state=3), model.sample(7, random_state=3))


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_fit_matches_or_beats_independent_baseline(name, kind):
    model, _, x, _, split = _fit(name, kind)
    if model.likelihood_ != "exact":
        pytest.skip("a bound or estimate is not compared with the exact baseline")
    baseline = ptheta.make("independent").fit(split)
    assert model.units_ == baseline.units_
    # the two-cluster data has dependence that any richer family can use
    assert model.score(x) >= baseline.score(x) - 1e-6


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_bad_input_is_a_clear_data_error(name, kind):
    model, _, x, _, split = _fit(name, kind)
    if type(model).likelihood == "none":
        pytest.skip("no score_samples to feed bad input to")
    with pytest.raises(DataError, match="shape"):
        model.score_samples(x.reshape(len(x), -1)[:, :1])
    with pytest.raises(DataError, match="one example"):
        model.score_samples(x[0])
    with pytest.raises(DataError, match="empty"):
        model.score_samples(x[:0])
    bad = x[:4].astype(np.float64)
    flat_bad = bad.reshape(4, -1)  # a view: writes go to bad
    flat_bad[0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        model.score_samples(bad)
    if not type(model).can_marginalise:
        flat_bad[0, 0] = np.nan
        with pytest.raises(DataError, match="NaN"):
            model.score_samples(bad)
    if split.spec.is_discrete:
        out_of_range = x[:4].copy()
        out_of_range.reshape(4, -1)[0, 0] = split.spec.n_categories
        with pytest.raises(DataError, match="values"):
            model.score_samples(out_of_range)
    with pytest.raises(DataError):
        model.sample(0)


def test_unknown_model_and_parameter_names_suggest():
    with pytest.raises(ptheta.errors.UnknownNameError, match="did you mean 'gmm'"):
        ptheta.make("gmn")
    with pytest.raises(ptheta.errors.UnknownNameError, match="n_components"):
        ptheta.make("gmm", n_component=3)


# --------------------------------------------------------------------------- exact discrete maths
def _configs(spec: DataSpec) -> np.ndarray:
    levels = range(spec.n_categories)
    flat = np.array(list(itertools.product(levels, repeat=spec.n_dims)), dtype=np.int64)
    return flat.reshape(-1, *spec.event_shape)


DISCRETE_CASES = [(n, k) for n, k in CASES if k in ("binary", "categorical")]


@pytest.mark.parametrize(("name", "kind"), DISCRETE_CASES)
def test_discrete_probabilities_sum_to_one_over_every_configuration(name, kind):
    model, _, _, _, split = _fit(name, kind)
    if model.likelihood_ == "none" or model.units_ != "discrete":
        pytest.skip("no discrete likelihood")
    scores, stderr = model.score_samples(_configs(split.spec), return_std=True)
    total = np.exp(scores).sum()
    if model.likelihood_ == "exact":
        assert total == pytest.approx(1.0, abs=1e-6)
        assert not stderr.any()
    elif model.likelihood_ == "bound":  # a lower bound on log P sums to at most one
        assert total <= 1.0 + 1e-9
        assert not stderr.any()
    else:  # an estimate (IWAE, AIS, or a Monte-Carlo estimate of a lower bound): at most
        # one, up to its Monte-Carlo error (and the 0.1 an unbiased p(x) estimate may wander)
        se = np.sqrt(((np.exp(scores) * stderr) ** 2).sum())
        assert total <= 1.0 + 0.1 + 3 * se


@pytest.mark.parametrize("name", [n for n, k in CASES if k == "binary"])
def test_sampler_histogram_matches_exact_probabilities(name):
    model, _, _, _, split = _fit(name, "binary")
    if model.likelihood_ != "exact":
        pytest.skip("needs exact probabilities")
    configs = _configs(split.spec)
    probs = np.exp(model.score_samples(configs))
    n = 20_000
    samples = model.sample(n, random_state=1)
    index = samples.reshape(n, -1) @ (2 ** np.arange(split.spec.n_dims)[::-1])  # row of configs
    counts = np.bincount(index, minlength=len(configs))
    expected = probs * n
    keep = expected >= 5  # pool rare cells, as the chi-square approximation needs
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    _, p_value = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert p_value > 1e-4


# --------------------------------------------------------------------------- missing data
MARGINAL_CASES = [(n, k) for n, k in CASES if REGISTRY[n].can_marginalise]


@pytest.mark.parametrize(("name", "kind"), MARGINAL_CASES)
def test_marginal_likelihood_matches_brute_force(name, kind):
    model, _, x, _, split = _fit(name, kind)
    shape = split.spec.event_shape
    rows = x[:5].astype(np.float64).reshape(5, -1)  # flat view of each example

    def score(flat: np.ndarray) -> np.ndarray:
        return model.score_samples(flat.reshape(-1, *shape))

    all_missing = np.full((1, *split.spec.event_shape), np.nan)
    assert model.score_samples(all_missing)[0] == pytest.approx(0.0, abs=1e-9)
    if model.likelihood_ != "exact":
        # the bound on a marginal and the sum of bounds on the completions are two different
        # lower bounds on log P(x_obs); the family's own tests check its bound
        return
    partial = rows.copy()
    if split.spec.is_discrete:
        partial[:, [1, 3]] = np.nan
        levels = range(split.spec.n_categories)
        for i in range(len(rows)):
            filled = np.repeat(rows[i : i + 1], split.spec.n_categories**2, axis=0)
            filled[:, [1, 3]] = list(itertools.product(levels, repeat=2))
            brute = logsumexp(score(filled.astype(np.int64)))
            assert score(partial[i : i + 1])[0] == pytest.approx(brute, abs=1e-8)
    elif split.spec.kind == "table":  # the categorical and ordinal columns summed out
        partial[:, [1, 2]] = np.nan
        levels = [range(len(split.spec.columns[j].levels)) for j in (1, 2)]
        for i in range(len(rows)):
            combos = list(itertools.product(*levels))
            filled = np.repeat(rows[i : i + 1], len(combos), axis=0)
            filled[:, [1, 2]] = combos
            brute = logsumexp(score(filled))
            assert score(partial[i : i + 1])[0] == pytest.approx(brute, abs=1e-8)
    else:
        partial[:, 1] = np.nan
        grid = np.linspace(-12, 12, 4001)
        for i in range(len(rows)):
            filled = np.column_stack([np.full_like(grid, rows[i, 0]), grid])
            integral = np.exp(score(filled)).sum() * (grid[1] - grid[0])
            assert score(partial[i : i + 1])[0] == pytest.approx(np.log(integral), abs=1e-4)


@pytest.mark.parametrize(("name", "kind"), MARGINAL_CASES)
def test_impute_and_conditional_sampling_keep_observed_entries(name, kind):
    model, _, x, _, split = _fit(name, kind)
    partial = x[:6].astype(np.float64)
    flat = partial.reshape(6, -1)  # a view: writes go to partial
    flat[::2, 0] = np.nan
    flat[1::2, -1] = np.nan
    observed = ~np.isnan(partial)
    for method in ("mode", "sample"):
        filled = model.impute(partial, method=method, random_state=0)
        assert filled.shape == partial.shape and not np.isnan(filled).any()
        np.testing.assert_array_equal(filled[observed], partial[observed])
    drawn = model.sample(6, given=partial, random_state=0)
    np.testing.assert_array_equal(drawn[observed], partial[observed])
    one = model.sample(4, given=partial[:1], random_state=0)
    assert one.shape == (4, *split.spec.event_shape)


class _NoMarginals(ptheta.models.Independent):
    """A family that declares it cannot marginalise (the default of the contract)."""

    can_marginalise = False


def test_families_that_cannot_marginalise_say_so():
    x, _, split = _data("binary")
    model = _NoMarginals().fit(split)
    partial = x[:2].astype(np.float64)
    partial[0, 0] = np.nan
    with pytest.raises(DataError, match="cannot marginalise"):
        model.score_samples(partial)
    with pytest.raises(CapabilityError, match="cannot"):
        model.impute(partial)
    with pytest.raises(CapabilityError, match="cannot"):
        model.sample(2, given=partial)


def _caps(name: str, **params):
    return REGISTRY[name](**params).capabilities()


# Every family that is class-conditional by default or can be switched to it (the
# capability, not the class attribute: most families take class_conditional=True).
CONDITIONAL = [n for n in REGISTRY if _caps(n).class_conditional or _caps(n).can_condition]


@pytest.mark.parametrize("name", CONDITIONAL)
def test_class_conditional_sampling(name):
    kind = REGISTRY[name].data_kinds[0]
    x, y, split = _data(kind, image=REGISTRY[name].needs_image)
    params = dict(REGISTRY[name].quick_params)
    if _caps(name).can_condition:
        params["class_conditional"] = True
    model = ptheta.make(name, **params)
    assert model.capabilities().class_conditional
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(split, y)
    label = model.classes_[0]
    assert model.sample(5, y=label, random_state=0).shape == (5, *split.spec.event_shape)
    with pytest.raises(DataError, match="unknown class"):
        model.sample(2, y="no such class")
    if model.capabilities().classifies:  # Bayes' rule: probabilities over the classes
        proba = model.predict_proba(x[:7])
        assert proba.shape == (7, len(model.classes_))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("name", [n for n in REGISTRY if len(REGISTRY[n].data_kinds) > 1])
def test_refitting_on_another_kind_equals_a_fresh_fit(name):
    kinds = REGISTRY[name].data_kinds
    model, _, _, _, _ = _fit(name, kinds[0])
    x, y, split = _data(kinds[-1], image=REGISTRY[name].needs_image)
    fresh = ptheta.make(name, **REGISTRY[name].quick_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(split, y if model.needs_labels else None)
        fresh.fit(split, y if model.needs_labels else None)
    assert sorted(vars(model)) == sorted(vars(fresh))
    assert model.fitted_spec == fresh.fitted_spec and model.units_ == fresh.units_
    if type(model).likelihood != "none":
        np.testing.assert_allclose(model.score_samples(x), fresh.score_samples(x), rtol=1e-9)


# --------------------------------------------------------------------------- capabilities
@pytest.mark.parametrize(("name", "kind"), CASES)
def test_capabilities_say_what_the_fitted_model_does(name, kind):
    """Every capability a model declares is honoured, and the fitted kind is reported."""
    before = ptheta.make(name, **REGISTRY[name].quick_params).capabilities()
    assert before.fitted_likelihood is None and before.units is None
    model, _, x, _, split = _fit(name, kind)
    caps = model.capabilities()
    with pytest.raises(AttributeError):
        caps.likelihood = "exact"  # a frozen record
    assert (caps.fitted_likelihood, caps.units) == (model.likelihood_, model.units_)
    assert caps.likelihood == type(model).likelihood and caps.fits(kind)
    params = model.get_params()
    assert caps.trains_in_steps == ("max_time" in params and "run_dir" in model.fit_params)
    assert caps.progress == ("verbose" in params)
    assert caps.random_state == ("random_state" in params)
    assert caps.can_condition == ("class_conditional" in params)
    if caps.exports_structure:
        assert model.to_dot().startswith("digraph")
        graph = model.structure_graph()
        assert graph["n_nodes"] == split.spec.n_dims
        assert len(graph["edges"]) == len(graph["weights"])
    if caps.embeds:
        assert len(model.embed(x[:5])) == 5
    if caps.anomaly_score == "log_prob":
        assert model.score_samples(x[:5]).shape == (5,)
    elif caps.anomaly_score == "energy":
        assert np.asarray(model.energy(x[:5])).shape == (5,)
    elif caps.anomaly_score == "discriminator":
        assert np.asarray(model.discriminator_score(x[:5])).shape == (5,)
    if caps.generates_sequences:
        assert model.generate(2, random_state=0).shape == (2, *split.spec.event_shape)
    if caps.closed_form:
        form = model.closed_form()
        assert form is None or "probs" in form or "mean" in form
    if caps.imputes:
        partial = np.asarray(x[:4], dtype=np.float64).copy()
        partial.reshape(4, -1)[:, 0] = np.nan
        filled = model.impute(partial)
        observed = ~np.isnan(partial)
        np.testing.assert_array_equal(filled[observed], partial[observed])
        assert not np.isnan(np.asarray(filled, dtype=np.float64)).any()
    if caps.dequantised:
        assert caps.dequantises_discrete and caps.units == "discrete"
