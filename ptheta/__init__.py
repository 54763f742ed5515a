"""ptheta: fit, sample, score and compare generative models, with honest likelihoods.

``import ptheta`` is light: the registry, the data sets and the run directories are
loaded on first use (PEP 562), so the command line answers at once.

>>> import ptheta
>>> data = ptheta.datasets.load("digits-binary")
>>> model = ptheta.make("independent").fit(data.train.x)
>>> model.score_samples(data.test.x).shape
(447,)
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ptheta.errors import PthetaError
from ptheta.models import REGISTRY, list_models, make

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ptheta import data, info
    from ptheta import data as datasets
    from ptheta.data.ragged import Sequences
    from ptheta.models.base import GenerativeModel

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "data": ("ptheta.data", None),
    "datasets": ("ptheta.data", None),
    "info": ("ptheta.eval.info", None),
    "GenerativeModel": ("ptheta.models.base", "GenerativeModel"),
    "Sequences": ("ptheta.data.ragged", "Sequences"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        value = value if attr is None else getattr(value, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(run_dir: str | os.PathLike) -> GenerativeModel:
    """Rebuild a fitted estimator from a run directory written by ``ptheta fit``."""
    from ptheta.runs.store import load_run

    return load_run(run_dir)


__all__ = [
    "REGISTRY",
    "GenerativeModel",
    "PthetaError",
    "Sequences",
    "__version__",
    "data",
    "datasets",
    "info",
    "list_models",
    "load",
    "make",
]
