"""`print(model.module)` shows the architecture: every ptheta module has an ``extra_repr``."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models import REGISTRY
from ptheta.models.neural import NeuralModel
from ptheta.nn.flows import MADEAffine, alternating_mask, vector_coupling

NEURAL = sorted(name for name, cls in REGISTRY.items() if issubclass(cls, NeuralModel))
WIDTH = 36  # a hidden width no other size of these tiny models happens to equal


def _split(kind: str, image: bool, n: int = 64) -> Split:
    if kind == "table":  # typed columns: only a Split (or a DataFrame) says so
        from tests.models.test_contract import _data

        return _data("table", n=n)[2]
    rng = np.random.default_rng(0)
    if kind == "continuous":
        return Split(rng.normal(size=(n, 2)), None, DataSpec("continuous", (2,)))
    k = 2 if kind == "binary" else 5
    x = rng.integers(0, k, size=(n, 6))
    spec = DataSpec(kind, (6,), None if kind == "binary" else k)
    if image:
        x = x.reshape(n, 1, 2, 3)
        spec = DataSpec(kind, (1, 2, 3), spec.n_categories, image_shape=(1, 2, 3))
    return Split(x, None, spec)


def _width_param(model: NeuralModel) -> tuple[str, object]:
    """The family's hidden-width hyper-parameter, set to WIDTH (a list where it is one)."""
    params = model.get_params()
    name = next(p for p in ("hidden", "n_hidden", "channels") if p in params)
    return name, [WIDTH] if isinstance(params[name], (list, tuple)) else WIDTH


@pytest.mark.parametrize("name", NEURAL)
def test_the_fitted_module_prints_its_sizes(name):
    cls = REGISTRY[name]
    model = ptheta.make(name, **cls.quick_params)
    width, value = _width_param(model)
    model.set_params(**{width: value, "epochs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(_split(cls.data_kinds[0], cls.needs_image))

    text = repr(model.module)
    assert re.search(rf"\b{WIDTH}\b", text), f"{name}: {width}={WIDTH} not in\n{text}"
    for module in model.module.modules():
        kind = type(module)
        if kind.__module__.startswith("ptheta."):
            assert kind.extra_repr is not nn.Module.extra_repr, f"{kind.__qualname__}"
            assert module.extra_repr(), f"{kind.__qualname__}.extra_repr() is empty"


def test_flow_layers_say_what_they_are():
    coupling = vector_coupling(alternating_mask(4, 0), [WIDTH], additive=True)
    assert "additive, conditioning=2/4" in repr(coupling)
    assert f"hidden=[{WIDTH}]" in repr(coupling.net)
    made = MADEAffine(3, [WIDTH, 8], ordering=torch.tensor([2, 0, 1]))
    assert repr(made).startswith(f"MADEAffine(\n  n_features=3, hidden=[{WIDTH}, 8]")
