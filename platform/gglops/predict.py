"""`gglops predict`: a binary mask and an overlay with boxed targets for each image.

Any size works: `predict_probs` pads to a multiple of 16 and crops back, so the mask has the
image's own size. Targets are the 8-connected components of the mask (as in the metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict
from scipy import ndimage

from gglops.inference import ProbFn, predict_probs
from gglops.metrics import EIGHT_CONNECTED, THRESHOLD

BOX_COLOUR = (255, 48, 48)
BOX_MARGIN = 2  # px around each component, so point targets stay visible


class Prediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    image: Path
    mask: Path
    overlay: Path
    targets: int


def target_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each 8-connected component, inclusive corners."""
    labels, _ = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return [
        (sx.start, sy.start, sx.stop - 1, sy.stop - 1) for sy, sx in ndimage.find_objects(labels)
    ]


def overlay(image: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The image (3, H, W) in [0, 1] as RGB with a box around every detected target."""
    rgb = Image.fromarray((np.clip(image.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(rgb)
    h, w = mask.shape
    for x0, y0, x1, y1 in target_boxes(mask):
        box = (
            max(x0 - BOX_MARGIN, 0),
            max(y0 - BOX_MARGIN, 0),
            min(x1 + BOX_MARGIN, w - 1),
            min(y1 + BOX_MARGIN, h - 1),
        )
        draw.rectangle(box, outline=BOX_COLOUR)
    return rgb


def _save_png(img: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)


def predict_one(fn: ProbFn, image_path: Path, out: Path) -> Prediction:
    from gglops.data.io import read_image

    image = read_image(image_path)  # DataError naming the file when unreadable
    mask = predict_probs(fn, image) > THRESHOLD
    stem = Path(image_path).stem
    out.mkdir(parents=True, exist_ok=True)
    mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
    _save_png(Image.fromarray(mask.astype(np.uint8) * 255), mask_path)
    _save_png(overlay(image, mask), overlay_path)
    return Prediction(
        image=image_path, mask=mask_path, overlay=overlay_path, targets=len(target_boxes(mask))
    )


def predict_images(
    model: str | Path, images: Sequence[Path], out: Path, tracking_uri: str | None = None
) -> list[Prediction]:
    """Masks (0/255) and overlays into `out` for every image, from a checkpoint or ONNX file."""
    from gglops.data.io import open_image
    from gglops.evaluate import prob_fn_for

    for path in images:  # fail before loading the model, and before writing anything
        open_image(Path(path))
    fn = prob_fn_for(model, tracking_uri)
    return [predict_one(fn, Path(path), out) for path in images]
