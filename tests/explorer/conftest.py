"""Shared fixtures of the explorer tests: ONE quick app per test session, on a temporary cache.

Fitting is the slow part, so every test (back end and front end) should reuse
``explorer_client`` rather than build its own app: its models are fitted once, on first
use, with the tiny ``quick=True`` budgets, and cached under ``explorer_dirs["cache"]``.

- ``explorer_dirs``: ``{"cache": Path, "reports": Path}`` (the reports folder starts empty;
  tests may write ``report.json`` files into sub-folders of it).
- ``explorer_app``: the FastAPI app from ``create_app(..., quick=True)``.
- ``explorer_client``: a ``fastapi.testclient.TestClient`` on that app.
- ``explorer``: the app's :class:`ptheta.explorer.views.Explorer` (computations without HTTP;
  ``explorer.cache.fits`` / ``.loads`` count fits and cache loads).
- ``fake_families``: the stand-in score-field and ODE families of ``fake_families.py``,
  registered (after every real family) for the whole test module that asks for them, then
  removed: ``{name: class}``.
- ``sequence_fakes``: likewise the stand-in families of variable-length sequences of
  ``tests/eval/fake_sequences.py`` (closed-form likelihoods; one with a state path).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fake_families import FAKES  # tests/explorer/fake_families.py
from fastapi.testclient import TestClient

from ptheta.explorer.app import create_app
from ptheta.models import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from fake_sequences import FAKES as SEQUENCE_FAKES  # tests/eval/fake_sequences.py


@pytest.fixture(scope="session")
def explorer_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explorer")
    (root / "reports").mkdir()
    return {"cache": root / "cache", "reports": root / "reports"}


@pytest.fixture(scope="session")
def explorer_app(explorer_dirs):
    return create_app(
        cache_dir=explorer_dirs["cache"], reports_dir=explorer_dirs["reports"], quick=True
    )


@pytest.fixture(scope="session")
def explorer_client(explorer_app):
    with TestClient(explorer_app) as client:
        yield client


@pytest.fixture(scope="session")
def explorer(explorer_app):
    return explorer_app.state.explorer


@pytest.fixture(scope="module")
def fake_families():
    with pytest.MonkeyPatch.context() as patch:
        for cls in FAKES:
            patch.setitem(REGISTRY, cls.name, cls)
        yield {cls.name: cls for cls in FAKES}


@pytest.fixture(scope="module")
def sequence_fakes():
    with pytest.MonkeyPatch.context() as patch:
        for cls in SEQUENCE_FAKES:
            patch.setitem(REGISTRY, cls.name, cls)
        yield {cls.name: cls for cls in SEQUENCE_FAKES}
