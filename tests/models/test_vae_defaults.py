"""The VAE's defaults on images: architecture="auto", a conv VAE that does not diverge on
28×28 binary images, and inputs/outputs fit for 256 levels (issue 19)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models.vae import (
    LOGVAR_MAX,
    LOGVAR_MIN,
    ONE_HOT_LEVELS,
    VAE,
    VAENetwork,
    bounded_logvar,
)
from ptheta.nn.decoders import (
    BernoulliOutput,
    DiscretisedLogisticMixtureOutput,
    DiscretisedLogisticOutput,
)
from ptheta.runs.store import save_run

TINY = {"epochs": 1, "iwae_samples": 3, "device": "cpu", "validation_fraction": 0.0}


def _strokes(n: int, size: int = 28, levels: int = 2, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) images of one bright bar each (horizontal or vertical, random
    place and thickness) on a dark background with noise: a little structure to learn."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 1, size, size))
    for i in range(n):
        a, b = rng.integers(0, max(1, size - size // 3), size=2)
        w = rng.integers(1, max(2, size // 6))
        if rng.random() < 0.5:
            img[i, 0, a : a + w, b : b + size // 3] = 1.0
        else:
            img[i, 0, a : a + size // 3, b : b + w] = 1.0
    if levels == 2:
        return img.astype(np.int64)
    noisy = img * (levels - 1) * 0.8 + rng.normal(levels / 10, levels / 25, img.shape)
    return np.clip(np.round(noisy), 0, levels - 1).astype(np.int64)


def test_auto_picks_conv_on_images_and_mlp_on_vectors_and_records_it(tmp_path):
    image = _strokes(40, size=8)
    model = VAE(2, hidden=[4], **TINY).fit(image)
    assert (model.architecture_, model.hidden_) == ("conv", [4])
    assert isinstance(model.module.encoder_conv, torch.nn.Sequential)
    # flat examples whose data set declares an image_shape are images too
    flat = Split(image.reshape(40, 64), None, DataSpec("binary", (64,), image_shape=(1, 8, 8)))
    assert VAE(2, hidden=[4], **TINY).fit(flat).architecture_ == "conv"
    # vectors, and images too small for convolutions, get the MLP; hidden="auto" resolves
    vectors = VAE(2, **TINY).fit(image.reshape(40, 64))
    assert (vectors.architecture_, vectors.hidden_) == ("mlp", [512, 256])
    assert not hasattr(vectors.module, "encoder_conv")
    assert VAE(2, hidden=[4], **TINY).fit(_strokes(40, size=4)).architecture_ == "mlp"
    # overridable, and hidden="auto" follows the architecture
    forced = VAE(2, architecture="mlp", **TINY).fit(image)
    assert (forced.architecture_, forced.hidden_) == ("mlp", [512, 256])
    conv = VAE(2, **TINY).fit(image)
    assert conv.hidden_ == [32, 64] and conv.module.encoder_conv[0].out_channels == 32
    # written in config.json (fitted attributes) and rebuilt from there on load
    save_run(conv, tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["params"]["architecture"] == "auto"
    assert (config["fitted"]["architecture_"], config["fitted"]["hidden_"]) == ("conv", [32, 64])
    loaded = ptheta.load(tmp_path / "run")
    assert loaded.architecture_ == "conv"
    np.testing.assert_allclose(loaded.score_samples(image[:5]), conv.score_samples(image[:5]))


def test_bounded_logvar_is_the_identity_inside_and_never_leaves_the_bounds():
    raw = torch.linspace(-1e4, 1e4, 20001, dtype=torch.float64)
    out = bounded_logvar(raw)
    assert float(out.min()) >= LOGVAR_MIN and float(out.max()) <= LOGVAR_MAX
    assert bool((out.diff() >= 0).all())  # monotone
    inside = torch.linspace(-6, 4, 101, dtype=torch.float64)
    assert float((bounded_logvar(inside) - inside).abs().max()) < 0.02


def test_a_huge_encoder_output_keeps_the_loss_and_its_gradients_finite():
    # what one large Adam step on the flattened conv features did at defaults (the
    # log-variance jumped to ±34, then past 170 where exp overflows): the loss was inf
    torch.manual_seed(0)
    net = VAENetwork(
        (1, 12, 12), BernoulliOutput(), latent_dim=4, hidden=[4], architecture="conv",
        image_shape=(1, 12, 12), n_categories=2,
    )  # fmt: skip
    with torch.no_grad():
        net.encoder.weight.mul_(1e4)
        net.encoder.bias.fill_(500.0)
    x = torch.as_tensor(_strokes(8, size=12))
    mean, logvar = net.encode(x)
    assert float(logvar.detach().max()) <= LOGVAR_MAX and float(mean.detach().abs().max()) > 100
    loss = net.loss(x).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_conv_vae_at_defaults_trains_on_28x28_binary_images_with_finite_loss():
    # the divergence of issue 19: architecture="conv" at defaults on 28×28 binary digits
    # stopped at step 3 with an infinite loss; 4 steps at the default lr and batch size
    x = _strokes(256)
    model = VAE(epochs=2, iwae_samples=5, device="cpu", validation_fraction=0.0).fit(x)
    assert model.architecture_ == "conv" and model.module.inner_shape == (64, 7, 7)
    losses = [h["train_loss"] for h in model.history_]
    uniform = 28 * 28 * math.log(2)  # −log p of the uniform distribution
    # an untrained VAE starts near the uniform distribution; no step may blow up from there
    assert all(np.isfinite(losses)) and max(losses) < uniform
    scores = model.score_samples(x[:8])
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


def test_many_levels_enter_the_encoder_as_intensities_not_one_hot():
    spec = DataSpec("categorical", (1, 28, 28), 256)
    mlp = VAE(architecture="mlp").build_module(spec)
    conv = VAE().build_module(spec)
    assert isinstance(mlp.output, DiscretisedLogisticMixtureOutput)  # decoder="auto", K > 16
    assert mlp.encoder[0].in_features == 784 and conv.encoder_conv[0].in_channels == 1
    # a one-hot of 256 levels had a 784·256 × 512 first layer: 103.8 M parameters in all;
    # the mixture's 15 numbers per pixel from the last 512-wide layer are most of the 6.7 M
    assert sum(p.numel() for p in mlp.parameters()) < 8_000_000
    single = VAE(architecture="mlp", decoder="discretised-logistic").build_module(spec)
    assert sum(p.numel() for p in single.parameters()) < 2_000_000
    x = torch.tensor([[0, 255, 51]])
    small = VAENetwork((3,), BernoulliOutput(), hidden=[4], n_categories=256)
    np.testing.assert_allclose(small._features(x).numpy(), [[-1.0, 1.0, -0.6]], atol=1e-6)
    # up to ONE_HOT_LEVELS levels the input stays one-hot, with a K-way softmax decoder
    few = VAE(architecture="mlp", hidden=[8]).build_module(
        DataSpec("categorical", (6,), ONE_HOT_LEVELS)
    )
    assert few.encoder[0].in_features == 6 * ONE_HOT_LEVELS
    assert few.output.n_params == ONE_HOT_LEVELS


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_discretised_logistic_decoder_is_a_pmf_over_all_levels_that_starts_spread(architecture):
    torch.manual_seed(0)
    k = 256
    net = VAENetwork(
        (1, 8, 8), DiscretisedLogisticOutput(k), latent_dim=3, hidden=[8],
        architecture=architecture, image_shape=(1, 8, 8), n_categories=k,
    ).double()  # fmt: skip
    z = torch.randn(5, 3, dtype=torch.float64)
    params = net.decode(z)  # (5, 64, 2) in level units
    levels = torch.arange(k, dtype=torch.float64)
    table = net.output.log_prob(levels, params.unsqueeze(-2))  # (5, 64, K)
    np.testing.assert_allclose(table.logsumexp(-1).exp().detach().numpy(), 1.0, atol=1e-9)
    # untrained outputs ≈ 0 map to the middle level with a scale of half the range: every
    # level keeps a share of the mass (the raw parameterisation put the location at level
    # 0 with a scale of one level, P(255) ≈ e^-254: 130 bits/dim at step 0)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        spread = net.output.log_prob(levels, net.decode(z).unsqueeze(-2)).exp()
        assert 1 / (4 * k) < float(spread.min()) and float(spread.max()) < 0.3
        assert float(net.decode(z)[..., 0].mean()) == pytest.approx((k - 1) / 2)


def test_a_short_fit_on_256_level_images_beats_the_uniform_distribution():
    x = _strokes(160, size=16, levels=256)
    model = VAE(batch_size=32, epochs=3, lr=3e-3, iwae_samples=5, device="cpu")
    model.fit(x[:128])
    bits_per_dim = -model.score_samples(x[128:]).mean() / (16 * 16 * math.log(2))
    assert bits_per_dim < 8.0  # uniform over 256 levels: exactly 8
    assert model.sample(2, random_state=0).max() <= 255
