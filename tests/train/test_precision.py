"""Mixed precision and compilation (issue 18): autocast to bfloat16 / float16 on float32
weights, scores and validation in float32, a gradient scaler that resumes exactly, families
that refuse low precision, and ``torch.compile``."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch

import ptheta
from ptheta.errors import ParameterError
from ptheta.models import REGISTRY
from ptheta.models.made import MADENetwork
from ptheta.train import checkpoint, trainer
from ptheta.train.trainer import TrainConfig, Trainer
from tests.train.test_trainer import TinyAutoregressive, _data, _same_weights


def _binary(n: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 2, size=(n, 1))
    return np.concatenate([first, first ^ (rng.random((n, 5)) < 0.1)], axis=1)


def test_bfloat16_trains_under_autocast_and_scores_in_float32(monkeypatch):
    seen = []
    original = MADENetwork.loss

    def loss(self, x, y=None):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, x, y)

    monkeypatch.setattr(MADENetwork, "loss", loss)
    x = _binary()
    params = {"hidden": [16], "n_masks": 2, "order_agnostic": True, "epochs": 8, "lr": 0.03,
              "batch_size": 32, "device": "cpu"}  # fmt: skip
    model = ptheta.make("made", **params, dtype="bfloat16").fit(x)
    assert seen and all(on and dtype == torch.bfloat16 for on, dtype in seen)
    assert {p.dtype for p in model.module.parameters()} == {torch.float32}
    scores = model.score_samples(x)
    assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
    # the scores are the float32 evaluation of these weights, not a bfloat16 one
    xt = torch.as_tensor(x)
    with torch.no_grad():
        full = model.module.log_prob(xt).double().numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.module.log_prob(xt).double().numpy()
    np.testing.assert_allclose(scores, full, rtol=1e-6)
    assert np.abs(low - full).max() > 100 * np.abs(scores - full).max()
    # validation ran in float32 too: the best epoch's val_nll is the held-out rows' mean
    held_out = x[np.random.default_rng(0).permutation(len(x))[:16]]  # validation_fraction 0.1
    best = model.history_[model.best_epoch_ - 1]["val_nll"]
    assert best == pytest.approx(-model.score_samples(held_out).mean(), rel=1e-6)
    # and it learned: the copies of x_0 are predictable (an independent model is ~4 nats)
    assert -scores.mean() < 3.0
    assert model.train_config().autocast == "bfloat16"


def test_a_continuous_flow_trains_in_bfloat16_with_float32_densities():
    x = np.random.default_rng(1).normal(size=(200, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    quick = {**REGISTRY["realnvp"].quick_params, "device": "cpu"}
    low = ptheta.make("realnvp", **{**quick, "dtype": "bfloat16"}).fit(x)
    assert {p.dtype for p in low.module.parameters()} == {torch.float32}
    scores = low.score_samples(x)
    xt = low._tensors(x, None, low.fitted_spec)[0]  # model units, the weights' float32
    assert xt.dtype == torch.float32
    with torch.no_grad():
        full = low.module.log_prob(xt).double().numpy() + low._log_jacobian()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            coarse = low.module.log_prob(xt).double().numpy() + low._log_jacobian()
    np.testing.assert_allclose(scores, full, rtol=1e-6)
    assert np.abs(coarse - full).max() > 100 * np.abs(scores - full).max()


def test_rbm_refuses_low_precision_before_reading_the_data():
    quick = REGISTRY["rbm"].quick_params
    for dtype in ("bfloat16", "float16"):
        model = ptheta.make("rbm", **{**quick, "dtype": dtype})
        with pytest.raises(ParameterError, match=r"rbm: dtype=.*refused.*log Z"):
            model.fit(_binary())
        assert not hasattr(model, "base_bias_")
    ptheta.make("rbm", **{**quick, "dtype": "float32"}).fit(_binary())  # full precision: fine


def test_autocast_needs_float32_weights():
    config = TrainConfig(epochs=1, batch_size=16, device="cpu", autocast="bfloat16")
    with pytest.raises(ParameterError, match="float32 weights"):
        Trainer(config).fit(TinyAutoregressive().double(), (_data(),))
    with pytest.raises(ParameterError, match="autocast"):
        TrainConfig(autocast="float8")


class _Squares(torch.nn.Module):
    """loss = |W x + b|²: an outlier row makes float16 gradients overflow."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 2)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return (self.lin(x) ** 2).sum(1)


def test_losses_under_autocast_are_summed_in_float32():
    class Recorded(_Squares):
        def loss(self, x):
            out = super().loss(x)
            self.last = out.detach()
            return out

    module, reported = Recorded(), []

    def record(step: int, loss: float) -> None:
        reported.append((module.last.dtype, loss, float(module.last.double().sum()) / 16))

    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1)) * 3
    config = TrainConfig(epochs=2, batch_size=16, device="cpu", autocast="bfloat16")
    Trainer(config).fit(module, (x,), callback=record)
    assert all(dtype == torch.bfloat16 for dtype, _, _ in reported)  # computed in bfloat16
    for _, value, exact in reported:  # ... and summed in float32, not rounded to 8 bits
        assert value == pytest.approx(exact, rel=1e-6)


def test_float16_scales_the_loss_skips_overflowing_steps_and_resumes_exactly(tmp_path):
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    x[5] = 300.0  # its batch overflows float16 gradients once an epoch
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, device="cpu", autocast="float16",
                         patience=None)  # fmt: skip
    reference, weights = _Squares(), []

    def record(step: int, loss: float) -> None:
        weights.append(reference.lin.weight.detach().clone())

    Trainer(config).fit(reference, (x,), run_dir=tmp_path / "ref", callback=record)
    skipped = [torch.equal(a, b) for a, b in itertools.pairwise(weights)]
    assert any(skipped) and not all(skipped)  # infinite gradients: those steps are skipped
    final = json.loads((tmp_path / "ref" / checkpoint.STATE).read_text())["scaler"]
    assert final["scale"] < 2.0**16  # lowered from its start at each skipped step

    def stop(step: int, loss: float) -> None:
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(_Squares(), (x,), run_dir=tmp_path / "run", callback=stop)
    resumed = _Squares()
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path / "run", resume=True)
    assert _same_weights(resumed, reference)
    assert json.loads((tmp_path / "run" / checkpoint.STATE).read_text())["scaler"] == final


# --------------------------------------------------------------------------- compile
BACKENDS = [
    "aot_eager",  # traces and compiles the graph, runs it with eager kernels: seconds
    pytest.param(
        "inductor",  # generates C++ kernels: about a minute on two cores
        marks=pytest.mark.skipif(
            not os.environ.get("PTHETA_TEST_COMPILE"), reason="set PTHETA_TEST_COMPILE=1"
        ),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_training_follows_the_eager_trajectory(tmp_path, monkeypatch, backend):
    monkeypatch.setattr(trainer, "COMPILE_OPTIONS", {"backend": backend})
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    x, val = _data(), _data(32, seed=1)
    config = {"epochs": 2, "batch_size": 16, "lr": 0.05, "device": "cpu", "patience": None}
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        module, losses = TinyAutoregressive(dropout=0.0), []
        Trainer(TrainConfig(**config, compile=compiled)).fit(
            module, (x,), (val,), run_dir=tmp_path / str(compiled),
            callback=lambda step, loss, losses=losses: losses.append(loss),
        )  # fmt: skip
        runs[compiled] = (module, losses)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # compiled, truly
    np.testing.assert_allclose(runs[True][1], runs[False][1], rtol=1e-4)
    assert len(runs[True][1]) == 12
    for key, value in runs[False][0].state_dict().items():
        torch.testing.assert_close(runs[True][0].state_dict()[key], value, rtol=1e-4, atol=1e-5)
    # the checkpoint holds the module's own names (no "_orig_mod." of the compiled wrapper)
    saved = set(checkpoint.load(tmp_path / "True")[0])
    assert saved == set(checkpoint.load(tmp_path / "False")[0])
    assert not any("_orig_mod" in key for key in saved)


def test_neural_families_pass_compile_and_loader_workers_to_the_trainer():
    model = ptheta.make("made", compile=True, loader_workers=2, dtype="float16")
    config = model.train_config()
    assert config.compile and config.loader_workers == 2 and config.autocast == "float16"
    assert ptheta.make("made").train_config().autocast is None
