"""NLL per step of variable-length sequences: the words the tables put on the numbers.

A family that models variable-length sequences (``capabilities().variable_length``) scores
each sequence with its length: the end of a sequence is an event the model predicts. Its
NLL per sequence is therefore comparable only between models of the same sequences, and
per step the sum of the NLLs is divided by Σ lengths + N: every sequence's end counts as
one step (``model.nll_summary`` gives ``n_steps``, ``nll_per_step`` and ``bits_per_dim``,
bits per step and per value of a step). This module names the bits column of the tables
of ``eval``, ``fit`` and ``compare`` and holds the note under them; a split is scored
with its lengths through :func:`ptheta.runs.fitting.examples`.

Example:
    >>> from ptheta.data import DataSpec
    >>> per_step_unit(DataSpec("categorical", (12,), 27, variable_length=True))
    'bits/token'
    >>> per_step_unit(DataSpec("continuous", (12, 3), variable_length=True))
    'bits/dim'
    >>> per_step_unit(DataSpec("binary", (64,))) is None
    True
"""

from __future__ import annotations

from ptheta.data.spec import DataSpec

END_NOTE = (
    "per step: the NLL summed over the sequences, divided by their steps plus one per "
    "sequence (each sequence's end is an event the model scores, so it counts as a step)"
)


def per_step_unit(spec: DataSpec) -> str | None:
    """The name of the bits column of a variable-length fit, None for any other:
    ``bits/token`` for a token or a 0/1 value per step, ``bits/step`` for one real value
    per step, ``bits/dim`` (per value of a step) for vector steps."""
    if not spec.variable_length:
        return None
    if spec.step_dims > 1:
        return "bits/dim"
    return "bits/token" if spec.is_discrete else "bits/step"
