"""The one training loop every neural family uses (AdamW, schedule, EMA, early stopping, DDP).

The Trainer takes a prepared ``nn.Module`` and its examples — tensors, or a map-style
``torch.utils.data.Dataset`` read a batch at a time through a DataLoader (see
:mod:`ptheta.train.loading`); it never builds data sets or models. A module to train
exposes ``loss(x, y=None)`` → per-example loss, shape (N,), and optionally
``log_prob(x, y=None)`` → (N,), used for the validation NLL (otherwise the
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

Randomness: each process draws its per-example noise from torch's global generator,
seeded per process (:mod:`ptheta.train.seeding`); a choice every process must share is
drawn from ``module.shared_generator``, which the Trainer sets while it trains. Training
steps may run under autocast (``autocast="bfloat16"`` or ``"float16"``, see
:mod:`ptheta.train.precision`) and through ``torch.compile`` (``compile=True``); the
weights, validation and the reported losses stay in the module's dtype.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import sys
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
from torch.utils.data import Dataset

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
from ptheta.train.loading import VALIDATION_CHUNK, Examples, examples
from ptheta.train.precision import Precision
from ptheta.train.protocol import Phased, scores_log_prob, validation_measures_fit
from ptheta.train.seeding import SHARED, rank_seed, restore_rng, rng_tensors, shared_generator

METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of training (separate from each model's own).

    Arguments:
        epochs: passes over the training data; None: no limit, for training that
            ``max_time`` ends (or early stopping), with the cosine schedule running over
            the time budget instead of the steps.
        batch_size: examples per optimisation step, summed over all processes (the global
            batch; each of W processes takes every W-th example of it, and the losses are
            scaled so that training equals one process with the same batches exactly; a
            last batch with fewer than W examples is dropped under DDP).
        lr: AdamW learning rate (peak, after warm-up).
        weight_decay: AdamW's decoupled weight decay.
        schedule: ``"cosine"`` (decay to 0 over all steps, or over ``max_time`` when
            ``epochs`` is None) or ``"constant"``.
        warmup_steps: steps of linear warm-up from 0 to ``lr``.
        grad_clip: clip the gradient norm to this (None: no clipping).
        ema_decay: keep an exponential moving average of the weights with this decay
            (e.g. 0.999) and use it for validation and the final model; None: off.
        patience: stop after this many epochs without a better validation NLL, then restore
            the best weights; None: no early stopping (best weights are still restored).
        max_time: a budget in seconds for training and its validation: training stops
            early enough that the validation which follows the stop also fits (its cost
            is measured: on one batch before the first validation, then from the last
            one), then the best weights are restored; None: off.
        checkpoint_every: also write a checkpoint every this many steps (0: only at the end
            of each epoch). Checkpoints need a run directory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        seed: seeds torch and the data order; the same seed gives the same run (process
            r of W draws its noise from its own stream, see :mod:`ptheta.train.seeding`).
        progress: show a progress bar (rank 0 only).
        loader_workers: worker processes that read a Dataset's batches ahead (0: read in
            the training process); they never change the batches.
        autocast: run each training step's forward pass under autocast to ``"bfloat16"``
            or ``"float16"`` (with a gradient scaler) on float32 weights; None: in the
            module's dtype.
        compile: train through ``torch.compile(module)`` (validation and the saved
            weights use the module itself).
    """

    epochs: int | None = 50
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
    loader_workers: int = 0
    autocast: str | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        # the Trainer's own settings: no model name in the messages ("epochs must be ...")
        check_int("", "epochs", self.epochs, low=1, allow_none=True)
        if self.epochs is None and self.max_time is None:
            raise ParameterError(
                "epochs=None trains until max_time: set max_time (seconds), or an epoch limit"
            )
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
        check_int("", "loader_workers", self.loader_workers, low=0)
        if self.autocast is not None:
            check_choice("", "autocast", self.autocast, ("bfloat16", "float16"), hint="or None")
        check_bool("", "compile", self.compile)

    @property
    def epoch_limit(self) -> int:
        """``epochs``, or no reachable limit when it is None (``max_time`` ends training)."""
        return self.epochs if self.epochs is not None else sys.maxsize


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
        train: Sequence[torch.Tensor] | Dataset,
        val: Sequence[torch.Tensor] | Dataset | None = None,
        *,
        run_dir: str | os.PathLike | None = None,
        resume: bool = False,
        callback: Callable[[int, float], None] | None = None,
        fingerprint: str = "",
    ) -> TrainResult:
        """Train ``module`` in place on the examples ``train`` (x, or x and y).

        Arguments:
            module: has ``loss(*batch)`` → (N,), optionally ``log_prob(*batch)`` → (N,).
            train: tensors with the examples along the first axis, or a map-style Dataset
                that returns a batch of them (see :mod:`ptheta.train.loading`); the same
                examples either way give the same training.
            val: validation examples (tensors or a Dataset, read in chunks) for early
                stopping (validation NLL, or loss without ``log_prob``); None: no
                validation, the last weights are kept.
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
        if resume and run_dir is None:
            raise RunDirError("resume needs a run directory with a checkpoint")
        train_data = examples(train, device, cfg.loader_workers)
        n = len(train_data)
        if n == 0:
            raise ParameterError("no training examples")
        if run_dir is not None and world.is_main:
            Path(run_dir).mkdir(parents=True, exist_ok=True)

        # each process its own noise; rank 0 the run's seed (one process: as it always was)
        torch.manual_seed(rank_seed(cfg.seed, world.rank))
        module.to(device)
        amp = Precision(cfg.autocast, device, module)
        objective: nn.Module = _Objective(module)
        groups = _param_groups(module)
        phased = groups is not None
        if world.distributed:
            objective = DistributedDataParallel(
                objective,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=phased,  # a phase leaves the other groups unused
            )
        if cfg.compile:
            objective = _compiled(objective)
        # torch's fused AdamW kernel: one pass over every parameter instead of a dozen
        # foreach passes (about 9x faster steps on the CPU), the same update
        opt = torch.optim.AdamW(
            groups or module.parameters(),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            fused=device.type in ("cpu", "cuda"),
        )
        batches_per_epoch = len(_global_batches(n, cfg.batch_size, world.world_size, cfg.seed, 0))
        total_steps = None if cfg.epochs is None else cfg.epochs * batches_per_epoch
        # the fraction of max_time spent, agreed by every process: the cosine schedule's
        # clock when no epoch limit fixes the number of steps
        budget_spent = [0.0]
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, _schedule(cfg, total_steps, lambda: budget_spent[0])
        )
        ema = (
            AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
            if cfg.ema_decay
            else None
        )
        shared = shared_generator(cfg.seed)
        s = _State()
        if resume:
            s = self._restore(run_dir, module, opt, sched, ema, amp, shared, fingerprint, device)
            if s.finished and s.stopped != "max_time":
                _apply_best(module, ema, s)
                return s.result(s.seconds)
            s.finished = False  # a run stopped by max_time continues with the new budget
        val_data = whole_val = None if val is None else examples(val, device, cfg.loader_workers)
        if val_data is not None and s.val_rows is not None:  # resumed: the same rows
            val_data = _subset(val_data, s.val_rows, cfg.seed)
        start = time.perf_counter() - s.seconds  # max_time counts resumed parts too
        metrics_path = Path(run_dir) / METRICS if run_dir is not None and world.is_main else None
        if metrics_path is not None:  # the record so far: empty, or what the checkpoint holds
            atomic_write_text(metrics_path, "".join(
                dumps({"event": "epoch", **h}) + "\n" for h in s.history
            ))  # fmt: skip

        def save_checkpoint(everyone: bool = True) -> None:
            # every process takes part (the RNG states are gathered); rank 0 writes
            if run_dir is not None:
                rng = rng_tensors(world, gather=everyone)
                if world.is_main:
                    elapsed = time.perf_counter() - start
                    self._save(run_dir, module, opt, sched, ema, amp, shared, rng, s,
                               fingerprint, elapsed)  # fmt: skip

        stop, in_step, agreed = None, False, False
        # seconds kept for the validation after a max_time stop (0 without one)
        reserve = None if cfg.max_time is not None and val_data is not None else 0.0
        with (
            _lent(module, SHARED, shared),  # MADE's mask of a batch: alike on every process
            _graceful_interrupts() as interrupted,
            progress_bar(
                total_steps, "training", enabled=cfg.progress and world.is_main
            ) as advance,
        ):
            advance(s.step)
            try:
                for epoch in range(s.epoch, cfg.epoch_limit):
                    s.epoch = epoch
                    batches = _global_batches(n, cfg.batch_size, world.world_size, cfg.seed, epoch)
                    module.train()
                    epoch_start, seen = time.perf_counter(), 0
                    # this process's share of each global batch; the loss is scaled so
                    # that DDP's average over processes is the global batch's mean
                    shares = [b[world.rank :: world.world_size] for b in batches[s.batch :]]
                    for b, batch in enumerate(train_data.batches(shares), start=s.batch):
                        in_step, step_began = True, time.perf_counter()
                        phase = {"phase": module.phase(s.step)} if phased else {}
                        with amp.autocast():
                            losses = objective(*batch, **phase)  # (n_mine,)
                        if amp.enabled:  # summed and reported in the weights' float32
                            losses = losses.float()
                        loss = losses.sum() * (world.world_size / len(batches[b]))
                        opt.zero_grad(set_to_none=True)
                        amp.backward(loss)
                        updated = _active_params(opt, phase.get("phase"))
                        if cfg.grad_clip is not None:
                            amp.unscale(opt)
                            nn.utils.clip_grad_norm_(updated, cfg.grad_clip)
                        amp.step(opt)
                        if ema is not None:
                            ema.update_parameters(module)
                        s.step, s.batch = s.step + 1, b + 1
                        step_seconds = time.perf_counter() - step_began
                        if reserve is None:  # what the validation after a stop will cost
                            reserve = _validation_reserve(self._evaluated(module, ema), val_data,
                                                          cfg.batch_size, device)  # fmt: skip
                            # decided before the run's first validation, kept by its
                            # resumed parts: every epoch's number is over the same rows
                            if s.val_rows is None and not s.history:
                                rows = _validation_rows(len(val_data), reserve, cfg.max_time)
                                rows = round(_broadcast(world, float(rows)))  # rank 0's
                                if rows < len(val_data):  # the whole set cannot fit
                                    reserve *= rows / len(val_data)
                                    s.val_rows = rows
                                    val_data = _subset(val_data, rows, cfg.seed)
                        # go on only if one more step and the validation after it fit;
                        # at an epoch's end its validation comes first
                        room = step_seconds + reserve * (2 if b + 1 == len(batches) else 1)
                        out_of_time = (
                            cfg.max_time is not None
                            and time.perf_counter() - start + room > cfg.max_time
                        )
                        # every process takes the same decisions: one all-reduce per step
                        value, out_of_time, agreed, elapsed = _agree(
                            world, float(losses.detach().sum()), len(batches[b]),
                            out_of_time, interrupted(), time.perf_counter() - start,
                        )  # fmt: skip
                        if cfg.max_time is not None:
                            budget_spent[0] = elapsed / cfg.max_time
                        sched.step()  # the next step's learning rate
                        in_step = False  # the step is whole: a checkpoint may hold it
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
                        if agreed:
                            raise KeyboardInterrupt
                        if cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0:
                            save_checkpoint()
                        if out_of_time:
                            stop = "max_time"
                            break
                    # also after a max_time stop mid-epoch: its weights may be the best
                    # (the epoch then stays open, and a resumed run finishes it)
                    complete = s.batch == len(batches)
                    elapsed = time.perf_counter() - start
                    self._end_epoch(module, ema, val_data, s, opt, elapsed, complete, world)
                    if val_data is not None:  # the validation's measured cost
                        reserve = time.perf_counter() - start - elapsed
                    if s.val_rows is not None and len(s.history) == 1:
                        # the 32-row probe may have paid a first call's one-off cost
                        # (compilation, lazy initialisation): if the whole split fits
                        # after all, validate it from now on, choosing among those
                        # epochs only (the first one's number is over other rows)
                        whole = _broadcast(world, reserve * len(whole_val) / s.val_rows)
                        if whole <= VALIDATION_SHARE * cfg.max_time:
                            val_data, reserve, s.val_rows = whole_val, whole, None
                            s.best_val, s.best_epoch, s.best_state = None, None, None
                            s.bad_epochs = 0
                    if metrics_path is not None:
                        append_jsonl(metrics_path, {"event": "epoch", **s.history[-1]})
                    if cfg.patience is not None and s.bad_epochs >= cfg.patience:
                        stop = stop or "early_stopping"
                    save_checkpoint()
                    if stop is not None:
                        break
            except KeyboardInterrupt:
                # between steps the state is consistent: save it, and --resume
                # continues exactly; a second Ctrl-C inside a step keeps the previous
                # checkpoint. Under DDP only an agreed stop gathers every process's
                # RNG state; an interrupt one process alone saw saves rank 0's.
                if not in_step:
                    save_checkpoint(everyone=agreed or not world.distributed)
                raise
        s.finished = True
        s.stopped = stop or "completed"
        save_checkpoint()  # the last weights and the best ones: max_time can continue
        _apply_best(module, ema, s)
        return s.result(time.perf_counter() - start)

    # ----------------------------------------------------------------- epochs
    def _end_epoch(
        self,
        module: nn.Module,
        ema: AveragedModel | None,
        val: Examples | None,
        s: _State,
        opt: torch.optim.Optimizer,
        seconds: float,
        complete: bool,
        world: World,
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
        if val is not None and s.val_rows is not None:
            record["val_rows"] = s.val_rows  # the validation is a fixed subset's mean
        evaluated = self._evaluated(module, ema)
        if val is not None:
            # a stochastic validation (an IWAE's draws) differs between processes, whose
            # decisions must agree: rank 0's number decides for all
            value = _broadcast(world, validation_nll(evaluated, val, self.config.batch_size))
            if not scores_log_prob(evaluated):
                key = "val_loss"  # not a likelihood: say so
            else:  # with labels, the module scores −log p(x | y)
                key = "val_nll" if val.fields == 1 else "val_nll_given_y"
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

    @staticmethod
    def _evaluated(module: nn.Module, ema: AveragedModel | None) -> nn.Module:
        """The weights validation scores: the EMA's when there is one."""
        return ema.module if ema is not None else module

    # ----------------------------------------------------------------- checkpoints
    def _save(
        self, run_dir, module, opt, sched, ema, amp: Precision, shared: torch.Generator,
        rng: dict[str, torch.Tensor], s: _State, fingerprint: str, seconds: float,
    ) -> None:  # fmt: skip
        tensors = checkpoint.prefixed("module", module.state_dict())
        if ema is not None:
            tensors.update(checkpoint.prefixed("ema", ema.state_dict()))
        if s.best_state is not None:
            tensors.update(checkpoint.prefixed("best", s.best_state))
        opt_tensors, opt_meta = checkpoint.flatten_optimizer(opt)
        tensors.update(opt_tensors)
        tensors.update(rng)  # every process's global generator
        tensors["rng/shared"] = shared.get_state()
        checkpoint.save(
            run_dir,
            tensors,
            {
                "fingerprint": fingerprint,
                "config": asdict(self.config),
                "optimizer": opt_meta,
                "scheduler": sched.state_dict(),
                "progress": s.to_json(seconds),
                "scaler": amp.state_dict(),
            },
        )

    def _restore(
        self, run_dir, module, opt, sched, ema, amp: Precision, shared: torch.Generator,
        fingerprint: str, device: torch.device,
    ) -> _State:  # fmt: skip
        tensors, state = checkpoint.load(run_dir)
        if fingerprint and state.get("fingerprint") != fingerprint:
            raise RunDirError(
                f"the checkpoint in {str(run_dir)!r} belongs to another model or data set; "
                "resume with the same model, parameters and data, read the same way (with "
                "--stream if the run streamed it; a streamed file must not have changed "
                "since), or start a new run"
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
            progress = _State.from_json(state["progress"], None)
            restore_rng(tensors, current_world(), self.config.seed, progress.step)
            if "rng/shared" in tensors:  # a checkpoint from before the shared generator: none
                shared.set_state(tensors["rng/shared"])
            amp.load_state_dict(state.get("scaler"))
            progress.best_state = checkpoint.unprefixed("best", tensors) or None
            return progress
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
    val_rows: int | None = None  # validation rows, when the whole set cannot fit max_time

    def to_json(self, seconds: float) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "best_state"}
        out["seconds"] = seconds
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], best: dict[str, torch.Tensor] | None) -> _State:
        expected = {f for f in cls.__dataclass_fields__ if f != "best_state"}
        d = {"val_rows": None, **d}  # checkpoints written before val_rows existed
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
    world: World,
    loss_sum: float,
    batch_len: int,
    out_of_time: bool,
    interrupted: bool,
    elapsed: float,
) -> tuple[float, bool, bool, float]:
    """The global batch's mean loss, stop decisions every process shares, and the seconds
    elapsed (the processes' mean, for a schedule that follows the clock)."""
    if not world.distributed:
        return loss_sum / batch_len, out_of_time, interrupted, elapsed
    packed = torch.tensor(
        [loss_sum, float(out_of_time), float(interrupted), elapsed], dtype=torch.float64
    )
    if dist.get_backend() == "nccl":
        packed = packed.cuda()
    dist.all_reduce(packed)
    total, late, stop, seconds = packed.tolist()
    return total / batch_len, late > 0, stop > 0, seconds / world.world_size


@contextlib.contextmanager
def _lent(module: nn.Module, name: str, value: Any) -> Iterator[None]:
    """``module.<name> = value`` while training; the trained module keeps no trace of it."""
    setattr(module, name, value)
    try:
        yield
    finally:
        delattr(module, name)


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


def _schedule(
    cfg: TrainConfig, total_steps: int | None, budget_spent: Callable[[], float]
) -> Callable[[int], float]:
    """The learning-rate factor of each step: linear warm-up, then constant or a cosine to
    0 over the steps after warm-up — or, with no epoch limit (``total_steps`` None), a
    cosine over the time budget (``budget_spent()``: the fraction of ``max_time`` used so
    far), which the warm-up ramps up to (continuous at its end, and a function of the
    step and the clock alone, so a resumed run needs no other state)."""
    warm = cfg.warmup_steps

    def factor(step: int) -> float:
        in_warmup = bool(warm) and step < warm
        ramp = (step + 1) / warm if in_warmup else 1.0
        if cfg.schedule == "constant":
            return ramp
        if total_steps is None:
            progress = min(max(budget_spent(), 0.0), 1.0)
            return ramp * 0.5 * (1.0 + math.cos(math.pi * progress))
        if in_warmup:
            return ramp
        progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


# torch.compile's options for compile=True (tests choose a backend that compiles faster)
COMPILE_OPTIONS: dict[str, Any] = {}


def _compiled(objective: nn.Module) -> nn.Module:
    """``torch.compile`` of the training objective (its forward: the family's loss); the
    module's own state dict, without ``_orig_mod.``, is what checkpoints save."""
    return torch.compile(objective, **COMPILE_OPTIONS)


def _broadcast(world: World, value: float) -> float:
    """Rank 0's ``value`` on every process (itself without DDP)."""
    if not world.distributed:
        return value
    packed = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        packed = packed.cuda()
    dist.broadcast(packed, src=0)
    return float(packed.item())


# Examples timed to estimate a validation's cost under max_time: timing 256 of them took
# ncsn's first (and only) step of a 10 s budget on 28×28 digits to 17 s more
RESERVE_ROWS = 32


def _validation_reserve(
    module: nn.Module, val: Examples, batch_size: int, device: torch.device
) -> float:
    """Seconds a whole validation will take, from timing its first :data:`RESERVE_ROWS`
    examples (a per-call cost then counts once per 32 rows: an overestimate only where
    validation is quick anyway). The random state is left as it was, so a budget changes
    when training stops, never what it computes."""
    n = len(val)
    rows = min(n, RESERVE_ROWS)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        began = time.perf_counter()
        validation_nll(module, _Head(val, rows), batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began
    return seconds * n / rows


# The most of max_time that one validation may take: a validation set whose whole pass
# would take more is validated on a fixed, seeded subset of its rows that fits (ncsn on
# 28×28 digits with max_time=10: one validation of 400 rows took 40 s)
VALIDATION_SHARE = 0.25


def _validation_rows(n: int, seconds: float, max_time: float | None) -> int:
    """The validation rows a budget affords: all ``n`` when a whole validation
    (``seconds``) fits :data:`VALIDATION_SHARE` of ``max_time``, else as many as fit it
    (at least :data:`RESERVE_ROWS`)."""
    if max_time is None or seconds <= VALIDATION_SHARE * max_time:
        return n
    fit = int(n * VALIDATION_SHARE * max_time / seconds)
    return min(n, max(fit, RESERVE_ROWS))


def _subset(val: Examples, rows: int, seed: int) -> Examples:
    """``rows`` of ``val``'s examples, drawn without replacement by ``seed`` (a generator of
    its own: the training's random stream is untouched), in their order."""
    if rows >= len(val):
        return val
    order = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))
    return _ValidationRows(val, order[:rows].sort().values)


class _ValidationRows(Examples):
    """The examples ``index`` of ``val``."""

    def __init__(self, val: Examples, index: torch.Tensor) -> None:
        self.val, self.index = val, index
        self.fields = val.fields

    def __len__(self) -> int:
        return len(self.index)

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        for batch in self.val.batches([self.index[i] for i in index_lists]):
            self.fields = self.val.fields
            yield batch


class _Head(Examples):
    """The first ``rows`` examples of ``val``."""

    def __init__(self, val: Examples, rows: int) -> None:
        self.val, self.rows = val, rows

    def __len__(self) -> int:
        return self.rows

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        return self.val.batches(index_lists)


@torch.no_grad()
def validation_nll(
    module: nn.Module, val: Examples | Sequence[torch.Tensor], batch_size: int
) -> float:
    """Mean −log p on the validation examples (or mean loss for modules without log_prob),
    read in chunks of at least 256 and summed in float64."""
    if not isinstance(val, Examples):
        val = examples(val, val[0].device, 0)
    was_training = module.training
    module.eval()
    score = module.log_prob if scores_log_prob(module) else None
    total, count = 0.0, 0
    for chunk in val.chunks(max(batch_size, VALIDATION_CHUNK)):
        values = -score(*chunk) if score is not None else module.loss(*chunk)
        total += float(values.double().sum())
        count += len(values)
    module.train(was_training)
    return total / count
