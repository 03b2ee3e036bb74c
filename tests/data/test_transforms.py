"""Augmentation and resize never delete a small target that stays inside the frame.

Each geometric transform of the reference menu (and every resize ratio the recipes use) is
drawn ≥ 1000 times on masks holding isolated 1–2 px targets. Where a target should land is
computed here from the transform's own definition (cv2's rotation convention, flips,
quarter turns, cell containment for resizing), independently of the implementation; a target
survives when the output mask has a pixel within one pixel of that place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from gglops.data.transforms import (
    REFERENCE_MENU,
    Affine,
    Brightness,
    Contrast,
    Flip,
    Noise,
    NoOp,
    Rot90,
    Transpose,
    draw_plan,
    resize_mask,
)

SIZE = 48
DRAWS = 1000
Point = tuple[float, float]


def _targets(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[list[Point]]]:
    """A mask with 4-6 isolated 1-2 px targets (≥ 8 px apart) and their pixel lists."""
    mask = np.zeros((size, size), dtype=bool)
    targets: list[list[Point]] = []
    while len(targets) < rng.integers(4, 7):
        y, x = (int(v) for v in rng.integers(1, size - 2, 2))
        if any(abs(y - ty) < 8 and abs(x - tx) < 8 for t in targets for ty, tx in t):
            continue
        pixels = [(y, x)] + ([(y, x + 1)] if rng.random() < 0.5 else [])
        for py, px in pixels:
            mask[py, px] = True
        targets.append([(float(py), float(px)) for py, px in pixels])
    return mask, targets


def _expected(op: object, y: float, x: float, h: int, w: int) -> Point:
    """Where pixel (y, x) goes, from the transform's definition."""
    if isinstance(op, Flip):
        return (y, w - 1 - x) if op.axis == -1 else (h - 1 - y, x)
    if isinstance(op, Transpose):
        return x, y
    if isinstance(op, Rot90):
        for _ in range(op.k):  # np.rot90: counter-clockwise quarter turn
            y, x, h, w = w - 1 - x, y, w, h
        return y, x
    if isinstance(op, Affine):
        cx, cy = (w - 1) / 2, (h - 1) / 2
        t = math.radians(op.angle)
        dx, dy = (x - cx) * op.scale, (y - cy) * op.scale
        # cv2.getRotationMatrix2D: positive angles turn counter-clockwise on screen.
        ox = cx + math.cos(t) * dx + math.sin(t) * dy + op.shift[0] * w
        oy = cy - math.sin(t) * dx + math.cos(t) * dy + op.shift[1] * h
        return oy, ox
    assert isinstance(op, NoOp | Brightness | Contrast | Noise)  # image-only ops
    return y, x


def _count(
    out: np.ndarray, targets: list[list[Point]], where: Callable[[float, float], Point]
) -> tuple[int, int]:
    """(targets that should survive, targets that did)."""
    should = did = 0
    h, w = out.shape
    for pixels in targets:
        places = [np.floor(np.array(where(y, x)) + 0.5).astype(int) for y, x in pixels]
        inside = [(py, px) for py, px in places if 0 <= py < h and 0 <= px < w]
        if not inside:
            continue
        should += 1
        near = [out[max(py - 1, 0) : py + 2, max(px - 1, 0) : px + 2].any() for py, px in inside]
        did += any(near)
    return should, did


@pytest.mark.parametrize("entry", range(len(REFERENCE_MENU)))
def test_every_menu_transform_keeps_small_targets(entry: int) -> None:
    rng = np.random.default_rng(entry)
    image = np.zeros((3, SIZE, SIZE), dtype=np.float32)
    totals = np.zeros(2, dtype=int)
    for _ in range(DRAWS):
        mask, targets = _targets(rng, SIZE)
        op = REFERENCE_MENU[entry][1](rng)
        _, out = op.apply(image, mask)
        assert out.dtype == bool
        h, w = out.shape
        totals += _count(out, targets, lambda y, x, op=op: _expected(op, y, x, SIZE, SIZE))
        assert h * w == SIZE * SIZE
    should, did = totals
    assert should > 0 and did == should, f"{type(op).__name__}: {did} of {should} kept"


# Ratios the recipes use: 64 → 32 (tests), 300 → 256 and 220 → 512 (NUAA-SIRST's varied
# sizes), 256 → 256 (NUDT), 512 → 256, plus awkward non-integer ones.
RATIOS = [(64, 32), (300, 256), (220, 512), (256, 256), (512, 256), (97, 64), (50, 80)]


@pytest.mark.parametrize(("src", "dst"), RATIOS)
def test_resize_keeps_small_targets(src: int, dst: int) -> None:
    rng = np.random.default_rng(src * 1000 + dst)
    totals = np.zeros(2, dtype=int)
    scale = dst / src

    def cell(y: float, x: float) -> Point:  # the output cell that contains the pixel centre
        return (y + 0.5) * scale - 0.5, (x + 0.5) * scale - 0.5

    for _ in range(DRAWS):
        mask, targets = _targets(rng, src)
        out = resize_mask(mask, dst, dst)
        totals += _count(out, targets, cell)
    should, did = totals
    assert should > 0 and did == should, f"{src}→{dst}: {did} of {should} kept"


def test_plans_follow_the_reference_composition() -> None:
    """p = 0.5 of samples are augmented; then exactly n ops, drawn with replacement."""
    rng = np.random.default_rng(0)
    plans = [draw_plan(rng, p=0.5, n=3) for _ in range(4000)]
    augmented = [plan for plan in plans if plan]
    assert abs(len(augmented) / len(plans) - 0.5) < 0.03
    assert all(len(plan) == 3 for plan in augmented)
    assert any(len({type(op) for op in plan}) < 3 for plan in augmented)  # replacement
    noise = sum(type(op).__name__ == "Noise" for plan in augmented for op in plan)
    flips = sum(isinstance(op, Flip) for plan in augmented for op in plan)
    # Weighted by p: Noise 0.2 of 5.1, the two flips 1.0 of 5.1.
    assert noise / (3 * len(augmented)) == pytest.approx(0.2 / 5.1, abs=0.01)
    assert flips / (3 * len(augmented)) == pytest.approx(1.0 / 5.1, abs=0.015)
    assert draw_plan(np.random.default_rng(0), p=0.0) == ()
