"""The Bayesian network on tables: labels, per-column levels, count and continuous leaves.

Every number is checked against an independent computation: scipy's distributions on the
fitted parameters, brute-force enumeration of the discrete configurations, grid integrals
of the continuous columns, hand-computed BIC.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from scipy.special import logsumexp

import ptheta
from ptheta.cli import cli
from ptheta.data.spec import DataSpec, Split
from ptheta.data.table import ColumnSpec, decode
from ptheta.errors import DataError, ParameterError
from ptheta.models.dag_search import FamilyScorer, Leaf

# --------------------------------------------------------------------------- a small network
COLUMNS = (
    ColumnSpec("A", "binary", ("no", "yes")),
    ColumnSpec("B", "categorical", ("x", "y", "z")),
    ColumnSpec("C", "ordinal", ("1", "2", "3", "4")),
    ColumnSpec("N", "count"),
    ColumnSpec("Y", "continuous"),
    ColumnSpec("Z", "continuous", lower=0.0),
)
EDGES = [["A", "B"], ["B", "C"], ["B", "N"], ["A", "Y"], ["C", "Y"], ["A", "Z"]]
SPEC = DataSpec("table", (6,), columns=COLUMNS)
P_B = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # | A
P_C = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.5, 0.3, 0.1], [0.05, 0.05, 0.3, 0.6]])  # | B
RATE = np.array([1.0, 4.0, 9.0])  # N | B
Y_MEAN = np.array([[-2.0, -1.0, 0.0, 1.0], [2.0, 3.0, 4.0, 6.0]])  # | A, C
Z_MEAN, Z_STD = np.array([0.5, 3.0]), np.array([1.0, 1.5])  # | A, truncated at 0


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.4).astype(int)
    b = (rng.random((n, 1)) > np.cumsum(P_B[a], axis=1)).sum(axis=1)
    c = (rng.random((n, 1)) > np.cumsum(P_C[b], axis=1)).sum(axis=1)
    count = rng.poisson(RATE[b])
    y = Y_MEAN[a, c] + 0.7 * rng.standard_normal(n)
    z = stats.truncnorm.rvs(-Z_MEAN[a] / Z_STD[a], np.inf, Z_MEAN[a], Z_STD[a], random_state=rng)
    return np.column_stack([a, b, c, count, y, z]).astype(np.float64)


@pytest.fixture(scope="module")
def fitted():
    x = _sample(3000, 0)
    model = ptheta.make("bayesian-network", structure=EDGES).fit(Split(x, None, SPEC))
    return model, x


def _by_hand(model, rows: np.ndarray) -> np.ndarray:
    """log p(row) of complete rows from ``cpts()`` alone, with scipy's distributions."""
    t = dict(zip(model.columns_, model.cpts(), strict=True))
    a, b, c = (rows[:, j].astype(int) for j in range(3))
    n, y, z = rows[:, 3], rows[:, 4], rows[:, 5]
    out = np.log(t["A"][a]) + np.log(t["B"][a, b]) + np.log(t["C"][b, c])
    out += stats.poisson.logpmf(n, t["N"][b, 0])
    out += stats.norm.logpdf(y, t["Y"][a, c, 0], np.sqrt(t["Y"][a, c, 1]))
    mean, std = t["Z"][a, 0], np.sqrt(t["Z"][a, 1])
    return out + stats.truncnorm.logpdf(z, -mean / std, np.inf, mean, std)


# --------------------------------------------------------------------------- likelihood
def test_scores_equal_the_fitted_factors_computed_with_scipy(fitted):
    model, x = fitted
    assert model.kinds_ == ["discrete"] * 3 + ["count", "continuous", "continuous"]
    assert model.cards_.tolist() == [2, 3, 4, 1, 1, 1]
    assert model.units_ == "mixed" and model.likelihood_ == "exact"
    np.testing.assert_allclose(model.score_samples(x[:200]), _by_hand(model, x[:200]), atol=1e-9)
    # parameters: 1 + 2·2 + 3·3 (tables) + 3 (Poisson) + 8·2 + 2·2 (Gaussians)
    assert model.n_parameters() == 1 + 4 + 9 + 3 + 16 + 4


def test_the_joint_sums_and_integrates_to_one_and_a_missing_cell_is_its_integral(fitted):
    model, x = fitted
    # Σ over every discrete configuration and count 0..60 of p(a, b, c, n) = 1 (Y, Z missing)
    grid = np.array(list(itertools.product(range(2), range(3), range(4), range(61))), float)
    rows = np.column_stack([grid, np.full((len(grid), 2), np.nan)])
    assert logsumexp(model.score_samples(rows)) == pytest.approx(0.0, abs=1e-9)
    # a missing continuous cell is the integral of the joint over it (Z has a bound at 0)
    ys, zs = np.linspace(-12, 14, 5201), np.linspace(0, 14, 2801)
    for row in x[:4]:
        without_z = row.copy()
        without_z[5] = np.nan
        filled = np.repeat(row[None], len(zs), axis=0)
        filled[:, 5] = zs
        integral = np.trapezoid(np.exp(model.score_samples(filled)), zs)
        assert np.log(integral) == pytest.approx(model.score_samples(without_z[None])[0], abs=1e-6)
        neither = without_z.copy()
        neither[4] = np.nan
        filled = np.repeat(without_z[None], len(ys), axis=0)
        filled[:, 4] = ys
        integral = np.trapezoid(np.exp(model.score_samples(filled)), ys)
        assert np.log(integral) == pytest.approx(model.score_samples(neither[None])[0], abs=1e-6)


def test_missing_parents_of_observed_leaves_are_summed_out_exactly(fitted):
    model, x = fitted
    for pattern in ([0], [1], [0, 2], [0, 1, 2]):
        for row in x[5:9]:
            partial = row.copy()
            partial[pattern] = np.nan
            levels = [range(int(model.cards_[j])) for j in pattern]
            filled = np.repeat(row[None], np.prod([len(v) for v in levels]), axis=0)
            filled[:, pattern] = list(itertools.product(*levels))
            brute = logsumexp(_by_hand(model, filled))
            assert model.score_samples(partial[None])[0] == pytest.approx(brute, abs=1e-9)


# --------------------------------------------------------------------------- queries
def test_queries_with_labels_equal_enumeration(fitted):
    model, _ = fitted
    evidence = {"C": "3", "Y": 1.3, "N": 5}
    table = model.query(["A", "B"], evidence=evidence)
    assert list(table.columns) == ["A", "B", "probability"]
    configs = [list(p) for p in itertools.product(["no", "yes"], "xyz")]
    assert table[["A", "B"]].values.tolist() == configs
    # brute force: every (a, b) with C = 3 (code 2), N = 5, Y = 1.3 and Z missing
    rows = np.array([[a, b, 2, 5, 1.3, np.nan] for a in range(2) for b in range(3)])
    joint = np.exp(model.score_samples(rows))
    np.testing.assert_allclose(table["probability"], joint / joint.sum(), atol=1e-12)
    best = model.map_query(["A", "B"], evidence=evidence)
    a, b = divmod(int(np.argmax(joint)), 3)
    assert best == {"A": ["no", "yes"][a], "B": "xyz"[b]}
    # the label columns are typed like their labels, and a table is the caller's: editing
    # one leaves the next query's labels as they were (the labels are computed once)
    for query in (["A", "B"], "B"):
        first = model.query(query, evidence=evidence)
        assert first["B"].dtype == pd.Series(list("xyz")).dtype
        first.iloc[0, 0] = first.iloc[-1, 0]
        first.loc[:, "B"] = "z"
        again = model.query(query, evidence=evidence)
        assert again["B"].tolist() == (list("xyzxyz") if len(query) == 2 else list("xyz"))
    # a number matches the label it is written as; a code is not a label
    np.testing.assert_allclose(
        model.query("A", evidence={"C": 3})["probability"],
        model.query("A", evidence={"C": "3"})["probability"],
    )
    with pytest.raises(DataError, match="no level 'w'"):
        model.query("A", evidence={"B": "w"})
    with pytest.raises(DataError, match="continuous column; queries ask for label columns"):
        model.query("Y")
    with pytest.raises(DataError, match="evidence on it must be such a number"):
        model.query("A", evidence={"Z": -1.0})
    with pytest.raises(DataError, match="evidence on it must be such a number"):
        model.query("A", evidence={"N": 2.5})


def test_mode_imputation_picks_the_most_probable_mixed_completion(fitted):
    model, x = fitted
    t = dict(zip(model.columns_, model.cpts(), strict=True))
    for row in x[10:16]:
        partial = row.copy()
        partial[[0, 5]] = np.nan  # A and its child Z
        filled = model.impute(partial[None], method="mode")[0]
        # brute force: each a with Z at its mode given a (the truncated Gaussian's mean)
        candidates = np.repeat(row[None], 2, axis=0)
        candidates[:, 0] = [0, 1]
        candidates[:, 5] = np.maximum(t["Z"][:, 0], 0.0)
        best = candidates[np.argmax(model.score_samples(candidates))]
        np.testing.assert_allclose(filled, best, atol=1e-12)


def test_a_missing_leaf_enters_the_mode_at_its_highest_density(fitted):
    model, x = fitted
    t = dict(zip(model.columns_, model.cpts(), strict=True))
    row = x[0].copy()
    row[[0, 5]] = np.nan  # A and Z missing; Y moves the odds of A across the range
    rows = np.repeat(row[None], 81, axis=0)
    rows[:, 4] = np.linspace(-3, 5, 81)
    filled = model.impute(rows, method="mode")
    decisions = []
    for r, f in zip(rows, filled, strict=True):
        joint = np.repeat(r[None], 2, axis=0)
        joint[:, 0] = [0, 1]
        without_z = model.score_samples(joint)  # Z integrated out: its factor is 1
        joint[:, 5] = np.maximum(t["Z"][:, 0], 0.0)  # Z at its mode given A
        best = int(np.argmax(model.score_samples(joint)))
        decisions.append(best != int(np.argmax(without_z)))
        assert f[0] == best and f[5] == pytest.approx(joint[best, 5])
    assert any(decisions), "some rows must need Z's density at its mode to decide A"


def test_em_uses_the_rows_where_a_leaf_s_parent_is_missing():
    # B is missing mostly where the count N (observed) is high: missing at random, and
    # the complete rows alone would underestimate N's rate given B
    x = _sample(4000, 8)
    rng = np.random.default_rng(9)
    holes = x.copy()
    holes[(x[:, 3] >= 6) & (rng.random(len(x)) < 0.8), 1] = np.nan
    fit = ptheta.make("bayesian-network", structure=EDGES).fit(Split(holes, None, SPEC))
    full = ptheta.make("bayesian-network", structure=EDGES).fit(Split(x, None, SPEC))
    complete = x[~np.isnan(holes[:, 1])]
    biased = [complete[complete[:, 1] == b, 3].mean() for b in range(3)]
    rate, truth = fit.cpts()[3][:, 0], full.cpts()[3][:, 0]
    np.testing.assert_allclose(rate, truth, rtol=0.05)
    assert biased[2] < 0.9 * truth[2]  # what ignoring those rows would give


def test_conditional_samples_match_the_exact_conditional_mean(fitted):
    model, x = fitted
    partial = x[20].copy()
    partial[[0, 4]] = np.nan  # Y given everything else but A
    drawn = model.sample(20000, given=partial[None], random_state=0)
    t = dict(zip(model.columns_, model.cpts(), strict=True))
    rows = np.repeat(partial[None], 2, axis=0)
    rows[:, 0] = [0, 1]
    post = np.exp(model.score_samples(rows))
    post /= post.sum()
    c = int(partial[2])
    mean = post @ t["Y"][:, c, 0]
    second = post @ (t["Y"][:, c, 1] + t["Y"][:, c, 0] ** 2)
    std_err = np.sqrt(second - mean**2) / np.sqrt(len(drawn))
    assert abs(drawn[:, 4].mean() - mean) < 4 * std_err
    assert abs(drawn[:, 0].mean() - post[1]) < 4 * np.sqrt(post[1] * post[0] / len(drawn))


def test_samples_are_valid_rows_of_the_table(fitted):
    model, _ = fitted
    s = model.sample(2000, random_state=1)
    assert s.dtype == np.float64 and s.shape == (2000, 6)
    assert np.all(s[:, 3] == np.round(s[:, 3])) and s[:, 3].min() >= 0
    assert s[:, 5].min() >= 0.0  # the bound of Z
    frame = decode(s, COLUMNS)
    assert set(frame["B"]) <= {"x", "y", "z"}
    # the Poisson rate of N given B is its sample mean
    rate = model.cpts()[3][:, 0]
    for b in range(3):
        counts = s[s[:, 1] == b, 3]
        assert abs(counts.mean() - rate[b]) < 4 * np.sqrt(rate[b] / len(counts))


# --------------------------------------------------------------------------- scores, search
def test_bic_of_count_and_continuous_families_equals_a_hand_computation():
    rng = np.random.default_rng(3)
    n = 50
    parent = rng.integers(0, 3, n)
    y = rng.normal(size=n) + parent
    counts = rng.poisson(1.0 + parent).astype(float)
    x = np.column_stack([parent, np.zeros(n), np.zeros(n)]).astype(int)
    pooled_y, pooled_n = (y.mean(), y.var()), (counts.mean(), counts.var())
    for alpha in (0.0, 0.5):
        scorer = FamilyScorer(
            x, np.array([3, 1, 1]), "bic", alpha=alpha,
            leaves={1: (Leaf("continuous"), y, pooled_y), 2: (Leaf("count"), counts, pooled_n)},
        )  # fmt: skip
        gauss = pois = 0.0
        for level in range(3):
            v, k = y[parent == level], counts[parent == level]
            # alpha pseudo-rows at the pooled mean and variance
            m = (v.sum() + alpha * pooled_y[0]) / (len(v) + alpha)
            s2 = (np.sum(v**2) + alpha * (pooled_y[1] + pooled_y[0] ** 2)) / (len(v) + alpha) - m**2
            gauss += stats.norm.logpdf(v, m, np.sqrt(s2)).sum()
            rate = (k.sum() + alpha * pooled_n[0]) / (len(k) + alpha)
            pois += stats.poisson.logpmf(k, rate).sum()
        assert scorer(1, [0]) == pytest.approx(gauss - 0.5 * np.log(n) * 3 * 2, abs=1e-9)
        assert scorer(2, [0]) == pytest.approx(pois - 0.5 * np.log(n) * 3 * 1, abs=1e-9)
    # no parent: one Gaussian over all rows (alpha pseudo-rows at the pooled moments change
    # nothing there)
    ml = stats.norm.logpdf(y, y.mean(), y.std()).sum()
    assert scorer(1, []) == pytest.approx(ml - 0.5 * np.log(n) * 2, abs=1e-9)


def test_structure_search_recovers_the_mixed_network():
    x = _sample(6000, 7)
    for scoring in ("bic", "bdeu"):
        model = ptheta.make("bayesian-network", scoring=scoring).fit(Split(x, None, SPEC))
        learned = {(model.columns_[p], model.columns_[c]) for p, c in model.edges_}
        leaf_edges = {(p, c) for p, c in learned if c in "NYZ"}
        assert leaf_edges == {(p, c) for p, c in map(tuple, EDGES) if c in "NYZ"}
        skeleton = {frozenset(e) for e in learned - leaf_edges}  # A - B - C: equivalent DAGs
        assert skeleton == {frozenset("AB"), frozenset("BC")}
        assert not any(model.parents_[j] for j in range(3) if set(model.parents_[j]) & {3, 4, 5})
    for structure in ("chow-liu", "naive"):
        model = ptheta.make("bayesian-network", structure=structure).fit(Split(x, None, SPEC))
        assert all(model.kinds_[p] == "discrete" for p, _ in model.edges_)
        assert all(len(model.parents_[j]) == 1 for j in (3, 4, 5))


def test_the_known_table_network_is_recovered_and_near_its_entropy():
    from ptheta.data import groundtruth_table as gt

    data = ptheta.datasets.load("groundtruth-table")
    model = ptheta.make("bayesian-network").fit(data.train)
    learned = {(model.columns_[p], model.columns_[c]) for p, c in model.edges_}
    assert learned == set(gt.EDGES)
    nll, truth = -model.score(data.test), -gt.log_prob(data.test.x).mean()
    independent = -ptheta.make("independent").fit(data.train).score(data.test)
    assert truth - 0.01 < nll < truth + 0.05 < independent - 1.0


def test_leaves_are_never_parents():
    x = _sample(300, 1)
    with pytest.raises(ParameterError, match="'Y' -> 'A' starts at a continuous column"):
        ptheta.make("bayesian-network", structure=[["Y", "A"]]).fit(Split(x, None, SPEC))
    with pytest.raises(ParameterError, match="'N' -> 'B' starts at a count column"):
        ptheta.make("bayesian-network", white_list="N -> B").fit(Split(x, None, SPEC))


# --------------------------------------------------------------------------- missing data
def test_em_on_a_mixed_table_never_lowers_its_objective_and_recovers_the_fit():
    # Z unbounded here: a bounded column's moment-matched M-step is not an exact maximum
    spec = DataSpec("table", (6,), columns=(*COLUMNS[:5], ColumnSpec("Z", "continuous")))
    x = _sample(2000, 5)
    rng = np.random.default_rng(6)
    holes = x.copy()
    holes[rng.random(x.shape) < 0.15] = np.nan
    model = ptheta.make("bayesian-network", structure=EDGES, em_tol=1e-10)
    model.fit(Split(holes, None, spec))
    objective = [h["objective"] for h in model.history_]
    assert len(objective) > 3 and np.all(np.diff(objective) >= -1e-10)
    complete = ptheta.make("bayesian-network", structure=EDGES).fit(Split(x, None, spec))
    for fit, full in zip(model.cpts(), complete.cpts(), strict=True):
        scale = np.abs(full).max()
        assert np.abs(fit - full).max() < 0.15 * scale
    assert np.isfinite(model.score_samples(holes)).all()


# --------------------------------------------------------------------------- ptheta synth
def _write_tables(folder) -> tuple[str, str]:
    x = _sample(400, 9)
    frame = decode(x, COLUMNS)
    labels = folder / "labels.csv"
    frame[["A", "B", "C"]].to_csv(labels, index=False)
    mixed = folder / "mixed.csv"
    frame.loc[::17, "Y"] = np.nan
    frame.to_csv(mixed, index=False)
    return str(labels), str(mixed)


@pytest.mark.parametrize("which", ["labels", "mixed"])
def test_synth_end_to_end(tmp_path, which):
    labels, mixed = _write_tables(tmp_path)
    source = labels if which == "labels" else mixed
    out, report = tmp_path / "synth.csv", tmp_path / "report.json"
    args = ["synth", source, "--model", "bayesian-network", "-n", "300", "--out", str(out),
            "--report", str(report), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    real, synth = pd.read_csv(source), pd.read_csv(out)
    assert list(synth.columns) == list(real.columns) and len(synth) == 300
    assert set(synth["B"]) <= {"x", "y", "z"} and set(synth["A"]) <= {"no", "yes"}
    content = json.loads(report.read_text())
    assert content["likelihood"]["likelihood"] == "exact"
    assert content["likelihood"]["units"] == ("discrete" if which == "labels" else "mixed")
    assert content["detection"]["logistic"]["auc"] < 0.75  # a fair model of these rows
