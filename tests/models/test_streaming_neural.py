"""The neural families whose fit needs statistics of the data (vae, seq-vae, ddpm, gan, ebm,
ncsn, score-sde) read them a batch at a time: a memory-mapped file in batches of 7 rows
gives the in-memory model, and each statistic computed from batches is the whole-array one.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist

import ptheta
from ptheta.data import stream
from ptheta.data.batch_stats import seeded_rows, streamed_range
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource, NpySource, Source
from ptheta.models import REGISTRY, latent, ncsn, score_sde
from tests.models.test_streaming_contract import _TwoProcesses

ROWS = 7  # rows per batch of the streamed sources
BATCH = 16  # the Trainer's batch: no read of the data is larger than this


class _SmallBatches(Source):
    """A source read in batches of `ROWS` rows that records its largest single read."""

    def __init__(self, inner: Source) -> None:
        self.inner, self.largest_read = inner, 0
        self.n, self.event_shape, self.dtype = inner.n, inner.event_shape, inner.dtype
        self.y, self.spec = inner.y, inner.spec

    def _read(self, index: np.ndarray) -> np.ndarray:
        self.largest_read = max(self.largest_read, len(index))
        return self.inner.read(index)

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        self.largest_read = max(self.largest_read, stop - start)
        return self.inner.read_range(start, stop)

    def batch_rows(self) -> int:
        return ROWS

    def identity(self) -> str:
        return self.inner.identity()


def _continuous(n: int = 60, seed: int = 0) -> tuple[np.ndarray, DataSpec]:
    """Three entries on different scales, one far from 0, one constant."""
    x = np.random.default_rng(seed).normal(size=(n, 3)) * [1.0, 30.0, 0.01] + [0.0, 1e4, -2.0]
    x[:, 2] = -2.0  # a constant entry: std 1 by convention
    return x, DataSpec("continuous", (3,))


def _sequences(n: int = 60, seed: int = 0) -> tuple[np.ndarray, DataSpec]:
    x = np.random.default_rng(seed).integers(0, 3, size=(n, 5))
    return x, DataSpec("categorical", (5,), 3)


# family → (its data, hyper-parameters on top of its quick ones)
FAMILIES = {
    "vae": (_continuous, {"validation_fraction": 0.0}),  # diagnostics on all of x
    "seq-vae": (_sequences, {"validation_fraction": 0.0}),
    "ddpm": (_continuous, {}),
    "gan": (_continuous, {}),
    "ebm": (_continuous, {}),
    "ncsn": (_continuous, {}),
    "score-sde": (_continuous, {"sde": "ve"}),
}

# statistics of the data kept by the fitted model
STATISTICS = (
    "input_shift_", "input_scale_", "shift_", "scale_", "low_", "high_", "sigmas_",
    "sigma_max_", "reconstruction_", "kl_", "kl_per_dim_", "active_units_",
)  # fmt: skip


def _fit(name: str, data, **params):
    params = {**REGISTRY[name].quick_params, "epochs": 2, "batch_size": BATCH, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ptheta.make(name, **params).fit(data)


def _from_file(x: np.ndarray, tmp_path) -> _SmallBatches:
    path = tmp_path / "x.npy"
    np.save(path, x)
    return _SmallBatches(NpySource(path))


def _same_batches(monkeypatch, x: np.ndarray) -> None:
    """An array in memory read in batches of `ROWS` rows too (``$PTHETA_BATCH_BYTES``): the
    same sums in the same order as the streamed source's, so the same model to the bit.
    (In batches of another size the sums round differently, and a noise key hashed from
    standardised values can then change, and with it the epoch that early stopping keeps.)"""
    monkeypatch.setenv("PTHETA_BATCH_BYTES", str(8 * x[0].size * ROWS))
    assert ArraySource(x).batch_rows() == ROWS


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_streamed_in_batches_of_seven_rows_is_the_in_memory_fit(name, tmp_path, monkeypatch):
    make_data, params = FAMILIES[name]
    x, spec = make_data()
    _same_batches(monkeypatch, x)
    source = _from_file(x, tmp_path)
    in_memory = _fit(name, Split(x, None, spec), **params)
    streamed = _fit(name, Split(source, None, spec), **params)
    assert streamed.capabilities().streams
    assert 0 < source.largest_read <= BATCH, f"{name} read {source.largest_read} rows at once"
    weights = in_memory.module.state_dict()
    for key, value in streamed.module.state_dict().items():
        np.testing.assert_allclose(value.numpy(), weights[key].numpy(), rtol=1e-6, atol=1e-10)
    for key in [k for k in STATISTICS if hasattr(in_memory, k)]:  # ddpm, gan: buffers
        np.testing.assert_allclose(
            getattr(streamed, key), getattr(in_memory, key), rtol=1e-9, err_msg=key
        )
    _check_statistics(name, streamed, x)


def _check_statistics(name: str, model, x: np.ndarray) -> None:
    """The statistics the streamed fit kept against their closed forms on the whole array."""
    mean, std = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)
    if name in ("vae", "seq-vae"):
        # on all of x (nothing held out): −ELBO = reconstruction + KL, per example averaged;
        # active units: posterior means whose variance across x exceeds 0.01
        bound = -(model.elbo(x) - model._log_jacobian()).mean()
        assert model.reconstruction_ + model.kl_ == pytest.approx(bound, rel=1e-9)
        assert model.kl_per_dim_.sum() == pytest.approx(model.kl_, rel=1e-12)
        assert model.active_units_ == int((model.embed(x).var(0) > 0.01).sum())
    if name == "ddpm":
        np.testing.assert_allclose(model.module.shift.numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(model.module.scale.numpy(), std, rtol=1e-12)
    if name == "gan":  # float32 buffers
        np.testing.assert_allclose(model.module.loc.numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(model.module.scale.numpy(), std, rtol=1e-6)
    if name == "ebm":
        np.testing.assert_allclose(model.shift_, mean, rtol=1e-12)
        np.testing.assert_allclose(model.scale_, std, rtol=1e-12)
        z = (x - model.shift_) / model.scale_  # the box of the standardised data, exactly
        np.testing.assert_array_equal(model.low_, z.min(0))
        np.testing.assert_array_equal(model.high_, z.max(0))
    if name in ("ncsn", "score-sde"):  # N below the sample size: every pair
        assert model.sigma_max_ == pytest.approx(pdist((x - mean) / std).max(), rel=1e-9)


@pytest.mark.parametrize("n", [5, 60])
def test_the_range_over_batches_and_processes_is_the_whole_array_range(n, monkeypatch):
    x = np.random.default_rng(1).normal(size=(n, 2, 3))
    low, high = streamed_range(_SmallBatches(ArraySource(x)))
    np.testing.assert_array_equal(low, x.min(0))
    np.testing.assert_array_equal(high, x.max(0))
    # two processes, each reading every other batch (with n = 5, one reads none)
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    for low, high in world.run(lambda: streamed_range(_SmallBatches(ArraySource(x)))):
        np.testing.assert_array_equal(low, x.min(0))
        np.testing.assert_array_equal(high, x.max(0))
    assert world.reductions == 1


def test_the_seeded_sample_is_read_in_batches_and_is_the_in_memory_one():
    x = np.random.default_rng(2).normal(size=(50, 4))
    source = _SmallBatches(ArraySource(x))
    np.testing.assert_array_equal(seeded_rows(source, 50, seed=3), x)  # all of them, in order
    assert source.largest_read == ROWS
    sample = seeded_rows(source, 20, seed=3)
    drawn = np.random.default_rng(3).choice(50, 20, replace=False)
    np.testing.assert_array_equal(sample, x[drawn])  # in the order drawn
    np.testing.assert_array_equal(seeded_rows(x, 20, seed=3), sample)
    assert source.largest_read == ROWS


@pytest.mark.parametrize("name", ["ncsn", "score-sde"])
def test_sigma_max_over_a_sample_is_the_largest_distance_in_the_sample(name, monkeypatch):
    """Above the sample size, σ_max is the diameter of the seeded sample in model units
    (standardised with the moments of all the data): a streamed fit draws the same rows."""
    monkeypatch.setattr(ncsn, "DISTANCE_SUBSAMPLE", 25)
    monkeypatch.setattr(score_sde, "MAX_PAIRWISE_ROWS", 25)
    x, spec = _continuous()
    _same_batches(monkeypatch, x)
    params = {"epochs": 1, "random_state": 5, **({"sde": "ve"} if name == "score-sde" else {})}
    model = _fit(name, Split(_SmallBatches(ArraySource(x)), None, spec), **params)
    std = np.where(x.std(0) > 0, x.std(0), 1.0)
    drawn = np.random.default_rng(5).choice(len(x), 25, replace=False)
    expected = pdist((x[drawn] - x.mean(0)) / std).max()
    assert model.sigma_max_ == pytest.approx(expected, rel=1e-9)
    assert model.sigma_max_ <= pdist((x - x.mean(0)) / std).max()  # a lower bound
    assert _fit(name, Split(x, None, spec), **params).sigma_max_ == model.sigma_max_


def test_the_diagnostics_of_two_processes_are_those_of_one(monkeypatch):
    x, spec = _continuous()
    model = _fit("vae", Split(x, None, spec), epochs=1, validation_fraction=0.0)
    keys = ("reconstruction_", "kl_", "kl_per_dim_", "active_units_")
    one = {k: getattr(model, k) for k in keys}
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)

    def diagnose():
        copy = pickle.loads(pickle.dumps(model))  # a process of its own
        copy._diagnose(_SmallBatches(ArraySource(x)), None, spec)
        return {k: getattr(copy, k) for k in keys}

    results = world.run(diagnose)
    assert world.reductions == 1
    for result in results:
        for k in keys:
            np.testing.assert_allclose(result[k], one[k], rtol=1e-12, err_msg=k)


def test_active_units_are_the_latent_dimensions_whose_means_vary_above_the_threshold(
    monkeypatch,
):
    """The variance of the posterior means, from sums over batches about the first
    example's mean, is the whole-array variance: thresholds just below and just above each
    dimension's variance count it in and out."""
    x, spec = _continuous()
    model = _fit("vae", Split(x, None, spec), epochs=1, validation_fraction=0.0)
    variance = model.embed(x).var(0)
    for v in variance:
        for threshold in (v * (1 - 1e-6), v * (1 + 1e-6)):
            monkeypatch.setattr(latent, "ACTIVE_THRESHOLD", threshold)
            model._diagnose(_SmallBatches(ArraySource(x)), None, spec)
            assert model.active_units_ == int((variance > threshold).sum())
