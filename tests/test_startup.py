"""The command line answers at once: `import ptheta` and `ptheta --help` load no torch or
scikit-learn (timings are benchmarks in bench/startup.py, not tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ptheta.cli import COMMANDS

HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "pandas")


def _imported_after(code: str) -> dict[str, bool]:
    report = f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    probe = f"{code}\nimport json, sys\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ptheta_loads_no_heavy_library():
    loaded = _imported_after("import ptheta; ptheta.REGISTRY; ptheta.make")
    assert not any(loaded.values()), loaded


def test_help_datasets_and_command_help_load_no_heavy_library():
    code = (
        "import contextlib, io\n"
        "from ptheta.cli import cli\n"
        "for args in (['--help'], ['datasets'], ['fit', '--help'], ['compare', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        cli(args, standalone_mode=False)\n"
    )
    loaded = _imported_after(code)
    assert not loaded["torch"] and not loaded["sklearn"], loaded


def test_the_first_model_use_imports_its_family():
    loaded = _imported_after("import ptheta; ptheta.make('gmm')")
    assert loaded["torch"] and loaded["sklearn"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_listed_for_a_command_is_its_own(name):
    import importlib

    module, listed = COMMANDS[name]
    command = importlib.import_module(module).command
    assert command.name == name
    assert command.get_short_help_str(limit=1000) == listed
