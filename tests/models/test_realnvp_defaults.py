"""realnvp's defaults for a time budget (issue 19): 4 couplings per scale on images and 6
on vectors (``n_layers="auto"``, kept as ``n_layers_``), lr 3e-3 (maf's and glow's too),
q a quarter as wide."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError
from ptheta.models.flows import FLOW_TRAINING, RealNVP
from ptheta.nn.flows import Coupling
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 64, "epochs": 1}


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _couplings(model) -> int:
    return sum(isinstance(m, Coupling) for m in model.module.transform.layers)


def _digits(n: int = 60) -> Split:
    data = ptheta.datasets.load("digits")
    return Split(data.train.x[:n], None, data.spec)  # (64,) drawn as (1, 8, 8)


def test_auto_is_four_couplings_per_scale_on_images_and_six_on_vectors():
    model = RealNVP(8, n_dequant_samples=2, **FAST)
    assert model.n_layers == "auto"
    _fit(model, _digits())
    assert model.n_layers_ == 4 and _couplings(model) == 8  # checkerboard, squeeze, channel
    vectors = _fit(RealNVP(8, **FAST), np.random.default_rng(0).normal(size=(50, 3)))
    assert vectors.n_layers_ == 6 and _couplings(vectors) == 6
    chosen = _fit(RealNVP(8, n_layers=3, n_dequant_samples=2, **FAST), _digits())
    assert chosen.n_layers_ == 3 and _couplings(chosen) == 6
    with pytest.raises(ParameterError, match="n_layers"):
        RealNVP(n_layers="many").fit(_digits())


def test_the_learning_rate_default_is_realnvps_own_and_can_be_set():
    assert RealNVP().lr == FLOW_TRAINING["lr"] == 3e-3
    assert RealNVP(lr=1e-4).lr == 1e-4
    assert ptheta.make("realnvp").get_params()["lr"] == 3e-3
    assert ptheta.make("maf").lr == ptheta.make("glow").lr == ptheta.make("nsf").lr == 3e-3
    assert ptheta.make("vae").lr == 1e-3  # the other families keep the shared default


def test_the_resolved_count_is_in_the_run_and_reloads(tmp_path):
    split = _digits()
    model = _fit(RealNVP(8, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["params"]["n_layers"] == "auto" and config["fitted"]["n_layers_"] == 4
    loaded = load_run(tmp_path)
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))


def test_a_run_saved_before_auto_reloads_with_its_own_layers(tmp_path):
    """A realnvp run of an earlier version: n_layers=6 in its parameters, no n_layers_,
    and q as wide as the flow (its dequantizer_hidden_)."""
    split = _digits()
    old = _fit(RealNVP(8, n_layers=6, n_dequant_samples=2, **FAST), split)
    del old.n_layers_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert _couplings(loaded) == 12
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_build_module_before_fit_follows_the_rule():
    image = RealNVP(8).build_module(DataSpec("binary", (1, 4, 4)))
    vector = RealNVP(8).build_module(DataSpec("continuous", (3,)))
    assert sum(isinstance(m, Coupling) for m in image.transform.layers) == 8
    assert sum(isinstance(m, Coupling) for m in vector.transform.layers) == 6
