"""Tests of the GAN family: mode coverage, alternating phases, the losses by hand, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.data.toy2d import _G8_CENTRES, _G8_STD
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models import gan as gan_module
from ptheta.models.gan import GAN, GANNetwork
from ptheta.train.trainer import TrainConfig, Trainer

QUICK = {"hidden": [16], "latent_dim": 2, "epochs": 2, "dtype": "float64", "device": "cpu"}


def _blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two distant Gaussian blobs at (−3, −3) (label 0) and (3, 3) (label 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = np.where(y[:, None] == 1, 3.0, -3.0) + 0.3 * rng.standard_normal((n, 2))
    return x, y


def mode_coverage(samples: np.ndarray, min_fraction: float = 0.02) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples) of 8gaussians samples (N, 2).

    A sample is high-quality when it lies within 3 std of its nearest mode centre; a mode
    is covered when at least ``min_fraction`` of all samples are high-quality ones
    assigned to it (uniform coverage would give 1/8 each).
    """
    dist = np.linalg.norm(samples[:, None] - _G8_CENTRES[None], axis=2)  # (N, 8)
    good = dist.min(1) < 3 * _G8_STD
    counts = np.bincount(dist.argmin(1)[good], minlength=8)
    return int((counts >= min_fraction * len(samples)).sum()), float(good.mean())


def test_gan_covers_most_modes_of_8gaussians():
    data = ptheta.datasets.load("toy2d-8gaussians")
    gan = GAN(
        [64, 64], latent_dim=2, epochs=15, batch_size=64, lr=2e-3, device="cpu", random_state=0
    ).fit(data.train)
    covered, quality = mode_coverage(gan.sample(2000, random_state=0))
    assert covered >= 6, (covered, quality)
    assert quality > 0.4


def test_mode_coverage_rule_counts_what_it_says():
    rng = np.random.default_rng(0)
    three = _G8_CENTRES[rng.integers(3, size=900)] + 0.1 * rng.standard_normal((900, 2))
    covered, quality = mode_coverage(np.concatenate([three, rng.normal(size=(100, 2)) * 0.1]))
    assert covered == 3 and quality == pytest.approx(0.9, abs=0.01)


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("n_critic", [1, 3])
def test_trainer_alternates_n_critic_discriminator_steps_and_one_generator_step(n_critic):
    torch.manual_seed(0)
    net = GANNetwork((2,), latent_dim=2, hidden=[8], n_critic=n_critic).double()
    groups = net.optim_groups()
    d_names = {
        n
        for n, p in net.named_parameters()
        if any(p is q for q in groups["discriminator"]["params"])
    }
    before, updates = _params(net), []

    def record(step, loss):
        after = _params(net)
        changed = {n for n in after if not torch.equal(after[n], before[n])}
        updates.append(
            "discriminator"
            if changed == d_names
            else "generator"
            if changed == set(after) - d_names
            else changed
        )
        before.update(after)

    x = torch.randn(64, 2, dtype=torch.float64)
    config = TrainConfig(epochs=2, batch_size=8, device="cpu", patience=None)
    Trainer(config).fit(net, (x,), callback=record)
    expected = (["discriminator"] * n_critic + ["generator"]) * 16
    assert updates == expected[:16]


def _tiny_critic(loss: str = "wgan-gp", gp_weight: float = 10.0) -> GANNetwork:
    torch.manual_seed(1)
    return GANNetwork((2,), latent_dim=2, hidden=[3], loss=loss, gp_weight=gp_weight).double()


def test_gradient_penalty_equals_a_hand_computation():
    net = _tiny_critic()
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    torch.manual_seed(7)
    penalty = net.gradient_penalty(real, fake)
    torch.manual_seed(7)
    eps = torch.rand(5, 1, dtype=torch.float64)
    mixed = eps * real + (1 - eps) * fake
    w1, b1, w2 = net.features[0].weight, net.features[0].bias, net.head.weight  # (3,2) (3,) (1,3)
    pre = mixed @ w1.T + b1  # (5, 3)
    slope = torch.where(pre > 0, 1.0, 0.2).double()  # LeakyReLU(0.2)'s derivative
    grad = (slope * w2) @ w1  # ∇ of w2·lrelu(W1 v + b1): (5, 2)
    expected = (grad.norm(dim=1) - 1) ** 2
    torch.testing.assert_close(penalty, expected.detach())


def test_wgan_gp_and_non_saturating_losses_follow_their_definitions():
    x = torch.randn(6, 2, dtype=torch.float64)
    for kind in ("wgan-gp", "non-saturating"):
        net = _tiny_critic(kind, gp_weight=2.5)
        torch.manual_seed(3)
        d_loss = net.loss(x, phase="discriminator")
        g_loss = net.loss(x, phase="generator")
        torch.manual_seed(3)
        fake = net.generate(torch.randn(6, 2, dtype=torch.float64))
        gp = net.gradient_penalty(x, fake) if kind == "wgan-gp" else None
        fake2 = net.generate(torch.randn(6, 2, dtype=torch.float64))
        real_s, fake_s, fake2_s = net.critic(x), net.critic(fake), net.critic(fake2)
        if kind == "wgan-gp":
            torch.testing.assert_close(d_loss, fake_s - real_s + 2.5 * gp)
            torch.testing.assert_close(g_loss, -fake2_s)
        else:
            sig = torch.sigmoid
            torch.testing.assert_close(d_loss, -torch.log(sig(real_s)) - torch.log(1 - sig(fake_s)))
            torch.testing.assert_close(g_loss, -torch.log(sig(fake2_s)))
    with pytest.raises(ValueError, match="unknown phase"):
        net.loss(x, phase="both")


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_spectral_norm_keeps_each_discriminator_weight_at_unit_spectral_norm(architecture):
    x = np.random.default_rng(0).normal(size=(128, 1, 8, 8))
    sigmas = {}
    for sn in (True, False):
        gan = GAN(
            [16], architecture=architecture, channels=4, spectral_norm=sn, epochs=3,
            batch_size=32, dtype="float64", device="cpu",
        ).fit(x)  # fmt: skip
        kinds = (torch.nn.Linear, torch.nn.Conv2d)
        layers = [m for m in gan.module.features if isinstance(m, kinds)]
        layers.append(gan.module.head)
        sigmas[sn] = [
            float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2)) for m in layers
        ]
    assert len(sigmas[True]) >= 2
    np.testing.assert_allclose(sigmas[True], 1.0, atol=0.05)
    assert max(abs(s - 1) for s in sigmas[False]) > 0.1  # the check can fail without it


def test_class_conditional_samples_land_on_their_class_blob():
    x, y = _blobs()
    gan = GAN(
        [64, 64], latent_dim=2, class_conditional=True, epochs=20, batch_size=32, lr=2e-3,
        device="cpu",
    ).fit(x, y)  # fmt: skip
    for label, centre in ((0, -3.0), (1, 3.0)):
        s = gan.sample(300, y=label, random_state=0)
        near = np.linalg.norm(s - centre, axis=1) < np.linalg.norm(s + centre, axis=1)
        assert near.mean() > 0.9, (label, near.mean())
    mixed = gan.sample(400, random_state=0)  # labels drawn from the class prior
    assert 0.3 < (mixed[:, 0] > 0).mean() < 0.7
    assert gan.discriminator_score(x[:5], y[:5]).shape == (5,)
    with pytest.raises(DataError, match="pass y"):
        gan.discriminator_score(x[:5])
    with pytest.raises(DataError, match="unknown class"):
        gan.sample(2, y=7)
    # no likelihood, no Bayes' rule: predict_proba is absent, and reaching for it says why
    assert not hasattr(gan, "predict_proba")
    with pytest.raises(CapabilityError, match="no likelihood"):
        gan.predict_proba(x[:3])


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(loss, tmp_path):
    x = torch.as_tensor(_blobs(64)[0])

    def network() -> GANNetwork:
        torch.manual_seed(0)
        return GANNetwork((2,), latent_dim=2, hidden=[8], loss=loss, n_critic=2).double()

    config = TrainConfig(epochs=4, batch_size=16, device="cpu", patience=None)
    reference = network()
    Trainer(config).fit(reference, (x,))

    def stop(step, _):
        if step == 7:  # mid-epoch, between a discriminator and a generator step
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(network(), (x,), run_dir=tmp_path, callback=stop)
    resumed = network()
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path, resume=True)
    resumed_state = resumed.state_dict()
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed_state[name]), name


def test_fit_stopped_by_max_time_resumes_through_the_estimator_to_the_same_model(tmp_path):
    x, _ = _blobs(64)
    params = {**QUICK, "epochs": 3, "batch_size": 16, "loss": "wgan-gp", "n_critic": 2}
    full = GAN(**params).fit(x)
    stopped = GAN(**params, max_time=1e-9).fit(x, run_dir=tmp_path)  # stops after one step
    assert stopped.stopped_ == "max_time" and stopped.n_steps_ < full.n_steps_
    resumed = GAN(**params).fit(x, run_dir=tmp_path, resume=True)
    assert resumed.n_steps_ == full.n_steps_
    for name, value in full.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[name]), name


def test_no_likelihood_is_a_clear_capability_error():
    x, _ = _blobs(64)
    # absent before and after fit (hasattr is False): scikit-learn then never calls them
    assert not hasattr(GAN(**QUICK), "score_samples") and not hasattr(GAN(**QUICK), "score")
    with pytest.raises(CapabilityError, match="no likelihood"):
        GAN(**QUICK).score_samples(x)
    gan = GAN(**QUICK).fit(x)
    assert gan.likelihood_ == "none" and gan.units_ == "continuous"
    for method in ("score_samples", "score", "bits_per_dim"):
        with pytest.raises(CapabilityError) as info:
            getattr(gan, method)(x)
        message = str(info.value)
        assert "no likelihood" in message and "discriminator_score(X)" in message
        assert "ptheta compare" in message
    scores = gan.discriminator_score(x)
    assert scores.shape == (64,) and scores.dtype == np.float64
    with torch.no_grad():
        direct = gan.module.critic((torch.as_tensor(x) - gan.module.loc) / gan.module.scale)
    np.testing.assert_allclose(scores, direct.numpy())


def test_validation_records_a_discriminator_loss_not_an_nll():
    x, _ = _blobs(100)
    gan = GAN(**QUICK, loss="wgan-gp", validation_fraction=0.2).fit(x)  # penalty under no_grad
    assert all("val_loss" in h and "val_nll" not in h for h in gan.history_)
    assert "val_loss" not in GAN(**QUICK).fit(x).history_[0]  # default: nothing held out


@pytest.mark.parametrize("levels", [2, 5, 17])
def test_discrete_levels_round_trip_and_samples_are_valid_levels(levels):
    net = GANNetwork((3,), n_categories=levels).double()
    x = torch.arange(levels).repeat(3, 1).T  # (K, 3): every level
    codes = net.encode(x)
    assert codes.min() == -1 and codes.max() == 1
    assert torch.equal(net.decode(codes), x)
    assert torch.equal(net.decode(codes + 0.9 / (levels - 1)), x)  # nearest level
    rng = np.random.default_rng(0)
    data = rng.integers(0, levels, size=(80, 4))
    spec = DataSpec("binary" if levels == 2 else "categorical", (4,), levels)
    s = GAN(**QUICK).fit(Split(data, None, spec)).sample(500, random_state=0)
    assert s.dtype == np.int64 and s.min() >= 0 and s.max() <= levels - 1


def test_auto_architecture_uses_dcgan_on_8x8_images_and_mlp_otherwise():
    rng = np.random.default_rng(0)
    digits = Split(
        rng.integers(0, 17, size=(64, 64)), None,
        DataSpec("categorical", (64,), 17, image_shape=(1, 8, 8)),
    )  # fmt: skip
    gan = GAN(**QUICK, channels=4).fit(digits)
    assert any(isinstance(m, torch.nn.Conv2d) for m in gan.module.modules())
    assert gan.sample(3, random_state=0).shape == (3, 64)
    odd = GAN(**QUICK, channels=4, architecture="dcgan").fit(rng.normal(size=(32, 2, 9, 7)))
    assert odd.sample(2, random_state=0).shape == (2, 2, 9, 7)  # cropped to 9×7
    small = GAN(**QUICK).fit(rng.normal(size=(32, 1, 2, 3)))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in small.module.modules())


def test_bad_input_and_settings_are_clear_errors():
    x, y = _blobs(64)
    with pytest.raises(DataError, match="architecture='dcgan' needs images"):
        GAN(**QUICK, architecture="dcgan").fit(x)
    for key, value in (("loss", "wgan"), ("n_critic", 0), ("latent_dim", 2.5), ("beta1", 1.0)):
        with pytest.raises(ParameterError, match=key):
            GAN(**{**QUICK, key: value}).fit(x)
    gan = GAN(**QUICK).fit(x)
    with pytest.raises(DataError, match="shape"):
        gan.discriminator_score(x[:, :1])
    with pytest.raises(DataError, match="NaN"):
        gan.discriminator_score(np.full((2, 2), np.nan))
    with pytest.raises(ParameterError, match="not class-conditional"):
        gan.discriminator_score(x, y)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        gan.sample(3, y=0)
    with pytest.raises(ValueError, match="class-conditional: pass y"):
        GANNetwork((2,), n_classes=2).sample(3)


def test_phase_schedule_and_optim_groups_cover_every_parameter_once():
    net = GANNetwork((1, 8, 8), architecture="dcgan", image_shape=(1, 8, 8), channels=4,
                     n_classes=3, spectral_norm=True, n_critic=5)  # fmt: skip
    groups = net.optim_groups()
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    assert all(g["betas"] == (0.5, 0.999) for g in groups.values())
    phases = [net.phase(s) for s in range(12)]
    assert phases == (["discriminator"] * 5 + ["generator"]) * 2
    assert GAN(loss="wgan-gp", **QUICK).fit(_blobs(32)[0]).module.n_critic == 5


def test_discriminator_phase_gives_the_generator_no_gradient_and_the_generator_phase_does():
    net = _tiny_critic("non-saturating")
    x = torch.randn(6, 2, dtype=torch.float64)
    for phase, generator_gets_grad in (("discriminator", False), ("generator", True)):
        net.zero_grad(set_to_none=True)
        net.loss(x, phase=phase).sum().backward()
        grads = [p.grad for p in net.generator.parameters()]
        assert all((g is not None) == generator_gets_grad for g in grads), phase


def test_projection_discriminator_adds_the_label_embedding_times_the_features():
    torch.manual_seed(0)
    net = GANNetwork((2,), latent_dim=2, hidden=[4], n_classes=3).double()
    v, y = torch.randn(5, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    h = net.features(v)  # (5, 4)
    expected = net.head(h).squeeze(1) + (net.d_embed.weight[y] * h).sum(1)
    torch.testing.assert_close(net.critic(v, y), expected)
    assert not torch.allclose(net.critic(v, y), net.critic(v, (y + 1) % 3))


def test_discriminator_score_in_chunks_equals_one_pass(monkeypatch):
    x, y = _blobs(50)
    gan = GAN(**QUICK, class_conditional=True).fit(x, y)
    whole = gan.discriminator_score(x, y)
    with torch.no_grad():
        direct = gan.module.critic(gan.module.encode(torch.as_tensor(x)), torch.as_tensor(y))
    np.testing.assert_allclose(whole, direct.numpy())
    monkeypatch.setattr(gan_module, "SCORE_CHUNK", 7)  # 50 = 7 × 7 + 1: labels follow chunks
    np.testing.assert_allclose(gan.discriminator_score(x, y), whole)
