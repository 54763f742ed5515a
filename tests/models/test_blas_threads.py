"""One BLAS thread for small products: the limit is taken for small work only, shared by
overlapping works, lifted by the last, and held around gmm's EM on narrow data.

A fake controller stands in for threadpoolctl's: what a BLAS build reports as its thread
count differs between builds and, for some, between threads, so the tests check the
requests made, not a library's answer."""

from __future__ import annotations

import numpy as np
import pytest

from ptheta.models import blas, make, mixtures
from ptheta.models.blas import blas_threads_for


class _FakeController:
    """Records the one-thread limits taken and restored; ``limited`` while one holds."""

    def __init__(self) -> None:
        self.taken = self.restored = 0

    @property
    def limited(self) -> bool:
        return self.taken > self.restored

    def limit(self, *, limits: int, user_api: str):
        assert (limits, user_api) == (1, "blas")
        self.taken += 1
        controller = self

        class _Limiter:
            def restore_original_limits(self) -> None:
                controller.restored += 1

        return _Limiter()


@pytest.fixture
def fake(monkeypatch) -> _FakeController:
    controller = _FakeController()
    monkeypatch.setattr(blas, "_controller", lambda: controller)
    return controller


def test_small_work_takes_the_limit_and_large_or_unknown_work_does_not(fake):
    with blas_threads_for(1000, small=1000):
        assert fake.limited
    assert (fake.taken, fake.restored) == (1, 1)
    with blas_threads_for(1001, small=1000), blas_threads_for(None, small=1000):
        assert not fake.limited
    assert fake.taken == 1


def test_the_limit_is_lifted_when_the_work_fails(fake):
    with pytest.raises(KeyboardInterrupt), blas_threads_for(1, small=1):
        raise KeyboardInterrupt
    assert (fake.taken, fake.restored) == (1, 1)


def test_overlapping_works_share_one_limit_and_the_last_to_finish_lifts_it(fake):
    # two fits that overlap (as in two threads): the first to start finishes first, and
    # the original count must come back only when the second is done
    first, second = blas_threads_for(1, small=1), blas_threads_for(1, small=1)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert fake.limited and fake.taken == 1  # the second is still inside
    second.__exit__(None, None, None)
    assert (fake.taken, fake.restored) == (1, 1)


@pytest.mark.filterwarnings("ignore:EM did not converge")
def test_gmm_em_on_narrow_data_runs_under_the_limit(fake, monkeypatch):
    seen: list[bool] = []
    sums = mixtures._GaussianEM._sums

    def watched(self, *args, **kwargs):
        seen.append(fake.limited)
        return sums(self, *args, **kwargs)

    monkeypatch.setattr(mixtures._GaussianEM, "_sums", watched)
    x = np.random.default_rng(0).standard_normal((300, 4))
    make("gmm", n_components=3, max_iter=3, random_state=0).fit(x)
    assert seen and all(seen) and not fake.limited
    seen.clear()
    monkeypatch.setattr(mixtures, "_SMALL_BLOCK", 0)  # every block "large": no limit
    make("gmm", n_components=3, max_iter=3, random_state=0).fit(x)
    assert seen and not any(seen)
