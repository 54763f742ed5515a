"""Random streams of a training run: per-process noise, and choices every process shares.

Families draw their per-example noise (a VAE's ε, a DDPM's t and ε, a GAN's z, dropout)
from torch's global generator. Under data parallelism each process must draw its own,
or W processes would repeat one process's noise on W shares of the batch: the Trainer
seeds the global generator of process ``rank`` with :func:`rank_seed` (rank 0 keeps the
run's seed, so one process trains exactly as it always did). A choice that every process
must make alike — which of MADE's masks a step uses — comes instead from the module's
``shared_generator``, which the Trainer seeds from the run's seed alone and every process
advances identically. Both are saved in checkpoints (every process's global state), so
a resumed run draws what the uninterrupted one would have drawn.
"""

from __future__ import annotations

import hashlib

import torch
import torch.distributed as dist

from ptheta.train.distributed import World

# the attribute of a module that holds the shared generator while the Trainer trains it
SHARED = "shared_generator"


def rank_seed(seed: int, rank: int, salt: str = "") -> int:
    """The global generator's seed of process ``rank``: ``seed`` itself for rank 0 (and no
    salt), else a 63-bit hash of (seed, rank, salt), distinct for every process.

    Example:
        >>> rank_seed(7, 0), rank_seed(7, 1) == rank_seed(7, 1) != rank_seed(7, 2)
        (7, True)
    """
    if rank == 0 and not salt:
        return seed
    digest = hashlib.sha256(f"ptheta-rank|{seed}|{rank}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def shared_generator(seed: int) -> torch.Generator:
    """The generator of choices every process shares (a CPU generator: the same on all)."""
    return torch.Generator().manual_seed(rank_seed(seed, 0, salt="shared"))


def rng_tensors(world: World, *, gather: bool = True) -> dict[str, torch.Tensor]:
    """Every process's global generator states, for a checkpoint: ``rng/torch`` (rank 0,
    the name one process always used), ``rng/torch/rank<r>`` for the others, and the same
    under ``rng/cuda`` where there is a GPU. A collective under DDP (every process calls
    it); ``gather=False`` gives this process's states alone (rank 0, when the others
    cannot join: an interrupt that only this process saw)."""
    own = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        own["cuda"] = torch.cuda.get_rng_state()
    everyone: list = [own]
    if world.distributed and gather:
        everyone = [None] * world.world_size
        dist.all_gather_object(everyone, own)
    out = {}
    for rank, states in enumerate(everyone):
        for kind, state in states.items():
            out[_key(kind, rank)] = state
    return out


def restore_rng(tensors: dict[str, torch.Tensor], world: World, seed: int, step: int) -> None:
    """Set this process's global generator states from a checkpoint's :func:`rng_tensors`.

    A process whose state was not saved (a run resumed with more processes) gets a fresh
    stream of its own, seeded by (seed, rank, step): the run continues, not bit-exactly.
    """
    state = tensors[_key("torch", 0)] if world.rank == 0 else tensors.get(_key("torch", world.rank))
    if state is None:
        torch.manual_seed(rank_seed(seed, world.rank, salt=f"resumed at {step}"))
    else:
        torch.set_rng_state(state)
    cuda = tensors.get(_key("cuda", world.rank))
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)


def _key(kind: str, rank: int) -> str:
    return f"rng/{kind}" if rank == 0 else f"rng/{kind}/rank{rank}"
