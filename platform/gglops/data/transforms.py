"""Training transforms: fit to size, and the GGL-Net authors' augmentation recipe.

The reference (YuChuang1205/MSDA-Net, `train_MSDA_Net.py`) resizes every sample to the
training size and then, with probability 0.5, applies albumentations' `SomeOf(n=3)` over
twelve transforms: three are drawn WITH replacement, weighted by their `p`, and each drawn
one is applied (forced). `REFERENCE_MENU` restates that menu with the same ranges and
semantics (see docs/recipe.md); this module implements it in numpy so that

- every random choice is drawn up front (`draw_plan`) from a numpy Generator, and a sample's
  augmentation depends only on (seed, epoch, index), whatever process loads it;
- masks never lose a target: masks are resampled by nearest neighbour (as albumentations
  does) and, in addition, every target pixel is carried forward to the output pixel its
  centre maps to whenever that lands inside the frame. Nearest neighbour alone drops a
  1-px target whenever no output pixel happens to sample it (a third of them under a
  shrinking affine); the forward stamp makes "inside the frame ⇒ at least one pixel" exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

Array = np.ndarray  # image: float32 (C, H, W) in [0, 1]; mask: bool (H, W)


# --- target-preserving mask geometry ------------------------------------------------------


def _stamp(
    out: Array, mask: Array, forward: Callable[[Array, Array], tuple[Array, Array]]
) -> Array:
    """OR into `out` (in place: callers pass a fresh array) the output pixel of every target
    pixel of `mask` (pixel centres mapped by `forward`, rounded), where it lands inside
    `out`'s frame."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    oy, ox = forward(ys.astype(np.float64), xs.astype(np.float64))
    oy, ox = np.floor(oy + 0.5).astype(np.int64), np.floor(ox + 0.5).astype(np.int64)
    inside = (oy >= 0) & (oy < out.shape[0]) & (ox >= 0) & (ox < out.shape[1])
    out[oy[inside], ox[inside]] = True
    return out


def resize_mask(mask: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize (half-pixel centres, as cv2/albumentations) that keeps every
    target: when shrinking, a target pixel also marks the output cell that contains it."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    out = mask[rows[:, None], cols[None, :]]

    def forward(ys: Array, xs: Array) -> tuple[Array, Array]:
        # Cell containing the pixel centre; `_stamp` rounds, so subtract the half pixel.
        return (ys + 0.5) * height / h - 0.5, (xs + 0.5) * width / w - 0.5

    return _stamp(out, mask, forward)


def _reflect101(index: Array, n: int) -> Array:
    """cv2.BORDER_REFLECT_101 (albumentations' default border): …cb|abcd|cb…"""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


@dataclass(frozen=True)
class Affine:
    """Rotation (degrees, counter-clockwise as cv2), scale and shift (fractions of the
    side) about the image centre, as albumentations' Rotate / ShiftScaleRotate."""

    angle: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # (x, y)

    def matrix(self, height: int, width: int) -> Array:
        """Forward 2×3 map of pixel centres (x, y) from input to output."""
        cx, cy = (width - 1) / 2, (height - 1) / 2
        rad = math.radians(self.angle)
        a, b = self.scale * math.cos(rad), self.scale * math.sin(rad)
        rot = np.array([[a, b], [-b, a]])
        offset = np.array([cx, cy]) - rot @ np.array([cx, cy])
        offset += np.array([self.shift[0] * width, self.shift[1] * height])
        return np.hstack([rot, offset[:, None]])

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        image, mask = np.ascontiguousarray(image), np.ascontiguousarray(mask)
        h, w = mask.shape
        forward = self.matrix(h, w)
        inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        sx = inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]
        sy = inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]
        near_y = _reflect101(np.floor(sy + 0.5).astype(np.int64), h)
        near_x = _reflect101(np.floor(sx + 0.5).astype(np.int64), w)

        def fwd(ys: Array, xs: Array) -> tuple[Array, Array]:
            ox = forward[0, 0] * xs + forward[0, 1] * ys + forward[0, 2]
            oy = forward[1, 0] * xs + forward[1, 1] * ys + forward[1, 2]
            return oy, ox

        out_mask = _stamp(mask[near_y, near_x], mask, fwd)
        return _bilinear(image, sy, sx), out_mask


def _bilinear(image: Array, sy: Array, sx: Array) -> Array:
    """Bilinear sample of every channel at (sy, sx), reflect-101 outside the frame."""
    _, h, w = image.shape
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    fy, fx = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)
    ya, yb = _reflect101(y0, h), _reflect101(y0 + 1, h)
    xa, xb = _reflect101(x0, w), _reflect101(x0 + 1, w)
    top = image[:, ya, xa] * (1 - fx) + image[:, ya, xb] * fx
    bottom = image[:, yb, xa] * (1 - fx) + image[:, yb, xb] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


# --- the reference's transforms, one frozen dataclass each ---------------------------------


@dataclass(frozen=True)
class NoOp:
    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return image, mask


@dataclass(frozen=True)
class Flip:
    axis: int  # -1 horizontal (about the vertical axis), -2 vertical

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return np.flip(image, self.axis), np.flip(mask, self.axis)


@dataclass(frozen=True)
class Transpose:
    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return image.transpose(0, 2, 1), mask.T


@dataclass(frozen=True)
class Rot90:
    k: int  # 0-3 quarter turns (0 is drawn too, as albumentations' RandomRotate90)

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return np.rot90(image, self.k, axes=(1, 2)), np.rot90(mask, self.k)


@dataclass(frozen=True)
class Brightness:
    beta: float  # added, as a fraction of the maximum (albumentations' brightness_by_max)

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return np.clip(image + self.beta, 0.0, 1.0), mask


@dataclass(frozen=True)
class Contrast:
    alpha: float  # multiplies the image (about 0, as albumentations' RandomContrast)

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        return np.clip(image * self.alpha, 0.0, 1.0), mask


@dataclass(frozen=True)
class Noise:
    sigma: float  # on the [0, 1] scale; per-channel, image only
    seed: int

    def apply(self, image: Array, mask: Array) -> tuple[Array, Array]:
        noise = np.random.default_rng(self.seed).standard_normal(image.shape, dtype=np.float32)
        return np.clip(image + noise * self.sigma, 0.0, 1.0), mask


Op = NoOp | Flip | Transpose | Rot90 | Affine | Brightness | Contrast | Noise
Drawer = Callable[[np.random.Generator], Op]


def _uniform(limit: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(-limit, limit))


_rotate = _uniform(45.0)
_shift = _uniform(0.1)
_scale = _uniform(0.2)
_bright = _uniform(0.2)
_contrast = _uniform(0.2)

# (weight p, drawer): the reference's SomeOf menu, in its order. GaussNoise's var_limit
# (10, 50) is on the 0-255 scale: σ = sqrt(var) / 255.
REFERENCE_MENU: tuple[tuple[float, Drawer], ...] = (
    (0.5, lambda rng: Flip(-2)),
    (0.5, lambda rng: Flip(-1)),
    (0.5, lambda rng: Transpose()),
    (0.5, lambda rng: Rot90(int(rng.integers(0, 4)))),
    (0.2, lambda rng: Brightness(_bright(rng))),
    (0.2, lambda rng: Contrast(1.0 + _contrast(rng))),
    (0.5, lambda rng: Affine(angle=_rotate(rng))),
    (0.5, lambda rng: Affine(shift=(_shift(rng), _shift(rng)))),
    (0.5, lambda rng: Affine(scale=1.0 + _scale(rng))),
    (
        0.2,
        lambda rng: Noise(math.sqrt(rng.uniform(10.0, 50.0)) / 255.0, int(rng.integers(2**31))),
    ),
    (0.5, lambda rng: NoOp()),
    (0.5, lambda rng: NoOp()),
)


def draw_plan(rng: np.random.Generator, p: float = 0.5, n: int = 3) -> tuple[Op, ...]:
    """With probability p, n ops drawn with replacement weighted by their menu weight."""
    if p <= 0 or rng.random() >= p:
        return ()
    weights = np.array([w for w, _ in REFERENCE_MENU])
    picks = rng.choice(len(REFERENCE_MENU), size=n, replace=True, p=weights / weights.sum())
    return tuple(REFERENCE_MENU[i][1](rng) for i in picks)


def apply_plan(image: Array, mask: Array, plan: tuple[Op, ...]) -> tuple[Array, Array]:
    for op in plan:
        image, mask = op.apply(image, mask)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)


# --- torch-facing helpers used by the datasets ---------------------------------------------


def resize(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image bilinear (half-pixel, as cv2 INTER_LINEAR), mask by `resize_mask`: size×size."""
    if image.shape[-2:] == (size, size):
        return image, mask
    image = F.interpolate(image[None], (size, size), mode="bilinear", align_corners=False)[0]
    out = resize_mask(mask[0].numpy() > 0.5, size, size)
    return image.clamp(0, 1), torch.from_numpy(out.astype(np.float32))[None]


def pad_crop(
    image: torch.Tensor, mask: torch.Tensor, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad bottom/right up to size, then a random size×size crop (no rescaling)."""
    h, w = image.shape[-2:]
    pad = (0, max(size - w, 0), 0, max(size - h, 0))
    image, mask = F.pad(image, pad), F.pad(mask, pad)
    top = int(rng.integers(0, image.shape[-2] - size + 1))
    left = int(rng.integers(0, image.shape[-1] - size + 1))
    return (
        image[:, top : top + size, left : left + size],
        mask[:, top : top + size, left : left + size],
    )


def target_crop(
    image: torch.Tensor,
    mask: torch.Tensor,
    size: int,
    rng: np.random.Generator,
    target_p: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random size×size patch (zero-padded bottom/right where the image is smaller); with
    probability `target_p` (and when the image has one) the patch holds a target pixel drawn
    uniformly, at a uniform position inside the patch. The draws come from `rng` in a fixed
    order, so a sample's patch depends only on the generator's seed."""
    h, w = image.shape[-2:]
    pad = (0, max(size - w, 0), 0, max(size - h, 0))
    if any(pad):
        image, mask = F.pad(image, pad), F.pad(mask, pad)
    ph, pw = image.shape[-2:]
    forced = rng.random() < target_p
    ys, xs = np.nonzero(mask[0].numpy() > 0.5) if forced else ((), ())
    if len(ys):
        pick = int(rng.integers(len(ys)))
        top = _window_start(int(ys[pick]), size, ph, rng)
        left = _window_start(int(xs[pick]), size, pw, rng)
    else:
        top = int(rng.integers(0, ph - size + 1))
        left = int(rng.integers(0, pw - size + 1))
    return (
        image[:, top : top + size, left : left + size],
        mask[:, top : top + size, left : left + size],
    )


def _window_start(pixel: int, size: int, extent: int, rng: np.random.Generator) -> int:
    """A start for a `size` window inside [0, extent) that contains `pixel`, uniform over
    the starts that do."""
    low, high = max(0, pixel - size + 1), min(pixel, extent - size)
    return int(rng.integers(low, high + 1))


def augment(
    image: torch.Tensor, mask: torch.Tensor, plan: tuple[Op, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a drawn plan to (image (3,H,W), mask (1,H,W)) tensors; masks stay {0, 1}."""
    if not plan:
        return image.contiguous(), mask.contiguous()
    out_image, out_mask = apply_plan(image.numpy(), mask[0].numpy() > 0.5, plan)
    return torch.from_numpy(out_image), torch.from_numpy(out_mask.astype(np.float32))[None]
