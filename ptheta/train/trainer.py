"""The one training loop every neural family uses (AdamW, schedule, EMA, early stopping, DDP).

The Trainer takes a prepared ``nn.Module`` and tensors; it never builds data sets or
models. A module to train exposes ``loss(x, y=None)`` → per-example loss, shape (N,), and
optionally ``log_prob(x, y=None)`` → (N,), used for the validation NLL (otherwise the
validation loss is used; a module whose ``log_prob`` is too costly to run every epoch sets
``validate_with_loss = True``; one whose loss does not measure fit at all — a GAN's, an
EBM's — sets ``validation_measures_fit = False``: its validation loss is then recorded but
never selects weights or stops training). It depends on torch alone.

Families with several sets of parameters updated in turn (a GAN's generator and
discriminator) define, besides ``loss(*batch, phase=name)``:

- ``optim_groups() -> dict[str, dict]``: each phase's parameters and optional AdamW
  settings, e.g. ``{"discriminator": {"params": [...], "betas": (0.5, 0.999)}, ...}``;
  every parameter belongs to exactly one group;
- ``phase(step: int) -> str``: which group the optimisation step ``step`` updates.

Each step then computes the named phase's loss on its batch and updates only that
phase's parameters; the learning-rate schedule follows the global step for all groups.
This is the Trainer's own loop (checkpoints, resume, EMA, DDP, progress) — not a second one.
The expectations are written as protocols in :mod:`ptheta.train.protocol`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ptheta.errors import ParameterError, RunDirError
from ptheta.io import append_jsonl, atomic_write_text, dumps
from ptheta.params import (
    MAX_SEED,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_str,
)
from ptheta.progress import progress_bar
from ptheta.train import checkpoint
from ptheta.train.distributed import World, current_world
from ptheta.train.protocol import Phased, scores_log_prob, validation_measures_fit

METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of training (separate from each model's own).

    Arguments:
        epochs: passes over the training data.
        batch_size: examples per optimisation step, summed over all processes (the global
            batch; each of W processes takes every W-th example of it, and the losses are
            scaled so that training equals one process with the same batches exactly; a
            last batch with fewer than W examples is dropped under DDP).
        lr: AdamW learning rate (peak, after warm-up).
        weight_decay: AdamW's decoupled weight decay.
        schedule: ``"cosine"`` (decay to 0 over all steps) or ``"constant"``.
        warmup_steps: steps of linear warm-up from 0 to ``lr``.
        grad_clip: clip the gradient norm to this (None: no clipping).
        ema_decay: keep an exponential moving average of the weights with this decay
            (e.g. 0.999) and use it for validation and the final model; None: off.
        patience: stop after this many epochs without a better validation NLL, then restore
            the best weights; None: no early stopping (best weights are still restored).
        max_time: stop after this many seconds (then restore the best weights); None: off.
        checkpoint_every: also write a checkpoint every this many steps (0: only at the end
            of each epoch). Checkpoints need a run directory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        seed: seeds torch and the data order; the same seed gives the same run.
        progress: show a progress bar (rank 0 only).
    """

    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    patience: int | None = 10
    max_time: float | None = None
    checkpoint_every: int = 0
    device: str = "auto"
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        # the Trainer's own settings: no model name in the messages ("epochs must be ...")
        check_int("", "epochs", self.epochs, low=1)
        check_int("", "batch_size", self.batch_size, low=1)
        check_float("", "lr", self.lr, low=0, low_open=True)
        check_float("", "weight_decay", self.weight_decay, low=0)
        check_choice("", "schedule", self.schedule, ("cosine", "constant"))
        check_int("", "warmup_steps", self.warmup_steps, low=0)
        check_float("", "grad_clip", self.grad_clip, low=0, low_open=True, allow_none=True)
        check_float("", "ema_decay", self.ema_decay, low=0, high=1, low_open=True,
                    high_open=True, allow_none=True)  # fmt: skip
        check_int("", "patience", self.patience, low=1, allow_none=True)
        check_float("", "max_time", self.max_time, low=0, low_open=True, allow_none=True)
        check_int("", "checkpoint_every", self.checkpoint_every, low=0)
        check_str("", "device", self.device, hint="use 'cpu', 'cuda' or 'auto'")
        check_int("", "seed", self.seed, low=0, high=MAX_SEED)
        check_bool("", "progress", self.progress)


@dataclass
class TrainResult:
    """What a training run did: per-epoch history, the best epoch, and why it stopped."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val: float | None = None
    steps: int = 0
    stopped: str = "completed"  # completed | early_stopping | max_time
    seconds: float = 0.0


class _Objective(nn.Module):
    """Routes forward() to the family's loss() so DistributedDataParallel can hook it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *batch: torch.Tensor, **phase: str) -> torch.Tensor:
        return self.module.loss(*batch, **phase)


class Trainer:
    """Train a module whose ``loss(*batch)`` returns per-example losses.

    Example:
        >>> import torch
        >>> from ptheta.train.trainer import TrainConfig, Trainer
        >>> class Mean(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.mu = torch.nn.Parameter(torch.zeros(1))
        ...     def loss(self, x):
        ...         return ((x - self.mu) ** 2).squeeze(1)
        >>> m = Mean()
        >>> config = TrainConfig(epochs=200, lr=0.1, device="cpu")
        >>> result = Trainer(config).fit(m, (torch.ones(8, 1),))
        >>> round(m.mu.item(), 2)
        1.0
    """

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()

    def fit(
        self,
        module: nn.Module,
        train: Sequence[torch.Tensor],
        val: Sequence[torch.Tensor] | None = None,
        *,
        run_dir: str | os.PathLike | None = None,
        resume: bool = False,
        callback: Callable[[int, float], None] | None = None,
        fingerprint: str = "",
    ) -> TrainResult:
        """Train ``module`` in place on the tensors ``train`` (x, or x and y).

        Arguments:
            module: has ``loss(*batch)`` → (N,), optionally ``log_prob(*batch)`` → (N,).
            train: tensors with the examples along the first axis.
            val: validation tensors for early stopping (validation NLL, or loss without
                ``log_prob``); None: no validation, the last weights are kept.
            run_dir: where checkpoints and metrics.jsonl go (rank 0 writes); None: nowhere.
            resume: continue exactly from the checkpoint in ``run_dir``.
            callback: called as ``callback(step, loss)`` after every step.
            fingerprint: identifies the model and data; a checkpoint with another one is
                refused on resume.

        Returns:
            a :class:`TrainResult`; the module holds the best (or EMA-best) weights.
        """
        cfg = self.config
        from ptheta.nn.device import resolve_device

        world = current_world()
        device = resolve_device(cfg.device)
        if world.distributed and device.type == "cuda":
            device = torch.device("cuda", world.local_rank)
        n = len(train[0])
        if n == 0:
            raise ParameterError("no training examples")
        if resume and run_dir is None:
            raise RunDirError("resume needs a run directory with a checkpoint")
        if run_dir is not None and world.is_main:
            Path(run_dir).mkdir(parents=True, exist_ok=True)

        torch.manual_seed(cfg.seed)
        module.to(device)
        objective: nn.Module = _Objective(module)
        groups = _param_groups(module)
        phased = groups is not None
        if world.distributed:
            objective = DistributedDataParallel(
                objective,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=phased,  # a phase leaves the other groups unused
            )
        # torch's fused AdamW kernel: one pass over every parameter instead of a dozen
        # foreach passes (about 9x faster steps on the CPU), the same update
        opt = torch.optim.AdamW(
            groups or module.parameters(),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            fused=device.type in ("cpu", "cuda"),
        )
        batches_per_epoch = len(_global_batches(n, cfg.batch_size, world.world_size, cfg.seed, 0))
        total_steps = cfg.epochs * batches_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, total_steps))
        ema = (
            AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
            if cfg.ema_decay
            else None
        )
        s = _State()
        if resume:
            s = self._restore(run_dir, module, opt, sched, ema, fingerprint, device)
            if s.finished and s.stopped != "max_time":
                _apply_best(module, ema, s)
                return s.result(s.seconds)
            s.finished = False  # a run stopped by max_time continues with the new budget
        train = [t.to(device) for t in train]
        val = None if val is None else [t.to(device) for t in val]
        start = time.perf_counter() - s.seconds  # max_time counts resumed parts too
        metrics_path = Path(run_dir) / METRICS if run_dir is not None and world.is_main else None
        if metrics_path is not None:  # the record so far: empty, or what the checkpoint holds
            atomic_write_text(metrics_path, "".join(
                dumps({"event": "epoch", **h}) + "\n" for h in s.history
            ))  # fmt: skip

        def save_checkpoint() -> None:
            if run_dir is not None and world.is_main:
                elapsed = time.perf_counter() - start
                self._save(run_dir, module, opt, sched, ema, s, fingerprint, elapsed)

        stop, in_step = None, False
        with (
            _graceful_interrupts() as interrupted,
            progress_bar(
                total_steps, "training", enabled=cfg.progress and world.is_main
            ) as advance,
        ):
            advance(s.step)
            try:
                for epoch in range(s.epoch, cfg.epochs):
                    s.epoch = epoch
                    batches = _global_batches(n, cfg.batch_size, world.world_size, cfg.seed, epoch)
                    module.train()
                    epoch_start, seen = time.perf_counter(), 0
                    for b in range(s.batch, len(batches)):
                        in_step = True
                        # this process's share of the global batch; the loss is scaled so
                        # that DDP's average over processes is the global batch's mean
                        mine = batches[b][world.rank :: world.world_size].to(device)
                        phase = {"phase": module.phase(s.step)} if phased else {}
                        losses = objective(*[t[mine] for t in train], **phase)  # (n_mine,)
                        loss = losses.sum() * (world.world_size / len(batches[b]))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        updated = _active_params(opt, phase.get("phase"))
                        if cfg.grad_clip is not None:
                            nn.utils.clip_grad_norm_(updated, cfg.grad_clip)
                        opt.step()
                        sched.step()
                        if ema is not None:
                            ema.update_parameters(module)
                        s.step, s.batch = s.step + 1, b + 1
                        in_step = False
                        out_of_time = (
                            cfg.max_time is not None and time.perf_counter() - start > cfg.max_time
                        )
                        # every process takes the same decisions: one all-reduce per step
                        value, out_of_time, stop_now = _agree(
                            world, float(losses.detach().sum()), len(batches[b]),
                            out_of_time, interrupted(),
                        )  # fmt: skip
                        if not math.isfinite(value):
                            raise ParameterError(
                                f"the training loss became {value} at step {s.step}; "
                                "lower lr or set a (smaller) grad_clip"
                            )
                        s.loss_sum, s.loss_count = s.loss_sum + value, s.loss_count + 1
                        seen += len(batches[b])
                        rate = seen / max(time.perf_counter() - epoch_start, 1e-9)
                        advance(1, epoch=epoch + 1, loss=value, ex_per_s=round(rate))
                        if callback is not None:
                            callback(s.step, value)
                        if stop_now:
                            raise KeyboardInterrupt
                        if cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0:
                            save_checkpoint()
                        if out_of_time:
                            stop = "max_time"
                            break
                    # also after a max_time stop mid-epoch: its weights may be the best (the
                    # epoch then stays open, and a resumed run finishes it)
                    complete = s.batch == len(batches)
                    self._end_epoch(module, ema, val, s, opt, time.perf_counter() - start, complete)
                    if metrics_path is not None:
                        append_jsonl(metrics_path, {"event": "epoch", **s.history[-1]})
                    if cfg.patience is not None and s.bad_epochs >= cfg.patience:
                        stop = stop or "early_stopping"
                    save_checkpoint()
                    if stop is not None:
                        break
            except KeyboardInterrupt:
                # between steps the state is consistent: save it, and --resume continues
                # exactly; a second Ctrl-C inside a step keeps the previous checkpoint
                if not in_step:
                    save_checkpoint()
                raise
        s.finished = True
        s.stopped = stop or "completed"
        save_checkpoint()  # the last weights and the best ones: a max_time stop can continue
        _apply_best(module, ema, s)
        return s.result(time.perf_counter() - start)

    # ----------------------------------------------------------------- epochs
    def _end_epoch(
        self,
        module: nn.Module,
        ema: AveragedModel | None,
        val: Sequence[torch.Tensor] | None,
        s: _State,
        opt: torch.optim.Optimizer,
        seconds: float,
        complete: bool = True,
    ) -> None:
        record: dict[str, Any] = {
            "epoch": s.epoch + 1,
            "step": s.step,
            "train_loss": s.loss_sum / max(s.loss_count, 1),
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
        if not complete:
            record["partial"] = True
        evaluated = ema.module if ema is not None else module
        if val is not None:
            value = validation_nll(evaluated, val, self.config.batch_size)
            if not scores_log_prob(evaluated):
                key = "val_loss"  # not a likelihood: say so
            else:  # with labels, the module scores −log p(x | y)
                key = "val_nll" if len(val) == 1 else "val_nll_given_y"
            record[key] = value
            if not validation_measures_fit(evaluated):
                pass  # watched, never used to select weights or stop
            elif s.best_val is None or value < s.best_val:
                s.best_val, s.best_epoch, s.bad_epochs = value, s.epoch + 1, 0
                s.best_state = copy.deepcopy(evaluated.state_dict())
            else:
                s.bad_epochs += 1
        s.history.append(record)
        if complete:
            s.epoch, s.batch = s.epoch + 1, 0
            s.loss_sum, s.loss_count = 0.0, 0

    # ----------------------------------------------------------------- checkpoints
    def _save(self, run_dir, module, opt, sched, ema, s: _State, fingerprint: str, seconds: float):
        tensors = checkpoint.prefixed("module", module.state_dict())
        if ema is not None:
            tensors.update(checkpoint.prefixed("ema", ema.state_dict()))
        if s.best_state is not None:
            tensors.update(checkpoint.prefixed("best", s.best_state))
        opt_tensors, opt_meta = checkpoint.flatten_optimizer(opt)
        tensors.update(opt_tensors)
        tensors["rng/torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng/cuda"] = torch.cuda.get_rng_state()
        checkpoint.save(
            run_dir,
            tensors,
            {
                "fingerprint": fingerprint,
                "config": asdict(self.config),
                "optimizer": opt_meta,
                "scheduler": sched.state_dict(),
                "progress": s.to_json(seconds),
            },
        )

    def _restore(self, run_dir, module, opt, sched, ema, fingerprint: str, device) -> _State:
        tensors, state = checkpoint.load(run_dir)
        if fingerprint and state.get("fingerprint") != fingerprint:
            raise RunDirError(
                f"the checkpoint in {str(run_dir)!r} belongs to another model or data set; "
                "resume with the same model, parameters and data, or start a new run"
            )
        try:
            module.load_state_dict(checkpoint.unprefixed("module", tensors))
            if ema is not None:
                ema.load_state_dict(checkpoint.unprefixed("ema", tensors))
        except RuntimeError as e:
            raise RunDirError(f"the checkpoint does not fit this model: {e}") from None
        module.to(device)
        try:
            checkpoint.restore_optimizer(opt, tensors, state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(tensors["rng/torch"])
            if "rng/cuda" in tensors and torch.cuda.is_available():
                torch.cuda.set_rng_state(tensors["rng/cuda"])
            best = checkpoint.unprefixed("best", tensors)
            return _State.from_json(state["progress"], best or None)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise RunDirError(
                f"the checkpoint in {str(run_dir)!r} is corrupted ({type(e).__name__}: {e}); "
                "start a new run without --resume"
            ) from None


@dataclass
class _State:
    """Counters that a checkpoint must restore for training to continue exactly."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    loss_sum: float = 0.0
    loss_count: int = 0
    best_val: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    finished: bool = False
    stopped: str = "completed"
    seconds: float = 0.0

    def to_json(self, seconds: float) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "best_state"}
        out["seconds"] = seconds
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], best: dict[str, torch.Tensor] | None) -> _State:
        expected = {f for f in cls.__dataclass_fields__ if f != "best_state"}
        if set(d) != expected:
            raise ValueError(f"progress has fields {sorted(d)}, expected {sorted(expected)}")
        return cls(**{**d, "best_state": best})

    def result(self, seconds: float) -> TrainResult:
        return TrainResult(
            history=list(self.history),
            best_epoch=self.best_epoch,
            best_val=self.best_val,
            steps=self.step,
            stopped=self.stopped,
            seconds=seconds or self.seconds,
        )


def _param_groups(module: nn.Module) -> list[dict[str, Any]] | None:
    """AdamW parameter groups of a phased module (see the module docstring); None otherwise."""
    if not isinstance(module, Phased):
        return None
    groups = [{**options, "name": name} for name, options in module.optim_groups().items()]
    for g in groups:
        g["params"] = list(g["params"])
    seen = [id(p) for g in groups for p in g["params"]]
    if len(seen) != len(set(seen)) or set(seen) != {id(p) for p in module.parameters()}:
        raise ValueError("optim_groups() must list every parameter of the module exactly once")
    return groups


def _active_params(opt: torch.optim.Optimizer, phase: str | None) -> list[nn.Parameter]:
    """The parameters this step updates; the other phases' gradients are dropped, so AdamW
    leaves those parameters (and their moments) untouched."""
    active: list[nn.Parameter] = []
    for g in opt.param_groups:
        if phase is None or g.get("name") == phase:
            active += g["params"]
        else:
            for p in g["params"]:
                p.grad = None
    return active


def _apply_best(module: nn.Module, ema: AveragedModel | None, s: _State) -> None:
    """Leave the best (validation) weights — of the EMA when there is one — in ``module``."""
    final = ema.module if ema is not None else module
    if s.best_state is not None:
        final.load_state_dict(s.best_state)
    if ema is not None:
        module.load_state_dict(ema.module.state_dict())
    module.eval()


def _global_batches(n: int, batch_size: int, world_size: int, seed: int, epoch: int):
    """The epoch's global batches: one seeded permutation shared by every process.

    Each process takes every world_size-th index of a batch, so a batch needs at least
    world_size examples: under DDP a last batch smaller than that is dropped (with one
    process nothing is ever dropped).
    """
    g = torch.Generator().manual_seed(seed + epoch)
    batches = list(torch.randperm(n, generator=g).split(batch_size))
    if world_size > 1 and len(batches[-1]) < world_size:
        batches.pop()
    if not batches:
        raise ParameterError(f"{n} training examples cannot be shared by {world_size} processes")
    return batches


def _agree(
    world: World, loss_sum: float, batch_len: int, out_of_time: bool, interrupted: bool
) -> tuple[float, bool, bool]:
    """The global batch's mean loss, and stop decisions every process shares."""
    if not world.distributed:
        return loss_sum / batch_len, out_of_time, interrupted
    packed = torch.tensor([loss_sum, float(out_of_time), float(interrupted)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        packed = packed.cuda()
    dist.all_reduce(packed)
    total, late, stop = packed.tolist()
    return total / batch_len, late > 0, stop > 0


@contextlib.contextmanager
def _graceful_interrupts() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a flag the loop reads between steps; a second one
    interrupts at once. Only in the main thread (signal handlers live there)."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: flag["set"]
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["set"]
    finally:
        signal.signal(signal.SIGINT, previous)


def _schedule(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm, total = cfg.warmup_steps, max(total_steps, 1)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def validation_nll(module: nn.Module, val: Sequence[torch.Tensor], batch_size: int) -> float:
    """Mean −log p on the validation tensors (or mean loss for modules without log_prob)."""
    was_training = module.training
    module.eval()
    score = module.log_prob if scores_log_prob(module) else None
    total, count = 0.0, 0
    for chunk in zip(*(t.split(max(batch_size, 256)) for t in val), strict=True):
        values = -score(*chunk) if score is not None else module.loss(*chunk)
        total += float(values.double().sum())
        count += len(values)
    module.train(was_training)
    return total / count
