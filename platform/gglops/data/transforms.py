"""Training transforms (numpy/torch only): fit to size, reference augmentations.

Every random choice is drawn up front into an `AugmentDraw` from a numpy Generator, so a
sample's augmentation depends only on (seed, epoch, index), whatever process loads it.
Geometry is applied to image and mask together; masks are re-binarised at 0.5 afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Ranges at strength 1 (the reference recipe's "small" rotations/shifts/scales and jitter).
MAX_ANGLE_DEG = 15.0
MAX_SHIFT = 0.1  # fraction of the side
MAX_SCALE = 0.1  # ±10 %
MAX_BRIGHTNESS = 0.1
MAX_CONTRAST = 0.2
MAX_NOISE_SIGMA = 0.02


@dataclass(frozen=True)
class AugmentDraw:
    hflip: bool = False
    vflip: bool = False
    transpose: bool = False
    rot90: int = 0
    angle: float = 0.0  # degrees
    shift: tuple[float, float] = (0.0, 0.0)  # (x, y) fraction of the side
    scale: float = 1.0
    brightness: float = 0.0
    contrast: float = 1.0
    noise_sigma: float = 0.0
    noise_seed: int = 0

    @property
    def has_affine(self) -> bool:
        return self.angle != 0.0 or self.shift != (0.0, 0.0) or self.scale != 1.0


def draw_augment(rng: np.random.Generator, strength: float) -> AugmentDraw:
    """All random choices for one sample; strength 0 → the identity."""
    if strength <= 0:
        return AugmentDraw()
    p = 0.5 * strength
    affine = rng.random() < p
    return AugmentDraw(
        hflip=bool(rng.random() < p),
        vflip=bool(rng.random() < p),
        transpose=bool(rng.random() < p),
        rot90=int(rng.integers(0, 4)) if rng.random() < p else 0,
        angle=float(rng.uniform(-1, 1) * MAX_ANGLE_DEG * strength) if affine else 0.0,
        shift=tuple(float(v) for v in rng.uniform(-1, 1, 2) * MAX_SHIFT * strength)
        if affine
        else (0.0, 0.0),
        scale=float(1 + rng.uniform(-1, 1) * MAX_SCALE * strength) if affine else 1.0,
        brightness=float(rng.uniform(-1, 1) * MAX_BRIGHTNESS * strength),
        contrast=float(1 + rng.uniform(-1, 1) * MAX_CONTRAST * strength),
        noise_sigma=float(rng.uniform(0, MAX_NOISE_SIGMA * strength)) if rng.random() < p else 0.0,
        noise_seed=int(rng.integers(0, 2**31)),
    )


def binarize(mask: torch.Tensor) -> torch.Tensor:
    return (mask > 0.5).to(torch.float32)


def resize(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear resize of both to size×size; the mask is re-binarised (reference: at 127.5)."""
    if image.shape[-2:] == (size, size):
        return image, mask
    image = F.interpolate(image[None], (size, size), mode="bilinear", align_corners=False)[0]
    mask = F.interpolate(mask[None], (size, size), mode="bilinear", align_corners=False)[0]
    return image.clamp(0, 1), binarize(mask)


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


def _dihedral(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    if draw.hflip:
        x = x.flip(-1)
    if draw.vflip:
        x = x.flip(-2)
    if draw.transpose:
        x = x.transpose(-1, -2)
    if draw.rot90:
        x = torch.rot90(x, draw.rot90, dims=(-2, -1))
    return x


def _affine(
    image: torch.Tensor, mask: torch.Tensor, draw: AugmentDraw
) -> tuple[torch.Tensor, torch.Tensor]:
    rad = math.radians(draw.angle)
    cos, sin = math.cos(rad) / draw.scale, math.sin(rad) / draw.scale
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of f of the side is 2f.
    theta = torch.tensor(
        [[cos, -sin, -2 * draw.shift[0]], [sin, cos, -2 * draw.shift[1]]], dtype=torch.float32
    )[None]
    grid = F.affine_grid(theta, [1, 1, *image.shape[-2:]], align_corners=False)
    # Border padding for the image avoids black wedges (fake edges); the mask gets zeros.
    image = F.grid_sample(
        image[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    mask = F.grid_sample(
        mask[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return image[0], mask[0]


def apply_geometry(
    image: torch.Tensor, mask: torch.Tensor, draw: AugmentDraw
) -> tuple[torch.Tensor, torch.Tensor]:
    image, mask = _dihedral(image, draw), _dihedral(mask, draw)
    if draw.has_affine:
        image, mask = _affine(image, mask, draw)
    return image, binarize(mask)


def apply_photometric(image: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    if draw.contrast != 1.0 or draw.brightness != 0.0:
        mean = image.mean()
        image = (image - mean) * draw.contrast + mean + draw.brightness
    if draw.noise_sigma > 0:
        gen = torch.Generator().manual_seed(draw.noise_seed)
        image = image + torch.randn(image.shape, generator=gen) * draw.noise_sigma
    return image.clamp(0, 1)


def augment(
    image: torch.Tensor, mask: torch.Tensor, draw: AugmentDraw
) -> tuple[torch.Tensor, torch.Tensor]:
    image, mask = apply_geometry(image, mask, draw)
    return apply_photometric(image, draw).contiguous(), mask.contiguous()
