"""Readers: every PIL mode we meet in SIRST sets → fixed dtypes, shapes and ranges."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gglops.core.errors import DataError
from gglops.data.io import read_image, read_mask

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
    levels = np.zeros((4, 8), np.uint8)  # a few edge levels in a mostly empty frame
    levels[0, :4] = [0, 127, 128, 255]
    assert read_mask(_save(tmp_path / "m.png", levels, "L"))[0, :4].tolist() == [0, 0, 1, 1]
    wide = levels.astype(np.uint16) * 257
    mask = read_mask(_save(tmp_path / "m16.png", wide, "I;16"))
    assert mask.dtype == np.uint8 and mask[0, :4].tolist() == [0, 0, 1, 1]


# The same label (two targets, one a single pixel) in every encoding users store masks in.
LABEL = np.zeros((12, 16), bool)
LABEL[2:5, 3:7] = True
LABEL[9, 12] = True


def _palette(index: np.ndarray, colours: list[int]) -> Image.Image:
    image = Image.fromarray(index.astype(np.uint8))
    image.putpalette(colours)
    return image


def _planes(mode: str, *planes: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack(planes).astype(np.uint8), mode)


_SUFFIX = {"I": "tif", "F": "tif"}  # PNG holds neither 32-bit int nor float
MaskEncoder = Callable[[np.ndarray], Image.Image]
L255 = LABEL.astype(np.uint8) * 255
ENCODINGS: dict[str, MaskEncoder] = {
    "L 0/255": lambda m: Image.fromarray(m.astype(np.uint8) * 255),
    "L 0/1": lambda m: Image.fromarray(m.astype(np.uint8)),
    "1 (bilevel)": Image.fromarray,  # a bool array is mode "1"
    "I;16 0/255": lambda m: Image.fromarray(m.astype(np.uint16) * 255),
    "I;16 0/65535": lambda m: Image.fromarray(m.astype(np.uint16) * 65535),
    "I 0/255": lambda m: Image.fromarray(m.astype(np.int32) * 255),
    "F 0/1": lambda m: Image.fromarray(m.astype(np.float32)),
    "LA opaque": lambda m: _planes("LA", m * 255, np.full(m.shape, 255)),
    "LA alpha only": lambda m: _planes("LA", m * 0, m * 255),
    "RGB white": lambda m: _planes("RGB", m * 255, m * 255, m * 255),
    "RGB red": lambda m: _planes("RGB", m * 255, m * 0, m * 0),
    "RGBA opaque red": lambda m: _planes("RGBA", m * 255, m * 0, m * 0, np.full(m.shape, 255)),
    "RGBA alpha only": lambda m: _planes("RGBA", m * 0, m * 0, m * 0, m * 255),
    "P index 1 white": lambda m: _palette(m, [0, 0, 0, 255, 255, 255]),
    "P index 1 red": lambda m: _palette(m, [0, 0, 0, 255, 0, 0]),
    "P optimiser order (index 0 white)": lambda m: _palette(~m, [255, 255, 255, 0, 0, 0]),
    "P label map, navy background": lambda m: _palette(m, [0, 0, 128, 0, 128, 0]),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_mask_encoding_reads_as_its_0_255_version(tmp_path: Path, encoding: str) -> None:
    image = ENCODINGS[encoding](LABEL)
    path = tmp_path / f"mask.{_SUFFIX.get(image.mode, 'png')}"
    image.save(path)
    with Image.open(path) as stored:
        assert stored.mode == image.mode  # the file really holds that encoding
    mask = read_mask(path)
    assert mask.dtype == np.uint8 and mask.shape == LABEL.shape
    np.testing.assert_array_equal(mask, LABEL.astype(np.uint8), err_msg=encoding)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_an_all_zero_mask_is_empty_in_every_encoding(tmp_path: Path, encoding: str) -> None:
    image = ENCODINGS[encoding](np.zeros_like(LABEL))
    path = tmp_path / f"empty.{_SUFFIX.get(image.mode, 'png')}"
    image.save(path)
    assert not read_mask(path).any()


def test_anti_aliased_and_jpeg_edges_split_at_half(tmp_path: Path) -> None:
    big = np.kron(L255, np.ones((4, 4), np.uint8))  # 48x64, targets 12x16 and 4x4 px
    blurred = big.copy()
    blurred[7, 12:28] = 100  # a soft row just outside the first target: background
    blurred[8, 12:28] = 200  # its first row dimmed: still target
    expected = (big > 0).astype(np.uint8)
    assert (read_mask(_save(tmp_path / "aa.png", blurred, "L")) == expected).all()
    Image.fromarray(big).save(tmp_path / "m.jpg", quality=75)
    assert (read_mask(tmp_path / "m.jpg") == expected).all()


def test_a_faint_target_is_never_lost(tmp_path: Path) -> None:
    faint = np.zeros((8, 8), np.uint8)
    faint[3, 4] = 2  # whatever its level, a mask's max is target
    assert read_mask(_save(tmp_path / "faint.png", faint, "L")).sum() == 1


AMBIGUOUS: dict[str, tuple[np.ndarray, str]] = {
    "grey-level image": ((_gradient(200) + 10).astype(np.uint8), "png"),
    "probability map": (np.linspace(0.01, 0.99, H * W, dtype=np.float32).reshape(H, W), "tif"),
    "background at 1, target at 255": (np.where(_gradient(1) > 0, 255, 1).astype(np.uint8), "png"),
    "negative values": (np.full((H, W), -1.0, np.float32), "tif"),
}


@pytest.mark.parametrize("case", list(AMBIGUOUS))
def test_ambiguous_mask_is_a_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    array, suffix = AMBIGUOUS[case]
    path = tmp_path / f"mask.{suffix}"
    Image.fromarray(array).save(path)
    with pytest.raises(DataError, match="ambiguous mask") as info:
        read_mask(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


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
