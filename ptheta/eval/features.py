"""Feature spaces for sample metrics: a classifier trained on the data set itself, or raw data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from torch import nn

from ptheta.errors import DataError, RunDirError
from ptheta.io import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from ptheta.data.spec import Dataset, DataSpec

# The classifier: standardised input → HIDDEN[0] → HIDDEN[1] (the features) → classes.
HIDDEN = (64, 64)
EPOCHS = 100  # full-batch Adam steps: ~0.2 s on one CPU core for the 1 000 digits
LEARNING_RATE = 1e-2
WEIGHT_DECAY = 1e-4
CACHE_VERSION = 2
SCALE_FLOOR = 0.1  # times the median standard deviation of the variables


class FeatureExtractor:
    """Maps examples of one data set to feature vectors (N, D) for sample metrics.

    ``name`` says which space the features live in: ``"FD-<dataset>"`` for the
    penultimate layer of a classifier trained on that data set, ``"raw-<dataset>"`` for
    the standardised raw values. Distances in different spaces are not comparable.

    Arguments:
        name: the feature space's name.
        spec: the examples' spec (shape checks).
        mean: per-variable mean of the training split (D_in,).
        scale: per-variable standard deviation of the training split, 1 where it is 0.
        network: the classifier (its last layer is dropped for features), or None for raw.
        info: what to report about the space (classes, test accuracy, ...).

    Example:
        >>> import ptheta
        >>> fx = feature_extractor(ptheta.datasets.load("toy2d-moons"))
        >>> fx.name, fx.transform(np.zeros((3, 2))).shape
        ('raw-toy2d-moons', (3, 2))
    """

    def __init__(
        self,
        name: str,
        spec: DataSpec,
        mean: np.ndarray,
        scale: np.ndarray,
        network: nn.Sequential | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.mean = mean
        self.scale = scale
        self.network = network
        self.info = dict(info or {})

    @property
    def n_features(self) -> int:
        return len(self.mean) if self.network is None else HIDDEN[-1]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Features of examples ``x`` (N, *event_shape), shape (N, n_features), float64."""
        arr = np.asarray(x)
        if arr.ndim < 2 or arr.shape[1:] != self.spec.event_shape:
            raise DataError(
                f"the feature space {self.name!r} takes examples of shape "
                f"{self.spec.event_shape}, got an array of shape {arr.shape}: expected "
                f"(N, {', '.join(map(str, self.spec.event_shape))})"
            )
        z = _standardise(arr, self.mean, self.scale)
        if self.network is None:
            return z
        with torch.no_grad():
            h = self.network[:-1](torch.from_numpy(z))  # (N, HIDDEN[-1]), drop the logits layer
        return h.numpy().astype(np.float64)


def _flat(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # levels of discrete data as floats
    if not np.isfinite(arr).all():
        raise DataError("examples contain NaN or infinite values; drop those rows first")
    return arr


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (_flat(x) - mean) / scale


def _network(d_in: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),  # features = the output of this ReLU
        nn.Linear(HIDDEN[1], n_classes),
    ).double()


def _train_classifier(
    z: np.ndarray, y: np.ndarray, n_classes: int, random_state: int
) -> nn.Sequential:
    """Full-batch Adam on cross-entropy: no data shuffling, so a seed fixes the result."""
    threads = torch.get_num_threads()
    # one thread: a tiny network trains faster without thread overhead, and the same way on
    # every machine; fork_rng leaves the caller's global RNG untouched
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        try:
            torch.manual_seed(random_state)
            net = _network(z.shape[1], n_classes)
            opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
            zt, yt = torch.from_numpy(z), torch.from_numpy(y)
            for _ in range(EPOCHS):
                opt.zero_grad()
                nn.functional.cross_entropy(net(zt), yt).backward()
                opt.step()
        finally:
            torch.set_num_threads(threads)
    net.eval()
    return net


def _labels(data: Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    y = data.train.y
    if y is None:
        return None
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return (classes, codes.astype(np.int64)) if len(classes) >= 2 else None


def feature_space_name(data: Dataset) -> str:
    """The name of ``data``'s feature space without building it: ``"FD-<dataset>"`` for
    labelled data (a classifier's features), ``"raw-<dataset>"`` otherwise."""
    return f"{'raw' if _labels(data) is None else 'FD'}-{data.name}"


def _accuracy(net: nn.Sequential, z: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = net(torch.from_numpy(z)).argmax(1).numpy()
    return float((pred == y).mean())


def feature_extractor(
    data: Dataset,
    *,
    cache_dir: str | os.PathLike | None = None,
    random_state: int = 0,
) -> FeatureExtractor:
    """The feature space of ``data`` for Fréchet distance, precision/recall and MMD.

    Labelled data (two classes or more): an MLP classifier (standardised input →
    64 → 64 → classes, ReLU, float64) trained on ``data.train`` with full-batch Adam for
    a fixed number of steps and seed ``random_state`` — deterministic. The features are
    its 64 penultimate activations; the space is named ``"FD-<dataset>"``, never "FID":
    it is not Inception and its numbers are not comparable with published FIDs.
    Unlabelled data (toy 2-D sets, sequences): the raw values standardised with the
    training split's mean and standard deviation, named ``"raw-<dataset>"``. Standard
    deviations are floored at 0.1 × their median, so that near-constant variables cannot
    dominate distances. Discrete data enter as their level values (0, ..., K−1) as floats.

    Arguments:
        data: the data set (its ``train`` split trains the classifier).
        cache_dir: a folder to keep the trained classifier in, keyed by the data set's
            fingerprint and the seed (``features-<fingerprint>-<seed>.safetensors`` plus a
            ``.json`` of its description; never pickle). A second call loads it.
        random_state: the seed of the classifier's initialisation.

    Returns:
        a :class:`FeatureExtractor`; ``info`` holds the classifier's test accuracy.

    Example:
        >>> import ptheta
        >>> fx = feature_extractor(ptheta.datasets.load("digits"))
        >>> fx.name, fx.transform(ptheta.datasets.load("digits").test.x).shape
        ('FD-digits', (447, 64))

    References:
        Heusel et al. (2017) use Inception features; with no such network offline we
        follow the common practice of a classifier trained on the data set itself.
    """
    x = _flat(data.train.x)
    mean, scale = x.mean(0), x.std(0)
    # A floor on the scale: a variable that is (almost) constant in training (digits' corner
    # pixels) would otherwise turn a sample's rare value there into a huge input that
    # dominates every distance; constant variables get the floor too.
    positive = scale[scale > 0]
    scale = np.maximum(scale, SCALE_FLOOR * np.median(positive) if positive.size else 1.0)
    labels, name = _labels(data), feature_space_name(data)
    if labels is None:
        return FeatureExtractor(name, data.spec, mean, scale, info={"kind": "raw"})
    classes, y = labels
    stem = f"features-{data.fingerprint()}-{int(random_state)}"
    if cache_dir is not None:
        cached = _load_cached(Path(cache_dir), stem, data, name)
        if cached is not None:
            return cached
    z = (x - mean) / scale
    net = _train_classifier(z, y, len(classes), int(random_state))
    info: dict[str, Any] = {
        "kind": "classifier",
        "classes": [str(c) for c in classes],
        "hidden": list(HIDDEN),
        "epochs": EPOCHS,
        "random_state": int(random_state),
        "train_accuracy": _accuracy(net, z, y),
    }
    if data.test.y is not None:
        known = np.isin(data.test.y, classes)
        if known.any():
            test_y = np.searchsorted(classes, np.asarray(data.test.y)[known])
            z_test = _standardise(data.test.x[known], mean, scale)
            info["test_accuracy"] = _accuracy(net, z_test, test_y)
    fx = FeatureExtractor(name, data.spec, mean, scale, net, info)
    if cache_dir is not None:
        _save_cached(fx, Path(cache_dir), stem, data)
    return fx


def _save_cached(fx: FeatureExtractor, folder: Path, stem: str, data: Dataset) -> None:
    assert fx.network is not None
    arrays = {f"net.{k}": v.numpy() for k, v in fx.network.state_dict().items()}
    arrays.update(mean=fx.mean, scale=fx.scale)
    # the weights first: a .json beside them is the sign of a complete cache entry
    atomic_write_bytes(folder / f"{stem}.safetensors", st_save(arrays))
    meta = {
        "format": "ptheta-features",
        "version": CACHE_VERSION,
        "name": fx.name,
        "data": data.name,
        "fingerprint": data.fingerprint(),
        **fx.info,
    }
    atomic_write_json(folder / f"{stem}.json", meta)


def _load_cached(folder: Path, stem: str, data: Dataset, name: str) -> FeatureExtractor | None:
    """The cached extractor, or None when there is none; a damaged entry is an error."""
    meta_path, weights_path = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    if not meta_path.exists():
        return None
    fix = f"delete {str(meta_path)!r} and its .safetensors to train the features again"
    try:
        meta = json.loads(meta_path.read_text())
        arrays = st_load(weights_path.read_bytes())
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != data.fingerprint():
            return None  # written by another version or for other data: train afresh
        net = _network(len(arrays["mean"]), len(meta["classes"]))
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        net.load_state_dict(state)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise RunDirError(f"the cached feature extractor is unreadable ({e}); {fix}") from None
    net.eval()
    info = {k: meta[k] for k in meta if k not in ("format", "version", "name", "data")}
    return FeatureExtractor(name, data.spec, arrays["mean"], arrays["scale"], net, info)


_MEMORY: dict[tuple[str, str, int], FeatureExtractor] = {}


def cached_feature_extractor(data: Dataset, *, random_state: int = 0) -> FeatureExtractor:
    """:func:`feature_extractor` remembered for the life of the process (per data set and
    seed), so that scoring several models trains the classifier once."""
    key = (data.name, data.fingerprint(), int(random_state))
    if key not in _MEMORY:
        _MEMORY[key] = feature_extractor(data, random_state=random_state)
    return _MEMORY[key]
