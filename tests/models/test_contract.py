"""The contract every registered family must pass: one parametrised test over the registry."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from sklearn.base import clone

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, NotFittedError
from ptheta.models import LIKELIHOOD_KINDS, REGISTRY
from ptheta.train.rundir import load_run, save_run


def _data(kind: str, n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Split]:
    """Small data with structure (two clusters) of the given kind, labels, and a Split."""
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
    else:
        x = rng.normal(size=(n, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
        spec = DataSpec("continuous", (2,))
    return x, y, Split(x, y, spec)


CASES = [(name, kind) for name, cls in REGISTRY.items() for kind in cls.data_kinds]


def _fit(name: str, kind: str):
    x, y, split = _data(kind)
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
    assert model.units_ in ("discrete", "continuous")
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
    # arguments after the first are keyword-only
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), name
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
    x, _, _ = _data(REGISTRY[name].data_kinds[0])
    with pytest.raises(NotFittedError, match="not fitted"):
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
        model.score_samples(x[:, :1])
    with pytest.raises(DataError, match="one example"):
        model.score_samples(x[0])
    with pytest.raises(DataError, match="empty"):
        model.score_samples(x[:0])
    bad = x[:4].astype(np.float64)
    bad[0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        model.score_samples(bad)
    if not type(model).can_marginalise:
        bad[0, 0] = np.nan
        with pytest.raises(DataError, match="NaN"):
            model.score_samples(bad)
    if split.spec.is_discrete:
        out_of_range = x[:4].copy()
        out_of_range[0, 0] = split.spec.n_categories
        with pytest.raises(DataError, match="values"):
            model.score_samples(out_of_range)
    with pytest.raises(DataError):
        model.sample(0)


def test_unknown_model_and_parameter_names_suggest():
    with pytest.raises(ptheta.errors.UnknownNameError, match="did you mean 'gmm'"):
        ptheta.make("gmn")
    with pytest.raises(ptheta.errors.UnknownNameError, match="n_components"):
        ptheta.make("gmm", n_component=3)
