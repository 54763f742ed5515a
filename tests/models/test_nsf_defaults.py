"""nsf's defaults on discrete data (issue 19): maf's MADE MoG base, one spline layer over it,
no LU mixing and weight decay (``base``, ``n_layers``, ``mixing``, ``weight_decay`` all
``"auto"``, kept as ``base_`` / ``n_layers_`` / ``mixing_`` / ``weight_decay_``); continuous
data keep the paper's 5 layers with LU mixing over a Gaussian base and no weight decay."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import Split
from ptheta.errors import ParameterError
from ptheta.models.flows import DISCRETE_WEIGHT_DECAY
from ptheta.models.nsf import NSF
from ptheta.nn.flows import InvConv1x1
from ptheta.nn.splines import SplineCoupling
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 64, "epochs": 1, "lr": 1e-2}


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _digits(n: int = 60) -> Split:
    data = ptheta.datasets.load("digits")
    return Split(data.train.x[:n], None, data.spec)


def _count(model, kind) -> int:
    return sum(isinstance(m, kind) for m in model.module.transform.layers)


def test_auto_follows_the_base():
    model = NSF()
    assert (model.base, model.n_layers, model.mixing, model.weight_decay) == ("auto",) * 4
    discrete = _fit(NSF(8, n_dequant_samples=2, **FAST), _digits())
    assert (discrete.base_, discrete.n_layers_, discrete.mixing_) == ("mog", 1, "none")
    assert discrete.weight_decay_ == DISCRETE_WEIGHT_DECAY
    assert discrete.train_config().weight_decay == DISCRETE_WEIGHT_DECAY
    assert _count(discrete, SplineCoupling) == 1 and _count(discrete, InvConv1x1) == 0

    continuous = _fit(NSF(8, **FAST), np.random.default_rng(0).normal(size=(80, 3)))
    assert (continuous.base_, continuous.n_layers_, continuous.mixing_) == ("normal", 5, "lu")
    assert continuous.weight_decay_ == 0.0
    assert _count(continuous, SplineCoupling) == 5 and _count(continuous, InvConv1x1) == 5

    gaussian = _fit(NSF(8, base="normal", n_dequant_samples=2, **FAST), _digits())
    assert (gaussian.n_layers_, gaussian.mixing_, gaussian.weight_decay_) == (5, "lu", 0.0)

    chosen = _fit(NSF(8, n_layers=2, mixing="lu", n_dequant_samples=2, **FAST), _digits())
    assert (chosen.base_, chosen.n_layers_, chosen.mixing_) == ("mog", 2, "lu")
    assert _count(chosen, SplineCoupling) == 2 and _count(chosen, InvConv1x1) == 2
    with pytest.raises(ParameterError, match="mixing"):
        NSF(mixing="random").fit(_digits())
    with pytest.raises(ParameterError, match="weight_decay='auto' is chosen from the data"):
        NSF().train_config()


def test_the_resolved_settings_are_in_the_run_and_reload(tmp_path):
    split = _digits()
    model = _fit(NSF(8, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path)
    fitted = json.loads((tmp_path / "config.json").read_text())["fitted"]
    assert (fitted["n_layers_"], fitted["mixing_"]) == (1, "none")
    assert fitted["weight_decay_"] == DISCRETE_WEIGHT_DECAY
    loaded = load_run(tmp_path)
    assert _count(loaded, SplineCoupling) == 1 and _count(loaded, InvConv1x1) == 0
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))


def test_a_run_saved_before_the_automatic_settings_reloads_as_it_was(tmp_path):
    """An nsf run of the earlier version: its parameters hold the earlier defaults (5
    layers, LU mixing, a Gaussian base, weight decay 0) and it has none of n_layers_,
    mixing_, weight_decay_."""
    split = _digits()
    old = _fit(
        NSF(
            8, n_layers=3, mixing="lu", base="normal", weight_decay=0.0, n_dequant_samples=2, **FAST
        ),
        split,
    )
    del old.n_layers_, old.mixing_, old.weight_decay_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert _count(loaded, SplineCoupling) == 3 and _count(loaded, InvConv1x1) == 3
    assert loaded.base_ == "normal" and loaded.train_config().weight_decay == 0.0
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_a_run_rebuilds_what_it_chose_not_what_auto_would_choose_now(tmp_path):
    """The saved choices (n_layers_, mixing_) rebuild the network, not the rules: a run
    whose parameters say "auto" but whose fit chose two LU-mixed layers (as a later rule
    might) reloads two LU-mixed layers, not the one unmixed layer "auto" gives today."""
    split = _digits()
    model = _fit(NSF(8, n_layers=2, mixing="lu", n_dequant_samples=2, **FAST), split)
    model.set_params(n_layers="auto", mixing="auto")
    assert (model.n_layers_, model.mixing_) == (2, "lu")
    save_run(model, tmp_path)
    loaded = load_run(tmp_path)
    assert (loaded.n_layers, loaded.mixing) == ("auto", "auto")
    assert _count(loaded, SplineCoupling) == 2 and _count(loaded, InvConv1x1) == 2
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))
