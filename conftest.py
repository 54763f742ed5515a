"""Doctest set-up: every docstring example runs seeded, on one thread, in a temporary folder.

The examples of ``ptheta`` are documentation that runs (``--doctest-modules`` over
``ptheta/`` in ``make test``). Each one starts from the same random state, so its printed
output is the same on every machine, and in its own empty working directory, so the
``runs/`` and ``reports/`` folders some examples write never land in the repository.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Not collected for doctests, with why:
# - ptheta/__main__.py runs the command line when imported.
collect_ignore = ["ptheta/__main__.py"]


@pytest.fixture(autouse=True)
def _doctest_setup(request: pytest.FixtureRequest) -> None:
    """Seed numpy and torch and move into a fresh temporary folder before each doctest."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    # Nothing is put in ``doctest_namespace``: an example shows its own imports, so it can be
    # pasted as it is.
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
