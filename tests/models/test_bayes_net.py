"""Tests of the discrete Bayesian network against hand computations and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

import ptheta
from ptheta.errors import DataError, ParameterError
from ptheta.models.dag_search import (
    FamilyScorer,
    ancestors,
    hill_climb,
    parse_dot,
    with_edge_ancestors,
)
from ptheta.models.elimination import min_fill_order
from ptheta.runs.pictures import save_figure, structure_figure
from ptheta.runs.store import load_run, save_run


# --------------------------------------------------------------------------- networks
def _random_network(d: int, k: int, seed: int, max_parents: int = 2):
    """A random DAG over d variables (parents among earlier ones) and peaked random CPTs."""
    rng = np.random.default_rng(seed)
    parents = [
        sorted(
            rng.choice(
                j, size=min(j, int(rng.integers(0, max_parents + 1))), replace=False
            ).tolist()
        )
        for j in range(d)
    ]
    tables = [
        rng.dirichlet(np.full(k, 0.7), size=k ** len(ps)).reshape(*[k] * len(ps), k)
        for ps in parents
    ]
    return parents, tables


def _sample(parents, tables, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(parents)), dtype=np.int64)
    for j, ps in enumerate(parents):  # parents come first (they have lower indices)
        probs = np.broadcast_to(tables[j][tuple(x[:, p] for p in ps)], (n, tables[j].shape[-1]))
        x[:, j] = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return x


def _joint(model) -> np.ndarray:
    """The model's joint p(x) over every configuration (K, ..., K), from its tables alone."""
    cards = model.cards_
    joint = np.ones(tuple(cards))
    for j, table in enumerate(model.cpts()):
        fam = [*model.parents_[j], j]
        shape = [int(cards[v]) if v in fam else 1 for v in range(len(cards))]
        # the table's axes follow fam (sorted parents, then j); move them to variable order
        order = np.argsort(fam)
        joint = joint * np.transpose(table, order).reshape(shape)
    return joint


def _fitted(d=5, k=3, n=3000, seed=0, **params):
    parents, tables = _random_network(d, k, seed)
    x = _sample(parents, tables, n, seed + 1)
    edges = [[p, j] for j, ps in enumerate(parents) for p in ps]
    model = ptheta.make("bayesian-network", structure=edges or "empty", **params).fit(x)
    return model, x


# --------------------------------------------------------------------------- scores
def test_bic_and_bdeu_equal_a_hand_computation_on_a_small_table():
    x = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 0, 1], [1, 1, 1]])
    cards = np.array([2, 2, 2])
    n = len(x)
    # child 2 with parents (0, 1): counts by hand
    counts = {}
    for a, b, c in x:
        counts[(a, b, c)] = counts.get((a, b, c), 0) + 1
    loglik = 0.0
    for a, b in itertools.product(range(2), repeat=2):
        n_ab = sum(counts.get((a, b, c), 0) for c in range(2))
        loglik += sum(
            counts.get((a, b, c), 0) * math.log(counts[(a, b, c)] / n_ab)
            for c in range(2)
            if counts.get((a, b, c), 0)
        )
    bic = loglik - 0.5 * math.log(n) * 4 * 1
    assert FamilyScorer(x, cards, "bic")(2, [0, 1]) == pytest.approx(bic, abs=1e-12)
    ess = 2.0
    bdeu = 0.0
    for a, b in itertools.product(range(2), repeat=2):
        n_ab = sum(counts.get((a, b, c), 0) for c in range(2))
        bdeu += math.lgamma(ess / 4) - math.lgamma(ess / 4 + n_ab)
        for c in range(2):
            bdeu += math.lgamma(ess / 8 + counts.get((a, b, c), 0)) - math.lgamma(ess / 8)
    assert FamilyScorer(x, cards, "bdeu", ess)(2, [1, 0]) == pytest.approx(bdeu, abs=1e-12)
    # the network's score is the sum of its families': here 0 -> 2 <- 1 and two roots
    model = ptheta.make("bayesian-network", structure="x0 -> x2; x1 -> x2").fit(x)
    root = sum(c * math.log(c / n) for c in np.bincount(x[:, 0])) - 0.5 * math.log(n)
    root += sum(c * math.log(c / n) for c in np.bincount(x[:, 1])) - 0.5 * math.log(n)
    assert model.structure_score_ == pytest.approx(bic + root, abs=1e-12)
    assert model.n_parameters() == 1 + 1 + 4


def _cpdag(edges, d):
    """Skeleton and v-structures: what Markov-equivalent DAGs share."""
    adj = np.zeros((d, d), dtype=bool)
    for p, c in edges:
        adj[p, c] = True
    skeleton = {frozenset(e) for e in edges}
    v = {
        (min(a, b), max(a, b), c)
        for c in range(d)
        for a, b in itertools.combinations(np.flatnonzero(adj[:, c]), 2)
        if frozenset((a, b)) not in skeleton
    }
    return skeleton, v


def test_ancestors_kept_up_to_date_edge_by_edge_equal_a_fresh_computation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = int(rng.integers(2, 12))
        adj = np.zeros((d, d), dtype=bool)
        anc = ancestors(adj)
        for _ in range(3 * d):
            i, j = (int(v) for v in rng.choice(d, 2, replace=False))
            if adj[i, j] or anc[i, j]:  # present, or j is an ancestor of i: a cycle
                continue
            adj[i, j] = True
            with_edge_ancestors(anc, i, j)
            np.testing.assert_array_equal(anc, ancestors(adj))


def _min_fill_from_scratch(scopes, eliminate_vars, cards):
    """Greedy min-fill recomputing every candidate's cost at every step (the reference for
    min_fill_order, which recomputes only the costs an elimination can change)."""
    nbrs = {v: set() for v in range(len(cards))}
    for scope in scopes:
        for v in scope:
            nbrs[v].update(u for u in scope if u != v)
    todo, order = set(eliminate_vars), []
    while todo:

        def cost(v):
            fill = sum(b not in nbrs[a] for a, b in itertools.combinations(sorted(nbrs[v]), 2))
            return fill, math.prod(int(cards[u]) for u in nbrs[v] | {v}), v

        v = min(todo, key=cost)
        for u in nbrs[v]:
            nbrs[u] |= nbrs[v] - {u}
            nbrs[u].discard(v)
        nbrs[v] = set()
        todo.discard(v)
        order.append(v)
    return order


def test_min_fill_order_equals_the_greedy_recomputed_from_scratch():
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = int(rng.integers(3, 20))
        cards = rng.integers(2, 5, size=d)
        scopes = [
            [int(v) for v in rng.choice(d, size=int(rng.integers(1, min(5, d + 1))), replace=False)]
            for _ in range(int(rng.integers(1, 2 * d)))
        ]
        free = [int(v) for v in rng.choice(d, size=int(rng.integers(1, d + 1)), replace=False)]
        assert min_fill_order(scopes, free, cards) == _min_fill_from_scratch(scopes, free, cards)


def test_hill_climbing_stops_when_out_of_time():
    x = _sample(*_random_network(8, 2, seed=3), n=500, seed=1)
    scorer = FamilyScorer(x, np.full(8, 2), "bic", 10.0)
    calls = []

    def late() -> bool:  # out of time at the first question after the first scores
        calls.append(1)
        return len(calls) > 8

    free = hill_climb(scorer, max_iter=1000)
    one_move = hill_climb(scorer, max_iter=1000, out_of_time=late)
    assert sum(map(len, one_move)) == 1 < sum(map(len, free))
    never = hill_climb(scorer, max_iter=1000, out_of_time=lambda: True)
    assert never == [[] for _ in range(8)]  # stopped while scoring: the start graph
    with pytest.warns(UserWarning, match=r"hill climbing\) stopped at max_time=1e-09 s"):
        model = ptheta.make("bayesian-network", max_time=1e-9).fit(x)
    assert model.edges_ == []


@pytest.mark.parametrize("scoring", ["bic", "bdeu"])
def test_hill_climbing_recovers_the_true_dag_up_to_markov_equivalence(scoring):
    # a noisy-average network: every parent moves its child's level (no XOR-like hiding)
    truth = [[0, 2], [1, 2], [2, 3], [3, 4], [1, 5], [4, 5]]
    d, n = 6, 20000
    rng = np.random.default_rng(0)
    x = np.zeros((n, d), dtype=np.int64)
    for j in range(d):
        ps = [p for p, c in truth if c == j]
        mean = x[:, ps].mean(axis=1) if ps else np.full(n, 0.5)
        x[:, j] = rng.random(n) < 0.1 + 0.8 * mean
    model = ptheta.make("bayesian-network", scoring=scoring).fit(x)
    assert _cpdag(model.edges_, d) == _cpdag(truth, d)
    # the learned DAG scores at least as well as the true one
    true_parents = [[p for p, c in truth if c == j] for j in range(d)]
    scorer = FamilyScorer(x, np.full(d, 2), scoring, model.equivalent_sample_size)
    assert model.structure_score_ >= scorer.total(true_parents) - 1e-6


def test_search_respects_max_parents_black_and_white_lists_and_tabu_never_loses():
    x, _ = _fitted(d=6, k=2, n=4000, seed=3)[1], None
    greedy = ptheta.make("bayesian-network", tabu_length=0).fit(x)
    tabu = ptheta.make("bayesian-network", tabu_length=20).fit(x)
    assert tabu.structure_score_ >= greedy.structure_score_ - 1e-9
    capped = ptheta.make("bayesian-network", max_parents=1).fit(x)
    assert max(len(p) for p in capped.parents_) <= 1
    some = greedy.edges_[0]
    banned = ptheta.make("bayesian-network", black_list=[some, some[::-1]]).fit(x)
    assert some not in banned.edges_ and some[::-1] not in banned.edges_
    forced = ptheta.make("bayesian-network", white_list=[[5, 0]], max_iter=0).fit(x)
    assert forced.edges_ == [[5, 0]]
    assert [5, 0] in ptheta.make("bayesian-network", white_list="x5 -> x0").fit(x).edges_


def test_special_structures_chow_liu_naive_and_empty():
    x, _ = _fitted(d=5, k=2, n=2000, seed=4)[1], None
    tree = ptheta.make("bayesian-network", structure="chow-liu").fit(x)
    chow = ptheta.make("chow-liu").fit(x)
    assert {frozenset(e) for e in tree.edges_} == {frozenset(e) for e in chow.edges_}
    naive = ptheta.make("bayesian-network", structure="naive").fit(x)
    (root,) = [j for j in range(5) if not naive.parents_[j]]
    assert sorted(naive.edges_) == sorted([root, j] for j in range(5) if j != root)
    empty = ptheta.make("bayesian-network", structure="empty", alpha=0.5).fit(x)
    independent = ptheta.make("independent").fit(x)
    assert empty.edges_ == []
    np.testing.assert_allclose(empty.score_samples(x), independent.score_samples(x), atol=1e-9)


# --------------------------------------------------------------------------- exact inference
def test_tables_are_the_smoothed_counts_and_probabilities_sum_to_one():
    model, x = _fitted(d=4, k=3, n=500, seed=5, alpha=0.5)
    for j, table in enumerate(model.cpts()):
        fam = [*model.parents_[j], j]
        counts = np.zeros(table.shape)
        np.add.at(counts, tuple(x[:, v] for v in fam), 1)
        np.testing.assert_allclose(table, (counts + 0.5) / (counts + 0.5).sum(-1, keepdims=True))
    configs = np.array(list(itertools.product(range(3), repeat=4)))
    scores = model.score_samples(configs)
    np.testing.assert_allclose(scores, np.log(_joint(model)[tuple(configs.T)]), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_queries_and_marginals_equal_brute_force_enumeration(seed):
    model, x = _fitted(d=5, k=3, n=400, seed=seed)
    joint = _joint(model)  # (3, 3, 3, 3, 3)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        q = sorted(rng.choice(5, size=int(rng.integers(1, 3)), replace=False).tolist())
        rest = [v for v in range(5) if v not in q]
        ev = {int(v): int(rng.integers(0, 3)) for v in rng.choice(rest, size=2, replace=False)}
        index = tuple(ev.get(v, slice(None)) for v in range(5))
        cond = joint[index]  # axes: the unobserved variables in order
        free = [v for v in range(5) if v not in ev]
        cond = cond.sum(axis=tuple(i for i, v in enumerate(free) if v not in q))
        cond = cond / cond.sum()
        table = model.query([f"x{v}" for v in q], evidence={f"x{v}": lv for v, lv in ev.items()})
        assert list(table.columns) == [*(f"x{v}" for v in q), "probability"]
        np.testing.assert_allclose(table["probability"].to_numpy(), cond.ravel(), atol=1e-12)
        configs = list(itertools.product(range(3), repeat=len(q)))
        assert [tuple(r) for r in table[[f"x{v}" for v in q]].to_numpy()] == configs
        best = model.map_query(q, evidence=ev)  # indices work as names too
        assert tuple(best.values()) == configs[int(np.argmax(cond.ravel()))]
    # marginal likelihood of partly observed rows: a sum over the missing entries
    partial = x[:6].astype(float)
    partial[0, [0, 2]] = np.nan
    partial[1:3, 4] = np.nan
    partial[3, :] = np.nan
    partial[4, [1, 3, 4]] = np.nan
    for row, score in zip(partial, model.score_samples(partial), strict=True):
        seen = ~np.isnan(row)
        cell = tuple(int(v) if s else slice(None) for v, s in zip(row, seen, strict=True))
        assert score == pytest.approx(np.log(joint[cell].sum()), abs=1e-10)


def test_queries_drop_the_factors_that_evidence_cuts_off_and_stay_exact(monkeypatch):
    """x0 → x1 → x2, x3 → x4: given x1, P(x2 | x1) needs only x2's table; x0's tables and
    the x3–x4 part are cut off. Answers equal enumeration; impossible evidence in a part
    cut off from the query is still refused."""
    import ptheta.models.bayes_net as bn
    from ptheta.models.elimination import linked_scopes

    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(300, 5))
    model = ptheta.make("bayesian-network", structure=[[0, 1], [1, 2], [3, 4]]).fit(x)
    joint = _joint(model)
    links = []
    monkeypatch.setattr(
        bn, "linked_scopes", lambda s, q: links.append(linked_scopes(s, q)) or links[-1]
    )
    for ev in ({"x1": 2}, {"x1": 0, "x4": 1}, {"x0": 1, "x4": 2}):
        index = tuple(ev.get(f"x{v}", slice(None)) for v in range(5))
        free = [v for v in range(5) if f"x{v}" not in ev]
        cond = joint[index].sum(axis=tuple(i for i, v in enumerate(free) if v != 2))
        table = model.query("x2", evidence=ev)
        np.testing.assert_allclose(table["probability"], cond / cond.sum(), atol=1e-12)
    assert links[1] == [False, False, True, False, False]  # given x1: x2's table alone
    assert links[2] == [False, True, True, False, False]  # given x0: x1 is summed out
    tables = model.cpts()
    tables[4][..., 1] = 0.0  # x4 is never 1 now: the evidence x4 = 1 is impossible
    model.cpt_ = np.concatenate([t.ravel() for t in tables])
    with pytest.raises(DataError, match="probability 0"):
        model.query("x2", evidence={"x1": 0, "x4": 1})


def test_map_query_over_forty_variables_is_the_best_completion_without_a_joint_table():
    """Max-product elimination along a chain of 40 binary variables (a joint table would
    hold 2^39 entries): the answer scores at least as high as every training row that
    shares the evidence."""
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.random((300, 40)) < 0.2, axis=1) % 2  # each flips with p = 0.2
    chain = [[j, j + 1] for j in range(39)]
    model = ptheta.make("bayesian-network", structure=chain).fit(x)
    best = model.map_query([f"x{j}" for j in range(1, 40)], evidence={"x0": 1})
    row = np.array([[1, *(best[f"x{j}"] for j in range(1, 40))]])
    seen = x[x[:, 0] == 1]
    assert model.score_samples(row)[0] >= model.score_samples(seen).max() - 1e-9
    assert all(best[f"x{j}"] == 1 for j in range(1, 40))  # no flip is the likeliest path


def test_impute_mode_is_the_most_probable_completion():
    model, x = _fitted(d=5, k=3, n=400, seed=7)
    joint = _joint(model)
    partial = x[:8].astype(float)
    rng = np.random.default_rng(0)
    partial[rng.random(partial.shape) < 0.5] = np.nan
    filled = model.impute(partial, method="mode")
    for row, out in zip(partial, filled, strict=True):
        seen = ~np.isnan(row)
        cell = tuple(int(v) if s else slice(None) for v, s in zip(row, seen, strict=True))
        sub = joint[cell]
        assert joint[tuple(out)] == pytest.approx(sub.max(), rel=1e-12)


def test_sampling_with_evidence_matches_the_exact_conditional():
    model, _ = _fitted(d=4, k=3, n=500, seed=8)
    joint = _joint(model)
    given = np.array([[np.nan, 1.0, np.nan, np.nan]])
    n = 20000
    drawn = model.sample(n, given=given, random_state=0)
    assert (drawn[:, 1] == 1).all()
    cond = joint[:, 1].ravel() / joint[:, 1].sum()  # over (x0, x2, x3)
    assert _chi_square_p(drawn[:, [0, 2, 3]] @ np.array([9, 3, 1]), cond) > 1e-3
    # unconditional draws match the joint too
    free = model.sample(n, random_state=1)
    assert _chi_square_p(free @ np.array([27, 9, 3, 1]), joint.ravel()) > 1e-3


def _chi_square_p(index: np.ndarray, probs: np.ndarray) -> float:
    """The chi-square test's p-value of cell indices against cell probabilities, the
    cells expecting fewer than 5 draws pooled."""
    counts = np.bincount(index, minlength=len(probs))
    expected = probs * len(index)
    keep = expected >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    return float(stats.chisquare(obs[exp > 0], exp[exp > 0]).pvalue)


def test_queries_refuse_unknown_variables_levels_and_impossible_evidence():
    model, _ = _fitted(d=3, k=2, n=200, seed=9, alpha=0.0)
    with pytest.raises(DataError, match="unknown variable 'nope'"):
        model.query("nope")
    with pytest.raises(DataError, match="no level 5"):
        model.query("x0", evidence={"x1": 5})
    with pytest.raises(DataError, match="both queried"):
        model.query("x0", evidence={"x0": 1})
    tables = model.cpts()
    tables[1][...] = [1.0, 0.0]  # x1 is never 1 now
    model.cpt_ = np.concatenate([t.ravel() for t in tables])
    with pytest.raises(DataError, match="probability 0"):
        model.query("x0", evidence={"x1": 1})
    # x2 = 2 was never seen: P(x1) and P(x2 = 2 | x1) each have a positive entry, but no
    # level of x1 has both
    x = np.array([[0, 0, 0], [1, 1, 1], [2, 0, 1], [0, 1, 0]] * 5)
    model = ptheta.make("bayesian-network", structure=[[1, 2]], alpha=0.0).fit(x)
    with pytest.raises(DataError, match="probability 0"):
        model.query("x1", evidence={"x2": 2})
    with pytest.raises(DataError, match="probability 0"):
        model.map_query("x1", evidence={"x2": 2})


# --------------------------------------------------------------------------- missing values in fit
def _mask(x, fraction, seed):
    out = x.astype(float)
    out[np.random.default_rng(seed).random(x.shape) < fraction] = np.nan
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_em_never_lowers_its_objective(alpha):
    model, x = _fitted(d=5, k=3, n=600, seed=10)
    masked = _mask(x, 0.3, 0)
    em = ptheta.make(
        "bayesian-network", structure=model.edges_, alpha=alpha, em_tol=0.0, em_max_iter=15
    )
    em.fit(masked)
    objective = np.array([h["objective"] for h in em.history_])
    assert len(objective) == 15 and np.all(np.diff(objective) >= -1e-10)
    if alpha == 0.0:  # the objective is the observed-data log-likelihood itself
        loglik = [h["log_likelihood"] for h in em.history_]
        np.testing.assert_allclose(objective, loglik)
        assert em.score(masked) >= objective[-1] - 1e-10  # the final M-step too
    assert objective[-1] > objective[0]


def test_em_on_data_missing_completely_at_random_recovers_the_complete_data_fit():
    model, x = _fitted(d=4, k=2, n=20000, seed=11, alpha=0.0)
    em = ptheta.make("bayesian-network", structure=model.edges_, alpha=0.0).fit(_mask(x, 0.2, 1))
    assert em.edges_ == model.edges_
    for j, (full, fitted) in enumerate(zip(model.cpts(), em.cpts(), strict=True)):
        fam = [*model.parents_[j], j]
        n_parent = np.zeros(full.shape[:-1])
        np.add.at(n_parent, tuple(x[:, v] for v in fam[:-1]), 1)
        se = np.sqrt(full * (1 - full) / np.maximum(n_parent, 1)[..., None])
        assert np.all(np.abs(fitted - full) <= 4 * se + 1e-3), j
    # and it beats the available-case start on the observed-data likelihood
    assert em.history_[-1]["log_likelihood"] >= em.history_[0]["log_likelihood"]


def test_structure_from_data_with_missing_values_uses_the_complete_rows():
    x = _fitted(d=4, k=2, n=3000, seed=12)[1]
    masked = _mask(x, 0.05, 2)
    complete = ~np.isnan(masked).any(axis=1)
    with_missing = ptheta.make("bayesian-network").fit(masked)
    on_complete = ptheta.make("bayesian-network").fit(x[complete])
    assert with_missing.edges_ == on_complete.edges_
    assert np.isfinite(with_missing.score_samples(masked)).all()


# --------------------------------------------------------------------------- given DAGs, export
def test_dot_round_trip_names_and_cycles():
    model, x = _fitted(d=4, k=2, n=500, seed=13)
    again = ptheta.make("bayesian-network", structure=model.to_dot()).fit(x)
    assert again.edges_ == model.edges_
    assert parse_dot('digraph g { 0 [label="a"]; 1 [label="b"]; 0 -> 1 [w=2]; b -> c -> d }') == [
        ["a", "b"],
        ["b", "c"],
        ["c", "d"],
    ]
    with pytest.raises(ParameterError, match=r"structure must be an acyclic graph.*cycle"):
        ptheta.make("bayesian-network", structure="x0 -> x1; x1 -> x0").fit(x)
    with pytest.raises(ParameterError, match="structure must be edges between the data's columns"):
        ptheta.make("bayesian-network", structure=[["x0", "y"]]).fit(x)
    with pytest.raises(ParameterError, match="black_list must be None unless"):
        ptheta.make("bayesian-network", structure="empty", black_list=[[0, 1]]).fit(x)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(x, columns=["rain", "sprinkler", "wet", "slippery"])
    named = ptheta.make("bayesian-network", structure="rain -> wet; sprinkler -> wet").fit(frame)
    assert named.columns_ == ["rain", "sprinkler", "wet", "slippery"]
    assert list(named.query("rain", evidence={"wet": 1}).columns) == ["rain", "probability"]
    assert '"rain" -> "wet"' in named.to_dot()


def test_run_directory_round_trip_and_structure_picture(tmp_path):
    model, x = _fitted(d=5, k=2, n=400, seed=14)
    masked = _mask(x, 0.2, 3)
    save_run(model, tmp_path / "run", data={"name": "synthetic"})
    loaded = load_run(tmp_path / "run")
    assert loaded.edges_ == model.edges_ and loaded.parents_ == model.parents_
    np.testing.assert_array_equal(loaded.score_samples(masked), model.score_samples(masked))
    assert loaded.query("x0").equals(model.query("x0"))
    assert model.capabilities().exports_structure and model.capabilities().fits_missing
    save_figure(structure_figure(model), tmp_path / "structure.png")
    assert (tmp_path / "structure.png").stat().st_size > 0


def test_default_fit_on_digits_beats_the_tree_and_is_fast():
    data = ptheta.datasets.load("digits-binary")
    model = ptheta.make("bayesian-network").fit(data.train)
    tree = ptheta.make("chow-liu").fit(data.train)
    assert model.score(data.test.x) > tree.score(data.test.x)
    # every example's probability includes the scores of each family exactly
    logt = [np.log(t) for t in model.cpts()]
    x = data.test.x[:20]
    by_hand = sum(
        logt[j][tuple(x[:, v] for v in [*model.parents_[j], j])] for j in range(x.shape[1])
    )
    np.testing.assert_allclose(model.score_samples(x), by_hand, atol=1e-10)


def test_sparse_candidates_keep_parents_among_the_most_informative_partners():
    from ptheta.models.chow_liu import pairwise_mutual_information

    rng = np.random.default_rng(5)
    n, chain, noise = 3000, 8, 112  # 120 columns: "auto" restricts the search to 10 partners
    x = np.zeros((n, chain + noise), dtype=np.int64)
    x[:, 0] = rng.random(n) < 0.5
    for j in range(1, chain):  # each copies the previous column with probability 0.9
        flip = rng.random(n) < 0.1
        x[:, j] = np.where(flip, 1 - x[:, j - 1], x[:, j - 1])
    x[:, chain:] = rng.random((n, noise)) < 0.5
    m = ptheta.make("bayesian-network", tabu_length=0).fit(x)
    mi = pairwise_mutual_information(x, 2)
    np.fill_diagonal(mi, -np.inf)
    top = np.argsort(-mi, axis=1)[:, :10]
    for child, parents in enumerate(m.parents_):
        for p in parents:  # p is among child's 10 best partners, or child among p's
            assert p in top[child] or child in top[p]
    skeleton = {frozenset((int(p), c)) for c, ps in enumerate(m.parents_) for p in ps}
    assert all(frozenset((j - 1, j)) in skeleton for j in range(1, chain))
    full = ptheta.make("bayesian-network", tabu_length=0, candidates=None).fit(x[:, :20])
    auto = ptheta.make("bayesian-network", tabu_length=0).fit(x[:, :20])  # <= 100: full search
    assert full.parents_ == auto.parents_


def test_sparse_candidates_leave_out_a_link_weaker_than_every_candidate():
    # two blocks of 12 near-copies, linked only through a weaker a0 – b0 dependence: with
    # 10 candidates each column's partners are in its own block, so no edge crosses
    rng = np.random.default_rng(6)
    n = 4000
    a = (rng.random(n) < 0.5).astype(np.int64)
    b = np.where(rng.random(n) < 0.8, a, 1 - a)
    blocks = [np.where(rng.random((n, 12)) < 0.02, 1 - s[:, None], s[:, None]) for s in (a, b)]
    x = np.concatenate(blocks, axis=1)

    def crossing(model) -> int:
        return sum((p < 12) != (c < 12) for c, ps in enumerate(model.parents_) for p in ps)

    assert crossing(ptheta.make("bayesian-network", candidates=None).fit(x)) >= 1
    assert crossing(ptheta.make("bayesian-network", candidates=10).fit(x)) == 0
