"""The sequence view: which families it shows, their per-step NLL by hand, their samples
and state paths, through the Python API and the HTTP API."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ptheta
from ptheta.errors import ParameterError
from ptheta.explorer import sequence_view as sv
from ptheta.explorer.views import budget


@pytest.fixture(scope="module")
def words():
    return ptheta.datasets.load(sv.SEQUENCE_DATA)


@pytest.fixture(scope="module")
def view(explorer, sequence_fakes):
    return explorer.sequences(n=5, seed=2)


def test_the_families_follow_capabilities(sequence_fakes):
    names = sv.sequence_models()
    assert {"test-iid-seq", "test-uniform-seq", "test-states-seq"} <= set(names)
    for name in names:  # every one models sequences of any length; none of fixed length
        caps = ptheta.REGISTRY[name]().capabilities()
        assert caps.variable_length and caps.fits("categorical")
    assert "independent" not in names and "gmm" not in names
    # the families with a state path come first
    with_states = [sv.has_state_path(n) for n in names]
    assert with_states == sorted(with_states, reverse=True) and with_states[0]


def _hand_nll(model, seqs) -> tuple[float, float]:
    """NLL per sequence and per step (each end a step) from the fitted parameters."""
    theta, q = np.exp(model.log_theta_), model.q_
    log_p = [
        sum(math.log(theta[int(t)]) for t in s) + (len(s) - 1) * math.log(1 - q) + math.log(q)
        for s in seqs
    ]
    steps = sum(len(s) for s in seqs) + len(seqs)
    return -float(np.mean(log_p)), -float(np.sum(log_p)) / steps


def test_nll_per_step_samples_and_states_are_the_models(view, explorer, words, sequence_fakes):
    rows = {m["model"]: m for m in view["models"]}
    test = words.test.sequences
    assert view["n_test"] == len(test) and view["test_steps"] == test.n_steps + len(test)
    assert view["per_step_unit"] == "bits/token" and "end" in view["note"]
    vocab = words.extra["vocab"]
    for name in ("test-iid-seq", "test-uniform-seq", "test-states-seq"):
        row = rows[name]
        model = explorer.cache.get("sequences", words.name, name, budget(name, True), None)
        per_seq, per_step = _hand_nll(model, test.to_list())
        assert row["test_nll_nats"] == pytest.approx(per_seq, rel=1e-10)
        assert row["test_nll_per_step"] == pytest.approx(per_step, rel=1e-10)
        assert row["test_bits_per_step"] == pytest.approx(per_step / math.log(2), rel=1e-10)
        drawn = model.sample(5, random_state=2)
        assert [s["tokens"] for s in row["samples"]] == [s.tolist() for s in drawn]
        assert [s["text"] for s in row["samples"]] == ["".join(vocab[t] for t in s) for s in drawn]
        if name == "test-states-seq":  # first half state 0, the rest 1, one per step
            assert row["has_states"] and row["n_states"] == 2
            for s in row["samples"]:
                n = len(s["tokens"])
                assert s["states"] == [int(t >= (n + 1) // 2) for t in range(n)]
        else:
            assert not row["has_states"] and all(s["states"] is None for s in row["samples"])
    assert rows["test-iid-seq"]["test_nll_per_step"] < rows["test-uniform-seq"]["test_nll_per_step"]
    assert [o["text"] for o in view["observed"]] == [
        "".join(vocab[t] for t in s) for s in test[: sv.N_OBSERVED]
    ]


def test_bad_arguments_are_one_clear_error(explorer, sequence_fakes):
    for n in (0, sv.MAX_SEQUENCE_SAMPLES + 1, 2.5):
        with pytest.raises(ParameterError, match="n must be a whole number"):
            explorer.sequences(n=n)
    with pytest.raises(ParameterError, match="seed"):
        explorer.sequences(seed=-1)


def test_the_endpoint(explorer_client, sequence_fakes, view):
    answer = explorer_client.get("/api/sequences", params={"n": 5, "seed": 2})
    assert answer.status_code == 200
    assert answer.json()["models"][0]["samples"] == view["models"][0]["samples"]
    bad = explorer_client.get("/api/sequences", params={"n": 0})
    assert bad.status_code == 400 and "n must be" in bad.json()["error"]
