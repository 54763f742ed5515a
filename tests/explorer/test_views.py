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
        ptheta.make("made", dtype="int8").build_module(DataSpec("binary", (5,)))


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


def test_new_view_lists_follow_capabilities_and_taxonomy_labels(fake_families):
    names = views.explorer_families()
    caps = views.capabilities
    score, ode = views.score_models(), views.ode_models()
    assert "toy-langevin" in score and "toy-ode" in ode
    for found in (score, ode):
        assert found == [n for n in names if n in found]  # registry order
    for name in names:  # every family with the capabilities is listed, and only those
        c = caps(name)
        flat = c.fits("continuous") and not c.needs_image and not c.needs_labels
        assert (name in score) == (flat and c.score_field and c.sample_paths == "langevin")
        assert (name in ode) == (flat and c.sample_paths == "ode")
    surprise = views.surprise_model()
    assert caps(surprise).closed_form and caps(surprise).likelihood == "exact"
    assert caps(surprise).fits("categorical")
    earlier = names[: names.index(surprise)]
    assert not any(caps(n).closed_form and caps(n).fits("categorical") for n in earlier)
    for row, (kind, labels, data_kind) in zip(views.mass_models(), views.MASS_KINDS, strict=True):
        assert row["kind"] == kind and row["data_kind"] == data_kind
        fitting = [
            n
            for n in names
            if ptheta.REGISTRY[n].family in labels and views._shows_mass(caps(n), data_kind)
        ]
        assert row["model"] == fitting[0]  # the first that fits, in registry order
        c = caps(row["model"])
        assert c.likelihood == "exact" and c.fits(data_kind)
        if data_kind == "binary":
            assert not c.dequantises_discrete


def test_budget_is_the_explorer_preset_with_fallbacks():
    for name in ptheta.models.with_preset("explorer"):
        cls, steps = ptheta.REGISTRY[name], views.capabilities(name).trains_in_steps
        full = views.budget(name, quick=False)
        added = ("max_time", "epochs")  # what a family that trains in steps gets by default
        assert {k: v for k, v in full.items() if k not in added} == {
            k: v for k, v in cls.preset("explorer").items() if k not in added
        }
        if steps:
            assert full["max_time"] == cls.preset("explorer").get("max_time", 60)
            # an epoch limit too: with max_time, epochs="auto" would train the whole minute
            auto = cls.preset("explorer").get("epochs", getattr(cls, "auto_epochs", None))
            assert full.get("epochs") == auto
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


# --------------------------------------------------------------------------- a broken entry
def test_a_broken_registry_entry_is_left_out_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(ptheta.REGISTRY, "toy-broken", "no_such_module_here:Nothing")
    monkeypatch.setattr(views, "_WARNED", set())
    with caplog.at_level("WARNING", logger="ptheta.explorer.views"):
        names = views.explorer_families()
        again = views.explorer_families()
    assert "toy-broken" not in names and names == again
    warned = [r.getMessage() for r in caplog.records if "toy-broken" in r.getMessage()]
    assert len(warned) == 1 and "no_such_module_here" in warned[0]  # once, naming the module


# --------------------------------------------------------------------------- score field
def _grid(out: dict) -> np.ndarray:
    """The view's grid points (G·G, 2), row-major: point i·G + j is (x[j], y[i])."""
    gx, gy = np.meshgrid(out["x"], out["y"])
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def test_score_field_is_the_analytic_score_and_the_chains_reach_the_data(
    explorer, explorer_dirs, fake_families
):
    out = explorer.score_field("toy2d-moons", "toy-langevin", grid=9, chains=50, frames=11, seed=3)
    x = ptheta.datasets.load("toy2d-moons").train.x
    pts = _grid(out)
    # the score of N(mean, var I) fitted by moments, by hand
    mean, var = x.mean(axis=0), x.var(axis=0).mean()
    expected = -(pts - mean) / var  # (G·G, 2)
    np.testing.assert_allclose(np.ravel(out["u"]), expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(np.ravel(out["v"]), expected[:, 1], rtol=1e-12)
    np.testing.assert_allclose(np.ravel(out["norm"]), np.hypot(*expected.T), rtol=1e-12)
    # the chains are the cached model's own, drawn with the seed
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-moons" / "toy-langevin")
    paths = np.array(out["paths"])
    assert paths.shape == (11, 50, 2)
    np.testing.assert_array_equal(paths, model.sample_paths(50, n_frames=11, random_state=3))
    # median distance to the nearest of the first 2000 training points, by brute force
    near = x[: views.N_NEAREST]
    gaps = np.linalg.norm(paths[:, :, None, :] - near[None, None], axis=-1).min(-1)  # (F, n)
    np.testing.assert_allclose(out["distance_to_data"], np.median(gaps, axis=1), rtol=1e-12)
    # chains started from wide noise end among the data
    assert out["distance_to_data"][-1] < 0.5 * out["distance_to_data"][0]
    assert explorer.score_field("toy2d-moons", "toy-langevin", seed=4)["paths"] != out["paths"]


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"grid": 4}, ParameterError, "5..40"),
        ({"grid": 41}, ParameterError, "5..40"),
        ({"chains": 0}, ParameterError, "chains"),
        ({"chains": 201}, ParameterError, "1..200"),
        ({"frames": 1}, ParameterError, "frames"),
        ({"seed": -1}, ParameterError, "seed"),
        ({"model": "toy-ode"}, UnknownNameError, "score-field"),
        ({"data": "digits"}, UnknownNameError, "2-D toy"),
    ],
)
def test_score_field_refuses_bad_values(explorer, fake_families, kwargs, error, word):
    args = {"data": "toy2d-moons", "model": "toy-langevin", **kwargs}
    with pytest.raises(error, match=word):
        explorer.score_field(args.pop("data"), args.pop("model"), **args)


# --------------------------------------------------------------------------- ODE paths
def test_ode_density_integrates_to_the_gaussian_mass_of_the_box(
    explorer, explorer_dirs, fake_families
):
    from scipy.stats import norm

    out = explorer.ode("toy2d-circles", "toy-ode", grid=60, paths=40, frames=6, seed=1)
    x = ptheta.datasets.load("toy2d-circles").train.x
    mean, std = x.mean(axis=0), x.std(axis=0)
    pts = _grid(out)
    log_density = norm.logpdf(pts, mean, std).sum(1)  # (G·G,): N(mean, diag(std²)) by hand
    np.testing.assert_allclose(np.ravel(out["log_z"]), log_density, rtol=1e-12)
    # Σ density × cell area is the midpoint rule over the cells around the grid points:
    # the Gaussian mass of [x_0 − h/2, x_G-1 + h/2] × [...], to the rule's O(h²) error
    mass = 1.0
    for axis, d in ((np.array(out["x"]), 0), (np.array(out["y"]), 1)):
        h = axis[1] - axis[0]
        lo, hi = axis[0] - h / 2, axis[-1] + h / 2
        mass *= norm.cdf(hi, mean[d], std[d]) - norm.cdf(lo, mean[d], std[d])
    assert out["integral"] == pytest.approx(mass, rel=2e-3)
    assert 0.9 < out["integral"] <= 1.0
    # the paths are the model's, from its noise to its data
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-circles" / "toy-ode")
    paths = np.array(out["paths"])
    np.testing.assert_array_equal(paths, model.sample_paths(40, n_frames=6, random_state=1))
    # the box holds the bulk of the model's samples, whatever the paths drawn
    lo, hi = np.quantile(model.sample(2000, random_state=0), [0.001, 0.999], axis=0)
    assert out["x"][0] < lo[0] and out["y"][0] < lo[1]
    assert out["x"][-1] > hi[0] and out["y"][-1] > hi[1]
    other = explorer.ode("toy2d-circles", "toy-ode", grid=60, paths=40, frames=6, seed=2)
    assert other["z"] == out["z"] and other["paths"] != out["paths"]
    near = x[: views.N_NEAREST]
    gaps = np.linalg.norm(paths[:, :, None, :] - near[None, None], axis=-1).min(-1)  # (F, n)
    np.testing.assert_allclose(out["distance_to_data"], np.median(gaps, axis=1), rtol=1e-12)
    assert out["details"] == {"ode_solver": "closed form", "nfe": 0}
    assert out["likelihood"] == "exact" and out["quantity"] == "density"


def test_ode_options_and_bad_values(explorer, fake_families):
    options = explorer.ode_options()
    names = [m["model"] for m in options["models"]]
    assert names == views.ode_models() and "toy-ode" in names
    assert {"model": "toy-ode", "likelihood": "exact"} in options["models"]
    assert "toy-langevin" not in names and "toy-ode" not in views.score_models()
    with pytest.raises(ParameterError, match=r"10\.\.200"):
        explorer.ode("toy2d-moons", "toy-ode", grid=5)
    with pytest.raises(ParameterError, match="paths"):
        explorer.ode("toy2d-moons", "toy-ode", paths=0)
    with pytest.raises(UnknownNameError, match="ODE view"):
        explorer.ode("toy2d-moons", "toy-langevin")


def test_a_sampler_that_breaks_the_path_contract_is_named(explorer, fake_families, monkeypatch):
    cls = fake_families["toy-ode"]
    monkeypatch.setattr(cls, "sample_paths", lambda self, n, **kw: np.zeros((n, 2)))
    with pytest.raises(ParameterError, match=r"'toy-ode'\.sample_paths returned shape"):
        explorer.ode("toy2d-moons", "toy-ode", grid=10)


def test_no_family_for_a_view_is_one_clear_error(explorer, monkeypatch):
    monkeypatch.setattr(views, "explorer_families", lambda: [])
    with pytest.raises(ParameterError, match="no registered family can be the score-field"):
        explorer.score_field("toy2d-moons")
    with pytest.raises(ParameterError, match="no registered family can be the ODE view"):
        explorer.ode("toy2d-moons")
    rows = explorer.mass()["models"]
    assert [r["model"] for r in rows] == [None, None, None]
    assert all("no registered" in r["missing"] for r in rows)


# --------------------------------------------------------------------------- surprise
def test_surprise_numbers_are_the_fitted_models_information(explorer):
    out = explorer.surprise(p=0.0, q=1.0, event=7)
    name = views.surprise_model()
    assert out["model"] == name and views.capabilities(name).closed_form
    p, q = out["distributions"]
    n, k = views.SURPRISE_DRAWS, views.SURPRISE_OUTCOMES
    for row in (p, q):
        fitted = np.array(row["fitted"])
        # the fitted model's probabilities: the draws' counts, smoothed by its pseudo-count
        alpha = ptheta.make(name, **views.budget(name, True)).alpha
        counts = np.bincount(views.surprise_draws(row["peakedness"]).ravel(), minlength=k)
        np.testing.assert_allclose(fitted, (counts + alpha) / (n + k * alpha), rtol=1e-12)
        # close to the distribution drawn from, to the sampling error
        true = np.array(row["true"])
        assert np.all(np.abs(fitted - true) < 5 * np.sqrt(true / n) + 1e-4)
        # surprise is −log p; entropy is the expected surprise, −Σ p log p
        np.testing.assert_allclose(row["surprise_nats"], -np.log(fitted), rtol=1e-12)
        np.testing.assert_allclose(row["surprise_bits"], -np.log2(fitted), rtol=1e-12)
        h = -(fitted * np.log(fitted)).sum()
        assert row["entropy"]["nats"] == pytest.approx(h, rel=1e-12)
        assert row["entropy"]["bits"] == pytest.approx(h / math.log(2), rel=1e-12)
        assert row["event_surprise_nats"] == row["surprise_nats"][7]
    # uniform: every outcome is log K nats of surprise, and the entropy is the most there is
    assert p["entropy"]["nats"] == pytest.approx(math.log(k), abs=1e-3)
    assert max(p["surprise_nats"]) - min(p["surprise_nats"]) < 0.1
    # peaked: the rare outcome surprises far more than the common one, and H is lower
    assert q["surprise_bits"][7] > 10 > 1 > q["surprise_bits"][0]
    assert q["entropy"]["nats"] < p["entropy"]["nats"] - 0.9
    # cross-entropy = entropy + KL, from three separate closed forms
    for a, b, key in ((p, q, "p_q"), (q, p, "q_p")):
        fa, fb = np.array(a["fitted"]), np.array(b["fitted"])
        assert out["cross_entropy"][key]["nats"] == pytest.approx(-(fa * np.log(fb)).sum())
        assert out["kl"][key]["nats"] == pytest.approx(
            out["cross_entropy"][key]["nats"] - a["entropy"]["nats"], abs=1e-12
        )
        assert out["kl"][key]["nats"] > 0 and out["kl"][key]["method"] == "closed-form"
    same = explorer.surprise(p=0.5, q=0.5)
    assert same["kl"]["p_q"]["nats"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"p": -0.1}, r"p must be a number in \[0, 1\]"),
        ({"q": 1.5}, r"q must be a number in \[0, 1\]"),
        ({"q": float("nan")}, "q must be"),
        ({"p": True}, "p must be"),
        ({"event": 8}, "0..7"),
        ({"event": 1.0}, "whole number"),
    ],
)
def test_surprise_refuses_bad_values(explorer, kwargs, word):
    with pytest.raises(ParameterError, match=word):
        explorer.surprise(**kwargs)


# --------------------------------------------------------------------------- probability budget
def test_every_kind_spends_one_unit_of_mass(explorer, explorer_dirs):
    import itertools

    out = explorer.mass(row=3, data="toy2d-moons", grid=60)
    rows = {r["kind"]: r for r in out["models"]}
    assert list(rows) == [kind for kind, _, _ in views.MASS_KINDS]
    for kind, labels, data_kind in views.MASS_KINDS:
        row = rows[kind]
        assert row["family"] in labels and ptheta.REGISTRY[row["model"]].family in labels
        assert row["likelihood"] == "exact" and row["data_kind"] == data_kind
        parts = [part["mass"] for part in row["parts"]]
        assert parts == sorted(parts, reverse=True)
        assert math.fsum(parts) + row["rest"]["mass"] == pytest.approx(row["total"], rel=1e-12)
    for kind in ("autoregressive", "latent variable"):
        row = rows[kind]
        path = explorer_dirs["cache"] / "mass" / "digits-binary-row3" / row["model"]
        model = ptheta.load(path)
        configurations = np.array(list(itertools.product([0, 1], repeat=8)))  # (256, 8)
        prob = np.exp(model.score_samples(configurations))
        assert row["n_configurations"] == 256
        assert row["total"] == pytest.approx(math.fsum(prob), rel=1e-12)
        assert row["total"] == pytest.approx(1.0, abs=1e-9)  # exact: one unit, no more
        # the parts are the most probable configurations, drawn ■ on □ off
        top = np.sort(prob)[::-1][: views.MASS_TOP]
        np.testing.assert_allclose([p["mass"] for p in row["parts"]], top, rtol=1e-12)
        for part in row["parts"]:
            assert part["label"] == "".join("■" if v else "□" for v in part["configuration"])
            shown = np.exp(model.score_samples(np.array([part["configuration"]])))[0]
            assert part["mass"] == pytest.approx(shown, rel=1e-12)
        # the model was fitted to row 4 of the binary digits
        x = ptheta.datasets.load("digits-binary").train.x[:, 24:32]
        assert model.score(x) > math.fsum(prob * np.log(prob)) - 3  # fits the row somewhat
    flow = rows["flow"]
    z = np.array(flow["density"]["z"])
    x, y = np.array(flow["density"]["x"]), np.array(flow["density"]["y"])
    assert flow["total"] == pytest.approx(z.sum() * (x[1] - x[0]) * (y[1] - y[0]), rel=1e-12)
    assert flow["total"] == pytest.approx(1.0, abs=0.03)  # grid quadrature, tails outside
    assert flow["rest"]["count"] + len(flow["parts"]) == views.MASS_BLOCKS**2
    # each region's mass is that of the grid cells whose centres it holds
    cells = z * (x[1] - x[0]) * (y[1] - y[0])
    for part in flow["parts"]:
        x0, x1, y0, y1 = part["box"]
        inside = np.outer((y > y0) & (y < y1), (x > x0) & (x < x1))  # (G, G) like z
        assert part["mass"] == pytest.approx(cells[inside].sum(), rel=1e-12)
        assert "-" not in part["label"] and "−0.0 " not in part["label"]


def test_an_overspent_model_shows_more_than_one_unit(explorer, monkeypatch):
    from fake_families import FakeUnnormalised

    monkeypatch.setitem(ptheta.REGISTRY, FakeUnnormalised.name, FakeUnnormalised)
    first = views.explorer_families
    monkeypatch.setattr(views, "explorer_families", lambda: [FakeUnnormalised.name, *first()])
    row = explorer.mass(row=2)["models"][0]
    assert row["model"] == FakeUnnormalised.name and row["kind"] == "autoregressive"
    assert row["total"] == pytest.approx(FakeUnnormalised.EXTRA, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"row": 8}, ParameterError, "0..7"),
        ({"row": -1}, ParameterError, "row"),
        ({"grid": 9}, ParameterError, "10..200"),
        ({"data": "digits"}, UnknownNameError, "2-D toy"),
    ],
)
def test_mass_refuses_bad_values(explorer, kwargs, error, word):
    with pytest.raises(error, match=word):
        explorer.mass(**kwargs)


# --------------------------------------------------------------------------- the real families
def _importable(name: str) -> None:
    """Skip, saying why, while family ``name``'s module is not there yet."""
    from ptheta.errors import RegistryError

    try:
        ptheta.REGISTRY[name]
    except RegistryError as e:
        pytest.skip(f"the {name!r} family cannot be imported here, so its view is untested: {e}")


@pytest.mark.parametrize("name", ["ncsn"])
def test_a_real_score_family_draws_its_own_field(explorer, explorer_dirs, name):
    _importable(name)
    assert name in views.score_models(), f"{name}'s explorer preset lacks score_field/langevin"
    out = explorer.score_field("toy2d-moons", name, grid=8, chains=64, frames=5, seed=0)
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-moons" / name)
    field = np.stack([np.ravel(out["u"]), np.ravel(out["v"])], axis=1)
    np.testing.assert_allclose(field, model.score_field(_grid(out)), rtol=1e-5, atol=1e-6)
    paths = np.array(out["paths"])
    assert paths.shape == (5, 64, 2) and np.isfinite(paths).all()
    assert out["distance_to_data"][-1] < out["distance_to_data"][0]  # chains move to the data


@pytest.mark.parametrize("name", ["flow-matching", "score-sde"])
def test_a_real_ode_family_draws_its_paths_and_a_normalised_density(explorer, explorer_dirs, name):
    _importable(name)
    assert name in views.ode_models(), f"{name}'s explorer preset does not sample by an ODE"
    out = explorer.ode("toy2d-moons", name, grid=30, paths=64, frames=5, seed=0)
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-moons" / name)
    np.testing.assert_allclose(
        np.ravel(out["log_z"]), model.score_samples(_grid(out)), rtol=1e-5, atol=1e-5
    )
    assert out["integral"] == pytest.approx(1.0, abs=0.2)  # quick budgets, a 30×30 grid
    paths = np.array(out["paths"])
    assert paths.shape == (5, 64, 2) and np.isfinite(paths).all()
    start = paths[0]  # the Gaussian end: about N(0, I)
    assert np.abs(start.mean(0)).max() < 0.5 and 0.6 < start.std(0).mean() < 1.5
