"""The explorer's computations without HTTP: exact numbers, the model cache, hand-checked maths."""

from __future__ import annotations

import math
import threading
import time
from typing import ClassVar

import numpy as np
import pytest

import ptheta
from ptheta.errors import ParameterError, UnknownNameError
from ptheta.explorer import views
from ptheta.models.base import GenerativeModel
from ptheta.train.rundir import WEIGHTS


def test_space_numbers_for_every_n():
    for n in range(1, views.MAX_SPACE_N + 1):
        out = views.space_numbers(n)
        assert out["free_parameters_log2"] == math.log2(2**n - 1)
        assert out["red"] == (n >= 266)  # 2^n − 1 > 2^265 ⇔ n ≥ 266
        assert set(out["exceeds"]) == {name for name, b in views.REFERENCES if n > b}
    with pytest.raises(ParameterError, match=r"1\.\.784"):
        views.space_numbers(0)
    with pytest.raises(ParameterError, match="whole number"):
        views.space_numbers(True)


# --------------------------------------------------------------------------- cache
def _fit_markov(order: int):
    x = np.random.default_rng(0).integers(0, 2, size=(20, 4))

    def fit(path):
        from ptheta.train.rundir import save_run

        save_run(ptheta.make("markov", order=order).fit(x), path)

    return fit


def test_cache_fits_once_under_concurrent_requests(tmp_path):
    cache = views.ModelCache(tmp_path)
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
    first = views.ModelCache(tmp_path)
    first.get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    again = views.ModelCache(tmp_path)  # a new app on the same folder
    model = again.get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    assert again.loads[("v", "d", "markov")] == 1 and not again.fits
    assert model.order == 1
    other = views.ModelCache(tmp_path)  # another budget: fitted again
    assert other.get("v", "d", "markov", {"order": 2}, _fit_markov(2)).order == 2
    assert other.fits[("v", "d", "markov")] == 1
    (tmp_path / "v" / "d" / "markov" / WEIGHTS).write_bytes(b"garbage")
    damaged = views.ModelCache(tmp_path)
    assert damaged.get("v", "d", "markov", {"order": 2}, _fit_markov(2)).order == 2
    assert damaged.fits[("v", "d", "markov")] == 1


def test_a_refit_swaps_the_run_in_whole_and_a_failed_one_keeps_the_old(tmp_path):
    views.ModelCache(tmp_path).get("v", "d", "markov", {"order": 1}, _fit_markov(1))
    run = tmp_path / "v" / "d" / "markov"
    seen = []

    def failing(path):
        seen.append(path)
        _fit_markov(2)(path)  # a complete run ... then a crash before it is swapped in
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        views.ModelCache(tmp_path).get("v", "d", "markov", {"order": 2}, failing)
    assert seen[0] != run  # never fitted in place: readers never see a half-written run
    assert ptheta.load(run).order == 1  # the old run is intact
    refit = views.ModelCache(tmp_path).get("v", "d", "markov", {"order": 2}, _fit_markov(2))
    assert refit.order == 2 and ptheta.load(run).order == 2
    assert sorted(p.name for p in run.parent.iterdir()) == ["markov"]  # no temporary folders


# --------------------------------------------------------------------------- spam
def test_naive_bayes_posterior_equals_hand_computation(explorer):
    words = ["free", "meeting", "viagra"]
    out = explorer.spam_posterior(words)
    fitted = explorer._spam()
    nb, vocab = fitted["nb"], fitted["corpus"].vocabulary
    spam_row = list(nb.classes_).index(1)
    theta = np.exp(nb.feature_log_prob_[:, :, 1])  # (C, V): P(word present | class)
    log_odds = nb.class_log_prior_[spam_row] - nb.class_log_prior_[1 - spam_row]
    for i, word in enumerate(vocab):  # a plain loop over Bernoulli factors
        p_s, p_h = theta[spam_row, i], theta[1 - spam_row, i]
        if word in words:
            log_odds += math.log(p_s) - math.log(p_h)
        else:
            log_odds += math.log(1 - p_s) - math.log(1 - p_h)
    assert out["naive_bayes_log_odds"] == pytest.approx(log_odds, rel=1e-12)
    assert out["naive_bayes"] == pytest.approx(1 / (1 + math.exp(-log_odds)), rel=1e-12)
    x = np.isin(vocab, words).astype(np.int64)[None]
    assert out["logistic"] == pytest.approx(fitted["logistic"].predict_proba(x)[0, 1])
    parts = sum(c["naive_bayes"] for c in out["contributions"])
    assert out["naive_bayes_log_odds"] == pytest.approx(out["naive_bayes_base_log_odds"] + parts)


def test_correlated_pair_is_double_counted_by_naive_bayes_only(explorer):
    move = {}
    for key in ("naive_bayes_log_odds", "logistic_log_odds"):
        base = explorer.spam_posterior([])[key]
        move[key] = {
            words: explorer.spam_posterior(list(words))[key] - base
            for words in [("viagra",), ("pills",), ("viagra", "pills")]
        }
    nb, lr = move["naive_bayes_log_odds"], move["logistic_log_odds"]
    # NB: the pair moves the log-odds by the sum of both words' moves, almost twice one
    assert nb[("viagra", "pills")] == pytest.approx(nb[("viagra",)] + nb[("pills",)])
    assert nb[("viagra", "pills")] > 1.8 * nb[("viagra",)]
    # logistic regression saw the words together and split the evidence between them
    assert lr[("viagra", "pills")] < 0.6 * nb[("viagra", "pills")]
    assert lr[("viagra",)] < 0.6 * nb[("viagra",)]


# --------------------------------------------------------------------------- flow
def test_flow_strength_rounds_half_up(explorer):
    n_layers = explorer.flow_options()["n_layers"]
    for strength in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = explorer.flow("toy2d-moons", strength=strength, grid=10)
        assert out["layer"] == math.floor(strength * n_layers + 0.5)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        explorer.flow("toy2d-moons", strength=float("nan"))
    with pytest.raises(UnknownNameError):
        explorer.flow("digits")


# --------------------------------------------------------------------------- energy surfaces
class _QuadraticEnergy(GenerativeModel):
    """A stand-in energy model: E(x) = |x − mean|² / 2, no likelihood (like ``ebm``)."""

    name: ClassVar[str] = "ebm"
    family: ClassVar[str] = "energy-based"
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def _fit(self, x, y, spec):
        self.mean_ = x.mean(axis=0)

    def energy(self, X):
        return 0.5 * ((np.asarray(X) - self.mean_) ** 2).sum(axis=1) + self.shift

    def _sample(self, n, y, rng):
        return self.mean_ + rng.standard_normal((n, len(self.mean_)))

    def _n_parameters(self):
        return len(self.mean_)


def test_unnormalised_surface_uses_the_energy(tmp_path, monkeypatch):
    monkeypatch.setitem(ptheta.REGISTRY, "ebm", _QuadraticEnergy)
    monkeypatch.setitem(views.BUDGETS, "ebm", ({"shift": 1000.0}, {"shift": 1000.0}))
    options = {m["model"]: m["quantity"] for m in views.surface_options()["models"]}
    assert options["ebm"] == "negative energy (unnormalised)"
    ex = views.Explorer(tmp_path, quick=True)
    out = ex.surface("toy2d-circles", "ebm", grid=20)
    assert out["integral"] is None and out["likelihood"] == "none"
    gx, gy = np.meshgrid(out["x"], out["y"])
    model = ptheta.load(tmp_path / "surface" / "toy2d-circles" / "ebm")
    energy = model.energy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    np.testing.assert_allclose(np.ravel(out["log_z"]), -energy)
    # exp(−E) would underflow to 0 everywhere: it is scaled to a maximum of 1
    z = np.array(out["z"])
    assert z.max() == 1.0
    np.testing.assert_allclose(z.ravel(), np.exp(energy.min() - energy))
