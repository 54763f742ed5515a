"""The standard image data sets by name — MNIST, Fashion-MNIST, binarised MNIST, CIFAR-10 —
downloaded once into the data cache, or read from a folder holding their files.

Each set is its published files (their addresses, sizes and checksums below) in their
standard formats: IDX for the MNIST family, the CIFAR-10 *binary* version (never its
pickled Python version), and the ``.amat`` text files of binarised MNIST. A named set is
fetched into ``<cache>/<set>/`` (see `ptheta.data.download.cache_dir`), checked against
its published checksums, parsed once and kept as uint8 ``.npy`` arrays in
``<cache>/<set>/arrays/``; a `Dataset` converts them to int64 when it is built. A folder
of the same files (``--data DIR``) is read as the user's own data: checked for structure,
not against the checksums, and nothing is written there.

Splits: MNIST and Fashion-MNIST train on the first 50,000 images of the official
training file and validate on its last 10,000 (the split binarised MNIST uses); CIFAR-10
trains on the first 45,000 of its 50,000 training images and validates on the last
5,000; every test split is the official test set. Binarised MNIST has its own fixed
50,000 / 10,000 / 10,000 files. Images are flat vectors (C·H·W,) with their
``image_shape`` (C, H, W), like the built-in digits; 8-bit pixels are categorical(256),
so bits per dimension are the ones published tables quote.

Grey sets also come binarised, by name: ``-binary`` (pixel / 255 > 0.5, i.e. gray level
>= 128) or ``-stochastic-binary`` (one Bernoulli(pixel / 255) draw per pixel with seed
`STOCHASTIC_SEED`, drawn once and kept in the cache, so every run sees the same images).
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ptheta.data import idx
from ptheta.data.download import Remote, Transport
from ptheta.data.spec import Dataset, DataSpec, Split
from ptheta.errors import DataError

# Grey levels at or above this are 1 in the "-binary" sets: pixel / 255 > 0.5.
THRESHOLD = 128
# The seed of the "-stochastic-binary" sets' one Bernoulli draw per pixel.
STOCHASTIC_SEED = 0
BINARIZE = ("threshold", "stochastic")
# The largest CIFAR-10 batch read from an archive: twice a published one.
_MAX_BATCH_BYTES = 2 * 10_000 * idx.CIFAR_RECORD
# Rows binarised at a time: bounds the float64 uniforms held at once.
_ROWS = 10_000

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

# The IDX files of the MNIST family: part -> file name (``.gz`` as published).
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
AMAT_FILES = {p: f"binarized_mnist_{p}.amat" for p in ("train", "valid", "test")}
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_BATCHES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


def _remote(name: str, mirrors: tuple[str, ...], size: int, md5: str, sha256: str) -> Remote:
    checks = {k: v for k, v in (("md5", md5), ("sha256", sha256)) if v}
    return Remote(name, tuple(m + name for m in mirrors), checks, size)


# Published sizes and checksums. MD5: torchvision's lists (MNIST, Fashion-MNIST) and the
# CIFAR-10 page; SHA-256 and sizes: TensorFlow Datasets' url_checksums files.
_MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3",
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)  # fmt: skip
_FASHION_FILES = (
    ("train-images-idx3-ubyte.gz", 26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    ("train-labels-idx1-ubyte.gz", 29515, "25c81989df183df01b3e8a0aad5dffbe",
     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ("t10k-images-idx3-ubyte.gz", 4422102, "bef4ecab320f06d8554ea6380940ec79",
     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    ("t10k-labels-idx1-ubyte.gz", 5148, "bb300cfdad3c16e7a12a480ee83cd310",
     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)  # fmt: skip
# No MD5 is published for these; the SHA-256 are TensorFlow Datasets'.
_AMAT_FILES = (
    ("binarized_mnist_train.amat", 78400000, "",
     "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
    ("binarized_mnist_valid.amat", 15680000, "",
     "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
    ("binarized_mnist_test.amat", 15680000, "",
     "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
)  # fmt: skip
_CIFAR_FILE = (
    CIFAR_ARCHIVE, 170052171, "c32a1d4ab5d03f1284b67883e8d87530",
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
)  # fmt: skip

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class StandardSet:
    """One published image set: its files, their format (``layout``: ``idx``, ``amat``
    or ``cifar10``), the shape of an image, the share of the official training set the
    validation split takes from its end (``idx``, ``cifar10``; ``amat`` ships its own),
    its class names (None: no labels), the official numbers of images (train, test) and
    one line saying what it is."""

    name: str
    layout: str
    files: tuple[Remote, ...]
    image_shape: tuple[int, int, int]
    val_fraction: float
    classes: tuple[str, ...] | None
    sizes: tuple[int, int, int]  # train, val, test as this module splits them
    about: str
    reference: str

    @property
    def download_mb(self) -> int:
        return round(sum(f.size or 0 for f in self.files) / 1e6)


SETS: dict[str, StandardSet] = {
    "mnist": StandardSet(
        "mnist",
        "idx",
        tuple(_remote(n, MNIST_MIRRORS, *c) for n, *c in _MNIST_FILES),
        (1, 28, 28),
        1 / 6,
        DIGIT_CLASSES,
        (50000, 10000, 10000),
        "MNIST handwritten digits",
        "LeCun, Bottou, Bengio & Haffner (1998), Gradient-based learning applied to document "
        "recognition",
    ),
    "fashion-mnist": StandardSet(
        "fashion-mnist",
        "idx",
        tuple(_remote(n, FASHION_MIRRORS, *c) for n, *c in _FASHION_FILES),
        (1, 28, 28),
        1 / 6,
        FASHION_CLASSES,
        (50000, 10000, 10000),
        "Fashion-MNIST clothing images",
        "Xiao, Rasul & Vollgraf (2017), Fashion-MNIST, arXiv:1708.07747",
    ),
    "binarized-mnist": StandardSet(
        "binarized-mnist",
        "amat",
        tuple(_remote(n, (BINARIZED_MNIST_URL,), *c) for n, *c in _AMAT_FILES),
        (1, 28, 28),
        0.0,
        None,
        (50000, 10000, 10000),
        "MNIST with the fixed stochastic binarisation of Larochelle & Murray (2011)",
        "Larochelle & Murray (2011), The neural autoregressive distribution estimator; "
        "Salakhutdinov & Murray (2008)",
    ),
    "cifar10": StandardSet(
        "cifar10",
        "cifar10",
        (_remote(CIFAR_ARCHIVE, (CIFAR10_URL.removesuffix(CIFAR_ARCHIVE),), *_CIFAR_FILE[1:]),),
        idx.CIFAR_IMAGE_SHAPE,
        1 / 10,
        idx.CIFAR_CLASSES,
        (45000, 5000, 10000),
        "CIFAR-10 colour images, 10 classes",
        "Krizhevsky (2009), Learning multiple layers of features from tiny images",
    ),
}

# name -> (set, binarisation or None)
NAMES: dict[str, tuple[str, str | None]] = {
    "mnist": ("mnist", None),
    "mnist-binary": ("mnist", "threshold"),
    "mnist-stochastic-binary": ("mnist", "stochastic"),
    "fashion-mnist": ("fashion-mnist", None),
    "fashion-mnist-binary": ("fashion-mnist", "threshold"),
    "fashion-mnist-stochastic-binary": ("fashion-mnist", "stochastic"),
    "binarized-mnist": ("binarized-mnist", None),
    "cifar10": ("cifar10", None),
}


def _kind(std: StandardSet, binarize: str | None) -> str:
    return "binary" if binarize or std.layout == "amat" else "categorical(256)"


def _describe(name: str) -> str:
    std, binarize = SETS[NAMES[name][0]], NAMES[name][1]
    c, h, w = std.image_shape
    what = f"{std.about}, {h}x{w}" + (" RGB" if c == 3 else "")
    if binarize == "threshold":
        what += f", binarised at gray level >= {THRESHOLD}"
    elif binarize == "stochastic":
        what += f", binarised by one Bernoulli(pixel/255) draw (seed {STOCHASTIC_SEED})"
    elif std.layout != "amat":
        what += ", 256 levels"
    if std.classes:
        what += ", labels"
    return f"{what} (download, {std.download_mb} MB)"


DESCRIPTIONS: dict[str, str] = {name: _describe(name) for name in NAMES}

# What `ptheta datasets` lists without downloading: kind, event shape, split sizes, labels.
SUMMARIES: dict[str, tuple[str, tuple[int, ...], int, int, int, bool]] = {
    name: (
        _kind(SETS[s], b),
        (int(np.prod(SETS[s].image_shape)),),
        *SETS[s].sizes,
        SETS[s].classes is not None,
    )
    for name, (s, b) in NAMES.items()
}


# --------------------------------------------------------------------------- parsing
Parts = dict[str, tuple[np.ndarray, np.ndarray | None]]  # part -> (x (N, D) uint8, y or None)


def _find(folder: Path, name: str) -> Path | None:
    """`name` in `folder`, compressed (``.gz``) or not, whichever is there."""
    base = name.removesuffix(".gz")
    for candidate in (base, base + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _parse_idx(paths: dict[str, Path], std: StandardSet) -> Parts:
    parts: Parts = {}
    for part in ("train", "test"):
        x, y = idx.read_idx(paths[f"{part}_x"]), idx.read_idx(paths[f"{part}_y"])
        if x.ndim != 3 or x.shape[1:] != std.image_shape[1:] or x.dtype != np.uint8:
            raise DataError(
                f"{paths[f'{part}_x']} holds {x.dtype} of shape {x.shape}, not 28 x 28 images "
                "of 8-bit pixels (N, 28, 28)"
            )
        if y.ndim != 1 or len(y) != len(x) or (len(y) and int(y.max()) > 9):
            raise DataError(
                f"{paths[f'{part}_y']} holds {y.shape} labels in 0..{int(y.max(initial=0))}; "
                f"expected one label in 0..9 for each of the {len(x)} images of "
                f"{paths[f'{part}_x'].name}"
            )
        parts[part] = (x.reshape(len(x), -1), y.astype(np.uint8))
    return parts


def _parse_amat(paths: dict[str, Path]) -> Parts:
    return {part: (idx.read_amat(paths[part]), None) for part in AMAT_FILES}


def _cifar_from_archive(path: Path) -> dict[str, bytes]:
    """The batches of a CIFAR-10 binary archive, by file name, read from the archive
    without extracting anything: no member's path is ever used to write a file."""
    wanted = {b for batches in CIFAR_BATCHES.values() for b in batches}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if base not in wanted or base in found:
                    continue
                f = tar.extractfile(member) if member.isreg() else None
                if f is None:
                    raise DataError(f"{member.name} in {path} is not a regular file")
                if member.size > _MAX_BATCH_BYTES:  # a corrupted header, not a batch
                    raise DataError(
                        f"{member.name} in {path} claims {member.size} bytes; a CIFAR-10 batch "
                        f"holds 10000 records of {idx.CIFAR_RECORD} bytes"
                    )
                found[base] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path} is not a readable tar archive: {e}") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: it is not the CIFAR-10 binary version "
            f"({CIFAR_ARCHIVE}, holding {CIFAR_FOLDER}/data_batch_1.bin ...)"
        )
    return found


def _parse_cifar(source: Path) -> Parts:
    """CIFAR-10 from its archive, or from a folder holding its batch files."""
    if source.is_file():
        blobs = _cifar_from_archive(source)
        batches = {n: idx.parse_cifar_batch(b, f"{source}:{n}") for n, b in blobs.items()}
    else:
        batches = {}
        for n in (b for bs in CIFAR_BATCHES.values() for b in bs):
            path = _find(source, n)
            if path is None:
                raise DataError(f"{source} lacks the CIFAR-10 batch {n}")
            batches[n] = idx.read_cifar_batch(path)
    parts: Parts = {}
    for part, names in CIFAR_BATCHES.items():
        x = np.concatenate([batches[n][0] for n in names])
        y = np.concatenate([batches[n][1] for n in names])
        parts[part] = (x.reshape(len(x), -1), y)
    return parts


def folder_layout(folder: Path) -> str | None:
    """Which standard files `folder` holds: ``idx`` (MNIST or Fashion-MNIST), ``amat``
    (binarised MNIST), ``cifar10``, or None (not a standard set's folder).

    Raises:
        DataError: the folder holds files of more than one of these.
    """
    if not folder.is_dir():
        return None
    found = {
        "idx": any(_find(folder, n) for n in IDX_FILES.values()),
        "amat": any(_find(folder, n) for n in AMAT_FILES.values()),
        "cifar10": (folder / CIFAR_ARCHIVE).is_file()
        or (folder / CIFAR_FOLDER).is_dir()
        or any(_find(folder, n) for bs in CIFAR_BATCHES.values() for n in bs),
    }
    layouts = [k for k, v in found.items() if v]
    if len(layouts) > 1:
        raise DataError(
            f"{folder} holds the files of several standard data sets ({', '.join(layouts)}); "
            "put each set in a folder of its own"
        )
    return layouts[0] if layouts else None


def _folder_sources(folder: Path, layout: str) -> tuple[Any, list[Path]]:
    """What to parse in a folder of the user's own files, and those files."""
    if layout == "cifar10":
        for source in (folder / CIFAR_ARCHIVE, folder / CIFAR_FOLDER, folder):
            if source.exists():
                files = [source] if source.is_file() else sorted(source.glob("*.bin*"))
                return source, files
    names = IDX_FILES if layout == "idx" else AMAT_FILES
    paths = {part: _find(folder, n) for part, n in names.items()}
    missing = [n for part, n in names.items() if paths[part] is None]
    if missing:
        raise DataError(
            f"{folder} holds some files of a standard data set but lacks {', '.join(missing)} "
            "(.gz or not); put all of them there"
        )
    return paths, list(paths.values())


def _parse(layout: str, source: Any, std: StandardSet) -> Parts:
    if layout == "idx":
        return _parse_idx(source, std)
    if layout == "amat":
        return _parse_amat(source)
    return _parse_cifar(source)


# --------------------------------------------------------------------------- the cache
def _save(path: Path, array: np.ndarray) -> None:
    """Write `array` to `path` whole or not at all (a temporary file, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _stamp(files: list[Path]) -> dict[str, list[int]]:
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _cached_parts(
    std: StandardSet, folder: Path, transport: Transport | None, progress: bool | None
) -> Parts:
    """The official parts of `std` from the cache folder: downloaded and checked first if
    need be, parsed once, then read from the uint8 arrays kept in ``arrays/``. One
    process at a time fills a set's folder; the others wait, then read what it wrote."""
    from ptheta.data import download

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"could not create the data cache folder {folder} ({e.strerror or e}); set "
            f"${download.DATA_ENV} to a folder you can write to"
        ) from None
    with download.lock(folder / ".set.lock"):
        return _fill(std, folder, transport, progress)


def _fill(
    std: StandardSet, folder: Path, transport: Transport | None, progress: bool | None
) -> Parts:
    from ptheta.data import download

    arrays = folder / "arrays"
    stamp_path = arrays / "stamp.json"
    files = [folder / f.name for f in std.files]
    parts_names = ("train", "valid", "test") if std.layout == "amat" else ("train", "test")
    if stamp_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            stamp = None
        present = [p for p in files if p.is_file()]
        # raw files deleted after parsing are fine; replaced ones are parsed (and checked) again
        if stamp is not None and all(stamp.get(p.name) == _stamp([p])[p.name] for p in present):
            try:
                return {
                    part: (
                        np.load(arrays / f"{part}_x.npy", mmap_mode="r"),
                        np.load(arrays / f"{part}_y.npy", mmap_mode="r")
                        if std.classes is not None
                        else None,
                    )
                    for part in parts_names
                }
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt from the raw files
    for remote, path in zip(std.files, files, strict=True):
        if path.is_file():
            download.verify(path, remote)  # put there by hand, or a download parsed again
        else:
            download.fetch(remote, folder, transport=transport, progress=progress)
    if std.layout == "cifar10":
        source: Any = files[0]
    else:  # the files in the order of IDX_FILES or AMAT_FILES
        source = dict(zip(IDX_FILES if std.layout == "idx" else AMAT_FILES, files, strict=True))
    parts = _parse(std.layout, source, std)
    arrays.mkdir(exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    for old in arrays.glob("*_stochastic_*.npy"):  # drawn from images that are gone
        old.unlink()
    for part, (x, y) in parts.items():
        _save(arrays / f"{part}_x.npy", x)
        if y is not None:
            _save(arrays / f"{part}_y.npy", y)
    stamp_path.with_name(".stamp.tmp").write_text(json.dumps(_stamp(files)))
    os.replace(stamp_path.with_name(".stamp.tmp"), stamp_path)
    return parts


# --------------------------------------------------------------------------- binarising
def binarize(x: np.ndarray, method: str, seed: int | Sequence[int] = STOCHASTIC_SEED) -> np.ndarray:
    """Binarise 8-bit gray images `x` (N, D): ``threshold`` (1 where pixel >= `THRESHOLD`,
    i.e. pixel / 255 > 0.5) or ``stochastic`` (1 with probability pixel / 255, one draw
    per pixel from a generator seeded with `seed`, drawn row block by row block in order,
    so the same images and seed give the same result); uint8 0/1.

    Example:
        >>> binarize(np.array([[0, 127, 128, 255]], np.uint8), "threshold").tolist()
        [[0, 0, 1, 1]]
        >>> binarize(np.array([[0, 255]], np.uint8), "stochastic").tolist()
        [[0, 1]]
    """
    if method == "threshold":
        return (np.asarray(x) >= THRESHOLD).astype(np.uint8)
    if method != "stochastic":
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}, got {method!r}")
    rng = np.random.default_rng(seed)
    out = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), _ROWS):
        block = np.asarray(x[start : start + _ROWS], dtype=np.float64) / 255.0
        out[start : start + _ROWS] = rng.random(block.shape) < block
    return out


def _binarized(parts: Parts, method: str, arrays: Path | None) -> Parts:
    """`parts` binarised; stochastic draws are kept in `arrays` (if given) and reused.
    Each official part has its own generator, seeded with the seed and the part's index."""
    out: Parts = {}
    for i, (part, (x, y)) in enumerate(parts.items()):
        if method == "threshold":
            out[part] = (binarize(x, method), y)
            continue
        seed = [STOCHASTIC_SEED, i]
        path = None if arrays is None else arrays / f"{part}_x_stochastic_seed{STOCHASTIC_SEED}.npy"
        if path is not None and path.is_file():
            try:
                out[part] = (np.load(path, mmap_mode="r"), y)
                continue
            except (OSError, ValueError):
                pass
        b = binarize(x, method, seed)
        if path is not None:
            _save(path, b)
        out[part] = (b, y)
    return out


# --------------------------------------------------------------------------- data sets
def _dataset(
    name: str,
    std: StandardSet,
    parts: Parts,
    binarize_: str | None,
    description: str,
    extra: dict[str, Any],
) -> Dataset:
    if std.layout == "amat":
        splits = {"train": parts["train"], "val": parts["valid"], "test": parts["test"]}
    else:
        x, y = parts["train"]
        n_val = max(1, round(len(x) * std.val_fraction))
        if len(x) <= n_val:
            raise DataError(
                f"the training file of {name!r} holds {len(x)} images: too few to keep "
                f"{n_val} for validation"
            )
        splits = {
            "train": (x[:-n_val], None if y is None else y[:-n_val]),
            "val": (x[-n_val:], None if y is None else y[-n_val:]),
            "test": parts["test"],
        }
    d = int(np.prod(std.image_shape))
    binary = binarize_ is not None or std.layout == "amat"
    spec = (
        DataSpec("binary", (d,), image_shape=std.image_shape)
        if binary
        else DataSpec("categorical", (d,), 256, image_shape=std.image_shape)
    )
    built = {
        s: Split(
            np.asarray(x, dtype=np.int64),
            None if y is None else np.asarray(y, dtype=np.int64),
            spec,
        )
        for s, (x, y) in splits.items()
    }
    split_note = (
        "the published train / valid / test files"
        if std.layout == "amat"
        else f"val: the last {len(built['val'])} images of the official training set; "
        "test: the official test set"
    )
    return Dataset(
        name=name,
        spec=spec,
        description=description,
        classes=None if std.classes is None else list(std.classes),
        extra={
            **extra,
            "split": split_note,
            "binarize": None
            if binarize_ is None
            else {"method": binarize_, "threshold": THRESHOLD}
            if binarize_ == "threshold"
            else {"method": binarize_, "seed": STOCHASTIC_SEED},
        },
        **built,
    )


def load_standard(
    name: str,
    *,
    transport: Transport | None = None,
    progress: bool | None = None,
) -> Dataset:
    """Load a standard image set by name (see `NAMES`), downloading its files into the
    data cache on first use.

    Arguments:
        name: ``mnist``, ``fashion-mnist`` (either with ``-binary`` or
            ``-stochastic-binary``), ``binarized-mnist`` or ``cifar10``.
        transport: how to fetch an address (tests pass their own; default: urllib).
        progress: show a download progress bar (default: when stderr is a terminal).

    Raises:
        DataError: offline (the message says where to put the files instead), or a file
            that is not the published one.
    """
    from ptheta.data.download import cache_dir

    set_name, method = NAMES[name]
    std = SETS[set_name]
    folder = cache_dir() / std.name
    parts = _cached_parts(std, folder, transport, progress)
    if method is not None:
        parts = _binarized(parts, method, folder / "arrays")
    extra = {
        "source": [u for f in std.files for u in f.urls[:1]],
        "path": str(folder),
        "format": std.layout,
        "checked": "published checksums (" + ", ".join(std.files[0].checksums) + ")",
        "reference": std.reference,
    }
    return _dataset(name, std, parts, method, DESCRIPTIONS.get(name, std.about), extra)


def load_folder(
    folder: str | os.PathLike,
    *,
    binarize: str | None = None,
) -> Dataset:
    """Load a folder holding a standard set's files in their published formats (the
    user's own copy: ``--data DIR``): the four IDX files of MNIST or Fashion-MNIST
    (``train-images-idx3-ubyte`` ..., gzip-compressed or not), the three ``.amat`` files
    of binarised MNIST, or CIFAR-10's binary version (``cifar-10-binary.tar.gz``, its
    folder ``cifar-10-batches-bin``, or the ``.bin`` batches themselves).

    The files are checked for structure (sizes, value ranges), not against the published
    checksums, and split as the named sets are (the last sixth of an MNIST training file,
    the last tenth of CIFAR-10's, validates). Labels of IDX files are named after
    Fashion-MNIST's classes when the labels file is Fashion-MNIST's published one, else
    0-9. The data set is named after the folder.

    Arguments:
        binarize: ``"threshold"`` or ``"stochastic"`` for gray images (see `binarize`).
    """
    folder = Path(folder)
    layout = folder_layout(folder)
    if layout is None:
        raise DataError(
            f"{folder} holds none of the standard image files (IDX, .amat, CIFAR-10 binary)"
        )
    if binarize is not None and binarize not in BINARIZE:
        raise DataError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    std = {"idx": SETS["mnist"], "amat": SETS["binarized-mnist"], "cifar10": SETS["cifar10"]}[
        layout
    ]
    if binarize is not None and (std.image_shape[0] != 1 or layout == "amat"):
        raise DataError(
            f"binarize applies to 8-bit gray images; {folder} holds "
            + ("colour images" if std.image_shape[0] != 1 else "images that are binary already")
        )
    source, files = _folder_sources(folder, layout)
    if layout == "idx" and _is_fashion(source["train_y"]):
        std = SETS["fashion-mnist"]
    parts = _parse(layout, source, std)
    if binarize is not None:
        parts = _binarized(parts, binarize, None)
    name = folder.resolve().name or str(folder)
    c, h, w = std.image_shape
    description = f"{layout} files in {folder}: {h}x{w}" + (" RGB" if c == 3 else "") + " images"
    extra = {
        "path": str(folder),
        "format": layout,
        "files": [p.name for p in files],
        "checked": "structure only (your own files)",
    }
    return _dataset(name, std, parts, binarize, description, extra)


def _is_fashion(labels: Path) -> bool:
    """Whether `labels` is Fashion-MNIST's published training labels file."""
    from ptheta.data.download import file_checksum

    published = SETS["fashion-mnist"].files[1]
    return labels.stat().st_size == published.size and file_checksum(
        labels, "md5"
    ) == published.checksums.get("md5")
