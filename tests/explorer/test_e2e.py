"""The explorer's page in a real headless Chromium: displayed numbers must be the API's numbers."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import httpx
import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "Playwright's Python package is missing: install the dev extra (make setup)",
        allow_module_level=True,
    )

from ptheta.explorer.app import create_app
from ptheta.explorer.server import ExplorerServer

CHROMIUM = "/usr/bin/chromium"
# root needs --no-sandbox; the network is closed, so nothing may phone home
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium: make browser", allow_module_level=True
    )

FIT = 120_000  # ms: a view's models are fitted on first use (quick budgets)
APP_JS = Path(__file__).parents[2] / "ptheta" / "explorer" / "static" / "app.js"
VIEWS = (
    *("space", "structure", "surface", "spam", "flow"),
    *("mass", "surprise", "score", "ode", "compare", "sequences"),
)

# A compare report in the schema `ptheta compare` writes: one row per kind of likelihood.
_ROW = {
    "family": "f",
    "units": "discrete",
    "test_nll_sem": 1.0,
    "fit_seconds": 1.0,
    "sample_seconds": 0.1,
    "fd": 1.0,
    "precision": 0.5,
    "recall": 0.5,
    "mmd": 0.01,
    "memorisation": 1.0,
    "status": "ok",
    "error": None,
    "cached": False,
}
REPORT_ROWS = [
    {"model": "gmm", "likelihood": "exact", "units": "dequantised", "bpd": 3.04, "n": 12345},
    {"model": "vae", "likelihood": "bound", "bpd": 2.716, "n": 50000},
    {"model": "gan", "likelihood": "none", "bpd": None, "n": 80000},
    {"model": "independent", "likelihood": "exact", "bpd": 3.387, "n": 1024},
    {"model": "rbm", "likelihood": "estimate", "bpd": 3.156, "n": 4000},
]


def _report() -> dict:
    rows = []
    for r in REPORT_ROWS:
        bpd = r["bpd"]
        rows.append(
            {
                **_ROW,
                "model": r["model"],
                "likelihood": r["likelihood"],
                "units": r.get("units", "discrete"),
                "test_nll_nats": None if bpd is None else bpd * 64 * 0.6931471805599453,
                "test_nll_bits_per_dim": bpd,
                "test_nll_sem": None if bpd is None else 1.0,
                "n_parameters": r["n"],
                "run_dir": f"runs/{r['model']}",
                "samples_png": f"samples/{r['model']}.png",
            }
        )
    return {
        "schema": 1,
        "data": "digits",
        "created": "2026-11-21T12:00:00Z",
        "budget_seconds": 30,
        "split": {"train": 1000, "val": 350, "test": 447},
        "feature_space": "FD-digits",
        "rows": rows,
    }


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server(explorer_dirs, tmp_path_factory):
    """The real server (uvicorn, in a thread) on a free loopback port; the session's model
    cache is shared with the API tests, so models fitted there are loaded, not refitted."""
    reports = tmp_path_factory.mktemp("e2e-reports")
    (reports / "digits").mkdir()
    (reports / "digits" / "report.json").write_text(json.dumps(_report()))
    app = create_app(
        cache_dir=explorer_dirs["cache"], reports_dir=reports, quick=True, loopback_only=True
    )  # as `ptheta explore` serves it: requests must be addressed to 127.0.0.1
    with ExplorerServer(app, "127.0.0.1", 0) as running:
        yield running


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server.url, timeout=FIT / 1000) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as e:  # installed but unusable: a failure, not a skip
            pytest.fail(f"{CHROMIUM} does not start under Playwright: {e}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; any uncaught JavaScript error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_view(page, server, view: str) -> None:
    page.goto(f"{server.url}#{view}")
    expect(page.locator(f"#view-{view}")).to_be_visible()
    expect(page.locator(f"#tab-{view}")).to_have_attribute("aria-selected", "true")


def no_error(page, view: str) -> None:
    box = page.locator(f"#view-{view} .error")
    assert box.is_hidden(), f"the {view} view shows an error: {box.text_content()}"


def wait_for_plots(page, *ids: str) -> None:
    """plotly.js loads on first use: wait until each plot holds its data."""
    for plot_id in ids:
        page.wait_for_function(f"() => document.getElementById('{plot_id}').data", timeout=FIT)


def snap(page, tmp_path: Path, view: str) -> None:
    path = tmp_path / f"{view}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000


# ---------------------------------------------------------------- checks (also used broken)
def check_space(page, api, n: int, timeout: float = FIT) -> dict:
    """Move the slider to n: the page must show the API's count for n, its red state and
    each family's parameter count."""
    want = api.get("/api/space", params={"n": n}).json()
    page.locator("#space-slider").fill(str(n))
    expect(page.locator("#space-n")).to_have_text(str(n))
    expect(page.locator("#space-configs")).to_have_text(
        want["configurations_text"], timeout=timeout
    )
    red = "true" if want["red"] else "false"
    expect(page.locator("#space-box")).to_have_attribute("data-red", red, timeout=timeout)
    for family in want["families"]:
        cell = page.locator(f'#space-families tr[data-model="{family["model"]}"] td.num')
        expect(cell).to_have_text(f"{family['n_parameters']:,}", timeout=timeout)
    return want


def check_spam(page, api, words: list[str], timeout: float = FIT) -> dict:
    """Click each word: both displayed posteriors must equal the API's, to 3 decimals."""
    for i, word in enumerate(words):
        page.locator(f'#spam-words button[data-word="{word}"]').click()
        want = api.post("/api/spam/posterior", json={"words": words[: i + 1]}).json()
        expect(page.locator(f'#spam-words button[data-word="{word}"]')).to_have_attribute(
            "aria-pressed", "true"
        )
        expect(page.locator("#spam-nb")).to_have_text(f"{want['naive_bayes']:.3f}", timeout=timeout)
        expect(page.locator("#spam-lr")).to_have_text(f"{want['logistic']:.3f}", timeout=timeout)
    return want


def check_flow(page, api, k: int, timeout: float = FIT) -> dict:
    """Move the strength slider to layer k: the page shows the API's layer and integral."""
    options = api.get("/api/flow/options").json()
    strength = k / options["n_layers"]
    params = {"data": options["datasets"][0], "strength": strength, "grid": 60}
    want = api.get("/api/flow", params=params).json()
    page.locator("#flow-strength").fill(str(k))
    expect(page.locator("#flow-layer")).to_have_text(str(want["layer"]), timeout=timeout)
    expect(page.locator("#flow-integral")).to_have_text(f"{want['integral']:.3f}", timeout=timeout)
    return want


def js_fmt(x: float | None, digits: int = 2) -> str:
    """A number as app.js's fmt() writes it."""
    if x is None:
        return "—"
    if abs(x) >= 1e6:
        return f"{x:.{digits}e}".replace("e+0", "e+").replace("e-0", "e-")
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def check_mass(page, api, row: int, timeout: float = FIT) -> dict:
    """Choose row ``row``: each model's displayed total is the API's, and its bar has one
    segment per part plus the rest."""
    expect(page.locator("#mass-row option")).not_to_have_count(0, timeout=timeout)
    data = page.locator("#mass-data").input_value()
    page.locator("#mass-row").select_option(str(row))
    want = api.get("/api/mass", params={"row": row, "data": data, "grid": 60}).json()
    for m in want["models"]:
        card = page.locator(f'#mass-models .budget[data-kind="{m["kind"]}"]')
        digits = 6 if m["data_kind"] == "binary" else 3
        total = card.locator(".mass-total")
        expect(total).to_have_text(js_fmt(m["total"], digits), timeout=timeout)
        expect(card.locator(".budget-bar .segment")).to_have_count(len(m["parts"]) + 1)
        first = m["parts"][0]
        expect(card.locator("tbody tr").first).to_contain_text(first["label"])
        expect(card.locator("tbody tr").first).to_contain_text(js_fmt(first["mass"], 4))
    return want


def check_surprise(page, api, q: float, timeout: float = FIT, event: int = 2) -> dict:
    """Move q's slider and choose an event: the displayed surprise of the event and the
    entropy of q are the API's."""
    page.locator("#surprise-q").fill(str(q))
    page.locator(f'#surprise-events button[data-event="{event}"]').click()
    p = page.locator("#surprise-p").input_value()
    want = api.get("/api/surprise", params={"p": p, "q": q, "event": event}).json()
    dist = want["distributions"][1]
    h = dist["entropy"]
    expect(page.locator("#surprise-q-value")).to_have_text(f"{q:.2f}")
    expect(page.locator("#surprise-q-event")).to_have_text(
        f"{dist['event_surprise_bits']:.2f} bits", timeout=timeout
    )
    expect(page.locator("#surprise-q-entropy")).to_have_text(
        f"{h['bits']:.2f} bits ({h['nats']:.2f} nats)", timeout=timeout
    )
    return want


def _first_choices(api, view: str) -> dict:
    options = api.get(f"/api/{view}/options").json()
    model = options["models"][0]
    return {"data": options["datasets"][0], "model": model if view == "score" else model["model"]}


def shown_positions(page, plot_id: str, frame: int, timeout: float = FIT) -> list:
    """The positions a paths plot draws once it shows frame ``frame`` (its last trace)."""
    page.wait_for_function(
        """([id, frame]) => {
            const data = document.getElementById(id).data;
            return data && data.at(-1).name === `positions at frame ${frame}`;
        }""",
        arg=[plot_id, frame],
        timeout=timeout,
    )
    heads = page.evaluate(f"() => document.getElementById('{plot_id}').data.at(-1)")
    return [[a, b] for a, b in zip(heads["x"], heads["y"], strict=True)]


def check_score(page, api, frame: int, timeout: float = FIT) -> dict:
    """Move the frame slider: the page shows the frame, the API's median distance from the
    chains to the data at that frame, and the chains' positions at that frame."""
    q = {**_first_choices(api, "score"), "grid": 20, "chains": 32, "frames": 40, "seed": 0}
    want = api.get("/api/score", params=q).json()
    expect(page.locator("#score-frames")).to_have_text("39", timeout=timeout)
    page.locator("#score-frame").fill(str(frame))
    expect(page.locator("#score-frame-value")).to_have_text(str(frame))
    shown = js_fmt(want["distance_to_data"][frame], 3)
    expect(page.locator("#score-distance")).to_have_text(shown, timeout=timeout)
    assert shown_positions(page, "score-plot", frame, timeout) == want["paths"][frame]
    return want


def check_ode(page, api, frame: int, timeout: float = FIT) -> dict:
    """The page shows the API's grid integral; at frame ``frame`` the paths' positions are
    the API's."""
    q = {**_first_choices(api, "ode"), "grid": 40, "paths": 64, "frames": 30, "seed": 0}
    want = api.get("/api/ode", params=q).json()
    shown = js_fmt(want["integral"], 3)
    expect(page.locator("#ode-integral")).to_have_text(shown, timeout=timeout)
    page.locator("#ode-frame").fill(str(frame))
    expect(page.locator("#ode-frame-value")).to_have_text(str(frame))
    shown = js_fmt(want["distance_to_data"][frame], 3)
    expect(page.locator("#ode-distance")).to_have_text(shown, timeout=timeout)
    assert shown_positions(page, "ode-plot", frame, timeout) == want["paths"][frame]
    return want


# ------------------------------------------------------------------------------- views
def test_space_slider_shows_the_api_numbers_and_turns_red(page, server, api, tmp_path):
    open_view(page, server, "space")
    small = check_space(page, api, 10)
    assert not small["red"]
    assert page.locator("#space-verdict.red").count() == 0
    big = check_space(page, api, 300)
    assert big["red"], "2^300 − 1 parameters exceed the atoms in the universe (≈ 2^265)"
    # red is also said in words, not by colour alone
    expect(page.locator("#space-verdict")).to_contain_text("Too big")
    exceeded = page.locator("#space-refs li.exceeded .name")
    assert sorted(exceeded.all_text_contents()) == sorted(big["exceeds"])
    no_error(page, "space")
    snap(page, tmp_path, "space")


def test_structure_draws_the_api_samples_and_the_tree(page, server, api, tmp_path):
    open_view(page, server, "structure")
    structure = api.get("/api/structure").json()
    names = [m["model"] for m in structure["models"]]
    cards = page.locator("#structure-models .card")
    expect(cards).to_have_count(len(names), timeout=FIT)
    lines = page.locator("#structure-tree line")
    expect(lines).to_have_count(len(structure["tree"]["edges"]))
    for name in names:
        expect(page.locator(f"#structure-canvas-{name}")).to_have_attribute("data-seed", "0")
    page.locator("#structure-resample").click()
    expect(page.locator("#structure-seed")).to_have_text("1")
    for name in names:
        expect(page.locator(f"#structure-canvas-{name}")).to_have_attribute(
            "data-seed", "1", timeout=FIT
        )
    # the first image on each canvas, read back pixel by pixel, is the API's first sample
    for name in names:
        want = api.get("/api/structure/samples", params={"model": name, "n": 16, "seed": 1})
        want = want.json()
        h, w = want["image_shape"]
        gray = page.evaluate(
            """([id, h, w]) => {
                const c = document.getElementById(id);
                const d = c.getContext('2d').getImageData(1, 1, w, h).data;
                return Array.from({length: h * w}, (_, i) => d[4 * i]);
            }""",
            [f"structure-canvas-{name}", h, w],
        )
        levels = want["levels"] - 1
        expected = [math.floor(255 * (1 - v / levels) + 0.5) for v in want["samples"][0]]
        assert gray == expected, name
        card = page.locator(f'#structure-models .card[data-model="{name}"]')
        model = next(m for m in structure["models"] if m["model"] == name)
        expect(card).to_contain_text(f"{model['test_nll_nats']:.2f} nats")
        expect(card).to_contain_text(f"{model['n_parameters']:,}")
    no_error(page, "structure")
    snap(page, tmp_path, "structure")


def test_surface_plots_the_api_grid(page, server, api, tmp_path):
    open_view(page, server, "surface")
    options = api.get("/api/surface/options").json()
    params = {"data": options["datasets"][0], "model": options["models"][0]["model"], "grid": 60}
    want = api.get("/api/surface", params=params).json()
    shown = "not defined (unnormalised quantity)"
    if want["integral"] is not None:
        shown = f"{want['integral']:.3f}"
    expect(page.locator("#surface-integral")).to_have_text(shown, timeout=FIT)
    wait_for_plots(page, "surface-3d", "surface-heat")
    traces = page.evaluate(
        """() => ['surface-3d', 'surface-heat'].map(id => document.getElementById(id).data
               .map(t => [t.type, t.z ? t.z.length : t.x.length]))"""
    )
    assert traces[0] == [["surface", 60]]
    assert traces[1][:2] == [["heatmap", 60], ["scatter", len(want["points"])]]
    no_error(page, "surface")
    snap(page, tmp_path, "surface")


def test_spam_posteriors_update_as_the_api_says(page, server, api, tmp_path):
    open_view(page, server, "spam")
    vocab = api.get("/api/spam/vocab").json()
    expect(page.locator("#spam-words button")).to_have_count(len(vocab["words"]), timeout=FIT)
    prior = api.post("/api/spam/posterior", json={"words": []}).json()
    expect(page.locator("#spam-nb")).to_have_text(f"{prior['naive_bayes']:.3f}")
    pair = vocab["correlated_pairs"][0]
    check_spam(page, api, pair)
    # clicking a word again removes it from the e-mail
    page.locator(f'#spam-words button[data-word="{pair[1]}"]').click()
    alone = api.post("/api/spam/posterior", json={"words": pair[:1]}).json()
    expect(page.locator("#spam-nb")).to_have_text(f"{alone['naive_bayes']:.3f}")
    expect(page.locator("#spam-contrib tbody tr")).to_have_count(1)
    no_error(page, "spam")
    snap(page, tmp_path, "spam")


def test_flow_slider_keeps_the_integral_at_one(page, server, api, tmp_path):
    open_view(page, server, "flow")
    n_layers = api.get("/api/flow/options").json()["n_layers"]
    expect(page.locator("#flow-n-layers")).to_have_text(str(n_layers), timeout=FIT)
    for k in (n_layers // 2, n_layers):
        want = check_flow(page, api, k)
        assert want["layer"] == k
        assert float(page.locator("#flow-integral").text_content()) == pytest.approx(1, abs=0.02)
    no_error(page, "flow")
    snap(page, tmp_path, "flow")


def test_probability_budget_shows_each_models_computed_total(page, server, api, tmp_path):
    open_view(page, server, "mass")
    for row in (3, 0):
        want = check_mass(page, api, row)
        for m in want["models"]:
            assert m["total"] == pytest.approx(1.0, abs=0.05)
    wait_for_plots(page, "mass-plot")
    shapes = page.evaluate("() => document.getElementById('mass-plot').layout.shapes.length")
    flow = next(m for m in want["models"] if m["data_kind"] == "continuous")
    assert shapes == len(flow["parts"])  # the largest regions are outlined on the density
    no_error(page, "mass")
    snap(page, tmp_path, "mass")


def test_surprise_shows_the_api_surprise_and_entropy(page, server, api, tmp_path):
    open_view(page, server, "surprise")
    broad = check_surprise(page, api, 0.0, event=7)
    peaked = check_surprise(page, api, 1.0, event=7)
    # the rare event surprises more under the peaked q; q's entropy falls
    assert peaked["distributions"][1]["event_surprise_bits"] > 10
    assert broad["distributions"][1]["event_surprise_bits"] < 3.1
    entropy = [want["distributions"][1]["entropy"]["bits"] for want in (peaked, broad)]
    assert entropy[0] < entropy[1]
    expect(page.locator('#surprise-events button[aria-pressed="true"]')).to_have_text(["7"])
    expect(page.locator("#surprise-info tbody tr")).to_have_count(4)
    kl = peaked["kl"]["p_q"]["bits"]
    expect(page.locator("#surprise-info tbody tr").nth(2)).to_contain_text(f"{kl:.3f}")
    wait_for_plots(page, "surprise-probs", "surprise-bits")
    bars = page.evaluate("() => document.getElementById('surprise-bits').data.map(t => t.y)")
    assert bars == [d["surprise_bits"] for d in peaked["distributions"]]
    no_error(page, "surprise")
    snap(page, tmp_path, "surprise")


def test_score_field_draws_the_api_arrows_and_steps_through_the_chains(page, server, api, tmp_path):
    open_view(page, server, "score")
    want = check_score(page, api, 0)
    check_score(page, api, 39)
    wait_for_plots(page, "score-plot")
    heads = page.evaluate("() => document.getElementById('score-plot').data[2].x.length")
    assert heads == sum(1 for row in want["norm"] for n in row if n > 0)  # one arrow per point
    # new chains: the seed moves on and the page asks for them
    page.locator("#score-resample").click()
    expect(page.locator("#score-seed")).to_have_text("1")
    q = {**_first_choices(api, "score"), "grid": 20, "chains": 32, "frames": 40, "seed": 1}
    other = api.get("/api/score", params=q).json()
    shown = js_fmt(other["distance_to_data"][39], 3)
    expect(page.locator("#score-distance")).to_have_text(shown, timeout=FIT)
    no_error(page, "score")
    snap(page, tmp_path, "score")


def test_ode_paths_and_the_integral_of_their_density(page, server, api, tmp_path):
    open_view(page, server, "ode")
    want = check_ode(page, api, 0)
    check_ode(page, api, len(want["paths"]) - 1)
    assert want["integral"] == pytest.approx(1.0, abs=0.2)
    wait_for_plots(page, "ode-plot")
    z = page.evaluate("() => document.getElementById('ode-plot').data[0].z")
    assert z == want["z"]
    no_error(page, "ode")
    snap(page, tmp_path, "ode")


def test_compare_table_sorts_and_the_chart_draws_bounds_as_bounds(page, server, tmp_path):
    open_view(page, server, "compare")
    rows = page.locator("#compare-table tbody tr")
    expect(rows).to_have_count(len(REPORT_ROWS))

    def column(key: str) -> list[str]:
        return page.locator(f'#compare-table tbody td[data-key="{key}"]').all_text_contents()

    assert column("test_nll_bits_per_dim") == ["≤ 3.040", "≤ 2.716", "none", "3.387", "≈ 3.156"]
    header = page.locator('#compare-table th[data-key="test_nll_bits_per_dim"]')
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert column("model") == ["vae", "gmm", "rbm", "independent", "gan"]  # none sorts last
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert column("model") == ["independent", "rbm", "gmm", "vae", "gan"]
    page.locator('#compare-table th[data-key="model"]').press("Enter")  # keyboard too
    assert column("model") == sorted(r["model"] for r in REPORT_ROWS)
    wait_for_plots(page, "compare-chart")
    bars = page.evaluate(
        """() => document.getElementById('compare-chart').data.map(t => ({
               name: t.name, x: t.x.map(s => s.split('<br>')[0]),
               pattern: t.marker.pattern ? t.marker.pattern.shape : null}))"""
    )
    by_name = {b["name"]: b for b in bars}
    assert by_name["exact"]["x"] == ["independent"] and by_name["exact"]["pattern"] is None
    assert by_name["upper bound (≤)"]["x"] == ["gmm", "vae"]
    assert by_name["upper bound (≤)"]["pattern"] == "/"
    assert by_name["estimate (≈)"]["x"] == ["rbm"]
    expect(page.locator("#compare-chart .annotation-text", has_text="none")).to_have_count(1)
    no_error(page, "compare")
    snap(page, tmp_path, "compare")


def test_sequences_show_the_api_nll_samples_and_state_colours(
    page, server, api, sequence_fakes, tmp_path
):
    open_view(page, server, "sequences")
    want = api.get("/api/sequences", params={"n": 12, "seed": 0}).json()
    rows = page.locator("#sequences-table tbody tr")
    expect(rows).to_have_count(len(want["models"]), timeout=FIT)
    shown = page.locator('#sequences-table [data-testid="nats-per-step"]')
    expect(shown).to_have_text([js_fmt(m["test_nll_per_step"], 3) for m in want["models"]])
    for m in want["models"]:
        card = page.locator(f'#sequences-models .card[data-model="{m["model"]}"]')
        expect(card.locator('[data-testid="sequence"]')).to_have_count(len(m["samples"]))
        # one coloured cell per step of a model with a state path, none otherwise
        states = [s for x in m["samples"] for s in (x["states"] or []) if s >= 0]
        expect(card.locator(".tok[data-state]")).to_have_count(len(states))
        if states:
            first = card.locator('[data-testid="sequence"]').first
            expect(first).to_contain_text(m["samples"][0]["text"][0])
    page.locator("#sequences-resample").click()
    expect(page.locator("#sequences-seed")).to_have_text("1")
    expect(page.locator("#sequences-models")).to_have_attribute("data-seed", "1", timeout=FIT)
    no_error(page, "sequences")
    snap(page, tmp_path, "sequences")


def test_every_tab_opens_its_view_and_is_screenshotted(page, server, tmp_path, sequence_fakes):
    open_view(page, server, "space")
    for view in VIEWS:
        page.locator(f"#tab-{view}").click()
        expect(page.locator(f"#view-{view}")).to_be_visible()
        assert page.url.endswith(f"#{view}")
        others = [v for v in VIEWS if v != view]
        for other in others:
            expect(page.locator(f"#view-{other}")).to_be_hidden()
        expect(page.locator(f"#view-{view}")).not_to_have_attribute(
            "aria-busy", "true", timeout=FIT
        )
        plots = page.locator(f"#view-{view} .plot")
        wait_for_plots(page, *[plots.nth(i).get_attribute("id") for i in range(plots.count())])
        no_error(page, view)
        snap(page, tmp_path, view)
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(VIEWS)


def test_an_api_error_is_shown_in_its_panel(page, server):
    message = "n must be an integer in 1..784, got 0; move the slider back"
    page.route(
        re.compile(r".*/api/space\?.*"),
        lambda route: route.fulfill(status=400, json={"error": message}),
    )
    open_view(page, server, "space")
    box = page.locator("#view-space .error")
    expect(box).to_have_text(message)
    expect(box).to_be_visible()  # the text alone could sit in a hidden box
    expect(box).to_have_attribute("role", "alert")


# ----------------------------------------------------------------- the checks can fail
ODE_INTEGRAL_LINE = (
    '$("ode-integral").textContent = d.integral === null ? "not defined (no likelihood)" : '
    "fmt(d.integral, 3);"
)
SURPRISE_ENTROPY_LINE = "$(`surprise-${key}-entropy`).textContent = bitsAndNats(dist.entropy);"
# what shows that a view has loaded, so that a check fails for the broken line, not a slow fit
READY = {
    "flow": ("#flow-layer", "0"),
    "mass": ("#mass-row option", None),
    "surprise": ("#surprise-info tbody tr", None),
    "score": ("#score-frames", "39"),
    "ode": ("#ode-frames", "29"),
}
BROKEN = [
    ("space", '$("space-configs").textContent = data.configurations_text;', check_space, 300),
    ("spam", '$("spam-nb").textContent = fmtProb(d.naive_bayes);', check_spam, None),
    ("flow", '$("flow-integral").textContent = fmt(d.integral, 3);', check_flow, 1),
    ("mass", ", text: fmt(m.total, digits)", check_mass, 3),
    ("surprise", SURPRISE_ENTROPY_LINE, check_surprise, 0.5),
    ("score", '$("score-distance").textContent = fmt(d.distance_to_data[k], 3);', check_score, 5),
    ("ode", ODE_INTEGRAL_LINE, check_ode, 0),
]


@pytest.mark.parametrize(("view", "line", "check", "arg"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_checks_catch_a_page_that_does_not_update(page, server, api, view, line, check, arg):
    """With one display line removed from app.js, the same check must fail."""
    source = APP_JS.read_text()
    assert source.count(line) == 1, "the line to break is no longer in app.js: update BROKEN"
    broken = source.replace(line, "")
    page.route(
        "**/static/app.js",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=broken),
    )
    if view == "spam":
        arg = api.get("/api/spam/vocab").json()["correlated_pairs"][0]
    open_view(page, server, view)
    if view in READY:  # the view must be ready, or the check fails for the wrong reason
        where, text = READY[view]
        if text is None:
            expect(page.locator(where)).not_to_have_count(0, timeout=FIT)
        else:
            expect(page.locator(where)).to_have_text(text, timeout=FIT)
    with pytest.raises(AssertionError):
        check(page, api, arg, timeout=1500)
