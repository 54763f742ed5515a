"""PixelRNN: causal conditionals (autograd), exact normalisation, faithful samplers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.errors import CapabilityError, DataError, ParameterError
from ptheta.models.pixelrnn import PixelRNN, PixelRNNNetwork
from ptheta.runs.store import load_run, save_run

ARCHITECTURES = ["row", "diagonal"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(shape, k, architecture="row", *, seed=0, sharpen=4.0, **kwargs) -> PixelRNNNetwork:
    """A random float64 network with large weights: conditionals far from uniform (logits
    ``sharpen`` times larger) that lean on distant pixels too."""
    torch.manual_seed(seed)
    kwargs = {"channels": 6, "n_layers": 2, "input_kernel": 3, **kwargs}
    net = PixelRNNNetwork(shape, k, architecture=architecture, **kwargs).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.5, generator=g)
        net.head[-1].weight.mul_(sharpen)
    return net


def _configs(shape, k) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.tensor(list(itertools.product(range(k), repeat=n))).reshape(-1, *shape)


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize(
    ("shape", "k"),
    [((1, 2, 3), 2), ((1, 2, 2), 3), ((2, 2, 2), 2)],
    ids=["2x3-binary-64", "2x2-3-levels-81", "2-colours-2x2-binary-256"],
)
def test_probabilities_sum_to_one_over_every_image(shape, k, architecture):
    net = _net(shape, k, architecture)
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    assert logp.max() - logp.min() > 2.0  # the check is not passed by a uniform model


# --------------------------------------------------------------------------- autoregressive
def _dependency(net: PixelRNNNetwork, n_inputs: int = 4) -> torch.Tensor:
    """Bool (C, H, W, C, H, W): whether the logits of entry (c, i, j) have a non-zero
    gradient with respect to the one-hot input of entry (c', i', j'), for some input."""
    shape = net.image_shape
    k = net.n_categories
    x = torch.randint(0, k, (n_inputs, *shape), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(x, k).permute(0, 1, 4, 2, 3).double()
    assert torch.equal(net.logits(one_hot), net.logits(x))
    dep = torch.zeros(shape + shape, dtype=torch.bool)
    for row in one_hot.split(1):  # union over a few inputs: a ReLU may be off at one
        jac = torch.autograd.functional.jacobian(net.logits, row)  # (1,C,H,W,K, 1,C,K,H,W)
        dep |= jac[0, :, :, :, :, 0].abs().sum(dim=(3, 5)) > 0  # (C, H, W, C, H, W)
    return dep


def _raster_order(shape) -> torch.Tensor:
    """Position (C, H, W) of each entry in the order of the chain rule: pixels in raster
    order, colours within a pixel."""
    c, h, w = shape
    cc, ii, jj = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    return (ii * w + jj) * c + cc


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((1, 5, 5), {}),
        ((1, 5, 5), {"n_layers": 1, "kernel_size": 5, "input_kernel": 5}),
        ((2, 4, 4), {}),
    ],
    ids=["5x5", "5x5-wide-kernels", "2-colours-4x4"],
)
def test_each_conditional_depends_on_earlier_entries_only(shape, kwargs, architecture):
    # d logits(entry i) / d input(entry j) is zero for every j at or after i in raster
    # (and colour) order, for every i; and non-zero exactly on the receptive field
    net = _net(shape, 2, architecture, seed=1, **kwargs)
    with torch.no_grad():
        net.head[1].bias.add_(2.0)  # few dead ReLUs: gradients reach the whole field
    dep = _dependency(net)
    order = _raster_order(shape)
    later = order[None, None, None] >= order[:, :, :, None, None, None]  # (C,H,W, C,H,W)
    assert not (dep & later).any()
    c, h, w = shape
    pixels = net.receptive_field()  # (H, W, H, W), the pixel-level field the kernels give
    same_pixel = torch.eye(h * w, dtype=torch.bool).reshape(h, w, h, w)
    expected = pixels[None, :, :, None] | (same_pixel[None, :, :, None] & ~later)
    assert torch.equal(dep, expected.expand(c, h, w, c, h, w))


def _cone(shape, n_layers: int, kernel_size: int, input_kernel: int) -> torch.Tensor:
    """Bool (H, W, H, W): the Row LSTM's receptive field in closed form. Pixel (i, j) sees
    row i − m (m ≥ 1) from s·(m + L) + a columns left of j to max(s·m − 1, s·(m − 1) + a)
    right of it, and row i from s·L + a columns left up to j − 1 (s = k // 2 per layer,
    L layers, a = k₀ // 2 of the mask-A convolution). Depth widens the left side only."""
    _, h, w = shape
    s, a = kernel_size // 2, input_kernel // 2
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    up = ii[:, :, None, None] - ii[None, None]  # rows above
    right = jj[None, None] - jj[:, :, None, None]  # columns to the right
    left_edge = -(s * (up + n_layers) + a)
    right_edge = torch.where(up > 0, torch.maximum(s * up - 1, s * (up - 1) + a), -1)
    return (up >= 0) & (right >= left_edge) & (right <= right_edge)


@pytest.mark.parametrize(
    ("n_layers", "kernel_size", "input_kernel"), [(1, 3, 3), (3, 3, 3), (2, 5, 3), (2, 3, 7)]
)
def test_a_row_lstm_sees_a_cone_above_each_pixel(n_layers, kernel_size, input_kernel):
    shape = (1, 7, 9)
    config = {"n_layers": n_layers, "kernel_size": kernel_size, "input_kernel": input_kernel}
    field = _net(shape, 2, **config).receptive_field()
    assert torch.equal(field, _cone(shape, n_layers, kernel_size, input_kernel))
    earlier = _raster_order(shape)[0]
    earlier = earlier[None, None] < earlier[:, :, None, None]  # (H, W, H, W)
    assert not (field & ~earlier).any()
    assert (earlier & ~field).any()  # the raster-order bias: earlier pixels it cannot see
    if (n_layers, kernel_size, input_kernel) == (1, 3, 3):
        # pixel (3, 0) sees row 2 up to column 1, row 0 up to column 3
        assert field[3, 0, 2, :2].all() and not field[3, 0, 2, 2:].any()
        assert field[3, 0, 0, :4].all() and not field[3, 0, 0, 4:].any()


def test_a_diagonal_bilstm_sees_the_whole_past():
    shape = (1, 6, 6)
    earlier = _raster_order(shape)[0]
    earlier = earlier[None, None] < earlier[:, :, None, None]  # (H, W, H, W)
    assert torch.equal(_net(shape, 2, "diagonal", n_layers=1).receptive_field(), earlier)


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


@pytest.mark.parametrize(
    ("architecture", "shape", "k"),
    [
        ("row", (1, 2, 3), 2),
        ("row", (1, 2, 2), 3),
        ("row", (2, 2, 2), 2),
        ("diagonal", (1, 2, 2), 3),  # its sampler is slower; it equals the reference below
    ],
)
def test_sampler_histogram_matches_exact_probabilities(architecture, shape, k):
    net = _net(shape, k, architecture, seed=2).float()  # float32: faster, precise enough
    n = 20_000 if architecture == "row" else 10_000
    samples = net.sample(n, generator=torch.Generator().manual_seed(5))
    assert samples.dtype == torch.long and samples.shape == (n, *shape)
    assert samples.min() >= 0 and samples.max() <= k - 1
    with torch.no_grad():
        logp = net.log_prob(_configs(shape, k))
    assert _chi_square_p(samples, logp, k) > 1e-4


def _reference_sample(net: PixelRNNNetwork, n: int, y, generator) -> torch.Tensor:
    """The plain sampler: the whole network on the whole image at every step."""
    c, h, w = net.image_shape
    x = torch.zeros(n, c, h, w, dtype=torch.long)
    with torch.no_grad():
        for i, j, ch in itertools.product(range(h), range(w), range(c)):
            logits = net.logits(x, y)[:, ch, i, j]  # (n, K)
            x[:, ch, i, j] = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
    return x


@pytest.mark.parametrize(
    ("architecture", "shape", "k", "n_classes", "input_kernel"),
    [
        ("row", (1, 6, 5), 2, None, 5),
        ("row", (1, 5, 4), 3, 3, 3),
        ("row", (2, 4, 4), 2, None, 3),
        ("diagonal", (1, 5, 4), 2, 3, 3),
        ("diagonal", (2, 3, 3), 3, None, 5),
    ],
)
def test_state_reusing_sampler_equals_rerunning_the_whole_network(
    architecture, shape, k, n_classes, input_kernel
):
    config = {"n_classes": n_classes, "input_kernel": input_kernel, "sharpen": 1.0}
    net = _net(shape, k, architecture, seed=4, **config)
    n = 150
    y = None if n_classes is None else torch.arange(n) % n_classes
    expected = _reference_sample(net, n, y, torch.Generator().manual_seed(3))
    rows = []
    got = net.sample(n, y, generator=torch.Generator().manual_seed(3), progress=rows.append)
    assert torch.equal(got, expected)
    assert rows == [1] * shape[1]  # progress: one call per row
    assert len({tuple(s.tolist()) for s in got.flatten(1)}) > 20  # the draws differ


def test_sampling_is_reproducible_from_the_generator_and_takes_sample_shapes():
    net = _net((1, 3, 3), 2, seed=3)
    a = net.sample(40, generator=torch.Generator().manual_seed(7))
    b = net.sample(40, generator=torch.Generator().manual_seed(7))
    c = net.sample(40, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert net.sample((2, 3)).shape == (2, 3, 1, 3, 3) and net.sample(0).shape == (0, 1, 3, 3)


def test_verbose_sampling_shows_progress_and_draws_the_same(capsys):
    x = np.random.default_rng(0).integers(0, 2, size=(40, 1, 3, 2))
    quiet = PixelRNN(**{**PixelRNN.quick_params, "epochs": 1}).fit(x)
    loud = PixelRNN(**{**PixelRNN.quick_params, "epochs": 1, "verbose": 1}).fit(x)
    capsys.readouterr()
    np.testing.assert_array_equal(quiet.sample(7, random_state=4), loud.sample(7, random_state=4))
    assert "sampling rows" in capsys.readouterr().err


# --------------------------------------------------------------------------- class-conditional
def _two_class_images(n: int = 400) -> Split:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    p = np.where(y[:, None] == 1, 0.85, 0.15) * np.ones(4)
    x = (rng.random((n, 4)) < p).astype(np.int64).reshape(n, 1, 2, 2)
    return Split(x, y, DataSpec("binary", (1, 2, 2)))


@pytest.fixture(scope="module")
def conditional() -> PixelRNN:
    params = {**PixelRNN.quick_params, "epochs": 15, "class_conditional": True}
    return PixelRNN(**params).fit(_two_class_images())


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
    test = _two_class_images(50)
    assert np.allclose(conditional.predict_proba(test.x).sum(axis=1), 1.0)
    assert (conditional.predict(test.x) == test.y).mean() > 0.8


def test_save_load_round_trip_keeps_scores_and_samples(conditional, tmp_path):
    x = _two_class_images(20).x
    save_run(conditional, tmp_path / "run", data={"name": "two-class"})
    loaded = load_run(tmp_path / "run")
    assert isinstance(loaded, PixelRNN) and loaded.get_params() == conditional.get_params()
    np.testing.assert_array_equal(loaded.score_samples(x), conditional.score_samples(x))
    np.testing.assert_array_equal(
        loaded.sample(6, y=1, random_state=2), conditional.sample(6, y=1, random_state=2)
    )


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_on_digits_beats_the_independent_baseline(architecture):
    data = ptheta.datasets.load("digits-binary")
    model = PixelRNN(
        12, n_layers=1, input_kernel=3, architecture=architecture, epochs=2, batch_size=50,
        lr=3e-2, device="cpu", random_state=0,
    ).fit(data.train, validation_data=data.val)  # fmt: skip
    baseline = ptheta.make("independent").fit(data.train)
    first, last = model.history_[0]["train_loss"], model.history_[-1]["train_loss"]
    assert last < first
    assert -model.score(data.test) < -baseline.score(data.test) - 1.0  # nats per image
    assert model.sample(3, random_state=0).shape == (3, 64)


def test_colour_images_fit_with_their_event_shape_and_normalise():
    rng = np.random.default_rng(1)
    x = (rng.random((120, 2, 2, 2)) < 0.3).astype(np.int64)
    x[:, 1] = x[:, 0]  # colour 1 copies colour 0: learnable only with colour masking
    model = PixelRNN(**{**PixelRNN.quick_params, "epochs": 20, "lr": 2e-2}).fit(x)
    assert model.likelihood_ == "exact" and model.units_ == "discrete"
    logp = model.score_samples(_configs((2, 2, 2), 2).numpy())
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-10)
    # copying saves 4 × H(0.3) = 2.4 nats per image over the independent model
    assert model.score(x) > ptheta.make("independent").fit(x).score(x) + 1.5


# --------------------------------------------------------------------------- bad input
def test_bad_input_and_parameters_are_clear_errors():
    quick = PixelRNN.quick_params
    flat = np.random.default_rng(0).integers(0, 2, size=(30, 6))
    with pytest.raises(DataError, match="pixelrnn needs image-shaped data"):
        PixelRNN(**quick).fit(flat)
    continuous = np.random.default_rng(0).normal(size=(30, 1, 2, 2))
    with pytest.raises(DataError, match="does not model continuous"):
        PixelRNN(**quick).fit(continuous)
    images, labels = flat.reshape(30, 1, 2, 3), np.arange(30) % 2
    for bad, match in [
        ({"kernel_size": 4}, "kernel_size must be an odd"),
        ({"input_kernel": 1}, "input_kernel"),
        ({"channels": 0}, "channels"),
        ({"n_layers": 1.5}, "n_layers"),
        ({"architecture": "column"}, "architecture"),
        ({"class_conditional": "yes"}, "class_conditional"),
    ]:
        with pytest.raises(ParameterError, match=match):
            PixelRNN(**{**quick, **bad}).fit(images, labels)
    with pytest.raises(ParameterError, match="pixelrnn: input_kernel must be odd"):
        PixelRNNNetwork((1, 2, 3), 2, input_kernel=4)
    with pytest.raises(DataError, match="needs fit"):
        PixelRNN(**quick, class_conditional=True).fit(images)
    model = PixelRNN(**{**quick, "epochs": 1}).fit(images)
    with pytest.raises(CapabilityError, match="not class-conditional"):
        model.sample(2, y=0)
    with pytest.raises(DataError, match="unconditional"):
        model.module.log_prob(torch.as_tensor(images), torch.zeros(30, dtype=torch.long))
    with pytest.raises(DataError, match="pass y"):
        _net((1, 2, 2), 2, n_classes=2).sample(3)
