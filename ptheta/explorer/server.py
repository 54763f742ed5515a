"""Serving the explorer: uvicorn on loopback by default, in the foreground or in a thread."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any

from ptheta.errors import ParameterError

# The explorer has no login: whoever reaches the port can fit models (CPU time), read the
# compare reports under --reports and the --spam-csv texts. Loopback keeps it to this machine.
LOOPBACK_NAMES = ("localhost",)


def default_cache_dir() -> Path:
    """Where fitted explorer models are cached: ``$XDG_CACHE_HOME/ptheta/explorer``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ptheta" / "explorer"


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``; False for anything else."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def check_host(host: str, explicit_host: bool) -> None:
    """Refuse a non-loopback address unless the user typed it with ``--host``.

    Arguments:
        host: the address to bind to.
        explicit_host: True when the user gave ``--host`` on the command line (not a
            default, an environment variable or a config file).

    Raises:
        ParameterError: ``host`` is not a loopback address and was not given explicitly.
    """
    if not is_loopback(host) and not explicit_host:
        raise ParameterError(
            f"refusing to serve the explorer on {host!r}: it has no login, so anyone who can "
            "reach that address could run model fits and read your reports; keep the default "
            "127.0.0.1, or pass --host explicitly on the command line if you mean it"
        )


def url_of(host: str, port: int) -> str:
    """The page's address: ``http://127.0.0.1:8765/`` (IPv6 in brackets, 0.0.0.0 as localhost)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or one clear error line.

    Binding here, before uvicorn starts, turns "address in use" into a `ParameterError`
    instead of a log line and an exit from inside the server.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ParameterError(
            f"cannot resolve --host {host!r} ({e.strerror}); check its spelling"
        ) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ParameterError(
                f"port {port} on {host} is already in use (another `ptheta explore`?); "
                f"stop that program or choose another port, e.g. --port {port + 1}"
            ) from None
        if e.errno == errno.EACCES:
            raise ParameterError(
                f"not allowed to listen on port {port} of {host}; choose a port above 1023"
            ) from None
        raise ParameterError(
            f"cannot listen on {host}:{port} ({e.strerror}); check --host"
        ) from None
    sock.setblocking(False)
    return sock


class ExplorerServer:
    """A uvicorn server on an already-bound socket, run in the foreground or a thread.

    Arguments:
        app: the ASGI app (`ptheta.explorer.app.create_app`).
        host: address to bind to (checked by `check_host` in `serve`, not here).
        port: TCP port; 0 picks a free one (see `url` once constructed).
        sock: a socket already listening (from `bind`), used instead of binding ``port``.

    Example:
        >>> from ptheta.explorer.app import create_app
        >>> app = create_app(cache_dir="explorer-cache", quick=True)
        >>> with ExplorerServer(app, "127.0.0.1", 0) as server:  # in a background thread
        ...     server.url.startswith("http://127.0.0.1:"), server.port > 0  # a free port
        (True, True)
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> None:
        import uvicorn

        self.socket = sock if sock is not None else bind(host, port)
        self.port = self.socket.getsockname()[1]
        self.url = url_of(host, self.port)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until Ctrl+C (uvicorn's own signal handling, in the main thread)."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def wait_started(self, timeout: float = 30.0) -> bool:
        """Wait until uvicorn accepts connections; False on timeout or early exit."""
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or (self._thread and not self._thread.is_alive()):
                return False
            time.sleep(0.02)
        return True

    def __enter__(self) -> ExplorerServer:
        self._thread = threading.Thread(target=self.run, name="ptheta-explorer", daemon=True)
        self._thread.start()
        if not self.wait_started():
            self.__exit__()
            raise RuntimeError(f"the explorer server did not start on {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _create_app(**kwargs: Any) -> Any:
    from ptheta.explorer.app import create_app

    return create_app(**kwargs)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    cache_dir: str | os.PathLike | None = None,
    reports_dir: str | os.PathLike = "reports",
    spam_csv: str | os.PathLike | None = None,
    explicit_host: bool = False,
    *,
    quick: bool = False,
    echo: Any = print,
) -> None:
    """Serve the explorer until Ctrl+C, and open it in the user's browser.

    Arguments:
        host: address to bind to; a non-loopback one needs ``explicit_host=True``.
        port: TCP port (0: any free one).
        open_browser: open the page with the `webbrowser` module once the server is up.
        cache_dir: where fitted models are cached (default `default_cache_dir()`).
        reports_dir: folder scanned for ``ptheta compare`` reports.
        spam_csv: optional CSV (``text,label``) for the spam view.
        explicit_host: the user typed ``--host`` (see `check_host`).
        quick: tiny training budgets (demos, tests).
        echo: prints the address and notices (the CLI passes ``click.echo``).

    Raises:
        ParameterError: a refused host, a port in use, an address that cannot be bound.

    Example:
        >>> serve(port=8765, open_browser=False)  # serves until Ctrl+C  # doctest: +SKIP
        ptheta explorer: http://127.0.0.1:8765/  (Ctrl+C to stop)
    """
    check_host(host, explicit_host)
    sock = bind(host, port)  # before building the app: a port in use fails fast
    try:
        app = _create_app(
            cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
            reports_dir=reports_dir,
            spam_csv=spam_csv,
            quick=quick,
            loopback_only=is_loopback(host),
        )
    except BaseException:
        sock.close()
        raise
    server = ExplorerServer(app, host, sock=sock)
    if not is_loopback(host):
        echo(f"Warning: serving on {host}: anyone who can reach it can use the explorer.")
    echo(f"ptheta explorer: {server.url}  (Ctrl+C to stop)")
    if open_browser:
        threading.Thread(target=_open_when_ready, args=(server,), daemon=True).start()
    server.run()


def _open_when_ready(server: ExplorerServer) -> None:
    if server.wait_started():
        webbrowser.open(server.url)
