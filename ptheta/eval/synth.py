"""Synthetic-table quality: column fidelity, pairwise association, detection AUC, distance
to the closest record, and the model's held-out log-likelihood.

Every metric compares a real table with a synthetic one of the same columns (pandas
DataFrames of labels, or rows already encoded by :func:`ptheta.data.table.encode`; the
column types come from :class:`~ptheta.data.table.ColumnSpec`, inferred from the real
table when not given). Each is a pure function of its inputs and, where it draws
(subsamples, cross-validation folds), of its ``seed``:

- :func:`column_fidelity`: per column, the Kolmogorov–Smirnov statistic (count and
  continuous columns) or the total variation distance (label columns) between the real
  and synthetic marginals of the observed cells, and the difference of missing rates;
  0 is identical, 1 is disjoint.
- :func:`pairwise_association`: per pair of columns, the association in each table —
  Spearman (or Pearson) correlation of two numeric columns, Cramér's V of two label
  columns, the correlation ratio η of a label and a numeric column — and the absolute
  difference; 0 is the same dependence.
- :func:`detection_auc`: the cross-validated ROC AUC of classifiers (logistic regression
  and gradient-boosted trees) told to separate real from synthetic rows, balanced sizes;
  0.5 is indistinguishable, 1 is always told apart.
- :func:`distance_to_closest_record`: each synthetic row's Gower distance to the nearest
  training row against the same for held-out rows: a synthetic set that copies training
  rows sits closer to them than fresh data from the same distribution do.
- :func:`heldout_log_likelihood`: log p of the held-out rows under the model, per row, with
  its kind (exact, bound, estimate) and units.

:func:`synth_report` gathers them; :func:`report_markdown` writes it as Markdown.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def table(n, shift=0.0):
    ...     colour = rng.choice(["red", "blue"], n)
    ...     return pd.DataFrame({"colour": colour,
    ...                          "size": rng.normal(size=n) + shift + (colour == "red")})
    >>> real, same, moved = table(400), table(400), table(400, shift=1.0)
    >>> [round(c["statistic"], 2) for c in column_fidelity(real, real)]
    [0.0, 0.0]
    >>> column_fidelity(real, moved)[1]["statistic"] > 0.3
    True
    >>> auc = detection_auc(real, same, seed=0, classifiers=["logistic"])
    >>> abs(auc["logistic"]["auc"] - 0.5) < 0.1, detection_auc(real, moved)["logistic"]["auc"] > 0.7
    (True, True)

References:
    Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR (2017);
    Gower, "A general coefficient of similarity and some of its properties", Biometrics
    (1971); Cramér, "Mathematical Methods of Statistics" (1946), §21.9; Park, Mohammadi,
    Gorde, Jajodia, Park & Kim, "Data synthesis based on generative adversarial networks",
    VLDB (2018) (distance to the closest record); Zhao, Kunar, Birke & Chen, "CTAB-GAN",
    ACML (2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ptheta.data.table import LABEL_TYPES, ColumnSpec, check_table, encode, infer_schema, is_frame
from ptheta.errors import DataError, ParameterError

if TYPE_CHECKING:
    from ptheta.data.spec import Dataset
    from ptheta.models import GenerativeModel

# A pair's association in each table: the measure by the two column types.
MEASURES = {"numeric": "correlation", "label": "cramers_v", "mixed": "eta"}
# The detection classifiers, by report key.
CLASSIFIERS = ("logistic", "boosting")
# Distance to the closest record: the quantile of the held-out distances that sets the
# threshold, and when the synthetic rows at or below it count as copying: a one-sided
# Fisher test at this level, and odds at least this many times the held-out rows' odds
# (odds, not shares: where most held-out rows repeat a training row exactly, as in a
# small discrete table, a copying set can be only a little more often that close).
DCR_QUANTILE = 0.05
COPYING_P_VALUE = 0.001
COPYING_ODDS_RATIO = 2.0
# Detection folds keep identical rows together when they occur at most this many times.
MAX_GROUP = 20
# Pairwise distances are computed in blocks of about this many cells.
_BLOCK_CELLS = 1 << 22


# --------------------------------------------------------------------------- inputs
def _schema(real: Any, columns: Sequence[ColumnSpec] | None) -> tuple[ColumnSpec, ...]:
    """The columns given, else inferred from the real table (a DataFrame)."""
    if columns is not None:
        return tuple(ColumnSpec.from_json(c) for c in columns)
    if not is_frame(real):
        raise DataError(
            "encoded rows carry no column types: pass columns (ColumnSpec, or the "
            "data spec's columns), or the real table as a pandas DataFrame"
        )
    return infer_schema(real)


def _encoded(table: Any, columns: Sequence[ColumnSpec], what: str) -> np.ndarray:
    """``table`` (a DataFrame of labels, or encoded rows (N, D)) as float64 (N, D) codes,
    counts and reals, NaN where a cell is missing."""
    if is_frame(table):
        x = encode(table, columns, what)
    else:
        try:
            arr = np.asarray(table, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"{what} must be a pandas DataFrame or encoded rows (N, {len(columns)}) of numbers"
            ) from None
        x = check_table(arr, columns, allow_nan=True, what=what)
    if len(x) == 0:
        raise DataError(f"{what} has no rows")
    return x


def _inputs(
    real: Any, synthetic: Any, columns: Sequence[ColumnSpec] | None
) -> tuple[np.ndarray, np.ndarray, tuple[ColumnSpec, ...]]:
    cols = _schema(real, columns)
    return (
        _encoded(real, cols, "the real table"),
        _encoded(synthetic, cols, "the synthetic table"),
        cols,
    )


def _is_label(col: ColumnSpec) -> bool:
    return col.type in LABEL_TYPES


def _check_count(name: str, value: Any, low: int) -> int:
    """A whole-number argument of at least ``low``, or a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _check_seed(seed: Any) -> int:
    return _check_count("seed", seed, 0)


# --------------------------------------------------------------------------- columns
def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov–Smirnov statistic sup_t |F_a(t) − F_b(t)| of the empirical
    distribution functions of ``a`` and ``b`` (1-D, no NaN): 0 for equal samples, 1 when
    every value of one lies below every value of the other. Ties (counts) are handled
    exactly: both functions are evaluated at every observed value."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if len(a) == 0 or len(b) == 0:
        return float(len(a) != len(b))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def total_variation(a: np.ndarray, b: np.ndarray, n_levels: int) -> float:
    """The total variation distance ½ Σ_k |p_k − q_k| between the level frequencies of the
    codes ``a`` and ``b`` (1-D, 0..n_levels−1): 0 for equal frequencies, 1 for disjoint
    levels."""
    if len(a) == 0 or len(b) == 0:
        return float(len(a) != len(b))
    p = np.bincount(np.asarray(a, np.int64), minlength=n_levels) / len(a)
    q = np.bincount(np.asarray(b, np.int64), minlength=n_levels) / len(b)
    return float(0.5 * np.abs(p - q).sum())


def column_fidelity(
    real: Any, synthetic: Any, columns: Sequence[ColumnSpec] | None = None
) -> list[dict[str, Any]]:
    """How far each column's synthetic marginal is from the real one.

    For each column, over its observed (non-missing) cells: the Kolmogorov–Smirnov
    statistic (:func:`ks_statistic`) of a count or continuous column, the total variation
    distance (:func:`total_variation`) of a binary, categorical or ordinal one; both are 0
    for identical marginals and 1 for disjoint ones (a column observed in one table only
    counts as 1). Besides, the share of missing cells in each table and their absolute
    difference.

    Arguments:
        real, synthetic: the two tables (DataFrames, or encoded rows (N, D)).
        columns: the column types; inferred from ``real`` when None.

    Returns:
        one dict per column: ``column``, ``type``, ``metric`` (``"ks"`` or ``"tv"``),
        ``statistic``, ``missing_real``, ``missing_synthetic``, ``missing_diff``.
    """
    x, s, cols = _inputs(real, synthetic, columns)
    out = []
    for j, col in enumerate(cols):
        a, b = x[:, j], s[:, j]
        seen_a, seen_b = a[~np.isnan(a)], b[~np.isnan(b)]
        if _is_label(col):
            metric, stat = "tv", total_variation(seen_a, seen_b, col.n_levels)
        else:
            metric, stat = "ks", ks_statistic(seen_a, seen_b)
        miss_a, miss_b = float(np.isnan(a).mean()), float(np.isnan(b).mean())
        out.append({
            "column": col.name,
            "type": col.type,
            "metric": metric,
            "statistic": stat,
            "missing_real": miss_a,
            "missing_synthetic": miss_b,
            "missing_diff": abs(miss_a - miss_b),
        })  # fmt: skip
    return out


# --------------------------------------------------------------------------- pairs
def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two label columns given as codes (1-D, equal length, no NaN):
    √(χ² / (n · (min(r, c) − 1))) of their contingency table, r and c the levels that occur;
    0 for independence (and when either column has one level only), 1 when either
    determines the other. No bias correction.

    Example:
        >>> round(cramers_v(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])), 6)
        1.0
        >>> cramers_v(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
        0.0
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    n = len(a)
    if n == 0:
        return 0.0
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    r, c = int(ia.max()) + 1, int(ib.max()) + 1
    if min(r, c) < 2:
        return 0.0
    observed = np.bincount(ia * c + ib, minlength=r * c).reshape(r, c).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return float(min(1.0, math.sqrt(chi2 / (n * (min(r, c) - 1)))))


def correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    """The correlation ratio η of a numeric column ``values`` on a label column ``codes``
    (1-D, equal length, no NaN): √(between-level sum of squares / total sum of squares),
    0 when the level means are equal (or the values constant), 1 when the level determines
    the value.

    Example:
        >>> correlation_ratio(np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 5.0, 5.0]))
        1.0
    """
    codes, values = np.asarray(codes, np.int64), np.asarray(values, np.float64)
    if len(values) == 0:
        return 0.0
    centred = values - values.mean()
    total = float(centred @ centred)
    if total <= 0:
        return 0.0
    _, level = np.unique(codes, return_inverse=True)
    sums = np.bincount(level, weights=centred)
    counts = np.bincount(level)
    between = float((sums**2 / counts).sum())
    return float(min(1.0, math.sqrt(max(between, 0.0) / total)))


def _correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    """Pearson correlation of ``a`` and ``b``, or of their ranks (Spearman); 0 when
    either is constant."""
    if method == "spearman":
        from scipy.stats import rankdata

        a, b = rankdata(a), rankdata(b)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return 0.0 if denom == 0 else float(np.clip((a @ b) / denom, -1.0, 1.0))


def association(x: np.ndarray, i: int, j: int, cols: Sequence[ColumnSpec], method: str) -> float:
    """The association of columns ``i`` and ``j`` of the encoded rows ``x`` over the rows
    where both are observed (NaN when fewer than 2 are): a correlation of two numeric
    columns, Cramér's V of two label columns, η of a label and a numeric one."""
    both = ~np.isnan(x[:, i]) & ~np.isnan(x[:, j])
    a, b = x[both, i], x[both, j]
    if len(a) < 2:
        return math.nan
    label_i, label_j = _is_label(cols[i]), _is_label(cols[j])
    if label_i and label_j:
        return cramers_v(a, b)
    if label_i:
        return correlation_ratio(a, b)
    if label_j:
        return correlation_ratio(b, a)
    return _correlation(a, b, method)


def pairwise_association(
    real: Any,
    synthetic: Any,
    columns: Sequence[ColumnSpec] | None = None,
    *,
    method: str = "spearman",
    n_worst: int = 5,
) -> dict[str, Any]:
    """How far the synthetic table's pairwise dependence is from the real one's.

    For each pair of columns, its association in each table over the rows where both cells
    are observed: the ``method`` correlation (``"spearman"`` or ``"pearson"``, in [−1, 1])
    of two numeric (count, continuous) columns, Cramér's V (:func:`cramers_v`, in [0, 1])
    of two label (binary, categorical, ordinal) columns, the correlation ratio η
    (:func:`correlation_ratio`, in [0, 1]) of a label and a numeric column; and the
    absolute difference between the two tables (0: the same dependence; at most 2 for a
    correlation, 1 otherwise). A pair observed together in fewer than 2 rows of either
    table has no value (None) and is left out of the means.

    Returns:
        ``pairs`` (one dict per pair: ``a``, ``b``, ``measure`` — ``correlation``,
        ``cramers_v`` or ``eta`` —, ``real``, ``synthetic``, ``diff``), ``mean_abs_diff``
        over all pairs, ``mean_abs_diff_by_measure``, and ``worst``: the ``n_worst`` pairs
        of largest difference. With one column there are no pairs and the means are None.
    """
    if method not in ("spearman", "pearson"):
        raise ParameterError(f"method must be 'spearman' or 'pearson', got {method!r}")
    x, s, cols = _inputs(real, synthetic, columns)
    pairs = []
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            kinds = {_is_label(cols[i]), _is_label(cols[j])}
            key = "mixed" if len(kinds) == 2 else ("label" if True in kinds else "numeric")
            r, q = association(x, i, j, cols, method), association(s, i, j, cols, method)
            diff = abs(q - r)
            pairs.append({
                "a": cols[i].name,
                "b": cols[j].name,
                "measure": MEASURES[key],
                "real": _finite(r),
                "synthetic": _finite(q),
                "diff": _finite(diff),
            })  # fmt: skip
    scored = [p for p in pairs if p["diff"] is not None]
    by_measure = {}
    for measure in MEASURES.values():
        diffs = [p["diff"] for p in scored if p["measure"] == measure]
        if diffs:
            by_measure[measure] = float(np.mean(diffs))
    worst = sorted(scored, key=lambda p: -p["diff"])[: max(0, int(n_worst))]
    return {
        "method": method,
        "pairs": pairs,
        "mean_abs_diff": float(np.mean([p["diff"] for p in scored])) if scored else None,
        "mean_abs_diff_by_measure": by_measure,
        "worst": worst,
    }


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# --------------------------------------------------------------------------- detection
def detection_features(
    x: np.ndarray, columns: Sequence[ColumnSpec], reference: np.ndarray
) -> np.ndarray:
    """Encoded rows ``x`` as classifier features: a label column one-hot over its levels, a
    numeric column standardised by the mean and standard deviation of its observed cells
    in ``reference`` (the real rows); a missing cell gives zeros plus 1 in the column's
    missing indicator (present for each column with a missing cell in ``x`` or
    ``reference``)."""
    parts = []
    for j, col in enumerate(columns):
        v = x[:, j]
        miss = np.isnan(v)
        if _is_label(col):
            onehot = np.zeros((len(v), col.n_levels))
            rows = np.flatnonzero(~miss)
            onehot[rows, v[rows].astype(np.int64)] = 1.0
            parts.append(onehot)
        else:
            ref = reference[:, j]
            ref = ref[~np.isnan(ref)]
            mean = float(ref.mean()) if len(ref) else 0.0
            std = float(ref.std()) if len(ref) else 0.0
            z = (np.where(miss, mean, v) - mean) / (std if std > 0 else 1.0)
            parts.append(z[:, None])
        if miss.any() or np.isnan(reference[:, j]).any():
            parts.append(miss[:, None].astype(np.float64))
    return np.concatenate(parts, axis=1)


def _classifier(name: str, seed: int) -> Any:
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def detection_auc(
    real: Any,
    synthetic: Any,
    columns: Sequence[ColumnSpec] | None = None,
    *,
    n_folds: int = 5,
    max_rows: int = 5000,
    seed: int = 0,
    classifiers: Sequence[str] = CLASSIFIERS,
) -> dict[str, Any]:
    """A classifier two-sample test: how well real and synthetic rows can be told apart.

    The two tables are subsampled to the same size (the smaller one's, at most
    ``max_rows`` each, without replacement, with ``seed``), turned into features
    (:func:`detection_features`: one-hot labels, standardised numbers, missing indicators)
    and each classifier — ``"logistic"`` (logistic regression) and ``"boosting"``
    (scikit-learn's HistGradientBoostingClassifier) — is scored by stratified
    ``n_folds``-fold cross-validation: the ROC AUC of its held-out predictions in each
    fold. Identical rows occurring at most 20 times share a fold, so that no row is scored
    by a classifier that learnt its copy with the other label (identical tables give
    exactly 0.5); a fold left with one table only is dropped. An AUC of 0.5 means the
    synthetic rows cannot be told from real ones (by that classifier); 1 means they
    always can. Values a little below 0.5 are noise.

    Returns:
        ``n_per_class``, ``n_folds`` (the folds scored) and, per classifier,
        ``{"auc": mean over folds, "std_err": its standard error over folds, "folds": each
        fold's AUC}``.
    """
    seed = _check_seed(seed)
    for name in classifiers:
        if name not in CLASSIFIERS:
            raise ParameterError(f"unknown classifier {name!r}; use {', '.join(CLASSIFIERS)}")
    n_folds = _check_count("n_folds", n_folds, 2)
    max_rows = _check_count("max_rows", max_rows, n_folds)
    x, s, cols = _inputs(real, synthetic, columns)
    n = min(len(x), len(s), int(max_rows))
    if n < n_folds:
        raise DataError(
            f"detection needs at least {n_folds} rows of each table for {n_folds}-fold "
            f"cross-validation; it has {min(len(x), len(s))}"
        )
    rng = np.random.default_rng(seed)
    x = x[np.sort(rng.choice(len(x), n, replace=False))]
    s = s[np.sort(rng.choice(len(s), n, replace=False))]
    features = detection_features(np.concatenate([x, s]), cols, x)
    target = np.repeat([0, 1], n)  # 1: synthetic
    from sklearn.metrics import roc_auc_score

    folds = _folds(features, target, n_folds, seed)
    if len(folds) < 2:
        raise DataError(
            f"the {n} rows of each table hold too few distinct rows to split into "
            f"{n_folds} folds with both tables in each; give more rows"
        )
    out: dict[str, Any] = {"n_per_class": int(n), "n_folds": len(folds)}
    for name in classifiers:
        aucs = []
        for train, test in folds:
            model = _classifier(name, seed).fit(features[train], target[train])
            aucs.append(
                float(roc_auc_score(target[test], model.predict_proba(features[test])[:, 1]))
            )
        out[name] = {
            "auc": float(np.mean(aucs)),
            "std_err": float(np.std(aucs, ddof=1) / math.sqrt(len(aucs))),
            "folds": aucs,
        }
    return out


def _folds(
    features: np.ndarray, target: np.ndarray, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified cross-validation folds that keep rare identical rows together.

    A row whose copy (of the other class) sat in the training folds is pushed towards the
    wrong label by a classifier that learnt the copy: identical tables would score an AUC
    far below 0.5 that says nothing about their distributions. Rows repeated at most
    :data:`MAX_GROUP` times therefore share a fold; rows repeated more often (the common
    rows of a small discrete table) are split one by one, since holding a whole frequent
    row out would hide from the classifier exactly the rows whose frequencies differ.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    _, groups, counts = np.unique(features, axis=0, return_inverse=True, return_counts=True)
    groups = groups.ravel()
    frequent = counts[groups] > MAX_GROUP
    groups[frequent] = groups.max() + 1 + np.arange(int(frequent.sum()))  # one group per row
    splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    folds = splitter.split(features, target, groups)
    # a fold of a few large groups may hold one class only: it has no AUC
    return [(tr, te) for tr, te in folds if len(set(target[te])) == 2 and len(set(target[tr])) == 2]


# --------------------------------------------------------------------------- privacy
def gower_ranges(x: np.ndarray, columns: Sequence[ColumnSpec]) -> np.ndarray:
    """(D,) the range (max − min) of each numeric column's observed cells in ``x`` (1 where
    it is 0 or the column is never observed; unused for label columns)."""
    ranges = np.ones(len(columns))
    for j, col in enumerate(columns):
        v = x[~np.isnan(x[:, j]), j]
        if not _is_label(col) and len(v) and np.ptp(v) > 0:
            ranges[j] = float(np.ptp(v))
    return ranges


def nearest_gower(
    queries: np.ndarray, reference: np.ndarray, columns: Sequence[ColumnSpec], ranges: np.ndarray
) -> np.ndarray:
    """(Q,) each query row's Gower distance to its nearest ``reference`` row: the mean
    over columns of |a − b| / range (clipped at 1) for numeric columns and of [a ≠ b] for
    label columns; a cell missing in one row and not the other counts 1, missing in both
    0. Every distance is in [0, 1]; 0 is an identical row."""
    q, d = queries.shape
    block = max(1, _BLOCK_CELLS // max(1, len(reference) * d))
    label = np.array([_is_label(c) for c in columns])
    ref_miss = np.isnan(reference)
    ref = np.nan_to_num(reference)
    out = np.empty(q)
    for start in range(0, q, block):
        a = queries[start : start + block]
        a_miss = np.isnan(a)
        a0 = np.nan_to_num(a)
        total = np.zeros((len(a), len(reference)))
        for j in range(d):
            if label[j]:
                part = (a0[:, j, None] != ref[None, :, j]).astype(np.float64)
            else:
                part = np.minimum(np.abs(a0[:, j, None] - ref[None, :, j]) / ranges[j], 1.0)
            one_missing = a_miss[:, j, None] != ref_miss[None, :, j]
            both_missing = a_miss[:, j, None] & ref_miss[None, :, j]
            part[one_missing] = 1.0
            part[both_missing] = 0.0
            total += part
        out[start : start + block] = total.min(axis=1) / d
    return out


def distance_to_closest_record(
    train: Any,
    holdout: Any,
    synthetic: Any,
    columns: Sequence[ColumnSpec] | None = None,
    *,
    quantile: float = DCR_QUANTILE,
    max_rows: int = 2000,
    max_train: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Does the synthetic table copy its training rows? Distances to the closest record.

    Each synthetic row's Gower distance (:func:`nearest_gower`, in [0, 1]) to its nearest
    training row is set against the same distance of held-out rows, real rows the model
    never saw. The threshold is the held-out distances' ``quantile`` (5th percentile by
    default); a synthetic set that generalises has about the same share of rows at or
    below it as the held-out rows (≈ 5%, more where rows repeat exactly, as in small
    discrete tables), while one that copies training rows has many more. At most
    ``max_rows`` synthetic and held-out rows and ``max_train`` training rows are used
    (subsampled with ``seed``); the same training rows for both.

    Returns:
        ``threshold``; ``share_synthetic`` and ``share_holdout`` (at or below it);
        ``odds_ratio`` of the two shares (½ added to each count); ``p_value`` (one-sided
        Fisher exact test that the synthetic share is larger); ``copying`` (True when
        p < 0.001 and the odds ratio is at least 2); ``median_synthetic``,
        ``median_holdout`` and their ``median_ratio`` (≈ 1: no copying, < 1: synthetic
        rows closer to training; None when the held-out median is 0); ``exact_synthetic``
        and ``exact_holdout`` (shares of rows identical to a training row); ``n_train``,
        ``n_holdout``, ``n_synthetic``.
    """
    seed = _check_seed(seed)
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile < 1:
        raise ParameterError(f"quantile must be a number in (0, 1), got {quantile!r}")
    max_rows, max_train = (
        _check_count("max_rows", max_rows, 1),
        _check_count("max_train", max_train, 1),
    )
    cols = _schema(train, columns)
    tr = _encoded(train, cols, "the training table")
    ho = _encoded(holdout, cols, "the held-out table")
    sy = _encoded(synthetic, cols, "the synthetic table")
    rng = np.random.default_rng(seed)

    def subsample(x: np.ndarray, most: int) -> np.ndarray:
        return x if len(x) <= most else x[np.sort(rng.choice(len(x), most, replace=False))]

    tr, ho, sy = subsample(tr, max_train), subsample(ho, max_rows), subsample(sy, max_rows)
    ranges = gower_ranges(tr, cols)
    d_ho = nearest_gower(ho, tr, cols, ranges)
    d_sy = nearest_gower(sy, tr, cols, ranges)
    threshold = float(np.quantile(d_ho, quantile))
    k_sy, k_ho = int((d_sy <= threshold).sum()), int((d_ho <= threshold).sum())
    from scipy.stats import fisher_exact

    table = [[k_sy, len(d_sy) - k_sy], [k_ho, len(d_ho) - k_ho]]
    p_value = float(fisher_exact(table, alternative="greater")[1])
    (a, b), (c, d) = table  # the odds ratio with ½ added to each cell: always finite
    odds_ratio = (a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))
    share_sy, share_ho = k_sy / len(d_sy), k_ho / len(d_ho)
    median_sy, median_ho = float(np.median(d_sy)), float(np.median(d_ho))
    return {
        "distance": "gower",
        "quantile": float(quantile),
        "threshold": threshold,
        "share_synthetic": share_sy,
        "share_holdout": share_ho,
        "odds_ratio": odds_ratio,
        "p_value": p_value,
        "copying": bool(p_value < COPYING_P_VALUE and odds_ratio >= COPYING_ODDS_RATIO),
        "median_synthetic": median_sy,
        "median_holdout": median_ho,
        "median_ratio": median_sy / median_ho if median_ho > 0 else None,
        "exact_synthetic": float((d_sy == 0).mean()),
        "exact_holdout": float((d_ho == 0).mean()),
        "n_train": len(tr),
        "n_holdout": len(ho),
        "n_synthetic": len(sy),
    }


# --------------------------------------------------------------------------- likelihood
def heldout_log_likelihood(
    model: GenerativeModel, holdout: Any, columns: Sequence[ColumnSpec] | None = None
) -> dict[str, Any]:
    """The fitted ``model``'s log-likelihood of the held-out rows, per row, in nats.

    ``likelihood`` is its kind (``exact``, ``bound``: a lower bound on log p, ``estimate``:
    stochastic, its noise inside ``std_err``, or ``none``: no value) and ``units`` what the
    number is (``discrete``: a log-probability; ``continuous``: a log-density; ``mixed``: the
    log of a probability times a density, comparable only with other models of the same
    table). Rows with missing cells are scored by marginalising them where the model can;
    otherwise they are left out (``n_scored`` < ``n``).

    Returns:
        ``mean`` (nats per row; None without a likelihood), ``std_err`` (of the mean over
        rows), ``per_column`` (``mean`` / D), ``likelihood``, ``units``, ``n``, ``n_scored``.
    """
    cols = columns if columns is not None else model.fitted_spec.columns
    if cols is None:
        raise DataError(f"{model.name!r} was not fitted on a table; no columns to score")
    x = _encoded(holdout, cols, "the held-out table")
    out: dict[str, Any] = {
        "likelihood": model.likelihood_,
        "units": model.units_,
        "n": len(x),
        "n_scored": 0,
        "mean": None,
        "std_err": None,
        "per_column": None,
    }
    if model.likelihood_ == "none":
        return out
    if not model.capabilities().marginalises:
        x = x[~np.isnan(x).any(axis=1)]
    out["n_scored"] = len(x)
    if len(x) == 0:
        return out
    summary = model.nll_summary(x)
    out["mean"] = -summary["nll_nats"]
    out["std_err"] = summary["std_err"]
    out["per_column"] = out["mean"] / len(cols)
    return out


# --------------------------------------------------------------------------- report
def synth_report(
    train: Any,
    holdout: Any,
    synthetic: Any,
    columns: Sequence[ColumnSpec] | None = None,
    *,
    model: GenerativeModel | None = None,
    seed: int = 0,
    method: str = "spearman",
    n_worst: int = 5,
    max_rows: int = 5000,
) -> dict[str, Any]:
    """Every quality metric of a synthetic table, as one JSON-able dict.

    The synthetic table is compared with the training table (what the model learned) for
    column fidelity, pairwise association and detection, and with both the training and
    the held-out table for the distance to the closest record; the held-out
    log-likelihood is the ``model``'s (when given and it has one).

    Returns:
        ``columns`` (:func:`column_fidelity`), ``column_fidelity`` (the mean statistic),
        ``pairs`` (:func:`pairwise_association`), ``detection`` (:func:`detection_auc`),
        ``dcr`` (:func:`distance_to_closest_record`), ``likelihood``
        (:func:`heldout_log_likelihood`, or None), ``n_train``, ``n_holdout``,
        ``n_synthetic``.
    """
    cols = _schema(train, columns)
    tr = _encoded(train, cols, "the training table")
    ho = _encoded(holdout, cols, "the held-out table")
    sy = _encoded(synthetic, cols, "the synthetic table")
    per_column = column_fidelity(tr, sy, cols)
    return {
        "n_train": len(tr),
        "n_holdout": len(ho),
        "n_synthetic": len(sy),
        "schema": [c.to_json() for c in cols],
        "columns": per_column,
        "column_fidelity": float(np.mean([c["statistic"] for c in per_column])),
        "pairs": pairwise_association(tr, sy, cols, method=method, n_worst=n_worst),
        "detection": detection_auc(tr, sy, cols, max_rows=max_rows, seed=seed),
        "dcr": distance_to_closest_record(tr, ho, sy, cols, seed=seed),
        "likelihood": None if model is None else heldout_log_likelihood(model, ho, cols),
    }


# The headline numbers of :func:`table_quality`, in the order a comparison table shows them.
TABLE_METRIC_KEYS = (
    "column_fidelity",
    "pair_diff",
    "auc_logistic",
    "auc_boosting",
    "dcr_share",
    "dcr_share_holdout",
    "copying",
)


def table_quality(samples: Any, data: Dataset, *, seed: int = 0) -> dict[str, Any]:
    """The headline quality numbers of ``samples`` (encoded rows or a DataFrame) from a
    model fitted on ``data.train`` (a table `Dataset`), held out against ``data.test``:
    one flat dict with :data:`TABLE_METRIC_KEYS` for a comparison of several models
    (:func:`synth_report` has the details)."""
    columns = data.spec.columns
    if data.spec.kind != "table" or columns is None:
        raise DataError(f"table quality compares tables; {data.name!r} is {data.spec.describe()}")
    report = synth_report(data.train.x, data.test.x, samples, columns, seed=seed)
    dcr, det = report["dcr"], report["detection"]
    return {
        "column_fidelity": report["column_fidelity"],
        "pair_diff": report["pairs"]["mean_abs_diff"],
        "auc_logistic": det["logistic"]["auc"],
        "auc_boosting": det["boosting"]["auc"],
        "dcr_share": dcr["share_synthetic"],
        "dcr_share_holdout": dcr["share_holdout"],
        "copying": dcr["copying"],
    }


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers of a :func:`synth_report` as (metric, value, what it means)
    rows, for a terminal or Markdown table."""
    det, dcr, pairs = report["detection"], report["dcr"], report["pairs"]
    rows = [
        ("column fidelity (mean KS / TV)", _num(report["column_fidelity"]), "0 = same marginals"),
        ("pair association |diff| (mean)", _num(pairs["mean_abs_diff"]), "0 = same dependence"),
    ]
    for name, title in (("logistic", "logistic regression"), ("boosting", "gradient boosting")):
        if name in det:
            value = f"{det[name]['auc']:.3f} ± {det[name]['std_err']:.3f}"
            rows.append((f"detection AUC, {title}", value, "0.5 = indistinguishable"))
    share = f"{dcr['share_synthetic']:.1%} (held-out {dcr['share_holdout']:.1%})"
    rows.append((
        f"rows closer to training than {dcr['quantile']:.0%} of held-out",
        share + (" COPYING" if dcr["copying"] else ""),
        f"about equal: no copying (p = {dcr['p_value']:.2g})",
    ))  # fmt: skip
    rows.append(("DCR median ratio (synthetic / held-out)", _num(dcr["median_ratio"]), "≈ 1"))
    rows.append((
        "rows identical to a training row",
        f"{dcr['exact_synthetic']:.1%} (held-out {dcr['exact_holdout']:.1%})",
        "about equal",
    ))  # fmt: skip
    ll = report.get("likelihood")
    if ll is not None:
        if ll["mean"] is None:
            rows.append(("held-out log-likelihood", "—", f"{ll['likelihood']}: no likelihood"))
        else:
            value = f"{ll['mean']:.4g} ± {ll['std_err']:.2g}"
            rows.append((
                "held-out log-likelihood (nats / row)",
                value,
                f"{ll['likelihood']}, {ll['units']} units; higher is better",
            ))  # fmt: skip
    return rows


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report_markdown(report: dict[str, Any], title: str = "Synthetic data quality") -> str:
    """A :func:`synth_report` as a Markdown page: the headline table, each column's
    fidelity, the worst pairs, and what the numbers mean."""
    lines = [f"# {title}", ""]
    lines.append(
        f"{report['n_synthetic']:,} synthetic rows against {report['n_train']:,} training "
        f"rows and {report['n_holdout']:,} held-out rows."
    )
    lines += ["", "| metric | value | reading |", "|---|---|---|"]
    lines += [f"| {_md(m)} | {_md(v)} | {_md(r)} |" for m, v, r in summary_rows(report)]
    lines += ["", "## Columns", "", "| column | type | metric | statistic | missing real | "
              "missing synthetic |", "|---|---|---|---:|---:|---:|"]  # fmt: skip
    for c in report["columns"]:
        lines.append(
            f"| {_md(c['column'])} | {c['type']} | {c['metric'].upper()} | "
            f"{c['statistic']:.3f} | {c['missing_real']:.1%} | {c['missing_synthetic']:.1%} |"
        )
    pairs = report["pairs"]
    if pairs["worst"]:
        lines += ["", "## Pairs with the largest association difference", "",
                  "| pair | measure | real | synthetic | difference |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        for p in pairs["worst"]:
            lines.append(
                f"| {_md(p['a'])} – {_md(p['b'])} | {p['measure']} | {_num(p['real'])} | "
                f"{_num(p['synthetic'])} | {_num(p['diff'])} |"
            )
    lines += ["", "## Reading", "", READING, ""]
    return "\n".join(lines)


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


READING = (
    "Column fidelity: the Kolmogorov–Smirnov statistic (count, continuous columns) or the "
    "total variation distance (label columns) between each column's real and synthetic "
    "values, 0 for the same distribution, 1 for disjoint ones. Pair association: Spearman "
    "correlation (numeric pairs), Cramér's V (label pairs) or the correlation ratio η (a "
    "label and a numeric column), computed in each table; the absolute difference, 0 for "
    "the same dependence. Detection AUC: 5-fold cross-validated ROC AUC of a classifier "
    "separating real from synthetic rows (equal numbers of each); 0.5 means it cannot tell "
    "them apart, 1 that it always can. Distance to the closest record (Gower distance, in "
    "[0, 1]): the share of synthetic rows nearer to a training row than the 5th percentile "
    "of held-out rows' distances, next to the held-out share; a much larger synthetic share "
    "means training rows are copied. Held-out log-likelihood: log p of the held-out rows "
    "under the model, nats per row, with its kind; 'mixed' units (a probability times a "
    "density) compare only with other models of the same table."
)
