"""The explorer's back end: a FastAPI app serving the JSON API under /api and the static page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

import ptheta
from ptheta.errors import PthetaError, UnknownNameError
from ptheta.explorer import views
from ptheta.explorer.server import is_loopback
from ptheta.io import strict_json

STATIC_DIR = Path(__file__).parent / "static"
# The only body the API takes is a list of vocabulary words: 64 KiB is far more than enough,
# and a larger body is refused before it is read into memory.
MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets a 413 JSON error.

    A declared ``Content-Length`` is checked before anything is read; a streamed (chunked)
    body is counted as it arrives and buffered up to the limit, then handed on.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        message = (
            f"the request body is too large (more than {self.max_bytes} bytes); the API takes "
            'small JSON bodies such as {"words": ["free", "cash"]}'
        )
        await _error(413, message)(scope, receive, send)


class WordsBody(BaseModel):
    """Body of POST /api/spam/posterior: the words present in the e-mail."""

    words: list[str]


class LoopbackHosts:
    """ASGI middleware: answer only requests whose ``Host`` header names this machine.

    A server on 127.0.0.1 is still reachable from a web page elsewhere by DNS rebinding
    (its name re-resolved to 127.0.0.1); such a request carries that page's host name, so
    it is refused with a 403 JSON error.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not is_loopback(_host_name(host)):
                message = (
                    f"refused a request for host {host!r}: this explorer answers only requests "
                    "addressed to this machine (127.0.0.1, ::1 or localhost)"
                )
                await _error(403, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: ``[::1]:80`` → ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    """One line out of FastAPI's list of validation errors: the first one, named."""
    errors = exc.errors()
    if not errors:
        return "invalid request; check the query parameters and the JSON body"
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON ({reason or 'decode error'})"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body")]
    where = ".".join(loc) or "the request body"
    got = first.get("input")
    shown = "" if got is None or isinstance(got, dict) else f" (got {str(got)[:40]!r})"
    return f"bad value for {where!r}: {first.get('msg', 'invalid')}{shown}"


def _plotly_js() -> Path | None:
    """plotly.js as bundled with the plotly Python package, or None when it is missing."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def create_app(
    *,
    cache_dir: str | os.PathLike,
    reports_dir: str | os.PathLike = "reports",
    spam_csv: str | os.PathLike | None = None,
    quick: bool = False,
    loopback_only: bool = False,
) -> FastAPI:
    """Build the explorer's app: the JSON API under ``/api`` and the page at ``/``.

    Arguments:
        cache_dir: where fitted models are cached as ptheta run directories
            (``cache_dir/<view>/<data>/<model>/``); a second app on the same folder loads
            them instead of fitting again.
        reports_dir: the folder scanned (recursively) for ``ptheta compare`` reports.
        spam_csv: a CSV file with columns ``text,label`` for the spam view, instead of the
            synthetic corpus (see :mod:`ptheta.explorer.spam`).
        quick: tiny training budgets (tests and demos): every view answers in seconds.
        loopback_only: answer only requests addressed to this machine (``Host`` header
            127.x, ::1 or localhost), against DNS rebinding; `serve` sets it when it binds
            to a loopback address.

    Returns:
        the ``fastapi.FastAPI`` app; serve it with uvicorn. Every error is JSON
        ``{"error": "..."}`` with a 4xx status (400 bad value, 404 unknown thing).

    Example:
        >>> from fastapi.testclient import TestClient
        >>> client = TestClient(create_app(cache_dir="explorer-cache"))
        >>> client.get("/api/health").json()["ok"]
        True
    """
    explorer = views.Explorer(cache_dir, reports_dir=reports_dir, spam_csv=spam_csv, quick=quick)
    app = FastAPI(title="ptheta explorer", version=ptheta.__version__, docs_url="/api/docs")
    app.state.explorer = explorer

    @app.exception_handler(UnknownNameError)
    async def _unknown(request: Request, exc: UnknownNameError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(PthetaError)
    async def _bad_value(request: Request, exc: PthetaError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = (
                f"nothing at {request.url.path}; the page is at / and the API under /api "
                "(see /api/docs)"
            )
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /api/docs"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # the page shows this line; the traceback still goes to the server's log
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return _error(
            500,
            f"internal error on {request.url.path}: {type(exc).__name__}: {first}; this is a bug, "
            "see the server's log for the traceback",
        )

    def _json(obj: dict[str, Any]) -> JSONResponse:
        # strict JSON: a NaN or infinite number goes out as null, never as NaN
        return JSONResponse(strict_json(obj))

    # ------------------------------------------------------------------ API
    @app.get("/api/health")
    def health() -> JSONResponse:
        return _json({"ok": True, "version": ptheta.__version__})

    @app.get("/api/space")
    def space(n: int) -> JSONResponse:
        return _json(explorer.space(n))

    @app.get("/api/structure")
    def structure() -> JSONResponse:
        return _json(explorer.structure())

    @app.get("/api/structure/samples")
    def structure_samples(model: str, n: int = 16, seed: int = 0) -> JSONResponse:
        return _json(explorer.structure_samples(model, n=n, seed=seed))

    @app.get("/api/surface/options")
    def surface_options() -> JSONResponse:
        return _json(views.surface_options())

    @app.get("/api/surface")
    def surface(
        data: str = "toy2d-moons", model: str | None = None, grid: int = 60
    ) -> JSONResponse:
        # no model: the first of the surface view's families
        chosen = model if model is not None else (views.surface_models() or [""])[0]
        return _json(explorer.surface(data, chosen, grid=grid))

    @app.get("/api/spam/vocab")
    def spam_vocab() -> JSONResponse:
        return _json(explorer.spam_vocab())

    @app.post("/api/spam/posterior")
    def spam_posterior(body: WordsBody) -> JSONResponse:
        return _json(explorer.spam_posterior(body.words))

    @app.get("/api/flow/options")
    def flow_options() -> JSONResponse:
        return _json(explorer.flow_options())

    @app.get("/api/flow")
    def flow(data: str = "toy2d-moons", strength: float = 1.0, grid: int = 60) -> JSONResponse:
        return _json(explorer.flow(data, strength=strength, grid=grid))

    @app.get("/api/mass")
    def mass(row: int = views.MASS_ROW, data: str = "toy2d-moons", grid: int = 60) -> JSONResponse:
        return _json(explorer.mass(row=row, data=data, grid=grid))

    @app.get("/api/surprise")
    def surprise(
        p: float = 0.1, q: float = 1.0, event: int = views.SURPRISE_OUTCOMES - 1
    ) -> JSONResponse:
        return _json(explorer.surprise(p=p, q=q, event=event))

    @app.get("/api/score/options")
    def score_options() -> JSONResponse:
        return _json(explorer.score_options())

    @app.get("/api/score")
    def score_field(
        data: str = "toy2d-moons",
        model: str | None = None,
        grid: int = 20,
        chains: int = 32,
        frames: int = 40,
        seed: int = 0,
    ) -> JSONResponse:
        # no model: the first of the score-field view's families
        return _json(
            explorer.score_field(data, model, grid=grid, chains=chains, frames=frames, seed=seed)
        )

    @app.get("/api/ode/options")
    def ode_options() -> JSONResponse:
        return _json(explorer.ode_options())

    @app.get("/api/ode")
    def ode(
        data: str = "toy2d-moons",
        model: str | None = None,
        grid: int = 40,
        paths: int = 64,
        frames: int = 30,
        seed: int = 0,
    ) -> JSONResponse:
        # no model: the first of the ODE view's families
        return _json(explorer.ode(data, model, grid=grid, paths=paths, frames=frames, seed=seed))

    @app.get("/api/sequences")
    def sequences(n: int = 12, seed: int = 0) -> JSONResponse:
        return _json(explorer.sequences(n=n, seed=seed))

    @app.get("/api/compare/list")
    def compare_list() -> JSONResponse:
        return _json(explorer.compare_list())

    @app.get("/api/compare")
    def compare(data: str) -> JSONResponse:
        return _json(explorer.compare(data))

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    @app.api_route("/api/{rest:path}", methods=methods, include_in_schema=False)
    def unknown_api(rest: str, request: Request) -> JSONResponse:
        return _error(
            404, f"no API endpoint {request.method} /api/{rest}; see /api/docs for the list"
        )

    # ------------------------------------------------------------------ page
    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        path = _plotly_js()
        if path is None:
            return _error(
                404, "plotly.js is missing: install the plotly Python package (pip install plotly)"
            )
        return FileResponse(path, media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            return _error(
                404, f"the explorer's page is missing ({page}); reinstall ptheta to restore it"
            )
        return FileResponse(page, media_type="text/html")

    # check_dir=False: the app still starts (and the API still works) without the folder
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if loopback_only:
        app.add_middleware(LoopbackHosts)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
