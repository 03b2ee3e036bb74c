"""Readers: every PIL mode we meet in SIRST sets → fixed dtypes, shapes and ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gglops.data.io import read_image, read_mask
from gglops.errors import DataError

H, W = 7, 5  # odd and non-square on purpose


def _gradient(high: int) -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) * high // (H * W - 1)).astype(np.int64)


def _save(path: Path, array: np.ndarray, mode: str) -> Path:
    image = Image.fromarray(array)
    assert image.mode == mode
    image.save(path)
    return path


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("L", lambda: _gradient(255).astype(np.uint8)),
        ("RGB", lambda: np.stack([_gradient(255).astype(np.uint8)] * 3, axis=-1)),
        ("RGBA", lambda: np.stack([_gradient(255).astype(np.uint8)] * 4, axis=-1)),
        ("I;16", lambda: _gradient(65535).astype(np.uint16)),
    ],
)
def test_read_image_any_mode(tmp_path: Path, mode: str, make) -> None:
    image = read_image(_save(tmp_path / "x.png", make(), mode))
    assert image.dtype == np.float32 and image.shape == (3, H, W)
    assert image.min() == 0.0 and image.max() == pytest.approx(1.0)
    np.testing.assert_allclose(image[0], image[2])  # grey replicated / equal channels
    np.testing.assert_allclose(image[0], _gradient(1000) / 1000, atol=2 / 255)


def test_read_image_keeps_colour_channels(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = 255
    image = read_image(_save(tmp_path / "g.bmp", rgb, "RGB"))
    assert image[1].min() == 1.0 and image[0].max() == 0.0 and image[2].max() == 0.0


def test_read_mask_binarises_at_half(tmp_path: Path) -> None:
    levels = np.array([[0, 127, 128, 255]], np.uint8)
    assert read_mask(_save(tmp_path / "m.png", levels, "L")).tolist() == [[0, 0, 1, 1]]
    wide = np.array([[0, 32767, 32768, 65535]], np.uint16)
    mask = read_mask(_save(tmp_path / "m16.png", wide, "I;16"))
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 0, 1, 1]]


def test_truncated_and_non_image_files_name_the_file(tmp_path: Path) -> None:
    good = _save(
        tmp_path / "good.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8), "L"
    )
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    text = tmp_path / "text.png"
    text.write_text("not a png")
    for path in (truncated, text, tmp_path / "missing.png"):
        with pytest.raises(DataError, match=str(path)):
            read_image(path)
