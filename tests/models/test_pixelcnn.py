"""PixelCNN: exact normalisation, causal receptive field without blind spot, faithful sampler."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.pixelcnn import GatedPixelCNN, PixelCNN, image_shape_of
from ptheta.runs.store import load_run, save_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(shape, k, *, seed=0, n_classes=None, n_layers=3, kernel_size=3) -> GatedPixelCNN:
    """A random float64 network whose conditionals are far from uniform."""
    torch.manual_seed(seed)
    net = GatedPixelCNN(
        shape, k, channels=8, n_layers=n_layers, kernel_size=kernel_size, n_classes=n_classes
    ).double()
    with torch.no_grad():
        net.head[-1].weight.mul_(4.0)
        net.head[-1].bias.normal_(0.0, 1.0)
    return net


def _configs(shape, k) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.tensor(list(itertools.product(range(k), repeat=n))).reshape(-1, *shape)


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("shape", "k"),
    [((1, 3, 3), 2), ((1, 2, 2), 3), ((2, 2, 2), 2)],
    ids=["3x3-binary-512", "2x2-3-levels-81", "2-colours-2x2-binary-256"],
)
def test_probabilities_sum_to_one_over_every_image(shape, k):
    net = _net(shape, k)
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    assert logp.max() - logp.min() > 2.0  # the check is not passed by a uniform model


def test_log_prob_is_the_sum_of_conditionals_computed_one_entry_at_a_time():
    # plain-loop reference: entry d's conditional computed with every later entry scrambled
    shape, k = (2, 3, 2), 3
    net = _net(shape, k, seed=4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, k, (5, *shape), generator=gen)
    order = [(i, j, c) for i in range(shape[1]) for j in range(shape[2]) for c in range(shape[0])]
    total = torch.zeros(5, dtype=torch.float64)
    with torch.no_grad():
        for d, (i, j, c) in enumerate(order):
            scrambled = torch.randint(0, k, x.shape, generator=gen)
            for i2, j2, c2 in order[:d]:
                scrambled[:, c2, i2, j2] = x[:, c2, i2, j2]
            logits = net.logits(scrambled)[:, c, i, j]  # (5, K)
            total += logits.log_softmax(-1).gather(1, x[:, c, i, j, None])[:, 0]
        assert torch.allclose(net.log_prob(x), total, atol=1e-10)


# --------------------------------------------------------------------------- autoregressive
def _receptive(shape, reach: int) -> torch.Tensor:
    """Bool (C, H, W, C, H, W): entries before (c, i, j) within ``reach`` pixels: the same
    row up to ``reach`` to the left, or up to ``reach`` rows above and columns either side."""
    c, h, w = shape
    cc, ii, jj = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    grids = [(g[:, :, :, None, None, None], g[None, None, None]) for g in (cc, ii, jj)]
    (co, ci), (io, ii_), (jo, ji) = grids
    same_pixel = (io == ii_) & (jo == ji) & (ci < co)
    left = (io == ii_) & (ji < jo) & (jo - ji <= reach)
    above = (ii_ < io) & (io - ii_ <= reach) & ((jo - ji).abs() <= reach)
    return same_pixel | left | above


@pytest.mark.parametrize(
    ("shape", "n_layers", "kernel_size"),
    [((1, 5, 5), 4, 3), ((1, 5, 5), 2, 5), ((1, 5, 5), 2, 3), ((2, 4, 4), 3, 3)],
    ids=["5x5-whole-past-k3", "5x5-whole-past-k5", "5x5-reach-2", "2-colours-4x4"],
)
def test_each_conditional_depends_on_exactly_the_earlier_entries_in_its_receptive_field(
    shape, n_layers, kernel_size
):
    k = 2
    net = _net(shape, k, seed=1, n_layers=n_layers, kernel_size=kernel_size)
    x = torch.randint(0, k, (3, *shape), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(x, k).permute(0, 1, 4, 2, 3).double()
    assert torch.equal(net.logits(one_hot), net.logits(x))
    dep = torch.zeros(shape + shape, dtype=torch.bool)
    for row in one_hot.split(1):  # union over a few inputs: a ReLU may be off at one
        jac = torch.autograd.functional.jacobian(net.logits, row)  # (1,C,H,W,K, 1,C,K,H,W)
        jac = jac[0, :, :, :, :, 0]  # (C, H, W, K, C, K, H, W)
        dep |= jac.abs().sum(dim=(3, 5)) > 0  # (C, H, W, C, H, W): d logit_out / d x_in ≠ 0
    reach = n_layers * (kernel_size // 2)
    expected = _receptive(shape, reach)
    # zero for every entry not before the output (the autoregressive property) or out of
    # reach; non-zero for every earlier entry in reach: no blind spot
    assert torch.equal(dep, expected)
    if reach >= max(shape[1:]) - 1:
        assert expected.sum() == (shape[0] * shape[1] * shape[2]) * (np.prod(shape) - 1) // 2


# --------------------------------------------------------------------------- sampling
def _chi_square_p(samples: torch.Tensor, logp: torch.Tensor, k: int) -> float:
    n = len(samples)
    flat = samples.reshape(n, -1)
    index = flat @ (k ** torch.arange(flat.shape[1] - 1, -1, -1))  # row of _configs
    counts = np.bincount(index.numpy(), minlength=len(logp))
    expected = logp.double().exp().numpy() * n
    keep = expected >= 5  # pool rare cells, as the chi-square approximation needs
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():
        obs, exp = np.append(obs, counts[~keep].sum()), np.append(exp, expected[~keep].sum())
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


@pytest.mark.parametrize(("shape", "k"), [((1, 2, 2), 3), ((2, 2, 2), 2)])
def test_sampler_histogram_matches_exact_probabilities(shape, k):
    net = _net(shape, k, seed=2).float()  # float32: faster, and precise enough here
    samples = net.sample(20_000, generator=torch.Generator().manual_seed(5))
    assert samples.dtype == torch.long and samples.shape == (20_000, *shape)
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert _chi_square_p(samples, logp, k) > 1e-4


def _reference_sample(net: GatedPixelCNN, n: int, y, generator) -> torch.Tensor:
    """The plain sampler: the whole network on the whole image at every step."""
    c, h, w = net.image_shape
    x = torch.zeros(n, c, h, w, dtype=torch.long)
    with torch.no_grad():
        for i, j, ch in itertools.product(range(h), range(w), range(c)):
            logits = net.logits(x, y)[:, ch, i, j]  # (n, K)
            x[:, ch, i, j] = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
    return x


@pytest.mark.parametrize(
    ("shape", "k", "n_layers", "n_classes"),
    [
        ((1, 6, 6), 2, 2, None),
        ((1, 6, 6), 2, 2, 3),
        ((2, 4, 4), 2, 1, None),
        ((1, 5, 4), 3, 3, None),
    ],
)
def test_fast_sampler_equals_the_full_image_reference(shape, k, n_layers, n_classes):
    net = _net(shape, k, n_layers=n_layers, n_classes=n_classes, seed=4)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # large weights: far rows weigh on the conditionals too
        for p in net.parameters():
            p.normal_(0.0, 0.5, generator=g)
    n = 150
    y = None if n_classes is None else torch.arange(n) % n_classes
    expected = _reference_sample(net, n, y, torch.Generator().manual_seed(3))
    got = net.sample(n, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, expected)
    # the window of rows is as small as exactness allows: one row less changes the draws
    assert net.reach == n_layers
    if net.reach < shape[1] - 1:
        net.reach -= 1
        assert not torch.equal(net.sample(n, y, generator=torch.Generator().manual_seed(3)), got)


def test_sampling_is_reproducible_from_the_generator():
    net = _net((1, 3, 3), 2, seed=3)
    a = net.sample(40, generator=torch.Generator().manual_seed(7))
    b = net.sample(40, generator=torch.Generator().manual_seed(7))
    c = net.sample(40, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- class-conditional
def _two_class_images(n: int = 400) -> Split:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    p = np.where(y[:, None] == 1, 0.85, 0.15) * np.ones(4)
    x = (rng.random((n, 4)) < p).astype(np.int64).reshape(n, 1, 2, 2)
    return Split(x, y, DataSpec("binary", (1, 2, 2)))


@pytest.fixture(scope="module")
def conditional() -> PixelCNN:
    params = {**PixelCNN.quick_params, "epochs": 15, "class_conditional": True}
    return PixelCNN(**params).fit(_two_class_images())


def test_class_conditional_is_normalised_per_class_and_samples_differ_by_class(conditional):
    configs = _configs((1, 2, 2), 2)
    means = []
    for label in (0, 1):
        y = torch.full((len(configs),), label)
        with torch.no_grad():
            logp = conditional.module.log_prob(configs, y)
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
        samples = conditional.sample(4000, y=label, random_state=label)
        assert _chi_square_p(torch.as_tensor(samples), logp, 2) > 1e-4
        means.append(samples.mean())
    # the classes were drawn with pixels on 15 % and 85 % of the time
    assert means[0] < 0.35 < 0.65 < means[1]
    proba = conditional.predict_proba(_two_class_images(50).x)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (conditional.predict(_two_class_images(50).x) == _two_class_images(50).y).mean() > 0.8


def test_save_load_round_trip_keeps_scores_and_samples(conditional, tmp_path):
    x = _two_class_images(20).x
    save_run(conditional, tmp_path / "run", data={"name": "two-class"})
    loaded = load_run(tmp_path / "run")
    assert isinstance(loaded, PixelCNN) and loaded.get_params() == conditional.get_params()
    np.testing.assert_array_equal(loaded.score_samples(x), conditional.score_samples(x))
    np.testing.assert_array_equal(
        loaded.sample(6, y=1, random_state=2), conditional.sample(6, y=1, random_state=2)
    )


# --------------------------------------------------------------------------- training
def test_training_on_digits_beats_the_independent_baseline():
    data = ptheta.datasets.load("digits-binary")
    model = PixelCNN(
        12, n_layers=3, epochs=3, batch_size=50, lr=1e-2, device="cpu", random_state=0
    ).fit(data.train, validation_data=data.val)
    baseline = ptheta.make("independent").fit(data.train)
    first, last = model.history_[0]["train_loss"], model.history_[-1]["train_loss"]
    assert last < first
    assert -model.score(data.test) < -baseline.score(data.test) - 1.0  # nats per image
    assert model.sample(3, random_state=0).shape == (3, 64)


def test_colour_images_fit_with_their_event_shape_and_normalise():
    rng = np.random.default_rng(1)
    x = (rng.random((120, 2, 2, 2)) < 0.3).astype(np.int64)
    x[:, 1] = x[:, 0]  # colour 1 copies colour 0: learnable only with colour masking
    model = PixelCNN(**{**PixelCNN.quick_params, "epochs": 20, "lr": 2e-2}).fit(x)
    logp = model.score_samples(_configs((2, 2, 2), 2).numpy())
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-10)
    # copying saves 4 × H(0.3) = 2.4 nats per image over the independent model
    assert model.score(x) > ptheta.make("independent").fit(x).score(x) + 1.5


# --------------------------------------------------------------------------- bad input
def test_image_shape_comes_from_the_spec_or_the_event_shape():
    assert image_shape_of(DataSpec("binary", (64,), image_shape=(1, 8, 8))) == (1, 8, 8)
    assert image_shape_of(DataSpec("binary", (8, 8), image_shape=(1, 8, 8))) == (1, 8, 8)
    assert image_shape_of(DataSpec("categorical", (3, 4, 5), 4)) == (3, 4, 5)
    with pytest.raises(DataError, match="image-shaped"):
        image_shape_of(DataSpec("binary", (6,)))


def test_bad_input_and_parameters_are_clear_errors():
    quick = PixelCNN.quick_params
    flat = np.random.default_rng(0).integers(0, 2, size=(30, 6))
    with pytest.raises(DataError, match="pixelcnn needs image-shaped data"):
        PixelCNN(**quick).fit(flat)
    continuous = np.random.default_rng(0).normal(size=(30, 1, 2, 2))
    with pytest.raises(DataError, match="does not model continuous"):
        PixelCNN(**quick).fit(continuous)
    images, labels = flat.reshape(30, 1, 2, 3), np.arange(30) % 2
    for bad, match in [
        ({"kernel_size": 4}, "odd"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"channels": 0}, "channels"),
        ({"n_layers": 1.5}, "n_layers"),
        ({"class_conditional": "yes"}, "class_conditional"),
    ]:
        with pytest.raises(ParameterError, match=match):
            PixelCNN(**{**quick, **bad}).fit(images, labels)
    with pytest.raises(DataError, match="needs fit"):
        PixelCNN(**quick, class_conditional=True).fit(images)
    model = PixelCNN(**{**quick, "epochs": 1}).fit(images)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        model.sample(2, y=0)
    with pytest.raises(DataError, match="unconditional"):
        model.module.log_prob(torch.as_tensor(images), torch.zeros(30, dtype=torch.long))
