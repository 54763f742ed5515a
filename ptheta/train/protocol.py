"""What the Trainer expects of a module, written as protocols (``typing.Protocol``).

A module is trainable when it has ``loss``; it is scored for validation by ``log_prob``
when it has one (:class:`Scoring`) and does not ask for its loss instead; it is trained in
alternating phases when it has ``optim_groups`` and ``phase`` (:class:`Phased`). Two plain
class attributes refine validation: ``validate_with_loss = True`` (its ``log_prob`` is too
costly to run every epoch: a DDPM's T network passes) and ``validation_measures_fit =
False`` (its loss does not measure fit at all: a GAN's, an EBM's; the validation loss is
then recorded but never selects weights or stops training).

While the Trainer trains a module it sets ``module.shared_generator``: a CPU
``torch.Generator`` that every process of a data-parallel run advances alike, for the
choices they must share (MADE's mask of a batch); per-example noise comes from torch's
global generator, which is seeded per process (see :mod:`ptheta.train.seeding`). A module
used outside the Trainer has no such attribute: ``getattr(self, "shared_generator", None)``
falls back to the global generator.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Trainable(Protocol):
    """``loss(*batch, **phase)`` → per-example loss, shape (N,)."""

    def loss(self, *batch: Tensor, **phase: Any) -> Tensor: ...


@runtime_checkable
class Scoring(Protocol):
    """``log_prob(*batch)`` → per-example log-likelihood, shape (N,)."""

    def log_prob(self, *batch: Tensor) -> Tensor: ...


@runtime_checkable
class Phased(Protocol):
    """Parameters updated in turn: ``optim_groups()`` gives each phase's parameters (and
    optional AdamW settings), ``phase(step)`` which phase a step updates."""

    def optim_groups(self) -> dict[str, dict[str, Any]]: ...

    def phase(self, step: int) -> str: ...


def scores_log_prob(module: object) -> bool:
    """Whether validation uses ``log_prob`` (else the loss)."""
    return isinstance(module, Scoring) and not getattr(module, "validate_with_loss", False)


def validation_measures_fit(module: object) -> bool:
    """Whether the validation number may select weights and stop training."""
    return bool(getattr(module, "validation_measures_fit", True))
