"""Tests of the VAE family: bounds and estimates, exact marginals by integration, training."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.vae import VAE, VAENetwork
from ptheta.nn.decoders import make_output
from ptheta.train.trainer import TrainConfig, Trainer

FAST = {"batch_size": 32, "lr": 1e-2, "dtype": "float64", "device": "cpu"}


def _binary(n: int = 400, d: int = 4, seed: int = 0) -> np.ndarray:
    """Two clusters of binary vectors: a latent structure a 1-D z can capture."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    return (rng.random((n, d)) < np.where(y[:, None] == 1, 0.85, 0.15)).astype(np.int64)


def _net(decoder: str = "bernoulli", seed: int = 0, **kwargs) -> VAENetwork:
    torch.manual_seed(seed)
    k = {"bernoulli": 2, "categorical": 5, "discretised-logistic": 5, "gaussian": None}[decoder]
    kwargs = {"latent_dim": 2, "hidden": [8], **kwargs}
    shape = kwargs.pop("event_shape", (4,))
    return VAENetwork(shape, make_output(decoder, k), n_categories=k, **kwargs).double()


@pytest.fixture(scope="module")
def fitted_1d():
    """A VAE with a 1-D latent on 4 binary variables (log p(x) computable by quadrature)."""
    model = VAE(1, hidden=[16], epochs=30, validation_fraction=0, **FAST)
    return model.fit(_binary())


def _integrated_log_p(net: VAENetwork, x: torch.Tensor) -> torch.Tensor:
    """log ∫ p(x | z) N(z; 0, 1) dz on a fine grid (1-D latent), (N,)."""
    grid = torch.linspace(-10, 10, 4001, dtype=torch.float64)  # (G,)
    log_prior = -0.5 * grid**2 - 0.5 * np.log(2 * np.pi)
    with torch.no_grad():
        log_px = torch.stack([net.log_px(x, z.expand(len(x), 1)) for z in grid], 1)  # (N, G)
    return torch.logsumexp(log_px + log_prior, dim=1) + np.log(float(grid[1] - grid[0]))


def test_iwae_matches_numerical_integration_and_probabilities_sum_to_one(fitted_1d):
    net = fitted_1d.module
    configs = torch.tensor(list(itertools.product([0, 1], repeat=4)))  # (16, 4)
    exact = _integrated_log_p(net, configs)
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        iwae = net.iwae(configs, k=5000, generator=torch.Generator().manual_seed(0))
        elbo = net.elbo(configs, k=1000, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(iwae.numpy(), exact.numpy(), atol=0.05)
    assert (elbo <= exact + 0.05).all()  # a bound (its k-sample estimate, within noise)
    # the estimator reports the same quantity (its own k, deterministic seed)
    np.testing.assert_allclose(fitted_1d.score_samples(configs.numpy()), exact, atol=0.2)
    # marginals of the observed entries: sum over the completions of the missing ones
    partial = configs.numpy().astype(np.float64)[::5]
    partial[:, [0, 2]] = np.nan
    fitted_1d.set_params(iwae_samples=2000)
    fitted_1d.module.iwae_samples = 2000
    estimate = fitted_1d.marginal_log_prob(partial)
    for row, value in zip(partial, estimate, strict=True):
        match = (configs.numpy()[:, [1, 3]] == row[[1, 3]]).all(1)
        assert value == pytest.approx(logsumexp(exact.numpy()[match]), abs=0.05)


def test_iwae_is_above_the_elbo_and_grows_with_k():
    net = _net(latent_dim=2, hidden=[16])
    with torch.no_grad():  # sharp, untrained decoder: q is far from the posterior, gaps wide
        for p in net.parameters():
            p.mul_(3)
    x = torch.tensor(_binary(n=3)).repeat(400, 1)  # 400 repetitions of 3 examples
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        elbo = net.elbo(x, generator=g).reshape(400, 3)
        iwae = {k: net.iwae(x, k=k, generator=g).reshape(400, 3) for k in (1, 10, 100)}
    se = ((elbo.var(0) + iwae[1].var(0)) / 400).sqrt()  # of the difference of the means
    assert ((iwae[1].mean(0) - elbo.mean(0)).abs() < 4 * se).all()  # the same expectation
    means = torch.stack([elbo.mean(0)] + [iwae[k].mean(0) for k in (1, 10, 100)])  # (4, 3)
    assert (means[2] - means[1] > 4 * se).all()  # IWAE_10 well above IWAE_1 = ELBO
    assert (means[3] > means[2]).all() and (means[3] > means[0]).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decoder": "bernoulli"},
        {"decoder": "categorical"},
        {"decoder": "gaussian"},
        {"decoder": "discretised-logistic", "architecture": "conv", "image_shape": (1, 2, 2)},
        {"decoder": "bernoulli", "n_classes": 3},
        {
            "decoder": "categorical",
            "architecture": "conv",
            "image_shape": (1, 2, 2),
            "n_classes": 3,
        },
    ],
    ids=str,
)
def test_reparameterised_gradients_reach_every_parameter_and_samples_have_the_kind(kwargs):
    net = _net(**kwargs)
    y = torch.tensor([0, 1, 2, 0]) if kwargs.get("n_classes") else None
    x = net.sample(4, y, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 4)
    if net.output.discrete:
        assert x.dtype == torch.long and x.min() >= 0 and x.max() < net.output.n_categories
    else:
        assert x.dtype == torch.float64
    net.loss(x, y).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_kl_warmup_follows_the_schedule_and_survives_resume(tmp_path):
    net = _net(warmup_steps=4, beta=2.0).train()
    x = torch.tensor(_binary(n=8))
    betas = []
    for _ in range(6):
        betas.append(net.current_beta)
        net.loss(x)
    assert betas == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    net.eval()
    net.loss(x)  # evaluation does not advance the schedule
    assert int(net.step) == 6

    # an interrupted, resumed run ends exactly where an uninterrupted one does
    data = (torch.tensor(_binary(n=64)),)
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, device="cpu", patience=None)
    whole = _net(warmup_steps=10)
    Trainer(config).fit(whole, data)

    def stop(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(_net(warmup_steps=10), data, run_dir=tmp_path, callback=stop)
    resumed = _net(seed=1, warmup_steps=10)
    Trainer(config).fit(resumed, data, run_dir=tmp_path, resume=True)
    assert int(resumed.step) == int(whole.step) == 12
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # the estimator converts epochs to steps: 2 epochs of ceil(400 / 32) = 13 steps
    model = VAE(2, hidden=[8], epochs=3, beta_warmup_epochs=2, validation_fraction=0, **FAST)
    model.fit(_binary())
    assert model.beta_warmup_steps_ == 26 and int(model.module.step) == model.n_steps_ == 39


def test_free_bits_floor_the_kl_of_each_dimension():
    x = torch.tensor(_binary(n=32))
    plain, floored = _net(latent_dim=3), _net(latent_dim=3, free_bits=0.5)
    mean, logvar = plain.encode(x)
    kl_means = plain.kl(mean, logvar).mean(0)  # (3,)
    torch.manual_seed(5)
    a = plain.loss(x).mean()
    torch.manual_seed(5)
    b = floored.loss(x).mean()
    expected = kl_means.clamp(min=0.5).sum() - kl_means.sum()
    assert float((b - a).detach()) == pytest.approx(float(expected.detach()), abs=1e-10)
    # every dimension below a huge floor: the KL term is a constant, with no gradient
    huge, no_kl = _net(latent_dim=3, free_bits=1e3), _net(latent_dim=3, beta=0.0)
    torch.manual_seed(5)
    huge.loss(x).sub(3e3).mean().backward()
    torch.manual_seed(5)
    no_kl.loss(x).mean().backward()
    for p, q in zip(huge.parameters(), no_kl.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_representations_and_missing_data(fitted_1d):
    x = _binary(n=10, seed=1)
    z = fitted_1d.embed(x)
    assert z.shape == (10, 1)
    recon = fitted_1d.reconstruct(x)
    assert recon.shape == x.shape and recon.dtype == np.int64
    path = fitted_1d.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 4)
    np.testing.assert_array_equal(path[[0, -1]], recon[:2])
    net = fitted_1d.module
    with torch.no_grad():  # the endpoints decode the endpoints' posterior means
        ends = net.decode_mode(torch.as_tensor(z[:2]))
    np.testing.assert_array_equal(path[[0, -1]], ends.numpy())

    partial = x.astype(np.float64)
    partial[::2, 0] = np.nan
    partial[1::3, 1:3] = np.nan
    observed = ~np.isnan(partial)
    for method in ("mode", "sample"):
        filled = fitted_1d.impute(partial, method=method, random_state=0)
        assert not np.isnan(filled).any() and set(np.unique(filled)) <= {0, 1}
        np.testing.assert_array_equal(filled[observed], partial[observed])
    with pytest.raises(DataError, match="NaN"):
        fitted_1d.score_samples(partial)
    # with nothing missing, the marginal estimate is score_samples itself (same noise)
    complete = fitted_1d.marginal_log_prob(x.astype(np.float64))
    np.testing.assert_allclose(complete, fitted_1d.score_samples(x))
    assert fitted_1d.marginal_log_prob(np.full((1, 4), np.nan))[0] == 0.0


def test_elbo_and_score_are_deterministic_and_ordered(fitted_1d):
    x = _binary(n=50, seed=2)
    np.testing.assert_array_equal(fitted_1d.elbo(x), fitted_1d.elbo(x))
    # in expectation IWAE_k ≥ ELBO; the ELBO's reconstruction term is averaged over enough
    # draws that its Monte-Carlo error (duplicate rows share their draws) is below the gap
    assert fitted_1d.score(x) >= fitted_1d.elbo(x, k=1000).mean()
    assert fitted_1d.likelihood_ == "estimate" and fitted_1d.units_ == "discrete"
    assert fitted_1d.kl_ > 0 and fitted_1d.reconstruction_ > 0
    assert 0 <= fitted_1d.active_units_ <= 1 and fitted_1d.kl_per_dim_.shape == (1,)
    assert fitted_1d.kl_per_dim_.sum() == pytest.approx(fitted_1d.kl_)


def test_conditional_samples_are_recognised_as_the_requested_class():
    data = ptheta.datasets.load("digits-binary")
    model = VAE(8, hidden=[128], epochs=10, iwae_samples=5, class_conditional=True, **FAST)
    model.set_params(batch_size=50, lr=5e-3, dtype="float32")
    model.fit(data.train, validation_data=data.val)
    classifier = LogisticRegression(max_iter=2000).fit(data.train.x, data.train.y)
    labels = np.repeat(model.classes_, 30)
    samples = model.sample(len(labels), y=labels, random_state=0)
    accuracy = float((classifier.predict(samples.reshape(len(labels), -1)) == labels).mean())
    print(f"conditional VAE samples classified as requested: {accuracy:.1%}")
    assert accuracy > 0.5
    assert model.predict_proba(data.test.x[:5]).shape == (5, 10)
    assert model.embed(data.test.x[:5], y=data.test.y[:5]).shape == (5, 8)
    with pytest.raises(DataError, match="pass y"):
        model.embed(data.test.x[:5])
    with pytest.raises(CapabilityError, match="class_conditional"):
        model.impute(np.full((1, 64), np.nan))


def test_conv_architecture_on_images():
    data = ptheta.datasets.load("digits")
    model = VAE(
        4, hidden=[4], architecture="conv", decoder="discretised-logistic", epochs=1, iwae_samples=5
    )
    model.set_params(**FAST)
    model.fit(Split(data.train.x[:64], None, data.spec))
    assert model.score_samples(data.test.x[:3]).shape == (3,)
    assert model.sample(2, random_state=0).max() <= 16


def test_conv_architecture_halves_large_images_and_trains_stably():
    # 24×24 → 12 → 6: the flattened features stay small (a full-resolution encoder's
    # 256·28·28 features made the loss infinite at step 3 on 28×28 digits)
    rng = np.random.default_rng(0)
    blobs = np.zeros((96, 1, 24, 24), dtype=np.int64)
    for i, (r, c) in enumerate(rng.integers(2, 16, size=(96, 2))):
        blobs[i, 0, r : r + 6, c : c + 6] = 1
    model = VAE(4, hidden=[4, 8], architecture="conv", epochs=3, iwae_samples=5)
    model.set_params(**FAST)
    model.fit(blobs)
    assert model.module.inner_shape == (8, 6, 6)
    assert all(np.isfinite(h["train_loss"]) for h in model.history_)
    assert model.sample(2, random_state=0).shape == (2, 1, 24, 24)
    scores = model.score_samples(blobs[:4])
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


def test_bad_input_is_a_clear_error():
    rng = np.random.default_rng(0)
    continuous = rng.normal(size=(40, 3))
    with pytest.raises(DataError, match="bernoulli decoder does not model continuous"):
        VAE(decoder="bernoulli", epochs=1, device="cpu").fit(continuous)
    with pytest.raises(DataError, match="needs a pmf"):
        VAE(decoder="gaussian", epochs=1, device="cpu").fit(_binary())
    with pytest.raises(DataError, match="image-shaped"):
        VAE(architecture="conv", epochs=1, device="cpu").fit(continuous)
    with pytest.raises(ParameterError, match="latent_dim"):
        VAE(0, epochs=1, device="cpu").fit(_binary())
    with pytest.raises(ParameterError, match="decoder_variance"):
        VAE(decoder_variance=-1.0, epochs=1, device="cpu").fit(continuous)
    with pytest.raises(ParameterError, match="architecture"):
        VAE(architecture="resnet", epochs=1, device="cpu").fit(_binary())
    with pytest.raises(DataError, match="class_conditional=True needs fit"):
        VAE(class_conditional=True, epochs=1, device="cpu").fit(_binary())
    image = Split(_binary().reshape(-1, 1, 2, 2), None, DataSpec("binary", (1, 2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = VAE(2, hidden=[4], architecture="conv", epochs=1, **FAST).fit(image)
    with pytest.raises(DataError, match="shape"):
        m.embed(_binary())
    with pytest.raises(ParameterError, match="steps"):
        m.interpolate(image.x[0], image.x[1], steps=1)


def test_iwae_chunks_follow_the_example_size_and_change_no_score(monkeypatch):
    import ptheta.models.latent as latent

    x = _binary(40, d=6)
    model = ptheta.make("vae", hidden=[8], latent_dim=2, epochs=2, device="cpu").fit(x)
    whole = model.score_samples(x)
    monkeypatch.setattr(latent, "IWAE_NUMBERS", 6 * 7)  # 7 rows of 6 entries: 1 draw a chunk
    seen = []
    log_px = type(model._module).log_px

    def spy(self, x, *args, **kwargs):
        seen.append(len(x))
        return log_px(self, x, *args, **kwargs)

    monkeypatch.setattr(type(model._module), "log_px", spy)
    chunked = model.score_samples(x)
    assert len(seen) > 1 and max(seen) == 40  # one importance draw of the 40 rows at a time
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-9)
