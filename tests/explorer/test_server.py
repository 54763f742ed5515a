"""Serving the explorer: loopback by default, clear errors, a real uvicorn, the shipped page."""

from __future__ import annotations

import re
import socket
import threading
import tomllib
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ptheta.errors import ParameterError
from ptheta.explorer import server
from ptheta.explorer.server import ExplorerServer, bind, check_host, is_loopback, url_of

STATIC = Path(server.__file__).parent / "static"
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_non_loopback_host_needs_an_explicit_host():
    with pytest.raises(ParameterError, match=r"refusing .*'0\.0\.0\.0'.*no login.*--host"):
        check_host("0.0.0.0", explicit_host=False)
    check_host("0.0.0.0", explicit_host=True)
    check_host("127.0.0.1", explicit_host=False)


def test_url_of():
    assert url_of("127.0.0.1", 8765) == "http://127.0.0.1:8765/"
    assert url_of("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert url_of("::1", 9000) == "http://[::1]:9000/"


def test_a_port_in_use_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ParameterError, match=rf"port {port} .* already in use.*--port"):
            bind("127.0.0.1", port)


def test_an_unknown_host_is_one_clear_error():
    with pytest.raises(ParameterError, match="cannot resolve --host"):
        bind("no-such-host.invalid", 0)


def _tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True}

    return app


def test_the_server_runs_in_a_thread_and_frees_its_port():
    with ExplorerServer(_tiny_app(), "127.0.0.1", 0) as running:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", running.url)
        assert httpx.get(running.url + "api/health").json() == {"ok": True}
        port = running.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/health")
    bind("127.0.0.1", port).close()  # free again


def test_serve_refuses_before_building_the_app(monkeypatch):
    def no_app(**kwargs):
        raise AssertionError("the app must not be built when serving is refused")

    monkeypatch.setattr(server, "_create_app", no_app)
    with pytest.raises(ParameterError, match="refusing"):
        server.serve(host="0.0.0.0", port=0, open_browser=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ParameterError, match="already in use"):
            server.serve(port=taken.getsockname()[1], open_browser=False)


def test_serve_prints_the_address_serves_the_page_and_opens_the_browser(monkeypatch, tmp_path):
    """serve() end to end, stopped from inside: the printed URL is the one served and opened."""
    built, printed, opened, answers = {}, [], [], []

    def create_app(**kwargs):
        built.update(kwargs)
        return _tiny_app()

    run = ExplorerServer.run

    def run_then_stop(self):
        worker = threading.Thread(target=run, args=(self,))
        worker.start()
        assert self.wait_started()
        answers.append(httpx.get(self.url + "api/health").json())
        for _ in range(200):  # the browser is opened from another thread once started
            if opened:
                break
            threading.Event().wait(0.01)
        self.server.should_exit = True
        worker.join(timeout=10)

    monkeypatch.setattr(server, "_create_app", create_app)
    monkeypatch.setattr(ExplorerServer, "run", run_then_stop)
    monkeypatch.setattr(server.webbrowser, "open", opened.append)
    server.serve(port=0, cache_dir=tmp_path, reports_dir="r", quick=True, echo=printed.append)
    assert built == {
        "cache_dir": tmp_path,
        "reports_dir": "r",
        "spam_csv": None,
        "quick": True,
        "loopback_only": True,
    }
    url = re.search(r"http://127\.0\.0\.1:\d+/", printed[-1]).group()
    assert answers == [{"ok": True}]
    assert opened == [url]


def test_the_default_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert server.default_cache_dir() == tmp_path / "ptheta" / "explorer"


# --------------------------------------------------------------------- the shipped page
def test_the_page_is_served_with_its_assets(explorer_app):
    with ExplorerServer(explorer_app, "127.0.0.1", 0) as running:
        page = httpx.get(running.url)
        assert page.status_code == 200 and 'id="view-space"' in page.text
        for asset, kind in [("app.js", "javascript"), ("style.css", "css"), ("plotly.min.js", "")]:
            answer = httpx.get(running.url + f"static/{asset}")
            assert answer.status_code == 200, asset
            assert kind in answer.headers["content-type"]


def test_every_element_the_script_uses_is_on_the_page():
    html = (STATIC / "index.html").read_text()
    script = (STATIC / "app.js").read_text()
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    used = set(re.findall(r'\$\("([^"]+)"\)', script))
    assert used and used <= ids, f"missing on the page: {sorted(used - ids)}"
    views = set(re.findall(r'data-view="([^"]+)"', html))
    assert views == {
        *("space", "structure", "surface", "spam", "flow"),
        *("mass", "surprise", "score", "ode", "compare", "sequences"),
    }
    # the script's list of views is the page's, in the page's order
    listed = re.search(r"const VIEWS = \{ ([^}]*) \};", script).group(1).split(", ")
    assert listed == re.findall(r'data-view="([^"]+)"', html)
    for view in views:
        assert f'id="view-{view}"' in html and f'aria-controls="view-{view}"' in html


def test_the_page_loads_nothing_from_the_internet():
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), name
        urls = set(re.findall(r"https?://[^\s\"'`]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}"


def test_the_static_files_ship_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in config["tool"]["setuptools"]["package-data"]["ptheta.explorer"]
    deps = " ".join(config["project"]["dependencies"])
    assert all(name in deps for name in ("fastapi", "uvicorn", "plotly"))


def test_a_loopback_app_refuses_other_host_headers(tmp_path):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends
    Host: evil.example; a loopback-only app refuses it with a JSON error."""
    from fastapi.testclient import TestClient

    from ptheta.explorer.app import create_app

    app = create_app(cache_dir=tmp_path, reports_dir=tmp_path, loopback_only=True)
    with TestClient(app) as client:
        for host in ("127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "127.0.0.1"):
            assert client.get("/api/health", headers={"host": host}).status_code == 200, host
        for host in ("evil.example:8765", "evil.example", "10.0.0.1:8765", ""):
            answer = client.get("/api/health", headers={"host": host})
            assert answer.status_code == 403, host
            assert "host" in answer.json()["error"].lower()
