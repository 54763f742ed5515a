"""Flows' dequantisation default (issue 19): ``"auto"`` is variational on discrete data and
nothing on continuous data, recorded on the fitted model and in the run's config."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models.flows import MAF, Glow, RealNVP
from ptheta.models.nsf import NSF
from ptheta.nn.dequantize import UniformDequantizer, VariationalDequantizer
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 64, "lr": 1e-2, "epochs": 1}


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _digits(n: int = 80) -> Split:
    data = ptheta.datasets.load("digits")
    return Split(data.train.x[:n], None, data.spec)  # 17 levels, (64,) drawn as (1, 8, 8)


def _q_width(dequantizer: VariationalDequantizer) -> int:
    """The hidden width of q(u | x)'s first coupling network."""
    first = next(
        m for m in dequantizer.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
    )
    return first.out_features if isinstance(first, torch.nn.Linear) else first.out_channels


@pytest.mark.parametrize("cls", [RealNVP, MAF, Glow, NSF])
def test_auto_is_the_default_and_picks_variational_on_discrete_data(cls):
    assert cls().dequantization == "auto"
    model = _fit(cls(8, n_dequant_samples=2, **FAST), _digits())
    assert model.dequantization_ == "variational"
    assert isinstance(model.module.dequantizer, VariationalDequantizer)
    assert _q_width(model.module.dequantizer) == model.dequantizer_hidden_ == 8
    # the score is a Monte-Carlo estimate of the dequantisation bound, with its error
    assert model.likelihood_ == "estimate" and model.units_ == "discrete"
    scores, std = model.score_samples(_digits(5).x, return_std=True)
    assert np.all(np.isfinite(scores)) and np.all(std > 0)


def test_auto_is_the_same_computation_as_explicit_variational():
    split = _digits()
    auto = _fit(RealNVP(8, n_layers=2, n_dequant_samples=2, **FAST), split)
    explicit = _fit(
        RealNVP(8, n_layers=2, dequantization="variational", n_dequant_samples=2, **FAST), split
    )
    np.testing.assert_array_equal(auto.score_samples(split.x), explicit.score_samples(split.x))


@pytest.mark.parametrize("cls", [RealNVP, MAF])
def test_continuous_data_are_not_dequantised_whatever_the_choice(cls):
    x = np.random.default_rng(0).normal(size=(60, 2))
    for choice in ("auto", "uniform", "variational"):
        model = _fit(cls(8, n_layers=2, dequantization=choice, **FAST), x)
        assert model.dequantization_ == "none" and model.module.dequantizer is None
        assert model.likelihood_ == "exact" and not hasattr(model, "dequantizer_hidden_")


def test_uniform_stays_available():
    model = _fit(RealNVP(8, n_layers=2, dequantization="uniform", **FAST), _digits())
    assert model.dequantization_ == "uniform"
    assert isinstance(model.module.dequantizer, UniformDequantizer)
    assert not any(p.requires_grad for p in model.module.dequantizer.parameters())
    assert model.likelihood_ == "estimate"


def test_glow_and_realnvp_q_is_a_quarter_of_their_width():
    # Glow's couplings run on squeezed images; a q as wide at full resolution would cost
    # several times the flow (bench/flow_defaults.py); realnvp's full-resolution couplings
    # cost as much as q's, and under a time budget steps count
    model = _fit(Glow(64, n_steps=1, n_levels=1, n_dequant_samples=2, **FAST), _digits(40))
    assert model.dequantizer_hidden_ == 16 == _q_width(model.module.dequantizer)
    assert _q_width(RealNVP(64).build_module(_digits().spec).dequantizer) == 16
    assert _q_width(MAF(64).build_module(_digits().spec).dequantizer) == 64
    vectors = DataSpec("categorical", (2,), 3)  # q on vectors is as wide as the flow
    assert _q_width(RealNVP(64).build_module(vectors).dequantizer) == 64


def test_the_choice_is_in_the_run_config_and_reloads(tmp_path):
    split = _digits()
    model = _fit(Glow(16, n_steps=1, n_levels=1, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["params"]["dequantization"] == "auto"
    assert config["fitted"]["dequantization_"] == "variational"
    assert config["fitted"]["dequantizer_hidden_"] == 8
    loaded = load_run(tmp_path)
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))


def test_a_run_saved_before_auto_reloads_with_its_own_q(tmp_path, monkeypatch):
    """A glow run of an earlier version: dequantization="variational" and q as wide as the
    flow, no dequantization_ / dequantizer_hidden_ recorded."""
    split = _digits()
    with monkeypatch.context() as patch:
        patch.setattr(Glow, "dequantizer_width", 1.0)  # the earlier q
        old = Glow(16, n_steps=1, n_levels=1, dequantization="variational", **FAST)
        _fit(old, split)
    assert old.dequantizer_hidden_ == 16
    del old.dequantization_, old.dequantizer_hidden_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert _q_width(loaded.module.dequantizer) == 16
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_build_module_before_fit_follows_the_rule():
    spec = DataSpec("binary", (1, 4, 4))
    assert isinstance(RealNVP(8).build_module(spec).dequantizer, VariationalDequantizer)
    assert isinstance(
        RealNVP(8, dequantization="uniform").build_module(spec).dequantizer, UniformDequantizer
    )
    assert RealNVP(8).build_module(DataSpec("continuous", (3,))).dequantizer is None
