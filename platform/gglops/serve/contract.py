"""The HTTP contract of `gglops serve`: JSON models, image decoding, target extraction.

Images decode as `gglops predict` reads them (`gglops.data.io.image_array`: any PIL mode,
grey replicated, RGBA's alpha dropped). Every refusal is a `BadRequestError` with an HTTP
status and one line: the proxy never answers 500 with a traceback for bad input.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from pydantic import BaseModel, ConfigDict

FORMATS = frozenset({"PNG", "BMP", "JPEG", "TIFF"})
DEFAULT_MAX_PIXELS = 4096 * 4096  # 16.8 Mpx: a 4K thermal frame fits, a decompression bomb not
MASK_FORMATS = frozenset({"png"})


class BadRequestError(Exception):
    """Refused input: `status` is the HTTP code, the message one line for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Point(BaseModel):
    """Pixel coordinates: x the column, y the row, from the top-left corner."""

    model_config = ConfigDict(frozen=True)

    x: float
    y: float


class Box(BaseModel):
    """Inclusive corners, as `gglops predict` draws them: (x0, y0) top-left, (x1, y1)
    bottom-right."""

    model_config = ConfigDict(frozen=True)

    x0: int
    y0: int
    x1: int
    y1: int


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    centroid: Point
    bbox: Box
    area: int
    score: float  # the highest probability inside the component


class PredictResponse(BaseModel):
    model_version: str
    height: int
    width: int
    targets: list[Target]
    mask: str | None = None  # base64 PNG (0/255) at the image's size, with ?mask=png


class Health(BaseModel):
    model_version: str
    alias: str
    onnx_sha256: str
    refused: str | None = None  # the last version the follow loop would not serve, and why


def decode_image(body: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """float32 (3, H, W) in [0, 1] from an uploaded PNG/BMP/JPEG/TIFF; else `BadRequestError`."""
    from PIL import Image, UnidentifiedImageError

    from gglops.data.io import image_array

    if not body:
        raise BadRequestError(400, "empty body: POST the image file's bytes")
    try:
        img = Image.open(io.BytesIO(body))
    except UnidentifiedImageError:
        raise BadRequestError(415, "not an image (PNG, BMP, JPEG or TIFF expected)") from None
    except Image.DecompressionBombError:
        raise BadRequestError(413, f"image over the {max_pixels} pixel limit") from None
    if img.format not in FORMATS:
        raise BadRequestError(415, f"{img.format} image: PNG, BMP, JPEG or TIFF expected")
    width, height = img.size
    if width * height > max_pixels:  # checked on the header, before decoding any pixel
        raise BadRequestError(413, f"{width}x{height} image is over the {max_pixels} pixel limit")
    try:
        img.load()
        return image_array(img)
    except (OSError, ValueError, SyntaxError) as exc:
        reason = " ".join(str(exc).split())[:160]
        what = f"unreadable or truncated {img.format} image ({reason})"
        raise BadRequestError(400, what) from None


def mask_format(query: str | None) -> str | None:
    if query is None or query in MASK_FORMATS:
        return query
    raise BadRequestError(400, f"mask={query}: only mask=png is supported")


def find_targets(probs: np.ndarray) -> list[Target]:
    """The 8-connected components of `probs > THRESHOLD`, as the metrics and predict see them."""
    from scipy import ndimage

    from gglops.core.metrics import EIGHT_CONNECTED, THRESHOLD

    binary = probs > THRESHOLD
    labels, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    centroids = ndimage.center_of_mass(binary, labels, index)
    scores = ndimage.maximum(probs, labels, index)
    boxes = ndimage.find_objects(labels)
    return [
        Target(
            centroid=Point(x=round(float(cx), 2), y=round(float(cy), 2)),
            bbox=Box(x0=sx.start, y0=sy.start, x1=sx.stop - 1, y1=sy.stop - 1),
            area=int(area),
            score=round(float(score), 4),
        )
        for (cy, cx), (sy, sx), area, score in zip(centroids, boxes, areas, scores, strict=True)
    ]


def mask_png(probs: np.ndarray) -> str:
    """The binary mask (0/255, the image's size) as base64 PNG."""
    from PIL import Image

    from gglops.core.metrics import THRESHOLD

    buffer = io.BytesIO()
    Image.fromarray((probs > THRESHOLD).astype(np.uint8) * 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
