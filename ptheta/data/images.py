"""Folders of images as a `Dataset`: one sub-folder per class for labels, resized on request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ptheta.data.arrays import from_arrays
from ptheta.data.spec import Dataset, infer_spec
from ptheta.errors import DataError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")

# The largest side an image folder is resized to: 1024 x 1024 RGB pixels are 25 MB an
# image as int64 already, and the `--image-size` help of the CLI quotes this number.
MAX_IMAGE_SIZE = 1024


def _image_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) for s in size):
        raise DataError(f"image_size must be an int or (H, W), got {image_size!r}")
    if not all(1 <= s <= MAX_IMAGE_SIZE for s in size):
        raise DataError(
            f"image_size must be between 1 and {MAX_IMAGE_SIZE} pixels a side (larger images "
            f"do not fit in memory as a data set), got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


# How deep an image's pixels are, from its Pillow mode: black and white ("1"), integers of
# 16 or 32 bits ("I;16", "I;16B", "I"), 32-bit floats ("F"); every other mode (L, LA, P,
# RGB, RGBA, CMYK, ...) is read as 8-bit gray or RGB.
BILEVEL, BYTE, INTEGER, FLOAT = "1-bit", "8-bit", "16/32-bit integer", "32-bit float"


def _pixel_depth(mode: str) -> str:
    if mode == "1":
        return BILEVEL
    if mode == "F":
        return FLOAT
    if mode == "I" or mode.startswith("I;"):
        return INTEGER
    return BYTE


def _read_image(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, str, str]:
    """The pixels of one image file as (C, H, W) with their stored values (0/1 for black
    and white), its Pillow mode and its pixel depth."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            depth = _pixel_depth(mode)
            if depth == INTEGER:
                img = img.convert("I")  # lossless: 16-bit values fit in 32-bit integers
            elif depth == BYTE:
                img = img.convert("L" if mode in ("L", "LA", "La") else "RGB")
            if size is not None:
                # Pillow sizes are (W, H); it resizes mode "1" by nearest neighbour, so
                # black and white stays black and white.
                img = img.resize(size[::-1], Image.Resampling.BILINEAR)
            arr = np.asarray(img)
    except MemoryError:
        raise DataError(
            f"out of memory reading the image {path} (MemoryError): use a smaller image_size"
        ) from None
    except Exception as e:  # Pillow raises many types on broken or unknown files
        raise DataError(f"could not read the image {path}: {e or type(e).__name__}") from None
    if depth == BILEVEL:
        arr = arr.astype(np.uint8)  # Pillow gives booleans
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), mode, depth


def _folder_depth(folder: Path, depths: list[str], files: list[Path], modes: list[str]) -> str:
    """The one pixel depth of a folder's images; black and white among 8-bit images counts
    as 8-bit. Any other mix is refused: ptheta does not guess how values of one depth map
    onto another's (is 16-bit 65535 the white of 8-bit 255? is float 1.0?)."""
    kinds = set(depths)
    if len(kinds) == 1:
        return depths[0]
    if kinds == {BILEVEL, BYTE}:
        return BYTE
    first = {d: depths.index(d) for d in sorted(kinds)}  # one file of each depth
    examples = [f"{files[i].name} is {d} (mode {modes[i]})" for d, i in first.items()]
    raise DataError(
        f"the images in {folder} mix pixel depths: {'; '.join(examples)}; ptheta keeps each "
        "image's stored values and will not guess how one depth maps onto another: convert "
        "them to one depth first (e.g. with Pillow's Image.convert)"
    )


def list_image_files(folder: Path) -> tuple[list[Path], list[int], list[str] | None]:
    """The image files of ``folder`` (flat, or one sub-folder per class), their labels
    (class codes; 0 in a flat folder) and the class names (None in a flat folder)."""
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        top = _list_images(folder)
        groups = [(d.name, _list_images(d)) for d in subdirs]
    except OSError as e:
        raise DataError(f"could not list the folder {folder}: {e}") from None
    suffixes = "/".join(s[1:] for s in IMAGE_SUFFIXES)
    if subdirs and not top:
        empty = [name for name, files in groups if not files]
        if empty:
            raise DataError(
                f"class folder(s) {', '.join(empty)} in {folder} hold no images ({suffixes}); "
                "remove them or add images"
            )
        files = [p for _, ps in groups for p in ps]
        labels = [c for c, (_, ps) in enumerate(groups) for _ in ps]
        return files, labels, [name for name, _ in groups]
    if top:
        if subdirs:
            raise DataError(
                f"{folder} holds both images and sub-folders; put every image in a class "
                "sub-folder, or all of them directly in the folder"
            )
        return top, [0] * len(top), None
    raise DataError(f"{folder} holds no images ({suffixes}), directly or in sub-folders")


def load_image_folder(
    folder: Path,
    *,
    kind: str | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a folder of images: flat (no labels) or with one sub-folder per class (labels
    are the sorted sub-folder names).

    Pixel values are kept as stored, by pixel depth (from each file's Pillow mode):

    - 8-bit gray or colour (L, P, RGB, RGBA, ...): values 0..255, categorical(256) when
      the kind is inferred (whatever the darkest and brightest pixels here are);
    - black and white (mode "1"): values 0/1, inferred binary. Among 8-bit images they are
      read as 0 and 255, the gray levels they show;
    - 16- or 32-bit integers (mode "I;16", "I"; 16-bit PNG and TIFF) and 32-bit floats
      (mode "F"; float TIFF): values as stored, never clipped to 0..255; the kind is
      inferred from the values as for an array (integers below 256 → categorical(max+1),
      more levels, negative or fractional values → continuous), or declared with `kind`.

    A folder that mixes other depths (8-bit with 16-bit, integer with float) is refused.

    Arguments:
        grayscale: True for one channel, False for RGB, None for one channel exactly when
            every image is gray.
        image_size: (H, W) or an int to resize every image to (bilinear; nearest for
            black and white); without it all images must share one size.

    Returns:
        pixels as x of shape (N, C, H, W): int64 for integer depths, float64 for floats.
    """
    size = _image_size(image_size)
    paths, codes, classes = list_image_files(folder)
    files = list(zip(paths, codes, strict=True))

    images, labels, modes, depths = [], [], [], []
    for p, label in files:
        arr, mode, depth = _read_image(p, size)
        images.append(arr)
        labels.append(label)
        modes.append(mode)
        depths.append(depth)

    shapes = sorted({a.shape[1:] for a in images})
    if len(shapes) > 1:
        raise DataError(
            f"the images in {folder} have different sizes ({shapes[0]}, {shapes[-1]}, ...); "
            "pass image_size=(H, W) to resize them all"
        )
    depth = _folder_depth(folder, depths, [p for p, _ in files], modes)
    if depth == BYTE:  # black and white shown among gray levels: 0 and 255
        images = [a * 255 if d == BILEVEL else a for a, d in zip(images, depths, strict=True)]
    # An RGB file whose three channels agree everywhere is a gray image too.
    gray = [a.shape[0] == 1 or bool((a[0] == a[1]).all() and (a[1] == a[2]).all()) for a in images]
    to_gray = all(gray) if grayscale is None else grayscale
    if to_gray:
        # ITU-R 601 luma, the same weights Pillow's convert("L") uses.
        images = [
            a if a.shape[0] == 1 else np.rint(np.tensordot([0.299, 0.587, 0.114], a, 1))[None]
            for a in images
        ]
    else:
        images = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in images]
    x = np.stack(images).astype(np.float64 if depth == FLOAT else np.int64)  # (N, C, H, W)
    y = np.asarray(labels, dtype=np.int64) if classes is not None else None
    # 8-bit pixels live on 0..255 whatever the darkest or brightest one here is.
    if kind is None and depth == BYTE and infer_spec(x).kind == "categorical":
        kind = "categorical:256"
    return from_arrays(
        x,
        y,
        name=folder.name or str(folder),
        kind=kind,
        seed=seed,
        classes=classes,
        image_shape=x.shape[1:],
        extra={"path": str(folder), "format": "images", "pixel_depth": depth},
    )
