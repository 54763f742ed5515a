"""`ptheta explore` through click's test runner: options reach serve(), refusals are one line."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from ptheta.cli import cli
from ptheta.explorer import server


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["explore", *args], env=env, catch_exceptions=False)


@pytest.fixture
def served(monkeypatch):
    """serve() replaced by a recorder: what the command asked for."""
    calls: list[dict] = []
    monkeypatch.setattr(server, "serve", lambda **kwargs: calls.append(kwargs))
    return calls


def test_help_lists_every_option():
    out = invoke("--help").output
    for option in ("--port", "--host", "--no-browser", "--cache", "--reports", "--spam-csv"):
        assert option in out
    assert "--quick" in out and "no login" in out


def test_defaults_reach_serve(served):
    assert invoke().exit_code == 0
    assert served == [
        {
            "host": "127.0.0.1",
            "port": 8765,
            "open_browser": True,
            "cache_dir": None,
            "reports_dir": "reports",
            "spam_csv": None,
            "explicit_host": False,
            "quick": False,
            "echo": served[0]["echo"],
        }
    ]


def test_options_reach_serve(served, tmp_path):
    csv = tmp_path / "mail.csv"
    csv.write_text("text,label\nfree cash,spam\n")
    args = ["--port", "9000", "--no-browser", "--cache", str(tmp_path / "c"), "--quick"]
    args += ["--reports", str(tmp_path / "r"), "--spam-csv", str(csv), "--host", "0.0.0.0"]
    assert invoke(*args).exit_code == 0
    (call,) = served
    assert call["port"] == 9000 and call["open_browser"] is False and call["quick"] is True
    assert call["cache_dir"] == str(tmp_path / "c") and call["spam_csv"] == str(csv)
    assert call["host"] == "0.0.0.0" and call["explicit_host"] is True


def test_a_host_from_the_environment_is_not_explicit(served):
    assert invoke(env={"PTHETA_EXPLORE_HOST": "0.0.0.0"}).exit_code == 0
    assert served[0]["host"] == "0.0.0.0" and served[0]["explicit_host"] is False


def test_a_non_loopback_host_from_the_environment_is_refused():
    result = CliRunner().invoke(
        cli, ["explore", "--no-browser"], env={"PTHETA_EXPLORE_HOST": "0.0.0.0"}
    )
    assert result.exit_code == 2
    assert "refusing to serve the explorer on '0.0.0.0'" in result.output
    assert "Traceback" not in result.output


def test_a_port_in_use_is_one_error_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["explore", "--no-browser", "--port", str(port)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0]


def test_bad_option_values_are_refused():
    result = CliRunner().invoke(cli, ["explore", "--port", "70000"])
    assert result.exit_code == 2 and "70000" in result.output
    result = CliRunner().invoke(cli, ["explore", "--spam-csv", "/no/such/file.csv"])
    assert result.exit_code == 2 and "does not exist" in result.output
