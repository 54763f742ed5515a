"""PixelCNN with the discretised logistic mixture head: exact normalisation over every tiny
image, the autoregressive property of the scaled-input path, a faithful sampler, the
"auto" choice recorded and reloaded."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.models.pixelcnn import GatedPixelCNN, PixelCNN
from ptheta.runs.store import load_run, save_run
from tests.models.test_pixelcnn import _chi_square_p, _configs, _receptive

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(shape, k, *, seed=0, n_layers=2, n_mix=3, channels=8) -> GatedPixelCNN:
    """A random float64 mixture network whose conditionals are far from uniform and depend
    strongly on their past."""
    torch.manual_seed(seed)
    net = GatedPixelCNN(
        shape, k, channels=channels, n_layers=n_layers, output="logistic-mixture", n_mix=n_mix
    ).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.6, generator=g)
    return net


@pytest.mark.parametrize(
    ("shape", "k"),
    [((1, 1, 2), 20), ((1, 2, 2), 6), ((3, 1, 1), 8), ((2, 1, 2), 5)],
    ids=["1x2-20-levels-400", "2x2-6-levels-1296", "rgb-1x1-8-levels-512", "2-colours-625"],
)
def test_probabilities_sum_to_one_over_every_image(shape, k):
    net = _net(shape, k)
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    assert logp.max() - logp.min() > 3.0  # the check is not passed by a uniform model


@pytest.mark.parametrize(
    ("shape", "n_layers"),
    [((1, 4, 4), 3), ((3, 3, 3), 2), ((3, 4, 4), 1)],
    ids=["grey-4x4", "rgb-3x3", "rgb-4x4-reach-1"],
)
def test_each_conditional_depends_on_exactly_the_earlier_entries_in_reach(shape, n_layers):
    # autograd through the scaled input (N, C, H, W): the mixture parameters of entry
    # (c, i, j) depend on every earlier entry within reach and on nothing else, itself
    # included; colours are ordered within a pixel through the 1 + C input channels
    k = 256
    net = _net(shape, k, seed=1, n_layers=n_layers, channels=12)  # 4 features per colour
    x = torch.randint(0, k, (6, *shape), generator=torch.Generator().manual_seed(0))
    scaled = net.output.centres(x, torch.float64)
    assert torch.equal(net.conditionals(scaled), net.conditionals(x))
    dep = torch.zeros(shape + shape, dtype=torch.bool)
    for row in scaled.split(1):  # union over a few inputs: a ReLU may be off at one
        jac = torch.autograd.functional.jacobian(net.conditionals, row)  # (1,C,H,W,P,1,C,H,W)
        dep |= jac[0, :, :, :, :, 0].abs().sum(dim=3) > 0  # (C, H, W, C, H, W)
    assert torch.equal(dep, _receptive(shape, n_layers))


def _reference_sample(net: GatedPixelCNN, n: int, generator) -> torch.Tensor:
    """The plain sampler: the whole network on the whole image at every step."""
    c, h, w = net.image_shape
    x = torch.zeros(n, c, h, w, dtype=torch.long)
    with torch.no_grad():
        for i, j, ch in itertools.product(range(h), range(w), range(c)):
            x[:, ch, i, j] = net.output.sample(net.conditionals(x)[:, ch, i, j], generator)
    return x


@pytest.mark.parametrize(("shape", "n_layers"), [((1, 5, 4), 2), ((3, 3, 3), 1)])
def test_fast_sampler_equals_the_full_image_reference(shape, n_layers):
    net = _net(shape, 256, n_layers=n_layers, seed=4)
    expected = _reference_sample(net, 60, torch.Generator().manual_seed(3))
    got = net.sample(60, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, expected)
    assert len(set(got.flatten().tolist())) > 20  # many different levels were drawn


def test_sampler_histogram_matches_exact_probabilities():
    shape, k = (1, 1, 2), 6
    net = _net(shape, k, seed=2).float()
    samples = net.sample(20_000, generator=torch.Generator().manual_seed(5))
    assert samples.dtype == torch.long and samples.shape == (20_000, *shape)
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert _chi_square_p(samples, logp, k) > 1e-4


def _grey(n: int = 64, seed: int = 0) -> np.ndarray:
    """(n, 1, 4, 4) 256-level images: a bright left half, a dark right half, noise; levels
    0 and 255 occur, so the data have K = 256."""
    rng = np.random.default_rng(seed)
    base = np.where(np.arange(4) < 2, 200.0, 40.0)[None, None, None, :]
    x = base + rng.normal(0, 12, size=(n, 1, 4, 4))
    x[0, 0, 0, :2], x[0, 0, 0, 2:] = 255, 0
    return np.clip(np.rint(x), 0, 255).astype(np.int64)


QUICK = {**PixelCNN.quick_params, "epochs": 15, "lr": 2e-2}


def test_auto_picks_the_mixture_above_16_levels_and_records_it(tmp_path):
    x = _grey()
    model = PixelCNN(**QUICK).fit(x)
    assert model.output_ == "logistic-mixture" and model.module.scaled
    assert model.module.blocks[0].v_conv.in_channels == 2  # ones + one scaled grey channel
    # 256 levels: better than uniform (8 bits/dim) after a few steps, every score finite
    scores = model.score_samples(x)
    assert np.isfinite(scores).all() and -scores.mean() < 16 * np.log(256) - 5
    binary = PixelCNN(**{**QUICK, "epochs": 1}).fit((x > 128).astype(np.int64))
    assert binary.output_ == "softmax"
    save_run(model, tmp_path / "run", data={"name": "grey"})
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fitted"]["output_"] == "logistic-mixture"
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.score_samples(x), scores)
    np.testing.assert_array_equal(loaded.sample(3, random_state=1), model.sample(3, random_state=1))


def test_an_explicit_softmax_and_a_run_saved_before_the_choice_existed(tmp_path):
    x = _grey(32)
    model = PixelCNN(**{**QUICK, "epochs": 1, "output": "softmax"}).fit(x)
    assert model.output_ == "softmax" and model.module.blocks[0].v_conv.in_channels == 256
    del model.output_  # as written before output existed: softmax at every K
    save_run(model, tmp_path / "run", data={"name": "grey"})
    loaded = load_run(tmp_path / "run")
    assert loaded.output_ == "softmax"
    np.testing.assert_array_equal(loaded.score_samples(x), model.score_samples(x))


def test_bad_output_parameters_are_parameter_errors():
    x = _grey(8)
    for bad, match in [({"output": "mixture"}, "output"), ({"n_mix": 0}, "n_mix")]:
        with pytest.raises(ParameterError, match=match):
            PixelCNN(**{**QUICK, **bad}).fit(x)
    with pytest.raises(ParameterError, match="output"):
        GatedPixelCNN((1, 2, 2), 4, output="auto")  # the module takes a resolved choice
    spec = DataSpec("categorical", (1, 2, 2), 256)
    assert PixelCNN(n_mix=2, output="logistic-mixture").build_module(spec).n_params == 6
