"""The table data kind: schema inference and overrides, encoding round trips (DataFrame,
CSV, Parquet), one clear error per bad input, the spec, and the built-in tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import ptheta.data as data
from ptheta.data import groundtruth_table
from ptheta.data.arrays import SPLIT_NAMES, split_indices
from ptheta.data.spec import DataSpec, Split, as_array, check_values
from ptheta.data.table import (
    ColumnSpec,
    decode,
    encode,
    infer_schema,
    parse_schema,
    read_schema,
    table_dataset,
)
from ptheta.errors import DataError

GRADES = ["low", "mid", "high"]


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Text, yes/no, an ordered grade, counts, reals; a few missing cells."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n),
            "member": rng.choice(["yes", "no"], n),
            "grade": pd.Categorical(rng.choice(GRADES, n), categories=GRADES, ordered=True),
            "visits": rng.poisson(3.0, n),
            "price": rng.gamma(3.0, 2.0, n),
        }
    )
    frame.loc[2, "colour"] = None
    frame.loc[5, "grade"] = np.nan
    frame.loc[7, "price"] = np.nan
    return frame


def _same_rows(decoded: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Cell by cell: labels as text, counts as whole numbers, reals; missing where missing."""
    assert list(decoded.columns) == list(frame.columns)
    for name in frame.columns:
        a, b = decoded[name], frame[name].reset_index(drop=True)
        np.testing.assert_array_equal(a.isna().to_numpy(), b.isna().to_numpy())
        seen = ~b.isna().to_numpy()
        if b.dtype.kind == "f":
            np.testing.assert_array_equal(a.to_numpy(float)[seen], b.to_numpy(float)[seen])
        else:
            assert [str(v) for v in a[seen]] == [str(v) for v in b[seen]], name


# --------------------------------------------------------------------------- round trips
def test_frame_round_trip_keeps_labels_order_counts_and_missing_cells():
    frame = _frame()
    columns = infer_schema(frame)
    assert [c.type for c in columns] == ["categorical", "binary", "ordinal", "count", "continuous"]
    assert columns[2].levels == tuple(GRADES)  # an ordered category keeps its order
    x = encode(frame, columns)
    assert x.dtype == np.float64 and x.shape == (40, 5)
    assert np.isnan(x).sum() == 3
    decoded = decode(x, columns)
    _same_rows(decoded, frame)
    assert decoded["colour"].dtype == "category"
    assert decoded["grade"].cat.ordered and list(decoded["grade"].cat.categories) == GRADES
    assert (decoded["grade"].dropna() >= "mid").sum() == frame["grade"].isin(["mid", "high"]).sum()
    assert str(decoded["visits"].dtype) == "Int64"
    # the codes of the ordinal follow its levels: low < mid < high
    grades = frame["grade"].astype(object)
    seen = grades.notna().to_numpy()
    np.testing.assert_array_equal(x[seen, 2], [GRADES.index(g) for g in grades[seen]])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip_by_split(tmp_path, suffix):
    frame = _frame(n=60)
    path = tmp_path / f"shop{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    schema = [{"name": "grade", "type": "ordinal", "levels": GRADES}]  # CSV holds no order
    d = data.load(path, schema=schema, seed=3)
    assert d.kind == "table" and d.spec.units == "mixed"
    assert [c.name for c in d.spec.columns] == list(frame.columns)
    assert d.spec.columns[2].levels == tuple(GRADES)
    for name, rows in zip(SPLIT_NAMES, split_indices(len(frame), 3), strict=True):
        _same_rows(decode(d.split(name).x, d.spec.columns), frame.iloc[rows])
    # samples written back to the same format read back the same
    out = tmp_path / f"again{suffix}"
    decoded = decode(d.train.x, d.spec.columns)
    decoded.to_csv(out, index=False) if suffix == ".csv" else decoded.to_parquet(out)
    again = data.load(out, schema=d.spec.columns, seed=0)
    assert again.spec == d.spec


def test_a_text_csv_is_a_table_and_a_numeric_csv_keeps_its_kind(tmp_path):
    numeric = tmp_path / "n.csv"
    numeric.write_text("a,b\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(20)))
    assert data.load(numeric).kind == "categorical"
    table = data.load(numeric, kind="table")
    assert [c.type for c in table.spec.columns] == ["count", "binary"]
    text = tmp_path / "t.csv"
    text.write_text("a,b,label\n" + "".join(f"{i % 3},{'xy'[i % 2]},{i % 4}\n" for i in range(20)))
    d = data.load(text, label_column="label")
    assert d.kind == "table" and [c.name for c in d.spec.columns] == ["a", "b"]
    assert d.classes == ["0", "1", "2", "3"] and d.train.y.dtype == np.int64
    with pytest.raises(DataError, match=r"column 'b'.*kind='table'"):
        data.load(text, kind="continuous", label_column="label")


def test_blank_na_and_nan_cells_are_missing(tmp_path):
    path = tmp_path / "m.csv"
    rows = ["a,b,c"] + ["x,1,0.5", "y,,NaN", "NA,2,1.5", " ,3,", "x,NA,2.5"] * 2
    path.write_text("\n".join(rows) + "\n")
    d = data.load(path, kind="table")
    x = np.concatenate([d.split(s).x for s in SPLIT_NAMES])
    assert np.isnan(x).sum(axis=0).tolist() == [4, 4, 4]


# --------------------------------------------------------------------------- inference
def test_inference_rules():
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, True],
            "two": [3, 7, 7, 3],
            "count": [0, 4, 2, 9],
            "signed": [-1, 0, 2, 5],
            "real": [0.5, 1.0, 2.0, 0.5],
            "text": ["10", "9", "2", "9"],
        }
    )
    cols = {c.name: c for c in infer_schema(frame)}
    assert cols["flag"] == ColumnSpec("flag", "binary", ("False", "True"))
    assert cols["two"] == ColumnSpec("two", "binary", ("3", "7"))
    assert cols["count"].type == "count"
    assert cols["signed"].type == "continuous" and cols["real"].type == "continuous"
    assert cols["real"].lower is None  # bounds are never guessed
    assert cols["text"].levels == ("2", "9", "10")  # numbers sort as numbers


@pytest.mark.parametrize(
    ("column", "match"),
    [
        (["a", "a", None], "one value \\('a'\\)"),
        ([None, None, None], "no observed value"),
        ([3.0, 3.0, 3.0], "one value \\('3'\\)"),
    ],
)
def test_uninformative_columns_are_refused_by_name(column, match):
    frame = pd.DataFrame({"ok": [1, 2, 3], "bad": pd.Series(column, dtype=object)})
    if all(isinstance(v, float) for v in column):
        frame["bad"] = np.array(column)
    with pytest.raises(DataError, match=f"column 'bad' .*{match}"):
        infer_schema(frame)


def test_identifiers_are_refused():
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(300)], "n": range(300)})
    with pytest.raises(DataError, match=r"column 'id' has 300 distinct labels.*identifier"):
        infer_schema(frame)


# --------------------------------------------------------------------------- overrides
def test_schema_file_overrides_only_the_columns_named(tmp_path):
    frame = pd.DataFrame(
        {
            "size": ["S", "M", "L", "M"],
            "n": [0, 1, 1, 0],
            "w": [1.5, 2.5, 0.5, 3.0],
            "k": [3, 1, 2, 1],
        }
    )
    path = tmp_path / "schema.json"
    schema = {
        "columns": [
            {"name": "size", "type": "ordinal", "levels": ["S", "M", "L", "XL"]},
            {"name": "n", "type": "count"},
            {"name": "w", "type": "continuous", "lower": 0},
            {"name": "k", "type": "ordinal"},  # numeric labels: sorted as numbers
        ]
    }
    path.write_text(json.dumps(schema))
    cols = infer_schema(frame, read_schema(path))
    assert cols[0].levels == ("S", "M", "L", "XL") and cols[0].type == "ordinal"
    assert cols[1].type == "count"  # inferred binary without the override
    assert cols[2].lower == 0.0 and cols[3].levels == ("1", "2", "3")
    assert encode(frame, cols)[:, 0].tolist() == [0, 1, 2, 1]
    assert infer_schema(frame, read_schema(path)[:1])[1].type == "binary"  # partial


def test_declared_label_columns_of_a_csv_keep_their_text(tmp_path):
    """A CSV column the schema declares a label column is read as its text: '01' stays
    '01' (pandas alone parses it as the number 1). Columns fitted on numbers or booleans
    that pandas parsed (levels '0' / '5', 'False' / 'True') still match their cells written
    as '0.0' or 'true' when the file is read again with the fitted columns, as runs do."""
    zips = ["01", "02", "10", "02"] * 5
    rows = [f"{z},{'true' if i % 3 else 'false'},{5.0 * (i % 2)}" for i, z in enumerate(zips)]
    path = tmp_path / "zips.csv"
    path.write_text("zip,flag,n\n" + "\n".join(rows) + "\n")
    declared = [{"name": "zip", "type": "categorical", "levels": ["01", "02", "10"]}]
    d = data.load(path, schema=declared, seed=0)
    x = np.concatenate([d.split(s).x for s in SPLIT_NAMES])
    rows_in_order = np.concatenate(split_indices(len(zips), 0))
    assert x[:, 0].tolist() == [["01", "02", "10"].index(zips[i]) for i in rows_in_order]
    # levels read from the text, sorted as numbers, and written back as text
    inferred = data.load(path, schema=[{"name": "zip", "type": "categorical"}])
    assert inferred.spec.columns[0].levels == ("01", "02", "10")
    assert set(decode(inferred.train.x, inferred.spec.columns)["zip"]) <= {"01", "02", "10"}
    # the other columns were inferred from pandas' numbers and booleans; read again with
    # every fitted column declared, their cells give the same codes
    assert [c.levels for c in d.spec.columns[1:]] == [("False", "True"), ("0", "5")]
    again = data.load(path, schema=d.spec.columns, seed=0)
    np.testing.assert_array_equal(again.train.x, d.train.x)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"cols": []}', "keys \\['cols'\\]"),
        ('[{"name": "a", "type": "text"}]', "column 'a' has the unknown type 'text'"),
        ('[{"name": "a", "type": "count", "levels": ["x"]}]', "count and takes no levels"),
        ('[{"name": "a", "type": "binary", "levels": ["x", "y", "z"]}]', "exactly 2"),
        ('[{"name": "a", "type": "count", "scale": 2}]', "unknown field\\(s\\) \\['scale'\\]"),
        ('[{"name": "a", "type": "count"}, {"name": "a", "type": "count"}]', "twice"),
        ('[{"name": "a", "type": "continuous", "lower": 2, "upper": 1}]', "lower=2 >= upper=1"),
        ('[{"type": "count"}]', "needs a name and a type"),
    ],
)
def test_bad_schema_files_are_one_clear_error(tmp_path, content, match):
    path = tmp_path / "schema.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_schema(path)


def test_overrides_that_do_not_fit_the_data_are_refused():
    frame = pd.DataFrame({"grade": ["low", "high", "mid"], "n": [1, 2, 3]})
    with pytest.raises(DataError, match=r"ordinal without its levels.*in order"):
        infer_schema(frame, [{"name": "grade", "type": "ordinal"}])
    with pytest.raises(DataError, match="declared binary but holds 3"):
        infer_schema(frame, [{"name": "grade", "type": "binary"}])
    with pytest.raises(DataError, match=r"\['nope'\] that the table lacks"):
        infer_schema(frame, [{"name": "nope", "type": "count"}])
    with pytest.raises(DataError, match="'n' of the table is count but holds the non-number"):
        encode(pd.DataFrame({"n": ["3", "many"]}), [ColumnSpec("n", "count")])


# --------------------------------------------------------------------------- bad input
COLUMNS = (
    ColumnSpec("colour", "categorical", ("blue", "green", "red")),
    ColumnSpec("visits", "count"),
    ColumnSpec("price", "continuous", lower=0.0, upper=100.0),
)
SPEC = DataSpec("table", (3,), columns=COLUMNS)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"colour": "purple", "visits": 1, "price": 2.0}, "'colour'.*label 'purple'.*levels"),
        ({"colour": "red", "visits": -2, "price": 2.0}, "'visits'.*negative count -2"),
        ({"colour": "red", "visits": 1.5, "price": 2.0}, "'visits'.*non-whole value 1.5"),
        ({"colour": "red", "visits": 1, "price": -0.5}, "'price'.*-0.5, below its lower bound"),
        ({"colour": "red", "visits": 1, "price": 101.0}, "'price'.*101, above its upper bound"),
        ({"colour": "red", "visits": 1, "price": np.inf}, "infinite values in column 'price'"),
    ],
)
def test_bad_cells_are_one_clear_error_naming_the_column(row, match):
    with pytest.raises(DataError, match=match):
        check_values(pd.DataFrame([row]), SPEC, allow_nan=True)


def test_encoded_rows_are_checked_per_column():
    with pytest.raises(DataError, match=r"'colour'.*code 3.*codes 0..2"):
        check_values(np.array([[3.0, 1.0, 2.0]]), SPEC)
    with pytest.raises(DataError, match=r"missing \(NaN\) cells .*'visits'"):
        check_values(np.array([[0.0, np.nan, 2.0]]), SPEC, allow_nan=False)
    ok = check_values(np.array([[0, 1, 2]]), SPEC, allow_nan=True)
    assert ok.dtype == np.float64
    other = DataSpec("table", (3,), columns=(*COLUMNS[:2], ColumnSpec("price", "continuous")))
    with pytest.raises(DataError, match="other columns"):
        check_values(Split(ok, None, other), SPEC)


# --------------------------------------------------------------------------- the spec
def test_spec_json_round_trip_and_fixed_kinds_unchanged():
    assert DataSpec.from_json(json.loads(json.dumps(SPEC.to_json()))) == SPEC
    assert SPEC.to_json()["columns"][2] == {
        "name": "price", "type": "continuous", "lower": 0.0, "upper": 100.0
    }  # fmt: skip
    assert "columns" not in DataSpec("binary", (4,)).to_json()
    assert SPEC.describe() == "table of 3 columns (1 categorical, 1 count, 1 continuous)"
    assert not SPEC.is_discrete and SPEC.units == "mixed" and SPEC.n_dims == 3
    assert DataSpec("table", (1,), columns=COLUMNS[:1]).units == "discrete"
    assert DataSpec("table", (1,), columns=COLUMNS[2:]).units == "continuous"
    with pytest.raises(DataError, match=r"event shape \(3,\)"):
        DataSpec("table", (4,), columns=COLUMNS)
    with pytest.raises(DataError, match="need columns"):
        DataSpec("table", (3,))
    with pytest.raises(DataError, match="lack their levels"):
        DataSpec("table", (1,), columns=[{"name": "a", "type": "ordinal"}])
    with pytest.raises(DataError, match="only table data have columns"):
        DataSpec("continuous", (3,), columns=COLUMNS)
    assert parse_schema({"columns": [c.to_json() for c in COLUMNS]}) == COLUMNS


# --------------------------------------------------------------------------- built-ins
def test_groundtruth_table_entropy_matches_monte_carlo():
    d = data.load("groundtruth-table")
    x = groundtruth_table.sample(200_000, np.random.default_rng(7))
    nll = -d.log_density(x)
    se = nll.std() / np.sqrt(len(nll))
    assert abs(nll.mean() - d.entropy) < 4 * se, (nll.mean(), d.entropy, se)
    assert se < 0.01  # a test that can tell an error of a few hundredths of a nat


def test_groundtruth_table_factors_are_normalised_and_their_entropies_exact():
    rate = groundtruth_table.VISITOR_RATE
    exact = [stats.poisson(r).entropy() for r in rate]
    np.testing.assert_allclose([groundtruth_table.poisson_entropy(r) for r in rate], exact)
    mean, std = groundtruth_table.SPEND_MEAN, groundtruth_table.SPEND_STD
    h = groundtruth_table.truncated_normal_entropy(mean, std, 0.0)
    for m, s, value in zip(mean, std, h, strict=True):
        dist = stats.truncnorm(-m / s, 50.0, loc=m, scale=s)
        numeric = integrate.quad(lambda v, d=dist: -d.pdf(v) * d.logpdf(v), 0, m + 50 * s)[0]
        assert value == pytest.approx(numeric, abs=1e-7)
    # log p(x) of one row summed over the discrete columns and integrated over the reals
    row = groundtruth_table.sample(1, np.random.default_rng(0))[0]
    grid = np.linspace(-40.0, 60.0, 20_001)
    rows = np.repeat(row[None], len(grid), axis=0)
    rows[:, 5] = grid
    by_temp = np.exp(groundtruth_table.log_prob(rows)).sum() * (grid[1] - grid[0])
    rows[:, 5] = row[5]
    rows[:, 6] = np.linspace(0.0, 200.0, 20_001)
    by_spend = np.exp(groundtruth_table.log_prob(rows)).sum() * (200.0 / 20_000)
    one = np.exp(groundtruth_table.log_prob(row[None]))[0]
    # integrating one real column out leaves the probability of the rest times the other
    # density: the ratio to the full density is 1 / p(that column | parents)
    temp_density = stats.norm(
        groundtruth_table.TEMP_MEAN[int(row[0]), int(row[3])],
        groundtruth_table.TEMP_STD[int(row[0])],
    ).pdf(row[5])
    assert by_temp == pytest.approx(one / temp_density, rel=1e-6)
    assert by_spend == pytest.approx(one / np.exp(_spend_log_pdf(row)), rel=1e-4)


def _spend_log_pdf(row: np.ndarray) -> float:
    b = int(row[2])
    m, s = groundtruth_table.SPEND_MEAN[b], groundtruth_table.SPEND_STD[b]
    return float(stats.truncnorm(-m / s, np.inf, loc=m, scale=s).logpdf(row[6]))


def test_affairs_is_a_real_table_with_labels_and_missing_cells():
    d = data.load("affairs")
    names = [c.name for c in d.spec.columns]
    assert names[:2] == ["rate_marriage", "age"] and names[-2:] == ["any_affairs", "affairs"]
    frame = decode(d.train.x, d.spec.columns)
    assert set(frame["rate_marriage"].dropna()) <= {
        "very poor",
        "poor",
        "fair",
        "good",
        "very good",
    }
    assert frame["rate_marriage"].cat.ordered
    # the time in affairs is missing exactly where there were none
    np.testing.assert_array_equal(frame["affairs"].isna(), frame["any_affairs"] == "no")
    assert (frame["affairs"].dropna() > 0).all()
    with pytest.raises(DataError, match=r"schema apply to the user's own files.*'affairs'"):
        data.load("affairs", schema=[])
    with pytest.raises(DataError, match="cannot be read as continuous"):
        data.load("affairs", kind="continuous")


def test_table_dataset_refuses_a_schema_for_the_label_column():
    frame = pd.DataFrame({"a": ["x", "y"] * 5, "y": [0, 1] * 5})
    with pytest.raises(DataError, match="label column 'y'"):
        table_dataset(frame, label_column="y", schema=[{"name": "y", "type": "count"}])


def test_a_frame_with_text_columns_passed_as_an_array_points_at_table_dataset():
    import ptheta
    from ptheta.errors import DataError

    frame = pd.DataFrame({"a": pd.Categorical(["x", "y"] * 10), "b": [0, 1, 1, 0] * 5})
    with pytest.raises(DataError, match=r"table_dataset\(frame\)"):
        ptheta.make("bayesian-network").fit(frame)
    with pytest.raises(DataError, match="must be numeric"):  # not a frame: the general fix
        as_array(np.array([["x", "y"]], dtype=object))
    table = data.table_dataset(frame)  # what the message says works
    model = ptheta.make("bayesian-network", structure="a -> b").fit(table.train)
    answer = model.query("b", evidence={"a": "x"})
    assert len(answer) == 2 and answer["probability"].sum() == pytest.approx(1.0, abs=1e-12)
