"""ptheta: fit, sample, score and compare generative models, with honest likelihoods.

>>> import ptheta
>>> data = ptheta.datasets.load("digits-binary")
>>> model = ptheta.make("independent").fit(data.train.x)
>>> model.score_samples(data.test.x).shape
(447,)
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

from ptheta import data, info
from ptheta import data as datasets
from ptheta.errors import PthetaError
from ptheta.models import REGISTRY, list_models, make
from ptheta.models.base import GenerativeModel


def load(run_dir: str | os.PathLike) -> GenerativeModel:
    """Rebuild a fitted estimator from a run directory written by ``ptheta fit``."""
    from ptheta.train.rundir import load_run

    return load_run(run_dir)


__all__ = [
    "REGISTRY",
    "GenerativeModel",
    "PthetaError",
    "__version__",
    "data",
    "datasets",
    "info",
    "list_models",
    "load",
    "make",
]
