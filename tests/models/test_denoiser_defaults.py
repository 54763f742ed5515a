"""The denoising families' defaults for a time budget (issue 19; ddpm, flow-matching,
score-sde): batches of 32 and a U-Net of 32 channels (``hidden="auto"``: 64 units for the
MLP denoiser), the resolved width kept as ``hidden_``; runs saved before keep their
width."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import ParameterError
from ptheta.models.diffusion import DIFFUSION_TRAINING, MLP_HIDDEN, UNET_HIDDEN
from ptheta.runs.store import load_run, save_run

COMMON = {"epochs": 1, "dtype": "float64", "device": "cpu"}
FAST = {
    "ddpm": {"timesteps": 10, "n_bound_samples": 2, "bound_strata": 4, **COMMON},
    "flow-matching": {"ode_steps": 2, "n_dequant_samples": 2, **COMMON},
    "score-sde": {"ode_steps": 2, "n_dequant_samples": 2, **COMMON},
}
FAMILIES = list(FAST)
IMAGES = DataSpec("binary", (1, 6, 6))


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


def _width(module) -> int:
    net = module.net
    net = getattr(net, "net", net)  # the ODE families' TimeConditioned holds the network
    return net.conv_in.out_channels if hasattr(net, "conv_in") else net.inp.out_features


def _images(n: int = 40) -> Split:
    x = (np.random.default_rng(0).random((n, 1, 6, 6)) < 0.4).astype(np.int64)
    return Split(x, None, IMAGES)


def _make(family: str, **params):
    return ptheta.make(family, **params)


@pytest.mark.parametrize("family", FAMILIES)
def test_batches_of_32_by_default_and_any_size_on_request(family):
    assert DIFFUSION_TRAINING["batch_size"] == 32
    assert _make(family).batch_size == 32 and _make(family).get_params()["batch_size"] == 32
    assert _make(family, batch_size=100).batch_size == 100
    assert _make(family).train_config().batch_size == 32  # what the Trainer is given
    assert ptheta.make("made").batch_size == 128  # the other families keep theirs


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_width_is_32_unet_channels_and_64_mlp_units(family):
    assert _make(family).hidden == "auto" and (UNET_HIDDEN, MLP_HIDDEN) == (32, 64)
    assert _width(_make(family).build_module(IMAGES)) == UNET_HIDDEN
    assert _width(_make(family).build_module(DataSpec("continuous", (3,)))) == MLP_HIDDEN
    mlp_on_images = _make(family, architecture="mlp").build_module(IMAGES)
    assert _width(mlp_on_images) == MLP_HIDDEN  # the rule follows the network
    assert _width(_make(family, hidden=12).build_module(IMAGES)) == 12
    with pytest.raises(ParameterError, match="hidden"):
        _make(family, hidden="wide").fit(_images())


@pytest.mark.parametrize("family", FAMILIES)
def test_the_resolved_width_is_in_the_run_and_an_old_run_keeps_its_own(tmp_path, family):
    split = _images()
    model = _fit(_make(family, **FAST[family]), split)
    assert model.hidden_ == UNET_HIDDEN and _width(model.module) == UNET_HIDDEN
    save_run(model, tmp_path / "new")
    fitted = json.loads((tmp_path / "new" / "config.json").read_text())["fitted"]
    assert fitted["hidden_"] == UNET_HIDDEN
    loaded = load_run(tmp_path / "new")
    assert _width(loaded.module) == UNET_HIDDEN
    np.testing.assert_array_equal(loaded.score_samples(split.x), model.score_samples(split.x))
    # a run of an earlier version: hidden a number in its parameters, no hidden_
    old = _fit(_make(family, hidden=64, **FAST[family]), split)
    del old.hidden_
    save_run(old, tmp_path / "old")
    reloaded = load_run(tmp_path / "old")
    assert _width(reloaded.module) == 64
    np.testing.assert_array_equal(reloaded.score_samples(split.x), old.score_samples(split.x))


@pytest.mark.parametrize("family", FAMILIES)
def test_build_module_follows_the_parameters_after_a_fit(family):
    """``build_module`` is the network a fit would now train: after a fit at the automatic
    width, a new ``hidden`` (or other data) builds its own, not the fitted one."""
    model = _fit(_make(family, **FAST[family]), _images())
    assert model.hidden_ == UNET_HIDDEN
    assert _width(model.build_module(DataSpec("continuous", (3,)))) == MLP_HIDDEN
    model.set_params(hidden=12)
    assert _width(model.build_module(IMAGES)) == 12
    assert _width(model.module) == UNET_HIDDEN  # the fitted network is unchanged
