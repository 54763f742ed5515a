"""gmm E-step on the CPU: the grouped sums of the initial (nearest-centre) assignment, the
workspace's in-place arithmetic and the triangular whitening of wide data equal the
general block products."""

from __future__ import annotations

import numpy as np
import pytest

from ptheta.models import mixtures as mx


def _problem(d: int, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d))
    cov = a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d)
    params = (rng.dirichlet(np.ones(k)), rng.normal(size=(k, d)), cov)
    u = np.ones((300, d + 1))
    u[:, :d] = rng.normal(size=(300, d)) * 1.5
    return params, u


@pytest.mark.parametrize("diag", [False, True])
def test_nearest_centre_sums_equal_the_one_hot_products(diag):
    params, u = _problem(5)
    backend = mx._Backend("cpu", "float64")
    centres = params[1]
    whitening = mx._Whitening((np.ones(4), centres, None), diag, 0.0, 0.0, backend,
                              identity=True)  # fmt: skip
    grouped = whitening.sums(u, hard=True)  # rows grouped by their nearest centre
    whitening.identity = False  # now the general path: one-hot (K, b) products
    general = whitening.sums(u, hard=True)
    nearest = ((u[:, None, :5] - centres) ** 2).sum(2).argmin(1)
    np.testing.assert_array_equal(grouped["n"], np.bincount(nearest, minlength=4))
    for key in ("n", "first", "second"):
        want = general[key]
        if not diag and key == "second":  # only the upper triangle is read (_symmetric)
            want, got = np.triu(want), np.triu(grouped[key])
        else:
            got = grouped[key]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("d", "diag"), [(5, False), (40, False), (130, False), (5, True)])
def test_workspace_sums_equal_the_plain_products(d, diag):
    params, u = _problem(d, seed=d)
    if diag:
        params = (params[0], params[1], np.diagonal(params[2], axis1=1, axis2=2).copy())
    backend = mx._Backend("cpu", "float64")
    whitening = mx._Whitening(params, diag, 1e-3, 0.0, backend)  # smoothed ≠ reported
    assert (whitening.lower is not None) == (d >= mx._TRIANGULAR_FROM and not diag)
    plain = whitening.sums(u)  # no workspace: the one general product of every component
    whitening.work = mx._Workspace()
    for rows in (300, 120, 300):  # blocks of other sizes reuse (and must not corrupt) it
        reused = whitening.sums(u[:rows])
    assert reused.keys() == plain.keys()
    for key, want in plain.items():
        got = reused[key]
        if not diag and key == "second":  # d ≥ 32: syrk fills the upper triangle only
            want, got = np.triu(want), np.triu(got)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_wide_data_triangular_inverse_and_moments_equal_the_general_products(monkeypatch):
    d = 130  # ≥ _TRIANGULAR_FROM: LAPACK's trtri for L⁻¹, two trmm for L S Lᵀ
    params, u = _problem(d, seed=3)
    backend = mx._Backend("cpu", "float64")
    wide = mx._Whitening(params, False, 1e-3, 0.0, backend)
    sums = wide.sums(u)
    moments = wide.moments(sums)
    monkeypatch.setattr(mx, "_TRIANGULAR_FROM", 10**9)  # the general products throughout
    general = mx._Whitening(params, False, 1e-3, 0.0, backend)
    np.testing.assert_allclose(wide.inverse_np, general.inverse_np, rtol=1e-10, atol=1e-12)
    assert np.all(np.triu(wide.inverse_np, 1) == 0)  # lower triangular
    for got, want in zip(moments, general.moments(sums), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
