"""`ptheta synth` end to end on a tiny CSV table, through click's test runner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.cli.clirun import run


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 150
    colour = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame({
        "colour": colour,
        "size": np.round(rng.normal(size=n) + (colour == "red"), 3),
        "legs": rng.poisson(2, n),
        "ok": np.where(rng.random(n) < 0.3, "yes", "no"),
    })  # fmt: skip
    frame.loc[::10, "size"] = np.nan
    path = tmp_path_factory.mktemp("data") / "pets.csv"
    frame.to_csv(path, index=False)
    return path


def test_synth_writes_rows_with_the_tables_labels_and_a_report(csv, tmp_path):
    out, md, js = tmp_path / "synth.csv", tmp_path / "report.md", tmp_path / "report.json"
    runs = tmp_path / "run"
    text = run("synth", str(csv), "--model", "independent", "--out", str(out), "--report",
               str(md), "--report", str(js), "--run-dir", str(runs), "--quiet").output  # fmt: skip
    for piece in ("Synthetic data quality: independent on pets.csv", "detection AUC",
                  "held-out log-likelihood", "exact, mixed units", "colour – size"):  # fmt: skip
        assert piece in text, piece
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["colour", "size", "legs", "ok"]
    assert len(rows) == 150  # default: as many rows as the data
    assert set(rows["colour"]) <= {"red", "green", "blue"} and set(rows["ok"]) <= {"yes", "no"}
    assert rows["legs"].dtype.kind == "i" and (rows["legs"] >= 0).all()
    report = json.loads(js.read_text())
    assert (report["model"], report["n_synthetic"], report["n_train"]) == ("independent", 150, 120)
    assert report["n_holdout"] == 15 and report["likelihood"]["likelihood"] == "exact"
    assert 0 <= report["detection"]["boosting"]["auc"] <= 1
    assert [c["metric"] for c in report["columns"]] == ["tv", "ks", "ks", "tv"]
    assert md.read_text().startswith("# Synthetic data quality: independent on pets.csv")
    assert (runs / "COMPLETE").is_file()  # a kept run directory, complete


def test_synth_draws_n_rows_into_parquet(csv, tmp_path):
    out = tmp_path / "synth.parquet"
    run("synth", str(csv), "--model", "independent", "-n", "40", "--seed", "3", "--out",
        str(out), "--data-seed", "1", "--quiet")  # fmt: skip
    rows = pd.read_parquet(out)
    assert len(rows) == 40 and list(rows.columns) == ["colour", "size", "legs", "ok"]
    assert rows["colour"].dtype == "category"  # labels kept as a categorical


def test_synth_errors_are_one_line(csv, tmp_path):
    out = str(tmp_path / "s.csv")
    (tmp_path / "notes.txt").write_text("not a run")
    for args, match in [
        (["--model", "gmm", "--out", out], "does not model tables"),
        (["--model", "naive-bayes", "--out", out], "needs class labels"),
        (["--model", "independnt", "--out", out], "did you mean 'independent'"),
        (["--model", "independent", "--out", str(tmp_path / "s.npy")], ".csv or .parquet"),
        (["--model", "independent", "--out", out, "--report", "r.txt"], ".md or .json"),
        (["--model", "independent", "--out", out, "--set", "alpha=-1"], "alpha"),
        (["--model", "independent", "--out", out, "--run-dir", str(tmp_path)], "not empty"),
    ]:
        result = run("synth", str(csv), *args, ok=False)
        assert match in result.output, (args, result.output)
    assert "no such file" in run("synth", str(tmp_path / "none.csv"), "--model",
                                 "independent", "--out", out, ok=False).output  # fmt: skip
