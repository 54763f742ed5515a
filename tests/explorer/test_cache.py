"""The explorer's model cache: fitted once under concurrent requests, reloaded, swapped in whole."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import ptheta
from ptheta.explorer.cache import ModelCache
from ptheta.runs.layout import WEIGHTS


def _fit_markov(order: int):
    x = np.random.default_rng(0).integers(0, 2, size=(20, 4))

    def fit(path):
        from ptheta.runs.store import save_run

        save_run(ptheta.make("markov", order=order).fit(x), path)

    return fit


def test_cache_fits_once_under_concurrent_requests(tmp_path):
    cache = ModelCache(tmp_path)
    calls = []

    def slow_fit(path):
        calls.append(path)
        time.sleep(0.2)  # keeps the first request inside fit while the second arrives
        _fit_markov(1)(path)

    got = []
    threads = [
        threading.Thread(
            target=lambda: got.append(cache.get("v", "d", "markov", {"order": 1}, slow_fit))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and got[0] is got[1] is got[2]
    assert cache.fits[("v", "d", "markov")] == 1


def test_cache_reloads_refits_other_budgets_and_damaged_entries(tmp_path):
    first = ModelCache(tmp_path)
    first.get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    again = ModelCache(tmp_path)  # a new app on the same folder
    model = again.get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    assert again.loads[("v", "d", "markov")] == 1 and not again.fits
    assert model.order == 1
    other = ModelCache(tmp_path)  # another budget: fitted again
    assert other.get("v", "d", "markov", {"order": 2}, _fit_markov(2)).order == 2
    assert other.fits[("v", "d", "markov")] == 1
    (tmp_path / "v" / "d" / "markov" / WEIGHTS).write_bytes(b"garbage")
    damaged = ModelCache(tmp_path)
    assert damaged.get("v", "d", "markov", {"order": 2}, _fit_markov(2)).order == 2
    assert damaged.fits[("v", "d", "markov")] == 1


def test_a_refit_swaps_the_run_in_whole_and_a_failed_one_keeps_the_old(tmp_path):
    ModelCache(tmp_path).get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    run = tmp_path / "v" / "d" / "markov"
    seen = []

    def failing(path):
        seen.append(path)
        _fit_markov(2)(path)  # a complete run ... then a crash before it is swapped in
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        ModelCache(tmp_path).get("v", "d", "markov", {"order": 2}, failing)
    assert seen[0] != run  # never fitted in place: readers never see a half-written run
    assert ptheta.load(run).order == 1  # the old run is intact
    refit = ModelCache(tmp_path).get("v", "d", "markov", {"order": 2}, _fit_markov(2))
    assert refit.order == 2 and ptheta.load(run).order == 2
    assert sorted(p.name for p in run.parent.iterdir()) == ["markov"]  # no temporary folders
