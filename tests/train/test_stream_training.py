"""The Trainer on a DataLoader (issue 18): a Dataset trains as the same tensors do, resumes
exactly after a kill, and each process of a data-parallel run draws its own noise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

import ptheta
from ptheta.data.batch_stats import streamed_location_scale
from ptheta.data.spec import DataSpec, Split, location_scale
from ptheta.data.stream import ArraySource, NpySource, Source
from ptheta.errors import ParameterError
from ptheta.models.made import MADENetwork
from ptheta.train import checkpoint
from ptheta.train.distributed import World
from ptheta.train.seeding import rank_seed, restore_rng, rng_tensors
from ptheta.train.trainer import TrainConfig, Trainer
from tests.train.test_trainer import TinyAutoregressive, _data, _same_weights

CONFIG = {"epochs": 3, "batch_size": 16, "lr": 0.05, "device": "cpu", "patience": None}


def _fresh(seed: int = 0) -> TinyAutoregressive:
    torch.manual_seed(seed)
    return TinyAutoregressive(dropout=0.3).double()  # dropout: noise inside the loss


class _Rows(Dataset):
    """Examples whose ``__getitems__`` returns the batch (as ptheta's own datasets do)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.reads = x, []

    def __len__(self) -> int:
        return len(self.x)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor]:
        self.reads.append(len(indices))
        return (self.x[indices],)


@pytest.mark.parametrize(
    "as_dataset",
    [
        pytest.param(lambda x: TensorDataset(x), id="getitem-of-a-list"),
        pytest.param(_Rows, id="getitems"),
        pytest.param(lambda x: Subset(TensorDataset(x), range(len(x))), id="per-example-items"),
    ],
)
def test_a_dataset_trains_as_the_same_tensors(as_dataset):
    x, val = _data(), _data(40, seed=1)
    reference = _fresh()
    ref = Trainer(TrainConfig(**CONFIG)).fit(reference, (x,), (val,))
    module = _fresh()
    train = as_dataset(x)
    result = Trainer(TrainConfig(**CONFIG)).fit(module, train, as_dataset(val))
    assert _same_weights(module, reference)
    assert [h["val_nll"] for h in result.history] == [h["val_nll"] for h in ref.history]
    if isinstance(train, _Rows):  # read a batch at a time, never whole
        assert max(train.reads) == CONFIG["batch_size"] and len(train.reads) == 3 * 6


def test_loader_workers_read_the_same_batches():
    x = _data()
    reference = _fresh()
    Trainer(TrainConfig(**CONFIG)).fit(reference, (x,))
    module = _fresh()
    Trainer(TrainConfig(**CONFIG, loader_workers=1)).fit(module, _Rows(x))
    assert _same_weights(module, reference)


def test_a_dataset_must_return_batches_of_tensors():
    class Wrong(_Rows):
        def __getitems__(self, indices):
            return {"x": self.x[indices]}

    with pytest.raises(ParameterError, match="tuple of tensors"):
        Trainer(TrainConfig(**CONFIG)).fit(_fresh(), Wrong(_data()))
    with pytest.raises(ParameterError, match="loader_workers"):
        TrainConfig(loader_workers=-1)


@pytest.mark.parametrize("kill", ["interrupt", "crash"])
def test_dataset_training_resumes_exactly_after_a_kill(tmp_path, kill):
    x, val = _data(), _data(40, seed=1)
    config = TrainConfig(**CONFIG, checkpoint_every=4, ema_decay=0.9)
    reference = _fresh()
    Trainer(config).fit(reference, _Rows(x), _Rows(val))

    def stop(step: int, loss: float) -> None:
        if step == 10:  # mid-epoch 2 (6 steps per epoch)
            raise KeyboardInterrupt if kill == "interrupt" else RuntimeError("killed")

    with pytest.raises(KeyboardInterrupt if kill == "interrupt" else RuntimeError):
        Trainer(config).fit(_fresh(), _Rows(x), _Rows(val), run_dir=tmp_path, callback=stop)
    saved = json.loads((tmp_path / checkpoint.STATE).read_text())["progress"]["step"]
    assert saved == (10 if kill == "interrupt" else 8)  # a crash keeps the step-8 checkpoint
    resumed = _fresh(seed=99)  # every weight comes from the checkpoint
    Trainer(config).fit(resumed, _Rows(x), _Rows(val), run_dir=tmp_path, resume=True)
    assert _same_weights(resumed, reference)


# --------------------------------------------------------------------------- NeuralModel
class _SmallBatches(Source):
    """A source read in batches of a few rows (as a large file would be), counting reads."""

    def __init__(self, inner: Source, rows: int = 7) -> None:
        self.inner, self.rows, self.largest = inner, rows, 0
        self.n, self.event_shape, self.dtype = inner.n, inner.event_shape, inner.dtype
        self.y, self.spec = inner.y, inner.spec

    def _read(self, index: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, len(index))
        return self.inner.read(index)

    def batch_rows(self) -> int:
        return self.rows

    def identity(self) -> str:
        return self.inner.identity()


def test_standardisation_moments_from_batches_match_location_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(203, 2, 3)) * [[1.0, 10.0, 1e-3]] + [[5.0, -2.0, 0.0]]
    x[:, 1, 2] = 7.25  # a constant entry: std 1
    stamps = 1.7e9 + 600.0 * rng.normal(size=(203, 2, 3))  # a large offset
    for data in (x, stamps):
        shift, scale = streamed_location_scale(_SmallBatches(ArraySource(data)))
        mean, std = location_scale(data)
        np.testing.assert_allclose(shift, mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(scale, std, rtol=1e-10 if data is x else 1e-9)
    assert shift.shape == (2, 3) and streamed_location_scale(x)[1][1, 2] == 1.0


def _interrupt_at(call: int, monkeypatch) -> None:
    """Ctrl-C in the middle of the forward pass of MADE's training step ``call``."""
    original, calls = MADENetwork.loss, {"n": 0}

    def loss(self, x, y=None):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)  # the Trainer finishes the step, then stops
        return original(self, x, y)

    monkeypatch.setattr(MADENetwork, "loss", loss)


def test_a_streamed_fit_resumes_exactly_after_ctrl_c_and_equals_the_in_memory_fit(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2, size=(150, 1))
    x = np.concatenate([first, first ^ (rng.random((150, 5)) < 0.1)], axis=1)
    np.save(tmp_path / "x.npy", x)
    params = {"hidden": [8], "n_masks": 3, "order_agnostic": True, "epochs": 3,
              "batch_size": 16, "lr": 0.03, "dtype": "float64", "device": "cpu"}  # fmt: skip
    spec = DataSpec("binary", (6,))
    in_memory = ptheta.make("made", **params).fit(x)

    def source() -> Split:
        return Split(_SmallBatches(NpySource(tmp_path / "x.npy")), None, spec)

    assert ptheta.make("made", **params).capabilities().streams
    _interrupt_at(11, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        ptheta.make("made", **params).fit(source(), run_dir=tmp_path / "run")
    monkeypatch.undo()
    assert json.loads((tmp_path / "run" / checkpoint.STATE).read_text())["progress"]["step"] == 11
    data = source()
    resumed = ptheta.make("made", **params).fit(data, run_dir=tmp_path / "run", resume=True)
    assert data.x.largest <= params["batch_size"]  # read a batch at a time
    for key, value in in_memory.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[key], value), key

    def record(model):
        return [(h["epoch"], h["train_loss"], h["val_nll"]) for h in model.history_]

    assert record(resumed) == record(in_memory) and len(record(in_memory)) == 3


# --------------------------------------------------------------------------- per-rank noise
def test_each_process_seeds_its_own_stream_and_rank_0_keeps_the_run_s():
    assert rank_seed(5, 0) == 5  # one process trains as it always did
    seeds = {rank_seed(5, r) for r in range(8)} | {rank_seed(6, r) for r in range(8)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)
    # a checkpoint of rank 0 only: rank 1 continues on a stream of its own
    torch.manual_seed(1)
    saved = rng_tensors(World())
    draws = torch.rand(3)
    restore_rng(saved, World(0, 2), seed=1, step=4)
    assert torch.equal(torch.rand(3), draws)
    restore_rng(saved, World(1, 2), seed=1, step=4)
    assert not torch.equal(torch.rand(3), draws)


_TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from ptheta.train.distributed import init_from_env, shutdown
    from ptheta.train.trainer import TrainConfig, Trainer

    class Noisy(torch.nn.Module):
        '''Records the per-example noise (torch.randn) and the shared choice of each step.'''

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
            self.eps, self.shared = [], []

        def loss(self, x):
            eps = torch.randn(x.shape, dtype=x.dtype)  # per example: per process
            if self.training:
                self.eps.append(eps)
                self.shared.append(int(torch.randint(1000, (), generator=self.shared_generator)))
            return ((x + 0.1 * eps - self.w) ** 2).sum(1)

    out = sys.argv[1]
    world = init_from_env("cpu")
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 2)))
    config = dict(epochs=2, batch_size=16, lr=0.05, device="cpu", patience=None)
    reference = Noisy()
    Trainer(TrainConfig(**config)).fit(reference, (x,))
    # stopped by max_time after one step (a stop every process agrees on), then resumed
    Trainer(TrainConfig(**config, max_time=1e-9)).fit(Noisy(), (x,), run_dir=out + "/run")
    resumed = Noisy()
    Trainer(TrainConfig(**config)).fit(resumed, (x,), run_dir=out + "/run", resume=True)
    np.savez(
        f"{out}/rank{world.rank}.npz", eps=torch.cat(reference.eps).numpy(),
        shared=np.array(reference.shared), w=reference.w.detach().numpy(),
        resumed=resumed.w.detach().numpy(), resumed_eps=torch.cat(resumed.eps).numpy(),
    )
    shutdown()
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is tested on Linux")
def test_two_processes_draw_distinct_noise_and_share_their_choices(tmp_path):
    script = tmp_path / "noisy.py"
    script.write_text(_TWO_PROCESSES)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"]  # fmt: skip
    (tmp_path / "two").mkdir()
    two = subprocess.run(
        [*launcher, str(script), str(tmp_path / "two")], env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    ranks = [np.load(tmp_path / "two" / f"rank{r}.npz") for r in (0, 1)]
    # each process drew its own ε for its half of every batch: no draw repeated
    assert ranks[0]["eps"].shape == ranks[1]["eps"].shape == (64, 2)  # 2 epochs × 32 each
    assert not np.isin(ranks[0]["eps"], ranks[1]["eps"]).any()
    # the shared choices are the same on both, and the weights stayed in step
    np.testing.assert_array_equal(ranks[0]["shared"], ranks[1]["shared"])
    np.testing.assert_array_equal(ranks[0]["w"], ranks[1]["w"])
    # resumed after the stop: every process continues its own stream exactly
    for r in ranks:
        np.testing.assert_array_equal(r["resumed"], r["w"])
        np.testing.assert_array_equal(r["resumed_eps"], r["eps"][-len(r["resumed_eps"]) :])
    saved = checkpoint.load(tmp_path / "two" / "run")[0]
    assert {"rng/torch", "rng/torch/rank1", "rng/shared"} <= set(saved)
