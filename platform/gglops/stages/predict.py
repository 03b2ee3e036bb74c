"""`gglops predict`: a binary mask and an overlay with boxed targets for each image.

Any size works: `predict_probs` pads to a multiple of 32 and crops back, so the mask has the
image's own size. Targets are the 8-connected components of the mask (as in the metrics).

Results are `<name>_mask.png` and `<name>_overlay.png`, `<name>` the image's stem; images
that share a stem (`a/img.png b/img.png`, `x.png x.jpg`) are numbered in the order given
(`img-1`, `img-2`), so no result overwrites another.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict
from scipy import ndimage

from gglops.core.errors import UsageError
from gglops.core.files import atomic_path
from gglops.core.metrics import EIGHT_CONNECTED, THRESHOLD
from gglops.model.inference import ProbFn, predict_probs

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
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def result_names(images: Sequence[Path]) -> list[str]:
    """One distinct result name per image: its stem, or `<stem>-<k>` (k = 1, 2, … in the order
    given) where several images share a stem. Compared case-folded, as on macOS/Windows disks,
    and never one of the other images' own stems."""
    shared = Counter(Path(p).stem.casefold() for p in images)
    taken = {key for key, n in shared.items() if n == 1}
    numbered: Counter[str] = Counter()
    names: list[str] = []
    for path in images:
        stem = Path(path).stem
        key = stem.casefold()
        name = stem
        while shared[key] > 1 and (name == stem or name.casefold() in taken):
            numbered[key] += 1
            name = f"{stem}-{numbered[key]}"
        taken.add(name.casefold())
        names.append(name)
    return names


def result_paths(out: Path, name: str) -> tuple[Path, Path]:
    return out / f"{name}_mask.png", out / f"{name}_overlay.png"


def check_out_dir(out: Path) -> None:
    """Refuse an --out that cannot be a folder we write to, before anything is written."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == out else f" ({existing} is)"
        raise UsageError(f"{out}: --out must be a folder, not a file{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{out}: --out is not writable ({existing})")


def _check_no_input_overwritten(images: Sequence[Path], out: Path, names: list[str]) -> None:
    """`--out` next to the images: `a.png` must not write over an input named `a_mask.png`."""
    inputs = {Path(p).resolve() for p in images}
    for name in names:
        for result in result_paths(out, name):
            if result.resolve() in inputs:
                raise UsageError(f"{result}: a result would overwrite this input image")


def predict_one(fn: ProbFn, image_path: Path, out: Path, name: str | None = None) -> Prediction:
    """Mask and overlay of one image as `<name>_mask.png`, `<name>_overlay.png` (name: stem)."""
    from gglops.data.io import read_image

    image = read_image(image_path)  # DataError naming the file when unreadable
    mask = predict_probs(fn, image) > THRESHOLD
    out.mkdir(parents=True, exist_ok=True)
    mask_path, overlay_path = result_paths(out, name or Path(image_path).stem)
    _save_png(Image.fromarray(mask.astype(np.uint8) * 255), mask_path)
    _save_png(overlay(image, mask), overlay_path)
    return Prediction(
        image=image_path, mask=mask_path, overlay=overlay_path, targets=len(target_boxes(mask))
    )


def predict_images(
    model: str | Path,
    images: Sequence[Path],
    out: Path,
    tracking_uri: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Prediction]:
    """Masks (0/255) and overlays into `out` for every image, from a checkpoint or ONNX file;
    images sharing a stem get numbered names (`result_names`); `progress(done, total)` after
    each image."""
    from gglops.data.io import open_image
    from gglops.stages.evaluate import prob_fn_for

    # Everything that can be refused is, before loading the model and before writing anything.
    check_out_dir(out)
    for path in images:
        open_image(Path(path))
    names = result_names(images)
    _check_no_input_overwritten(images, out, names)
    fn = prob_fn_for(model, tracking_uri)
    predictions = []
    for path, name in zip(images, names, strict=True):
        predictions.append(predict_one(fn, Path(path), out, name))
        if progress is not None:
            progress(len(predictions), len(images))
    return predictions
