"""maf's defaults on discrete data (issue 19): one MADE layer over the MADE MoG base and
weight decay against memorising a few thousand images (``n_layers="auto"``,
``weight_decay="auto"``, kept as ``n_layers_`` / ``weight_decay_``); continuous data keep 5
layers over a Gaussian base and no weight decay."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import Split
from ptheta.errors import ParameterError
from ptheta.models.flows import DISCRETE_WEIGHT_DECAY, MAF, Glow, RealNVP
from ptheta.models.neural import NeuralModel
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
    assert gaussian.weight_decay_ == 0.0  # so does the weight decay's
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


def test_the_resolved_settings_are_in_the_run_and_reload(tmp_path):
    split = _digits()
    model = _fit(MAF(8, n_dequant_samples=2, **FAST), split)
    save_run(model, tmp_path)
    fitted = json.loads((tmp_path / "config.json").read_text())["fitted"]
    assert fitted["n_layers_"] == 1 and fitted["weight_decay_"] == DISCRETE_WEIGHT_DECAY
    loaded = load_run(tmp_path)
    assert _mades(loaded) == 1 and loaded.train_config().weight_decay == DISCRETE_WEIGHT_DECAY
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))


def test_a_run_saved_before_the_automatic_settings_reloads_as_it_was(tmp_path, monkeypatch):
    """A maf run of the earlier version: n_layers an int and weight_decay a number in its
    parameters, a MoG base of two layers of ``hidden`` units and 10 components, none of
    n_layers_, weight_decay_, base_hidden_, base_components_."""
    split = _digits()
    monkeypatch.setattr(MAF, "_mog_base", lambda self, spec: ([8, 8], 10))
    old = _fit(MAF(8, n_layers=2, weight_decay=0.0, n_dequant_samples=2, **FAST), split)
    monkeypatch.undo()
    del old.n_layers_, old.weight_decay_, old.base_hidden_, old.base_components_
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert _mades(loaded) == 2 and loaded.train_config().weight_decay == 0.0
    widths = [layer.out_features for layer in loaded.module.base_net.layers[:-1]]
    assert widths == [8, 8] and loaded.module.base_net.mixture.n_components == 10
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_auto_weight_decay_before_a_fit_is_one_clear_error():
    with pytest.raises(ParameterError, match="weight_decay='auto' is chosen from the data"):
        MAF().train_config()
    assert MAF(weight_decay=0.5).train_config().weight_decay == 0.5


def test_a_mog_checkpoint_of_the_earlier_base_does_not_resume_into_the_wide_one():
    """Resuming compares fingerprints: a flow over a MoG base no longer has the one the
    earlier version wrote, so those checkpoints are refused as another model's (not loaded
    into layers of another shape); flows over a Gaussian base keep theirs."""
    split = _digits()
    x, spec = split.x, split.spec
    for cls in (RealNVP, Glow):
        earlier = NeuralModel._fingerprint(cls(8, base="mog"), x, spec)  # no MADE layers
        assert cls(8, base="mog")._fingerprint(x, spec) != earlier
        gaussian = cls(8)
        assert gaussian._fingerprint(x, spec) == NeuralModel._fingerprint(gaussian, x, spec)
    maf = MAF(8)  # base "auto": the MoG on these discrete data
    spread = hashlib.sha256(
        (NeuralModel._fingerprint(maf, x, spec) + "/spread-degrees").encode()
    ).hexdigest()[:16]
    assert maf._fingerprint(x, spec) != spread  # the earlier maf's (spread layers)
    assert (
        MAF(8, base="normal")._fingerprint(x, spec)
        == hashlib.sha256(
            (NeuralModel._fingerprint(MAF(8, base="normal"), x, spec) + "/spread-degrees").encode()
        ).hexdigest()[:16]
    )
