"""Exact inference on discrete factors in log space: variable elimination, calibration, traceback.

A :class:`Factor` is a log-table over some variables with a leading batch axis (1, or one
row per example), so one elimination serves a whole group of examples that share which
variables are observed. :func:`eliminate` sums (or maximises) variables out in a given
order and keeps each step's product, so that :func:`traceback` can then draw exact joint
samples (or the most probable assignment) backwards, and :func:`calibrate` can pass the
messages back down and give every step's exact posterior (the junction tree that the
elimination order builds: one clique per eliminated variable).

Example:
    >>> import numpy as np
    >>> cards = np.array([2, 2])
    >>> prior = Factor((0,), np.log([[0.3, 0.7]]))  # p(a)
    >>> cond = Factor((0, 1), np.log([[[0.9, 0.1], [0.2, 0.8]]]))  # p(b | a)
    >>> pool, steps = eliminate([prior, cond], [0, 1], cards)
    >>> round(float(np.exp(log_total(pool, 1))[0]), 12)
    1.0
    >>> beliefs = calibrate(steps, 1)
    >>> np.round(np.exp(beliefs[-1].log[0]), 3).tolist()  # p(b) = [0.41, 0.59]
    [0.41, 0.59]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Factor:
    """A log-table ``log`` of shape (B, *cards[vars]) over ``vars``; B is 1 (shared by
    every example) or the number of examples. A factor over no variable is (B,)."""

    vars: tuple[int, ...]
    log: np.ndarray


@dataclass
class Step:
    """One elimination: variable ``var``, the product ``phi`` of every factor that held it
    (over ``var`` and its neighbours then), the ``message`` it left (``phi`` without
    ``var``), and the step that consumed the message (``parent``; −1 if none did)."""

    var: int
    phi: Factor
    message: Factor
    parent: int = -1
    absorbed: list[int] = field(default_factory=list)  # ids of the input factors it took


def aligned(f: Factor, scope: Sequence[int], cards: np.ndarray) -> np.ndarray:
    """``f.log`` transposed and reshaped to broadcast against (B, *cards[scope])."""
    order = [f.vars.index(v) + 1 for v in scope if v in f.vars]
    table = np.transpose(f.log, [0, *order])
    return table.reshape([table.shape[0], *(int(cards[v]) if v in f.vars else 1 for v in scope)])


def product(factors: Sequence[Factor], cards: np.ndarray) -> Factor:
    """The product (sum of log-tables) of ``factors`` over the union of their scopes."""
    scope: list[int] = []
    for f in factors:
        scope += [v for v in f.vars if v not in scope]
    total = aligned(factors[0], scope, cards)
    for f in factors[1:]:
        total = total + aligned(f, scope, cards)
    return Factor(tuple(scope), total)


def reduce_log(table: np.ndarray, axis: int | tuple[int, ...], mode: str) -> np.ndarray:
    """Max or log-sum-exp over ``axis`` (scipy's logsumexp costs far more per small call)."""
    if mode == "max":
        return table.max(axis=axis)
    top = table.max(axis=axis, keepdims=True)
    if np.isfinite(top).all():  # each sum then holds a 1: no warning to silence
        total = np.log(np.exp(table - top).sum(axis=axis, keepdims=True))
        total += top
        return np.squeeze(total, axis=axis)
    top = np.where(np.isfinite(top), top, 0.0)  # a slice of −inf stays −inf below
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        total = np.log(np.exp(table - top).sum(axis=axis, keepdims=True)) + top
    return np.squeeze(total, axis=axis)


def eliminate(
    factors: Sequence[Factor], order: Sequence[int], cards: np.ndarray, mode: str = "sum"
) -> tuple[list[Factor], list[Step]]:
    """Sum (``mode="sum"``) or maximise (``"max"``) ``order``'s variables out, in order.

    Returns the factors left (over the variables not eliminated) and the steps taken.
    """
    pool: list[tuple[int, Factor]] = list(enumerate(factors))  # (id, factor)
    next_id = len(pool)
    owner: dict[int, int] = {}  # message id -> the step that produced it
    steps: list[Step] = []
    for v in order:
        involved = [(i, f) for i, f in pool if v in f.vars]
        if not involved:
            continue
        pool = [(i, f) for i, f in pool if v not in f.vars]
        phi = product([f for _, f in involved], cards)
        axis = phi.vars.index(v) + 1
        message = Factor(phi.vars[: axis - 1] + phi.vars[axis:], reduce_log(phi.log, axis, mode))
        step = Step(v, phi, message, absorbed=[i for i, _ in involved if i < len(factors)])
        for i, _ in involved:
            if i in owner:
                steps[owner[i]].parent = len(steps)
        owner[next_id] = len(steps)
        steps.append(step)
        pool.append((next_id, message))
        next_id += 1
    return [f for _, f in pool], steps


def linked_scopes(scopes: Sequence[Sequence[int]], variables: Sequence[int]) -> list[bool]:
    """Which factors (given by their scopes) are linked to ``variables`` through shared
    variables. The others' product is a function of variables that no linked factor holds,
    so summing them out leaves a constant: a conditional over ``variables`` needs only the
    linked factors. (On a Bayesian network with the evidence fixed in the factors, these
    are the families d-connected to the query: Lauritzen's moral-graph criterion.)"""
    reach, linked = set(variables), [False] * len(scopes)
    grown = True
    while grown:
        grown = False
        for i, scope in enumerate(scopes):
            if not linked[i] and reach.intersection(scope):
                linked[i] = grown = True
                reach.update(scope)
    return linked


def log_total(pool: Sequence[Factor], n: int) -> np.ndarray:
    """The sum, per example (n,), of factors over no variable (what elimination leaves)."""
    total = np.zeros(n)
    for f in pool:
        if not f.vars:
            total = total + f.log
    return total


def traceback(
    steps: Sequence[Step],
    n: int,
    choose: Callable[[np.ndarray], np.ndarray],
    assigned: dict[int, np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """Values (n,) of every eliminated variable, chosen backwards through ``steps``.

    Each step's ``phi`` restricted to the values of the variables eliminated after it is
    (up to a constant) p(var | those variables, evidence) after a sum elimination, or the
    best score of var given them after a max elimination. ``choose`` maps its (n, card)
    log-weights to indices: a categorical draw gives exact joint samples, argmax the
    most probable assignment. ``assigned`` holds the values of variables not eliminated.
    """
    values = dict(assigned or {})
    rows = np.arange(n)
    for step in reversed(steps):
        axis = step.phi.vars.index(step.var) + 1
        table = np.moveaxis(step.phi.log, axis, -1)
        table = np.broadcast_to(table, (n, *table.shape[1:]))
        others = [values[u] for u in step.phi.vars if u != step.var]
        values[step.var] = choose(table[(rows, *others)])
    return values


def calibrate(steps: Sequence[Step], n: int) -> list[Factor]:
    """Exact posteriors p(var and its neighbours | evidence) of every step after a sum
    elimination of all free variables: log-tables (n, ...) normalised per example.

    The steps form a junction tree (a step's message goes to its ``parent``); beliefs flow
    back down it, each child receiving its parent's belief marginalised onto their
    separator divided by the message it sent up (Hugin's rule, in log space).
    """
    beliefs: list[np.ndarray | None] = [None] * len(steps)
    for s in range(len(steps) - 1, -1, -1):  # parents come after their children
        step = steps[s]
        belief = np.broadcast_to(step.phi.log, (n, *step.phi.log.shape[1:]))
        if step.parent >= 0:
            parent = steps[step.parent]
            sep = [u for u in parent.phi.vars if u in step.message.vars]  # parent's order
            drop = tuple(i + 1 for i, u in enumerate(parent.phi.vars) if u not in sep)
            above = beliefs[step.parent]
            assert above is not None
            marg = reduce_log(above, drop, "sum") if drop else above  # (n, *cards[sep])
            sent = np.transpose(
                step.message.log, [0, *(step.message.vars.index(u) + 1 for u in sep)]
            )
            with np.errstate(invalid="ignore"):
                down = np.where(np.isneginf(sent), -np.inf, marg - sent)
            belief = belief + aligned(Factor(tuple(sep), down), step.phi.vars, _cards(step.phi))
        beliefs[s] = belief
    out = []
    for step, belief in zip(steps, beliefs, strict=True):
        assert belief is not None
        axes = tuple(range(1, belief.ndim))
        norm = reduce_log(belief.reshape(n, -1), 1, "sum").reshape(n, *([1] * len(axes)))
        with np.errstate(invalid="ignore"):
            out.append(Factor(step.phi.vars, belief - norm))
    return out


def _cards(f: Factor) -> dict[int, int]:
    """The cardinality of each variable of ``f``, read from its table's shape."""
    return {v: f.log.shape[i + 1] for i, v in enumerate(f.vars)}


def marginal(f: Factor, scope: Sequence[int]) -> np.ndarray:
    """Sum a normalised log-belief onto ``scope`` (in that order): a (B, *cards) table."""
    drop = tuple(i + 1 for i, v in enumerate(f.vars) if v not in scope)
    table = reduce_log(f.log, drop, "sum") if drop else f.log
    kept = [v for v in f.vars if v in scope]
    return np.transpose(table, [0, *(kept.index(v) + 1 for v in scope)])


def min_fill_order(
    scopes: Sequence[Sequence[int]], eliminate_vars: Sequence[int], cards: np.ndarray
) -> list[int]:
    """A greedy min-fill elimination order of ``eliminate_vars`` for factors over ``scopes``
    (ties broken by the smallest clique table, then the lowest index).

    Orders are remembered (the last 1,024 problems): queries that repeat a pattern of
    query and evidence variables find theirs at once."""
    key_scopes = tuple(tuple(int(v) for v in scope) for scope in scopes)
    key = (key_scopes, tuple(int(v) for v in eliminate_vars), tuple(int(c) for c in cards))
    return list(_min_fill_order(*key))


@functools.lru_cache(maxsize=1024)
def _min_fill_order(
    scopes: tuple[tuple[int, ...], ...], eliminate_vars: tuple[int, ...], cards: tuple[int, ...]
) -> tuple[int, ...]:
    todo = set(eliminate_vars)
    nbrs: dict[int, set[int]] = {}
    for scope in scopes:
        for v in scope:
            nbrs.setdefault(v, set()).update(u for u in scope if u != v)
    size = cards  # Python ints: a clique's table size is exact

    def cost(v: int) -> tuple[int, int, int]:
        around = list(nbrs.get(v, ()))
        fill = sum(
            1
            for a in range(len(around))
            for b in range(a + 1, len(around))
            if around[b] not in nbrs[around[a]]
        )
        return fill, math.prod(size[u] for u in around) * size[v], v

    # A variable's cost changes only when its neighbours or the edges among them do, i.e.
    # for the eliminated variable's neighbours and theirs: the others keep their cost.
    costs = {v: cost(v) for v in todo}
    order: list[int] = []
    while todo:
        v = min(todo, key=costs.__getitem__)
        around = nbrs.pop(v, set())
        for u in around:
            nbrs[u].discard(v)
            nbrs[u].update(around - {u})
        todo.discard(v)
        order.append(v)
        stale = set(around).union(*(nbrs[u] for u in around)) & todo
        for u in stale:
            costs[u] = cost(u)
    return tuple(order)
