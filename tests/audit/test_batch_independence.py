"""Audit: a stochastic score is a function of the model and the example alone (issue 14).

Every scorer that draws noise (IWAE of the VAEs, the DDPM bound, the flows' dequantisation)
must give an example the same number whether it is scored alone, inside a batch, or inside
a permuted batch: its noise may depend on (the model's seed, the example), never on its
position or its neighbours. Compared with a tolerance: BLAS paths differ with batch size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from ptheta.data.spec import DataSpec, Split
from ptheta.models.diffusion import DDPM
from ptheta.models.flows import MAF, Glow, RealNVP
from ptheta.models.nsf import NSF
from ptheta.models.seq_vae import SeqVAE
from ptheta.models.vae import VAE

RTOL, ATOL = 1e-5, 1e-8


def _data(kind: str, n: int = 200, shape: tuple[int, ...] = (4,)) -> Split:
    rng = np.random.default_rng(0)
    if kind == "continuous":
        return Split(rng.normal(size=(n, *shape)), None, DataSpec("continuous", shape))
    if kind == "binary":
        x = (rng.random((n, *shape)) < 0.7).astype(np.int64)
        image = shape if len(shape) == 3 else None
        return Split(x, None, DataSpec("binary", shape, image_shape=image))
    x = rng.integers(0, 3, size=(n, *shape))
    return Split(x, None, DataSpec("categorical", shape, 3))


def _fit(cls, kind: str, shape: tuple[int, ...] = (4,), **params):
    split = _data(kind, shape=shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(**{**cls.quick_params, "epochs": 2, **params}).fit(split)
    return model, split.x[:6]


def _assert_per_example(score: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> None:
    """score(rows) row by row, in one batch, and in a permuted batch agree."""
    batch = np.asarray(score(x))
    alone = np.concatenate([np.asarray(score(x[i : i + 1])) for i in range(len(x))])
    order = np.random.default_rng(1).permutation(len(x))
    permuted = np.empty_like(batch)
    permuted[order] = np.asarray(score(x[order]))
    np.testing.assert_allclose(alone, batch, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(permuted, batch, rtol=RTOL, atol=ATOL)
    # a row surrounded by other rows: duplicated neighbours change nothing either
    padded = np.asarray(score(np.concatenate([x[::-1], x])))[len(x) :]
    np.testing.assert_allclose(padded, batch, rtol=RTOL, atol=ATOL)


CASES = [
    (VAE, "continuous", (4,), {}),
    (VAE, "binary", (4,), {}),
    (SeqVAE, "categorical", (5,), {}),
    (DDPM, "continuous", (2,), {}),
    (DDPM, "categorical", (3,), {}),
    (RealNVP, "binary", (4,), {}),
    (RealNVP, "categorical", (4,), {"dequantization": "variational"}),
    (MAF, "categorical", (4,), {}),
    (Glow, "binary", (1, 2, 2), {}),
    (NSF, "categorical", (4,), {"transform_type": "autoregressive"}),
]


@pytest.mark.parametrize(("cls", "kind", "shape", "params"), CASES, ids=str)
def test_score_samples_and_its_error_do_not_depend_on_the_batch(cls, kind, shape, params):
    model, x = _fit(cls, kind, shape, **params)
    _assert_per_example(model.score_samples, x)
    _assert_per_example(lambda rows: model.score_samples(rows, return_std=True)[1], x)
    assert model.likelihood_ == "estimate"  # noise in the score: its error comes with it


def test_vae_elbo_and_marginal_do_not_depend_on_the_batch():
    model, x = _fit(VAE, "continuous")
    _assert_per_example(lambda rows: model.elbo(rows, k=3), x)
    partial = x.copy()
    partial[::2, 1] = np.nan
    _assert_per_example(model.marginal_log_prob, partial)


def test_ddpm_bound_terms_and_estimate_do_not_depend_on_the_batch():
    model, x = _fit(DDPM, "continuous", (2,))
    _assert_per_example(lambda rows: model.bound_terms(rows).sum(1), x)
    _assert_per_example(lambda rows: model.bound_estimate(rows, 4, random_state=3), x)
