"""Per-sequence and per-step NLL of variable-length sequences through eval and compare.

The stand-in families of ``fake_sequences.py`` have closed-form likelihoods, so the
per-step numbers are checked against a hand computation from the fitted parameters and
the lengths, not against the code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fake_sequences import FakeIID, registered  # tests/eval/fake_sequences.py

from ptheta.data import sequence_dataset
from ptheta.errors import DataError
from ptheta.eval import compare as cmp
from ptheta.eval.per_step import per_step_unit
from ptheta.models import make
from ptheta.runs.fitting import evaluate_run, scores_table
from ptheta.runs.store import load_run

P = np.array([0.5, 0.2, 0.1, 0.1, 0.1])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    seqs = [rng.choice(5, size=rng.integers(1, 12), p=P) for _ in range(200)]
    return sequence_dataset(seqs, name="tokens", seed=0)


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    with registered():
        names = "test-iid-seq,test-uniform-seq,independent"
        yield out, cmp.compare(data, names, out, budget_seconds=5, n_samples=20)


def _hand_log_p(model: FakeIID, seqs: list[np.ndarray]) -> np.ndarray:
    """log p(x, L) by a plain loop: one factor per token, one per 'go on', one end."""
    theta, q = np.exp(model.log_theta_), model.q_
    out = []
    for s in seqs:
        total = sum(math.log(theta[int(t)]) for t in s)
        total += (len(s) - 1) * math.log(1 - q) + math.log(q)
        out.append(total)
    return np.array(out)


def test_eval_rows_per_step_equal_a_hand_computation(data):
    with registered():
        model = make("test-iid-seq").fit(data.train)
        rows = evaluate_run(model, data, ["val", "test"])
    for row in rows:
        split = data.split(row["split"])
        seqs = split.sequences.to_list()
        log_p = _hand_log_p(model, seqs)
        n_steps = sum(len(s) for s in seqs) + len(seqs)  # each end counts as a step
        assert row["n"] == len(seqs) and row["n_steps"] == n_steps
        assert row["nll_nats"] == pytest.approx(-log_p.mean(), rel=1e-12)
        assert row["nll_per_step"] == pytest.approx(-log_p.sum() / n_steps, rel=1e-12)
        assert row["bits_per_dim"] == pytest.approx(-log_p.sum() / n_steps / math.log(2))


def test_scores_table_passes_the_lengths_and_ignores_the_padding(data):
    with registered():
        model = make("test-iid-seq").fit(data.train)
        cols = scores_table(model, data, "test")
        seqs = data.test.sequences.to_list()
        np.testing.assert_array_equal(cols["length"], [len(s) for s in seqs])
        np.testing.assert_allclose(cols["log_prob"], _hand_log_p(model, seqs), rtol=1e-12)
        # one sequence scored alone: the same number as in the padded batch
        alone = model.score_samples([seqs[0]])
        assert alone[0] == pytest.approx(cols["log_prob"][0], rel=1e-12)


def test_a_fixed_shape_model_is_not_scored_on_sequences(data):
    model = make("independent").fit(np.random.default_rng(0).integers(0, 5, (50, 11)))
    with pytest.raises(DataError, match=r"sequences of 1-11 steps.*one fixed shape"):
        evaluate_run(model, data, ["test"])
    with pytest.raises(DataError, match="one fixed shape"):
        scores_table(model, data, "test")


def test_compare_rows_have_the_per_step_nll(report, data):
    out, rep = report
    assert rep["variable_length"] is True and rep["per_step_unit"] == "bits/token"
    rows = {r["model"]: r for r in rep["rows"]}
    n_steps = data.test.sequences.n_steps + len(data.test)
    with registered():
        for name in ("test-iid-seq", "test-uniform-seq"):
            r = rows[name]
            model = load_run(out / r["run_dir"])
            log_p = _hand_log_p(model, data.test.sequences.to_list())
            assert r["status"] == "ok" and r["test_n_steps"] == n_steps
            assert r["test_nll_nats"] == pytest.approx(-log_p.mean(), rel=1e-12)
            assert r["test_nll_per_step"] == pytest.approx(-log_p.sum() / n_steps, rel=1e-12)
            assert r["test_nll_bits_per_dim"] == pytest.approx(r["test_nll_per_step"] / math.log(2))
    # the fitted frequencies beat uniform tokens on skewed data; best row first
    assert rep["rows"][0]["model"] == "test-iid-seq"
    assert rows["test-iid-seq"]["test_nll_per_step"] < rows["test-uniform-seq"]["test_nll_per_step"]
    # a family of fixed-length examples named on the command line: a failed row, its reason
    assert rows["independent"]["status"] == "failed"
    assert "one fixed shape" in rows["independent"]["error"]
    # no sample metrics for sequences, and the report says why
    assert rep["feature_space"] is None and "variable-length" in rep["metrics_note"]
    assert json.loads((out / "report.json").read_text())["per_step_unit"] == "bits/token"


def test_compare_table_has_the_per_step_columns(report):
    out, rep = report
    cols = cmp.table_columns(rep["feature_space"], rep["per_step_unit"])
    assert cols[3:6] == ["NLL (nats/seq.) ± s.e.", "nats/step", "bits/token"]
    cells = {row[0]: row for row in cmp.table_rows(rep)}
    r = next(r for r in rep["rows"] if r["model"] == "test-iid-seq")
    assert cells["test-iid-seq"][4] == f"{r['test_nll_per_step']:.3f}"
    assert len(cells["test-iid-seq"]) == len(cols)
    assert any("each sequence's end" in note for note in cmp.table_notes(rep))
    md = (out / "report.md").read_text()
    assert "| nats/step | bits/token |" in md and (out / "samples/test-iid-seq.png").is_file()
    # other data keep their table
    old = cmp.table_columns("FD-digits")
    assert old[3:5] == ["NLL (nats) ± s.e.", "bits/dim"] and len(old) == len(cols) - 1


def test_all_and_demo_skip_fixed_length_families(data):
    with registered():
        for lineup in ("all", "demo"):
            names, skipped = cmp.select_models(lineup, data)
            assert "test-iid-seq" in names and "independent" not in names
            reasons = {s["model"]: s["reason"] for s in skipped}
            assert reasons["independent"] == cmp.FIXED_LENGTH_SKIPPED


def test_per_step_unit_names_the_bits_column():
    from ptheta.data import DataSpec

    assert per_step_unit(DataSpec("binary", (9,), variable_length=True)) == "bits/token"
    assert per_step_unit(DataSpec("continuous", (9,), variable_length=True)) == "bits/step"
    assert per_step_unit(DataSpec("binary", (9, 4), variable_length=True)) == "bits/dim"
    assert per_step_unit(DataSpec("categorical", (9,), 3)) is None
