"""The hidden Markov model's recursions: forward, forward–backward, Viterbi and backward
sampling over a batch of sequences, padded steps masked (used by :mod:`ptheta.models.hmm`)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ptheta.models.sampling import sample_categorical

_TINY = np.finfo(np.float64).tiny


# --------------------------------------------------------------------------- recursions
# The forward–backward recursions run on scaled probabilities (Rabiner 1989, §V.A): each
# step's forward variables are normalised to sum to one over the states, and the
# normaliser c_t = p(x_t | x_1..t−1) is kept, so log p(x) = Σ_t log c_t. A step is one
# (N, K) @ (K, K) product for every sequence at once, on time-major (T, N, K) arrays
# (each step contiguous). Each step's emission factors are divided by their largest
# before exponentiating (and the shift added back to log c). Where some c_t underflows
# (the data follow a path the model makes all but impossible), that sequence is redone
# by the log-space recursions, which never underflow.


def forward(
    log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The forward recursion over a batch of sequences.

    Arguments:
        log_start: (K,) log π; log_trans: (K, K) log A; log_emit: (N, T, K) log emission
            factors. A padded step (after a sequence's end) has factor one (log 0): rows of
            A sum to one, so trailing padding leaves the likelihood exact.

    Returns:
        log α (N, T, K), log α_t(k) = log p(x_1..t, s_t = k) (floored at e^−708 times the
        step's total, where the scaled α underflows), and log p(x) (N,).
    """
    log_emit_t = np.ascontiguousarray(log_emit.transpose(1, 0, 2))
    _, alpha, _, log_scale, bad = _scaled_forward(log_start, np.exp(log_trans), log_emit_t)
    with np.errstate(invalid="ignore"):
        log_alpha = _log(alpha) + np.cumsum(log_scale, axis=0)[:, :, None]
    log_alpha = log_alpha.transpose(1, 0, 2)
    loglik = log_scale.sum(axis=0)
    if bad.any():
        log_alpha[bad], loglik[bad] = _forward_log(log_start, log_trans, log_emit[bad])
    return log_alpha, loglik


def forward_backward(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward–backward (Rabiner 1989, §III.C and §V.A; Bishop 2006, §13.2.2).

    Arguments:
        as :func:`forward`; valid: (N, T) bool, False at padded steps, whose transitions
            are left out of the expected counts (None: every step is real).

    Returns:
        log p(x) (N,), posterior marginals γ (N, T, K) and the expected transition counts
        Σ_n Σ_t ξ_t(i, j), (K, K).
    """
    log_emit_t = np.ascontiguousarray(log_emit.transpose(1, 0, 2))
    valid_t = None if valid is None else valid.T
    loglik, gamma, xi = _forward_backward_time_major(log_start, log_trans, log_emit_t, valid_t)
    return loglik, gamma.transpose(1, 0, 2), xi


def _forward_backward_time_major(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
    buffers: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_backward` on time-major log emission factors (T, N, K) and
    ``valid`` (T, N); γ comes back time-major too, (T, N, K). With ``buffers`` (a dict kept
    between calls, as EM does), the large work arrays are reused: γ is then valid only
    until the next call."""
    t_len, n, k = log_emit.shape
    trans = np.exp(log_trans)
    emit, alpha, scale, log_scale, bad = _scaled_forward(log_start, trans, log_emit, buffers)
    beta = _buffer(buffers, "beta", alpha.shape)
    beta[-1] = 1.0
    # after_t+1 = e_t+1 β̂_t+1 / c_t+1, so that β̂_t = A after_t+1 and
    # ξ_t(i, j) = α̂_t(i) A_ij after_t+1(j); γ_t = α̂_t β̂_t sums to one over the states
    after = _buffer(buffers, "after", (t_len - 1, n, k))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = 1.0 / scale[1:, :, None]  # (T − 1, N, 1)
        for t in range(t_len - 2, -1, -1):
            np.multiply(emit[t + 1], beta[t + 1], out=after[t])
            after[t] *= inverse[t]
            np.matmul(after[t], trans.T, out=beta[t])
    loglik = log_scale.sum(axis=0)
    if valid is not None:
        after *= valid[1:, :, None]
    if bad.any():
        alpha[:, bad] = beta[:, bad] = after[:, bad] = 0.0
    xi = trans * (alpha[:-1].reshape(-1, k).T @ after.reshape(-1, k))
    gamma = np.multiply(alpha, beta, out=alpha)  # (T, N, K)
    if bad.any():
        valid_bad = None if valid is None else valid[:, bad].T
        ll_bad, gamma_bad, xi_bad = _forward_backward_log(
            log_start, log_trans, log_emit[:, bad].transpose(1, 0, 2), valid_bad
        )
        loglik[bad], gamma[:, bad] = ll_bad, gamma_bad.transpose(1, 0, 2)
        xi += xi_bad
    return loglik, gamma, xi


def _loglik_time_major(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    buffers: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """log p(x) (N,) of time-major log emission factors (T, N, K) by the forward pass."""
    log_scale, bad = _scaled_forward(log_start, np.exp(log_trans), log_emit, buffers)[3:]
    loglik = log_scale.sum(axis=0)
    if bad.any():
        loglik[bad] = _forward_log(log_start, log_trans, log_emit[:, bad].transpose(1, 0, 2))[1]
    return loglik


def _scaled_forward(
    log_start: np.ndarray,
    trans: np.ndarray,
    log_emit: np.ndarray,
    buffers: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, ...]:
    """The scaled forward pass over time-major log emission factors (T, N, K).

    Returns:
        emission factors e (T, N, K), each step's divided by its largest; the forward
        variables α̂ (T, N, K), normalised over the states; their normalisers c (T, N) in
        the units of e, and log c (T, N) in true units (log p(x_t | x_1..t−1)); and a
        (N,) mask of the sequences where some c underflowed (their α̂ are not to be used).
    """
    t_len, n, k = log_emit.shape
    flat = log_emit.reshape(-1, k)
    shift = flat[:, 0].copy()  # (T·N,): the largest factor of each step, one state at a
    for j in range(1, k):  # time (much faster than a reduction along a short last axis)
        np.maximum(shift, flat[:, j], out=shift)
    emit = _buffer(buffers, "emit", log_emit.shape)  # (T, N, K)
    np.subtract(log_emit, shift.reshape(t_len, n, 1), out=emit)
    np.exp(emit, out=emit)  # at most 1
    alpha = _buffer(buffers, "alpha", log_emit.shape)
    scale = np.empty((t_len, n))
    ones = np.ones(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.exp(log_start) * emit[0]
        for t in range(t_len):
            if t:
                np.matmul(alpha[t - 1], trans, out=a)
                a *= emit[t]
            np.matmul(a, ones, out=scale[t])
            np.divide(a, scale[t, :, None], out=alpha[t])
        bad = ~(scale >= _TINY).all(axis=0)  # 0, subnormal or NaN: precision lost
        log_scale = np.log(scale) + shift.reshape(t_len, n)
    return emit, alpha, scale, log_scale, bad


def _buffer(buffers: dict[str, np.ndarray] | None, name: str, shape: tuple[int, ...]):
    """An uninitialised float64 array of ``shape``: ``buffers[name]`` where it has that
    shape (reused across EM steps: fresh large arrays cost page faults on every step)."""
    if buffers is None:
        return np.empty(shape)
    if name not in buffers or buffers[name].shape != shape:
        buffers[name] = np.empty(shape)
    return buffers[name]


def _forward_log(
    log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward` in log space (the fallback where scaling underflows)."""
    trans = np.exp(log_trans)
    log_alpha = np.empty_like(log_emit)
    log_alpha[:, 0] = log_start + log_emit[:, 0]
    for t in range(1, log_emit.shape[1]):
        prev = log_alpha[:, t - 1]
        top = prev.max(axis=1, keepdims=True)  # (N, 1): Σ_i exp(prev − top) A_ij is ≥ tiny
        log_alpha[:, t] = top + _log(np.exp(prev - top) @ trans) + log_emit[:, t]
    return log_alpha, logsumexp(log_alpha[:, -1], axis=1)


def _forward_backward_log(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_backward` in log space (the fallback where scaling underflows)."""
    _, t_len, k = log_emit.shape
    log_alpha, loglik = _forward_log(log_start, log_trans, log_emit)
    trans = np.exp(log_trans)
    log_beta = np.zeros_like(log_emit)
    xi = np.zeros((k, k))
    for t in range(t_len - 2, -1, -1):
        after = log_emit[:, t + 1] + log_beta[:, t + 1]  # (N, K)
        b_top = after.max(axis=1, keepdims=True)
        q = np.exp(after - b_top)
        log_beta[:, t] = b_top + _log(q @ trans.T)
        # ξ_t(i, j) = α_t(i) A_ij e_t+1(j) β_t+1(j) / p(x), scaled per sequence by its maxima
        a_top = log_alpha[:, t].max(axis=1, keepdims=True)
        p = np.exp(log_alpha[:, t] - a_top)
        weight = np.exp(a_top[:, 0] + b_top[:, 0] - loglik)  # (N,)
        if valid is not None:
            weight = weight * valid[:, t + 1]
        xi += trans * ((p * weight[:, None]).T @ q)
    gamma = np.exp(log_alpha + log_beta - loglik[:, None, None])
    return loglik, gamma, xi


def viterbi_path(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """The most probable state path of each sequence, (N, T) int64 (max-product).

    ``valid`` (N, T) bool is False at padded steps (after a sequence's end): they carry
    no emission and no transition (a max over A's rows would not be one), and their
    entries of the path are −1.
    """
    n, t_len, k = log_emit.shape
    delta = log_start + log_emit[:, 0]  # (N, K)
    back = np.zeros((n, t_len, k), dtype=np.int64)
    for t in range(1, t_len):
        cand = delta[:, :, None] + log_trans  # (N, K_from, K_to)
        back[:, t] = cand.argmax(axis=1)
        new = cand.max(axis=1) + log_emit[:, t]
        if valid is not None:  # a padded step keeps each state's score and stays put
            pad = ~valid[:, t]
            back[pad, t] = np.arange(k)
            new[pad] = delta[pad]
        delta = new
    path = np.empty((n, t_len), dtype=np.int64)
    path[:, -1] = delta.argmax(axis=1)
    rows = np.arange(n)
    for t in range(t_len - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    if valid is not None:
        path[~valid] = -1
    return path


def backward_sample(
    log_start: np.ndarray,
    log_trans: np.ndarray,
    log_emit: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """State paths (N, T) drawn from p(s | x) by forward filtering, backward sampling."""
    log_alpha, _ = forward(log_start, log_trans, log_emit)
    n, t_len, _ = log_emit.shape
    states = np.empty((n, t_len), dtype=np.int64)
    states[:, -1] = sample_categorical(log_alpha[:, -1], rng, log=True)
    for t in range(t_len - 2, -1, -1):
        # p(s_t | s_t+1, x_1..t) ∝ α_t(s_t) A[s_t, s_t+1]
        states[:, t] = sample_categorical(
            log_alpha[:, t] + log_trans[:, states[:, t + 1]].T, rng, log=True
        )
    return states


def _log(p: np.ndarray) -> np.ndarray:
    """log p with 0 as the log of the smallest positive float (products stay finite)."""
    return np.log(np.maximum(p, _TINY))


# --------------------------------------------------------------------------- lengths
# A variable-length HMM ends after step t with probability e_k when s_t = k:
#   p(x, L) = Σ_s π_{s_1} ∏_{t<L} b(x_t | s_t) (1 − e_{s_t}) A_{s_t s_t+1} · b(x_L | s_L) e_{s_L}.
# The end events are folded into the emission factors (log(1 − e_k) at every step before
# the last, log e_k at the last) and a padded step after the end has factor one, so the
# recursions above run unchanged on a padded batch: A's rows sum to one, so the padding
# neither adds nor removes probability.


def step_masks(lengths: np.ndarray, t_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) bool masks of each sequence's real steps and of its last step."""
    steps = np.arange(t_len)
    return steps < lengths[:, None], steps == lengths[:, None] - 1


def fold_lengths(
    log_emit: np.ndarray, valid: np.ndarray, last: np.ndarray, endprob: np.ndarray
) -> np.ndarray:
    """Fold the end events into log emission factors (A, B, K), in place: + log(1 − e_k)
    at real steps before the last, + log e_k at the last, 0 (factor one) at padded steps.
    ``valid`` and ``last`` (A, B) are the masks of :func:`step_masks` in the same layout
    (batch-major (N, T) or time-major (T, N)); ``endprob`` (K,) lies in (0, 1)."""
    log_end, log_go_on = _log(endprob), _log(1.0 - endprob)
    log_emit += np.where(last[..., None], log_end, log_go_on)
    log_emit[~valid] = 0.0
    return log_emit
