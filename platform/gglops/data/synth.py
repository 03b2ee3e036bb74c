"""Synthetic SIRST-like data in a real folder layout (NUAA-SIRST by default).

Cluttered infrared-like backgrounds (1/f cloud texture, horizon and building edges, sensor
and stripe noise) with 1-3 Gaussian-profile targets from point-like (1 px) to extended
(~80 px) at a signal-to-clutter ratio of 2-10. One seeded numpy Generator drives everything
and PNGs are written with fixed options, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gglops.core.errors import DataError

FOOTPRINT = 0.3  # mask = where the target profile exceeds this fraction of its peak
_AREA_PER_SIGMA2 = math.pi * 2 * math.log(1 / FOOTPRINT)  # footprint area / (σx σy)
TARGET_AREA = (1.0, 80.0)
SCR = (2.0, 10.0)
MIN_CONTRAST = 0.08  # keeps faint targets visible after 8-bit quantisation


@dataclass(frozen=True)
class SynthImage:
    stem: str
    image: np.ndarray  # uint8 (H, W)
    mask: np.ndarray  # uint8 (H, W), 0/255


@dataclass(frozen=True)
class SynthSplits:
    trainval: list[str]
    test: list[str]
    train: list[str]  # idx_320-style three-way split
    val: list[str]


# --- background -------------------------------------------------------------------------------


def _cloud(rng: np.random.Generator, size: int) -> np.ndarray:
    """1/f^β noise in [0, 1]: low-frequency cloud texture (β varies the roughness)."""
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    freq[0, 0] = 1.0
    spectrum = rng.standard_normal(freq.shape) + 1j * rng.standard_normal(freq.shape)
    field = np.fft.irfft2(spectrum / freq ** rng.uniform(1.4, 2.2), s=(size, size))
    field -= field.min()
    return field / max(field.max(), 1e-8)


def _horizon(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A sloped, bright-edged ground band below a horizon line."""
    size = yy.shape[0]
    line = rng.uniform(0.55, 0.9) * size + rng.uniform(-0.15, 0.15) * (xx - size / 2)
    ground = (yy > line).astype(np.float32) * rng.uniform(-0.25, 0.25)
    edge = np.exp(-((yy - line) ** 2) / (2 * rng.uniform(0.6, 2.0) ** 2)) * rng.uniform(0.1, 0.3)
    return ground + edge


def _buildings(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few bright or dark blocks standing on the bottom edge: sharp man-made edges."""
    out = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):
        x0 = rng.integers(0, size - 2)
        width = rng.integers(2, max(3, size // 4))
        top = rng.integers(size // 2, size - 1)
        out[top:, x0 : x0 + width] = rng.uniform(-0.2, 0.3)
    return out


def _sensor_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    columns = rng.normal(0, rng.uniform(0.0, 0.02), size)  # fixed-pattern stripe noise
    return rng.normal(0, rng.uniform(0.004, 0.02), (size, size)) + columns[None, :]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = rng.uniform(0.1, 0.35) + rng.uniform(0.05, 0.3) * _cloud(rng, size)
    if rng.random() < 0.5:
        bg = bg + _horizon(rng, yy, xx)
    if rng.random() < 0.3:
        bg = bg + _buildings(rng, size)
    return np.clip(bg + _sensor_noise(rng, size), 0.0, 0.75)


# --- targets ----------------------------------------------------------------------------------


def _target_profile(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-peak rotated anisotropic Gaussian at a random place; footprint 1-80 px."""
    area = math.exp(rng.uniform(*np.log(TARGET_AREA)))
    aspect = rng.uniform(0.6, 1.6)
    sigma = math.sqrt(area / _AREA_PER_SIGMA2)
    sx, sy = max(sigma * aspect, 0.3), max(sigma / aspect, 0.3)
    # Small images (32 px) cannot hold the largest targets: shrink them to fit, so that
    # the centre range below is never empty. From 64 px up nothing changes.
    shrink = min(1.0, (size / 2 - 3) / (3 * max(sx, sy)))
    sx, sy = sx * shrink, sy * shrink
    margin = 2 + 3 * max(sx, sy)
    cy, cx = rng.uniform(margin, size - 1 - margin, 2)
    theta = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
    v = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
    profile = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return profile / profile.max()  # the sampled peak is 1 even for sub-pixel targets


def _add_target(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    profile = _target_profile(rng, image.shape[0])
    footprint = profile > FOOTPRINT
    ys, xs = np.nonzero(footprint)
    pad = 6  # local clutter around the target decides its amplitude (signal-to-clutter)
    window = image[
        max(ys.min() - pad, 0) : ys.max() + pad + 1, max(xs.min() - pad, 0) : xs.max() + pad + 1
    ]
    contrast = max(rng.uniform(*SCR) * max(float(window.std()), 0.01), MIN_CONTRAST)
    image += profile * contrast
    mask |= footprint


def synth_image(rng: np.random.Generator, stem: str, size: int) -> SynthImage:
    image = _background(rng, size)
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):
        _add_target(rng, image, mask)
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return SynthImage(stem, pixels, mask.astype(np.uint8) * 255)


def synth_splits(rng: np.random.Generator, stems: list[str]) -> SynthSplits:
    """~80/20 trainval/test (idx_427 style) and 50/20/30 train/val/test (idx_320 style)."""
    n = len(stems)
    order = [stems[i] for i in rng.permutation(n)]
    n_test = max(1, round(0.2 * n))
    n_train3, n_val3 = max(1, round(0.5 * n)), round(0.2 * n)
    return SynthSplits(
        trainval=sorted(order[n_test:]),
        test=sorted(order[:n_test]),
        train=sorted(order[:n_train3]),
        val=sorted(order[n_train3 : n_train3 + n_val3]),
    )


# --- writers per layout -----------------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _lines(path: Path, stems: list[str]) -> None:
    _write(path, "".join(f"{s}\n" for s in stems).encode())


@dataclass(frozen=True)
class _Writer:
    image: Callable[[str, bool], str]  # (stem, is_test) → relative image path
    mask: Callable[[str, bool], str]
    splits: Callable[[Path, SynthSplits], None]


def _nuaa_splits(root: Path, s: SynthSplits) -> None:
    _lines(root / "idx_427/trainval.txt", s.trainval)
    _lines(root / "idx_427/test.txt", s.test)
    _lines(root / "idx_320/train.txt", s.train)
    _lines(root / "idx_320/val.txt", s.val)
    _lines(root / "idx_320/test.txt", sorted(set(s.trainval + s.test) - set(s.train + s.val)))


def _pair_splits(train_name: str, test_name: str) -> Callable[[Path, SynthSplits], None]:
    def write(root: Path, s: SynthSplits) -> None:
        _lines(root / train_name, s.trainval)
        _lines(root / test_name, s.test)

    return write


def _msda_path(kind: str) -> Callable[[str, bool], str]:
    return lambda stem, test: f"{'test' if test else 'train'}/{kind}/{stem}.png"


WRITERS: dict[str, _Writer] = {
    "nuaa-sirst": _Writer(
        lambda s, _: f"images/{s}.png", lambda s, _: f"masks/{s}_pixels0.png", _nuaa_splits
    ),
    "irstd-1k": _Writer(
        lambda s, _: f"IRSTD1k_Img/{s}.png",
        lambda s, _: f"IRSTD1k_Label/{s}.png",
        _pair_splits("trainval.txt", "test.txt"),
    ),
    "dnanet": _Writer(
        lambda s, _: f"images/{s}.png",
        lambda s, _: f"masks/{s}.png",
        _pair_splits("50_50/train.txt", "50_50/test.txt"),
    ),
    "basicirstd": _Writer(
        lambda s, _: f"images/{s}.png",
        lambda s, _: f"masks/{s}.png",
        _pair_splits("img_idx/train_SYNTH.txt", "img_idx/test_SYNTH.txt"),
    ),
    "msda-net": _Writer(_msda_path("image"), _msda_path("mask"), lambda root, s: None),
}


def synthesize(out: Path, n: int, size: int, seed: int, layout: str = "nuaa-sirst") -> Path:
    """Write `n` images of `size`² to `out` (which must not hold files); returns `out`."""
    out = Path(out)
    writer = WRITERS.get(layout)
    if writer is None:
        raise DataError(f"unknown layout {layout!r} for synth (known: {', '.join(WRITERS)})")
    if n < 2 or size < 16:
        raise DataError(f"synth needs n >= 2 and size >= 16 (got n={n}, size={size})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty; remove it or pick another folder")
    rng = np.random.default_rng(seed)
    stems = [f"Misc_{i + 1}" for i in range(n)]
    splits = synth_splits(rng, stems)
    test = set(splits.test)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename: a reader never sees half a dataset.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for stem in stems:
            item = synth_image(rng, stem, size)
            _write(tmp / writer.image(stem, stem in test), _png(item.image))
            _write(tmp / writer.mask(stem, stem in test), _png(item.mask))
        writer.splits(tmp, splits)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
