"""table-ar: an autoregressive neural model of tables, one masked network with a head per column."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ptheta.data.batch_stats import first_observed
from ptheta.data.spec import Data, DataSpec, check_values
from ptheta.data.stream import Source, accumulate
from ptheta.data.table import LABEL_TYPES, ColumnSpec, describe_columns
from ptheta.errors import DataError
from ptheta.models.neural import NeuralModel
from ptheta.nn.masked import MaskedLinear, made_degrees, made_masks, reuse_masked_weights
from ptheta.nn.shapes import batched, sampled
from ptheta.nn.table_heads import (
    CategoricalHead,
    ColumnHead,
    CumulativeLogitHead,
    GaussianMixtureHead,
    NegativeBinomialMixtureHead,
)
from ptheta.params import Choice, Config, Float, Int, IntList, Param

# A standardised value beyond this is clipped where it enters the network (not where it is
# scored): a value at a bound of a log-transformed column is z = ∓inf there.
_INPUT_CLIP = 50.0


class TableARNetwork(nn.Module):
    """p(row) = ∏_j p(x_j | x_<j) over a table's columns in their order (module level).

    Input: each column encoded (a one-hot of its level for label columns; for a count the
    standardised log(1 + count); for a continuous column its value in model units, the
    standardised (transformed) value the estimator computes) plus a missing indicator per
    column; a missing cell's encoding is all zeros and its indicator 1. A MADE-style
    masked MLP (:func:`~ptheta.nn.masked.made_masks`: column j's inputs have degree j + 1,
    hidden degrees spread evenly, plus a direct masked input → output connection) gives
    each column's raw head parameters from the columns before it only. One head per
    column (:mod:`ptheta.nn.table_heads`): a softmax over the levels of a label column (a
    cumulative logit for an ordinal one with ``ordinal="cumulative"``), a mixture of
    negative binomials for a count, a mixture of Gaussians for a continuous value (in
    model units).

    ``log_conditionals(x)`` is log p(x_j | x_<j) per column, 0 where x_j is missing (NaN):
    a missing cell's term is dropped and the later columns see its indicator, so
    ``log_prob`` is log p(observed cells | which cells are missing). ``sample`` draws
    complete rows column by column.

    Arguments:
        columns: the table's :class:`~ptheta.data.table.ColumnSpec`, in order.
        hidden: sizes of the hidden layers ([]: the direct connection alone).
        n_components: mixture components of count and continuous heads.
        ordinal: ``"softmax"`` or ``"cumulative"`` heads for ordinal columns.
        min_scale: the smallest Gaussian scale (model units).
        count_loc, count_scale: (D,) location and scale of log(1 + count) per column (the
            entries of other columns are ignored).
        count_log_mean: (D,) log of each count column's mean (where its head starts).

    Example:
        >>> import torch
        >>> from ptheta.data.table import ColumnSpec
        >>> cols = [ColumnSpec("a", "binary", ("n", "y")), ColumnSpec("k", "count"),
        ...         ColumnSpec("v", "continuous")]
        >>> net = TableARNetwork(cols, [8]).double()
        >>> x = torch.tensor([[1.0, 3.0, 0.2], [0.0, float("nan"), -1.0]], dtype=torch.float64)
        >>> net.log_prob(x).shape, net.sample(4, generator=torch.Generator()).shape
        (torch.Size([2]), torch.Size([4, 3]))

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for
        Distribution Estimation, ICML.
    """

    # real inputs (codes, counts and values as floats; NaN for a missing cell)
    n_categories = None

    @classmethod
    def from_config(
        cls, config: Config, spec: DataSpec, stats: dict[str, np.ndarray]
    ) -> TableARNetwork:
        """The network of a :class:`TableAR`'s config for the table of ``spec``, with the
        column statistics ``stats`` (``count_loc``, ``count_scale``, ``count_log_mean``)."""
        return cls(
            spec.columns,
            config.hidden,
            n_components=config.n_components,
            ordinal=config.ordinal,
            min_scale=config.min_scale,
            **stats,
        )

    def __init__(
        self,
        columns: Sequence[ColumnSpec],
        hidden: Sequence[int] = (128, 128),
        *,
        n_components: int = 3,
        ordinal: str = "softmax",
        min_scale: float = 1e-3,
        count_loc: Sequence[float] | None = None,
        count_scale: Sequence[float] | None = None,
        count_log_mean: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.columns = tuple(columns)
        d = len(self.columns)
        self.event_shape = (d,)
        self.hidden = list(hidden)
        loc = np.zeros(d) if count_loc is None else np.asarray(count_loc, dtype=np.float64)
        scale = np.ones(d) if count_scale is None else np.asarray(count_scale, dtype=np.float64)
        log_mean = np.zeros(d) if count_log_mean is None else np.asarray(count_log_mean)
        heads: list[ColumnHead] = []
        widths = []  # input units per column: its encoding and its missing indicator
        for j, col in enumerate(self.columns):
            if col.type in LABEL_TYPES:
                cumulative = col.type == "ordinal" and ordinal == "cumulative"
                head_cls = CumulativeLogitHead if cumulative else CategoricalHead
                heads.append(head_cls(col.n_levels))
                widths.append(col.n_levels + 1)
            elif col.type == "count":
                heads.append(NegativeBinomialMixtureHead(n_components, float(log_mean[j])))
                widths.append(2)
            else:
                heads.append(GaussianMixtureHead(n_components, min_scale))
                widths.append(2)
        self.heads = nn.ModuleList(heads)
        width = torch.tensor(widths)
        sizes = torch.tensor([h.n_params for h in heads])
        start = torch.cumsum(width, 0) - width
        labels = [j for j, c in enumerate(self.columns) if c.type in LABEL_TYPES]
        numeric = [j for j, c in enumerate(self.columns) if c.type not in LABEL_TYPES]
        counts = [j for j, c in enumerate(self.columns) if c.type == "count"]
        self.label_index, self.numeric_index = labels, numeric
        self.register_buffer("label_start", start[labels].clone())  # (L,) first one-hot unit
        self.register_buffer("numeric_unit", start[numeric].clone())  # (R,)
        self.register_buffer("indicator_unit", start + width - 1)  # (D,)
        is_count = torch.zeros(len(numeric), dtype=torch.bool)
        is_count[[numeric.index(j) for j in counts]] = True
        self.register_buffer("numeric_is_count", is_count)
        self.register_buffer("numeric_loc", torch.as_tensor(loc[numeric], dtype=torch.float64))
        self.register_buffer("numeric_scale", torch.as_tensor(scale[numeric], dtype=torch.float64))
        self.param_sizes = sizes.tolist()
        # MADE degrees over the columns (natural order), hidden degrees spread evenly
        degrees = made_degrees(torch.arange(d), self.hidden)
        masks = made_masks(degrees, in_multiplicity=width, out_multiplicity=sizes)
        n_in, n_out = int(width.sum()), int(sizes.sum())
        layer_sizes = [n_in, *self.hidden, n_out]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, m) for (a, b), m in zip(pairwise(layer_sizes), masks, strict=True)
        )
        self.direct = None
        if self.hidden:  # inputs straight to the heads: the linear part of each conditional
            direct = made_masks(degrees[:1], in_multiplicity=width, out_multiplicity=sizes)[0]
            self.direct = MaskedLinear(n_in, n_out, direct, bias=False)

    def extra_repr(self) -> str:
        return f"{describe_columns(self.columns)}, hidden={self.hidden}"

    # ----------------------------------------------------------------- network
    def encode(self, x: Tensor) -> Tensor:
        """Rows (N, D) in model units, NaN for a missing cell → network inputs (N, I)."""
        missing = torch.isnan(x)
        value = torch.where(missing, torch.zeros_like(x), x)
        inputs = torch.zeros(
            len(x), int(self.indicator_unit[-1]) + 1, dtype=x.dtype, device=x.device
        )
        if self.label_index:
            seen = (~missing[:, self.label_index]).to(x.dtype)
            unit = self.label_start + value[:, self.label_index].long()
            inputs = inputs.scatter(1, unit, seen)  # one-hot of each observed level
        if self.numeric_index:
            v = value[:, self.numeric_index]
            counts = (torch.log1p(v.clamp_min(0)) - self.numeric_loc) / self.numeric_scale
            feature = torch.where(self.numeric_is_count, counts.to(x.dtype), v)
            feature = feature.clamp(-_INPUT_CLIP, _INPUT_CLIP)
            feature = torch.where(missing[:, self.numeric_index], 0.0, feature)
            inputs = inputs.index_copy(1, self.numeric_unit, feature)
        return inputs.index_copy(1, self.indicator_unit, missing.to(x.dtype))

    def params(self, inputs: Tensor) -> list[Tensor]:
        """Each column's raw head parameters (N, P_j) from the encoded inputs (N, I);
        column j's depend on the inputs of columns 0..j−1 only."""
        h = inputs
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)  # (N, H_i)
        if self.direct is not None:
            h = h + self.direct(inputs)
        return list(h.split(self.param_sizes, dim=-1))

    def log_conditionals(self, x: Tensor) -> Tensor:
        """log p(x_j | x_<j) of every column (N, D) (model units); 0 where x_j is missing."""
        missing = torch.isnan(x)
        value = torch.where(missing, torch.zeros_like(x), x)
        params = self.params(self.encode(x))
        terms = [
            head.log_prob(p, value[:, j])
            for j, (head, p) in enumerate(zip(self.heads, params, strict=True))
        ]
        out = torch.stack(terms, dim=1)
        return torch.where(missing, torch.zeros_like(out), out)

    @batched
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(observed cells | missing pattern) of rows (*batch, D) → (*batch): exact,
        in model units (a log-density of the standardised continuous values)."""
        return self.log_conditionals(x).sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """−log p of each row (N,), as :meth:`log_prob`."""
        return -self.log_prob(x)

    @sampled
    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Complete rows (*sample_shape, D) in model units, drawn column by column; all
        randomness from ``generator`` (on the network's device)."""
        weight = self.layers[0].weight
        x = torch.full(
            (n, len(self.columns)), float("nan"), dtype=weight.dtype, device=weight.device
        )
        with reuse_masked_weights(self):  # D passes: mask the weights once
            for j, head in enumerate(self.heads):
                params = self.params(self.encode(x))[j]
                x[:, j] = head.sample(params, generator=generator).to(x.dtype)
        return x


class TableAR(NeuralModel):
    """table-ar: the exact-likelihood deep autoregressive model of a table.

    p(row) = ∏_j p(x_j | x_<j) over the columns in table order, every conditional from one
    masked network (:class:`TableARNetwork`, MADE's masks over columns) with a head of the
    column's type:

    - binary, categorical, ordinal: a softmax over the levels (``ordinal="cumulative"``: an
      ordinal column by a cumulative logit, P(x ≤ k) = σ(θ_k − η), thresholds shared by
      every row and η from the network);
    - count: a mixture of ``n_components`` negative binomials, an exact pmf over 0, 1,
      2, … (mean exp(a_c) times the column's mean count, dispersion r_c from the network);
    - continuous: a mixture of ``n_components`` Gaussians of the standardised value
      z = (t(x) − mean) / std, with t the identity for an unbounded column, log(x − lower)
      for a column with only a lower bound (``lower=0``: a positive quantity), log(upper − x)
      for one with only an upper bound and log((x − lower) / (upper − x)) for one with both;
      ``score_samples`` adds the Jacobian log |dz/dx| = log |t'(x)| − log std, so it is a
      log-density of x in the user's units, and samples are mapped back (always within
      the bounds).

    The log-likelihood of a row is the sum of its column terms: a log-probability for a
    table of label and count columns (``units_ == "discrete"``), the log of a probability
    times a density with continuous columns (``"mixed"``), exact either way.

    **Missing cells.** ``fit`` takes rows with missing (NaN) cells: a missing cell's term is
    dropped and it enters the network as zeros with its missing indicator set, so what is
    fitted and what :meth:`observed_log_prob` returns is log p(observed cells | which cells
    are missing): for each pattern of missing cells an exactly normalised distribution
    over the observed cells, in which column j is conditioned on the observed cells and
    the missing indicators of the columns before it. It is **not** the marginal of one joint
    distribution over all cells (summing a missing cell out of p(row) would need the
    network at every value of that cell), so ``score_samples`` refuses missing cells
    (``capabilities().marginalises`` is False) and there is no ``impute``. With every cell
    observed the indicators are 0 and change nothing. Samples are complete rows, drawn
    from p(row | nothing missing).

    Data are standardised with moments summed over batches
    (:func:`~ptheta.data.stream.accumulate`: a memory-mapped table trains as the array),
    over each column's observed cells. A value exactly at a bound of a log-transformed
    column has density 0 (z = ∓inf): training data with one are refused (declare the
    column without that bound, or model the exact zeros by a binary column as the
    ``affairs`` data do); a row with one scores −inf.

    Arguments:
        hidden: sizes of the hidden layers ([]: each conditional is linear in the
            encoded columns before it).
        n_components: mixture components of each count and continuous column.
        ordinal: ``"softmax"`` (free level probabilities) or ``"cumulative"`` (the
            cumulative logit model, which uses the order) for ordinal columns.
        min_scale: the smallest standard deviation of a Gaussian component, in
            standardised units (bounds the density of repeated values).
        **training: the shared training arguments (epochs, lr, batch_size, dtype,
            device, random_state, ...; see ``ptheta.models.neural.TRAINING_PARAMS``).

    Fitted attributes:
        module: the trained :class:`TableARNetwork`; history_, best_epoch_.
        column_shift_, column_scale_: (D,) mean and standard deviation of t(x) for
            continuous columns and of log(1 + x) for count columns (0 and 1 elsewhere).
        count_mean_: (D,) the mean of each count column (0 elsewhere).

    Example:
        >>> import numpy as np, pandas as pd
        >>> from ptheta.data.table import table_dataset
        >>> from ptheta.models.table_ar import TableAR
        >>> rng = np.random.default_rng(0)
        >>> size = rng.choice(["S", "M", "L"], 300)
        >>> frame = pd.DataFrame({"size": size, "n": rng.poisson(np.where(size == "L", 6, 1)),
        ...                       "price": rng.gamma(2.0, np.where(size == "S", 1.0, 3.0))})
        >>> data = table_dataset(frame, schema=[{"name": "price", "type": "continuous",
        ...                                      "lower": 0}])
        >>> m = TableAR(**TableAR.quick_params).fit(data.train)
        >>> m.units_, m.score_samples(data.test).shape, m.sample(3, random_state=0).shape
        ('mixed', (30,), (3, 3))

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for
        Distribution Estimation, ICML. Bishop (1994), Mixture density networks.
        McCullagh (1980), Regression models for ordinal data, JRSS B.
    """

    name: ClassVar[str] = "table-ar"
    family: ClassVar[str] = "autoregressive"
    likelihood: ClassVar[str] = "exact"
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)
    fits_missing: ClassVar[bool] = True
    can_marginalise: ClassVar[bool] = False
    quick_params: ClassVar[dict[str, Any]] = {
        "hidden": [16],
        "n_components": 2,
        "epochs": 20,
        "lr": 0.02,
        "batch_size": 64,
        "dtype": "float64",
        "device": "cpu",
    }
    parameters: ClassVar[dict[str, Param]] = {
        "hidden": IntList(),
        "n_components": Int(low=1),
        "ordinal": Choice("softmax", "cumulative"),
        "min_scale": Float(low=0, low_open=True),
    }

    def __init__(
        self,
        hidden: int | Sequence[int] = (128, 128),
        *,
        n_components: int = 3,
        ordinal: str = "softmax",
        min_scale: float = 1e-3,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = hidden
        self.n_components = n_components
        self.ordinal = ordinal
        self.min_scale = min_scale

    def _kind_fix(self, spec: DataSpec) -> str:
        return (
            "read the file as a table (ptheta.data.load(path, kind='table'), or "
            "ptheta.data.table_dataset(frame) for a DataFrame); for arrays of one kind use "
            "made (discrete) or maf (continuous)"
        )

    # ----------------------------------------------------------------- fitting
    def _fit_stream(
        self, data: Source, y: np.ndarray | None, spec: DataSpec, **fit_params: Any
    ) -> None:
        self._table_columns = spec.columns  # _to_model_units reads them while training
        self._fit_columns(data, spec.columns)
        super()._fit_stream(data, y, spec, **fit_params)

    def _fit_columns(self, data: Source, columns: tuple[ColumnSpec, ...]) -> None:
        """The moments of t(x) (continuous) and log(1 + x) (count) over each column's
        observed cells, and the count means, from sums over the batches of ``data``."""
        with np.errstate(divide="ignore", invalid="ignore"):  # a bound: refused below
            shift = _transform(first_observed(data)[None, :], columns)[0]
        shift = np.where(np.isfinite(shift), shift, 0.0)

        def statistics(batch: np.ndarray, _: Any) -> dict[str, Any]:
            seen = ~np.isnan(batch)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = _transform(batch, columns)
            dev = np.where(seen, t - shift, 0.0)
            return {
                "n": seen.sum(0),
                "sum": dev.sum(0),
                "square": (dev * dev).sum(0),
                "at_bound": (seen & np.isinf(t)).sum(0),
                "total": np.where(seen, batch, 0.0).sum(0),
            }

        stats = accumulate(data, statistics)
        for j, col in enumerate(columns):
            if stats["n"][j] == 0:
                raise DataError(
                    f"column {col.name!r} of the training data has no observed cell; drop it"
                )
            if stats["at_bound"][j]:
                bound = col.lower if col.lower is not None else col.upper
                raise DataError(
                    f"column {col.name!r} ({col.describe()}) has {int(stats['at_bound'][j])} "
                    f"value(s) at its bound {bound:g}, where table-ar's log-transformed "
                    "density is 0; declare the column without that bound, or model the "
                    "values at the bound by a separate binary column"
                )
        n = stats["n"]
        mean = stats["sum"] / n
        var = np.maximum(stats["square"] / n - mean**2, 0.0)
        numeric = np.array([c.type not in LABEL_TYPES for c in columns])
        constant = numeric & (stats["square"] == 0)
        for j in np.flatnonzero(constant & np.array([c.type == "continuous" for c in columns])):
            warnings.warn(
                f"column {columns[j].name!r} is constant in the training data; its density "
                f"is a spike of width min_scale={self.min_scale:g}, so held-out values that "
                "differ get almost none: declare it a label column, or drop it",
                UserWarning,
                stacklevel=5,
            )
        std = np.sqrt(var)
        self.column_shift_ = np.where(numeric, shift + mean, 0.0)
        self.column_scale_ = np.where(numeric & (std > 0), std, 1.0)
        is_count = np.array([c.type == "count" for c in columns])
        self.count_mean_ = np.where(is_count, stats["total"] / n, 0.0)

    def _build_module(self, spec: DataSpec, n_classes: int | None) -> TableARNetwork:
        is_count = np.array([c.type == "count" for c in spec.columns])
        stats = {
            "count_loc": np.where(is_count, self.column_shift_, 0.0),
            "count_scale": np.where(is_count, self.column_scale_, 1.0),
            "count_log_mean": np.log(np.maximum(self.count_mean_, 1e-3)),
        }
        return TableARNetwork.from_config(self.config(), spec, stats)

    # ----------------------------------------------------------------- units
    def _to_model_units(self, x: np.ndarray) -> np.ndarray:
        """Continuous columns → z = (t(x) − shift) / scale (float64, ∓inf at a bound of a
        log-transformed column); codes and counts unchanged; NaN stays NaN."""
        columns = self.fitted_spec.columns if self.is_fitted() else self._table_columns
        x = np.asarray(x, dtype=np.float64)
        out = x.copy()
        real = [j for j, c in enumerate(columns) if c.type == "continuous"]
        if real:
            with np.errstate(divide="ignore", invalid="ignore"):
                t = _transform(x[:, real], [columns[j] for j in real])
            out[:, real] = (t - self.column_shift_[real]) / self.column_scale_[real]
        return out

    def _from_model_units(self, z: np.ndarray) -> np.ndarray:
        columns = self.fitted_spec.columns
        out = np.asarray(z, dtype=np.float64).copy()
        for j, col in enumerate(columns):
            if col.type == "continuous":
                t = out[:, j] * self.column_scale_[j] + self.column_shift_[j]
                out[:, j] = _untransform(t, col)
        return out

    def _cell_log_jacobian(self, x: np.ndarray) -> np.ndarray:
        """log |dz/dx| of every observed continuous cell (N, D); 0 elsewhere, and 0 at a
        bound (where the cell's own term is already −inf)."""
        out = np.zeros(x.shape)
        for j, col in enumerate(self.fitted_spec.columns):
            if col.type != "continuous":
                continue
            v = x[:, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                log_slope = _log_slope(v, col) - np.log(self.column_scale_[j])
            # a missing cell has no term; a cell at a bound has the term −inf already
            out[:, j] = np.where(np.isfinite(v) & np.isfinite(log_slope), log_slope, 0.0)
        return out

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def _module_conditionals(self, x: np.ndarray) -> np.ndarray:
        """The module's log p(x_j | x_<j) in model units, (N, D) float64, in chunks."""
        spec = self.fitted_spec
        out = []
        for chunk in np.array_split(x, max(1, int(np.ceil(len(x) / 1024)))):
            xt = self._tensors(chunk, None, spec)[0].to(self._device())
            out.append(self._module.log_conditionals(xt).double().cpu().numpy())
        return np.concatenate(out)

    def _conditionals(self, x: np.ndarray) -> np.ndarray:
        """log p(x_j | x_<j, missing pattern of x_<j) in the user's units, (N, D); 0 where
        x_j is missing."""
        return self._module_conditionals(x) + self._cell_log_jacobian(x)

    def _score_samples_with_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self._conditionals(x).sum(axis=1)
        return scores, np.zeros_like(scores)

    def observed_log_prob(self, X: Data) -> np.ndarray:
        """log p(observed cells | which cells are missing) of each row, (N,) in nats.

        Rows may have missing (NaN) cells, or be a DataFrame with empty cells. For a
        fixed pattern of missing cells this is an exact, normalised distribution over the
        observed cells (see the class docstring); it is not the marginal of a joint over
        all cells. For a complete row it equals ``score_samples``.

        Example:
            >>> import numpy as np, ptheta
            >>> data = ptheta.datasets.load("groundtruth-table")
            >>> m = TableAR(**{**TableAR.quick_params, "epochs": 3}).fit(data.val)
            >>> rows = data.test.x[:2].copy()
            >>> rows[0, 4] = np.nan  # visitors missing: its term is dropped
            >>> lp = m.observed_log_prob(rows)
            >>> bool(np.isclose(lp[1], m.score_samples(rows[1:])[0]))  # complete: the same
            True
        """
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True, what="X")
        return self._conditionals(np.asarray(x, dtype=np.float64)).sum(axis=1)

    def log_conditionals(self, X: Data) -> np.ndarray:
        """log p(x_j | x_<j) of every cell, (N, D) in nats: a log-probability for label
        and count columns, a log-density in the user's units (Jacobian included) for
        continuous ones; 0 where the cell is missing (its term is dropped; the later
        columns see its missing indicator). Each row sums to :meth:`observed_log_prob`."""
        self._check_fitted()
        x = check_values(X, self.fitted_spec, allow_nan=True, what="X")
        return self._conditionals(np.asarray(x, dtype=np.float64))

    # ----------------------------------------------------------------- bookkeeping
    def _n_parameters(self) -> int:
        # a weight that its mask zeroes is not a free parameter
        masked = sum(
            int((m.masks[0] == 0).sum())
            for m in self._module.modules()
            if isinstance(m, MaskedLinear)
        )
        return super()._n_parameters() - masked

    def _required_attributes(self) -> tuple[str, ...]:
        return ("column_shift_", "column_scale_", "count_mean_")

    def _expected_shapes(self, spec: DataSpec) -> dict[str, tuple[int, ...]]:
        d = len(spec.columns)
        return {"column_shift_": (d,), "column_scale_": (d,), "count_mean_": (d,)}


# --------------------------------------------------------------------- column transforms
def _transform(x: np.ndarray, columns: Sequence[ColumnSpec]) -> np.ndarray:
    """t(x) per column of ``x`` (N, D): log(x − lower), log(upper − x) or the logit between
    two bounds for bounded continuous columns, log(1 + x) for counts, x elsewhere; NaN
    stays NaN, ∓inf at a bound."""
    out = np.array(x, dtype=np.float64)
    for j, col in enumerate(columns):
        v = out[:, j]
        if col.type == "count":
            out[:, j] = np.log1p(v)
        elif col.type == "continuous" and col.lower is not None and col.upper is not None:
            out[:, j] = np.log(v - col.lower) - np.log(col.upper - v)
        elif col.type == "continuous" and col.lower is not None:
            out[:, j] = np.log(v - col.lower)
        elif col.type == "continuous" and col.upper is not None:
            out[:, j] = np.log(col.upper - v)
    return out


def _untransform(t: np.ndarray, col: ColumnSpec) -> np.ndarray:
    """The inverse of `_transform` for continuous column ``col``: t (N,) → x (N,), within
    the bounds."""
    lo, hi = col.lower, col.upper
    if lo is not None and hi is not None:
        # from the nearer bound: no cancellation at either end
        from scipy.special import expit

        return np.where(t > 0, hi - (hi - lo) * expit(-t), lo + (hi - lo) * expit(t))
    if lo is not None:
        return lo + np.exp(t)
    if hi is not None:
        return hi - np.exp(t)
    return t


def _log_slope(v: np.ndarray, col: ColumnSpec) -> np.ndarray:
    """log |t'(x)| of continuous column ``col`` at values v (N,) (NaN stays NaN)."""
    lo, hi = col.lower, col.upper
    if lo is not None and hi is not None:
        return np.log(hi - lo) - np.log(v - lo) - np.log(hi - v)
    if lo is not None:
        return -np.log(v - lo)
    if hi is not None:
        return -np.log(hi - v)
    return np.zeros_like(v)
