"""`ptheta compare` and `ptheta demo` through click's test runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ptheta.cli import cli
from ptheta.cli.compare import model_overrides
from ptheta.errors import ParameterError


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = (rng.random((300, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.int64)
    path = tmp_path_factory.mktemp("data") / "bits.npy"
    np.save(path, x)
    return str(path)


def test_compare_prints_one_table_and_writes_the_report(npy, tmp_path):
    config = tmp_path / "models.toml"
    config.write_text("[gmm]\nn_components = 2\nmax_iter = 10\n")
    out = tmp_path / "report"
    args = ["compare", "--data", npy, "--models", "independent,gmm,chow-liu", "--budget", "1m",
            "--config", str(config), "--set", "gmm.random_state=3", "--n-samples", "30",
            "--out", str(out), "--quiet"]  # fmt: skip
    text = run(*args).output
    for piece in ("ptheta compare: bits", "independent", "bound (deq.)", "≤ ", "exact",
                  "NLL (nats)", "raw-bits", "report.md"):  # fmt: skip
        assert piece in text, piece
    report = json.loads((out / "report.json").read_text())
    assert report["budget_seconds"] == 60 and len(report["rows"]) == 3
    gmm = json.loads((out / "runs" / "gmm" / "config.json").read_text())["params"]
    assert (gmm["n_components"], gmm["max_iter"], gmm["random_state"]) == (2, 10, 3)
    assert "cached (not refitted): " in run(*args).output
    # the run directories work with the other commands
    assert "NLL" in run("eval", str(out / "runs" / "chow-liu")).output


def test_compare_errors_are_one_line(npy, tmp_path):
    out = str(tmp_path / "r")
    for args, match in [
        (["--budget", "5 minutes"], "not a duration"),
        (["--set", "n_components=3"], "model.key=value"),
        (["--models", "gmmm"], "did you mean 'gmm'"),
        (["--models", "gmm", "--set", "made.hidden=[8]"], "not among the compared models"),
        (["--models", "gmm", "--set", "gmm.n_component=3"], "n_components"),
    ]:
        result = run("compare", "--data", npy, "--out", out, *args, code=2)
        assert match in result.output and "Traceback" not in result.output, result.output


def test_config_sections_must_be_tables(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"n_components": 3}')
    with pytest.raises(ParameterError, match="one table per model"):
        model_overrides(str(path), ())
    assert model_overrides(None, ("gmm.n_components=3", "made.hidden=[8]")) == {
        "gmm": {"n_components": 3}, "made": {"hidden": [8]}}  # fmt: skip
