"""`compare` on table data: the synthetic-table metrics as columns, and honest NLLs."""

from __future__ import annotations

import pytest

import ptheta
from ptheta.data import groundtruth_table as gt
from ptheta.eval import compare as cmp
from ptheta.eval.synth import TABLE_METRIC_KEYS, table_quality
from ptheta.runs.store import load_run

N_SAMPLES = 300


@pytest.fixture(scope="module")
def data():
    return ptheta.datasets.load("groundtruth-table")


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp-table")
    models = "independent,bayesian-network"
    return out, cmp.compare(data, models, out, budget_seconds=30, n_samples=N_SAMPLES)


def test_rows_carry_the_table_metrics_of_the_saved_runs_samples(data, report):
    out, rep = report
    assert rep["feature_space"] == cmp.TABLE_SPACE
    rows = {r["model"]: r for r in rep["rows"]}
    for name, row in rows.items():
        assert row["status"] == "ok" and row["units"] == "mixed"
        assert not set(cmp.METRIC_KEYS) & set(row)  # no image-feature metrics on a table
        model = load_run(out / row["run_dir"])
        again = table_quality(model.sample(N_SAMPLES, random_state=0), data, seed=0)
        for key in TABLE_METRIC_KEYS:
            assert row[key] == (
                again[key] if isinstance(again[key], bool) else pytest.approx(again[key])
            ), (name, key)
    bn, ind = rows["bayesian-network"], rows["independent"]
    # the network models the dependence that the independent model cannot
    assert bn["pair_diff"] < 0.5 * ind["pair_diff"]
    assert bn["auc_boosting"] < 0.6 < ind["auc_boosting"]


def test_the_network_is_near_the_known_floor_and_below_independent(data, report):
    _, rep = report
    rows = {r["model"]: r for r in rep["rows"]}
    truth = -gt.log_prob(data.test.x).mean()  # the data's own model on the same test rows
    bn, ind = rows["bayesian-network"]["test_nll_nats"], rows["independent"]["test_nll_nats"]
    assert truth - 0.01 < bn < truth + 0.05
    assert bn < ind - 1.0
    assert rep["true_entropy"] == pytest.approx(gt.entropy())
    assert [r["model"] for r in rep["rows"]] == ["bayesian-network", "independent"]


def test_the_table_and_markdown_show_the_synth_columns(report):
    out, rep = report
    columns = cmp.table_columns(rep["feature_space"], rep.get("per_step_unit"))
    assert columns[-5:] == ["col. fidelity", "pair |Δ|", "AUC logistic", "AUC boosting",
                            "DCR share (holdout)"]  # fmt: skip
    cells = cmp.table_rows(rep)
    assert all(len(c) == len(columns) for c in cells)
    bn = next(r for r in rep["rows"] if r["model"] == "bayesian-network")
    share = f"{bn['dcr_share']:.1%} ({bn['dcr_share_holdout']:.1%})"
    assert cells[0][-1] == share + (" COPYING" if bn["copying"] else "")
    text = (out / cmp.REPORT_MD).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "pair \\|Δ\\|" in header and header.count(" | ") == len(columns) - 1
    assert cmp.TABLE_METRICS_NOTE in text and cmp.MIXED_NOTE in text


def test_a_second_compare_reuses_the_rows(data, report):
    out, rep = report
    again = cmp.compare(
        data, "independent,bayesian-network", out, budget_seconds=30, n_samples=N_SAMPLES
    )
    assert all(r["cached"] for r in again["rows"])
    for a, b in zip(rep["rows"], again["rows"], strict=True):
        assert {k: a[k] for k in TABLE_METRIC_KEYS} == {k: b[k] for k in TABLE_METRIC_KEYS}


def test_failed_and_copying_rows_are_shown_as_such():
    failed = cmp._failed_row("gmm", ValueError("no"), TABLE_METRIC_KEYS)
    assert set(TABLE_METRIC_KEYS) <= set(failed) and not set(cmp.METRIC_KEYS) & set(failed)
    ok = {**failed, "status": "ok", "likelihood": "exact", "units": "mixed",
          "test_nll_nats": 10.0, "test_nll_sem": 0.1, "test_nll_bits_per_dim": 2.0,
          "column_fidelity": 0.01, "pair_diff": 0.02, "auc_logistic": 0.5,
          "auc_boosting": 0.55, "dcr_share": 0.2, "dcr_share_holdout": 0.05,
          "copying": True}  # fmt: skip
    rep = {"feature_space": cmp.TABLE_SPACE, "rows": [ok, failed]}
    good, bad = cmp.table_rows(rep)
    assert good[-5:] == ["0.010", "0.020", "0.500", "0.550", "20.0% (5.0%) COPYING"]
    assert bad[-5:] == [None] * 5 and bad[2] == "failed"
