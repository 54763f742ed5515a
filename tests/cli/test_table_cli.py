"""`ptheta fit / sample / score` on a table of typed columns, end to end: a CSV with a
schema file in, samples out as a CSV with the same columns and labels, rows scored with
the fitted columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from clirun import run  # tests/cli/clirun.py

import ptheta
from ptheta.data.table import encode

GRADES = ["low", "mid", "high"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A CSV of mixed columns with missing cells, a schema file, and a run fitted on them."""
    root = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n),
            "member": rng.choice(["yes", "no"], n),
            "grade": rng.choice(GRADES, n),
            "visits": rng.poisson(3.0, n),
            "price": np.round(rng.gamma(3.0, 2.0, n), 2),
        }
    )
    frame.loc[3, "colour"] = None
    frame.loc[7, "price"] = np.nan
    frame.to_csv(root / "shop.csv", index=False)
    schema = [
        {"name": "grade", "type": "ordinal", "levels": GRADES},
        {"name": "price", "type": "continuous", "lower": 0},
    ]
    (root / "schema.json").write_text(json.dumps(schema))
    run("fit", "independent", "--data", str(root / "shop.csv"), "--schema",
        str(root / "schema.json"), "--out", str(root / "run"), "--quiet")  # fmt: skip
    return root, frame, ptheta.load(root / "run")


def test_the_fit_reads_the_schema(fitted):
    _, _, model = fitted
    columns = model.fitted_spec.columns
    assert [c.type for c in columns] == ["categorical", "binary", "ordinal", "count", "continuous"]
    assert columns[2].levels == tuple(GRADES) and columns[4].lower == 0.0
    assert model.units_ == "mixed"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_samples_come_back_as_a_table_with_the_same_columns(fitted, suffix):
    root, frame, model = fitted
    out = root / f"synth{suffix}"
    run("sample", str(root / "run"), "-n", "300", "--out", str(out), "--seed", "2")
    synth = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(synth.columns) == list(frame.columns)
    assert set(synth["colour"]) <= {"red", "green", "blue"}  # strings in, strings out
    assert set(synth["grade"]) <= set(GRADES)
    assert synth["visits"].dtype.kind == "i" and synth["visits"].min() >= 0  # whole counts
    assert synth["price"].min() >= 0
    # the file is the model's own draws, decoded: encoding it back gives them exactly
    drawn = model.sample(300, random_state=2)
    np.testing.assert_array_equal(encode(synth, model.fitted_spec.columns), drawn)
    if suffix == ".parquet":  # the order of an ordinal travels with the file
        assert synth["grade"].cat.ordered and list(synth["grade"].cat.categories) == GRADES
    # and it loads again as a table of the same columns with the run's schema
    again = ptheta.data.load(out, schema=str(root / "schema.json"))
    assert [c.type for c in again.spec.columns] == [c.type for c in model.fitted_spec.columns]


def test_score_encodes_rows_with_the_fitted_columns(fitted):
    root, frame, model = fitted
    rows = frame.iloc[[0, 3, 7, 9]]
    rows.to_csv(root / "rows.csv", index=False)
    run("score", str(root / "run"), "--data", str(root / "rows.csv"), "--out",
        str(root / "scores.csv"))  # fmt: skip
    scores = pd.read_csv(root / "scores.csv")
    assert scores["index"].tolist() == [0, 1, 2, 3]  # every row, in file order
    expected = model.score_samples(encode(rows, model.fitted_spec.columns))
    np.testing.assert_allclose(scores["log_prob"], expected, rtol=1e-9)
    # a missing cell is marginalised: the row with no price scores its other columns only
    assert np.isfinite(scores["log_prob"]).all()
    # the run's own data: its test split, read with the fitted columns
    run("score", str(root / "run"), "--out", str(root / "test.csv"))
    data = ptheta.data.load(root / "shop.csv", schema=str(root / "schema.json"))
    test = pd.read_csv(root / "test.csv")
    np.testing.assert_allclose(test["log_prob"], model.score_samples(data.test.x), rtol=1e-9)


def test_bad_rows_are_one_clear_error(fitted):
    root, frame, _ = fitted
    bad = frame.iloc[:3].copy()
    bad.loc[1, "colour"] = "purple"
    bad.to_csv(root / "bad.csv", index=False)
    result = run("score", str(root / "run"), "--data", str(root / "bad.csv"), "--out",
                 str(root / "s.csv"), ok=False)  # fmt: skip
    assert "column 'colour'" in result.output and "'purple'" in result.output
    negative = frame.iloc[:3].copy()
    negative.loc[0, "visits"] = -1
    negative.to_csv(root / "neg.csv", index=False)
    result = run("score", str(root / "run"), "--data", str(root / "neg.csv"), "--out",
                 str(root / "s.csv"), ok=False)  # fmt: skip
    assert "negative count -1" in result.output
    (root / "broken.json").write_text('[{"name": "grade", "type": "ordinal", "levels": 3}]')
    result = run("fit", "independent", "--data", str(root / "shop.csv"), "--schema",
                 str(root / "broken.json"), "--out", str(root / "r2"), ok=False)  # fmt: skip
    assert "levels of column 'grade' must be a list" in result.output


def test_score_reads_label_columns_as_their_text(tmp_path):
    """A run fitted on a Parquet file whose labels look like numbers ('01', '02', '10')
    scores the same rows written as a CSV, where pandas alone would read 1, 2 and 10."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"zip": rng.choice(["01", "02", "10"], 60), "v": rng.poisson(2.0, 60)})
    frame.to_parquet(tmp_path / "zips.parquet")
    frame.to_csv(tmp_path / "zips.csv", index=False)
    run("fit", "independent", "--data", str(tmp_path / "zips.parquet"), "--out",
        str(tmp_path / "run"), "--quiet")  # fmt: skip
    run("score", str(tmp_path / "run"), "--data", str(tmp_path / "zips.csv"), "--out",
        str(tmp_path / "scores.csv"))  # fmt: skip
    model = ptheta.load(tmp_path / "run")
    expected = model.score_samples(encode(frame, model.fitted_spec.columns))
    scores = pd.read_csv(tmp_path / "scores.csv")["log_prob"]
    np.testing.assert_allclose(scores, expected, rtol=1e-9)
