"""Synthetic-table quality metrics (ptheta.eval.synth) on hand-made tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ptheta
from ptheta.data.table import ColumnSpec, encode, infer_schema
from ptheta.errors import DataError, ParameterError
from ptheta.eval import synth


def mixed_table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Four dependent columns of four types: colour drives size and legs, size drives w."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    size = rng.normal(size=n) + 1.5 * (colour == "red") + shift
    legs = rng.poisson(np.where(colour == "blue", 4, 1))
    w = np.where(rng.random(n) < 0.8, size * 2 + rng.normal(size=n), np.nan)  # 20% missing
    big = np.where(size > 1, "yes", "no")
    return pd.DataFrame({"colour": colour, "size": size, "legs": legs, "w": w, "big": big})


@pytest.fixture(scope="module")
def real():
    return mixed_table(300, seed=0)


@pytest.fixture(scope="module")
def columns(real):
    return infer_schema(real)


# --------------------------------------------------------------------------- columns
def test_identical_tables_have_zero_distances_everywhere(real, columns):
    assert [c.type for c in columns] == ["categorical", "continuous", "count", "continuous",
                                         "binary"]  # fmt: skip
    fid = synth.column_fidelity(real, real.copy())
    assert [c["metric"] for c in fid] == ["tv", "ks", "ks", "ks", "tv"]
    assert all(c["statistic"] == 0 and c["missing_diff"] == 0 for c in fid)
    assert fid[3]["missing_real"] == pytest.approx(np.isnan(real["w"]).mean())
    pairs = synth.pairwise_association(real, real.copy())
    assert len(pairs["pairs"]) == 10 and pairs["mean_abs_diff"] == 0
    # every measure occurs and is non-trivial, so a zero difference is not a zero value
    measures = {(p["a"], p["b"]): (p["measure"], p["real"]) for p in pairs["pairs"]}
    assert measures[("colour", "big")][0] == "cramers_v"
    assert measures[("colour", "size")][0] == "eta"
    assert measures[("size", "w")][0] == "correlation"
    assert all(abs(v) > 0.3 for key, (_, v) in measures.items()
               if key in [("colour", "big"), ("colour", "size"), ("size", "w")])  # fmt: skip


def test_ks_statistic_equals_scipys_two_sample_ks(real):
    moved = mixed_table(200, seed=1, shift=0.7)
    fid = {c["column"]: c for c in synth.column_fidelity(real, moved)}
    want = stats.ks_2samp(real["size"], moved["size"]).statistic
    assert fid["size"]["statistic"] == pytest.approx(want, abs=1e-12)
    assert fid["size"]["statistic"] > 0.2
    # a count column: many ties, evaluated at every observed value
    want = stats.ks_2samp(real["legs"], moved["legs"]).statistic
    assert fid["legs"]["statistic"] == pytest.approx(want, abs=1e-12)
    # missing cells are left out of the marginal; their rate is compared apart
    w_real, w_moved = real["w"].dropna(), moved["w"].dropna()
    assert fid["w"]["statistic"] == pytest.approx(stats.ks_2samp(w_real, w_moved).statistic)
    # and the function itself, on random samples with ties and of unequal sizes
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = rng.integers(0, 6, 37), rng.integers(1, 8, 53)
        assert synth.ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_total_variation_by_hand():
    columns = [ColumnSpec("k", "categorical", ("a", "b", "c"))]
    real = pd.DataFrame({"k": ["a", "a", "b", "c"]})  # (.5, .25, .25)
    fake = pd.DataFrame({"k": ["a", "b", "b", "b"]})  # (.25, .75, 0)
    [fid] = synth.column_fidelity(real, fake, columns)
    assert fid["statistic"] == pytest.approx(0.5 * (0.25 + 0.5 + 0.25))
    # disjoint levels: 1; a column missing from one table entirely: 1 and a missing rate of 1
    assert synth.total_variation(np.array([0, 0]), np.array([1, 2]), 3) == 1.0
    empty = pd.DataFrame({"k": [None, None]})
    [fid] = synth.column_fidelity(real, empty, columns)
    assert fid["statistic"] == 1.0 and fid["missing_diff"] == 1.0


# --------------------------------------------------------------------------- pairs
def test_cramers_v_by_hand_and_against_scipy():
    # table [[20, 10], [5, 15]]: expected [[15, 15], [10, 10]], χ² = 25/15·2 + 25/10·2
    a = np.repeat([0, 0, 1, 1], [20, 10, 5, 15])
    b = np.repeat([0, 1, 0, 1], [20, 10, 5, 15])
    chi2 = 2 * 25 / 15 + 2 * 25 / 10
    assert synth.cramers_v(a, b) == pytest.approx(math.sqrt(chi2 / 50))
    assert synth.cramers_v(a, a) == pytest.approx(1.0)
    assert synth.cramers_v(a, np.zeros_like(a)) == 0.0  # one level: no association
    rng = np.random.default_rng(0)
    for r, c in [(3, 4), (5, 2)]:
        x, y = rng.integers(0, r, 200), rng.integers(0, c, 200)
        y = np.where(rng.random(200) < 0.4, x % c, y)
        table = np.array([[np.sum((x == i) & (y == j)) for j in range(c)] for i in range(r)])
        want = stats.contingency.association(table, method="cramer", correction=False)
        assert synth.cramers_v(x, y) == pytest.approx(want)
    # codes that skip a level (unused) do not change V
    assert synth.cramers_v(a * 2, b + 3) == pytest.approx(synth.cramers_v(a, b))


def test_correlation_ratio_by_hand():
    codes = np.array([0, 0, 1, 1, 1])
    values = np.array([1.0, 3.0, 4.0, 5.0, 6.0])
    # mean 3.8; SS_total = 14.8; level means 2 and 5: SS_between = 2·1.8² + 3·1.2² = 10.8
    assert synth.correlation_ratio(codes, values) == pytest.approx(math.sqrt(10.8 / 14.8))
    assert synth.correlation_ratio(codes, np.full(5, 2.0)) == 0.0


def test_pair_measures_match_scipy_and_differences_are_absolute(real, columns):
    moved = mixed_table(250, seed=2, shift=0.5)
    moved["w"] = -moved["w"]  # flips the size–w correlation
    for method, fn in [("spearman", stats.spearmanr), ("pearson", stats.pearsonr)]:
        out = synth.pairwise_association(real, moved, method=method, n_worst=3)
        pair = next(p for p in out["pairs"] if (p["a"], p["b"]) == ("size", "w"))
        both = real[["size", "w"]].dropna()
        assert pair["real"] == pytest.approx(fn(both["size"], both["w"])[0])
        both = moved[["size", "w"]].dropna()
        assert pair["synthetic"] == pytest.approx(fn(both["size"], both["w"])[0])
        assert pair["diff"] == pytest.approx(abs(pair["real"] - pair["synthetic"]))
        assert out["worst"][0] == pair and len(out["worst"]) == 3  # the flip is the worst
        diffs = [p["diff"] for p in out["pairs"]]
        assert out["mean_abs_diff"] == pytest.approx(np.mean(diffs))
    x = encode(real, columns)
    eta = next(p for p in out["pairs"] if (p["a"], p["b"]) == ("colour", "legs"))
    assert eta["real"] == pytest.approx(synth.correlation_ratio(x[:, 0], x[:, 2]))


# --------------------------------------------------------------------------- detection
def test_detection_auc_is_half_for_the_same_distribution_and_high_for_a_shift(real):
    same = synth.detection_auc(real, real.copy(), seed=0)
    for name in synth.CLASSIFIERS:  # identical rows share a fold: exactly 0.5
        assert same[name]["auc"] == pytest.approx(0.5, abs=1e-12)
        assert len(same[name]["folds"]) == 5
    fresh = synth.detection_auc(real, mixed_table(300, seed=5), seed=1)
    assert all(abs(fresh[name]["auc"] - 0.5) < 0.1 for name in synth.CLASSIFIERS)
    shifted = mixed_table(300, seed=6, shift=1.5)
    moved = synth.detection_auc(real, shifted, seed=1, classifiers=["logistic"])
    assert moved["logistic"]["auc"] > 0.8 and "boosting" not in moved
    # balanced: the larger table is subsampled to the smaller one's size
    assert synth.detection_auc(real, shifted.iloc[:100], classifiers=["logistic"])[
        "n_per_class"] == 100  # fmt: skip


def test_detection_sees_a_broken_dependence_that_the_marginals_hide(real, columns):
    # each column shuffled on its own: identical marginals, no dependence left
    rng = np.random.default_rng(0)
    big = mixed_table(1000, seed=7)
    shuffled = big.apply(lambda col: col.sample(frac=1, random_state=rng).to_numpy())
    fid = synth.column_fidelity(big, shuffled)
    assert max(c["statistic"] for c in fid) == 0
    out = synth.detection_auc(big, shuffled, seed=0, classifiers=["boosting"])
    assert out["boosting"]["auc"] > 0.75


def test_detection_features_one_hot_standardise_and_flag_missing(real, columns):
    x = encode(real, columns)
    f = synth.detection_features(x, columns, x)
    # colour (3) + size (1) + legs (1) + w (1) + w missing (1) + big (2)
    assert f.shape == (len(x), 9)
    np.testing.assert_array_equal(f[:, :3].sum(axis=1), 1)
    assert f[:, 3].mean() == pytest.approx(0, abs=1e-12) and f[:, 3].std() == pytest.approx(1)
    np.testing.assert_array_equal(f[:, 6], np.isnan(x[:, 3]))
    assert np.all(f[np.isnan(x[:, 3]), 5] == 0)


# --------------------------------------------------------------------------- privacy
def test_nearest_gower_equals_a_brute_force_loop(columns):
    a = encode(mixed_table(7, seed=8), columns)
    b = encode(mixed_table(9, seed=9, shift=20.0), columns)  # far beyond the range: clipped
    a[0, 0] = b[2, 3] = a[4, 2] = np.nan
    ranges = synth.gower_ranges(b, columns)
    wanted = []
    for u in a:
        best = math.inf
        for v in b:
            total = 0.0
            for j, col in enumerate(columns):
                if np.isnan(u[j]) or np.isnan(v[j]):
                    total += 0.0 if np.isnan(u[j]) and np.isnan(v[j]) else 1.0
                elif col.type in ("binary", "categorical", "ordinal"):
                    total += float(u[j] != v[j])
                else:
                    total += min(1.0, abs(u[j] - v[j]) / ranges[j])
            best = min(best, total / len(columns))
        wanted.append(best)
    got = synth.nearest_gower(a, b, columns, ranges)
    np.testing.assert_allclose(got, wanted, rtol=1e-12)
    assert synth.nearest_gower(b[:3], b, columns, ranges).tolist() == [0, 0, 0]
    assert got.min() >= 0 and got.max() <= 1


def test_dcr_flags_copies_of_training_rows_and_passes_fresh_rows(columns):
    train, holdout = mixed_table(400, seed=10), mixed_table(100, seed=11)
    copies = train.sample(300, replace=True, random_state=0)
    out = synth.distance_to_closest_record(train, holdout, copies, seed=0)
    assert out["copying"] and out["share_synthetic"] == 1.0 and out["exact_synthetic"] == 1.0
    assert out["median_synthetic"] == 0 and out["median_ratio"] == 0 and out["p_value"] < 1e-6
    fresh = synth.distance_to_closest_record(train, holdout, mixed_table(300, seed=12))
    assert not fresh["copying"] and fresh["exact_synthetic"] == 0
    assert 0.7 < fresh["median_ratio"] < 1.4
    assert fresh["share_holdout"] == pytest.approx(0.05, abs=0.011)  # its own 5th percentile
    # half copies, half fresh rows: still flagged
    half = pd.concat([copies.iloc[:150], mixed_table(150, seed=13)], ignore_index=True)
    assert synth.distance_to_closest_record(train, holdout, half)["copying"]


def test_dcr_on_a_small_discrete_table_where_exact_repeats_are_natural():
    def discrete(n, seed):  # 4 dependent columns of 4 labels: most rows recur
        rng = np.random.default_rng(seed)
        z = rng.integers(0, 4, n)
        codes = {f"c{j}": np.where(rng.random(n) < 0.6, z, rng.integers(0, 4, n)) for j in range(4)}
        return pd.DataFrame({k: np.array(list("abcd"))[v] for k, v in codes.items()})

    train, holdout = discrete(400, 0), discrete(150, 1)
    fresh = synth.distance_to_closest_record(train, holdout, discrete(300, 2))
    # the threshold is 0 (over 5% of held-out rows repeat a training row): shares are of
    # exact repeats, about equal for fresh rows
    assert fresh["threshold"] == 0 and fresh["share_holdout"] > 0.5 and not fresh["copying"]
    assert fresh["share_holdout"] == fresh["exact_holdout"] and fresh["median_ratio"] is None
    copies = synth.distance_to_closest_record(train, holdout, train.sample(300, random_state=0))
    assert copies["share_synthetic"] == 1 and copies["copying"] and copies["odds_ratio"] > 10


# --------------------------------------------------------------------------- likelihood
def test_heldout_log_likelihood_is_the_models_mean_score(real, columns):
    data = ptheta.data.table_dataset(real)
    model = ptheta.make("independent").fit(data.train)
    out = synth.heldout_log_likelihood(model, data.test.x)
    test = data.test.x
    scores = model.score_samples(test)  # independent marginalises the missing cells
    assert out["mean"] == pytest.approx(scores.mean())
    assert out["std_err"] == pytest.approx(scores.std(ddof=1) / math.sqrt(len(scores)))
    assert (out["likelihood"], out["units"], out["n_scored"]) == ("exact", "mixed", len(test))
    assert out["per_column"] == pytest.approx(scores.mean() / 5)
    # the flat numbers a comparison of models shows: the report's, against the test split
    samples = model.sample(200, random_state=0)
    flat = synth.table_quality(samples, data, seed=0)
    report = synth.synth_report(data.train.x, data.test.x, samples, data.spec.columns)
    assert list(flat) == list(synth.TABLE_METRIC_KEYS)
    assert flat["auc_boosting"] == report["detection"]["boosting"]["auc"]
    assert flat["dcr_share"] == report["dcr"]["share_synthetic"] and flat["copying"] is False
    with pytest.raises(DataError, match="compares tables"):
        synth.table_quality(samples, ptheta.data.load("digits"))


def test_report_gathers_every_metric_and_writes_markdown(real, columns):
    train, holdout = real.iloc[:240], real.iloc[240:]
    fake = mixed_table(240, seed=20)
    report = synth.synth_report(train, holdout, fake, columns, seed=0)
    assert (report["n_train"], report["n_holdout"], report["n_synthetic"]) == (240, 60, 240)
    assert report["column_fidelity"] == pytest.approx(
        np.mean([c["statistic"] for c in synth.column_fidelity(train, fake, columns)])
    )
    assert report["likelihood"] is None
    text = synth.report_markdown(report)
    for piece in ("detection AUC, gradient boosting", "| colour | categorical | TV |",
                  "Cramér's V", "## Pairs with the largest"):  # fmt: skip
        assert piece in text, piece
    assert report["schema"][0] == {"name": "colour", "type": "categorical",
                                   "levels": ["blue", "green", "red"]}  # fmt: skip


# --------------------------------------------------------------------------- errors
def test_bad_input_is_one_clear_error(real, columns):
    x = encode(real, columns)
    with pytest.raises(DataError, match="pass columns"):
        synth.column_fidelity(x, x)
    with pytest.raises(DataError, match="lacks the column"):
        synth.column_fidelity(real, real.drop(columns="legs"))
    with pytest.raises(DataError, match="not one of its levels"):
        synth.column_fidelity(real, real.assign(colour="purple"))
    with pytest.raises(DataError, match=r"expected \(N, 5\)"):
        synth.column_fidelity(x, x[:, :3], columns)
    with pytest.raises(ParameterError, match="spearman"):
        synth.pairwise_association(real, real, method="kendall")
    for kwargs, match in [({"n_folds": 1}, "n_folds"), ({"classifiers": ["svm"]}, "svm"),
                          ({"seed": -1}, "seed"), ({"max_rows": 2}, "max_rows")]:  # fmt: skip
        with pytest.raises(ParameterError, match=match):
            synth.detection_auc(real, real, **kwargs)
    with pytest.raises(DataError, match="at least 5 rows"):
        synth.detection_auc(real, real.iloc[:3])
    with pytest.raises(ParameterError, match="quantile"):
        synth.distance_to_closest_record(real, real, real, quantile=1.0)


def test_one_column_pairs_and_constant_columns():
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 1.0, 1.0, 1.0]})
    columns = [ColumnSpec("a", "continuous"), ColumnSpec("b", "continuous")]
    out = synth.pairwise_association(frame, frame, columns)
    assert out["pairs"][0]["real"] == 0.0  # a constant column correlates with nothing
    single = synth.pairwise_association(frame[["a"]], frame[["a"]], columns[:1])
    assert single["pairs"] == [] and single["mean_abs_diff"] is None
