"""EM over batches (full-batch and stepwise) for mixtures and HMMs (ptheta/models/em.py).

Full-batch EM sums its E-step over batches, so the batches (and the processes that share
them) must not change the model; stepwise (mini-batch) EM must reach full-batch EM's
likelihood, and with step size 1 and one batch of all the data it *is* full-batch EM.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ptheta
from ptheta.data import stream
from ptheta.data.spec import DataSpec, Split
from ptheta.data.stream import ArraySource, NpySource, Source
from ptheta.errors import ParameterError
from ptheta.models import em
from tests.models.test_streaming_contract import _TwoProcesses

# mini-batch EM's held-out log-likelihood is within this of full-batch EM's
GMM_TOL = 0.01  # nats per example (2-D)
HMM_TOL = 0.02  # nats per sequence of 20 steps


def _three_gaussians(n: int, seed: int) -> np.ndarray:
    """A 2-D mixture of three correlated Gaussians, weights 0.5, 0.3, 0.2."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 4.0]])
    mix = np.array([[[1.0, 0.3], [0.0, 0.6]], [[0.5, 0.0], [0.4, 1.0]], [[0.8, -0.5], [0.0, 0.4]]])
    comp = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return centres[comp] + np.einsum("nij,nj->ni", mix[comp], rng.standard_normal((n, 2)))


def _two_state_sequences(n: int, seed: int, t_len: int = 20) -> np.ndarray:
    """(n, T, 2) steps of a sticky 2-state HMM with Gaussian emissions."""
    rng = np.random.default_rng(seed)
    switch = np.array([0.1, 0.2])  # p(leave state k)
    means = np.array([[-1.0, 0.0], [1.5, 1.0]])
    states = np.empty((n, t_len), dtype=np.int64)
    states[:, 0] = rng.random(n) < 0.2  # p(s_1 = 1) = 0.2
    for t in range(1, t_len):
        leave = rng.random(n) < switch[states[:, t - 1]]
        states[:, t] = np.where(leave, 1 - states[:, t - 1], states[:, t - 1])
    return means[states] + 0.8 * rng.standard_normal((n, t_len, 2))


def _categorical(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, 2, n)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # per component, every feature
    u = rng.random((n, 5, 1))
    return (u > np.cumsum(probs[comp][:, None, :], axis=2)).sum(axis=2)


def _fit(name: str, x, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 runs never "converge"
        return ptheta.make(name, random_state=0, **params).fit(x)


def _params(model) -> dict[str, np.ndarray]:
    names = ("weights_", "means_", "covariances_", "probs_", "startprob_", "transmat_",
             "emissionprob_", "covars_", "endprob_")  # fmt: skip
    return {k: getattr(model, k) for k in names if hasattr(model, k)}


def _assert_same(a, b, rtol: float) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys() and pa
    for key in pa:
        np.testing.assert_allclose(pa[key], pb[key], rtol=rtol, atol=1e-12, err_msg=key)


# --------------------------------------------------------------------------- stepwise EM
def test_minibatch_em_reaches_the_full_batch_held_out_likelihood():
    x, test = _three_gaussians(3000, 0), _three_gaussians(3000, 1)
    full = _fit("gmm", x, n_components=3, tol=1e-8, max_iter=500)
    mini = _fit("gmm", x, n_components=3, em="minibatch", batch_size=100, max_iter=6, tol=0.0)
    assert abs(mini.score(test) - full.score(test)) < GMM_TOL
    assert mini.n_iter_ == 6 and len(mini.history_) == 6  # epochs
    # the tolerance is small: one Gaussian is far worse, so is two epochs' worth of
    # un-averaged steps of 100 examples (each step the M-step of one batch alone)
    one = _fit("gmm", x, n_components=1)
    assert full.score(test) - one.score(test) > 50 * GMM_TOL


def test_categorical_minibatch_em_reaches_the_full_batch_map_estimate():
    """With a prior (alpha) the batches' counts must be scaled to the whole data set: the
    pseudo-counts weigh against N examples, not against a batch of 20."""
    x, test = _categorical(2000, 10), _categorical(2000, 11)
    params = {"n_components": 2, "alpha": 2.0}
    full = _fit("categorical-mixture", x, **params, tol=1e-10, max_iter=500)
    mini = _fit("categorical-mixture", x, **params, em="minibatch", batch_size=20, max_iter=5,
                tol=0.0)  # fmt: skip
    assert abs(mini.score(test) - full.score(test)) < GMM_TOL
    order = np.argsort(mini.probs_[:, 0, 0]), np.argsort(full.probs_[:, 0, 0])
    np.testing.assert_allclose(mini.probs_[order[0]], full.probs_[order[1]], atol=0.03)


def test_hmm_minibatch_em_reaches_the_full_batch_held_out_likelihood():
    x, test = _two_state_sequences(200, 0), _two_state_sequences(200, 1)
    full = _fit("hmm", x, n_states=2, alpha=5.0, tol=1e-8, max_iter=300)
    mini = _fit("hmm", x, n_states=2, alpha=5.0, em="minibatch", batch_size=20, max_iter=8,
                tol=0.0)  # fmt: skip
    assert abs(mini.score(test) - full.score(test)) < HMM_TOL
    # alpha weighs against every sequence, not against a batch of 20
    np.testing.assert_allclose(np.sort(mini.startprob_), np.sort(full.startprob_), atol=0.03)
    np.testing.assert_allclose(np.sort(mini.transmat_.ravel()), np.sort(full.transmat_.ravel()),
                               atol=0.02)  # fmt: skip
    one = _fit("hmm", x, n_states=1)
    assert full.score(test) - one.score(test) > 50 * HMM_TOL


CASES = [
    ("gmm", {"n_components": 3}, "x"),
    ("gmm", {"n_components": 3, "covariance_type": "diag", "init": "random"}, "x"),
    ("categorical-mixture", {"n_components": 2}, "c"),
    ("hmm", {"n_states": 2}, "s"),
    ("hmm", {"n_states": 2, "alpha": 0.5}, "r"),  # sequences of any length, ends fitted
]


def _wide(n: int, seed: int, d: int = 40) -> np.ndarray:
    """Two correlated Gaussians in 40 dimensions (where the CPU E-step uses syrk)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(2, d, d)) / np.sqrt(d)
    comp = rng.integers(0, 2, n)
    return 2 * comp[:, None] + np.einsum("nij,nj->ni", mix[comp], rng.standard_normal((n, d)))


def _case_data(kind: str) -> np.ndarray:
    return {"x": lambda: _three_gaussians(400, 2), "c": lambda: _categorical(300, 3),
            "s": lambda: _two_state_sequences(60, 4, t_len=8),
            "w": lambda: _wide(300, 12), "r": lambda: _ragged(80, 13)}[kind]()  # fmt: skip


def _ragged(n: int, seed: int) -> list[np.ndarray]:
    """Binary sequences of lengths 2..9 (a list: variable length)."""
    x = (_two_state_sequences(n, seed, t_len=9)[:, :, 0] > 0.2).astype(np.int64)
    return [row[: 2 + i % 8] for i, row in enumerate(x)]


@pytest.mark.parametrize(("name", "params", "kind"), CASES)
def test_step_size_one_on_all_the_data_is_full_batch_em(name, params, kind, monkeypatch):
    """s ← (1 − ρ) s + ρ ŝ with ρ = 1 and one batch of every example is s ← ŝ: each epoch
    is then one full EM step, from the same start."""
    x = _case_data(kind)
    full = _fit(name, x, **params, max_iter=4, tol=0.0)
    monkeypatch.setattr(em, "step_size", lambda t, decay: 1.0)
    step = _fit(name, x, **params, em="minibatch", batch_size=len(x), max_iter=4, tol=0.0)
    _assert_same(step, full, rtol=1e-10)
    np.testing.assert_allclose(
        [h["objective"] for h in step.history_], [h["objective"] for h in full.history_],
        rtol=1e-12,
    )  # fmt: skip


def test_the_step_sizes_follow_the_documented_schedule():
    x = _three_gaussians(300, 5)
    model = _fit("gmm", x, n_components=3, em="minibatch", batch_size=100, step_decay=0.7,
                 max_iter=3, tol=0.0)  # fmt: skip
    # 3 steps per epoch: the last step of epoch e is t = 3e − 1, ρ = (t + 2)^−0.7
    expected = [(3 * e + 1.0) ** -0.7 for e in (1, 2, 3)]
    np.testing.assert_allclose([h["step_size"] for h in model.history_], expected, rtol=1e-15)


def test_blended_moments_are_the_moments_of_the_union():
    """Merging weighted counts, means and covariances = the moments of all the rows."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(25, 3)) * 2 + 1
    wa, wb = rng.random((2, 40)), rng.random((2, 25))  # two components' weights

    def moments(rows, w, diag):
        n = w.sum(1)
        mean = (w @ rows) / n[:, None]
        diff = rows[None] - mean[:, None]  # (K, N, D)
        if diag:
            return n, mean, np.einsum("kn,knd->kd", w, diff**2) / n[:, None]
        return n, mean, np.einsum("kn,kni,knj->kij", w, diff, diff) / n[:, None, None]

    for diag in (False, True):
        n, mean, cov = em.blend_moments(*moments(a, wa, diag), *moments(b, wb, diag))
        union = moments(np.vstack([a, b]), np.hstack([wa, wb]), diag)
        for got, want in zip((n, mean, cov), union, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------- full-batch EM
def _log_gauss(u, mean, cov):
    """log N(u_n; mean, cov) (N,) written out, for a full (D, D) or diagonal (D,) cov."""
    cov = np.diag(cov) if cov.ndim == 1 else cov
    diff = u - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * (maha + np.linalg.slogdet(2 * np.pi * cov)[1])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_two_em_steps_equal_the_closed_form_updates(covariance_type):
    """init="random" then two E- and M-steps, written out: random responsibilities of the
    standardised data (the restart's documented seed), weighted moments plus reg_covar,
    responsibilities of the smoothed log-weights log π_k + log N − ½·reg·tr(Σ_k⁻¹)."""
    x, k, reg = _three_gaussians(300, 9) * [2.0, 0.5] + [10.0, -3.0], 3, 1e-2
    model = _fit("gmm", x, n_components=k, covariance_type=covariance_type, init="random",
                 reg_covar=reg, max_iter=2, tol=0.0)  # fmt: skip
    mean, std = x.mean(axis=0), x.std(axis=0)
    u = (x - mean) / std
    seed = np.random.SeedSequence(0).spawn(1)[0]
    resp = np.random.RandomState(seed.generate_state(1)[0]).uniform(size=(len(u), k))
    resp /= resp.sum(axis=1, keepdims=True)

    def m_step(r):
        n = r.sum(axis=0)
        mu = (r.T @ u) / n[:, None]
        diff = u[None] - mu[:, None]  # (K, N, D)
        if covariance_type == "full":
            cov = np.einsum("nk,kni,knj->kij", r, diff, diff) / n[:, None, None]
            return n / n.sum(), mu, cov + reg * np.eye(2)
        return n / n.sum(), mu, np.einsum("nk,knd->kd", r, diff**2) / n[:, None] + reg

    objectives, logliks = [], []
    params = m_step(resp)
    for _ in range(2):
        w, mu, cov = params
        trace = [np.trace(np.linalg.inv(c)) if c.ndim == 2 else (1 / c).sum() for c in cov]
        log_w = np.stack(
            [np.log(w[j]) + _log_gauss(u, mu[j], cov[j]) - 0.5 * reg * trace[j] for j in range(k)],
            axis=1,
        )  # fmt: skip
        top = log_w.max(axis=1, keepdims=True)
        objectives.append(float((top[:, 0] + np.log(np.exp(log_w - top).sum(1))).mean()))
        plain = log_w + 0.5 * reg * np.array(trace)  # the log-likelihood, unsmoothed
        logliks.append(float(np.log(np.exp(plain).sum(1)).mean()))
        params = m_step(np.exp(log_w - top) / np.exp(log_w - top).sum(1, keepdims=True))
    w, mu, cov = params
    outer = np.outer(std, std) if covariance_type == "full" else std**2
    np.testing.assert_allclose(model.weights_, w, rtol=1e-9)
    np.testing.assert_allclose(model.means_, mu * std + mean, rtol=1e-9)
    np.testing.assert_allclose(model.covariances_, cov * outer, rtol=1e-9)
    for key, expected in (("objective", objectives), ("log_likelihood", logliks)):
        recorded = [h[key] for h in model.history_]
        np.testing.assert_allclose(recorded, np.array(expected) - np.log(std).sum(), rtol=1e-11)
    assert logliks[0] > objectives[0] + 1e-3  # the smoothing term is not negligible here


class _Counted(Source):
    """A source that reads through ``inner`` and records every row read by index."""

    def __init__(self, inner: Source, rows_per_batch: int) -> None:
        self.inner, self.rows_per_batch = inner, rows_per_batch
        self.n, self.event_shape, self.dtype = inner.n, inner.event_shape, inner.dtype
        self.y, self.spec, self.largest, self.indexed = inner.y, inner.spec, 0, []

    def _read(self, index: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, len(index))
        self.indexed.append(index.copy())
        return self.inner.read(index)

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        self.largest = max(self.largest, stop - start)
        return self.inner.read_range(start, stop)

    def batch_rows(self) -> int:
        return self.rows_per_batch


@pytest.mark.parametrize(("name", "params", "kind"), CASES[:3])
def test_full_batch_em_over_tiny_batches_of_a_file_is_the_in_memory_fit(
    name, params, kind, tmp_path
):
    x = _case_data(kind)
    np.save(tmp_path / "x.npy", x)
    kind_name = "continuous" if kind == "x" else "categorical"
    spec = DataSpec(kind_name, x.shape[1:], None if kind == "x" else 3)
    in_memory = _fit(name, Split(x, None, spec), **params, max_iter=15, tol=0.0)
    source = NpySource(tmp_path / "x.npy")
    streamed = _fit(name, Split(source, None, spec), **params, max_iter=15, tol=0.0,
                    batch_size=7)  # fmt: skip
    _assert_same(streamed, in_memory, rtol=1e-9)
    np.testing.assert_allclose(
        [h["objective"] for h in streamed.history_], [h["objective"] for h in in_memory.history_],
        rtol=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_full_batch_em_over_batches_never_lowers_the_objective(covariance_type):
    x = _three_gaussians(500, 6)
    model = _fit("gmm", x, n_components=5, covariance_type=covariance_type, init="random",
                 batch_size=13, max_iter=50, tol=0.0)  # fmt: skip
    objective = np.array([h["objective"] for h in model.history_])
    assert np.all(np.diff(objective) >= -1e-10 * np.abs(objective[1:]))
    assert objective[-1] > objective[0] + 0.1


def test_the_initialisation_reads_a_bounded_sample_of_rows():
    """Beyond 10,000 examples, k-means++ sees 10,000 of them (read a batch at a time); the
    rest of EM reads contiguous batches."""
    x = _three_gaussians(12_000, 7)
    source = _Counted(ArraySource(x), rows_per_batch=1000)
    model = _fit("gmm", Split(source, None, DataSpec("continuous", (2,))), n_components=3,
                 max_iter=2, tol=0.0)  # fmt: skip
    rows = np.concatenate(source.indexed)
    assert len(rows) == len(np.unique(rows)) == 10_000
    assert source.largest <= 1000
    assert model.score(x) > -4.5  # a sensible mixture all the same


# --------------------------------------------------------------------------- processes
@pytest.mark.parametrize(("name", "params", "kind"), CASES)
@pytest.mark.parametrize("method", ["full", "minibatch"])
def test_two_processes_fit_the_model_of_one(name, params, kind, method, monkeypatch):
    """Each process reads its share of every batch (mini-batch EM: of every step's batch)
    and the sums are all-reduced: both processes take the steps one process takes."""
    x = _case_data(kind)
    settings = {**params, "em": method, "batch_size": 23, "max_iter": 3, "tol": 0.0}
    one = _fit(name, x, **settings)
    world = _TwoProcesses()
    monkeypatch.setattr(stream, "process_share", world.share)
    monkeypatch.setattr(stream, "all_reduce_sum", world.all_reduce_sum)
    first, second = world.run(lambda: _fit(name, x, **settings))
    assert world.reductions >= 3
    for fitted in (first, second):
        _assert_same(fitted, one, rtol=1e-9)


def test_under_torchrun_a_random_seed_is_refused(monkeypatch):
    monkeypatch.setattr(stream, "process_share", lambda: (0, 2))
    monkeypatch.setattr(stream, "all_reduce_sum", lambda stats: dict(stats))
    with pytest.raises(ParameterError, match="random_state"):
        ptheta.make("gmm", n_components=2, random_state=None).fit(_three_gaussians(50, 8))


@pytest.mark.parametrize(
    ("name", "params", "kind"), [*CASES[:3], ("gmm", {"n_components": 2}, "w")]
)
def test_the_torch_arithmetic_of_other_devices_gives_the_numpy_model(
    name, params, kind, monkeypatch
):
    """Off the CPU the E-step runs on torch tensors (general products throughout): the same
    sums, to rounding (checked here with torch on the CPU; 40-D: numpy's syrk)."""
    from ptheta.models import mixtures

    x = _case_data(kind)
    numpy_fit = _fit(name, x, **params, max_iter=5, tol=0.0)
    original = mixtures._Backend.__init__

    def torch_backend(self, device, dtype):
        original(self, device, dtype)
        self.cpu = False  # tensors on the CPU, as they would be on CUDA

    monkeypatch.setattr(mixtures._Backend, "__init__", torch_backend)
    torch_fit = _fit(name, x, **params, max_iter=5, tol=0.0)
    _assert_same(torch_fit, numpy_fit, rtol=1e-9)


def test_one_em_step_on_sequences_of_any_length_is_the_closed_form_update():
    """The step from the parameters after one EM step (θ1) to those after two, summed over
    batches of 7 sequences, is the closed form in the posteriors γ at θ1: starts, ends over
    visits, and level counts, each with pseudo-count α."""
    seqs, alpha = _ragged(60, 14), 0.5
    first = _fit("hmm", seqs, n_states=2, alpha=alpha, max_iter=1, tol=0.0)
    second = _fit("hmm", seqs, n_states=2, alpha=alpha, max_iter=2, tol=0.0, batch_size=7)
    gamma = first.posterior_states(seqs)  # (N, T, K), zero after each end
    lengths = np.array([len(s) for s in seqs])
    start = gamma[:, 0].sum(axis=0) + alpha
    np.testing.assert_allclose(second.startprob_, start / start.sum(), rtol=1e-10)
    ends = gamma[np.arange(len(seqs)), lengths - 1].sum(axis=0)
    visits = gamma.sum(axis=(0, 1))
    np.testing.assert_allclose(second.endprob_, (ends + alpha) / (visits + 2 * alpha), rtol=1e-10)
    counts = np.zeros((2, 2))
    for row, s in zip(gamma, seqs, strict=True):
        for t, level in enumerate(s):
            counts[:, level] += row[t]
    counts += alpha
    np.testing.assert_allclose(
        second.emissionprob_[:, 0], counts / counts.sum(axis=1, keepdims=True), rtol=1e-10
    )
