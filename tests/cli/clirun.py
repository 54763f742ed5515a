"""Running `ptheta` commands through click's test runner, shared by the CLI tests."""

from __future__ import annotations

from click.testing import CliRunner, Result

from ptheta.cli import cli


def run(*args: str, ok: bool = True) -> Result:
    """Invoke ``ptheta ARGS``; expect exit status 0, or 2 (one-line error) when not ``ok``."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == (0 if ok else 2), result.output
    return result
