"""maf and nsf's autoregressive layers on data wider than their MADEs: the hidden degrees
are spread over every variable (``spread_degrees_``); runs saved before keep their
lowest-degree layers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ptheta.data.spec import DataSpec, Split
from ptheta.models.flows import MAF
from ptheta.models.nsf import NSF
from ptheta.nn.flows import MADEAffine
from ptheta.nn.splines import MADESpline
from ptheta.runs.store import load_run, save_run

FAST = {"dtype": "float64", "device": "cpu", "batch_size": 64, "epochs": 1, "lr": 1e-2}
D = 40


def _split() -> Split:
    x = (np.random.default_rng(0).random((120, D)) < 0.3).astype(np.int64)
    return Split(x, None, DataSpec("binary", (D,)))


def _fit(model, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args)


MADES = (MADEAffine, MADESpline)
FAMILIES = {
    "maf": lambda **kw: MAF(8, n_layers=2, **kw),
    "nsf-ar": lambda **kw: NSF(8, n_layers=2, transform_type="autoregressive", **kw),
}


def _reach_of_last(layer) -> int:
    """How many variables the last variable in the layer's order may depend on."""
    paths = layer.layers[0].masks[0]
    for linear in layer.layers[1:]:
        paths = linear.masks[0] @ paths  # (units, D) path counts
    last = int(layer.ordering[-1])
    per = paths.shape[0] // len(layer.ordering)  # output units per variable
    return int((paths[per * last] > 0).sum())  # its first output unit


@pytest.mark.parametrize("family", FAMILIES)
def test_a_new_fit_spreads_the_degrees_of_narrow_layers(family):
    model = _fit(FAMILIES[family](n_dequant_samples=2, **FAST), _split())
    assert model.spread_degrees_ is True
    made = [m for m in model.module.transform.layers if isinstance(m, MADES)]
    assert len(made) == 2 and all(_reach_of_last(m) == D - 1 for m in made)
    assert _reach_of_last(MADEAffine(D, [8, 8])) == 8  # the lowest degrees: 8 variables
    assert _reach_of_last(MADESpline(D, [8, 8])) == 8
    unfitted = FAMILIES[family]().build_module(_split().spec).transform.layers
    assert all(_reach_of_last(m) == D - 1 for m in unfitted if isinstance(m, MADES))


def test_coupling_flows_record_no_spread():
    model = _fit(NSF(8, n_layers=2, n_dequant_samples=2, **FAST), _split())
    assert not hasattr(model, "spread_degrees_")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_run_saved_before_the_spread_reloads_with_its_own_layers(tmp_path, family):
    """A run of an earlier version holds no spread_degrees_: its layers took the lowest
    degrees, and it must reload so (the state dict is the same shape either way)."""
    split = _split()
    old = _fit(FAMILIES[family](base="normal", n_dequant_samples=2, **FAST), split)
    spread_scores = old.score_samples(split.x)
    del old.spread_degrees_
    module = old._build_module(split.spec, None).double()  # the earlier, lowest degrees
    module.load_state_dict(old.module.state_dict())
    old._module = module.eval()
    made = [m for m in module.transform.layers if isinstance(m, MADES)]
    assert made and all(_reach_of_last(m) == 8 for m in made)
    assert not np.array_equal(old.score_samples(split.x), spread_scores)  # it matters
    save_run(old, tmp_path)
    loaded = load_run(tmp_path)
    assert getattr(loaded, "spread_degrees_", None) is None
    np.testing.assert_array_equal(loaded.score_samples(split.x), old.score_samples(split.x))


def test_a_checkpoint_of_the_lowest_degree_layers_does_not_resume_into_spread_ones():
    """Resuming compares fingerprints: maf's differs from the one the earlier version
    wrote (the shared rule alone), so its checkpoints are refused, not loaded into layers
    of another connectivity."""
    from ptheta.models.neural import NeuralModel

    split, model = _split(), MAF(8)
    earlier = NeuralModel._fingerprint(model, split.x, split.spec)
    assert model._fingerprint(split.x, split.spec) != earlier
    assert model._fingerprint(split.x, split.spec) == MAF(8)._fingerprint(split.x, split.spec)
    coupling = NSF(8, base="normal")  # no MADE layers: its checkpoints resume as before
    assert coupling._fingerprint(split.x, split.spec) == NeuralModel._fingerprint(
        coupling, split.x, split.spec
    )
