"""The explorer's model cache: fitted models kept as ptheta run directories, fitted once."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ptheta
from ptheta.errors import PthetaError
from ptheta.models import GenerativeModel
from ptheta.models.base import to_jsonable
from ptheta.runs.layout import CONFIG
from ptheta.runs.store import read_config


class ModelCache:
    """Fitted models as ptheta run directories under ``root/<view>/<data>/<model>/``.

    ``get`` returns the model from memory, else loads its run directory with
    :func:`ptheta.load` (when it was fitted with the same hyper-parameters), else fits it
    with the given function and loads the result. One lock per model, so concurrent
    requests fit it once. ``fits`` and ``loads`` count what happened, per key.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.fits: Counter[tuple[str, str, str]] = Counter()
        self.loads: Counter[tuple[str, str, str]] = Counter()
        self._models: dict[tuple[str, str, str], GenerativeModel] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, view: str, data: str, model: str) -> Path:
        """The run directory of ``model`` fitted on ``data`` for ``view``."""
        return self.root / view / data / model

    def get(
        self,
        view: str,
        data: str,
        model: str,
        params: dict[str, Any],
        fit: Callable[[Path], None],
    ) -> GenerativeModel:
        """The fitted ``model`` of ``view`` on ``data``; ``fit(run_dir)`` writes it."""
        key = (view, data, model)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._models:
                return self._models[key]
            path = self.path(*key)
            found = self._load(path, model, params)
            if found is not None:
                self.loads[key] += 1
            else:
                fit_in_place(path, fit)
                self.fits[key] += 1
                found = ptheta.load(path)
            self._models[key] = found
            return found

    @staticmethod
    def _load(path: Path, model: str, params: dict[str, Any]) -> GenerativeModel | None:
        """The cached model, or None when there is none or it was fitted otherwise."""
        if not (path / CONFIG).is_file():
            return None
        try:
            config = read_config(path)
            saved = config["params"]
            if config["model"] != model or any(
                saved.get(k) != to_jsonable(v) for k, v in params.items()
            ):
                return None  # another budget (quick vs full): fit again
            return ptheta.load(path)
        except PthetaError:  # a damaged cache entry is refitted, not reported
            return None


def fit_in_place(path: Path, fit: Callable[[Path], None]) -> None:
    """Run ``fit`` into a fresh sibling folder of ``path``, then swap it in by renames.

    Another explorer process sharing the cache never sees a half-written run, nor has one
    deleted under it; a failed fit leaves the old run as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    old = None
    try:
        fit(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:  # another process put its fit there meanwhile: keep that one
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
