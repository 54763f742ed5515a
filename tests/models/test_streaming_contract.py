"""Every family fits from a data source read in batches (a memory-mapped .npy file).

A family that streams (``capabilities().streams``) reads it a batch at a time and must give
the model an in-memory fit gives; a family that does not reads it whole, with the same
result. Either way the data never has to be an array in memory first.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data import stream
from ptheta.data.spec import Split
from ptheta.data.stream import NpySource, Source
from ptheta.models import REGISTRY
from tests.models.test_contract import CASES, _data

# fixed-length data of each kind a family fits (sequence-only kinds are covered elsewhere)
STREAM_CASES = [(name, kind) for name, kind in CASES if kind != "table"]


class _CountingSource(Source):
    """A source over an array that records how many rows each read returned."""

    def __init__(self, inner: Source, rows_per_batch: int) -> None:
        self.inner, self.rows_per_batch, self.largest_read = inner, rows_per_batch, 0
        self.n, self.event_shape, self.dtype = inner.n, inner.event_shape, inner.dtype
        self.y, self.spec = inner.y, inner.spec

    def _read(self, index: np.ndarray) -> np.ndarray:
        self.largest_read = max(self.largest_read, len(index))
        return self.inner.read(index)

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        self.largest_read = max(self.largest_read, stop - start)
        return self.inner.read_range(start, stop)

    def batch_rows(self) -> int:
        return self.rows_per_batch

    def identity(self) -> str:
        return self.inner.identity()


def _fit(name: str, data, y):
    model = ptheta.make(name, **REGISTRY[name].quick_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, y if model.needs_labels else None)


def _scores(model, x):
    if not model.capabilities().has_likelihood:
        return model.sample(16, random_state=0).astype(np.float64).ravel()
    return model.score_samples(x[:32])


@pytest.mark.parametrize(("name", "kind"), STREAM_CASES)
def test_a_memory_mapped_source_gives_the_in_memory_model(name, kind, tmp_path):
    x, y, split = _data(kind, image=REGISTRY[name].needs_image)
    path = tmp_path / "x.npy"
    np.save(path, x)
    source = NpySource(path, y=y)
    source.spec = split.spec
    counting = _CountingSource(source, rows_per_batch=50)
    in_memory = _fit(name, split, y)
    streamed = _fit(name, Split(counting, y, split.spec), None)
    assert streamed.fitted_spec == in_memory.fitted_spec
    assert streamed.likelihood_ == in_memory.likelihood_
    np.testing.assert_allclose(
        _scores(streamed, x), _scores(in_memory, x), rtol=1e-7, atol=1e-9, err_msg=name
    )
    if streamed.capabilities().streams:
        # read in batches: a read of (almost) every row at once would be no stream; a
        # family may read a bounded sample for its initialisation (a mixture's k-means)
        assert counting.largest_read < len(x), f"{name} read the whole source at once"


class _TwoProcesses:
    """Two threads that run the same fit as two processes would under torchrun: each sees
    its own rank, and ``all_reduce_sum`` exchanges their sums through a barrier."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.barrier = threading.Barrier(2, timeout=60)
        self.slots: list[dict[str, np.ndarray] | None] = [None, None]
        self.reductions = 0

    def share(self) -> tuple[int, int]:
        return getattr(self.local, "rank", 0), 2

    def all_reduce_sum(self, stats) -> dict[str, np.ndarray]:
        rank = self.local.rank
        self.slots[rank] = {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}
        self.barrier.wait()
        total = {k: self.slots[0][k] + self.slots[1][k] for k in self.slots[0]}
        self.barrier.wait()  # both have read the slots before either writes again
        if rank == 0:
            self.reductions += 1
        return total

    def run(self, fit) -> list:
        results: list = [None, None]
        errors: list = []

        def target(rank: int) -> None:
            self.local.rank = rank
            try:
                results[rank] = fit()
            except BaseException as e:
                errors.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


@pytest.mark.parametrize("name", sorted({n for n, _ in STREAM_CASES}))
def test_two_processes_give_the_model_of_one(name, monkeypatch):
    """Under torchrun each process reads every other batch and the sums are all-reduced:
    two processes (simulated by two threads) must give the model one process gives."""
    cls = REGISTRY[name]
    model = ptheta.make(name, **cls.quick_params)
    if not model.capabilities().streams:
        pytest.skip(f"{name} does not stream")
    if model.capabilities().trains_in_steps:
        pytest.skip("neural families are distributed by the Trainer (tests/train)")
    kind = cls.data_kinds[0]
    x, y, split = _data(kind, image=cls.needs_image)

    def fit():
        small = _CountingSource(stream.ArraySource(x, y, split.spec), rows_per_batch=23)
        return _fit(name, Split(small, y, split.spec), None)

    one = fit()
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    first, second = world.run(fit)
    assert world.reductions > 0, f"{name} streams without summing over processes"
    for fitted in (first, second):
        np.testing.assert_allclose(
            _scores(fitted, x), _scores(one, x), rtol=1e-9, atol=1e-9, err_msg=name
        )


@pytest.mark.parametrize("name", sorted({n for n, _ in STREAM_CASES}))
def test_a_process_whose_share_is_empty_with_missing_entries(name, monkeypatch):
    """One batch in all, so the second process reads no row, and NaN entries (the families
    that fit with them): its statistics are zeros of the right shape, not an error."""
    cls = REGISTRY[name]
    model = ptheta.make(name, **cls.quick_params)
    caps = model.capabilities()
    if not (caps.streams and caps.fits_missing) or caps.trains_in_steps:
        pytest.skip(f"{name}: not a classical streaming family that fits missing entries")
    x, y, split = _data(cls.data_kinds[0], image=cls.needs_image)
    x = x.astype(np.float64)
    x[np.random.default_rng(0).random(x.shape) < 0.1] = np.nan

    def fit():
        whole = _CountingSource(stream.ArraySource(x, y, split.spec), rows_per_batch=len(x))
        return _fit(name, Split(whole, y, split.spec), None)

    one = fit()
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    for fitted in world.run(fit):
        np.testing.assert_allclose(
            _scores(fitted, x), _scores(one, x), rtol=1e-9, atol=1e-9, err_msg=name
        )
