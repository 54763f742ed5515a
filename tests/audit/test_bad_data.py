"""Issue 14 (items 5, 6, 10): overflow-scale and far-from-origin data, memory layout,
degenerate shapes and input kinds, for every registered family where they apply."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import ptheta
from ptheta.data.spec import DataSpec, Split, check_values, infer_spec
from ptheta.errors import CapabilityError, DataError
from ptheta.models import REGISTRY
from ptheta.models.vae import VAE

CONTINUOUS = [name for name, cls in REGISTRY.items() if "continuous" in cls.data_kinds]
# classical continuous families: cheap enough for several fits per test
CLASSICAL = ["independent", "naive-bayes", "gmm", "markov"]


def _kind(name: str) -> str:
    kinds = REGISTRY[name].data_kinds
    return "continuous" if "continuous" in kinds else kinds[0]


def _data(name: str, kind: str | None = None, n: int = 120, seed: int = 0):
    """Two-cluster examples (N, D) of a kind the family accepts, labels (N,), and the spec."""
    kind = kind or _kind(name)
    if kind == "table":  # a family of tables only: one column of each type
        from tests.models.test_contract import _data as table_data

        x, y, split = table_data("table", n=n, seed=seed)
        return x, y, split.spec
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    if kind == "continuous":
        d = 6 if REGISTRY[name].needs_image else 3
        x = rng.normal(size=(n, d)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
        spec = DataSpec("continuous", (d,))
    elif kind == "binary":
        x = (rng.random((n, 6)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(np.int64)
        spec = DataSpec("binary", (6,))
    else:
        x = np.clip(np.where(y[:, None] == 1, 3, 1) + rng.integers(-1, 2, (n, 6)), 0, 4)
        spec = DataSpec("categorical", (6,), 5)
    if REGISTRY[name].needs_image:
        x = x.reshape(n, 1, 2, 3)
        spec = DataSpec(spec.kind, (1, 2, 3), spec.n_categories, image_shape=(1, 2, 3))
    return x, y, spec


def _fit(name: str, x, y=None, **params):
    cls = REGISTRY[name]
    model = ptheta.make(name, **{**cls.quick_params, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x, y if cls.needs_labels else None)


# --------------------------------------------------------------------------- item 5
@pytest.mark.parametrize("name", list(REGISTRY))
def test_overflow_scale_training_data_is_one_clear_data_error(name):
    x, y, _ = _data(name, "continuous")
    with pytest.raises(DataError) as info:
        _fit(name, x * 1e200, y)
    if name in CONTINUOUS:
        assert "rescale" in str(info.value) and "overflow" in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", CLASSICAL)
def test_overflow_scale_input_is_refused_at_score_time_too(name):
    x, y, _ = _data(name)
    model = _fit(name, x, y)
    with pytest.raises(DataError, match="rescale"):
        model.score_samples(x * 1e200)
    with pytest.raises(DataError, match="rescale"):
        model.impute(np.where(np.eye(len(x), 3, dtype=bool), np.nan, x * 1e200))


def test_check_values_refuses_values_whose_squares_overflow():
    spec = DataSpec("continuous", (2,))
    check_values(np.full((3, 2), 1e149), spec)  # still fine
    with pytest.raises(DataError, match=r"1e\+155.*rescale"):
        check_values(np.array([[1.0, -1e155]]), spec)


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize(("shift", "scale"), [(1.7e9, 600.0), (0.0, 1e30), (0.0, 1e140)])
def test_classical_fits_do_not_depend_on_units_or_offset(name, shift, scale):
    # a timestamp-like column (large mean, ordinary spread) and 1e30-scale values are
    # ordinary data: the same model, with log-densities shifted by the Jacobian −D log scale
    x, y, _ = _data(name, n=200)
    base = _fit(name, x, y)
    moved = _fit(name, shift + scale * x, y)
    expected = base.score_samples(x) - x.shape[1] * np.log(scale)
    np.testing.assert_allclose(moved.score_samples(shift + scale * x), expected, rtol=1e-6)
    samples = moved.sample(500, random_state=0)
    assert np.all(np.isfinite(samples))
    z = (samples - shift) / scale
    assert np.all(np.abs(z.mean(0) - x.mean(0)) < 1.0)


def test_markov_keeps_the_misleading_exact_fit_message_for_exact_fits_only():
    rng = np.random.default_rng(0)
    stamps = 1.7e9 + 600 * rng.normal(size=(300, 4))  # timestamps: no linear relation
    model = _fit("markov", stamps)
    assert np.all(np.isfinite(model.score_samples(stamps)))
    line = np.linspace(0, 1, 20)
    with pytest.raises(DataError, match="min_var"):
        ptheta.make("markov", min_var=0.0).fit(1e6 + np.column_stack([line, 2 * line]))


def test_gmm_is_fitted_on_standardised_data_and_says_so():
    x, _, _ = _data("gmm")
    model = _fit("gmm", 1e6 + 10 * x)
    np.testing.assert_allclose(model.shift_, (1e6 + 10 * x).mean(0), rtol=1e-12)
    np.testing.assert_allclose(model.scale_, (10 * x).std(0), rtol=1e-9)
    assert "Standardisation" in type(model).__doc__


@pytest.mark.parametrize("name", CONTINUOUS)
def test_every_continuous_family_fits_data_far_from_the_origin(name):
    x, y, _ = _data(name, "continuous")
    model = _fit(name, 1.7e9 + 600 * x, y)
    if type(model).likelihood != "none":
        assert np.all(np.isfinite(model.score_samples(1.7e9 + 600 * x[:5])))
    samples = model.sample(50, random_state=0)
    assert np.all(np.isfinite(samples))
    assert np.abs(samples.mean() - 1.7e9) < 100 * 600


class _StandardisedVAE(VAE):
    """The registry's VAE with the NeuralModel standardisation switched on."""

    standardize_input: ClassVar[bool] = True


def test_neural_standardisation_keeps_the_density_of_the_original_data():
    x, _, _ = _data("vae", "continuous")
    params = {**REGISTRY["vae"].quick_params, "validation_fraction": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = _StandardisedVAE(**params).fit(x)
        moved = _StandardisedVAE(**params).fit(1e6 + 600 * x)  # "lower lr" before
    np.testing.assert_allclose(moved.input_shift_, 1e6 + 600 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moved.input_scale_, 600 * x.std(0), rtol=1e-9)
    # the module trained on the same standardised data: the same weights
    moved_weights = moved.module.state_dict()
    for key, w in plain.module.state_dict().items():
        np.testing.assert_allclose(moved_weights[key].numpy(), w.numpy(), atol=1e-6, err_msg=key)
    # log-densities of the data differ by the Jacobian −D log 600 (up to the IWAE noise,
    # which is keyed by the raw values)
    jacobian = x.shape[1] * np.log(600)
    gap = plain.score(x) - moved.score(1e6 + 600 * x)
    assert abs(gap - jacobian) < 0.2, (gap, jacobian)
    samples = moved.sample(200, random_state=0)
    np.testing.assert_allclose(
        samples, 1e6 + 600 * plain.sample(200, random_state=0), rtol=0, atol=1e-2
    )


# --------------------------------------------------------------------------- item 6
@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_same_values_in_any_memory_layout_give_the_same_model(name, scale):
    x, y, _ = _data(name, n=200)
    x = scale * x
    layouts = [np.ascontiguousarray(x), np.asfortranarray(x), pd.DataFrame(x)]
    models = [_fit(name, data, y) for data in layouts]
    scores = [m.score_samples(x) for m in models]
    for model, score in zip(models[1:], scores[1:], strict=True):
        np.testing.assert_allclose(score, scores[0], rtol=1e-12)
        for key, value in vars(models[0]).items():
            if key.endswith("_") and isinstance(value, np.ndarray) and value.dtype.kind == "f":
                np.testing.assert_allclose(getattr(model, key), value, rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gmm_at_1e30_scale_is_the_unit_scale_fit_rescaled(covariance_type):
    x, _, _ = _data("gmm", n=300)
    unit = _fit("gmm", x, covariance_type=covariance_type)
    big = _fit("gmm", 1e30 * x, covariance_type=covariance_type)
    np.testing.assert_allclose(big.weights_, unit.weights_, rtol=1e-6)
    np.testing.assert_allclose(big.means_, 1e30 * unit.means_, rtol=1e-6, atol=1e24)
    np.testing.assert_allclose(big.covariances_, 1e60 * unit.covariances_, rtol=1e-6, atol=1e54)


# --------------------------------------------------------------------------- item 10
@pytest.mark.parametrize("name", list(REGISTRY))
def test_zero_features_and_wrong_input_kinds_are_refused_at_fit(name):
    x, y, spec = _data(name)
    cases = {
        "no features": (np.zeros((len(x), 0)), None),
        "complex": (x + 1j, None),
        "sparse": (sp.csr_matrix(x.reshape(len(x), -1)), None),
        "dtype object": (x.astype(object), None),
        "dtype <U": (x.astype(str), None),
    }
    for match, (bad, _) in cases.items():
        with pytest.raises(DataError, match=match) as info:
            _fit(name, bad, y)
        assert "\n" not in str(info.value)
    if spec.kind == "table":  # a table of no column is refused where its spec is made
        with pytest.raises(DataError, match="need columns"):
            DataSpec("table", (0,))
        return
    empty = Split(np.zeros((len(x), 0)), y, DataSpec(spec.kind, (0,), spec.n_categories))
    with pytest.raises(DataError, match="no features"):
        _fit(name, empty, y)


def test_infer_spec_refuses_the_same_inputs():
    with pytest.raises(DataError, match="no features"):
        infer_spec(np.zeros((4, 0)))
    with pytest.raises(DataError, match="complex"):
        infer_spec(np.ones((4, 2)) * 1j)
    with pytest.raises(DataError, match="sparse"):
        infer_spec(sp.eye(3, format="csr"))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_reversed_views_just_work_and_bad_input_is_refused_everywhere(name):
    cls = REGISTRY[name]
    x, y, spec = _data(name)
    model = _fit(name, Split(x[::-1], y[::-1], spec), y[::-1])
    rows = x[::-2]  # a negative-stride view
    flat_bad = {
        "no features|shape": np.zeros((3, 0)),
        "complex": rows[:3] + 1j,
        "sparse": sp.csr_matrix(rows[:3].reshape(3, -1)),
        "dtype object": rows[:3].astype(object),
    }
    if cls.likelihood != "none":
        s = model.score_samples(rows)
        assert s.shape == (len(rows),) and np.all(np.isfinite(s))
        for match, bad in flat_bad.items():
            with pytest.raises(DataError, match=match):
                model.score_samples(bad)
    if hasattr(model, "predict_proba"):
        try:
            proba = model.predict_proba(rows)
        except CapabilityError:
            proba = None
        if proba is not None:
            assert np.all(np.isfinite(proba))
            for match, bad in flat_bad.items():
                with pytest.raises(DataError, match=match):
                    model.predict_proba(bad)
    if cls.can_marginalise:
        partial = rows[:4].astype(np.float64)
        partial.reshape(4, -1)[:, 0] = np.nan
        assert np.all(np.isfinite(model.impute(partial)))
        assert np.all(np.isfinite(model.sample(4, given=partial, random_state=0)))
        for match, bad in flat_bad.items():
            with pytest.raises(DataError, match=match):
                model.impute(bad)
            with pytest.raises(DataError, match=match):
                model.sample(3, given=bad)


def test_a_label_column_is_a_data_error_that_says_ravel():
    x, y, _ = _data("naive-bayes")
    with pytest.raises(DataError, match=r"y\.ravel\(\)"):
        ptheta.make("naive-bayes").fit(x, y[:, None])
