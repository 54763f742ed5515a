"""One BLAS thread for small products: the limit holds inside, and only for small work."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from ptheta.models import make, mixtures
from ptheta.models.blas import blas_threads_for


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != {2}:  # none loaded, or a single-threaded build
            pytest.skip("no BLAS library here runs on two threads")
        yield


def test_small_work_runs_on_one_blas_thread_and_large_work_is_left_alone(two_blas_threads):
    assert _blas_threads() == {2}
    with blas_threads_for(1000, small=1000):
        assert _blas_threads() == {1}
    assert _blas_threads() == {2}  # restored on exit
    with blas_threads_for(1001, small=1000), blas_threads_for(None, small=1000):
        assert _blas_threads() == {2}


def test_overlapping_works_share_one_limit_and_the_last_to_finish_lifts_it(two_blas_threads):
    # two fits that overlap (as in two threads): the first to start finishes first, and
    # the original count must come back only when the second is done
    first, second = blas_threads_for(1, small=1), blas_threads_for(1, small=1)
    first.__enter__()
    second.__enter__()
    assert _blas_threads() == {1}
    first.__exit__(None, None, None)
    assert _blas_threads() == {1}  # the second is still inside
    second.__exit__(None, None, None)
    assert _blas_threads() == {2}


@pytest.mark.filterwarnings("ignore:EM did not converge")
def test_gmm_em_on_narrow_data_runs_on_one_blas_thread(two_blas_threads, monkeypatch):
    seen: list[set[int]] = []
    sums = mixtures._GaussianEM._sums

    def watched(self, *args, **kwargs):
        seen.append(_blas_threads())
        return sums(self, *args, **kwargs)

    monkeypatch.setattr(mixtures._GaussianEM, "_sums", watched)
    x = np.random.default_rng(0).standard_normal((300, 4))
    make("gmm", n_components=3, max_iter=3, random_state=0).fit(x)
    assert seen and all(s == {1} for s in seen)
    seen.clear()
    monkeypatch.setattr(mixtures, "_SMALL_BLOCK", 0)  # every block "large": threads kept
    make("gmm", n_components=3, max_iter=3, random_state=0).fit(x)
    assert seen and all(s == {2} for s in seen)
