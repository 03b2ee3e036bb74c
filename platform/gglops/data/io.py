"""Image and mask readers: any PIL mode in, fixed dtypes and ranges out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gglops.errors import DataError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _scale_16bit(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 65535.0


def _scale_float(img: Image.Image) -> np.ndarray:
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def _scale_8bit(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255.0


# Modes that keep their own bit depth; everything else is converted to 8-bit L or RGB first.
_HIGH_DEPTH: dict[str, Callable[[Image.Image], np.ndarray]] = {
    "I;16": _scale_16bit,
    "I;16B": _scale_16bit,
    "I;16L": _scale_16bit,
    "I": _scale_16bit,  # 32-bit int PNGs in the wild hold 16-bit data
    "F": _scale_float,
}


def open_image(path: Path) -> Image.Image:
    """Fully decoded PIL image; any unreadable, truncated or non-image file → DataError."""
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file") from None
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc})") from None


def _to_plane_array(img: Image.Image) -> np.ndarray:
    """(H,W) or (H,W,3) float32 in [0, 1]."""
    scale = _HIGH_DEPTH.get(img.mode)
    if scale is not None:
        return scale(img)
    target = "L" if img.mode in ("L", "LA", "1") else "RGB"
    return _scale_8bit(img.convert(target))


def image_array(img: Image.Image) -> np.ndarray:
    """float32 (3, H, W) in [0, 1] from a decoded PIL image of any mode."""
    arr = _to_plane_array(img)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.broadcast_to(arr, (3, *arr.shape)))
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def mask_array(img: Image.Image) -> np.ndarray:
    """uint8 (H, W) in {0, 1}: grey level above 127.5 of 255 (16-bit masks scaled first)."""
    arr = _to_plane_array(img)
    if arr.ndim == 3:
        arr = arr.max(axis=2)  # a coloured annotation counts wherever any channel is set
    return (arr > 0.5).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """float32 (3, H, W) in [0, 1]; grayscale is replicated to 3 channels."""
    return image_array(open_image(Path(path)))


def read_mask(path: Path) -> np.ndarray:
    """uint8 (H, W) in {0, 1}; see `mask_array`."""
    return mask_array(open_image(Path(path)))
