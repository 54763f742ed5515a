"""What a model can do, as one frozen record: the only thing code outside ``models/`` asks.

Every model answers :meth:`~ptheta.models.base.GenerativeModel.capabilities` with a
:class:`Capabilities`. Its fields start from the family's class defaults and are
overridden where a hyper-parameter decides (``class_conditional=True`` makes a MADE
classify; a flow on discrete data reports a dequantised likelihood after fit). The CLI,
``compare``, the explorer and the evaluation code branch on these fields, never on a
family's name or on ``hasattr``.

Example:
    >>> caps = Capabilities(likelihood="exact", data_kinds=("binary",))
    >>> caps.likelihood, caps.classifies
    ('exact', False)
    >>> caps.fits("continuous")
    False
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LIKELIHOOD_KINDS: tuple[str, ...] = ("exact", "bound", "estimate", "none")
# Where an anomaly score comes from: -log p, an energy, minus a GAN's discriminator, or the
# norm of a learned score field (a model with no likelihood and no energy).
ANOMALY_SOURCES: tuple[str, ...] = ("log_prob", "energy", "discriminator", "score_norm")
# How ``sample_paths`` moves from noise to data: Langevin chains along a score field, or an
# ordinary / stochastic differential equation integrated in time.
SAMPLE_PATHS: tuple[str, ...] = ("langevin", "ode", "sde")


@dataclass(frozen=True)
class Capabilities:
    """What one model (with its hyper-parameters, fitted or not) can do.

    Attributes:
        likelihood: what ``score_samples`` returns on the data kinds the family models
            natively: ``"exact"``, ``"bound"`` (a lower bound on log p for every example),
            ``"estimate"`` (stochastic, with a standard error) or ``"none"``.
        fitted_likelihood: the same after fit, for the data it was fitted on (a
            continuous density on discrete data reports a dequantised quantity); None
            before fit.
        units: ``"discrete"`` (log-probabilities), ``"continuous"`` (log-densities) or
            ``"mixed"`` (a table with discrete and continuous columns: the log of a
            probability times a density, comparable only with models of the same table)
            after fit; None before.
        dequantised: after fit, whether the model is a continuous density of dequantised
            discrete data (its discrete-unit likelihood goes through the dequantisation).
        data_kinds: the data kinds ``fit`` accepts.
        dequantises_discrete: discrete data are modelled as a continuous density of
            dequantised values (flows, gmm), so the likelihood on them is not exact.
        needs_labels: ``fit`` requires ``y``.
        needs_image: examples must be images (C, H, W), or flat with an image shape.
        needs_sequence: examples are sequences (an ordered axis the model reads in order).
        variable_length: ``fit`` and ``score_samples`` take sequences of different lengths
            (:class:`~ptheta.data.ragged.Sequences`, a list of arrays), ``sample`` returns
            `Sequences`, and a sequence's probability includes its length (the end of
            the sequence is an event the model scores).
        class_conditional: ``sample(n, y=...)`` draws from p(x | y).
        classifies: ``predict_proba`` / ``predict`` by Bayes' rule.
        marginalises: ``score_samples`` takes NaN for missing entries and returns the
            exact log-marginal of the observed ones.
        imputes: ``impute`` and ``sample(given=...)`` fill missing entries.
        fits_missing: ``fit`` takes NaN for missing entries and maximises the likelihood
            of the observed ones (EM over the missing).
        streams: ``fit`` reads its data a batch at a time (a memory-mapped file, a folder
            of shards, a table read in batches: a :class:`~ptheta.data.stream.Source`),
            never all at once; classical families sum statistics over batches, neural ones
            train through a DataLoader. Under ``torchrun`` each process reads its share.
        trains_in_steps: fitted by gradient steps through the Trainer: ``fit`` accepts
            ``validation_data``, ``run_dir`` and ``resume``; ``max_time`` bounds it;
            ``verbose`` shows progress.
        validation_measures_fit: the validation loss measures fit (early stopping may
            use it); False for GAN and EBM, whose losses do not.
        anomaly_score: where an anomaly score comes from (``"log_prob"``, ``"energy"``,
            ``"discriminator"``, ``"score_norm"``: the norm of the learned score field,
            ``score_norm(X)``), or None.
        generates_sequences: ``generate(n, temperature=, top_k=, prompt=)``.
        state_path: ``viterbi(X)`` gives each sequence's most probable hidden state path,
            (N, T) ints, −1 after each end of variable-length sequences.
        exports_structure: ``to_dot()`` draws a learned graph.
        embeds: ``embed(X)`` returns a representation per example.
        closed_form: ``closed_form()`` returns the fitted distribution in a form with
            closed-form entropy and KL (factorised discrete or Gaussian), or None.
        random_state: the family takes a ``random_state`` hyper-parameter.
        can_condition: the family has a ``class_conditional`` hyper-parameter (it can be
            switched on to model p(x | y)).
        progress: the family takes a ``verbose`` hyper-parameter (a progress bar).
        partial_flows: ``n_flow_layers()``, ``partial_log_prob(X, k)`` and
            ``partial_sample(n, k)`` give the density after the first k of the flow's L
            sampling layers (the base at k = 0, the fitted model at k = L).
        score_field: ``score_field(X)`` returns the learned score ∇ₓ log p(x) at the
            smallest noise level (same shape as X); the family documents the keyword
            that picks another level (``sigma=`` for NCSN, ``t=`` for SDE models).
        sample_paths: ``sample_paths(n_samples, n_frames=, random_state=)`` returns the
            sampler's path from noise to data, (n_frames, n_samples, *event_shape), by
            ``"langevin"`` dynamics, an ``"ode"`` or an ``"sde"``; None where absent.
    """

    likelihood: str = "none"
    fitted_likelihood: str | None = None
    units: str | None = None
    dequantised: bool = False
    data_kinds: tuple[str, ...] = ()
    dequantises_discrete: bool = False
    needs_labels: bool = False
    needs_image: bool = False
    needs_sequence: bool = False
    variable_length: bool = False
    class_conditional: bool = False
    classifies: bool = False
    marginalises: bool = False
    imputes: bool = False
    fits_missing: bool = False
    streams: bool = False
    trains_in_steps: bool = False
    validation_measures_fit: bool = True
    anomaly_score: str | None = "log_prob"
    generates_sequences: bool = False
    state_path: bool = False
    exports_structure: bool = False
    embeds: bool = False
    closed_form: bool = False
    random_state: bool = False
    can_condition: bool = False
    progress: bool = False
    partial_flows: bool = False
    score_field: bool = False
    sample_paths: str | None = None

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOOD_KINDS:
            raise ValueError(
                f"likelihood must be one of {LIKELIHOOD_KINDS}, got {self.likelihood!r}"
            )
        if self.anomaly_score is not None and self.anomaly_score not in ANOMALY_SOURCES:
            raise ValueError(
                f"anomaly_score must be one of {ANOMALY_SOURCES} or None, "
                f"got {self.anomaly_score!r}"
            )
        if self.sample_paths is not None and self.sample_paths not in SAMPLE_PATHS:
            raise ValueError(
                f"sample_paths must be one of {SAMPLE_PATHS} or None, got {self.sample_paths!r}"
            )

    @property
    def has_likelihood(self) -> bool:
        """Whether ``score_samples`` answers at all (any kind but ``"none"``)."""
        return self.likelihood != "none"

    def fits(self, kind: str) -> bool:
        """Whether ``fit`` accepts data of ``kind`` (``binary``, ``categorical``, ...)."""
        return kind in self.data_kinds

    def replace(self, **changes: Any) -> Capabilities:
        """A copy with ``changes`` (a hyper-parameter's or a fit's override)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able values (for ``ptheta models --json``, the explorer)."""
        out = dataclasses.asdict(self)
        out["data_kinds"] = list(self.data_kinds)
        return out

    def flags(self) -> list[str]:
        """The true boolean abilities as short words, for tables."""
        words = {
            "classifies": "classify",
            "class_conditional": "sample|y",
            "marginalises": "marginalise",
            "imputes": "impute",
            "fits_missing": "fits missing",
            "streams": "streams",
            "trains_in_steps": "steps",
            "generates_sequences": "generate",
            "variable_length": "any length",
            "exports_structure": "graph",
            "embeds": "embed",
        }
        return [word for field, word in words.items() if getattr(self, field)]
