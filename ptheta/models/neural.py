"""The estimator-level wrapper shared by neural families: fit with the Trainer, score, sample.

A neural family is an ``nn.Module`` with ``loss(x, y=None)`` and ``log_prob(x, y=None)``
(per example, shape (N,)) and ``sample(n, y=None, generator=None)``, plus a subclass of
:class:`NeuralModel` that builds it from the data spec. The training hyper-parameters
(:data:`TRAINING_PARAMS`) are shared by every neural family and accepted by each one's
constructor next to its own, so ``make("made", hidden=[512], epochs=50)`` works.

Fitting streams: the training examples are a :class:`~ptheta.data.stream.Source` (an
array in memory is wrapped as one), the standardisation's moments are sums over its
batches (:func:`~ptheta.data.stream.accumulate`), the validation hold-out is a
:class:`~ptheta.data.stream.Subset`, and the Trainer reads the examples a batch at a time
through a DataLoader: an array and a memory-mapped file of the same rows train alike.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ptheta.data.batch_stats import streamed_location_scale
from ptheta.data.ragged import check_sequences
from ptheta.data.spec import Data, DataSpec, Split, check_values, location_scale
from ptheta.data.stream import (
    ArraySource,
    CheckedSource,
    Source,
    Subset,
    as_source,
    is_source,
)
from ptheta.errors import CapabilityError, DataError, ParameterError, unknown_name
from ptheta.models.base import GenerativeModel, only_where, to_jsonable, why_not_classify
from ptheta.models.capabilities import Capabilities
from ptheta.models.classifier import encode_labels
from ptheta.nn.device import resolve_device
from ptheta.nn.noise import marginal_with_stderr
from ptheta.params import (
    Bool,
    Choice,
    Config,
    Device,
    Float,
    Int,
    OneOf,
    Param,
    Seed,
    check_float,
)
from ptheta.train.precision import autocast_name, weights_dtype
from ptheta.train.trainer import TrainConfig, Trainer

# Training hyper-parameters and their defaults (see TrainConfig for their meaning), plus:
# epochs="auto" (the family's auto_epochs passes, AUTO_EPOCHS unless it says otherwise;
# with max_time, no epoch limit: the budget or early stopping ends training, and the cosine
# schedule runs over the budget), validation_fraction
# (held out for early stopping when no validation data is given),
# dtype (float32 or float64 weights; or float32 weights trained under autocast to bfloat16 or
# float16, where the family's maths allows: see NeuralModel.low_precision), random_state
# (TrainConfig.seed; see ptheta.params.Seed: an int, or None for a seed drawn at fit and kept
# as seed_) and verbose.
TRAINING_PARAMS: dict[str, Any] = {
    "epochs": "auto",
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_steps": 0,
    "grad_clip": 1.0,
    "ema_decay": None,
    "patience": 10,
    "validation_fraction": 0.1,
    "max_time": None,
    "checkpoint_every": 0,
    "device": "auto",
    "dtype": "float32",
    "random_state": 0,
    "verbose": 0,
    "loader_workers": 0,
    "compile": False,
}

# passes over the training data of epochs="auto" without max_time
AUTO_EPOCHS = 50

# The declarations of the training hyper-parameters (see GenerativeModel.parameters).
TRAINING_DECLARED: dict[str, Param] = {
    "epochs": OneOf(Choice("auto"), Int(low=1)),
    "batch_size": Int(low=1),
    "lr": Float(low=0, low_open=True),
    "weight_decay": Float(low=0),
    "schedule": Choice("cosine", "constant"),
    "warmup_steps": Int(low=0),
    "grad_clip": Float(low=0, low_open=True, none=True),
    "ema_decay": Float(low=0, high=1, low_open=True, high_open=True, none=True),
    "patience": Int(low=1, none=True),
    "validation_fraction": Float(low=0, high=1, high_open=True, hint="0 holds nothing out"),
    "max_time": Float(low=0, low_open=True, none=True),
    "checkpoint_every": Int(low=0),
    "device": Device(),
    "dtype": Choice("float32", "float64", "bfloat16", "float16"),
    "random_state": Seed(),
    "verbose": Int(low=0, flag=True),
    "loader_workers": Int(low=0),
    "compile": Bool(),
}
# class_conditional, where a family has it, is declared by the family: Bool().
CONDITIONAL: dict[str, Param] = {"class_conditional": Bool()}

# Training settings of the explorer's quick mode (its tests), for the "explorer-quick"
# presets of neural families: a few epochs, in float64 on the CPU.
EXPLORER_QUICK: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 128,
    "lr": 1e-2,
    "dtype": "float64",
    "device": "cpu",
}

# The denoising families' defaults for a time budget (ddpm, flow-matching, score-sde:
# hidden="auto" and batches of 32). Their losses at one random t per example are noisy
# estimates, and the bound keeps improving with the number of steps: smaller batches give
# more of them, and a U-Net channel costs H·W times an MLP unit. ddpm's test bound, nats
# (`ptheta fit ddpm … && ptheta eval RUN --split test --score-rows 200`): 28×28 binary
# digits with max_time=300, 64 channels in batches of 128: 194.9 (6 epochs); 32 channels:
# 167.0; 64 channels in batches of 32: 126.6; 32 channels in batches of 32: 99.0 (the
# Chow–Liu tree: 134.9). digits 8×8 at 50 epochs: 92.4 → 90.6 (64 channels) and 91.5 (32,
# in 137 s against 226 s). toy2d-moons (MLP): 2.53 → 2.18.
DIFFUSION_TRAINING: dict[str, Any] = {"batch_size": 32}
UNET_HIDDEN = 32
MLP_HIDDEN = 64

_MODULE_PREFIX = "module."
_SAMPLE_CHUNK = 4096


class NeuralModel(GenerativeModel):
    """Base of the neural families (estimator level); see the module docstring.

    Subclasses implement ``_build_module(spec, n_classes)`` and set the usual class
    attributes. Class-conditional families read the instance attribute
    ``class_conditional`` (a hyper-parameter where it is optional).

    ``fit(X, y=None, *, validation_data=None, run_dir=None, resume=False)``: the
    validation data drive early stopping (default: ``validation_fraction`` of X held out);
    ``run_dir`` receives checkpoints and metrics; ``resume`` continues from its checkpoint.
    X may be a :class:`~ptheta.data.stream.Source` (a memory-mapped file, shards): it is
    read a batch at a time (``capabilities().streams``), and so may ``validation_data``.

    A family whose ``_fit`` adds a step that reads the whole array (moments of its own, a
    data-driven noise scale) does not stream until it moves that step into
    ``_fit_stream`` (its ``streams`` capability is False meanwhile, and a source is read
    whole). A family whose maths needs full precision names why in ``low_precision``:
    ``dtype="bfloat16"`` or ``"float16"`` is then refused at fit.
    """

    fit_params: ClassVar[tuple[str, ...]] = ("validation_data", "run_dir", "resume")
    # False where the training loss does not measure fit (GAN, EBM): then tools such as
    # `ptheta fit` and `compare` hold no validation data out for early stopping
    validation_measures_fit: ClassVar[bool] = True
    # On continuous data the module sees standardised values z = (x − input_shift_) /
    # input_scale_ (per entry, computed in float64 before the cast to the module's dtype,
    # so large offsets such as timestamps lose no precision); score_samples adds the
    # Jacobian −Σ log input_scale_ (a log-density of x, not of z) and samples are mapped
    # back. Families opt in where every path from data to the module goes through
    # _tensors, and map their own extra outputs with _from_model_units / _log_jacobian.
    standardize_input: ClassVar[bool] = False
    # None where training under autocast (dtype bfloat16 or float16) is sound; else the
    # reason it is not (rbm: an exact log Z by enumeration), given when such a fit is refused
    low_precision: ClassVar[str | None] = None
    abilities: ClassVar[dict[str, Any]] = {"trains_in_steps": True, "streams": True}
    parameters: ClassVar[dict[str, Param]] = TRAINING_DECLARED
    # the epoch limit of epochs="auto" when no max_time is set (see resolve_epochs)
    auto_epochs: ClassVar[int] = AUTO_EPOCHS

    def __init__(self, **training: Any) -> None:
        self._refuse_renamed(training)
        unknown = set(training) - set(TRAINING_PARAMS)
        if unknown:
            raise unknown_name(
                f"parameter of {self.name!r}:", sorted(unknown)[0], self._get_param_names()
            )
        for key, default in TRAINING_PARAMS.items():
            setattr(self, key, training.get(key, default))

    @classmethod
    def _get_param_names(cls) -> list[str]:
        # the family's own arguments (from its signature) and the shared training ones
        return sorted(set(super()._get_param_names()) | set(TRAINING_PARAMS))

    def _capabilities(self) -> Capabilities:
        caps = super()._capabilities()
        # a family whose own _fit reads the whole array first streams only once it has
        # said how (a _fit_stream of its own)
        cls = type(self)
        whole_array_step = cls._fit is not NeuralModel._fit
        own_stream = cls._fit_stream is not NeuralModel._fit_stream
        return caps.replace(streams=caps.streams and (own_stream or not whole_array_step))

    def _weights_dtype(self) -> torch.dtype:
        """The dtype of the module's weights and continuous inputs: float64, or float32
        (also under autocast: ``dtype`` bfloat16 or float16)."""
        return weights_dtype(self.dtype)

    def _check_precision(self) -> None:
        """Refuse ``dtype`` bfloat16 / float16 where the family's maths needs full precision."""
        if autocast_name(self.dtype) is not None and self.low_precision is not None:
            raise ParameterError(
                f"{self.name}: dtype={self.dtype!r} is refused: {self.low_precision}; use "
                "dtype='float32' or 'float64'"
            )

    # ----------------------------------------------------------------- to implement
    def _build_module(self, spec: DataSpec, n_classes: int | None) -> nn.Module:
        """The module for data of ``spec``: ``Network.from_config(self.config(...), spec,
        n_classes)``."""
        raise NotImplementedError

    def config(self, **derived: Any) -> Config:
        """The family's own hyper-parameters (not the training ones), checked and
        normalised (see :meth:`check_params`), as the one frozen
        :class:`~ptheta.params.Config` its module is built from; ``derived`` adds what the
        data decide (a resolved architecture, an image shape) and ``seed`` is this fit's.

        Example:
            >>> import ptheta
            >>> ptheta.make("made", hidden=8).config().hidden
            [8]
        """
        own = {k: v for k, v in self._params().items() if k not in TRAINING_PARAMS}
        return Config(own, seed=self._seed(), **derived)

    def _seed(self) -> int:
        """This fit's seed: ``random_state``, or with ``random_state=None`` one drawn fresh
        at fit and kept as ``seed_`` (so a loaded model scores as the fitted one did)."""
        seed = getattr(self, "seed_", None)
        if seed is None:
            seed = self.random_state
        if seed is None:  # fresh randomness, fixed for this fit once _fit stores it
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return int(seed)

    def build_module(self, spec: DataSpec, n_classes: int | None = None) -> nn.Module:
        """The untrained ``nn.Module`` that ``fit`` would train on data of ``spec`` (to
        count its parameters or print its architecture without training).

        The hyper-parameters are checked as ``fit`` checks them (a ParameterError
        otherwise); ``n_classes`` (≥ 2) is required by a class-conditional model and
        ignored by others.

        Example:
            >>> from ptheta.data.spec import DataSpec
            >>> from ptheta.models import MADE
            >>> module = MADE(hidden=[8]).build_module(DataSpec("binary", (4,)))
            >>> sum(p.numel() for p in module.parameters()) > 0
            True
        """
        self.check_params()
        if spec.kind not in self.data_kinds:
            raise DataError(
                f"{self.name!r} does not model {spec.kind} data (it accepts "
                f"{', '.join(self.data_kinds)})"
            )
        if not self._conditional():
            n_classes = None
        elif not isinstance(n_classes, int) or n_classes < 2:
            raise ParameterError(
                f"{self.name!r} is class-conditional: pass n_classes (2 or more), got {n_classes!r}"
            )
        self._check_precision()
        # an unfitted copy: a fitted model's resolved choices (n_layers_, hidden_, …)
        # describe the network it trained, not the one its parameters would now build
        fresh = type(self)(**self.get_params(deep=False))
        return fresh._build_module(spec, n_classes).to(self._weights_dtype())

    # ----------------------------------------------------------------- fitting
    @property
    def module(self) -> nn.Module:
        """The fitted ``nn.Module`` (module level: log_prob, sample, loss)."""
        self._check_fitted()
        return self._module

    def _conditional(self) -> bool:
        return bool(getattr(self, "class_conditional", False))

    def train_config(self) -> TrainConfig:
        """The Trainer's configuration from this model's checked training hyper-parameters
        (declared in :data:`TRAINING_DECLARED`; a ParameterError naming the model and the
        parameter otherwise)."""
        params = self._params()
        keys = set(TrainConfig.__dataclass_fields__) - {"seed", "progress", "autocast", "epochs"}
        values = {k: params[k] for k in keys} | self._resolved_training()
        return TrainConfig(
            **values,
            epochs=resolve_epochs(params["epochs"], params["max_time"], self.auto_epochs),
            seed=self._seed(),
            progress=bool(params["verbose"]),
            autocast=autocast_name(params["dtype"]),
        )

    def _resolved_training(self) -> dict[str, Any]:
        """Training values the family resolved from the data at fit (an ``"auto"`` it
        declares for a training parameter, such as maf's ``weight_decay``); none here."""
        return {}

    def _fit(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        spec: DataSpec,
        *,
        validation_data: Any = None,
        run_dir: Any = None,
        resume: bool = False,
    ) -> None:
        # an array is a source too: in memory and streamed, one computation
        self._fit_stream(
            ArraySource(x), y, spec, validation_data=validation_data, run_dir=run_dir,
            resume=resume,
        )  # fmt: skip

    def _fit_stream(
        self,
        data: Source,
        y: np.ndarray | None,
        spec: DataSpec,
        *,
        validation_data: Any = None,
        run_dir: Any = None,
        resume: bool = False,
    ) -> None:
        self._check_precision()
        self.seed_ = self._seed()  # fresh if random_state is None; kept for scoring
        labels, n_classes = self._fit_labels(y)
        if self.standardize_input and not spec.is_discrete:
            self.input_shift_, self.input_scale_ = streamed_location_scale(data)
        parts = self._validation_split(data, labels, validation_data, spec)
        fingerprint = self._fingerprint(data, spec) if run_dir is not None else ""
        # while fitting, _build_module may give the Trainer's per-epoch validation cheaper
        # Monte-Carlo settings than scoring uses; _scoring_settings restores them after
        self._fitting = True
        try:
            self._train(spec, n_classes, parts, run_dir, resume, fingerprint)
        finally:
            self._fitting = False
            if getattr(self, "_module", None) is not None:
                self._scoring_settings(self._module)

    def _scoring_settings(self, module: nn.Module) -> None:
        """Give the fitted ``module`` back the scoring settings that ``_build_module``
        lowered for validation while ``_fitting`` (none by default)."""

    def _fit_labels(self, y: np.ndarray | None) -> tuple[np.ndarray | None, int | None]:
        """Class indices of the training labels and the number of classes, for a
        class-conditional model (``classes_`` and ``class_log_prior_`` set); else None."""
        if not self._conditional():
            return None, None
        if y is None:
            raise DataError(
                f"{self.name!r} with class_conditional=True needs fit(X, y) with class "
                "labels: it requires y to be passed, but the target y is None (or set "
                "class_conditional=False)"
            )
        self.classes_, labels = encode_labels(self.name, y)
        n_classes = len(self.classes_)
        counts = np.bincount(labels, minlength=n_classes)
        self.class_log_prior_ = np.log(counts / counts.sum())
        return labels, n_classes

    def _train(
        self,
        spec: DataSpec,
        n_classes: int | None,
        parts: tuple[Source, np.ndarray | None, Source | None, np.ndarray | None],
        run_dir: Any,
        resume: bool,
        fingerprint: str,
    ) -> None:
        """Build the module for ``spec`` and train it with the Trainer on the training and
        validation parts (x_train, y_train, x_val, y_val), read a batch at a time."""
        config = self.train_config()
        x_train, y_train, x_val, y_val = parts
        torch.manual_seed(config.seed)
        module = self._build_module(spec, n_classes).to(self._weights_dtype())
        train = self._dataset(x_train, y_train, spec)
        val = None if x_val is None else self._dataset(x_val, y_val, spec)
        result = Trainer(config).fit(
            module, train, val, run_dir=run_dir, resume=resume, fingerprint=fingerprint
        )
        self._module = module.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_steps_ = result.steps
        self.stopped_ = result.stopped
        self.train_seconds_ = result.seconds
        self._warn_short_of_an_epoch(result, len(x_train), config.batch_size)

    def _warn_short_of_an_epoch(self, result: Any, n: int, batch_size: int) -> None:
        """Say so when ``max_time`` stopped training before it saw every training example
        once: the model is then fitted on part of the data, far from what it can do."""
        first = result.history[0] if result.history else {}
        if result.stopped != "max_time" or not first.get("partial") or first.get("epoch") != 1:
            return
        seen = min(n, result.steps * batch_size)
        rate = seen / max(first.get("seconds", 0.0), 1e-9)
        warnings.warn(
            f"{self.name} stopped at max_time={float(self.max_time):g} s within its first "
            f"epoch: it trained on {seen:,} of {n:,} examples ({100 * seen / n:.0f} %, "
            f"{rate:,.0f} examples/s), once. Give it more time (an epoch takes about "
            f"{n / max(rate, 1e-9):,.0f} s at this rate) or make it smaller (the size "
            f"parameters in `ptheta models {self.name}`, or fewer examples)",
            UserWarning,
            stacklevel=3,
        )

    # ----------------------------------------------------------------- variable length
    # A family with ``variable_length`` among its abilities encodes padded sequences into
    # the one array its module reads, each sequence's end marked in it (an END token, an
    # end channel): ``_encode_sequences(x, lengths, longest, spec)`` (x in model units) and
    # ``_decode_sequences(out, spec)`` (the module's samples → padded values, lengths). The
    # Trainer then batches the encoded rows like any examples.
    def _encode_sequences(
        self, x: np.ndarray, lengths: np.ndarray, longest: int, spec: DataSpec
    ) -> np.ndarray:
        """Padded sequences (N, T, *step_shape) in model units → the module's encoded rows,
        as wide as sequences of ``longest`` steps need (rows of one width)."""
        raise NotImplementedError

    def _decode_sequences(self, out: np.ndarray, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
        """The module's samples → padded values (model units) and lengths."""
        raise NotImplementedError

    def _fit_sequences(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        y: np.ndarray | None,
        spec: DataSpec,
        *,
        validation_data: Any = None,
        run_dir: Any = None,
        resume: bool = False,
    ) -> None:
        self._check_precision()
        self.seed_ = self._seed()
        labels, n_classes = self._fit_labels(y)
        if self.standardize_input and not spec.is_discrete:  # over the real steps only
            real = np.arange(x.shape[1]) < lengths[:, None]
            self.input_shift_, self.input_scale_ = location_scale(x[real])
        longest = int(lengths.max())
        val = enc_val = None
        if validation_data is not None:
            x_val, lengths_val = check_sequences(validation_data, spec, what="validation data")
            longest = max(longest, int(lengths_val.max()))
        encoded = self._encode_sequences(self._to_model_units(x), lengths, longest, spec)
        if validation_data is not None:
            enc_val = self._encode_sequences(
                self._to_model_units(x_val), lengths_val, longest, spec
            )
        # the encoded rows are checked as examples of one fixed shape (validation data too)
        levels = None
        if spec.is_discrete:
            top = encoded.max() if enc_val is None else max(encoded.max(), enc_val.max())
            levels = max(2, int(top) + 1)
        rows = DataSpec("categorical" if levels else "continuous", encoded.shape[1:], levels)
        if validation_data is not None:
            raw_y = validation_data.y if isinstance(validation_data, Split) else None
            val = Split(enc_val, raw_y, rows)
        parts = self._validation_split(encoded, labels, val, rows)
        fingerprint = self._fingerprint(encoded, spec) if run_dir is not None else ""
        self._train(spec, n_classes, parts, run_dir, resume, fingerprint)

    def _sequence_log_jacobian(self, lengths: np.ndarray) -> np.ndarray | float:
        """log |dz/dx| of each sequence, (N,): every real step is standardised alike."""
        return np.asarray(lengths, dtype=np.float64) * self._log_jacobian()

    def _score_sequences_with_std(
        self, x: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        spec = self.fitted_spec
        encoded = self._encode_sequences(self._to_model_units(x), lengths, int(lengths.max()), spec)
        scores, std = self._module_scores_with_std(encoded)
        return scores + self._sequence_log_jacobian(lengths), std

    def _score_sequences(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._score_sequences_with_std(x, lengths)[0]

    def _sample_sequences(
        self, n: int, y: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        values, lengths = self._decode_sequences(self._sample_module(n, y, rng), self.fitted_spec)
        if self.fitted_spec.is_discrete:
            return values, lengths
        real = np.arange(values.shape[1]) < lengths[:, None]
        real = real.reshape(*real.shape, *([1] * (values.ndim - 2)))
        return np.where(real, self._from_model_units(values), 0.0), lengths

    def _validation_split(
        self,
        x: Source | np.ndarray,
        labels: np.ndarray | None,
        validation_data: Any,
        spec: DataSpec,
    ) -> tuple[Source, np.ndarray | None, Source | None, np.ndarray | None]:
        """(training examples, their class indices, validation examples, theirs): the
        given validation data, or ``validation_fraction`` of ``x`` held out by a seeded
        permutation (views of ``x``: nothing is read)."""
        x = as_source(x)
        if validation_data is not None:
            x_val, raw = self._validation_source(validation_data, spec)
            y_val = None
            if self._conditional():
                if raw is None:
                    raise DataError(
                        "a class-conditional model needs validation labels: pass a Split"
                    )
                lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
                unknown = sorted({v for v in np.asarray(raw).tolist() if v not in lookup}, key=str)
                if unknown:
                    raise DataError(
                        f"validation labels {unknown[:5]} are not among the training classes "
                        f"{self.classes_.tolist()}; validate on the same classes"
                    )
                y_val = np.array([lookup[v] for v in np.asarray(raw).tolist()])
            return x, labels, x_val, y_val
        if not self.validation_fraction or len(x) < 10:
            return x, labels, None, None
        rng = np.random.default_rng(self._seed())
        order = rng.permutation(len(x))
        n_val = max(1, round(self.validation_fraction * len(x)))
        val, train = order[:n_val], order[n_val:]
        if labels is None:
            return Subset(x, train), None, Subset(x, val), None
        return Subset(x, train), labels[train], Subset(x, val), labels[val]

    def _validation_source(self, validation_data: Any, spec: DataSpec) -> tuple[Source, Any]:
        """Validation data (an array, a Split or a source) as a source of checked values,
        and its raw labels (None where it has none); missing entries are allowed where
        they are in training (``fits_missing``)."""
        allow_nan = self._capabilities().fits_missing
        raw = validation_data.y if isinstance(validation_data, Split) else None
        if is_source(validation_data):  # read, and checked, a batch at a time
            source = validation_data.x if isinstance(validation_data, Split) else validation_data
            raw = source.y if raw is None else raw
            checked = CheckedSource(source, spec, allow_nan=allow_nan, what="validation data")
            return checked, raw
        x = check_values(validation_data, spec, allow_nan=allow_nan, what="validation data")
        return ArraySource(x), raw

    def _dataset(
        self, x: Source, labels: np.ndarray | None, spec: DataSpec
    ) -> torch.utils.data.Dataset:
        """The examples as the Trainer reads them: rows of a source turned into the
        module's tensors a batch at a time; rows already in memory are turned once (into
        host memory: the device receives a batch at a time either way), the same values."""
        if _in_memory(x):
            return _Tensors(self._tensors(np.asarray(x), labels, spec))
        return _Rows(x, labels, functools.partial(self._tensors, spec=spec))

    def _tensors(self, x: np.ndarray, y: np.ndarray | None, spec: DataSpec) -> list[torch.Tensor]:
        """The one place where numpy goes to torch: data in model units, C-contiguous (torch
        refuses negative strides such as X[::-1])."""
        if not spec.variable_length:  # encoded sequences are in model units already
            x = self._to_model_units(x)
        x = np.ascontiguousarray(x)
        xt = torch.as_tensor(x, dtype=torch.long if spec.is_discrete else self._weights_dtype())
        return [xt] if y is None else [xt, torch.as_tensor(y, dtype=torch.long)]

    def _to_model_units(self, x: np.ndarray) -> np.ndarray:
        """Data → what the module sees: standardised where the family standardises (NaN
        stays NaN), else unchanged."""
        shift = getattr(self, "input_shift_", None)
        return x if shift is None else (x - shift) / self.input_scale_

    def _from_model_units(self, z: np.ndarray) -> np.ndarray:
        """The module's values (samples, reconstructions) → data units."""
        shift = getattr(self, "input_shift_", None)
        return z if shift is None else z * self.input_scale_ + shift

    def _log_jacobian(self, observed: np.ndarray | None = None) -> np.ndarray | float:
        """log |dz/dx| = −Σ log input_scale_ to add to a log-density of z: a number, or (N,)
        summed over the observed entries of a mask (N, *event_shape); 0 without
        standardisation."""
        scale = getattr(self, "input_scale_", None)
        if scale is None:
            return 0.0
        log_scale = np.log(np.asarray(scale, dtype=np.float64)).reshape(-1)
        if observed is None:
            return -float(log_scale.sum())
        return -(observed.reshape(len(observed), -1) @ log_scale)

    # Settings that do not change the model or its training trajectory: a run may resume
    # with other values (more time, another device, a progress bar or not). With
    # epochs="auto", max_time also sets the learning-rate schedule (over the budget): a run
    # resumed with another budget continues on the new budget's schedule.
    _RESUMABLE_CHANGES = (
        "verbose", "max_time", "device", "patience", "checkpoint_every", "loader_workers",
    )  # fmt: skip

    def _fingerprint(self, x: np.ndarray | Source, spec: DataSpec) -> str:
        """The model's and the data's identity, which a resumed run must match: an array in
        memory is hashed whole, another source by its ``identity()`` (only for a fit with
        a run directory: checkpoints are what it guards)."""
        h = hashlib.sha256(self.name.encode())
        params = {k: v for k, v in self.get_params().items() if k not in self._RESUMABLE_CHANGES}
        h.update(json.dumps(to_jsonable(params), sort_keys=True, default=str).encode())
        h.update(json.dumps(spec.to_json(), sort_keys=True).encode())
        if isinstance(x, ArraySource):
            x = x.x
        if isinstance(x, Source):
            h.update(x.identity().encode())
        else:
            h.update(np.ascontiguousarray(x).tobytes())
        return h.hexdigest()[:16]

    # ----------------------------------------------------------------- scoring, sampling
    def _device(self) -> torch.device:
        return next(self._module.parameters()).device

    def _architecture(self, spec: DataSpec) -> tuple[str, tuple[int, ...] | None]:
        """The network of a family whose ``architecture`` is ``"auto"``, ``"mlp"`` or
        ``"unet"`` (ddpm, ncsn, the ODE families), and the (C, H, W) image shape of the
        data or None: ``"auto"`` takes the U-Net for image-shaped data, else the MLP."""
        image = spec.image_shape or (spec.event_shape if len(spec.event_shape) == 3 else None)
        if self.architecture == "unet" and image is None:
            raise ParameterError(
                f"{self.name}: architecture='unet' needs image-shaped data ((C, H, W) examples "
                "or a data set with an image_shape), got event shape "
                f"{spec.event_shape}; use architecture='mlp' or 'auto'"
            )
        if self.architecture == "auto":
            return ("unet" if image is not None else "mlp"), image
        return self.architecture, image

    def _denoiser_width(self, architecture: str) -> int:
        """The width of a time-conditioned network (ddpm, flow-matching, score-sde): the
        fit's (``hidden_``), else ``hidden`` with ``"auto"`` resolved: :data:`UNET_HIDDEN`
        channels for the U-Net, :data:`MLP_HIDDEN` units for the MLP."""
        saved = getattr(self, "hidden_", None)
        if saved is not None:
            return int(saved)
        hidden = self._params()["hidden"]
        if hidden != "auto":
            return int(hidden)
        return UNET_HIDDEN if architecture == "unet" else MLP_HIDDEN

    @contextlib.contextmanager
    def _sampling(self, **settings: Any) -> Iterator[None]:
        """Temporarily set the module's sampler settings (restored afterwards)."""
        old = {k: getattr(self._module, k) for k in settings}
        for k, v in settings.items():
            setattr(self._module, k, v)
        try:
            yield
        finally:
            for k, v in old.items():
                setattr(self._module, k, v)

    def _guidance(self, guidance: float | None) -> float:
        """A per-call classifier-free guidance weight (None: the fitted ``guidance``),
        checked: ≥ 0, and 0 unless the model is class-conditional."""
        if guidance is None:
            return float(self.guidance)
        check_float(self.name, "guidance", guidance, low=0)
        if guidance and not self._conditional():
            raise CapabilityError(f"{self.name!r} is not class-conditional; guidance must be 0")
        return float(guidance)

    @torch.no_grad()
    def _log_prob(self, x: np.ndarray, label: int | None) -> np.ndarray:
        spec = self.fitted_spec
        out = []
        for chunk in np.array_split(x, max(1, int(np.ceil(len(x) / 1024)))):
            xt = self._tensors(chunk, None, spec)[0].to(self._device())
            args = [xt] if label is None else [xt, torch.full((len(xt),), label, device=xt.device)]
            out.append(self._module.log_prob(*args).double().cpu().numpy())
        return np.concatenate(out)

    def _class_index(self, y: Any, n: int, *, why: str = "") -> np.ndarray | None:
        """Class indices (n,) of labels ``y`` (one label or n known labels) for a
        class-conditional model; None for an unconditional one, which refuses ``y``.
        ``why`` says, in the error for a missing ``y``, what the class is needed for."""
        if not self._conditional():
            if y is not None:
                raise CapabilityError(f"this {self.name!r} is not class-conditional; omit y")
            return None
        if y is None:
            raise DataError(
                f"this {self.name!r} was fitted with class_conditional=True: pass y (one label "
                f"or one per example){'; ' + why if why else ''}"
            )
        labels = self._check_sample_labels(y, n)
        return self._index_of(labels)

    def _index_of(self, labels: Any) -> np.ndarray:
        """Indices into ``classes_`` of known class labels, (n,) int64."""
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return np.array([lookup[v] for v in np.asarray(labels).tolist()], dtype=np.int64)

    def _log_prob_with_std(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, ...]:
        """log p(x) (or log p(x | class)) of the module, in model units, and its Monte-Carlo
        standard error; families with stochastic scores override this (and define
        ``_log_prob`` as its first part), exact ones keep zero error."""
        scores = self._log_prob(x, label)
        return scores, np.zeros_like(scores)

    def _module_scores_with_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the module (model units) and their errors; class-conditional models
        sum the classes out by Bayes' rule."""
        if not self._conditional():
            return self._log_prob_with_std(x, None)
        return marginal_with_stderr(lambda c: self._log_prob_with_std(x, c), self.class_log_prior_)

    def _score_samples_with_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the data (model units + the standardisation's Jacobian) and their
        errors."""
        scores, std = self._module_scores_with_std(x)
        return scores + self._log_jacobian(), std

    def _score_samples(self, x: np.ndarray) -> np.ndarray:
        return self._score_samples_with_std(x)[0]

    def _joint_log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p(x, y) for every class, shape (N, C)."""
        per_class = [self._log_prob(x, c) for c in range(len(self.classes_))]
        return np.stack(per_class, axis=1) + self.class_log_prior_ + self._log_jacobian()

    # Present only where the model classifies (class_conditional=True and a likelihood):
    # scikit-learn and user code probe ``hasattr(model, "predict_proba")``.
    @only_where(why_not_classify)
    def predict_proba(self, X: Data) -> np.ndarray:
        """p(y | x) by Bayes' rule, shape (N, C), columns in ``classes_`` order.

        Only on a class-conditional model with a likelihood (``capabilities().classifies``);
        absent otherwise: ``hasattr(model, "predict_proba")`` is False, and calling it
        raises a :class:`CapabilityError` that says why.
        """
        self._check_fitted()
        if not self._conditional():
            raise CapabilityError(f"{self.name!r} was not fitted class-conditionally")
        joint = self._joint_log_prob(check_values(X, self.fitted_spec))
        return np.exp(joint - np.logaddexp.reduce(joint, axis=1, keepdims=True))

    @only_where(why_not_classify)
    def predict(self, X: Data) -> np.ndarray:
        """Most probable class of each example, shape (N,); present where ``predict_proba``
        is."""
        index = self.predict_proba(X).argmax(axis=1)  # checks fitting and classes first
        return self.classes_[index]

    def _sample(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        return self._from_model_units(self._sample_module(n, y, rng))

    @torch.no_grad()
    def _sample_module(self, n: int, y: Any, rng: np.random.Generator) -> np.ndarray:
        """n draws of the module (in model units), labels as for :meth:`_sample`."""
        device = self._device()
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        labels = None
        if self._conditional():
            if y is None:
                idx = rng.choice(len(self.classes_), size=n, p=np.exp(self.class_log_prior_))
            else:
                idx = self._index_of(y)
            labels = torch.as_tensor(idx, dtype=torch.long, device=device)
        # in chunks: memory stays bounded however many samples are asked for
        chunks = []
        for start in range(0, n, _SAMPLE_CHUNK):
            part = None if labels is None else labels[start : start + _SAMPLE_CHUNK]
            size = min(_SAMPLE_CHUNK, n - start)
            chunks.append(self._module.sample(size, part, generator=generator).cpu().numpy())
        return np.concatenate(chunks)

    def _n_parameters(self) -> int:
        return sum(p.numel() for p in self._module.parameters())

    # ----------------------------------------------------------------- persistence
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = super().get_state()
        for key, value in self._module.state_dict().items():
            arrays[_MODULE_PREFIX + key] = value.detach().cpu().numpy()
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> NeuralModel:
        own = {k: v for k, v in arrays.items() if not k.startswith(_MODULE_PREFIX)}
        super().set_state(own, meta)
        spec = self.fitted_spec
        n_classes = len(self.classes_) if self._conditional() else None
        module = self._build_module(spec, n_classes).to(self._weights_dtype())
        weights = {
            k[len(_MODULE_PREFIX) :]: torch.as_tensor(v)
            for k, v in arrays.items()
            if k.startswith(_MODULE_PREFIX)
        }
        module.load_state_dict(weights)
        try:
            device = resolve_device(self.device)
        except ParameterError:  # fitted on a GPU, loaded where there is none
            device = torch.device("cpu")
        self._module = module.to(device).eval()
        return self


def _in_memory(source: Source) -> bool:
    """Whether the rows of ``source`` are an array in memory (or a view of one)."""
    while isinstance(source, Subset):
        source = source.source
    return isinstance(source, ArraySource)


class _Tensors(torch.utils.data.Dataset):
    """Tensors with the examples along the first axis, indexed a batch at a time."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)


class _Rows(torch.utils.data.Dataset):
    """The rows of a source as the module's tensors, a batch at a time (what the Trainer's
    DataLoader reads): ``convert(rows, labels)`` → [x] or [x, y] (``NeuralModel._tensors``).
    """

    def __init__(self, source: Source, labels: np.ndarray | None, convert: Any) -> None:
        self.source, self.labels, self.convert = source, labels, convert

    def __len__(self) -> int:
        return len(self.source)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = np.asarray(indices, dtype=np.int64)
        labels = None if self.labels is None else self.labels[index]
        return tuple(self.convert(self.source.read(index), labels))


def resolve_epochs(
    epochs: int | str, max_time: float | None, auto: int = AUTO_EPOCHS
) -> int | None:
    """The Trainer's epoch limit of ``epochs``: an int as it is; ``"auto"``: None (no limit:
    the budget, or early stopping, ends training) when ``max_time`` is set, else ``auto``
    (the family's :attr:`NeuralModel.auto_epochs`)."""
    if epochs != "auto":
        return int(epochs)
    return None if max_time is not None else auto
