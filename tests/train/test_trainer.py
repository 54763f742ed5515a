"""The Trainer: exact resume, early stopping, EMA, schedules, checkpoints; the neural wrapper."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ptheta.data.spec import DataSpec, Split
from ptheta.errors import DataError, ParameterError, RunDirError
from ptheta.models import REGISTRY
from ptheta.models.neural import NeuralModel
from ptheta.runs.store import load_run, save_run
from ptheta.train import checkpoint
from ptheta.train.trainer import TrainConfig, Trainer


class TinyAutoregressive(nn.Module):
    """p(x) = ∏_d Bernoulli(x_d | MLP(x_<d)) with dropout: randomness inside the loss."""

    def __init__(self, d: int = 4, hidden: int = 16, dropout: float = 0.2, n_classes: int = 0):
        super().__init__()
        self.d = d
        self.net = nn.Sequential(
            nn.Linear(d + n_classes, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, d)
        )
        self.register_buffer("mask", torch.tril(torch.ones(d, d), diagonal=-1))
        self.n_classes = n_classes

    def logits(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        xf = x.to(self.mask.dtype)  # (N, D)
        # each output d sees x_<d only: a strictly lower-triangular input mask per output
        hidden_in = xf[:, None, :] * self.mask  # (N, D, D)
        if self.n_classes:
            onehot = nn.functional.one_hot(y, self.n_classes).to(xf.dtype)
            hidden_in = torch.cat([hidden_in, onehot[:, None].expand(-1, self.d, -1)], dim=2)
        out = self.net(hidden_in)  # (N, D, D)
        return torch.diagonal(out, dim1=1, dim2=2)  # (N, D)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.logits(x, y)
        return -nn.functional.binary_cross_entropy_with_logits(
            logits, x.to(logits.dtype), reduction="none"
        ).sum(1)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -self.log_prob(x, y)

    def sample(self, n: int, y=None, generator=None) -> torch.Tensor:
        x = torch.zeros(n, self.d, dtype=torch.long, device=self.mask.device)
        for d in range(self.d):
            p = torch.sigmoid(self.logits(x, y)[:, d])
            x[:, d] = (
                torch.rand(n, generator=generator, device=p.device, dtype=p.dtype) < p
            ).long()
        return x


class Tiny(NeuralModel):
    """A tiny neural family for testing the wrapper."""

    name = "tiny"
    family = "test"
    likelihood = "exact"
    data_kinds = ("binary",)

    def __init__(self, hidden: int = 16, *, class_conditional: bool = False, **training):
        super().__init__(**training)
        self.hidden = hidden
        self.class_conditional = class_conditional

    def _build_module(self, spec, n_classes):
        return TinyAutoregressive(spec.n_dims, self.hidden, 0.0, n_classes or 0)


def _data(n: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    first = torch.rand(n, 1, generator=g) < 0.5
    x = torch.cat([first, first ^ (torch.rand(n, 3, generator=g) < 0.1)], dim=1)
    return x.long()


def _fresh(seed: int = 0) -> TinyAutoregressive:
    torch.manual_seed(seed)
    return TinyAutoregressive().double()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CONFIG = {"epochs": 4, "batch_size": 16, "lr": 0.05, "device": "cpu", "patience": None}


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path, ema_decay):
    x, val = _data(), _data(32, seed=1)
    config = TrainConfig(**CONFIG, ema_decay=ema_decay, warmup_steps=3)
    reference = _fresh()
    ref = Trainer(config).fit(reference, (x,), (val,))

    def interrupt(step: int, loss: float) -> None:
        if step == 9:  # in the middle of the second epoch (6 steps per epoch)
            raise KeyboardInterrupt

    interrupted = _fresh()
    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(interrupted, (x,), (val,), run_dir=tmp_path, callback=interrupt)
    assert json.loads((tmp_path / checkpoint.STATE).read_text())["progress"]["step"] == 9
    resumed = _fresh(seed=123)  # different initial weights: all come from the checkpoint
    result = Trainer(config).fit(resumed, (x,), (val,), run_dir=tmp_path, resume=True)
    assert _same_weights(resumed, reference)
    assert result.steps == ref.steps == 24
    assert [h["val_nll"] for h in result.history] == [h["val_nll"] for h in ref.history]


class _SignalInsideStep(TinyAutoregressive):
    """Sends itself SIGINT in the middle of the forward pass of one training step."""

    def __init__(self, at_call: int):
        super().__init__()
        self.calls, self.at_call = 0, at_call

    def loss(self, x, y=None):
        self.calls += 1
        if self.training and self.calls == self.at_call:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag
        return super().loss(x, y)


def test_ctrl_c_inside_a_step_still_resumes_exactly(tmp_path):
    x, val = _data(), _data(32, seed=1)
    config = TrainConfig(**CONFIG)
    reference = _fresh()
    Trainer(config).fit(reference, (x,), (val,))
    torch.manual_seed(0)
    victim = _SignalInsideStep(at_call=10).double()
    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(victim, (x,), (val,), run_dir=tmp_path)
    # the step in flight was finished, then training stopped and saved
    assert json.loads((tmp_path / checkpoint.STATE).read_text())["progress"]["step"] == 10
    resumed = _fresh(seed=7)
    Trainer(config).fit(resumed, (x,), (val,), run_dir=tmp_path, resume=True)
    assert _same_weights(resumed, reference)
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4], "no epoch recorded twice"


def test_a_max_time_stop_can_continue_with_a_larger_budget(tmp_path):
    x = _data()
    first = Trainer(TrainConfig(**{**CONFIG, "epochs": 50}, max_time=1e-9)).fit(
        _fresh(), (x,), run_dir=tmp_path
    )
    assert first.stopped == "max_time" and first.steps == 1
    more = Trainer(TrainConfig(**{**CONFIG, "epochs": 50}, max_time=3600.0)).fit(
        _fresh(), (x,), run_dir=tmp_path, resume=True
    )
    assert more.stopped == "completed" and more.steps == 50 * 6


def test_resume_from_a_periodic_checkpoint_after_a_crash(tmp_path):
    x = _data()
    config = TrainConfig(**CONFIG, checkpoint_every=4)
    reference = _fresh()
    Trainer(config).fit(reference, (x,))

    def crash(step: int, loss: float) -> None:
        if step == 10:
            raise RuntimeError("power cut")  # no chance to save: the step-8 checkpoint remains

    with pytest.raises(RuntimeError):
        Trainer(config).fit(_fresh(), (x,), run_dir=tmp_path, callback=crash)
    assert json.loads((tmp_path / checkpoint.STATE).read_text())["progress"]["step"] == 8
    resumed = _fresh(seed=5)
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path, resume=True)
    assert _same_weights(resumed, reference)


def test_early_stopping_restores_the_best_weights():
    # 8 training examples and a large learning rate: validation NLL gets worse after a while
    x, val = _data(8, seed=2), _data(200, seed=3)
    module = _fresh()
    config = TrainConfig(epochs=200, batch_size=8, lr=0.3, patience=5, device="cpu",
                         schedule="constant")  # fmt: skip
    result = Trainer(config).fit(module, (x,), (val,))
    val_nll = [h["val_nll"] for h in result.history]
    assert result.stopped == "early_stopping"
    assert len(val_nll) == result.best_epoch + 5 < 200
    assert min(val_nll) == val_nll[result.best_epoch - 1]
    assert -module.log_prob(val).mean().item() == pytest.approx(min(val_nll), rel=1e-12)
    assert val_nll[-1] > min(val_nll)


def test_ema_weights_follow_the_stated_average():
    x = _data(32)
    decay = 0.8
    module = _fresh()
    snapshots = []
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05, device="cpu", ema_decay=decay)

    def record(step: int, loss: float) -> None:
        snapshots.append({k: v.clone() for k, v in module.state_dict().items()})

    Trainer(config).fit(module, (x,), callback=record)
    expected = dict(snapshots[0])  # the first update copies the weights
    for snap in snapshots[1:]:
        for k, v in snap.items():
            if v.is_floating_point() and k != "mask":
                expected[k] = decay * expected[k] + (1 - decay) * v
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-10, atol=1e-12)


def test_schedules_warm_up_then_decay():
    module = _fresh()
    lrs = []
    opt_holder = {}
    config = TrainConfig(epochs=2, batch_size=8, lr=0.1, warmup_steps=4, device="cpu")
    orig = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        opt_holder["opt"] = self
        lrs.append(self.param_groups[0]["lr"])
        return orig(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        Trainer(config).fit(module, (_data(32),))
    finally:
        torch.optim.AdamW.step = orig
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    total = 8  # steps
    for step in range(4, total):
        expected = 0.05 * (1 + math.cos(math.pi * (step - 4) / (total - 4)))
        assert lrs[step] == pytest.approx(expected)


def test_max_time_stops_and_keeps_the_best():
    module = _fresh()
    result = Trainer(TrainConfig(epochs=10_000, batch_size=8, max_time=0.3, device="cpu")).fit(
        module, (_data(32),), (_data(16, seed=1),)
    )
    assert result.stopped == "max_time" and len(result.history) < 10_000


class _Clock:
    """A fake ``time.perf_counter`` that moves only when the module says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _SlowValidation(TinyAutoregressive):
    """A training step costs ``step`` fake seconds, scoring one example ``row`` seconds;
    scoring draws random numbers (as an IWAE's validation does)."""

    def __init__(self, clock: _Clock, step: float, row: float, dropout: float = 0.0):
        super().__init__(dropout=dropout)
        self.clock, self.step, self.row = clock, step, row

    def loss(self, x, y=None):
        self.clock.now += self.step
        return super().loss(x, y)

    def log_prob(self, x, y=None):
        if not self.training:
            self.clock.now += self.row * len(x)
            torch.rand(3)  # validation consumes the random stream
        return super().log_prob(x, y)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_max_time_keeps_room_for_the_validation_after_the_stop(monkeypatch, ema_decay):
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    torch.manual_seed(0)
    module = _SlowValidation(clock, step=1.0, row=0.5).double()
    val = _data(40, seed=1)  # a validation costs 20 s, a step 1 s
    config = TrainConfig(epochs=1000, batch_size=16, max_time=100.0, device="cpu",
                         patience=None, ema_decay=ema_decay)  # fmt: skip
    result = Trainer(config).fit(module, (_data(),), (val,))
    assert result.stopped == "max_time"
    # training, the one-chunk probe (20 s: the 40 rows fit in one chunk) and the
    # validations at the ends of epochs and after the stop all fit in the budget
    assert clock.now <= 100.0 + 1.0, clock.now
    assert clock.now >= 100.0 - 20.0 - 1.0, "the budget was used"
    assert "val_nll" in result.history[-1], "the weights it stopped with were validated"


def _spy_validations(monkeypatch, trainer_module) -> list[torch.Tensor | None]:
    """Records, for every validation pass, the subset's rows (None: the whole split);
    the 32-row probe is left out."""
    seen: list[torch.Tensor | None] = []
    real = trainer_module.validation_nll

    def spy(module, val, batch_size):
        if not isinstance(val, trainer_module._Head):
            seen.append(val.index.clone() if hasattr(val, "index") else None)
        return real(module, val, batch_size)

    monkeypatch.setattr(trainer_module, "validation_nll", spy)
    return seen


def test_a_validation_too_slow_for_the_budget_scores_a_fixed_subset(monkeypatch):
    """Validating all 400 rows would cost 200 fake seconds: under a 300 s budget the run
    validates the seeded 150 rows that fit a quarter of it, the same rows every epoch, and
    stays within the budget."""
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    seen = _spy_validations(monkeypatch, trainer_module)
    val = _data(400, seed=1)
    config = TrainConfig(epochs=1000, batch_size=16, max_time=300.0, device="cpu",
                         patience=None)  # fmt: skip
    torch.manual_seed(0)
    module = _SlowValidation(clock, step=1.0, row=0.5).double()
    result = Trainer(config).fit(module, (_data(32),), (val,))  # 2 steps an epoch
    assert result.stopped == "max_time"
    assert clock.now <= 300.0 + 1.0, clock.now
    assert len(result.history) >= 3 and all(h["val_rows"] == 150 for h in result.history)
    index = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:150].sort().values
    assert len(seen) == len(result.history) and all(torch.equal(i, index) for i in seen)
    # the best epoch's number is the mean over those rows, at the restored best weights
    monkeypatch.setattr(trainer_module, "time", _Clock())
    with torch.no_grad():
        module.eval()
        expected = -float(module.log_prob(val[index]).double().mean())
    best = min(h["val_nll"] for h in result.history)
    assert best == pytest.approx(expected, rel=1e-12)

    # a budget the whole validation fits leaves it whole (no val_rows in the record)
    clock.now = 0.0
    monkeypatch.setattr(trainer_module, "time", clock)
    whole = Trainer(TrainConfig(epochs=1, batch_size=16, max_time=1000.0, device="cpu"))
    assert "val_rows" not in whole.fit(module, (_data(32),), (val,)).history[-1]


def test_a_budget_too_small_for_any_subset_validates_the_floor_and_ends_on_time(monkeypatch):
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    torch.manual_seed(0)
    module = _SlowValidation(clock, step=1.0, row=0.5).double()
    config = TrainConfig(epochs=1000, batch_size=16, max_time=40.0, device="cpu")
    result = Trainer(config).fit(module, (_data(32),), (_data(400, seed=1),))
    assert clock.now <= 40.0 + 1.0, clock.now  # 200 s past the budget before
    assert result.history[-1]["val_rows"] == trainer_module.RESERVE_ROWS == 32


def test_the_validation_subset_survives_a_resume(monkeypatch, tmp_path):
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    val = _data(400, seed=1)

    def run(max_time, resume):
        config = TrainConfig(epochs=1000, batch_size=16, max_time=max_time, device="cpu",
                             patience=None)  # fmt: skip
        torch.manual_seed(0)
        module = _SlowValidation(clock, step=1.0, row=0.5).double()
        return Trainer(config).fit(module, (_data(32),), (val,), run_dir=tmp_path,
                                   resume=resume)  # fmt: skip

    first = run(300.0, False)
    clock.now = 0.0
    seen = _spy_validations(monkeypatch, trainer_module)
    # a larger budget continues the run; the whole split (200 s) would fit a quarter of
    # it, yet the run keeps its rows: every epoch's number is over the same ones
    more = run(1000.0, True)
    index = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:150].sort().values
    assert len(more.history) > len(first.history)
    assert all(h["val_rows"] == 150 for h in more.history)
    assert seen and all(i is not None and torch.equal(i, index) for i in seen)


class _SlowFirstValidation(_SlowValidation):
    """The first validation call pays a one-off cost (as compilation would)."""

    def __init__(self, clock: _Clock, step: float, row: float, first: float):
        super().__init__(clock, step, row)
        self.first = first

    def log_prob(self, x, y=None):
        if not self.training and self.first:
            self.clock.now += self.first
            self.first = 0.0
        return super().log_prob(x, y)


def test_a_one_off_cost_in_the_probe_does_not_keep_a_subset(monkeypatch):
    """The probe of 32 rows pays 20 s once: scaled to 400 rows it predicts 250 s, and the
    run validates a subset at first; its first measured validation shows the whole split
    (4 s) fits, and from then on it validates all of it."""
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    seen = _spy_validations(monkeypatch, trainer_module)
    torch.manual_seed(0)
    module = _SlowFirstValidation(clock, step=1.0, row=0.01, first=20.0).double()
    config = TrainConfig(epochs=1000, batch_size=16, max_time=100.0, device="cpu",
                         patience=None)  # fmt: skip
    result = Trainer(config).fit(module, (_data(32),), (_data(400, seed=1),))
    assert "val_rows" in result.history[0] and seen[0] is not None
    assert all("val_rows" not in h for h in result.history[1:]) and len(result.history) > 3
    assert all(i is None for i in seen[1:])
    assert result.best_epoch > 1  # chosen among the epochs validated on the whole split


def test_the_time_schedule_is_ramped_by_the_warm_up_and_the_step_schedule_is_unchanged():
    from ptheta.train.trainer import _schedule

    spent = [0.0]
    timed = _schedule(TrainConfig(epochs=None, max_time=10.0, warmup_steps=4), None,
                      lambda: spent[0])  # fmt: skip
    for step, fraction in [(0, 0.0), (1, 0.1), (3, 0.2), (4, 0.25), (9, 0.6), (20, 1.5)]:
        spent[0] = fraction
        ramp = min(1.0, (step + 1) / 4)
        cosine = 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
        assert timed(step) == pytest.approx(ramp * cosine, rel=1e-12), step
    stepped = _schedule(TrainConfig(epochs=2, warmup_steps=4), 8, lambda: 0.9)
    assert [stepped(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]  # the clock is unused
    assert stepped(4) == 1.0 and stepped(8) == 0.0


def test_without_an_epoch_limit_the_cosine_schedule_follows_the_budget(monkeypatch):
    import ptheta.train.trainer as trainer_module

    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    torch.manual_seed(0)
    module = _SlowValidation(clock, step=1.0, row=0.0).double()
    config = TrainConfig(epochs=None, batch_size=16, lr=0.05, max_time=50.0, device="cpu")
    result = Trainer(config).fit(module, (_data(64),))  # 4 steps of 1 s per epoch
    assert result.stopped == "max_time"
    assert result.history[-1]["seconds"] >= 49.0, "the budget was used"
    for record in result.history:  # the next step's lr, after `seconds` of the budget
        assert record["seconds"] == record["step"] * 1.0
        spent = record["seconds"] / 50.0
        expected = 0.05 * 0.5 * (1 + math.cos(math.pi * spent))
        assert record["lr"] == pytest.approx(expected, rel=1e-12), record
    with pytest.raises(ParameterError, match="set max_time"):
        TrainConfig(epochs=None)


def test_the_budget_probe_leaves_the_random_state_alone():
    # dropout draws from the random stream in training, validation draws from it too
    torch.manual_seed(0)
    clock = _Clock()
    plain = _SlowValidation(clock, step=0.0, row=0.0, dropout=0.3).double()
    torch.manual_seed(0)
    budgeted = _SlowValidation(clock, step=0.0, row=0.0, dropout=0.3).double()
    x, val = _data(), _data(32, seed=1)
    torch.manual_seed(5)
    Trainer(TrainConfig(**CONFIG)).fit(plain, (x,), (val,))
    torch.manual_seed(5)
    Trainer(TrainConfig(**CONFIG, max_time=3600.0)).fit(budgeted, (x,), (val,))
    assert _same_weights(plain, budgeted)


def test_bad_configuration_and_checkpoints_give_clear_errors(tmp_path):
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"schedule": "linear"}, {"ema_decay": 1.5},
                {"patience": 0}):  # fmt: skip
        with pytest.raises(ParameterError):
            TrainConfig(**bad)
    with pytest.raises(RunDirError, match="no training checkpoint"):
        Trainer(TrainConfig(**CONFIG)).fit(_fresh(), (_data(),), run_dir=tmp_path, resume=True)
    Trainer(TrainConfig(**CONFIG)).fit(_fresh(), (_data(),), run_dir=tmp_path, fingerprint="a")
    with pytest.raises(RunDirError, match="another model or data set"):
        Trainer(TrainConfig(**CONFIG)).fit(
            _fresh(), (_data(),), run_dir=tmp_path, resume=True, fingerprint="b"
        )
    checkpoint.tensor_files(tmp_path)[0].write_bytes(b"garbage")
    with pytest.raises(RunDirError, match="corrupted"):
        Trainer(TrainConfig(**CONFIG)).fit(
            _fresh(), (_data(),), run_dir=tmp_path, resume=True, fingerprint="a"
        )


def test_processes_share_each_global_batch_without_padding():
    from ptheta.train.trainer import _global_batches

    single = _global_batches(81, 16, 1, seed=3, epoch=2)
    double = _global_batches(81, 16, 2, seed=3, epoch=2)
    assert [len(b) for b in single] == [16] * 5 + [1]
    # two processes: the same permutation, a last batch of 1 cannot be shared and is dropped
    assert len(double) == 5
    assert all(torch.equal(a, b) for a, b in zip(single[:5], double, strict=True))
    for batch in double:  # each process takes every second index: together, the batch
        shares = [batch[rank::2] for rank in range(2)]
        assert sorted(torch.cat(shares).tolist()) == sorted(batch.tolist())
    # the scaled per-process losses average to the global batch's mean loss
    losses = torch.arange(16.0)
    scaled = [losses[rank::2].sum() * 2 / 16 for rank in range(2)]
    assert float(sum(scaled) / 2) == pytest.approx(float(losses.mean()))


# --------------------------------------------------------------------------- the wrapper
def _split(n: int = 120, seed: int = 0) -> Split:
    x = _data(n, seed).numpy()
    y = x[:, 0].copy()
    return Split(x, y, DataSpec("binary", (4,)))


def test_neural_model_fits_scores_samples_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "tiny", Tiny)  # load_run finds families by name
    model = Tiny(epochs=30, lr=0.05, batch_size=32, dtype="float64", device="cpu")
    model.fit(_split())
    assert model.get_params()["epochs"] == 30 and "hidden" in model.get_params()
    configs = np.array(np.meshgrid(*[[0, 1]] * 4, indexing="ij")).reshape(4, -1).T
    assert np.exp(model.score_samples(configs)).sum() == pytest.approx(1.0, abs=1e-12)
    assert model.history_ and model.best_epoch_ >= 1 and model.n_steps_ > 0
    save_run(model, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.score_samples(configs), model.score_samples(configs))
    np.testing.assert_array_equal(loaded.sample(5, random_state=1), model.sample(5, random_state=1))
    # learned: x_1..x_3 copy x_0 with probability 0.9, so the true entropy is
    # log 2 + 3 H(0.1) ≈ 1.67 nats (an independent model sits at 4 log 2 ≈ 2.77)
    entropy = math.log(2) + 3 * -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))
    assert -model.score(_split(400, seed=4).x) < entropy + 0.3


def test_a_budget_that_ends_inside_the_first_epoch_says_so():
    short = Tiny(epochs=3, batch_size=8, max_time=1e-9, device="cpu")
    with pytest.warns(UserWarning, match=r"within its first epoch: it trained on 8 of 10[0-9] "):
        short.fit(_split())
    assert short.stopped_ == "max_time" and short.n_steps_ == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough time: no warning
        Tiny(epochs=2, batch_size=8, max_time=3600.0, device="cpu").fit(_split())


def test_neural_model_class_conditional_and_fit_params(tmp_path):
    model = Tiny(class_conditional=True, epochs=20, lr=0.05, dtype="float64", device="cpu")
    model.fit(_split(), validation_data=_split(40, seed=9), run_dir=tmp_path)
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / checkpoint.STATE).exists()
    proba = model.predict_proba(_split(30, seed=5).x)
    assert proba.shape == (30, 2) and np.allclose(proba.sum(1), 1)
    # the label is the first pixel: Bayes' rule recovers it
    assert (model.predict(_split(30, seed=5).x) == _split(30, seed=5).y).mean() > 0.9
    assert model.sample(200, y=1, random_state=0)[:, 0].mean() > 0.75
    assert model.sample(200, y=0, random_state=0)[:, 0].mean() < 0.25
    with pytest.raises(ParameterError, match="unexpected argument"):
        Tiny().fit(_split(), validaton_data=None)
    with pytest.raises(DataError, match="needs fit"):
        Tiny(class_conditional=True, device="cpu").fit(_split().x)


# --------------------------------------------------------------------------- phases
class TwoPlayer(nn.Module):
    """A min-max toy: ``a`` minimises (a·x − b)², ``b`` maximises it, in turns (a: 2 steps,
    b: 1 step), like a GAN's discriminator and generator."""

    def __init__(self, missing: bool = False):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.1], dtype=torch.float64))
        self.missing = missing

    def optim_groups(self):
        groups = {"a": {"params": [self.a]}, "b": {"params": [self.b], "betas": (0.5, 0.9)}}
        if self.missing:
            del groups["b"]
        return groups

    def phase(self, step: int) -> str:
        return "b" if step % 3 == 2 else "a"

    def loss(self, x, phase=None):
        value = (self.a * x[:, 0] - self.b) ** 2
        return -value if phase == "b" else value


def test_phased_modules_update_only_the_phase_s_parameters(tmp_path):
    x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
    module = TwoPlayer()
    seen = []

    def record(step, loss):
        seen.append((step, module.a.item(), module.b.item()))

    config = TrainConfig(epochs=3, batch_size=16, lr=0.1, device="cpu", patience=None)
    Trainer(config).fit(module, (x,), callback=record)
    values = [(0, 0.5, 0.1), *seen]
    for (_, a0, b0), (step, a1, b1) in itertools.pairwise(values):
        if step % 3 == 0:  # step index s.step - 1 == 2 (mod 3) was b's turn
            assert a1 == a0 and b1 != b0
        else:
            assert a1 != a0 and b1 == b0
    # both groups moved, b with its own betas
    assert module.a.item() != 0.5 and module.b.item() != 0.1

    # exact resume of a phased run
    reference = TwoPlayer()
    config = TrainConfig(epochs=6, batch_size=4, lr=0.1, device="cpu", patience=None)
    Trainer(config).fit(reference, (x,))

    def stop(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config).fit(TwoPlayer(), (x,), run_dir=tmp_path, callback=stop)
    resumed = TwoPlayer()
    Trainer(config).fit(resumed, (x,), run_dir=tmp_path, resume=True)
    assert _same_weights(resumed, reference)


def test_phased_modules_must_list_every_parameter():
    x = torch.zeros(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="every parameter"):
        Trainer(TrainConfig(epochs=1, device="cpu")).fit(TwoPlayer(missing=True), (x,))


def test_validate_with_loss_skips_log_prob():
    class Costly(TinyAutoregressive):
        validate_with_loss = True

        def log_prob(self, x, y=None):
            raise AssertionError("log_prob must not be called for validation")

        def loss(self, x, y=None):
            return -super().log_prob(x, y)

    x, val = _data(), _data(32, seed=1)
    torch.manual_seed(0)
    result = Trainer(TrainConfig(**CONFIG)).fit(Costly().double(), (x,), (val,))
    assert all(math.isfinite(h["val_loss"]) and "val_nll" not in h for h in result.history)


def test_a_validation_loss_that_does_not_measure_fit_is_only_watched():
    class Watched(TwoPlayer):
        validation_measures_fit = False

    x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
    config = TrainConfig(epochs=6, batch_size=4, lr=0.1, device="cpu", patience=1)
    reference = Watched()
    Trainer(config).fit(reference, (x,))  # no validation: the last weights
    watched = Watched()
    result = Trainer(config).fit(watched, (x,), (x[:5],))
    assert len(result.history) == 6 and result.best_epoch is None  # never stopped early
    assert all("val_loss" in h for h in result.history)
    assert _same_weights(watched, reference)  # nothing restored


def test_the_validation_reserve_times_32_rows_and_scales_to_the_whole_set(monkeypatch):
    """A fake clock: validating costs 0.01 s a row. The estimate for 400 rows is 4 s, from
    timing 32 of them (timing 256 cost a slow model most of a short budget)."""
    import types

    import ptheta.train.trainer as trainer
    from ptheta.train.loading import examples

    clock, timed = [0.0], []

    def fake_validation(module, val, batch_size):
        timed.append(len(val))
        clock[0] += 0.01 * len(val)
        return 0.0

    monkeypatch.setattr(trainer, "validation_nll", fake_validation)
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    val = examples([torch.zeros(400, 3)], torch.device("cpu"), 0)
    seconds = trainer._validation_reserve(nn.Linear(3, 1), val, 128, torch.device("cpu"))
    assert timed == [trainer.RESERVE_ROWS] == [32]
    assert seconds == pytest.approx(4.0)
