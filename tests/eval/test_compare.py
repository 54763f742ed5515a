"""`ptheta.eval.compare`: kinds, recomputed NLLs, caching, failures, the bar chart."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ptheta.data import from_arrays
from ptheta.errors import DataError, ParameterError, UnknownNameError
from ptheta.eval import compare as cmp
from ptheta.eval.plots import nll_bar_figure
from ptheta.models import REGISTRY, make
from ptheta.models.base import GenerativeModel
from ptheta.runs import fitting
from ptheta.runs.store import load_run, read_metrics


class NoLikelihood(GenerativeModel):
    """Test double of an implicit family: independent bits, but no likelihood declared."""

    name: ClassVar[str] = "test-none"
    family: ClassVar[str] = "implicit"
    likelihood: ClassVar[str] = "none"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary",)

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing

    def _fit(self, x, y, spec):
        self.p_ = (x.sum(0) + self.smoothing) / (len(x) + 2 * self.smoothing)

    def _sample(self, n, y, rng):
        return (rng.random((n, *self.p_.shape)) < self.p_).astype(np.int64)

    def _n_parameters(self):
        return self.p_.size


class Broken(NoLikelihood):
    name: ClassVar[str] = "test-broken"

    def _fit(self, x, y, spec):
        raise RuntimeError("the solver diverged\nsecond line of detail")


class Unmeasurable(NoLikelihood):
    """Samples of ones only: the sample metrics are made to refuse them (see below)."""

    name: ClassVar[str] = "test-ones"

    def _sample(self, n, y, rng):
        return np.ones((n, *self.p_.shape), dtype=np.int64)


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setitem(REGISTRY, NoLikelihood.name, NoLikelihood)
    monkeypatch.setitem(REGISTRY, Broken.name, Broken)
    monkeypatch.setitem(REGISTRY, Unmeasurable.name, Unmeasurable)


@pytest.fixture(scope="module")
def data():
    # 8 binary variables with chain dependencies: each copies its left neighbour w.p. 0.8
    rng = np.random.default_rng(0)
    x = np.zeros((400, 8), dtype=np.int64)
    x[:, 0] = rng.random(400) < 0.5
    for j in range(1, 8):
        x[:, j] = np.where(rng.random(400) < 0.8, x[:, j - 1], 1 - x[:, j - 1])
    return from_arrays(x, name="chain8")


VAE = {"latent_dim": 2, "hidden": [8], "epochs": 3, "batch_size": 64, "iwae_samples": 5,
       "dtype": "float64", "device": "cpu"}  # fmt: skip
MODELS = "independent,gmm,vae,test-none"


def _compare(data, out, **kwargs):
    kwargs.setdefault("overrides", {"vae": VAE, "gmm": {"n_components": 2, "max_iter": 100}})
    return cmp.compare(data, kwargs.pop("models", MODELS), out, budget_seconds=30,
                       n_samples=50, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def first(data, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(REGISTRY, NoLikelihood.name, NoLikelihood)
        out = tmp_path_factory.mktemp("cmp")
        return out, _compare(data, out)


def test_rows_have_the_fitted_kinds_and_units(first):
    out, report = first
    on_disk = json.loads((out / "report.json").read_text())  # strict JSON: no NaN
    assert on_disk == json.loads(json.dumps(report, allow_nan=False))
    assert on_disk["schema"] == 1 and on_disk["split"] == {"train": 320, "val": 40, "test": 40}
    rows = {r["model"]: r for r in on_disk["rows"]}
    assert (rows["independent"]["likelihood"], rows["independent"]["units"]) == (
        "exact",
        "discrete",
    )
    assert (rows["gmm"]["likelihood"], rows["gmm"]["units"]) == ("bound", "dequantised")
    assert rows["vae"]["likelihood"] == "estimate" and rows["vae"]["units"] == "discrete"
    none = rows["test-none"]
    assert none["likelihood"] == "none" and none["status"] == "ok"
    assert none["test_nll_nats"] is None and none["test_nll_bits_per_dim"] is None
    assert none["test_nll_sem"] is None and none["fit_seconds"] is not None
    # the sample metrics of ptheta.eval.metrics are filled in for every model (memorisation
    # is undefined here: on 2^8 configurations held-out points sit at distance 0 too)
    assert on_disk["feature_space"] == "raw-chain8" and on_disk["metrics_note"] is None
    for r in rows.values():
        assert r["fd"] >= 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        assert (out / r["samples_png"]).is_file() and (out / r["run_dir"] / "config.json").is_file()
    assert rows["vae"]["curves_png"] and (out / rows["vae"]["curves_png"]).is_file()
    assert rows["independent"]["curves_png"] is None
    # sorted by NLL, the row without a likelihood last
    nlls = [r["test_nll_nats"] for r in on_disk["rows"]]
    assert nlls[-1] is None and nlls[:-1] == sorted(nlls[:-1])


def test_nll_is_minus_the_score_of_the_saved_run(first, data):
    out, report = first
    for r in report["rows"]:
        if r["likelihood"] == "none":
            continue
        model = load_run(out / r["run_dir"])
        nll = -model.score(data.test.x)
        assert r["test_nll_nats"] == pytest.approx(nll, rel=1e-9)
        assert r["test_nll_bits_per_dim"] == pytest.approx(nll / (8 * math.log(2)), rel=1e-9)
        scores = model.score_samples(data.test.x)
        assert r["test_nll_sem"] == pytest.approx(scores.std(ddof=1) / math.sqrt(40), rel=1e-9)
        # only the test split is scored: fit_run skips train/val (T passes each for a DDPM)
        assert not [m for m in read_metrics(out / r["run_dir"]) if m.get("event") == "eval"]


def test_markdown_report_has_the_table_legend_and_pictures(first):
    out, _ = first
    md = (out / "report.md").read_text()
    assert "| gmm | mixtures | bound (deq.) | ≤ " in md
    assert "| vae | latent variable | estimate | ≈ " in md
    assert "| test-none | implicit | none | — |" in md
    assert "![NLL per model](nll.png)" in md and "samples/vae.png" in md
    assert "curves/vae.png" in md and (out / "nll.png").is_file()


def test_a_second_run_refits_nothing_and_a_changed_parameter_refits_one(
    first, data, registry, monkeypatch
):
    out, report = first
    fitted = []
    original = cmp.fit_run
    monkeypatch.setattr(
        cmp, "fit_run", lambda name, *a, **k: fitted.append(name) or original(name, *a, **k)
    )
    again = _compare(data, out)
    assert fitted == [] and all(r["cached"] for r in again["rows"])
    # cached rows compute no metrics, yet the space is still named for what it is
    assert again["feature_space"] == report["feature_space"] == "raw-chain8"
    assert cmp.table_columns(again["feature_space"])[8] == "FD (raw)"
    assert "FD, precision / recall and MMD in raw-chain8" in " ".join(cmp.table_notes(again))
    same = {r["model"]: r["test_nll_nats"] for r in report["rows"]}
    assert {r["model"]: r["test_nll_nats"] for r in again["rows"]} == same
    changed = _compare(
        data, out, overrides={"vae": VAE, "gmm": {"n_components": 3, "max_iter": 100}}
    )
    assert fitted == ["gmm"]
    assert {r["model"]: r["cached"] for r in changed["rows"]} == {
        "independent": True, "gmm": False, "vae": True, "test-none": True}  # fmt: skip
    # a family's new default (a parameter the call does not name) refits its run too
    fitted.clear()
    gmm = cmp.get_model_class("gmm")
    monkeypatch.setitem(gmm.__init__.__kwdefaults__, "reg_covar", 1e-5)
    _compare(data, out, overrides={"vae": VAE, "gmm": {"n_components": 3, "max_iter": 100}})
    assert fitted == ["gmm"]
    # a new budget refits only the models it limits (the neural one); force refits all
    fitted.clear()
    cmp.compare(data, "independent,vae", out, budget_seconds=40, n_samples=50,
                overrides={"vae": VAE})  # fmt: skip
    assert fitted == ["vae"]
    cmp.compare(data, "independent", out, budget_seconds=40, n_samples=50, force=True)
    assert fitted == ["vae", "independent"]
    # another version of ptheta may fit differently: its runs are not reused
    monkeypatch.setattr(cmp, "__version__", "99.0")
    cmp.compare(data, "independent", out, budget_seconds=40, n_samples=50)
    assert fitted == ["vae", "independent", "independent"]


def test_a_failing_model_gives_a_failed_row_and_the_others_still_run(data, registry, tmp_path):
    report = cmp.compare(data, "test-broken,chow-liu,independent", tmp_path, budget_seconds=5,
                         n_samples=20)  # fmt: skip
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["chow-liu"]["status"] == rows["independent"]["status"] == "ok"
    broken = rows["test-broken"]
    assert broken["status"] == "failed" and broken["error"] == "RuntimeError: the solver diverged"
    assert broken["test_nll_nats"] is None and report["rows"][-1] is broken
    continuous = from_arrays(np.random.default_rng(1).normal(size=(50, 2)), name="gauss")
    report = cmp.compare(continuous, "chow-liu,independent", tmp_path / "c", budget_seconds=5,
                         n_samples=20)  # fmt: skip
    bad = next(r for r in report["rows"] if r["model"] == "chow-liu")
    assert bad["status"] == "failed" and "does not model continuous data" in bad["error"]
    assert "chow-liu failed" in " ".join(cmp.table_notes(report))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("1.5m", 90.0), (" 2 min ", 120.0), (30, 30.0)],
)
def test_budget_parsing(text, seconds):
    assert cmp.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1m", "0s", "m", "five minutes", "1h30m", True])
def test_bad_budgets_say_how_to_write_one(text):
    with pytest.raises(ParameterError, match="budget"):
        cmp.parse_budget(text)


def test_model_selection_and_parameters(data, registry):
    names, skipped = cmp.select_models("all", data)
    assert "independent" in names and "test-none" in names and "naive-bayes" not in names
    assert {"model": "naive-bayes", "reason": cmp.CLASSIFIER_SKIPPED} in skipped
    continuous = from_arrays(np.zeros((10, 2)) + np.arange(20).reshape(10, 2) / 3)
    assert "chow-liu" not in cmp.select_models("all", continuous)[0]
    with pytest.raises(UnknownNameError, match="did you mean"):
        cmp.select_models("independant", data)
    with pytest.raises(ParameterError, match="cannot be combined"):
        cmp.select_models("all,gmm", data)
    made = cmp.resolve_model_params("made", budget_seconds=60)
    assert made == {"max_time": 60.0}  # epochs="auto": the budget, not an epoch limit, ends it
    assert make("made", **made).train_config().epochs is None
    assert make("made").train_config().epochs == 50
    quick = cmp.resolve_model_params("made", budget_seconds=60, quick=True, overrides={"lr": 0.1})
    assert quick["epochs"] == REGISTRY["made"].quick_params["epochs"] and quick["lr"] == 0.1
    # EM families take the budget as max_time (no epochs); families without it: nothing
    assert cmp.resolve_model_params("gmm", budget_seconds=60) == {"max_time": 60.0}
    assert cmp.resolve_model_params("chow-liu", budget_seconds=60) == {}
    with pytest.raises(UnknownNameError, match="n_component"):
        cmp.resolve_model_params("gmm", budget_seconds=1, overrides={"n_component": 3})
    with pytest.raises(ParameterError, match="not among the compared models"):
        cmp.compare(data, "independent", "unused", budget_seconds=1, overrides={"gmm": {}})


def _row(model, likelihood, units, nll, status="ok"):
    return {"model": model, "likelihood": likelihood, "units": units, "test_nll_nats": nll,
            "test_nll_sem": 0.5, "status": status}  # fmt: skip


def test_the_bar_chart_draws_bounds_as_bounds_and_densities_apart():
    rows = [
        _row("exact-model", "exact", "discrete", 100.0),
        _row("flow", "bound", "dequantised", 120.0),
        _row("vae", "estimate", "discrete", 110.0),
        _row("gan", "none", None, None),
        _row("broken", None, None, None, status="failed"),
    ]
    fig = nll_bar_figure(rows)
    (ax,) = fig.axes
    bars = {t.get_text(): p for t, p in zip(ax.get_yticklabels(), ax.patches, strict=True)}
    assert set(bars) == {"exact-model", "flow", "vae"}  # no bar for gan or the failure
    assert bars["flow"].get_hatch() == "//" and bars["vae"].get_hatch() == ".."
    assert not bars["exact-model"].get_hatch()
    labels = [t.get_text().strip() for t in ax.texts]
    assert "≤ 120.00" in labels and "≈ 110.00" in labels and "100.00" in labels
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "no likelihood (sample metrics only): gan" in notes and "failed: broken" in notes
    plt.close(fig)
    fig = nll_bar_figure([*rows, _row("gmm", "exact", "continuous", -3.0)])
    assert len(fig.axes) == 2 and "not comparable" in fig.axes[1].get_xlabel()
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["gmm"]
    plt.close(fig)


def test_cells_say_the_kind_of_each_number():
    assert cmp.nll_text("bound", 135.0) == "≤ 135.00"
    assert cmp.nll_text("estimate", 1.234, sem=0.1) == "≈ 1.23 ± 0.10"
    assert cmp.nll_text("none", None) == cmp.nll_text(None, None) == "—"
    assert cmp.kind_label("exact", "continuous") == "exact density"
    assert cmp.kind_label("bound", "dequantised") == "bound (deq.)"
    assert cmp.kind_label(None, None) == "failed"


def test_metrics_failing_for_one_model_say_which_and_spare_the_others(
    data, registry, tmp_path, monkeypatch
):
    from ptheta.eval import metrics

    def refuse_ones(samples, *args, **kwargs):
        if np.all(samples == 1):
            raise DataError("samples are all ones")
        return quality(samples, *args, **kwargs)

    quality = metrics.sample_quality
    monkeypatch.setattr(metrics, "sample_quality", refuse_ones)
    models = "test-ones,independent"
    report = cmp.compare(data, models, tmp_path, budget_seconds=5, n_samples=20)
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["test-ones"]["status"] == rows["independent"]["status"] == "ok"
    assert rows["test-ones"]["fd"] is None and rows["independent"]["fd"] is not None
    assert report["metrics_note"] == (
        "test-ones: sample metrics not computed: DataError: samples are all ones"
    )
    evaluated = []
    original = cmp._evaluate
    monkeypatch.setattr(
        cmp, "_evaluate", lambda name, *a, **k: evaluated.append(name) or original(name, *a, **k)
    )
    again = cmp.compare(data, models, tmp_path, budget_seconds=5, n_samples=20)
    assert evaluated == ["test-ones"]  # the row without metrics is redone, the other is cached
    assert again["metrics_note"] == report["metrics_note"]


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _SlowSampler:
    """Each sample costs one fake second; samples are the seed's first draws."""

    def __init__(self, clock: _FakeClock) -> None:
        self.clock, self.calls = clock, []

    def sample(self, n: int, random_state: int) -> np.ndarray:
        self.clock.now += n
        self.calls.append(n)
        return np.random.default_rng(random_state).integers(0, 2, (n, 3))


def test_samples_under_a_budget_are_as_many_as_fit(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(fitting, "time", clock)
    model = _SlowSampler(clock)
    samples, n, seconds = fitting.draw_within(model, 500, seconds=20.0)
    # 8 first (8 s), then as many as the 12 s left allow, drawn again with the same seed
    assert model.calls == [8, 12] and n == 12 and len(samples) == 12 and seconds == 12.0
    np.testing.assert_array_equal(samples[:8], _SlowSampler(clock).sample(8, 0))
    model = _SlowSampler(clock)
    assert fitting.draw_within(model, 500, seconds=4.0)[1] == 8, "never fewer than the first draw"
    model = _SlowSampler(clock)
    assert fitting.draw_within(model, 30, seconds=None)[1] == 30 and model.calls == [30]


def test_the_table_says_which_rows_were_cut_by_the_budget():
    row = {"model": "slow", "status": "ok", "units": "nats", "cached": False,
           "test_n_scored": 40, "n_samples": 12}  # fmt: skip
    fine = {**row, "model": "fast", "test_n_scored": 100, "n_samples": 500}
    report = {"rows": [row, fine], "split": {"test": 100}, "n_samples": 500}
    notes = [n for n in cmp.table_notes(report) if "within the budget" in n]
    assert notes == [
        "slow, within the budget: its test NLL on a seeded subset of 40 of 100 examples "
        "(± its standard error) and its sample metrics from 12 of 500 samples"
    ]
