"""Neural EBM: energy lower on data than on noise, the stated Langevin update, replay buffer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ptheta
from ptheta.errors import CapabilityError, DataError, ParameterError, RunDirError
from ptheta.models.ebm import EBM, EnergyNetwork
from ptheta.train.trainer import TrainConfig, Trainer


def test_learned_energy_is_lower_on_data_than_on_uniform_noise():
    data = ptheta.datasets.load("toy2d-8gaussians")
    x = data.train.x[:1000]
    model = EBM(hidden=64, epochs=10, batch_size=50, lr=1e-2, buffer_size=1000,
                sample_steps=50, dtype="float64", device="cpu").fit(x)  # fmt: skip
    noise = np.random.default_rng(0).uniform(x.min(0), x.max(0), size=(1000, 2))
    gap = model.energy(noise).mean() - model.energy(data.test.x[:1000]).mean()
    assert gap > 0.5
    samples = model.sample(200, random_state=0)
    assert samples.shape == (200, 2) and np.all(np.isfinite(samples))
    np.testing.assert_array_equal(samples, model.sample(200, random_state=0))


@pytest.mark.parametrize("noise_scale", [None, 0.01])
def test_langevin_step_is_the_stated_update(noise_scale):
    torch.manual_seed(0)
    net = EnergyNetwork((3,), hidden=8, step_size=0.3, noise_scale=noise_scale).double()
    z0 = torch.randn(5, 3, dtype=torch.float64)
    z1 = net.langevin(z0, 1, torch.Generator().manual_seed(4))
    z = z0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net.net_energy(z).sum(), z)
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sigma = math.sqrt(0.3) if noise_scale is None else noise_scale
    torch.testing.assert_close(z1, z0 - 0.15 * grad + sigma * eps)  # z − (s/2)∇E + σ ε


def test_replay_buffer_is_updated_in_place_and_resumes_exactly(tmp_path):
    x = torch.randn(64, 2, dtype=torch.float64)
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, device="cpu", patience=None)

    def fresh(seed: int = 0) -> EnergyNetwork:
        torch.manual_seed(seed)
        return EnergyNetwork((2,), hidden=8, langevin_steps=3, buffer_size=40).double()

    reference = fresh()
    start = reference.buffer.clone()
    Trainer(config).fit(reference, (x,))
    assert "buffer" in reference.state_dict()
    assert not torch.equal(reference.buffer, start)

    def interrupt(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(fresh(), (x,), run_dir=tmp_path, callback=interrupt)
    resumed = fresh(seed=9)  # other weights and buffer: all come from the checkpoint
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path, resume=True)
    ref, res = reference.state_dict(), resumed.state_dict()
    assert ref.keys() == res.keys() and all(torch.equal(ref[k], res[k]) for k in ref)


def test_validation_loss_uses_the_same_chains_every_epoch():
    # eval mode (the Trainer's validation): chains from seeded noise, so epochs are compared
    # on the same draws; training takes fresh ones from the replay buffer
    torch.manual_seed(0)
    net = EnergyNetwork((2,), hidden=8, langevin_steps=3, buffer_size=40).double()
    x = torch.randn(16, 2, dtype=torch.float64)
    torch.manual_seed(1)
    first = net.eval().loss(x)
    torch.manual_seed(2)
    assert torch.equal(net.loss(x), first)
    torch.manual_seed(1)
    assert not torch.equal(net.train().loss(x), first)


def test_energy_is_in_data_units_and_score_samples_points_to_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)) * [100.0, 0.01] + [5.0, -3.0]
    model = EBM(**EBM.quick_params).fit(x)
    np.testing.assert_allclose(model.shift_, x.mean(0))
    z = torch.as_tensor((x[:5] - model.shift_) / model.scale_)
    with torch.no_grad():
        expected = model.module.net_energy(z).numpy()
    np.testing.assert_allclose(model.energy(x[:5]), expected, rtol=1e-12)
    with pytest.raises(CapabilityError, match="energy"):
        model.score_samples(x)
    samples = model.sample(300, random_state=0)  # back in data units
    assert abs(np.median(samples[:, 0]) - 5.0) < 300 and np.abs(samples[:, 1] + 3).max() < 1


def test_cnn_energy_on_images_and_flat_data_with_an_image_shape():
    x = np.random.default_rng(0).normal(size=(40, 1, 2, 3))
    model = EBM("cnn", **EBM.quick_params).fit(x)
    assert model.energy(x).shape == (40,)
    assert model.sample(4, random_state=0).shape == (4, 1, 2, 3)


def test_bad_input_is_a_clear_error():
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(DataError, match="dequantise"):
        EBM(device="cpu").fit((x > 0).astype(np.int64))
    with pytest.raises(ParameterError, match="architecture='cnn' needs image"):
        EBM("cnn", **EBM.quick_params).fit(x)
    model = EBM(**EBM.quick_params).fit(x)
    with pytest.raises(DataError, match="shape"):
        model.energy(x[:, :1])
    with pytest.raises(DataError, match="NaN"):
        model.energy(np.full((2, 2), np.nan))


def test_a_saved_state_without_the_standardisation_is_a_clear_error():
    x = np.random.default_rng(0).normal(size=(30, 2))
    model = EBM(**EBM.quick_params).fit(x)
    arrays, meta = model.get_state()
    for key in ("shift_", "scale_", "low_", "high_"):
        kept = {k: v for k, v in arrays.items() if k != key}
        with pytest.raises(RunDirError, match=key):
            EBM(**EBM.quick_params).set_state(kept, meta)
