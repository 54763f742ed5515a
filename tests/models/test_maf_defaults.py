"""maf's defaults on discrete data (issue 19): one MADE layer over the MADE MoG base and
weight decay against memorising a few thousand images (``n_layers="auto"``,
``weight_decay="auto"``, kept as ``n_layers_`` / ``weight_decay_``); continuous data keep 5
layers over a Gaussian base and no weight decay."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import Split
from ptheta.errors import ParameterError
from ptheta.models.flows import DISCRETE_WEIGHT_DECAY, MAF
from ptheta.nn.flows import MADEAffine
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 64, "epochs": 1, "lr": 1e-2}


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _digits(n: int = 60) -> Split:
    data = ptheta.datasets.load("digits")
    return Split(data.train.x[:n], None, data.spec)


def _mades(model) -> int:
    return sum(isinstance(m, MADEAffine) for m in model.module.transform.layers)


def _continuous() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(80, 3))


def test_auto_is_one_layer_over_the_mog_base_and_five_over_a_gaussian():
    assert MAF().n_layers == "auto" and MAF().weight_decay == "auto"
    discrete = _fit(MAF(8, n_dequant_samples=2, **FAST), _digits())
    assert discrete.base_ == "mog" and discrete.n_layers_ == 1 and _mades(discrete) == 1
    continuous = _fit(MAF(8, **FAST), _continuous())
    assert continuous.base_ == "normal" and continuous.n_layers_ == 5 and _mades(continuous) == 5
    gaussian = _fit(MAF(8, base="normal", n_dequant_samples=2, **FAST), _digits())
    assert gaussian.n_layers_ == 5  # the rule follows the base, not the data
    chosen = _fit(MAF(8, n_layers=3, n_dequant_samples=2, **FAST), _digits())
    assert chosen.n_layers_ == 3 and _mades(chosen) == 3
    with pytest.raises(ParameterError, match="n_layers"):
        MAF(n_layers="many").fit(_digits())


def test_auto_weight_decay_is_on_discrete_data_only_and_reaches_the_trainer():
    discrete = _fit(MAF(8, n_dequant_samples=2, **FAST), _digits())
    assert discrete.weight_decay_ == DISCRETE_WEIGHT_DECAY > 0
    assert discrete.train_config().weight_decay == DISCRETE_WEIGHT_DECAY
    continuous = _fit(MAF(8, **FAST), _continuous())
    assert continuous.weight_decay_ == 0.0 and continuous.train_config().weight_decay == 0.0
    chosen = _fit(MAF(8, weight_decay=0.25, n_dequant_samples=2, **FAST), _digits())
    assert chosen.weight_decay_ == 0.25 and chosen.train_config().weight_decay == 0.25
    assert ptheta.make("realnvp").weight_decay == 0.0  # the other flows keep theirs
    with pytest.raises(ParameterError, match="weight_decay"):
        MAF(weight_decay=-1.0).fit(_digits())


def test_weight_decay_shrinks_the_weights_it_is_given():
    """Same data, seed and steps: the fit with the automatic weight decay ends with smaller
    weights than the one told 0 (the decay reached AdamW, not only the config)."""
    split = _digits(120)
    norms = []
    for decay in ("auto", 0.0):
        model = _fit(
            MAF(8, weight_decay=decay, n_dequant_samples=2, **{**FAST, "epochs": 3}), split
        )
        norms.append(sum(float(p.detach().norm()) for p in model.module.base_net.parameters()))
    assert norms[0] < norms[1]


def test_the_resolved_settings_are_in_the_run_and_an_old_run_keeps_its_layers(tmp_path):
    split = _digits()
    model = _fit(MAF(8, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path / "new")
    fitted = json.loads((tmp_path / "new" / "config.json").read_text())["fitted"]
    assert fitted["n_layers_"] == 1 and fitted["weight_decay_"] == DISCRETE_WEIGHT_DECAY
    loaded = load_run(tmp_path / "new")
    assert _mades(loaded) == 1
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))
    # a run of an earlier version: n_layers an int in its parameters, no n_layers_
    old = _fit(MAF(8, n_layers=2, n_dequant_samples=2, **FAST), split)
    del old.n_layers_, old.weight_decay_
    save_run(old, tmp_path / "old")
    reloaded = load_run(tmp_path / "old")
    assert _mades(reloaded) == 2
    np.testing.assert_array_equal(reloaded.score_samples(split.x), old.score_samples(split.x))
