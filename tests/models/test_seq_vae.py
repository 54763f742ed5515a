"""Tests of the sequence VAE: training on sunspots, bounds, token dropout, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.models.seq_vae import SeqVAE, SeqVAENetwork


@pytest.fixture(scope="module")
def sunspots_model():
    data = ptheta.datasets.load("sunspots")
    model = SeqVAE(4, hidden=24, epochs=15, lr=5e-3, batch_size=32, iwae_samples=20, device="cpu")
    model.set_params(beta_warmup_epochs=5, token_dropout=0.2, cell="gru")
    return data, model.fit(data.train, validation_data=data.val)


def test_loss_decreases_and_the_kl_is_reported(sunspots_model):
    _, model = sunspots_model
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0] - 5  # nats per sequence of 15 tokens
    assert model.kl_ >= 0 and model.kl_per_dim_.shape == (4,)
    assert model.kl_per_dim_.sum() == pytest.approx(model.kl_)
    assert model.reconstruction_ > 0 and 0 <= model.active_units_ <= 4
    assert model.beta_warmup_steps_ == 5 * 7  # ceil(202 / 32) = 7 steps per epoch


def test_iwae_is_above_the_elbo_on_average(sunspots_model):
    data, model = sunspots_model
    x = data.train.x[:40]
    assert model.score_samples(x).mean() >= model.elbo(x).mean()
    with torch.no_grad():
        xt = torch.as_tensor(x).repeat(20, 1)
        g = torch.Generator().manual_seed(0)
        iwae = model.module.iwae(xt, k=20, generator=g).reshape(20, -1).mean(0)
        elbo = model.module.elbo(xt, generator=g).reshape(20, -1).mean(0)
    assert float((iwae - elbo).mean()) > 0
    samples = model.sample(5, random_state=0)
    assert samples.shape == (5, 15) and samples.dtype == np.int64 and samples.max() < 16
    assert model.embed(x).shape == (40, 4)


def test_token_dropout_changes_decoder_inputs_only_in_training():
    net = SeqVAENetwork(5, 30, latent_dim=2, hidden=8, token_dropout=0.5)
    x = torch.randint(0, 5, (20, 30), generator=torch.Generator().manual_seed(0))
    shifted = torch.cat([torch.full((20, 1), 5), x[:, :-1]], dim=1)
    assert torch.equal(net.eval().decoder_inputs(x), shifted)
    dropped = net.train().decoder_inputs(x)
    replaced = dropped != shifted
    assert (dropped[replaced] == 6).all() and not replaced[:, 0].any()  # UNK; BOS kept
    assert 0.4 < float(replaced[:, 1:].double().mean()) < 0.6


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_reach_every_parameter(cell):
    torch.manual_seed(0)
    net = SeqVAENetwork(4, 6, latent_dim=2, hidden=8, cell=cell).double()
    x = net.sample(8, generator=torch.Generator().manual_seed(1))
    net.loss(x).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_input_is_a_clear_error():
    x = np.random.default_rng(0).integers(0, 3, size=(30, 2, 4))
    with pytest.raises(DataError, match="sequences"):
        SeqVAE(epochs=1, device="cpu").fit(x)
    with pytest.raises(ParameterError, match="cell"):
        SeqVAE(cell="rnn", epochs=1, device="cpu").fit(x.reshape(30, -1))
    with pytest.raises(ParameterError, match="token_dropout"):
        SeqVAE(token_dropout=1.0, epochs=1, device="cpu").fit(x.reshape(30, -1))
    with pytest.raises(DataError, match="does not model continuous"):
        SeqVAE(epochs=1, device="cpu").fit(np.random.default_rng(0).normal(size=(30, 4)))
