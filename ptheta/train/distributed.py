"""Distributed data parallel set-up from the environment ``torchrun`` provides."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ptheta import errors
from ptheta.errors import PthetaError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current_world() -> World:
    """The world of an initialised process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def init_from_env(device: str = "auto") -> World:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    The backend is nccl when every process has a GPU (``device`` cuda or auto), gloo on
    CPU. Without torchrun this does nothing and returns a single-process world.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return World()
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current_world()


def shutdown(wait: bool = True) -> None:
    """Leave the process group (at the end of a torchrun command).

    With ``wait`` every process first waits for the others, so no collective is still in
    flight; without (after an error, where the others may never arrive, or where the
    processes already met and one may still be busy alone, e.g. rank 0 scoring) nobody
    waits. Then what still holds the group (a finished DDP wrapper is kept alive by
    reference cycles) is collected while the interpreter is whole: a gloo group freed
    during interpreter finalisation can abort the process ("terminate called without an
    active exception") after all its work is done.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def barrier() -> None:
    """Wait for every process (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def on_main(action: Callable[[], object]) -> None:
    """Run ``action`` on rank 0 only; every process raises the same error if it fails.

    Without a process group this just runs ``action``.
    """
    world = current_world()
    if not world.distributed:
        action()
        return
    outcome: list[object] = [None]
    if world.is_main:
        try:
            action()
        except PthetaError as e:
            outcome[0] = (type(e).__name__, str(e))
    dist.broadcast_object_list(outcome, src=0)
    if outcome[0] is not None:
        name, message = outcome[0]
        raise getattr(errors, name, PthetaError)(message)
