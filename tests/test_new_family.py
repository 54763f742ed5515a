"""Contract v2's proof: a new family is one file plus one registry entry, and it appears
everywhere (ptheta models, fit / sample / score / eval, compare --models all, the contract
test, the explorer's lists) with no other change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import ptheta
from ptheta.cli import cli
from ptheta.models import REGISTRY

NAME = "toy-gaussian"

# The whole family: one file, as a user or a new engineer would write it.
FAMILY = '''
"""A toy family for the registry test: one diagonal Gaussian, exact likelihood."""

from typing import Any, ClassVar

import numpy as np

from ptheta.models.base import GenerativeModel


class ToyGaussian(GenerativeModel):
    """One diagonal Gaussian N(mean, diag(var)), fitted in closed form."""

    name: ClassVar[str] = "toy-gaussian"
    family: ClassVar[str] = "baselines"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {}, "explorer": {}}

    def __init__(self, *, min_var: float = 1e-6) -> None:
        self.min_var = min_var

    def _fit(self, x, y, spec):
        flat = x.reshape(len(x), -1)
        self.mean_ = flat.mean(axis=0)
        self.var_ = np.maximum(flat.var(axis=0), self.min_var)

    def _score_samples(self, x):
        flat = x.reshape(len(x), -1)
        z = (flat - self.mean_) ** 2 / self.var_
        return -0.5 * (z + np.log(2 * np.pi * self.var_)).sum(axis=1)

    def _sample(self, n, y, rng):
        return self.mean_ + np.sqrt(self.var_) * rng.standard_normal((n, self.mean_.size))

    def _n_parameters(self):
        return 2 * self.mean_.size

    def _required_attributes(self):
        return ("mean_", "var_")
'''

# A pytest plugin that registers the family before the contract test is collected.
PLUGIN = f"""
import ptheta.models

ptheta.models.register({NAME!r}, "toyfamily:ToyGaussian")
"""


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    folder = tmp_path / "family"
    folder.mkdir()
    (folder / "toyfamily.py").write_text(FAMILY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(REGISTRY, NAME, "toyfamily:ToyGaussian")  # the one registry entry
    yield folder
    sys.modules.pop("toyfamily", None)


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_it_is_listed_with_its_capabilities(toy_family):
    rows = {r["name"]: r for r in ptheta.list_models()}
    assert rows[NAME]["likelihood"] == "exact" and rows[NAME]["data_kinds"] == ["continuous"]
    assert rows[NAME]["presets"] == ["demo", "explorer", "quick"]
    assert NAME in _run("models")
    assert "min_var" in _run("models", NAME)


def test_fit_sample_score_and_eval_work_from_the_command_line(toy_family, tmp_path):
    run = tmp_path / "run"
    _run("fit", NAME, "--data", "toy2d-moons", "--out", str(run), "--quiet")
    model = ptheta.load(run)
    assert model.sample(3, random_state=0).shape == (3, 2)
    _run("sample", str(run), "-n", "5", "--out", str(tmp_path / "s.npy"))
    assert np.load(tmp_path / "s.npy").shape == (5, 2)
    _run("score", str(run), "--split", "test", "--out", str(tmp_path / "scores.csv"))
    assert (tmp_path / "scores.csv").read_text().count("\n") == 1001  # header + 1000 rows
    assert "exact" in _run("eval", str(run))


def test_compare_all_and_the_demo_line_up_include_it(toy_family, tmp_path):
    from ptheta.eval.compare import select_models

    data = ptheta.datasets.load("toy2d-moons")
    assert NAME in select_models("all", data)[0]
    assert NAME in select_models("demo", data)[0]
    out = tmp_path / "cmp"
    _run("compare", "--data", "toy2d-moons", "--models", f"independent,{NAME}",
         "--budget", "5s", "--out", str(out), "--quiet")  # fmt: skip
    rows = {r["model"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows[NAME]["status"] == "ok" and rows[NAME]["likelihood"] == "exact"


def test_the_contract_test_collects_and_passes_it(toy_family, tmp_path):
    (toy_family / "toyplugin.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_family), *sys.path])}
    contract = Path(__file__).parent / "models" / "test_contract.py"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "toyplugin", "-p", "no:cacheprovider",
         str(contract), "-k", NAME],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in summary and "failed" not in summary, summary


def test_the_explorer_offers_it_where_its_capabilities_fit(toy_family):
    from ptheta.explorer import views

    assert NAME in views.surface_models()  # a continuous density with an explorer preset


def test_a_broken_entry_is_one_clear_error(monkeypatch):
    from ptheta.errors import RegistryError

    monkeypatch.setitem(REGISTRY, "broken", "no_such_module:Nothing")
    with pytest.raises(RegistryError, match="cannot be imported"):
        ptheta.make("broken")
