"""The explorer's sequence view: models of variable-length sequences side by side.

On a data set of variable-length token sequences (:data:`SEQUENCE_DATA`, words), every
family with an "explorer" preset that models sequences of any length
(``capabilities().variable_length``) is fitted once and shown with its NLL on the test
split, per sequence and per step (each sequence's end counts as a step: the models score
where a word stops), and with sequences sampled from it. A latent-state model also gives
the most probable state path (Viterbi) of each of its samples, drawn as the colours
under the letters: the latent variable of the sequence made visible, next to an
observed Markov chain and a recurrent network fitted on the same words, which have none.

Which families appear is derived from their capabilities, in registry order; none is
named here. A family "has a state path" when it offers ``viterbi`` (its fitted model's
most probable hidden states, padded with −1 after each end).

Example:
    >>> bits_per_token(2.0 * math.log(2))
    2.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import ptheta
from ptheta.data import Dataset
from ptheta.data.ragged import Sequences
from ptheta.eval.per_step import END_NOTE, per_step_unit
from ptheta.models import Capabilities, GenerativeModel

SEQUENCE_DATA = "unicode-words"
MAX_SEQUENCE_SAMPLES = 32
N_OBSERVED = 12  # test sequences shown as the data's own examples


def has_state_path(name: str) -> bool:
    """Whether family ``name`` (with its "explorer" preset) gives the most probable hidden
    state path of a sequence (``capabilities().state_path``)."""
    from ptheta.explorer.views import capabilities

    return capabilities(name).state_path


def _models_sequences(caps: Capabilities) -> bool:
    """Fits variable-length token sequences without labels, with a likelihood to report."""
    return (
        caps.variable_length
        and caps.fits("categorical")
        and not caps.needs_labels
        and caps.likelihood != "none"
    )


def sequence_models() -> list[str]:
    """The sequence view's families: an "explorer" preset, variable-length token sequences,
    no labels needed; in registry order (the first with a state path is drawn first)."""
    from ptheta.explorer.views import _explorer_families

    names = _explorer_families(_models_sequences)
    return sorted(names, key=lambda n: not has_state_path(n))  # stable: registry order kept


def bits_per_token(nats_per_step: float) -> float:
    """Nats per step in bits."""
    return nats_per_step / math.log(2)


def _load_sequence_data() -> Dataset:
    return ptheta.datasets.load(SEQUENCE_DATA)


def _decode(vocab: list[str] | None, tokens: np.ndarray) -> str | None:
    if vocab is None:
        return None
    return "".join(vocab[int(t)] for t in tokens)


class SequenceViews:
    """The sequence view's endpoint, mixed into :class:`~ptheta.explorer.views.Explorer`
    (which provides ``cache``, ``quick`` and ``_once``)."""

    def _sequence_model(self, name: str, data: Dataset) -> GenerativeModel:
        from ptheta.explorer.views import _fit_builtin, budget

        params = budget(name, self.quick)
        fit = _fit_builtin(name, params, data)
        return self.cache.get("sequences", data.name, name, params, fit)

    def _sequence_scores(self, name: str) -> dict[str, Any]:
        """Test NLL of one model, per sequence and per step (computed once)."""

        def compute() -> dict[str, Any]:
            data = _load_sequence_data()
            model = self._sequence_model(name, data)
            summary = model.nll_summary(data.test)
            return {
                "model": name,
                "family": type(model).family,
                "likelihood": model.likelihood_,
                "units": model.units_,
                "test_nll_nats": summary["nll_nats"],
                "test_nll_sem": summary["std_err"],
                "test_nll_per_step": summary["nll_per_step"],
                "test_bits_per_step": summary["bits_per_dim"],
                "n_parameters": model.n_parameters(),
                "has_states": has_state_path(name),
            }

        return self._once(("sequence-scores", name), compute)

    def sequences(self, *, n: int = 12, seed: int = 0) -> dict[str, Any]:
        """Every sequence model's test NLL (per sequence and per step) and ``n`` sequences
        sampled from it with ``seed``, decoded, with the most probable state path of each
        where the model has one; and ``n_observed`` test sequences of the data.

        Returns:
            ``{"data", "description", "vocab", "per_step_unit", "n_test", "test_steps",
            "note", "seed", "observed": [{"tokens", "text"}], "models": [{"model",
            "likelihood", "test_nll_nats", "test_nll_per_step", "test_bits_per_step", ...,
            "n_states", "samples": [{"tokens", "text", "states"}]}]}``; ``states`` is None
            for a model without a state path, else one state per step.
        """
        from ptheta.explorer.views import _check_int, _need

        n = _check_int("n", n, 1, MAX_SEQUENCE_SAMPLES)
        seed = _check_int("seed", seed, 0, 2**32 - 1)
        names = sequence_models()
        _need("sequence view's model (a family of variable-length sequences)",
              names[0] if names else None)  # fmt: skip
        data = _load_sequence_data()
        vocab = data.extra.get("vocab")
        rows = []
        for name in names:
            row = dict(self._sequence_scores(name))
            model = self._sequence_model(name, data)
            drawn: Sequences = model.sample(n, random_state=seed)
            states = None
            if row["has_states"]:
                states = np.asarray(model.viterbi(drawn))  # (n, T), −1 after each end
                row["n_states"] = int(states.max()) + 1 if states.size else 0
                if hasattr(model, "n_states"):
                    row["n_states"] = int(model.n_states)
            row["samples"] = [
                {
                    "tokens": seq.tolist(),
                    "text": _decode(vocab, seq),
                    "states": None if states is None else states[i, : len(seq)].tolist(),
                }
                for i, seq in enumerate(drawn)
            ]
            rows.append(row)
        test = data.test.sequences
        observed = [
            {"tokens": s.tolist(), "text": _decode(vocab, s)}
            for s in test[: min(N_OBSERVED, len(test))]
        ]
        return {
            "data": data.name,
            "description": data.description,
            "vocab": vocab,
            "per_step_unit": per_step_unit(data.spec),
            "n_test": len(test),
            "test_steps": test.n_steps + len(test),
            "note": END_NOTE,
            "seed": seed,
            "observed": observed,
            "models": rows,
        }
