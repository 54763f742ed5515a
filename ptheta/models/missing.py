"""Missing entries (NaN) in families that sum them out exactly: masks and one-hot codes.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0, np.nan], [1.0, 2.0], [np.nan, 1.0], [2.0, 0.0]])
    >>> [(rows.tolist(), seen.tolist()) for rows, seen in missing_patterns(x)]
    [([1, 3], [True, True]), ([0], [True, False]), ([2], [False, True])]
    >>> one_hot(np.array([[1.0, np.nan]]), 3).tolist()
    [[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def missing_patterns(flat: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, observed) for every distinct pattern of NaN entries in ``flat`` (N, D):
    the row indices sharing the pattern and the (D,) mask of their observed entries."""
    missing = np.isnan(flat)
    if not missing.any():
        yield np.arange(len(flat)), np.ones(flat.shape[1], dtype=bool)
        return
    patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for p, pattern in enumerate(patterns):
        yield np.flatnonzero(inverse == p), ~pattern


def one_hot(flat: np.ndarray, levels: int) -> np.ndarray:
    """One-hot codes (N, D·L) of values (N, D) in 0..L−1; a NaN (missing) entry gets an
    all-zero block, so its factor drops out of a product of categorical probabilities."""
    return (
        (flat[..., None] == np.arange(levels))
        .reshape(len(flat), flat.shape[1] * levels)
        .astype(np.float64)
    )
