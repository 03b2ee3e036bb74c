"""Image and mask readers: any PIL mode in, fixed dtypes and ranges out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gglops.core.errors import DataError

log = logging.getLogger(__name__)

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


# A label has background (0) and target (its max), plus anti-aliased or JPEG-noisy edges, which
# even for many tiny targets are a few percent of the frame; past a quarter it is no label.
AMBIGUOUS_SHARE = 0.25

# Modes numpy reads as they are (bands named by `getbands`); any other converts to RGB.
_ARRAY_MODES = frozenset(
    {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
    | {"RGB", "RGBA", "RGBa", "RGBX"}
)
_ALPHA_BANDS = frozenset({"A", "a"})
_NOT_COLOUR = _ALPHA_BANDS | {"X"}  # RGBX's X is padding


def _resolve_palette(img: Image.Image) -> Image.Image:
    """A palette mask as colours when its background is black, else as its index map."""
    index = np.asarray(img.getchannel(0))
    colours = np.zeros((256, 3), np.int64)
    palette = np.asarray(img.getpalette() or [], np.int64).reshape(-1, 3)[:256]
    colours[: len(palette)] = palette
    background = np.bincount(index.ravel(), minlength=256).argmax()
    # Black background: read as seen (PNG optimisers order palettes freely); else a label map.
    return img.convert("RGBA") if not colours[background].any() else Image.fromarray(index)


def _mask_values(img: Image.Image) -> np.ndarray:
    """float64 (H, W): max over colour bands; alpha where the colour is blank and alpha varies."""
    if img.mode in ("P", "PA"):
        img = _resolve_palette(img)
    if img.mode not in _ARRAY_MODES:
        img = img.convert("RGB")
    arr = np.asarray(img)
    arr = arr.reshape(*arr.shape[:2], -1)
    bands = img.getbands()
    colour = arr[..., [i for i, b in enumerate(bands) if b not in _NOT_COLOUR]].max(axis=-1)
    alpha = [arr[..., i] for i, b in enumerate(bands) if b in _ALPHA_BANDS]
    # A uniform alpha draws nothing: an opaque (or transparent) all-black mask is empty.
    if alpha and not colour.any() and alpha[0].min() != alpha[0].max():
        colour = alpha[0]
    return colour.astype(np.float64)


def _ambiguity(values: np.ndarray) -> str | None:
    """Why `values` is no background/target label, or None when it is one."""
    if not np.isfinite(values).all() or values.min() < 0:
        return "ambiguous mask: negative or non-finite values, not a target label"
    peak = values.max()
    share = np.count_nonzero((values > 0) & (values < peak)) / values.size
    if share > AMBIGUOUS_SHARE:
        return (
            f"ambiguous mask: {share:.0%} of its pixels lie strictly between 0 and its max "
            f"({peak:g}), as in a grey-level image or probability map, not a target label"
        )
    return None


def mask_array(img: Image.Image) -> np.ndarray:
    """uint8 (H, W) in {0, 1}: target above half of the mask's own max, so 0/1, 0/255 and
    16-bit masks read alike; all zero is empty. Ambiguous → DataError (`read_mask` adds the file).
    """
    values = _mask_values(img)
    reason = _ambiguity(values)
    if reason is not None:
        raise DataError(reason)
    return (values > values.max() / 2).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """float32 (3, H, W) in [0, 1]; grayscale is replicated to 3 channels."""
    return image_array(open_image(Path(path)))


def read_mask(path: Path) -> np.ndarray:
    """uint8 (H, W) in {0, 1}; see `mask_array`. Any problem → DataError naming the file."""
    path = Path(path)
    img = open_image(path)
    try:
        return mask_array(img)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


# A mask drawn on a rescaled copy of its image (NUAA-SIRST's Misc_111: a 592x400 mask for a
# 325x220 image) has the image's aspect ratio up to rounding: scaled to the image, it lands
# where the target is. Any other size mismatch has no safe reading.
ASPECT_SLACK_PX = 1.0


def mask_size_rule(mask_hw: tuple[int, int], image_hw: tuple[int, int]) -> str | None:
    """Why a mask of `mask_hw` cannot be scaled onto an image of `image_hw`, or None when it
    can (same aspect ratio, within one pixel of rounding either way)."""
    (mh, mw), (h, w) = mask_hw, image_hw
    same_aspect = (
        abs(mw * h / mh - w) <= ASPECT_SLACK_PX and abs(mh * w / mw - h) <= ASPECT_SLACK_PX
    )
    if same_aspect:
        return None
    return f"mask is {mw}x{mh} but its image is {w}x{h}, another aspect ratio: no safe rule"


def fit_mask_to_image(mask: np.ndarray, image_hw: tuple[int, int], path: Path) -> np.ndarray:
    """`mask` (H, W) {0, 1} at the image's size: as it is, or scaled by the documented rule
    (same aspect ratio, target-preserving nearest neighbour) with one warning naming the file;
    any other mismatch → DataError naming the file."""
    if mask.shape == tuple(image_hw):
        return mask
    reason = mask_size_rule(mask.shape, image_hw)  # type: ignore[arg-type]
    if reason is not None:
        raise DataError(f"{path}: {reason}")
    from gglops.data.transforms import resize_mask

    _warn_once(
        path,
        f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
        f"{image_hw[1]}x{image_hw[0]} (same aspect ratio): the mask is scaled to the image",
    )
    return resize_mask(mask > 0, *image_hw).astype(np.uint8)


_warned: set[Path] = set()


def _warn_once(path: Path, message: str) -> None:
    """One warning per file and process: a cached dataset re-reads nothing, but validation,
    training and evaluation in one process would each warn again."""
    if path not in _warned:
        _warned.add(path)
        log.warning(message)
