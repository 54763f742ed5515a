"""Audit: the module level follows torch.distributions' shape conventions (issue 14, item 15).

Every neural family's fitted ``nn.Module``: ``log_prob`` maps (*batch, *event_shape) to
(*batch) (an unbatched example to a scalar), with the same values as the flat batch;
discrete modules take any integer dtype; a wrong event shape is a ValueError naming the
expected one; ``sample(sample_shape)`` returns (*sample_shape, *event_shape), empty for 0
(item 10); GAN and EBM modules have no ``log_prob``. Stochastic scores draw their noise per
example from keys (ptheta.nn.noise), so they are compared like the exact ones, with a
tolerance and never bit for bit (BLAS paths differ with the batch size).
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest
import torch

import ptheta
from ptheta.data.spec import DataSpec, Split
from ptheta.models import REGISTRY
from ptheta.models.neural import NeuralModel
from ptheta.nn.noise import example_keys

RTOL = 1e-6
NEURAL = [name for name, cls in REGISTRY.items() if issubclass(cls, NeuralModel)]
# each family on its first data kind, and on continuous data where it also takes those
CASES = [
    (name, kind)
    for name in NEURAL
    for kind in dict.fromkeys([REGISTRY[name].data_kinds[0], "continuous"])
    if kind in REGISTRY[name].data_kinds
]
CONDITIONAL = [name for name in NEURAL if "class_conditional" in REGISTRY[name]._get_param_names()]


def _split(kind: str, image: bool, n: int = 80) -> Split:
    """Two clusters of 6 variables (binary, 5 levels) or 2 reals; images are 1×2×3; a
    table of one column of each type."""
    if kind == "table":
        from tests.models.test_contract import _data

        return _data("table", n=n)[2]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    if kind == "binary":
        x = (rng.random((n, 6)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(np.int64)
        spec = DataSpec("binary", (6,))
    elif kind == "categorical":
        x = np.clip(np.where(y[:, None] == 1, 3, 1) + rng.integers(-1, 2, (n, 6)), 0, 4)
        spec = DataSpec("categorical", (6,), 5)
    else:
        x = rng.normal(size=(n, 2)) * 0.5 + np.where(y[:, None] == 1, 2.0, -2.0)
        spec = DataSpec("continuous", (2,))
    if image:
        x = x.reshape(n, 1, 2, 3)
        spec = DataSpec(spec.kind, (1, 2, 3), spec.n_categories, image_shape=(1, 2, 3))
    return Split(x, y, spec)


_FITTED: dict[tuple[str, str, bool], tuple[torch.nn.Module, Split]] = {}


def _module(name: str, kind: str, conditional: bool = False):
    """The fitted module (float64, eval mode) of ``name`` on small data, and the data."""
    key = (name, kind, conditional)
    if key not in _FITTED:
        cls = REGISTRY[name]
        split = _split(kind, cls.needs_image)
        params = {**cls.quick_params, "dtype": "float64", "device": "cpu"}
        if conditional:
            params["class_conditional"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ptheta.make(name, **params).fit(split, split.y if conditional else None)
        _FITTED[key] = (model.module.eval(), split)
    return _FITTED[key]


def _examples(module, split: Split, n: int = 6) -> torch.Tensor:
    """n examples of the module's event shape: int64 levels or float64 reals."""
    x = torch.as_tensor(split.x[:n])
    x = x.long() if split.spec.is_discrete else x.double()
    return x.reshape(n, *module.event_shape)


def _keyed(module, x: torch.Tensor, batch: tuple[int, ...]) -> dict:
    """Per-example noise keys of the batch shape, for log_probs that take them (VAEs)."""
    if "keys" not in inspect.signature(module.log_prob).parameters:
        return {}
    flat = x.reshape(-1, *x.shape[len(batch) :])
    return {"keys": example_keys(flat, 11).reshape(batch)}


def _log_prob(module, x: torch.Tensor, batch: tuple[int, ...], y=None) -> torch.Tensor:
    with torch.no_grad():
        return module.log_prob(x, y, **_keyed(module, x, batch))


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_log_prob_maps_batch_and_event_shapes_to_the_batch_shape(name, kind):
    module, split = _module(name, kind)
    if REGISTRY[name].likelihood == "none":  # a GAN, an EBM: no density to evaluate
        assert not hasattr(module, "log_prob")
        return
    event = tuple(module.event_shape)
    x6 = _examples(module, split)
    x23 = x6.reshape(2, 3, *event)
    flat = _log_prob(module, x6, (6,))
    assert flat.shape == (6,) and flat.dtype == torch.float64
    grid = _log_prob(module, x23, (2, 3))
    assert grid.shape == (2, 3), "(2, 3, *event) is a 2×3 batch, never two examples"
    torch.testing.assert_close(grid.reshape(6), flat, rtol=RTOL, atol=1e-9)
    one = _log_prob(module, x6[4], ())
    assert one.shape == (), "one unbatched example gives a scalar"
    torch.testing.assert_close(one, flat[4], rtol=RTOL, atol=1e-9)
    if "generator" in inspect.signature(module.log_prob).parameters:
        # noise from a generator: the same draws for the same number of examples
        with torch.no_grad():
            a = module.log_prob(x23, generator=torch.Generator().manual_seed(3))
            b = module.log_prob(x6, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(a.reshape(6), b, rtol=RTOL, atol=1e-9)
    # the Trainer's loss keeps its (N,) contract; batch shapes work there too
    with torch.no_grad():
        assert module.loss(x6).shape == (6,)
        assert module.loss(x23).shape == (2, 3)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_inputs_of_any_integer_dtype_and_clear_dtype_errors(name, kind):
    module, split = _module(name, kind)
    score = module.log_prob if hasattr(module, "log_prob") else module.loss
    x6 = _examples(module, split)
    if not split.spec.is_discrete:
        # reals of another precision or integers are cast to the module's dtype
        assert score(x6.float()).shape == (6,)
        assert score(x6.round().int()).shape == (6,)
        return
    if score is module.loss:
        return
    expected = _log_prob(module, x6, (6,))
    dtypes = [torch.int32, torch.int16, torch.int8, torch.uint8, torch.float32]
    if split.spec.kind == "binary":
        dtypes.append(torch.bool)
    for dtype in dtypes:
        got = _log_prob(module, x6.to(dtype), (6,))
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=1e-9, msg=str(dtype))
    with pytest.raises(ValueError, match="integer levels"):
        module.log_prob(x6 + 0.5)
    with pytest.raises(ValueError, match="levels 0"):
        module.log_prob(x6 + module.n_categories)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_a_wrong_event_shape_is_a_value_error_naming_the_expected_one(name, kind):
    module, split = _module(name, kind)
    score = module.log_prob if hasattr(module, "log_prob") else module.loss
    event = tuple(module.event_shape)
    x6 = _examples(module, split)
    if getattr(module, "variable_length", False):
        # sequence models read the last axis as time, any length; a scalar is no sequence
        assert score(x6[:, :3]).shape == (6,)
        wrong = x6[0, 0]
    else:
        wrong = torch.zeros(2, 3, x6[0].numel() + 1, dtype=x6.dtype)
    with pytest.raises(ValueError, match=re.escape(str(event))):
        score(wrong)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_sample_takes_a_sample_shape(name, kind):
    module, split = _module(name, kind)
    event = tuple(module.event_shape)
    gen = torch.Generator().manual_seed(0)
    empty = module.sample(0)
    assert empty.shape == (0, *event)
    assert empty.dtype == (torch.long if split.spec.is_discrete else torch.float64)
    assert module.sample((2, 0)).shape == (2, 0, *event)
    assert module.sample((2, 3), generator=gen).shape == (2, 3, *event)
    assert module.sample(4, generator=gen).shape == (4, *event)
    assert module.sample(generator=gen).shape == event
    assert inspect.signature(module.sample).parameters["sample_shape"].default == ()
    with pytest.raises(ValueError, match="sample_shape"):
        module.sample(-1)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_class_labels_have_the_batch_shape(name):
    module, split = _module(name, REGISTRY[name].data_kinds[0], conditional=True)
    event = tuple(module.event_shape)
    y6 = torch.as_tensor(split.y[:6])
    x6 = _examples(module, split)
    if hasattr(module, "log_prob"):
        flat = _log_prob(module, x6, (6,), y6)
        grid = _log_prob(module, x6.reshape(2, 3, *event), (2, 3), y6.reshape(2, 3).int())
        torch.testing.assert_close(grid.reshape(6), flat, rtol=RTOL, atol=1e-9)
        with pytest.raises(ValueError, match=r"batch shape \(2, 3\)"):
            module.log_prob(x6.reshape(2, 3, *event), y6)
    gen = torch.Generator().manual_seed(0)
    assert module.sample((2, 3), y6.reshape(2, 3), generator=gen).shape == (2, 3, *event)
    assert module.sample((2, 3), torch.tensor(1), generator=gen).shape == (2, 3, *event)
