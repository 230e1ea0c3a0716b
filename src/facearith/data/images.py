"""Reading images: any format Pillow opens, as 2-D grey uint8 arrays."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from facearith.errors import DataError


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """An image as a 2-D uint8 array; palette (P) and colour images are converted to grey on load."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None


def load_images(paths: list[str]) -> list[np.ndarray]:
    return [load_gray(p) for p in paths]


def is_image(path: str | os.PathLike) -> bool:
    """Whether Pillow recognises the file as an image (its header, not its name: files need no extension)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return False
    return True
