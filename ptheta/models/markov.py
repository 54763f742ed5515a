"""Baselines: the Markov chain of order k along the raster / time order (discrete or Gaussian;
discrete sequences of any length with an END symbol)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import logsumexp

from ptheta.data.batch_stats import first_observed
from ptheta.data.spec import DataSpec
from ptheta.data.stream import ArraySource, Source, accumulate
from ptheta.errors import DataError, ParameterError
from ptheta.models.base import GenerativeModel
from ptheta.models.sampling import sample_categorical
from ptheta.params import Bool, Float, Int, Param

# Largest conditional table D·K^(k+1) (float64 entries) the discrete chain will allocate.
MAX_TABLE_SIZE = 50_000_000
# Rows per chunk of the forward recursion are chosen so that its largest array (the
# (n, K^k, K) step, or the (n, D, K^k) stored messages of impute) has about this many
# float64 entries (~160 MB).
_MESSAGE_BUDGET = 20_000_000
# Sampled variable-length sequences are cut at this many times the longest training one.
_MAX_LENGTH_FACTOR = 10
# Largest K^k · K (states × values, the work per example and position) of the
# forward-backward that EM runs when discrete training data have missing entries.
MAX_EM_TRANSITIONS = 2**16


class MarkovChain(GenerativeModel):
    """Markov chain of order k along the flattened (C-order) raster or time order.

    **Discrete data** (binary, categorical with K levels):

        p(x) = p(x_1) p(x_2 | x_1) ··· p(x_k | x_<k) ∏_{t>k} p(x_t | x_{t-k}, …, x_{t-1}),

    with one conditional table per position (``homogeneous=False``: statistics differ by
    pixel, as in raster images) or one table shared by every position t > k
    (``homogeneous=True``: stationary time series; the first k positions keep their own
    lower-order tables so that the whole is a proper distribution). Tables are smoothed
    counts with pseudo-count ``alpha`` per cell. Missing entries (NaN) are summed out
    exactly by the forward recursion over the K^k hidden states (the last k values), in
    log space; ``impute(method="sample")`` draws the exact conditional p(x_mis | x_obs) by
    forward filtering, backward sampling, and ``impute(method="mode")`` returns the exact
    *joint* most probable completion argmax_{x_mis} p(x_mis | x_obs) by Viterbi
    (max-product), not the per-entry modes.

    **Continuous data**: the linear-Gaussian autoregression

        x_t = a_t + Σ_{j ≤ min(k, t-1)} b_{t,j} x_{t-j} + ε_t,   ε_t ~ N(0, σ_t²),

    fitted by least squares per position (shared over t > k when ``homogeneous``), the
    residual variance raised by ``min_var``. The least squares run on standardised lags
    and targets, so data far from the origin (timestamps near 1.7e9) lose no precision;
    ``coef_`` and ``var_`` are in data units. It is a joint Gaussian N(μ, Σ) with
    μ = (I − B)⁻¹ a and precision Λ = (I − B)ᵀ diag(σ⁻²) (I − B), B strictly lower
    triangular (:meth:`joint_gaussian`); missing entries are marginalised exactly with
    the observed block of Σ, and ``impute`` returns the Gaussian conditional mean
    (``"mode"``) or a conditional sample.

    **Fitted from sums over batches** (``capabilities().streams``, examples of one
    length): the tables from counts of (position, state, value), the regressions from
    each position's window (x_t, x_{t-1}, …, x_{t-k}): its count, sum and matrix of sums
    of products about a shift (the first row's values, one value for a pooled group), from
    which the standardised normal equations are solved (least squares; the residual
    variance is 1 − R² of the standardised target, to rounding). The sums run over the
    batches of the data with :func:`~ptheta.data.stream.accumulate` (all-reduced over
    the processes under ``torchrun``); an in-memory fit is the same computation.
    Variable-length sequences are fitted in memory.

    **Missing data in training** (discrete data of one length): ``fit`` takes NaN entries
    and runs MAP-EM on the observed-data likelihood Σ_n log p(x_n,observed) plus the log
    Dirichlet prior Σ alpha log θ of the smoothed tables. The E-step is an exact
    forward-backward over the hidden state (the last k values, K^k states, clamped by the
    observed entries) giving the expected counts of (position, state, value), summed over
    the batches (one pass per iteration, all-reduced under ``torchrun``); the M-step is the
    smoothed tables of those counts. It starts from the available-case tables (the windows
    whose k + 1 entries are all observed, smoothed by max(alpha, 0.5)), stops when the
    objective per example moves by less than ``em_tol`` (or after ``em_max_iter``
    E-steps), and keeps the tables of the last record of ``history_`` (so its
    ``log_likelihood`` is the mean score of the training data). K^k · K is limited to
    ``MAX_EM_TRANSITIONS``; a position never observed is refused. Continuous data and
    variable-length sequences with NaN are refused (drop those rows; ``state-space`` or
    ``hmm`` train with missing entries); data without NaN fit in one pass, as before.

    **Variable-length sequences** (discrete steps; a list of arrays, a
    :class:`~ptheta.data.ragged.Sequences` or a split with lengths): each sequence's values
    in order (a step's F features one after the other), then an END symbol,

        p(x, L) = ∏_p p(x_p | x_{p-k}, …, x_{p-1}) · p(END | the last k values),

    with one table per position p < k (fewer than k predecessors, as above) and then one
    table per feature of a step, shared by every later position (the chain is
    homogeneous whatever ``homogeneous`` says: no position past the training lengths
    would have a table otherwise). The tables that start a step have a (K + 1)-th column,
    END (never before the first step, never inside a step); ``probs_`` is then
    (k + F, K^k, K + 1). Counts are smoothed by ``alpha`` per cell, END included. Missing
    entries inside a sequence are summed out exactly by the forward recursion;
    ``sample`` stops at END, and a sequence still going after 10 × the longest training
    sequence is cut there (the cap truncates). Continuous steps of any length are refused
    (no counted END): use ``hmm``.

    Assumptions: x_t depends on the past only through its k predecessors in the flattened
    order (for images, the previous pixels of the same row and the end of the row above);
    continuous data are jointly Gaussian with banded precision.

    Arguments:
        order: k ∈ {1, 2, 3}, the number of predecessors each variable is conditioned on.
        homogeneous: share one conditional (table or regression) across positions t > k.
        alpha: pseudo-count added to every cell of every conditional table (0.5 is the
            Krichevsky–Trofimov estimator; 0 is maximum likelihood, which gives −inf to
            transitions never seen in training).
        min_var: added to every residual variance (continuous data), so that exactly
            predictable positions keep a density.
        em_max_iter: most EM iterations (E-steps) when discrete training data have missing
            entries.
        em_tol: EM stops when its objective per example changes by less than this.

    Fitted attributes:
        probs_: (D, K^k, K) conditional tables, ``probs_[t, s, v] = p(x_t = v | state s)``
            with state s = Σ_j x_{t-j} K^(j-1) (the latest value is the lowest digit;
            values before the first position count as 0, and for t < k the table does not
            depend on those digits).
        coef_: (D, k + 1) intercept a_t and lag coefficients b_{t,1..k} (0 where unused);
        var_: (D,) residual variances σ_t² (continuous data).
        history_: EM records ``step``, ``objective`` (log-likelihood plus log prior) and
            ``log_likelihood``, per example (only when the training data had missing
            entries); ``n_iter_`` their number.

    Example:
        >>> import ptheta
        >>> data = ptheta.datasets.load("digits-binary")
        >>> m = ptheta.make("markov", order=2).fit(data.train.x)
        >>> m.score(data.test.x) > ptheta.make("independent").fit(data.train.x).score(data.test.x)
        True

        Sequences of any length: 0 and 1 alternate, and the END comes after a 1.

        >>> seqs = [[0, 1], [0, 1, 0, 1], [1], [0, 1, 0, 1, 0, 1]]
        >>> v = ptheta.make("markov", order=1, alpha=0.1).fit(seqs)
        >>> v.probs_.shape  # (k + F, K^k, K + 1): END in the last column
        (2, 2, 3)
        >>> [s.tolist() for s in v.sample(3, random_state=0)]
        [[0, 1], [0, 1], [0, 1]]

    References:
        Shannon (1948), n-gram models of sequences; Rabiner (1989) for the forward and
        Viterbi recursions; Früwirth-Schnatter (1994) / Carter & Kohn (1994) for forward
        filtering, backward sampling; Brockwell & Davis (1991) for autoregressions.
    """

    name: ClassVar[str] = "markov"
    family: ClassVar[str] = "baselines"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("binary", "categorical", "continuous")
    can_marginalise: ClassVar[bool] = True
    fits_missing: ClassVar[bool] = True  # discrete data of one length (EM); others refuse
    abilities: ClassVar[dict[str, Any]] = {"variable_length": True, "streams": True}
    quick_params: ClassVar[dict[str, Any]] = {"order": 1}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": {"order": 2}, "explorer": {"order": 1}}
    parameters: ClassVar[dict[str, Param]] = {
        "order": Int(
            low=1,
            high=3,
            hint="for order 0 use ptheta.make('independent'), for longer contexts an "
            "autoregressive family",
        ),
        "homogeneous": Bool(),
        "alpha": Float(low=0),
        "min_var": Float(low=0),
        "em_max_iter": Int(low=1),
        "em_tol": Float(low=0),
    }

    def __init__(
        self,
        order: int = 1,
        *,
        homogeneous: bool = False,
        alpha: float = 0.5,
        min_var: float = 1e-6,
        em_max_iter: int = 100,
        em_tol: float = 1e-6,
    ) -> None:
        self.order = order
        self.homogeneous = homogeneous
        self.alpha = alpha
        self.min_var = min_var
        self.em_max_iter = em_max_iter
        self.em_tol = em_tol

    # ----------------------------------------------------------------- fitting
    def _fit(self, x: np.ndarray, y: Any, spec: DataSpec) -> None:
        self._fit_stream(ArraySource(x), y, spec)  # one computation, in memory or streamed

    def _fit_stream(self, data: Source, y: Any, spec: DataSpec) -> None:
        if spec.is_discrete:
            self._fit_tables(data, int(spec.n_categories))
        else:
            self._fit_regressions(data)

    def _fit_tables(self, data: Source, k_levels: int) -> None:
        d = int(np.prod(data.event_shape))
        k, n_states = int(self.order), k_levels ** int(self.order)
        if d * n_states * k_levels > MAX_TABLE_SIZE:
            raise ParameterError(
                f"an order-{k} chain on {d} variables with {k_levels} levels needs "
                f"{d * n_states * k_levels:.3g} table entries (limit {MAX_TABLE_SIZE:.0e}); "
                "use a lower order, fewer levels (e.g. binarise) or an autoregressive family"
            )

        def statistics(batch: np.ndarray, _: Any) -> dict[str, Any]:
            flat = batch.reshape(len(batch), d)
            missing = np.isnan(flat) if flat.dtype.kind == "f" else None
            if missing is None or not missing.any():  # complete rows: every window counts
                flat = flat.astype(np.int64, copy=False)
                ctx = _contexts(flat, k_levels, k)  # (n, D) state before each position
                cell = (np.arange(d) * n_states + ctx) * k_levels + flat  # (n, D)
                counts = np.bincount(cell.ravel(), minlength=d * n_states * k_levels)
                return {"counts": counts, "observed": np.full(d, len(flat))}
            # available cases: the windows (x_{t-k}, ..., x_t) with every entry observed
            codes = np.where(missing, 0, flat).astype(np.int64)
            ctx = _contexts(codes, k_levels, k)
            whole = ~missing
            for j in range(1, k + 1):
                whole[:, j:] &= ~missing[:, :-j]
            cell = (np.arange(d) * n_states + ctx) * k_levels + codes
            counts = np.bincount(cell[whole], minlength=d * n_states * k_levels)
            return {"counts": counts, "observed": (~missing).sum(axis=0)}

        stats = accumulate(data, statistics)
        counts = stats["counts"].reshape(d, n_states, k_levels)
        observed = stats["observed"]
        if np.all(observed == data.n):  # complete data: the smoothed counts, in one pass
            self.probs_ = self._tables(counts, self.alpha)
            return
        never = np.flatnonzero(observed == 0)
        if never.size:
            raise DataError(
                f"position(s) {never[:5].tolist()} of the flattened {data.event_shape} "
                "examples have no observed value in the training data, so nothing can be "
                "learned about them; drop those positions (or fill them) before fitting"
            )
        if n_states * k_levels > MAX_EM_TRANSITIONS:
            raise ParameterError(
                f"fitting an order-{k} chain with {k_levels} levels on data with missing "
                f"entries runs a forward-backward over K^k = {n_states} states × {k_levels} "
                f"values = {n_states * k_levels} transitions per position (limit "
                f"{MAX_EM_TRANSITIONS}); use a lower order or fewer levels (e.g. binarise), "
                "or drop the rows with missing entries"
            )
        # EM from the available-case tables (smoothed by at least 0.5, so that every
        # training row has a positive probability at the start even when alpha = 0)
        self.probs_ = self._tables(counts, max(float(self.alpha), 0.5))
        self._em_tables(data, d, k_levels)

    def _tables(self, counts: np.ndarray, alpha: float) -> np.ndarray:
        """Conditional tables (D, K^k, K) from (expected) counts of (position, state,
        value): pooled over positions t ≥ k when ``homogeneous``, the padding digits of the
        first k positions ignored, smoothed by ``alpha`` per cell."""
        d, k = len(counts), int(self.order)
        counts = counts.astype(np.float64)  # a copy: the caller's counts stay as they are
        k_levels, n_states = counts.shape[2], counts.shape[1]
        if self.homogeneous and d > k:
            counts[k:] = counts[k:].sum(axis=0)  # one pooled table for positions k, k+1, ...
        for t in range(min(k, d)):
            # only states whose digits beyond the t real predecessors are 0 occur: copy their
            # rows to every state so that p(x_t | state) ignores the padding digits
            counts[t] = counts[t, np.arange(n_states) % k_levels**t]
        counts = counts + alpha
        with np.errstate(invalid="ignore"):  # alpha = 0 and an unseen context: 0 / 0
            probs = counts / counts.sum(axis=2, keepdims=True)
        # a context never seen with alpha = 0: fall back to uniform so that rows normalise
        return np.where(np.isnan(probs), 1.0 / k_levels, probs)

    def _log_prior(self) -> float:
        """Σ alpha · log θ over the free cells of the tables (the Dirichlet(alpha + 1)
        prior whose MAP estimate the smoothed counts are), each distinct row once."""
        if self.alpha == 0:
            return 0.0
        d, _, k_levels = self.probs_.shape
        k = int(self.order)
        rows = [self.probs_[t, : k_levels ** min(t, k)] for t in range(d)]
        if self.homogeneous and d > k:
            rows = rows[: k + 1]  # positions k, k+1, ... share one table
        return float(self.alpha * sum(np.log(r).sum() for r in rows))

    def _em_tables(self, data: Source, d: int, k_levels: int) -> None:
        """MAP-EM over the missing entries: the E-step's expected counts of (position,
        state, value) by forward-backward over the state (the last k values), summed over
        the batches of ``data`` (one pass per iteration); the M-step the smoothed tables
        of those counts. Records ``history_``; the last record is the fitted tables'."""
        order = int(self.order)
        n_states = k_levels**order

        def statistics(batch: np.ndarray, _: Any, logp: np.ndarray) -> dict[str, Any]:
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            loglik, counts = 0.0, np.zeros((d, n_states, k_levels))
            step = max(1, _MESSAGE_BUDGET // (n_states * max(k_levels, d)))
            for i in range(0, len(flat), step):
                part_loglik, part_counts = _expected_counts(flat[i : i + step], logp, order)
                loglik += float(part_loglik.sum())
                counts += part_counts
            return {"loglik": loglik, "counts": counts}

        history: list[dict[str, float]] = []
        prev = -np.inf
        for step in range(1, int(self.em_max_iter) + 1):
            with np.errstate(divide="ignore"):
                logp = np.log(self.probs_)
            sums = accumulate(data, lambda b, y, logp=logp: statistics(b, y, logp))
            loglik = float(sums["loglik"]) / data.n
            objective = loglik + self._log_prior() / data.n
            history.append({"step": step, "objective": objective, "log_likelihood": loglik})
            if abs(objective - prev) < self.em_tol or step == self.em_max_iter:
                break  # the fitted tables are those of the last record
            prev = objective
            self.probs_ = self._tables(sums["counts"], self.alpha)
        self.history_ = history
        self.n_iter_ = len(history)

    def _fit_regressions(self, data: Source) -> None:
        d = int(np.prod(data.event_shape))
        k = int(self.order)
        if np.isnan(data.read_range(0, min(1, data.n))).any():
            raise DataError(_CONTINUOUS_MISSING)
        # the moments of each window w_t = (x_t, x_{t-1}, ..., x_{t-k}) (0 before the first
        # position) about a shift of values of the data: the first row's (one value for
        # the whole pooled group, so that its windows' sums add up)
        first = first_observed(data)
        shift = _lags(first[None], k)[0]  # (D, k+1): 1, s_{t-1}, ..., s_{t-k}
        shift[:, 0] = first
        if self.homogeneous and d > k:
            shift[k:] = first[k]

        def statistics(batch: np.ndarray, _: Any) -> dict[str, np.ndarray]:
            flat = batch.reshape(len(batch), d).astype(np.float64, copy=False)
            if np.isnan(flat).any():
                raise DataError(_CONTINUOUS_MISSING)
            window = _lags(flat, k)  # (n, D, k+1)
            window[:, :, 0] = flat
            z = window - shift
            return {"n": len(flat), "sum": z.sum(axis=0), "sum_sq": np.einsum("nti,ntj->tij", z, z)}

        stats = accumulate(data, statistics)
        n, s1, s2 = float(stats["n"]), stats["sum"], stats["sum_sq"]
        counts = np.full(d, n)
        groups = [[t] for t in range(d)]
        if self.homogeneous and d > k:  # one regression pooled over positions k, k+1, ...
            groups = [*groups[:k], list(range(k, d))]
        coef, var, scale = np.zeros((d, k + 1)), np.zeros(d), np.zeros(d)
        for group in groups:
            cols = min(group[0], k) + 1  # the target and the available lags
            m = counts[group].sum()
            g1, g2 = s1[group, :cols].sum(axis=0), s2[group, :cols, :cols].sum(axis=0)
            mean = shift[group[0], :cols] + g1 / m  # (cols,): target, lags
            scatter = g2 - np.outer(g1, g1) / m  # Σ (w − mean)(w − mean)ᵀ
            std = np.sqrt(np.maximum(np.diag(scatter), 0.0) / m)
            std = np.where(std > 0, std, 1.0)  # a constant entry: std 1 (its sums are 0)
            constant = g2[0, 0] == 0  # every target equals the shift (a value of it)
            # least squares on standardised lags and target (no loss of precision far from
            # the origin, e.g. timestamps), mapped back to data units: the normal equations
            # of the correlations, C_ll w = C_lt
            corr = scatter / (m * np.outer(std, std))
            if cols > 1:
                w = np.linalg.lstsq(corr[1:, 1:], corr[1:, 0], rcond=None)[0]
                resid = corr[0, 0] - 2 * w @ corr[1:, 0] + w @ corr[1:, 1:] @ w
            else:
                w, resid = np.zeros(0), corr[0, 0]
            slopes = w * std[0] / std[1:]
            coef[group, :cols] = [mean[0] - slopes @ mean[1:], *slopes]
            var[group] = std[0] ** 2 * max(resid, 0.0) + self.min_var
            # the target's spread around its mean (its square when it is constant)
            scale[group] = mean[0] ** 2 if constant else std[0] ** 2
        # a residual at rounding level is an exact fit: the density would be (near) infinite
        bad = np.flatnonzero(var <= 1e-12 * scale)
        if bad.size:
            raise DataError(
                f"position(s) {bad[:5].tolist()} are exact linear functions of their "
                f"{k} predecessors in the training data, so their residual variance is 0; "
                "set min_var > 0"
            )
        self.coef_, self.var_ = coef, var

    # ----------------------------------------------------------------- variable length
    def _fit_sequences(self, x: np.ndarray, lengths: np.ndarray, y: Any, spec: DataSpec) -> None:
        if not spec.is_discrete:
            raise DataError(
                "markov models variable-length sequences of discrete steps (binary or "
                "categorical), whose end is an END symbol counted like any value; for "
                "continuous steps of any length use 'hmm' (per-state end probabilities), or "
                "cut the sequences into windows of one length"
            )
        k_levels, k, f = int(spec.n_categories), int(self.order), spec.step_dims
        n_states, n_tables = k_levels**k, k + f
        if n_tables * n_states * (k_levels + 1) > MAX_TABLE_SIZE:
            raise ParameterError(
                f"an order-{k} chain with {k_levels} levels needs "
                f"{n_tables * n_states * (k_levels + 1):.3g} table entries (limit "
                f"{MAX_TABLE_SIZE:.0e}); use a lower order or fewer levels (e.g. binarise)"
            )
        values, keep = _with_end(x, lengths, k_levels)  # (N, P + 1), END = K
        if np.isnan(values[keep]).any():
            raise DataError(
                "markov fits variable-length sequences only when every entry is observed "
                "(it scores missing entries exactly, but has no EM over them for sequences "
                "of any length); drop or fill the sequences with NaN, or cut them into "
                "windows of one length (an array with NaN fits by EM)"
            )
        codes = values.astype(np.int64)
        tables = _table_index(values.shape[1], k, f)  # (P + 1,)
        ctx = _contexts(codes % k_levels, k_levels, k)  # END read as 0: only after the end
        cell = (tables * n_states + ctx) * (k_levels + 1) + codes
        counts = np.bincount(cell[keep], minlength=n_tables * n_states * (k_levels + 1))
        counts = counts.reshape(n_tables, n_states, k_levels + 1).astype(np.float64)
        for t in range(k):  # fewer than k predecessors: the padding digits are ignored
            counts[t] = counts[t, np.arange(n_states) % k_levels**t]
        can_end = np.ones((n_tables, 1, k_levels + 1))
        can_end[~_end_allowed(k, f), :, k_levels] = 0.0  # END only after a whole step
        counts = (counts + self.alpha) * can_end
        total = counts.sum(axis=2, keepdims=True)
        with np.errstate(invalid="ignore"):  # alpha = 0 and an unseen context: 0 / 0
            probs = counts / total
        uniform = can_end / can_end.sum(axis=2, keepdims=True)
        self.probs_ = np.where(total > 0, probs, uniform)

    def _score_sequences(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        k_levels, k = self.probs_.shape[2] - 1, int(self.order)
        values, keep = _with_end(x.astype(np.float64), lengths, k_levels)
        partial = np.isnan(values).any(axis=1)
        out = np.empty(len(values))
        with np.errstate(divide="ignore"):
            logp = np.log(self.probs_)  # (k + F, K^k, K + 1)
        tables = _table_index(values.shape[1], k, self.fitted_spec.step_dims)
        codes = values[~partial].astype(np.int64)
        ctx = _contexts(codes % k_levels, k_levels, k)  # END read as 0: only after the end
        lp = logp[tables, ctx, codes]  # (n, P + 1)
        out[~partial] = np.where(keep[~partial], lp, 0.0).sum(axis=1)
        if partial.any():
            out[partial] = self._forward_sequences(values[partial], keep[partial], logp)
        return out

    def _forward_sequences(
        self, values: np.ndarray, keep: np.ndarray, logp: np.ndarray
    ) -> np.ndarray:
        """log p(x_observed, L) (n,) by the forward recursion over the state (the last k
        values), NaN entries summed out; ``values`` (n, P + 1) hold END at each end."""
        k_levels, n_states = logp.shape[2] - 1, logp.shape[1]
        ends = keep.sum(axis=1) - 1  # the END position of each row
        tables = _table_index(values.shape[1], int(self.order), self.fitted_spec.step_dims)
        alpha = np.full((len(values), n_states), -np.inf)
        alpha[:, 0] = 0.0
        out = np.empty(len(values))
        for p in range(int(ends.max()) + 1):
            done = ends == p
            out[done] = logsumexp(alpha[done] + logp[tables[p], :, k_levels], axis=1)
            going = ends > p
            alpha[going] = _forward_step(
                alpha[going], logp[tables[p]], values[going, p], k_levels, logsumexp
            )
        return out

    def _sample_sequences(
        self, n: int, y: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        spec = self.fitted_spec
        n_states, k_levels = self.probs_.shape[1], self.probs_.shape[2] - 1
        f = spec.step_dims
        cap = _MAX_LENGTH_FACTOR * spec.event_shape[0] * f  # values, at most
        tables = _table_index(cap, int(self.order), f)
        out = np.zeros((n, cap), dtype=np.int64)
        ends = np.full(n, cap)  # those still going at the cap: cut there
        state = np.zeros(n, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for p in range(cap):
            v = sample_categorical(self.probs_[tables[p], state], rng)  # (n,), K = END
            stop = alive & (v == k_levels)
            ends[stop] = p
            alive &= ~stop
            if not alive.any():
                break
            v = np.where(alive, v, 0)
            out[:, p] = v * alive
            state = (state * k_levels + v) % n_states
        lengths = ends // f
        t_len = int(lengths.max())
        values = out[:, : t_len * f].reshape(n, t_len, *spec.step_shape)
        return values, lengths

    # ----------------------------------------------------------------- scoring
    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)  # (N, D)
        missing = np.isnan(flat)
        partial = missing.any(axis=1)
        out = np.empty(len(flat))
        if hasattr(self, "probs_"):
            full = flat[~partial].astype(np.int64)
            ctx = _contexts(full, self.probs_.shape[2], int(self.order))
            with np.errstate(divide="ignore"):
                logp = np.log(self.probs_[np.arange(flat.shape[1]), ctx, full])  # (n, D)
            out[~partial] = logp.sum(axis=1)
            if partial.any():
                rows, scores = flat[partial], np.empty(int(partial.sum()))
                for part in self._chunks(len(rows), stored=False):
                    alpha = self._forward(rows[part], logsumexp, keep=False)[-1]  # (n, K^k)
                    scores[part] = logsumexp(alpha, axis=1)
                out[partial] = scores
            return out
        out[~partial] = self._ar_log_density(flat[~partial])
        if partial.any():
            mean, cov = self.joint_gaussian()
            patterns, which = np.unique(missing[partial], axis=0, return_inverse=True)
            rows = flat[partial]
            scores = np.zeros(len(rows))
            for i, pattern in enumerate(patterns):
                obs, sel = ~pattern, which.ravel() == i
                if obs.any():  # an all-missing row has log-marginal 0
                    diff = rows[sel][:, obs] - mean[obs]
                    scores[sel] = _gaussian_log_density(diff, cov[np.ix_(obs, obs)])
            out[partial] = scores
        return out

    def _ar_log_density(self, flat: np.ndarray) -> np.ndarray:
        """Σ_t log N(x_t; a_t + Σ_j b_{t,j} x_{t-j}, σ_t²) for complete rows, shape (N,)."""
        pred = np.einsum("ndj,dj->nd", _lags(flat, int(self.order)), self.coef_)  # (N, D)
        z = (flat - pred) ** 2 / self.var_
        return -0.5 * (z + np.log(2 * np.pi * self.var_)).sum(axis=1)

    def joint_gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """The joint Gaussian N(μ, Σ) the fitted autoregression defines (continuous data).

        Returns:
            mean (D,) and covariance (D, D), in closed form from x = a + B x + ε.

        Example:
            >>> import numpy as np, ptheta
            >>> x = np.random.default_rng(0).normal(size=(500, 4)).cumsum(axis=1)  # random walks
            >>> mean, cov = ptheta.make("markov").fit(x).joint_gaussian()
            >>> mean.shape, cov.shape
            ((4,), (4, 4))
            >>> np.round(np.diag(cov))  # a random walk's variance grows by one a step
            array([1., 2., 3., 4.])
        """
        self._check_fitted()
        if not hasattr(self, "coef_"):
            raise DataError("joint_gaussian is defined for a chain fitted on continuous data")
        eye = np.eye(len(self.var_))
        inv = solve_triangular(eye - self._lag_matrix(), eye, lower=True)  # (I − B)⁻¹
        return inv @ self.coef_[:, 0], (inv * self.var_) @ inv.T

    def _lag_matrix(self) -> np.ndarray:
        """B (D, D), strictly lower triangular: B[t, t-j] = b_{t,j}."""
        d, k = len(self.var_), int(self.order)
        b = np.zeros((d, d))
        for j in range(1, min(k, d - 1) + 1):
            t = np.arange(j, d)
            b[t, t - j] = self.coef_[j:, j]
        return b

    # ----------------------------------------------------------------- discrete recursions
    def _chunks(self, n: int, *, stored: bool) -> list[slice]:
        """Row slices that keep the forward recursion within the memory budget."""
        d, n_states, k_levels = self.probs_.shape
        size = n_states * max(k_levels, d if stored else 1)
        step = max(1, _MESSAGE_BUDGET // size)
        return [slice(i, i + step) for i in range(0, n, step)]

    def _forward(
        self, flat: np.ndarray, reduce: Callable[..., np.ndarray], *, keep: bool = True
    ) -> list[np.ndarray]:
        """Forward messages over the state (last k values), one (N, K^k) array per position
        (only the last one unless ``keep``).

        ``reduce`` is log-sum-exp (sum-product: α_t = log p(x_obs ≤ t, state_t)) or max
        (max-product: Viterbi). NaN entries of ``flat`` (N, D) are summed (maximised) over.
        """
        n, d = flat.shape
        k_levels, n_states = self.probs_.shape[2], self.probs_.shape[1]
        with np.errstate(divide="ignore"):
            logp = np.log(self.probs_)  # (D, S, K)
        alpha = np.full((n, n_states), -np.inf)
        alpha[:, 0] = 0.0  # before the first position every digit is the padding value 0
        messages = []
        for t in range(d):
            alpha = _forward_step(alpha, logp[t], flat[:, t], k_levels, reduce)
            if keep or t == d - 1:
                messages.append(alpha)
        return messages

    def _backtrack(
        self, messages: list[np.ndarray], choose: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """Walk the states back from the last position, ``choose`` picking one index per
        row from (n, K) log-weights (argmax for Viterbi, a draw for backward sampling)."""
        k_levels, n_states = self.probs_.shape[2], self.probs_.shape[1]
        n, d = messages[0].shape[0], len(messages)
        with np.errstate(divide="ignore"):
            logp = np.log(self.probs_)
        rows = np.arange(n)
        state = choose(messages[-1])  # (n,)
        out = np.empty((n, d), dtype=np.int64)
        for t in range(d - 1, 0, -1):
            out[:, t] = state % k_levels
            # previous state = (oldest digit h, then the newer digits of `state`)
            cand = (
                np.arange(k_levels)[None, :] * (n_states // k_levels) + (state // k_levels)[:, None]
            )  # (n, K)
            weights = messages[t - 1][rows[:, None], cand] + logp[t][cand, out[:, t, None]]
            state = cand[rows, choose(weights)]
        out[:, 0] = state % k_levels
        return out

    # ----------------------------------------------------------------- missing data
    def _impute(self, x: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        flat = x.reshape(len(x), -1).copy()  # (N, D)
        missing = np.isnan(flat)
        todo = np.flatnonzero(missing.any(axis=1))
        if todo.size == 0:
            return flat
        if hasattr(self, "probs_"):
            flat[todo] = self._impute_discrete(flat[todo], method, rng)
        else:
            flat[todo] = self._impute_gaussian(flat[todo], missing[todo], method, rng)
        return flat

    def _impute_discrete(
        self, flat: np.ndarray, method: str, rng: np.random.Generator
    ) -> np.ndarray:
        if method == "mode":
            reduce, choose = np.max, _argmax
        else:
            reduce, choose = logsumexp, lambda w: sample_categorical(w, rng, log=True)
        out = np.empty(flat.shape, dtype=np.int64)
        for part in self._chunks(len(flat), stored=True):
            messages = self._forward(flat[part], reduce)
            if not np.all(np.isfinite(messages[-1].max(axis=1))):
                raise DataError(
                    "some partial examples have observed values of probability 0 under the "
                    "model (alpha=0 and a transition never seen in training); refit with "
                    "alpha > 0"
                )
            out[part] = self._backtrack(messages, choose)
        return out

    def _impute_gaussian(
        self, flat: np.ndarray, missing: np.ndarray, method: str, rng: np.random.Generator
    ) -> np.ndarray:
        mean, _ = self.joint_gaussian()
        ib = np.eye(len(mean)) - self._lag_matrix()
        precision = (ib.T / self.var_) @ ib  # Λ = (I − B)ᵀ diag(σ⁻²) (I − B)
        patterns, which = np.unique(missing, axis=0, return_inverse=True)
        out = flat.copy()
        for i, pattern in enumerate(patterns):
            sel, mis, obs = which.ravel() == i, pattern, ~pattern
            # p(x_m | x_o) = N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹)
            chol = np.linalg.cholesky(precision[np.ix_(mis, mis)])  # Λ_mm = C Cᵀ
            shift = (flat[sel][:, obs] - mean[obs]) @ precision[np.ix_(obs, mis)]  # (n, m)
            cond = mean[mis] - cho_solve((chol, True), shift.T).T
            if method == "sample":  # Cᵀ⁻¹ z has covariance Λ_mm⁻¹
                z = rng.standard_normal((int(sel.sum()), int(mis.sum())))
                cond = cond + solve_triangular(chol.T, z.T, lower=False).T
            block = out[sel]
            block[:, mis] = cond
            out[sel] = block
        return out

    # ----------------------------------------------------------------- sampling
    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        if hasattr(self, "probs_"):
            d, n_states, k_levels = self.probs_.shape
            out = np.empty((n, d), dtype=np.int64)
            state = np.zeros(n, dtype=np.int64)
            for t in range(d):  # ancestral: each position given the sampled predecessors
                out[:, t] = sample_categorical(self.probs_[t, state], rng)  # (n,)
                state = (state * k_levels + out[:, t]) % n_states
            return out
        d, k = len(self.var_), int(self.order)
        out = np.zeros((n, d))
        noise = rng.standard_normal((n, d)) * np.sqrt(self.var_)
        for t in range(d):
            past = out[:, max(0, t - k) : t][:, ::-1]  # (n, c): x_{t-1}, ..., x_{t-c}
            out[:, t] = self.coef_[t, 0] + past @ self.coef_[t, 1 : past.shape[1] + 1] + noise[:, t]
        return out

    def _n_parameters(self) -> int:
        k = int(self.order)
        if self.fitted_spec.variable_length:  # a table with c predecessors: K^c rows
            k_levels = self.probs_.shape[2] - 1
            free = k_levels - 1 + _end_allowed(k, self.fitted_spec.step_dims)  # per row
            rows = k_levels ** np.minimum(np.arange(len(free)), k)
            return int((rows * free).sum())
        if hasattr(self, "probs_"):  # a table with c predecessors: K^c rows of K − 1
            d, k_levels = self.probs_.shape[0], self.probs_.shape[2]
            sizes = [k_levels**c * (k_levels - 1) for c in range(k + 1)]
        else:  # intercept, c coefficients, variance
            d, sizes = len(self.var_), [c + 2 for c in range(k + 1)]
        if self.homogeneous and d > k:
            return sum(sizes[:k]) + sizes[k]
        return sum(sizes[min(t, k)] for t in range(d))


_CONTINUOUS_MISSING = (
    "markov fits continuous data only when every entry is observed (it scores missing "
    "entries exactly, but its least squares have no EM over them); drop the rows with "
    "NaN, or fit 'state-space' or 'hmm', which train with missing entries"
)


# --------------------------------------------------------------------------- helpers
def _contexts(flat: np.ndarray, k_levels: int, order: int) -> np.ndarray:
    """State before each position, shape (N, D): Σ_{j=1..k} x_{t-j} K^(j-1), x_{<0} = 0."""
    ctx = np.zeros(flat.shape, dtype=np.int64)
    for j in range(1, order + 1):
        ctx[:, j:] += flat[:, :-j] * k_levels ** (j - 1)
    return ctx


def _with_end(x: np.ndarray, lengths: np.ndarray, k_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded sequences (N, T, *step) as their values in order, (N, T·F + 1) float64, with
    the END symbol K after each sequence's last value and 0 after it, and the (N, T·F + 1)
    mask of the positions that are read (the values and the END); the padding is ignored."""
    n = len(x)
    flat = x.reshape(n, -1)
    f = flat.shape[1] // x.shape[1]
    ends = lengths * f  # (N,) the END position of each sequence
    pos = np.arange(flat.shape[1] + 1)
    keep = pos <= ends[:, None]
    values = np.zeros((n, flat.shape[1] + 1))
    values[:, :-1] = np.where(pos[:-1] < ends[:, None], flat, 0.0)
    values[np.arange(n), ends] = k_levels
    return values, keep


def _table_index(n_positions: int, order: int, step_dims: int) -> np.ndarray:
    """Which conditional table each position of a variable-length sequence uses, (P,):
    position p < k its own (fewer than k predecessors), then one per feature of a step."""
    p = np.arange(n_positions)
    return np.where(p < order, p, order + p % step_dims)


def _end_allowed(order: int, step_dims: int) -> np.ndarray:
    """(k + F,) bool: whether a table's position can be the END (after a whole step, and
    never before the first)."""
    first = np.arange(order)
    return np.concatenate([(first > 0) & (first % step_dims == 0), np.arange(step_dims) == 0])


def _lags(flat: np.ndarray, order: int) -> np.ndarray:
    """Regressors (N, D, k + 1): 1, x_{t-1}, ..., x_{t-k}, with x_{<0} = 0."""
    out = np.zeros((*flat.shape, order + 1))
    out[:, :, 0] = 1.0
    for j in range(1, order + 1):
        out[:, j:, j] = flat[:, :-j]
    return out


def _forward_step(
    alpha: np.ndarray,
    logp: np.ndarray,
    values: np.ndarray,
    k_levels: int,
    reduce: Callable[..., np.ndarray],
) -> np.ndarray:
    """One step of the forward recursion over the state (the last k values): messages
    ``alpha`` (n, K^k) times the log conditional table ``logp`` (K^k, K or more: only its
    first K columns, the values, are read) at the next values ``values`` (n,), the oldest
    digit dropped; a NaN value is summed (``reduce`` = log-sum-exp) or maximised over."""
    n, n_states = alpha.shape
    logp = logp[:, :k_levels]
    new = np.full((n, n_states // k_levels, k_levels), -np.inf)  # [rest, newest]
    miss = np.isnan(values)
    if miss.any():  # every value: (n, S, K) -> drop the oldest digit
        m = alpha[miss][:, :, None] + logp[None]
        new[miss] = reduce(m.reshape(miss.sum(), k_levels, -1, k_levels), axis=1)
    if not miss.all():  # one known value: (n, S)
        obs = np.flatnonzero(~miss)
        v = values[obs].astype(np.int64)
        m = alpha[obs] + logp[:, v].T
        new[obs, :, v] = reduce(m.reshape(len(obs), k_levels, -1), axis=1)
    return new.reshape(n, n_states)


def _expected_counts(
    flat: np.ndarray, logp: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """E-step of one chunk of rows ``flat`` (n, D) with NaN entries, under the log tables
    ``logp`` (D, K^k, K) of an order-k chain: log p(x_observed) per row (n,) and the
    expected counts (D, K^k, K) of (position, state before it, value),
    Σ_rows p(state before t = s, x_t = v | x_observed).

    Complete rows count their windows directly; the others run forward-backward over the
    state (the last k values), whose observed entries clamp it:
    α_t = log p(x_obs ≤ t, state_t), β_t = log p(x_obs > t | state_t)."""
    n, d = flat.shape
    n_states, k_levels = logp.shape[1], logp.shape[2]
    missing = np.isnan(flat)
    partial = missing.any(axis=1)
    loglik = np.empty(n)
    full = flat[~partial].astype(np.int64)
    ctx = _contexts(full, k_levels, order)
    loglik[~partial] = logp[np.arange(d), ctx, full].sum(axis=1)
    cell = (np.arange(d) * n_states + ctx) * k_levels + full
    counts = np.bincount(cell.ravel(), minlength=d * n_states * k_levels).astype(np.float64)
    counts = counts.reshape(d, n_states, k_levels)
    if not partial.any():
        return loglik, counts
    rows, miss = flat[partial], missing[partial]
    m = len(rows)
    alphas = [np.full((m, n_states), -np.inf)]
    alphas[0][:, 0] = 0.0  # before the first position every digit is the padding value 0
    for t in range(d):
        alphas.append(_forward_step(alphas[-1], logp[t], rows[:, t], k_levels, logsumexp))
    log_z = logsumexp(alphas[-1], axis=1)  # (m,)
    loglik[partial] = log_z
    # the state after position t from the state before it and the value: (K^k, K)
    after = (np.arange(n_states)[:, None] * k_levels + np.arange(k_levels)) % n_states
    beta = np.zeros((m, n_states))
    levels = np.arange(k_levels)
    for t in range(d - 1, -1, -1):
        allowed = miss[:, t, None] | (levels == np.where(miss[:, t], 0, rows[:, t])[:, None])
        # term[i, s, v] = log p(x_t = v | s) + β_t(after(s, v)), v clamped where observed
        term = logp[t][None] + beta[:, after] + np.where(allowed, 0.0, -np.inf)[:, None, :]
        post = np.exp(alphas[t][:, :, None] + term - log_z[:, None, None])  # (m, S, K)
        counts[t] += post.sum(axis=0)
        beta = logsumexp(term, axis=2)  # β_{t-1}
    return loglik, counts


def _argmax(weights: np.ndarray) -> np.ndarray:
    return weights.argmax(axis=1)


def _gaussian_log_density(diff: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(diff; 0, cov) per row of diff (n, m)."""
    chol = np.linalg.cholesky(cov)
    z = solve_triangular(chol, diff.T, lower=True)  # (m, n)
    log_det = 2 * np.log(np.diag(chol)).sum()
    return -0.5 * ((z**2).sum(axis=0) + log_det + diff.shape[1] * np.log(2 * np.pi))
