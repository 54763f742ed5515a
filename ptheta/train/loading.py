"""Training examples as batches: tensors indexed where they lie, or a Dataset read by a DataLoader.

The Trainer takes either a sequence of tensors (x, or x and y; they are moved to the
device once, as small in-memory data should be) or a map-style
:class:`torch.utils.data.Dataset` of examples. A Dataset is read through a
:class:`~torch.utils.data.DataLoader` whose batch sampler yields this process's share of
the seeded global batches, from the resumed batch on: ``dataset.__getitems__(indices)``
(or, without it, ``dataset[indices]`` with the list of indices) returns the batch — a
tuple of tensors (x, or x and y) with one row per index, or a list of per-example items
that are stacked (torch's own ``Subset``, ``StackDataset`` return those). Loader workers
read ahead; batches are pinned for a CUDA device and moved there one at a time, so the
data set never has to fit in device (or host) memory. The same rows give the same
batches either way: tensors and a Dataset of the same examples train identically.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ptheta.errors import ParameterError

# validation reads chunks of at least this many examples (larger than a training batch)
VALIDATION_CHUNK = 256


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a Dataset (else a sequence of tensors)."""
    return isinstance(data, Dataset)


class Examples:
    """The examples of a training run, read in batches on ``device``; ``fields`` is the
    number of tensors per batch (x, or x and y), known once a batch has been read."""

    fields: int | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        """The batches of the given example indices, in order, on the device."""
        raise NotImplementedError

    def chunks(self, size: int) -> Iterator[list[torch.Tensor]]:
        """All the examples in order, ``size`` at a time (validation)."""
        n = len(self)
        yield from self.batches([torch.arange(a, min(a + size, n)) for a in range(0, n, size)])


class TensorExamples(Examples):
    """Tensors with the examples along the first axis, moved to the device once."""

    def __init__(self, tensors: Sequence[torch.Tensor], device: torch.device) -> None:
        self.tensors = [t.to(device) for t in tensors]
        if not self.tensors or any(len(t) != len(self.tensors[0]) for t in self.tensors):
            raise ParameterError("the training tensors must share their first axis (examples)")
        self.device, self.fields = device, len(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        for index in index_lists:
            index = index.to(self.device)
            yield [t[index] for t in self.tensors]

    def chunks(self, size: int) -> Iterator[list[torch.Tensor]]:
        yield from (list(c) for c in zip(*(t.split(size) for t in self.tensors), strict=True))


class DatasetExamples(Examples):
    """A map-style Dataset read in batches through a DataLoader (see the module docstring).

    Arguments:
        dataset: the examples.
        device: where batches go (pinned first when it is a CUDA device).
        workers: loader worker processes (0: read in this process); they persist across
            epochs and ignore Ctrl-C, which the Trainer handles between steps.
    """

    def __init__(self, dataset: Dataset, device: torch.device, workers: int = 0) -> None:
        self.dataset, self.device = _Batched(dataset), device
        self.pin = device.type == "cuda"
        self.order = _Order()
        self.loader = DataLoader(
            self.dataset,
            batch_sampler=self.order,
            num_workers=workers,
            pin_memory=self.pin,
            collate_fn=_as_batch,
            worker_init_fn=_ignore_interrupts if workers else None,
            persistent_workers=workers > 0,
            # each pass draws its workers' base seed: from this private generator, not from
            # the global one, whose stream is the training noise (a Dataset and tensors of
            # the same rows then train identically)
            generator=torch.Generator().manual_seed(0),
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        self.order.lists = [index.tolist() for index in index_lists]
        for lists, batch in zip(self.order.lists, self.loader, strict=True):
            _check_batch(batch, len(lists))
            self.fields = len(batch)
            yield [t.to(self.device, non_blocking=self.pin) for t in batch]


class _Order:
    """The batch sampler: lists of indices, replaced before each pass over the loader
    (persistent workers are told the new order by the loader itself)."""

    def __init__(self) -> None:
        self.lists: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.lists)

    def __len__(self) -> int:
        return len(self.lists)


class _Batched(Dataset):
    """A Dataset whose ``__getitems__`` returns a whole batch, whatever the inner one does."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner
        try:
            self.n = len(inner)
        except TypeError:
            raise ParameterError(
                "a training Dataset must be map-style with a length (an iterable Dataset has "
                "no indices to shuffle or resume from)"
            ) from None

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: list[int]) -> Any:
        read = getattr(self.inner, "__getitems__", None)
        return read(indices) if callable(read) else self.inner[indices]


def _as_batch(data: Any) -> list[torch.Tensor]:
    """A batch as a list of tensors: a tensor or a tuple of them as it is; a list of
    per-example items stacked."""
    if torch.is_tensor(data):
        return [data]
    if isinstance(data, tuple):
        return list(data)
    if isinstance(data, list) and data:
        stacked = default_collate(data)
        return [stacked] if torch.is_tensor(stacked) else list(stacked)
    raise ParameterError(
        "a training Dataset must return a batch as a tuple of tensors (x, or x and y) from "
        f"__getitems__(indices) or dataset[indices], got {type(data).__name__}"
    )


def _check_batch(batch: list[torch.Tensor], n: int) -> None:
    if not batch or any(not torch.is_tensor(t) or len(t) != n for t in batch):
        shapes = [tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in batch]
        raise ParameterError(
            f"a training Dataset returned {shapes} for {n} indices; each tensor of a batch "
            "needs one row per index"
        )


def _ignore_interrupts(worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the training process (it stops between steps)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def examples(
    data: Sequence[torch.Tensor] | Dataset, device: torch.device, workers: int = 0
) -> Examples:
    """Training or validation examples of either kind (see the module docstring)."""
    if is_dataset(data):
        return DatasetExamples(data, device, workers)
    return TensorExamples(data, device)
