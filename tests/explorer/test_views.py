"""The explorer's computations without HTTP: exact numbers, derived model lists, hand maths."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest

import ptheta
from ptheta.errors import ParameterError, UnknownNameError
from ptheta.explorer import views
from ptheta.models.base import GenerativeModel


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


# --------------------------------------------------------------------------- spam
def test_naive_bayes_posterior_equals_hand_computation(explorer):
    words = ["free", "meeting", "viagra"]
    out = explorer.spam_posterior(words)
    fitted = explorer._spam()
    # the view asks its classifier through predict_proba only; naive Bayes's own parameters
    # give the hand computation
    assert fitted["model"] == views.spam_classifier() == "naive-bayes"
    assert out["classifier"] == fitted["model"]
    nb, vocab = fitted["classifier"], fitted["corpus"].vocabulary
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


def test_partial_flow_goes_from_the_base_to_the_model():
    x = ptheta.datasets.load("toy2d-moons").train.x
    flow = ptheta.make("realnvp", hidden=8, n_layers=2, epochs=1, dtype="float64").fit(x)
    assert flow.capabilities().partial_flows
    n = flow.n_flow_layers()
    pts = x[:50]
    base = -0.5 * (pts**2).sum(1) - math.log(2 * math.pi)
    np.testing.assert_allclose(flow.partial_log_prob(pts, 0), base, rtol=1e-12)
    np.testing.assert_allclose(flow.partial_log_prob(pts, n), flow.score_samples(pts), rtol=1e-9)
    # the same seed gives the same draws; at k = L they are the model's own samples' law
    np.testing.assert_array_equal(flow.partial_sample(20, 1), flow.partial_sample(20, 1))
    assert flow.partial_sample(20, n, random_state=3).shape == (20, 2)
    with pytest.raises(ParameterError, match="k"):
        flow.partial_log_prob(pts, n + 1)


def test_build_module_counts_what_fit_trains():
    from ptheta.data.spec import DataSpec

    x = np.random.default_rng(0).integers(0, 2, size=(64, 5))
    made = ptheta.make("made", hidden=[8], epochs=1)
    built = made.build_module(DataSpec("binary", (5,)))
    trained = made.fit(x).module
    assert sum(p.numel() for p in built.parameters()) == sum(
        p.numel() for p in trained.parameters()
    )
    with pytest.raises(ParameterError, match="dtype"):
        ptheta.make("made", dtype="float16").build_module(DataSpec("binary", (5,)))


# --------------------------------------------------------------------------- derived lists
def test_view_lists_follow_presets_and_capabilities():
    names = ptheta.models.with_preset("explorer")
    caps = views.capabilities
    lists = {
        "space_fitted": views.space_fitted(),
        "space_built": views.space_built(),
        "structure": views.structure_models(),
        "surface": views.surface_models(),
    }
    for found in lists.values():
        assert found and found == [n for n in names if n in found]  # registry order
    for name in lists["space_fitted"] + lists["space_built"]:
        c = caps(name)
        assert c.fits("binary") and c.likelihood == "exact" and not c.dequantises_discrete
        assert (name in lists["space_built"]) == c.trains_in_steps
    for name in lists["structure"]:
        c = caps(name)
        assert c.fits("categorical") and c.likelihood == "exact" and not c.dequantises_discrete
    for name in lists["surface"]:
        c = caps(name)
        assert c.fits("continuous") and not c.needs_image and not c.needs_labels
        assert c.likelihood != "none" or c.anomaly_score == "energy"
    # a family of the registry with the preset and fitting capabilities is never left out
    for name in names:
        c = caps(name)
        drawable = c.likelihood == "exact" and not (c.needs_image or c.needs_labels)
        if c.fits("continuous") and drawable:
            assert name in lists["surface"]
    assert caps(views.structure_graph_model()).exports_structure
    assert caps(views.flow_model()).partial_flows and views.flow_model() in lists["surface"]
    assert caps(views.spam_classifier()).classifies


def test_budget_is_the_explorer_preset_with_fallbacks():
    for name in ptheta.models.with_preset("explorer"):
        cls, steps = ptheta.REGISTRY[name], views.capabilities(name).trains_in_steps
        full = views.budget(name, quick=False)
        assert {k: v for k, v in full.items() if k != "max_time"} == {
            k: v for k, v in cls.preset("explorer").items() if k != "max_time"
        }
        if steps:
            assert full["max_time"] == cls.preset("explorer").get("max_time", 60)
        quick = cls.preset("explorer-quick")
        if quick is None:
            quick = cls.preset("quick") if steps else cls.preset("explorer")
        assert views.budget(name, quick=True) == quick


# --------------------------------------------------------------------------- toy families
class _Gaussian(GenerativeModel):
    """A stand-in family: one isotropic Gaussian, with an "explorer" preset."""

    name: ClassVar[str] = "toy-gaussian"
    family: ClassVar[str] = "test"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    presets: ClassVar[dict[str, dict]] = {"explorer": {"scale": 2.0}}

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def _fit(self, x, y, spec):
        self.mean_ = x.mean(axis=0)

    def _score_samples(self, x):
        d = x.shape[1]
        s2 = self.scale**2
        return -0.5 * ((x - self.mean_) ** 2).sum(1) / s2 - 0.5 * d * math.log(2 * math.pi * s2)

    def _sample(self, n, y, rng):
        return self.mean_ + self.scale * rng.standard_normal((n, len(self.mean_)))

    def _n_parameters(self):
        return len(self.mean_)


class _HiddenGaussian(_Gaussian):
    """The same family without an "explorer" preset."""

    name: ClassVar[str] = "toy-hidden"
    presets: ClassVar[dict[str, dict]] = {}


class _Silent(_Gaussian):
    """An "explorer" preset but nothing to draw: no likelihood, no energy."""

    name: ClassVar[str] = "toy-silent"
    likelihood: ClassVar[str] = "none"
    presets: ClassVar[dict[str, dict]] = {"explorer": {}}


def test_a_new_family_with_an_explorer_preset_appears_in_the_surface_view(tmp_path, monkeypatch):
    for cls in (_Gaussian, _HiddenGaussian, _Silent):
        monkeypatch.setitem(ptheta.REGISTRY, cls.name, cls)
    options = {m["model"]: m["quantity"] for m in views.surface_options()["models"]}
    assert options["toy-gaussian"] == "density"
    assert "toy-hidden" not in options and "toy-silent" not in options
    assert list(options)[-1] == "toy-gaussian"  # registry order: added last
    assert "toy-gaussian" not in views.space_fitted() + views.structure_models()
    assert views.budget("toy-gaussian", quick=True) == {"scale": 2.0}  # classical: explorer
    out = views.Explorer(tmp_path, quick=True).surface("toy2d-circles", "toy-gaussian", grid=20)
    model = ptheta.load(tmp_path / "surface" / "toy2d-circles" / "toy-gaussian")
    assert model.scale == 2.0
    gx, gy = np.meshgrid(out["x"], out["y"])
    expected = model.score_samples(np.stack([gx.ravel(), gy.ravel()], axis=1))
    np.testing.assert_allclose(np.ravel(out["log_z"]), expected)
    with pytest.raises(UnknownNameError):
        views.Explorer(tmp_path, quick=True).surface("toy2d-circles", "toy-hidden")


def test_a_neural_family_without_a_quick_explorer_preset_uses_its_quick_preset(monkeypatch):
    class Stepped(_Gaussian):
        name: ClassVar[str] = "toy-stepped"
        abilities: ClassVar[dict] = {"trains_in_steps": True}
        presets: ClassVar[dict[str, dict]] = {"explorer": {"scale": 2.0}, "quick": {"scale": 0.5}}

    monkeypatch.setitem(ptheta.REGISTRY, Stepped.name, Stepped)
    assert views.budget("toy-stepped", quick=True) == {"scale": 0.5}
    assert views.budget("toy-stepped", quick=False) == {"scale": 2.0, "max_time": 60}


# --------------------------------------------------------------------------- energy surfaces
class _QuadraticEnergy(GenerativeModel):
    """A stand-in energy model: E(x) = |x − mean|² / 2, no likelihood (an energy-based family)."""

    name: ClassVar[str] = "toy-energy"
    family: ClassVar[str] = "energy-based"
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    abilities: ClassVar[dict] = {"anomaly_score": "energy"}
    presets: ClassVar[dict[str, dict]] = {"explorer": {"shift": 1000.0}}

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
    monkeypatch.setitem(ptheta.REGISTRY, "toy-energy", _QuadraticEnergy)
    options = {m["model"]: m["quantity"] for m in views.surface_options()["models"]}
    assert options["toy-energy"] == "negative energy (unnormalised)"
    ex = views.Explorer(tmp_path, quick=True)
    out = ex.surface("toy2d-circles", "toy-energy", grid=20)
    assert out["integral"] is None and out["likelihood"] == "none"
    gx, gy = np.meshgrid(out["x"], out["y"])
    model = ptheta.load(tmp_path / "surface" / "toy2d-circles" / "toy-energy")
    energy = model.energy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    np.testing.assert_allclose(np.ravel(out["log_z"]), -energy)
    # exp(−E) would underflow to 0 everywhere: it is scaled to a maximum of 1
    z = np.array(out["z"])
    assert z.max() == 1.0
    np.testing.assert_allclose(z.ravel(), np.exp(energy.min() - energy))
