"""Sample-quality metrics: Fréchet distance, k-NN precision/recall, kernel MMD, memorisation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ptheta.errors import DataError, ParameterError

if TYPE_CHECKING:
    from ptheta.data.spec import Dataset
    from ptheta.eval.features import FeatureExtractor

# A memorisation ratio below this flags copying: samples sit markedly closer to the
# training points than fresh data from the same distribution (held-out points) do.
COPYING_THRESHOLD = 0.75
# Pairwise distances are computed in blocks of this many rows (memory stays ~ block × N).
_BLOCK = 1024


# --------------------------------------------------------------------------- input checks
def _as_features(x: Any, what: str, min_rows: int = 1) -> np.ndarray:
    """``x`` as a float64 (N, D) array; trailing axes (images) are flattened."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a numeric array of shape (N, D)") from None
    if arr.ndim < 2:
        raise DataError(
            f"{what} must have shape (N, D) with one example per row, got shape {arr.shape}; "
            "a single feature is x[:, None]"
        )
    if len(arr) < min_rows:
        raise DataError(f"{what} has {len(arr)} rows; this metric needs at least {min_rows}")
    arr = arr.reshape(len(arr), -1)
    if arr.shape[1] == 0:
        raise DataError(f"{what} has no features (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise DataError(
            f"{what} contains NaN or infinite values in {int((~np.isfinite(arr)).sum())} "
            "entries; drop those rows (a diverged model's samples, say) first"
        )
    return arr


def _pair(a: Any, b: Any, names: tuple[str, str], min_rows: int = 1) -> tuple[np.ndarray, ...]:
    x = _as_features(a, names[0], min_rows)
    y = _as_features(b, names[1], min_rows)
    if x.shape[1] != y.shape[1]:
        raise DataError(
            f"{names[0]} has {x.shape[1]} features per row but {names[1]} has {y.shape[1]}; "
            "both must live in the same feature space"
        )
    return x, y


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)), clipped at 0 against round-off."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


# --------------------------------------------------------------------------- metrics
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = |μ_a − μ_b|² + tr(Σ_a + Σ_b − 2 (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})``, the squared
    2-Wasserstein distance between N(μ_a, Σ_a) and N(μ_b, Σ_b) with the sample means and
    covariances (``ddof=1``). The matrix square roots come from symmetric eigen-
    decompositions (no complex round-off, unlike ``sqrtm(Σ_a Σ_b)``); eigenvalues that
    round-off makes slightly negative are clamped to 0, and so is the result.

    Arguments:
        a: features (N, D), N >= 2.
        b: features (M, D), M >= 2.

    Returns:
        the distance (squared units of the features); 0 for identical sets.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(500, 3))
        >>> frechet_distance(x, x) < 1e-9
        True

    References:
        Dowson & Landau (1982), The Fréchet distance between multivariate normal
        distributions; Heusel et al. (2017), GANs trained by a two time-scale update rule
        (FID — ours is the same formula in another, data-set-specific feature space).
    """
    x, y = _pair(a, b, ("a", "b"), min_rows=2)
    mu = x.mean(0) - y.mean(0)  # (D,)
    cov_a = np.atleast_2d(np.cov(x, rowvar=False))  # (D, D)
    cov_b = np.atleast_2d(np.cov(y, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # Σ_a^{1/2}
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2.0  # symmetric up to round-off
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    fd = mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross
    return max(float(fd), 0.0)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row, shape (N,)."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, _ = nn.kneighbors(x)  # column 0 is the point itself (distance 0)
    return dist[:, k]


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` inside at least one ball (centre, radius)."""
    inside = np.zeros(len(points), dtype=bool)
    r2 = radii**2
    for start in range(0, len(points), _BLOCK):
        block = points[start : start + _BLOCK]
        inside[start : start + _BLOCK] = (_sq_dists(block, centres) <= r2[None, :]).any(1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of generated samples (k-NN manifolds).

    Each set's manifold is the union of balls around its points whose radius is the
    distance to the point's k-th nearest neighbour in the same set. *Precision* is the
    fraction of ``fake`` points inside the real manifold (samples look real), *recall* the
    fraction of ``real`` points inside the fake manifold (the data are covered). A point
    on a ball's boundary counts as inside, so identical sets give 1 and 1.

    Arguments:
        real: features of real data (N, D), N > k.
        fake: features of samples (M, D), M > k.
        k: the neighbour that sets the radius (3 in the paper).

    Returns:
        (precision, recall), each in [0, 1].

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 2))
        >>> precision_recall(x, x)
        (1.0, 1.0)

    References:
        Kynkäänniemi et al. (2019), Improved precision and recall metric for assessing
        generative models, NeurIPS.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be a whole number >= 1, got {k!r}")
    x, y = _pair(real, fake, ("real", "fake"), min_rows=k + 1)
    precision = _coverage(y, x, _kth_radius(x, k))
    recall = _coverage(x, y, _kth_radius(y, k))
    return precision, recall


def median_bandwidth(a: np.ndarray, b: np.ndarray, max_points: int = 1000) -> float:
    """Median heuristic: the median pairwise distance in the pooled set ``a ∪ b``.

    At most ``max_points`` evenly spaced rows of the pooled set are used (deterministic);
    1.0 if every distance is 0.
    """
    x, y = _pair(a, b, ("a", "b"))
    pooled = np.concatenate([x, y])
    if len(pooled) > max_points:
        pooled = pooled[np.linspace(0, len(pooled) - 1, max_points).astype(int)]
    d2 = _sq_dists(pooled, pooled)[np.triu_indices(len(pooled), k=1)]
    median = float(np.sqrt(np.median(d2))) if d2.size else 0.0
    return median if median > 0 else 1.0


def mmd(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased estimate of the squared maximum mean discrepancy (MMD²), Gaussian kernel.

    ``MMD² = E k(a, a') + E k(b, b') − 2 E k(a, b)`` with ``k(x, y) = exp(−|x − y|² / (2 h²))``;
    the within-set means leave out the diagonal (i = j), which makes the estimate unbiased.
    It is therefore about 0 (and may be slightly *negative*) when both sets come from the
    same distribution, and clearly positive when they differ.

    Arguments:
        a: (N, D), N >= 2.
        b: (M, D), M >= 2.
        bandwidth: the kernel width h; None takes :func:`median_bandwidth` of the pooled sets.

    Returns:
        MMD² (dimensionless: the kernel is bounded by 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> abs(mmd(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)))) < 0.01
        True

    References:
        Gretton et al. (2012), A kernel two-sample test, JMLR 13 (Lemma 6, MMD²_u).
    """
    x, y = _pair(a, b, ("a", "b"), min_rows=2)
    if bandwidth is None:
        bandwidth = median_bandwidth(x, y)
    if not (isinstance(bandwidth, (int, float)) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ParameterError(f"bandwidth must be a positive number or None, got {bandwidth!r}")
    gamma = 1.0 / (2.0 * float(bandwidth) ** 2)

    def mean_kernel(p: np.ndarray, q: np.ndarray, same: bool) -> float:
        total = 0.0
        for start in range(0, len(p), _BLOCK):
            total += np.exp(-gamma * _sq_dists(p[start : start + _BLOCK], q)).sum()
        if same:  # leave out k(x_i, x_i) = 1
            return (total - len(p)) / (len(p) * (len(p) - 1))
        return total / (len(p) * len(q))

    return float(mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False))


def nn_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``query`` to its nearest row of ``reference``."""
    q, r = _pair(query, reference, ("query", "reference"))
    dist, _ = NearestNeighbors(n_neighbors=1).fit(r).kneighbors(q)
    return dist[:, 0]


def memorisation_ratio(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> float:
    """How much closer samples sit to the training set than held-out data do.

    ``ratio = median_i d(s_i, train) / median_j d(h_j, train)`` where ``d(x, train)`` is the
    Euclidean distance from ``x`` to its nearest training point, ``s`` the samples and ``h``
    held-out points (never trained on) of the same distribution. A model that generalises
    gives about 1 (its samples are as new as fresh data are); a model that copies its
    training set gives a ratio well below 1 (exact copies: 0). Ratios below
    :data:`COPYING_THRESHOLD` flag copying (see :func:`flags_copying`). When the held-out
    median is 0 (discrete data on a small space, where held-out points often equal
    training points), the ratio is 1 if the samples' median is 0 too (no evidence either
    way) and ``inf`` otherwise.

    Arguments:
        samples: (N, D) model samples (any trailing shape is flattened).
        train: (M, D) the training data the model saw.
        heldout: (K, D) data from the same distribution the model never saw.

    Returns:
        the ratio, >= 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> train, heldout = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
        >>> memorisation_ratio(train[:100], train, heldout)
        0.0

    References:
        Meehan, Chaudhuri & Dasgupta (2020), A non-parametric test to detect data-copying in
        generative models, AISTATS (the same idea as a test statistic).
    """
    s, t = _pair(samples, train, ("samples", "train"))
    _, h = _pair(train, heldout, ("train", "heldout"))
    num = float(np.median(nn_distances(s, t)))
    den = float(np.median(nn_distances(h, t)))
    if den == 0.0:
        return 1.0 if num == 0.0 else math.inf
    return num / den


def flags_copying(ratio: float, threshold: float = COPYING_THRESHOLD) -> bool:
    """True when a memorisation ratio says the samples copy the training set."""
    return bool(ratio < threshold)


# --------------------------------------------------------------------------- all at once
def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def sample_quality(
    samples: np.ndarray,
    data: Dataset,
    *,
    extractor: FeatureExtractor | None = None,
    max_n: int = 2000,
    random_state: int = 0,
) -> dict[str, Any]:
    """Every sample metric for ``samples`` of a model fitted on ``data.train``.

    The real set is ``data.test``. Fréchet distance, precision/recall (k = 3) and MMD² are
    computed in the feature space of ``extractor`` (default: :func:`feature_extractor` of
    ``data``, trained once per process); the memorisation ratio in the raw data space,
    samples vs ``data.train`` against ``data.test`` vs ``data.train``. At most ``max_n``
    samples and test points are used (a seeded random subset).

    Arguments:
        samples: (N, *event_shape) model samples of the data's kind.
        data: the data set the model was fitted on.
        extractor: the feature space; pass one to reuse it across models.
        max_n: cap on the number of samples and real points.
        random_state: seed of the subsets (and of a default extractor's training).

    Returns:
        a dict: ``feature_space`` (e.g. ``"FD-digits"``; ``"raw-toy2d-moons"`` for
        standardised raw data), ``fd``, ``precision``, ``recall``, ``mmd``,
        ``memorisation`` (floats), ``copying`` (bool, see :func:`flags_copying`),
        ``n_samples`` and ``n_real`` (ints).

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("toy2d-moons")
        >>> row = sample_quality(data.val.x, data)
        >>> row["feature_space"], row["precision"] > 0.9
        ('raw-toy2d-moons', True)
    """
    from ptheta.eval.features import cached_feature_extractor

    if isinstance(max_n, bool) or not isinstance(max_n, (int, np.integer)) or max_n < 4:
        raise ParameterError(f"max_n must be a whole number >= 4, got {max_n!r}")
    x = np.asarray(samples)
    if x.shape[1:] != data.spec.event_shape or x.ndim < 2:
        raise DataError(
            f"samples have shape {x.shape} but data set {data.name!r} has examples of shape "
            f"{data.spec.event_shape}: expected (N, {', '.join(map(str, data.event_shape))})"
        )
    _as_features(x, "samples", min_rows=4)
    rng = np.random.default_rng(random_state)
    fake = _subsample(x, max_n, rng)
    real = _subsample(data.test.x, max_n, rng)
    if extractor is None:
        extractor = cached_feature_extractor(data, random_state=random_state)
    f_real, f_fake = extractor.transform(real), extractor.transform(fake)
    precision, recall = precision_recall(f_real, f_fake, k=3)
    memo = memorisation_ratio(fake, data.train.x, data.test.x)
    return {
        "feature_space": extractor.name,
        "fd": frechet_distance(f_real, f_fake),
        "precision": precision,
        "recall": recall,
        "mmd": mmd(f_real, f_fake),
        "memorisation": memo,
        "copying": flags_copying(memo),
        "n_samples": len(fake),
        "n_real": len(real),
    }
