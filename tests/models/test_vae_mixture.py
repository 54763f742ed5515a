"""The VAE's discretised logistic mixture decoder (decoder="auto" above 16 levels): a pmf
over every level from the first step, a finite fit, the choice recorded and reloaded."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import ptheta.models.vae as vae
from ptheta.data.spec import DataSpec
from ptheta.errors import ParameterError
from ptheta.models.vae import VAE, VAENetwork
from ptheta.nn.decoders import DiscretisedLogisticMixtureOutput, DiscretisedLogisticOutput
from ptheta.runs.store import load_run, save_run
from tests.models.test_vae_defaults import _strokes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"latent_dim": 2, "hidden": [4], "iwae_samples": 5, "device": "cpu", "batch_size": 32}


def test_auto_decoder_above_16_levels_is_the_mixture_and_n_mix_sizes_it():
    spec = DataSpec("categorical", (1, 8, 8), 256)
    net = VAE(**TINY).build_module(spec)
    assert isinstance(net.output, DiscretisedLogisticMixtureOutput) and net.output.n_params == 15
    assert net.level_map is None  # locations and scales already live on [−1, 1]
    assert VAE(**TINY, n_mix=2).build_module(spec).decoder[-1].out_channels == 6
    single = VAE(**TINY, decoder="discretised-logistic").build_module(spec)
    assert isinstance(single.output, DiscretisedLogisticOutput)
    few = VAE(**TINY).build_module(DataSpec("categorical", (1, 8, 8), 16))
    assert few.output.n_params == 16  # a K-way softmax up to 16 levels
    with pytest.raises(ParameterError, match="n_mix"):
        VAE(**TINY, n_mix=0).build_module(spec)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_mixture_decoder_is_a_pmf_over_all_levels_that_starts_near_uniform(architecture):
    torch.manual_seed(0)
    k = 256
    net = VAENetwork(
        (1, 8, 8), DiscretisedLogisticMixtureOutput(k, 3), latent_dim=3, hidden=[8],
        architecture=architecture, image_shape=(1, 8, 8), n_categories=k,
    ).double()  # fmt: skip
    z = torch.randn(5, 3, dtype=torch.float64) * 3
    levels = torch.arange(k)
    with torch.no_grad():
        table = net.output.log_prob(levels, net.decode(z).unsqueeze(-2))  # (5, 64, K)
        np.testing.assert_allclose(table.logsumexp(-1).exp().numpy(), 1.0, atol=1e-12)
        # an untrained decoder (weights ≈ 0: its last bias, the mixture's initial_bias)
        # is close to uniform over the levels: within 0.15 nats per entry of log K
        for name, p in net.named_parameters():
            if not name.endswith("bias"):
                p.zero_()
        start = net.output.log_prob(levels, net.decode(z).unsqueeze(-2))  # (5, 64, K)
        assert float(-start.mean()) < math.log(k) + 0.15
        assert float(start.exp().min()) > 1 / (2 * k)


def test_a_short_fit_beats_uniform_and_reloads_with_its_decoder(tmp_path):
    x = _strokes(160, size=12, levels=256)
    model = VAE(**{**TINY, "hidden": [8]}, epochs=4, lr=3e-3).fit(x[:128])
    assert model.decoder_ == "discretised-logistic-mixture"
    losses = [h["train_loss"] for h in model.history_]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    scores = model.score_samples(x[128:])
    assert np.isfinite(scores).all()
    assert -scores.mean() / (12 * 12 * math.log(2)) < 8.0  # bits/dim; uniform: exactly 8
    samples = model.sample(3, random_state=0)
    assert samples.min() >= 0 and samples.max() <= 255
    save_run(model, tmp_path / "run", data={"name": "strokes"})
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fitted"]["decoder_"] == "discretised-logistic-mixture"
    np.testing.assert_array_equal(load_run(tmp_path / "run").score_samples(x[128:]), scores)


def test_a_run_saved_before_decoder_was_recorded_loads_its_single_logistic(tmp_path):
    # decoder="auto" above 16 levels meant one discretised logistic then
    x = _strokes(64, size=8, levels=256)
    model = VAE(**TINY, epochs=1, decoder="discretised-logistic").fit(x)
    model.decoder = "auto"
    del model.decoder_
    save_run(model, tmp_path / "old", data={"name": "strokes"})
    loaded = load_run(tmp_path / "old")
    assert loaded.decoder == "auto" and loaded.decoder_ == "discretised-logistic"
    np.testing.assert_array_equal(loaded.score_samples(x[:8]), model.score_samples(x[:8]))


def test_log_px_decodes_in_bounded_chunks_with_the_same_result(monkeypatch):
    torch.manual_seed(0)
    net = VAENetwork(
        (3, 4, 4), DiscretisedLogisticMixtureOutput(256, 2), latent_dim=2, hidden=[4],
        architecture="conv", image_shape=(3, 4, 4), n_categories=256, n_classes=3,
    ).double()  # fmt: skip
    x = torch.randint(0, 256, (10, 3, 4, 4), generator=torch.Generator().manual_seed(1))
    z, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 3
    mask = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.7
    whole = net.log_px(x, z, y, mask)
    calls = []
    monkeypatch.setattr(vae, "DECODE_NUMBERS", 3 * 48 * 6)  # three rows per chunk
    monkeypatch.setattr(
        net, "decode", lambda z, y: calls.append(len(z)) or type(net).decode(net, z, y)
    )
    np.testing.assert_allclose(
        net.log_px(x, z, y, mask).detach().numpy(), whole.detach().numpy(), rtol=1e-13
    )
    assert calls == [3, 3, 3, 1]
