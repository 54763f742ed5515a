"""Variable-length sequences: one container, its checks, and a data set split by sequence.

A set of N sequences of different lengths travels as one padded array (N, T, *step_shape),
zeros after each sequence's end, plus its lengths (N,): :class:`Sequences`. Padding is
never data: every model that reads sequences masks it, and NaN keeps its one meaning
(a missing entry). Users pass a list of arrays, ``Sequences.from_offsets(values,
offsets)`` (hmmlearn's concatenated form), a :class:`~ptheta.data.Split` or a
rectangular array (every sequence the same length).

Example:
    >>> seqs = Sequences.from_list([[1, 2, 3], [4]])
    >>> seqs.values.tolist(), seqs.lengths.tolist()
    ([[1, 2, 3], [4, 0, 0]], [3, 1])
    >>> [s.tolist() for s in seqs]
    [[1, 2, 3], [4]]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptheta.data.spec import Dataset, DataSpec, Split, as_array, check_values, infer_spec
from ptheta.errors import DataError


@dataclass(frozen=True, eq=False)
class Sequences:
    """N sequences of different lengths: ``values`` (N, T, *step_shape) padded with zeros
    after each end, ``lengths`` (N,) with 1 <= length <= T.

    Indexing with an int gives one sequence (its steps only); with a slice, an index array
    or a boolean mask, a `Sequences`. Iterating yields the sequences one by one.
    """

    values: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        lengths = np.asarray(self.lengths)
        if values.ndim < 2:
            raise DataError(
                f"padded sequences need shape (N, T, ...), got {values.shape}; "
                "use Sequences.from_list for a list of sequences"
            )
        if lengths.shape != (len(values),):
            raise DataError(
                f"lengths has shape {lengths.shape}; expected one length per sequence, "
                f"({len(values)},)"
            )
        if lengths.size and lengths.dtype.kind not in "iu" and np.any(lengths != np.round(lengths)):
            raise DataError("sequence lengths must be whole numbers")
        lengths = lengths.astype(np.int64)
        if lengths.size and (lengths.min() < 1 or lengths.max() > values.shape[1]):
            raise DataError(
                f"sequence lengths must lie in 1..{values.shape[1]} (the padded length), got "
                f"{lengths.min()}..{lengths.max()}; empty sequences are not examples"
            )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "lengths", lengths)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_list(cls, sequences: Sequence[Any], what: str = "sequences") -> Sequences:
        """From a list of sequences, each an array-like (L_i, *step_shape) with L_i >= 1."""
        arrays = []
        for i, s in enumerate(sequences):
            a = as_array(s, f"sequence {i} of {what}")
            if a.ndim == 0:
                raise DataError(
                    f"sequence {i} of {what} is a single number; a sequence is a list of steps "
                    "(wrap it: [x])"
                )
            if len(a) == 0:
                raise DataError(f"sequence {i} of {what} is empty; drop empty sequences first")
            arrays.append(a)
        if not arrays:
            raise DataError(f"{what} is empty (0 sequences)")
        steps = {a.shape[1:] for a in arrays}
        if len(steps) > 1:
            raise DataError(
                f"the steps of {what} have different shapes "
                f"({', '.join(map(str, sorted(steps)))}); every step of every sequence "
                "needs the same shape"
            )
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        dtype = np.result_type(*arrays)
        values = np.zeros((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), dtype=dtype)
        for i, a in enumerate(arrays):
            values[i, : len(a)] = a
        return cls(values, lengths)

    @classmethod
    def from_offsets(
        cls,
        values: Any,
        offsets: Any = None,
        *,
        lengths: Any = None,
    ) -> Sequences:
        """From every step concatenated, ``values`` (S, *step_shape), cut by ``offsets``
        (N + 1,) from 0 to S, or by ``lengths`` (N,) summing to S (hmmlearn's form)."""
        flat = as_array(values, "values")
        if flat.ndim == 0:
            raise DataError("values must hold the steps of every sequence, one per row")
        if (offsets is None) == (lengths is None):
            raise DataError("give the sequences' offsets or their lengths (one of the two)")
        if lengths is not None:
            lengths = np.asarray(as_array(lengths, "lengths"), dtype=np.float64).reshape(-1)
            if np.any(lengths != np.round(lengths)) or np.any(lengths < 1):
                raise DataError("lengths must be whole numbers >= 1")
            if int(lengths.sum()) != len(flat):
                raise DataError(
                    f"lengths sum to {int(lengths.sum())} but values hold {len(flat)} steps; "
                    "the lengths of all sequences must add up to the number of steps"
                )
            offsets = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))])
        offsets = np.asarray(as_array(offsets, "offsets"), dtype=np.float64).reshape(-1)
        if len(offsets) < 2 or np.any(offsets != np.round(offsets)):
            raise DataError("offsets must be whole numbers, at least two (0 and the end)")
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != len(flat):
            raise DataError(
                f"offsets must start at 0 and end at the number of steps ({len(flat)}), got "
                f"{offsets[0]}..{offsets[-1]}"
            )
        if np.any(np.diff(offsets) < 1):
            raise DataError("offsets must increase strictly: every sequence needs a step")
        return cls.from_list([flat[a:b] for a, b in itertools.pairwise(offsets)])

    @classmethod
    def from_array(cls, x: Any) -> Sequences:
        """A rectangular array (N, T, *step_shape): N sequences of T steps each."""
        arr = as_array(x)
        if arr.ndim < 2:
            raise DataError(f"expected sequences of shape (N, T, ...), got shape {arr.shape}")
        return cls(arr, np.full(len(arr), arr.shape[1], dtype=np.int64))

    # ------------------------------------------------------------------ views
    @property
    def step_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[2:])

    @property
    def max_length(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_steps(self) -> int:
        """Steps in all sequences together."""
        return int(self.lengths.sum())

    def mask(self) -> np.ndarray:
        """(N, T) bool: True at the real steps, False at the padding."""
        return np.arange(self.max_length) < self.lengths[:, None]

    def concatenated(self) -> tuple[np.ndarray, np.ndarray]:
        """Every step in order, (S, *step_shape), and the offsets (N + 1,)."""
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        return self.values[self.mask()], offsets

    def to_list(self) -> list[np.ndarray]:
        return [self.values[i, :n] for i, n in enumerate(self.lengths)]

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.to_list())

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            return self.values[index, : self.lengths[index]]
        lengths = self.lengths[index]
        if len(lengths) == 0:
            raise DataError("this selection holds no sequences")
        return Sequences(self.values[index][:, : int(lengths.max())], lengths)

    def __repr__(self) -> str:
        lo, hi = (int(self.lengths.min()), int(self.lengths.max())) if len(self) else (0, 0)
        step = f", steps of shape {self.step_shape}" if self.step_shape else ""
        return f"Sequences({len(self)} sequences of {lo}-{hi} steps{step})"


def is_ragged(X: Any) -> bool:
    """Whether ``X`` is given as variable-length sequences: a `Sequences`, a `Split` with
    lengths, or a list or tuple of sequences that are not all of one length."""
    if isinstance(X, Sequences):
        return True
    if isinstance(X, Split):
        return X.lengths is not None
    if isinstance(X, (list, tuple)) and X and not isinstance(X[0], (int, float, np.number)):
        try:
            lengths = {len(s) for s in X}
        except TypeError:
            return False
        return len(lengths) > 1
    return False


def as_sequences(X: Any, what: str = "X") -> Sequences:
    """``X`` as `Sequences`: a `Sequences`, a `Split`, a list of sequences or a rectangular
    array (N, T, ...)."""
    if isinstance(X, Sequences):
        return X
    if isinstance(X, Split):
        return X.sequences
    if isinstance(X, (list, tuple)) and is_ragged(X):
        return Sequences.from_list(X, what)
    return Sequences.from_array(as_array(X, what))


def infer_sequence_spec(X: Any, kind: str | None = None) -> DataSpec:
    """The variable-length spec of sequences ``X``, the step kind inferred from every step
    as `infer_spec` infers it (0/1 → binary, small integers → categorical, else continuous)."""
    seqs = as_sequences(X, "training data")
    flat, _ = seqs.concatenated()
    step = infer_spec(flat.reshape(len(flat), -1), kind)
    return DataSpec(
        step.kind, (seqs.max_length, *seqs.step_shape), step.n_categories, variable_length=True
    )


def check_sequences(
    X: Any, spec: DataSpec, *, allow_nan: bool = False, what: str = "X"
) -> tuple[np.ndarray, np.ndarray]:
    """Check that ``X`` holds sequences whose steps are of ``spec`` (any length >= 1) and
    return them padded, (N, T, *step_shape) int64 or float64 with zeros after each end, and
    their lengths (N,) int64. Every step is checked as `check_values` checks an example."""
    seqs = as_sequences(X, what)
    if seqs.step_shape != spec.step_shape:
        raise DataError(
            f"the steps of {what} have shape {seqs.step_shape or '() (one value)'}, but this "
            f"model was fitted on steps of shape {spec.step_shape or '() (one value)'}"
        )
    flat, _ = seqs.concatenated()
    step_spec = DataSpec(spec.kind, (spec.step_dims,), spec.n_categories)
    checked = check_values(flat.reshape(len(flat), -1), step_spec, allow_nan=allow_nan, what=what)
    values = np.zeros((len(seqs), seqs.max_length, *spec.step_shape), dtype=checked.dtype)
    values[seqs.mask()] = checked.reshape(len(flat), *spec.step_shape)
    return values, seqs.lengths


def sequence_dataset(
    sequences: Any,
    *,
    name: str,
    kind: str | None = None,
    labels: Any = None,
    seed: int = 0,
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """A `Dataset` of variable-length sequences, shuffled with ``seed`` and split 80 / 10 /
    10 by sequence (a sequence is never cut between splits)."""
    from ptheta.data.arrays import _encode_labels, split_indices

    seqs = as_sequences(sequences, name)
    spec = infer_sequence_spec(seqs, kind)
    values, lengths = check_sequences(seqs, spec, allow_nan=True, what=name)
    classes = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (len(seqs),):
            raise DataError(f"{name} has {len(seqs)} sequences but {y.shape} labels")
        (y,), classes = _encode_labels([y])
    else:
        y = None
    splits = {}
    for split, idx in zip(("train", "val", "test"), split_indices(len(seqs), seed), strict=True):
        idx = np.sort(idx)
        longest = int(lengths[idx].max())
        x = values[idx][:, :longest]  # a fresh copy: the caller's own
        splits[split] = Split(x, None if y is None else y[idx], spec, lengths[idx])
    longest_train = int(splits["train"].lengths.max())
    spec = DataSpec(
        spec.kind, (longest_train, *spec.step_shape), spec.n_categories, variable_length=True
    )
    for s in splits.values():
        s.spec = spec
    lo, hi = int(lengths.min()), int(lengths.max())
    return Dataset(
        name=name,
        spec=spec,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=description or f"{len(seqs)} sequences of {lo}-{hi} steps",
        classes=classes,
        extra=dict(extra or {}),
    )
