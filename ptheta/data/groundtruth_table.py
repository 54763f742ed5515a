"""Synthetic mixed-type table from a known Bayesian network: exact log p(x) and entropy."""

from __future__ import annotations

import math

import numpy as np

from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.data.table import ColumnSpec

TABLE_SPLIT = (8_000, 1_000, 1_000)
TABLE_SEED = 161_803
# The Poisson entropies are sums over counts 0..K, K far enough into the tail that the
# probability left beyond it is below this; the entropy it leaves out is below 1e-12 nats.
POISSON_TAIL = 1e-18

COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("season", "categorical", ("winter", "spring", "summer", "autumn")),
    ColumnSpec("weekend", "binary", ("no", "yes")),
    ColumnSpec("busy", "ordinal", ("low", "medium", "high")),
    ColumnSpec("rain", "binary", ("no", "yes")),
    ColumnSpec("visitors", "count"),
    ColumnSpec("temperature", "continuous"),
    ColumnSpec("spend", "continuous", lower=0.0),
)
# (parent, child) pairs of the network, by column name
EDGES: tuple[tuple[str, str], ...] = (
    ("season", "busy"),
    ("weekend", "busy"),
    ("season", "rain"),
    ("busy", "visitors"),
    ("season", "temperature"),
    ("rain", "temperature"),
    ("busy", "spend"),
)

P_SEASON = np.array([0.2, 0.25, 0.3, 0.25])
P_WEEKEND = np.array([5 / 7, 2 / 7])
# p(busy | season, weekend): (4, 2, 3)
P_BUSY = np.array(
    [
        [[0.7, 0.25, 0.05], [0.4, 0.4, 0.2]],
        [[0.5, 0.35, 0.15], [0.2, 0.45, 0.35]],
        [[0.3, 0.4, 0.3], [0.1, 0.3, 0.6]],
        [[0.55, 0.35, 0.1], [0.25, 0.45, 0.3]],
    ]
)
P_RAIN = np.array([0.5, 0.35, 0.15, 0.4])  # p(rain = yes | season)
VISITOR_RATE = np.array([3.0, 8.0, 20.0])  # Poisson rate of visitors | busy
TEMP_MEAN = np.array([[2.0, 0.0], [12.0, 9.0], [24.0, 19.0], [13.0, 10.0]])  # | season, rain
TEMP_STD = np.array([4.0, 3.5, 3.0, 3.5])  # | season
SPEND_MEAN = np.array([15.0, 25.0, 40.0])  # | busy, before truncation at 0
SPEND_STD = np.array([10.0, 12.0, 15.0])


def sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of the network by ancestral sampling, float64 (n, 7): codes, counts, reals."""
    from scipy.stats import truncnorm

    season = _draw(np.broadcast_to(P_SEASON, (n, 4)), rng)
    weekend = _draw(np.broadcast_to(P_WEEKEND, (n, 2)), rng)
    busy = _draw(P_BUSY[season, weekend], rng)
    rain = (rng.random(n) < P_RAIN[season]).astype(np.int64)
    visitors = rng.poisson(VISITOR_RATE[busy])
    temperature = TEMP_MEAN[season, rain] + TEMP_STD[season] * rng.standard_normal(n)
    mean, std = SPEND_MEAN[busy], SPEND_STD[busy]
    spend = truncnorm.ppf(rng.random(n), -mean / std, np.inf, loc=mean, scale=std)
    columns = (season, weekend, busy, rain, visitors, temperature, np.maximum(spend, 0.0))
    return np.column_stack(columns).astype(np.float64)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One level per row of ``probs`` (n, K), by the inverse CDF."""
    u = rng.random((len(probs), 1))
    return np.minimum((np.cumsum(probs, axis=1) <= u).sum(axis=1), probs.shape[1] - 1)


def log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log p(x) of complete rows ``x`` (N, 7) in nats: log-probability of the
    discrete columns times the density of the continuous ones, shape (N,)."""
    from scipy.special import gammaln, log_ndtr

    x = np.asarray(x, dtype=np.float64)
    season, weekend, busy, rain = (x[:, j].astype(np.int64) for j in range(4))
    visitors, temperature, spend = x[:, 4], x[:, 5], x[:, 6]
    rate = VISITOR_RATE[busy]
    out = np.log(P_SEASON[season]) + np.log(P_WEEKEND[weekend])
    out += np.log(P_BUSY[season, weekend, busy])
    out += np.log(np.where(rain == 1, P_RAIN[season], 1.0 - P_RAIN[season]))
    out += visitors * np.log(rate) - rate - gammaln(visitors + 1.0)
    out += _normal_log_pdf(temperature, TEMP_MEAN[season, rain], TEMP_STD[season])
    mean, std = SPEND_MEAN[busy], SPEND_STD[busy]
    out += _normal_log_pdf(spend, mean, std) - log_ndtr(mean / std)  # mass above 0: Φ(μ/σ)
    return np.where(spend >= 0, out, -np.inf)


def _normal_log_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def entropy() -> float:
    """The network's exact entropy in nats (a mixed entropy: −E log of probability ×
    density), one closed form per factor: H(root) and H(child | parents) averaged over the
    parents' exact joint, Gaussian conditionals analytic, the truncated Gaussian by its
    closed form, Poisson entropies by a sum truncated where less than
    :data:`POISSON_TAIL` probability is left."""
    from scipy.special import entr

    p_sw = P_SEASON[:, None] * P_WEEKEND[None, :]  # (4, 2) p(season, weekend)
    p_busy = (p_sw[:, :, None] * P_BUSY).sum(axis=(0, 1))  # (3,)
    rain = np.stack([1.0 - P_RAIN, P_RAIN], axis=1)  # (4, 2) p(rain | season)
    h = entr(P_SEASON).sum() + entr(P_WEEKEND).sum()
    h += (p_sw * entr(P_BUSY).sum(axis=2)).sum()
    h += (P_SEASON * entr(rain).sum(axis=1)).sum()
    h += (p_busy * [poisson_entropy(r) for r in VISITOR_RATE]).sum()
    h += (P_SEASON[:, None] * rain * 0.5 * np.log(2 * np.pi * np.e * TEMP_STD[:, None] ** 2)).sum()
    h += (p_busy * truncated_normal_entropy(SPEND_MEAN, SPEND_STD, 0.0)).sum()
    return float(h)


def poisson_entropy(rate: float) -> float:
    """Entropy of Poisson(rate) in nats, −Σ p_k log p_k over k = 0..K with less than
    :data:`POISSON_TAIL` probability beyond K."""
    from scipy.stats import poisson

    k_max = math.ceil(rate)
    while poisson.sf(k_max, rate) >= POISSON_TAIL:  # P(K > k_max)
        k_max += math.ceil(math.sqrt(rate)) + 1
    log_p = poisson.logpmf(np.arange(k_max + 1), rate)
    return float(-(np.exp(log_p) * log_p).sum())


def truncated_normal_entropy(mean: np.ndarray, std: np.ndarray, lower: float) -> np.ndarray:
    """Entropy of N(mean, std²) truncated to [lower, ∞): log(√(2πe) σ Z) + α φ(α) / (2Z),
    α = (lower − mean) / σ, Z = 1 − Φ(α)."""
    from scipy.special import ndtr

    alpha = (lower - np.asarray(mean)) / np.asarray(std)
    z = ndtr(-alpha)
    phi = np.exp(-0.5 * alpha**2) / math.sqrt(2 * math.pi)
    return np.log(math.sqrt(2 * math.pi * math.e) * std * z) + alpha * phi / (2 * z)


def table_dataset() -> Dataset:
    """The built-in ``groundtruth-table``: 7 mixed columns from a fixed Bayesian network.

    Returns:
        a :class:`Dataset` of kind ``table`` with 8 000 / 1 000 / 1 000 rows, the exact
        ``entropy`` (nats, the floor of any model's expected NLL), ``log_density`` (the
        network's exact log p(x)) and ``extra["true_edges"]`` (the (parent, child) names).

    Example:
        >>> data = table_dataset()
        >>> data.spec.describe()
        'table of 7 columns (1 categorical, 2 binary, 1 ordinal, 1 count, 2 continuous)'
        >>> round(data.entropy, 2)
        12.31
    """
    x = sample(sum(TABLE_SPLIT), np.random.default_rng(TABLE_SEED))  # (10000, 7)
    spec = DataSpec("table", (len(COLUMNS),), columns=COLUMNS)
    a, b = TABLE_SPLIT[0], TABLE_SPLIT[0] + TABLE_SPLIT[1]
    train, val, test = (Split(x[s], None, spec) for s in (slice(0, a), slice(a, b), slice(b, None)))
    return Dataset(
        name="groundtruth-table",
        spec=spec,
        train=train,
        val=val,
        test=test,
        description=DESCRIPTION,
        log_density=log_prob,
        entropy=entropy(),
        extra={
            "source": "ptheta.data.groundtruth_table",
            "seed": TABLE_SEED,
            "true_edges": EDGES,
        },
    )


DESCRIPTION = (
    "7 mixed columns (season, weekend, busy, rain, visitors, temperature, spend >= 0) from a "
    "fixed Bayesian network: categorical, binary, ordinal, count and continuous; exact "
    "entropy and log p(x)"
)
