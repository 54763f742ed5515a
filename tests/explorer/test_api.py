"""The explorer's JSON API through FastAPI's test client: numbers, structure and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

import ptheta
from ptheta.data import toy2d
from ptheta.explorer import app as app_module
from ptheta.explorer import views
from ptheta.explorer.app import STATIC_DIR, create_app


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"]
    return body["error"]


def test_health(explorer_client):
    assert explorer_client.get("/api/health").json() == {"ok": True, "version": ptheta.__version__}


# --------------------------------------------------------------------------- space
@pytest.mark.parametrize("n", [1, 2, 3, 10, 40])
def test_space_numbers_are_exact(explorer_client, n):
    body = explorer_client.get("/api/space", params={"n": n}).json()
    assert body["log2_configurations"] == n
    assert body["log10_configurations"] == pytest.approx(n * math.log10(2), rel=1e-15)
    assert body["free_parameters_log2"] == math.log2(2**n - 1)
    assert body["configurations_text"] == str(2**n)


def test_space_text_and_red_threshold(explorer_client):
    get = lambda n: explorer_client.get("/api/space", params={"n": n}).json()  # noqa: E731
    assert get(49)["configurations_text"] == "562949953421312"  # < 10^15: exact
    assert get(50)["configurations_text"] == "1.1 × 10^15"
    assert get(784)["configurations_text"] == "1.0 × 10^236"
    assert get(784)["free_parameters_log2"] == 784.0
    # 2^n − 1 > 2^265 first at n = 266
    assert not get(265)["red"] and get(266)["red"]
    assert "atoms in the observable universe" in get(266)["exceeds"]
    sixty = get(60)["exceeds"]
    assert "seconds since the Big Bang" in sixty and "grains of sand on Earth" not in sixty
    assert "grains of sand on Earth" in get(64)["exceeds"]


def test_space_families_counts_from_fitted_models(explorer_client):
    body = explorer_client.get("/api/space", params={"n": 7}).json()
    counts = {row["model"]: row["n_parameters"] for row in body["families"]}
    # independent: one Bernoulli per pixel; order-1 chain and tree: 1 + 2 (n − 1)
    assert counts["independent"] == 7
    assert counts["markov"] == counts["chow-liu"] == 13
    assert counts["made"] > counts["chow-liu"] and "nade" in counts
    assert "fitted" in body["note"] and "built" in body["note"]


@pytest.mark.parametrize("query", [{"n": 0}, {"n": 785}, {"n": -3}])
def test_space_out_of_range(explorer_client, query):
    assert "1..784" in _error(explorer_client.get("/api/space", params=query), 400)


@pytest.mark.parametrize("query", [{"n": "many"}, {"n": 2.5}, {}])
def test_space_malformed(explorer_client, query):
    assert "'n'" in _error(explorer_client.get("/api/space", params=query), 422)


# --------------------------------------------------------------------------- structure
def test_structure_tree_is_the_fitted_chow_liu_tree(explorer_client, explorer_dirs):
    body = explorer_client.get("/api/structure").json()
    assert body["data"] == "digits" and body["image_shape"] == [8, 8] and body["levels"] == 17
    # read the cached run directory independently of the app
    assert body["tree"]["model"] == views.structure_graph_model() == "chow-liu"
    tree = ptheta.load(explorer_dirs["cache"] / "structure" / "digits" / "chow-liu")
    graph = tree.structure_graph()
    assert body["tree"]["edges"] == [list(e) for e in graph["edges"]] == tree.edges_
    assert body["tree"]["roots"] == graph["roots"] == [tree.root_] == [body["tree"]["root"]]
    assert len(body["tree"]["edges"]) == 63  # a spanning tree over 64 pixels
    rows = {r["model"]: r for r in body["models"]}
    assert list(rows) == views.structure_models()
    test_x = ptheta.datasets.load("digits").test.x
    assert rows["chow-liu"]["test_nll_nats"] == pytest.approx(-tree.score(test_x), rel=1e-12)
    assert rows["chow-liu"]["test_nll_bits_per_dim"] == pytest.approx(
        rows["chow-liu"]["test_nll_nats"] / (64 * math.log(2))
    )
    assert rows["independent"]["n_parameters"] == 64 * 16
    # keeping the tree's connections beats keeping none
    assert rows["chow-liu"]["test_nll_nats"] < rows["independent"]["test_nll_nats"]
    assert all(r["likelihood"] == "exact" for r in body["models"])


def test_structure_samples(explorer_client):
    get = lambda **q: explorer_client.get("/api/structure/samples", params=q)  # noqa: E731
    body = get(model="chow-liu", n=5, seed=3).json()
    samples = np.array(body["samples"])
    assert body["model"] == "chow-liu" and body["seed"] == 3 and samples.shape == (5, 64)
    assert samples.min() >= 0 and samples.max() <= 16
    assert get(model="chow-liu", n=5, seed=3).json()["samples"] == body["samples"]
    assert get(model="chow-liu", n=5, seed=4).json()["samples"] != body["samples"]
    assert len(get(model="made", n=2).json()["samples"]) == 2


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"model": "gan"}, 404, "structure model"),
        ({"model": "markov", "n": 0}, 400, "1..64"),
        ({"model": "markov", "n": 65}, 400, "1..64"),
        ({"model": "markov", "seed": -1}, 400, "seed"),
        ({"model": "markov", "n": "x"}, 422, "'n'"),
        ({}, 422, "'model'"),
    ],
)
def test_structure_samples_bad_input(explorer_client, query, status, word):
    assert word in _error(explorer_client.get("/api/structure/samples", params=query), status)


# --------------------------------------------------------------------------- surface
def test_surface_options_lists_registered_families(explorer_client):
    body = explorer_client.get("/api/surface/options").json()
    assert "toy2d-moons" in body["datasets"] and "digits" not in body["datasets"]
    models = {m["model"]: m["quantity"] for m in body["models"]}
    assert models["gmm"] == "density" and models["realnvp"] == "density"
    assert set(models) <= set(ptheta.REGISTRY)


def test_surface_gmm_integral_and_values(explorer_client, explorer_dirs):
    q = {"data": "toy2d-8gaussians", "model": "gmm", "grid": 80}
    body = explorer_client.get("/api/surface", params=q).json()
    x, y, z = np.array(body["x"]), np.array(body["y"]), np.array(body["z"])
    assert x.shape == y.shape == (80,) and z.shape == (80, 80)
    assert body["likelihood"] == "exact" and body["quantity"] == "density"
    assert body["integral"] == pytest.approx(z.sum() * (x[1] - x[0]) * (y[1] - y[0]))
    assert body["integral"] == pytest.approx(1.0, abs=0.02)  # the grid's quadrature error
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-8gaussians" / "gmm")
    i, j = np.meshgrid(np.arange(0, 80, 7), np.arange(0, 80, 9), indexing="ij")
    pts = np.stack([x[j.ravel()], y[i.ravel()]], axis=1)  # z[i][j] is at (x[j], y[i])
    np.testing.assert_allclose(z[i, j].ravel(), np.exp(model.score_samples(pts)), rtol=1e-10)
    np.testing.assert_allclose(np.exp(body["log_z"]), z, rtol=1e-10)
    true = np.array(body["true_log_density"], dtype=float)[i, j].ravel()
    np.testing.assert_allclose(true, toy2d.gaussians8_log_density(pts), rtol=1e-12)
    assert 0 < len(body["points"]) <= 500 and len(body["points"][0]) == 2


def test_surface_realnvp_is_a_density_without_closed_form(explorer_client):
    body = explorer_client.get("/api/surface", params={"model": "realnvp", "grid": 40}).json()
    assert body["data"] == "toy2d-moons" and "true_log_density" not in body
    assert 0.8 < body["integral"] < 1.05


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"grid": 201}, 400, "10..200"),
        ({"grid": 9}, 400, "10..200"),
        ({"grid": "big"}, 422, "'grid'"),
        ({"data": "digits"}, 404, "2-D toy data set"),
        ({"data": "toy2d-moon"}, 404, "toy2d-moons"),  # a suggestion
        ({"model": "gan"}, 404, "surface model"),
    ],
)
def test_surface_bad_input(explorer_client, query, status, word):
    assert word in _error(explorer_client.get("/api/surface", params=query), status)


# --------------------------------------------------------------------------- flow
@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_flow_integrates_to_one_at_every_strength(explorer_client, strength):
    q = {"data": "toy2d-moons", "strength": strength, "grid": 100}
    body = explorer_client.get("/api/flow", params=q).json()
    n_layers = explorer_client.get("/api/flow/options").json()["n_layers"]
    assert body["n_layers"] == n_layers and body["layer"] == math.floor(strength * n_layers + 0.5)
    assert body["integral"] == pytest.approx(1.0, abs=0.01)
    assert len(body["points"]) == 500


def test_flow_endpoints_are_the_base_and_the_model(explorer_client, explorer_dirs):
    model = ptheta.load(explorer_dirs["cache"] / "surface" / "toy2d-moons" / "realnvp")
    for strength in (0.0, 1.0):
        q = {"data": "toy2d-moons", "strength": strength, "grid": 30}
        body = explorer_client.get("/api/flow", params=q).json()
        gx, gy = np.meshgrid(body["x"], body["y"])  # (G, G): gx[i, j] = x[j]
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        log_z = np.array(body["log_z"]).ravel()
        if strength == 0:  # no layer: the standard normal base
            expected = -0.5 * (pts**2).sum(1) - math.log(2 * math.pi)
        else:  # every layer: the fitted flow's own density
            expected = model.score_samples(pts)
        np.testing.assert_allclose(log_z, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"strength": 1.5}, 400, "[0, 1]"),
        ({"strength": -0.1}, 400, "[0, 1]"),
        ({"strength": "full"}, 422, "'strength'"),
        ({"grid": 500}, 400, "10..200"),
        ({"data": "toy2d-nope"}, 404, "2-D toy data set"),
    ],
)
def test_flow_bad_input(explorer_client, query, status, word):
    assert word in _error(explorer_client.get("/api/flow", params=query), status)


# --------------------------------------------------------------------------- spam
def test_spam_vocab_and_posterior(explorer_client):
    vocab = explorer_client.get("/api/spam/vocab").json()
    assert vocab["synthetic"] is True and "SYNTHETIC" in vocab["source"]
    assert ["viagra", "pills"] in vocab["correlated_pairs"] and vocab["n_train"] > 0
    post = lambda words: explorer_client.post(  # noqa: E731
        "/api/spam/posterior", json={"words": words}
    ).json()
    none, one, both = post([]), post(["viagra"]), post(["viagra", "pills"])
    assert one["naive_bayes"] > none["naive_bayes"] and 0 < both["naive_bayes"] < 1
    parts = {c["word"]: c["naive_bayes"] for c in both["contributions"]}
    # NB adds both words' full contributions: the correlated pair is counted twice
    assert both["naive_bayes_log_odds"] - none["naive_bayes_log_odds"] == pytest.approx(
        parts["viagra"] + parts["pills"]
    )
    nb_move = both["naive_bayes_log_odds"] - none["naive_bayes_log_odds"]
    lr_move = both["logistic_log_odds"] - none["logistic_log_odds"]
    assert lr_move < 0.75 * nb_move
    p = 1 / (1 + math.exp(-both["naive_bayes_log_odds"]))
    assert both["naive_bayes"] == pytest.approx(p, rel=1e-9)
    assert post(["Viagra", "viagra"])["words"] == ["viagra"]


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"words": ["free", "zebra"]}, 400, "'zebra'"),
        ({"words": "free"}, 422, "words"),
        ({"words": [1, 2]}, 422, "words"),
        ({}, 422, "words"),
    ],
)
def test_spam_posterior_bad_input(explorer_client, body, status, word):
    assert word in _error(explorer_client.post("/api/spam/posterior", json=body), status)


def test_spam_from_user_csv(tmp_path):
    csv = tmp_path / "mail.csv"
    rows = ["text,label"] + [
        f"win cash prize now {i},spam" if i % 2 else f"team meeting notes {i},ham"
        for i in range(20)
    ]
    csv.write_text("\n".join(rows) + "\n")
    app = create_app(cache_dir=tmp_path / "cache", spam_csv=csv, quick=True)
    with TestClient(app) as client:
        vocab = client.get("/api/spam/vocab").json()
        assert vocab["synthetic"] is False and vocab["n_train"] == 20
        assert {"cash", "meeting"} <= set(vocab["words"])
        body = client.post("/api/spam/posterior", json={"words": ["cash"]}).json()
        assert body["naive_bayes"] > 0.9


def test_spam_bad_csv_is_a_clear_error(tmp_path):
    csv = tmp_path / "mail.csv"
    csv.write_text("body,label\nhello,spam\n")
    with TestClient(create_app(cache_dir=tmp_path / "c", spam_csv=csv)) as client:
        assert "text" in _error(client.get("/api/spam/vocab"), 400)


# --------------------------------------------------------------------------- compare
def _report(folder, data: str, created: str, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = {"schema": 1, "data": data, "created": created, "rows": [], "tag": tag}
    (folder / "report.json").write_text(json.dumps(report))


def test_compare_list_and_newest(tmp_path):
    reports = tmp_path / "reports"
    _report(reports / "old", "digits", "2026-01-01T00:00:00Z", "old")
    _report(reports / "a" / "b" / "new", "digits", "2026-06-01T00:00:00Z", "new")
    _report(reports / "toy", "toy2d-moons", "2026-03-01T00:00:00Z", "toy")
    (reports / "broken").mkdir()
    (reports / "broken" / "report.json").write_text("{not json")
    client = TestClient(create_app(cache_dir=tmp_path / "c", reports_dir=reports))
    listing = client.get("/api/compare/list").json()
    assert sorted(r["data"] for r in listing["reports"]) == ["digits", "digits", "toy2d-moons"]
    assert [s["path"] for s in listing["skipped"]] == [str(reports / "broken" / "report.json")]
    assert client.get("/api/compare", params={"data": "digits"}).json()["tag"] == "new"
    assert client.get("/api/compare", params={"data": "toy2d-moons"}).json()["tag"] == "toy"
    message = _error(client.get("/api/compare", params={"data": "mnist"}), 404)
    assert message == (
        f"no compare report for 'mnist' under {str(reports)!r}; run: "
        f"ptheta compare --data mnist --out {reports / 'mnist'}"
    )
    assert "'data'" in _error(client.get("/api/compare"), 422)


def test_compare_without_reports_folder(tmp_path):
    client = TestClient(create_app(cache_dir=tmp_path / "c", reports_dir=tmp_path / "none"))
    assert client.get("/api/compare/list").json()["reports"] == []
    _error(client.get("/api/compare", params={"data": "digits"}), 404)


# --------------------------------------------------------------------------- routes
def test_unknown_routes_and_methods(explorer_client):
    assert "/api/nothing" in _error(explorer_client.get("/api/nothing"), 404)
    _error(explorer_client.get("/no/such/page"), 404)
    _error(explorer_client.delete("/api/health"), 404)


def test_page_and_plotly(explorer_client):
    page = explorer_client.get("/")
    if (STATIC_DIR / "index.html").is_file():
        assert page.status_code == 200 and "html" in page.headers["content-type"]
    else:  # the front end is not there yet: a clear error, not a crash
        assert "index.html" in _error(page, 404)
    js = explorer_client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 100_000


# --------------------------------------------------------------------------- caching
def test_second_app_loads_from_cache_without_fitting(explorer_client, explorer_dirs, monkeypatch):
    first = explorer_client.get("/api/structure").json()

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached model was fitted again")

    monkeypatch.setattr(views, "fit_run", no_fit)
    app = create_app(
        cache_dir=explorer_dirs["cache"], reports_dir=explorer_dirs["reports"], quick=True
    )
    with TestClient(app) as client:
        assert client.get("/api/structure").json() == first
    cache = app.state.explorer.cache
    assert sum(cache.fits.values()) == 0
    assert cache.loads[("structure", "digits", "chow-liu")] == 1


# --------------------------------------------------------------------------- request bodies
def test_a_huge_request_body_is_refused_before_it_is_read(explorer_client):
    words = ["free"] * 100_000  # ~800 kB of JSON: far more than any vocabulary
    message = _error(explorer_client.post("/api/spam/posterior", json={"words": words}), 413)
    assert "too large" in message and str(app_module.MAX_BODY_BYTES) in message


def test_a_huge_chunked_body_is_refused(explorer_client):
    def chunks():  # no Content-Length: the body streams in pieces
        yield b'{"words": ['
        for _ in range(20_000):
            yield b'"free", ' * 10
        yield b'"free"]}'

    response = explorer_client.post(
        "/api/spam/posterior", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "too large" in _error(response, 413)


def test_a_body_that_is_not_json_is_named_as_such(explorer_client):
    response = explorer_client.post(
        "/api/spam/posterior", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in _error(response, 422)


def test_an_unexpected_failure_is_a_json_error_not_a_bare_500(explorer_app, monkeypatch):
    def broken(n):
        raise RuntimeError("tensors share memory\nsecond line")

    monkeypatch.setattr(explorer_app.state.explorer, "space", broken)
    with TestClient(explorer_app, raise_server_exceptions=False) as client:
        message = _error(client.get("/api/space", params={"n": 3}), 500)
    assert "RuntimeError: tensors share memory" in message and "/api/space" in message


# --------------------------------------------------------------------------- probability budget
def test_mass_totals_are_one_unit_each(explorer_client):
    body = explorer_client.get("/api/mass", params={"row": 3, "grid": 40}).json()
    assert body["row"] == 3 and body["data"] == "toy2d-moons" and body["grid"] == 40
    kinds = [r["kind"] for r in body["models"]]
    assert kinds == ["autoregressive", "latent variable", "flow"]
    for row in body["models"]:
        assert row["model"] in ptheta.REGISTRY and row["likelihood"] == "exact"
        tolerance = 1e-9 if row["data_kind"] == "binary" else 0.05  # sum vs grid integral
        assert row["total"] == pytest.approx(1.0, abs=tolerance)
        parts = sum(p["mass"] for p in row["parts"]) + row["rest"]["mass"]
        assert parts == pytest.approx(row["total"])
    assert explorer_client.get("/api/mass").json()["row"] == views.MASS_ROW


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"row": 8}, 400, "0..7"),
        ({"row": "middle"}, 422, "'row'"),
        ({"grid": 201}, 400, "10..200"),
        ({"data": "toy2d-nope"}, 404, "2-D toy data set"),
    ],
)
def test_mass_bad_input(explorer_client, query, status, word):
    assert word in _error(explorer_client.get("/api/mass", params=query), status)


# --------------------------------------------------------------------------- surprise
def test_surprise_of_a_rare_event_and_the_entropies(explorer_client):
    body = explorer_client.get("/api/surprise", params={"p": 0.0, "q": 1.0, "event": 7}).json()
    p, q = body["distributions"]
    assert (p["name"], q["name"]) == ("p", "q") and body["event"] == 7
    assert len(p["fitted"]) == body["n_outcomes"] == views.SURPRISE_OUTCOMES
    assert sum(q["fitted"]) == pytest.approx(1.0, abs=1e-12)
    assert q["event_surprise_bits"] > p["event_surprise_bits"] > q["surprise_bits"][0]
    assert q["entropy"]["bits"] < p["entropy"]["bits"] <= 3.0 + 1e-9  # ≤ log2 8
    assert body["kl"]["p_q"]["nats"] == pytest.approx(
        body["cross_entropy"]["p_q"]["nats"] - p["entropy"]["nats"]
    )
    default = explorer_client.get("/api/surprise").json()
    assert default["event"] == 7 and default["distributions"][0]["peakedness"] == 0.1


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"p": 2}, 400, "[0, 1]"),
        ({"q": -1}, 400, "[0, 1]"),
        ({"q": "nan"}, 400, "q must be"),
        ({"event": 9}, 400, "0..7"),
        ({"event": "rare"}, 422, "'event'"),
        ({"p": "flat"}, 422, "'p'"),
    ],
)
def test_surprise_bad_input(explorer_client, query, status, word):
    assert word in _error(explorer_client.get("/api/surprise", params=query), status)


# --------------------------------------------------------------------------- score field
def test_score_field_endpoint(explorer_client, fake_families):
    options = explorer_client.get("/api/score/options").json()
    assert "toy-langevin" in options["models"] and options["models"] == views.score_models()
    q = {"data": "toy2d-8gaussians", "model": "toy-langevin", "grid": 7, "chains": 5}
    body = explorer_client.get("/api/score", params={**q, "frames": 4, "seed": 2}).json()
    assert np.array(body["u"]).shape == np.array(body["v"]).shape == (7, 7)
    assert np.array(body["paths"]).shape == (4, 5, 2) and len(body["distance_to_data"]) == 4
    assert body["sampler"] == "langevin" and body["seed"] == 2
    default = explorer_client.get("/api/score", params={"grid": 5, "chains": 2, "frames": 2})
    assert default.json()["model"] == views.score_models()[0]


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"grid": 41}, 400, "5..40"),
        ({"chains": 500}, 400, "1..200"),
        ({"frames": 1}, 400, "frames"),
        ({"frames": "all"}, 422, "'frames'"),
        ({"model": "gmm"}, 404, "score-field view's model"),
        ({"data": "digits"}, 404, "2-D toy data set"),
    ],
)
def test_score_field_bad_input(explorer_client, fake_families, query, status, word):
    params = {"model": "toy-langevin", **query}
    assert word in _error(explorer_client.get("/api/score", params=params), status)


# --------------------------------------------------------------------------- ODE paths
def test_ode_endpoint(explorer_client, fake_families):
    options = explorer_client.get("/api/ode/options").json()
    assert {"model": "toy-ode", "likelihood": "exact"} in options["models"]
    assert options["datasets"] == list(views.TOY_DATA)
    q = {"model": "toy-ode", "grid": 30, "paths": 6, "frames": 3}
    body = explorer_client.get("/api/ode", params=q).json()
    z = np.array(body["z"])
    x, y = np.array(body["x"]), np.array(body["y"])
    assert z.shape == (30, 30) and np.array(body["paths"]).shape == (3, 6, 2)
    assert body["integral"] == pytest.approx(z.sum() * (x[1] - x[0]) * (y[1] - y[0]))
    assert body["details"] == {"ode_solver": "closed form", "nfe": 0}
    assert body["data"] == "toy2d-moons" and body["likelihood"] == "exact"


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"grid": 5}, 400, "10..200"),
        ({"paths": 0}, 400, "1..200"),
        ({"seed": -2}, 400, "seed"),
        ({"model": "toy-langevin"}, 404, "ODE view's model"),
        ({"paths": 2.5}, 422, "'paths'"),
    ],
)
def test_ode_bad_input(explorer_client, fake_families, query, status, word):
    params = {"model": "toy-ode", **query}
    assert word in _error(explorer_client.get("/api/ode", params=params), status)
