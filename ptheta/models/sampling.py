"""Drawing from categorical distributions: the one inverse-CDF sampler every family uses."""

from __future__ import annotations

import numpy as np


def sample_categorical(
    weights: np.ndarray,
    rng: np.random.Generator,
    *,
    log: bool = False,
    size: int | None = None,
) -> np.ndarray:
    """One index per row of ``weights`` (..., K), drawn along the last axis.

    The weights need not be normalised: each row is divided by its total. A level of
    weight 0 (log-weight −inf) is never drawn. One uniform number per draw, by the
    inverse CDF.

    Arguments:
        weights: (..., K) probabilities or non-negative weights; log-weights (logits) if
            ``log``.
        rng: the numpy Generator to draw from.
        log: ``weights`` are unnormalised log-probabilities.
        size: draw ``size`` independent samples of every row: the result is then
            (size, ...), without copying the weights ``size`` times.

    Returns:
        int64 indices in 0..K−1, shape (...) or (size, ...).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> sample_categorical(np.array([[0.0, 1.0], [1.0, 0.0]]), rng).tolist()
        [1, 0]
        >>> sample_categorical(np.log([0.2, 0.8]), rng, log=True, size=3).shape
        (3,)
    """
    w = np.asarray(weights, dtype=np.float64)
    if log:
        top = w.max(axis=-1, keepdims=True)
        w = np.exp(w - np.where(np.isfinite(top), top, 0.0))  # a row of −inf: all 0
    cdf = np.cumsum(w, axis=-1)  # (..., K)
    shape = w.shape[:-1] if size is None else (size, *w.shape[:-1])
    u = rng.random((*shape, 1)) * cdf[..., -1:]
    # the number of cdf entries at or below u is the drawn index; the clip guards u
    # rounding up to the total
    return np.minimum((cdf <= u).sum(axis=-1), w.shape[-1] - 1).astype(np.int64)
