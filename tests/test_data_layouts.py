"""The five real folder conventions: auto-detection, splits, stems, odd sizes and modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gglops.data.io import read_image, read_mask
from gglops.data.layouts import LAYOUTS, resolve_layout
from gglops.data.synth import synthesize
from gglops.errors import DataError


def _image(path: Path, size: tuple[int, int] = (300, 213), mode: str = "RGB") -> None:
    """A (W, H) image in `mode`: odd sizes, the modes real sets ship (RGB, L, 16-bit)."""
    w, h = size
    grey = np.random.default_rng(len(str(path))).integers(0, 255, (h, w)).astype(np.uint8)
    arrays = {
        "RGB": lambda: np.stack([grey] * 3, axis=-1),
        "L": lambda: grey,
        "I;16": lambda: grey.astype(np.uint16) * 257,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arrays[mode]()).save(path)


def _mask(path: Path, size: tuple[int, int] = (300, 213)) -> None:
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    mask[100:103, 150:152] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


def _lines(path: Path, *entries: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{e}\n" for e in entries))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_generated_layouts_are_auto_detected(tmp_path: Path, layout: str) -> None:
    root = synthesize(tmp_path / layout, n=10, size=32, seed=0, layout=layout)
    index = resolve_layout(root)
    assert index.layout == layout
    assert (len(index.train), len(index.test)) == (8, 2)
    assert {s.stem for s in index.train}.isdisjoint(s.stem for s in index.test)
    for sample in index.train + index.test:
        assert sample.image.is_file() and sample.mask.is_file()
        assert read_mask(sample.mask).shape == read_image(sample.image).shape[1:]


def test_nuaa_original_with_two_split_families(tmp_path: Path) -> None:
    """idx_427 (trainval/test) is the default; idx_320 (train/val/test) is selectable."""
    for stem, mode in [("Misc_1", "RGB"), ("Misc_2", "L"), ("Misc_3", "I;16"), ("Misc_4", "RGB")]:
        _image(tmp_path / "images" / f"{stem}.png", mode=mode)
        _mask(tmp_path / "masks" / f"{stem}_pixels0.png")
    _lines(tmp_path / "idx_427/trainval.txt", "Misc_1", "Misc_2.png", "Misc_3")  # ext optional
    _lines(tmp_path / "idx_427/test.txt", "Misc_4", "")
    _lines(tmp_path / "idx_320/train.txt", "Misc_1")
    _lines(tmp_path / "idx_320/val.txt", "Misc_2")
    _lines(tmp_path / "idx_320/test.txt", "Misc_3", "Misc_4")

    default = resolve_layout(tmp_path)
    assert (default.layout, default.split) == ("nuaa-sirst", "idx_427")
    assert [s.stem for s in default.train] == ["Misc_1", "Misc_2", "Misc_3"]
    assert default.train[1].mask == tmp_path / "masks/Misc_2_pixels0.png"
    for sample in default.train:  # RGB, L and 16-bit all read as (3, 213, 300)
        assert read_image(sample.image).shape == (3, 213, 300)

    other = resolve_layout(tmp_path, "nuaa-sirst", "idx_320")
    assert [s.stem for s in other.train] == ["Misc_1"]
    assert [s.stem for s in other.test] == ["Misc_3", "Misc_4"]
    with pytest.raises(DataError, match="idx_999"):
        resolve_layout(tmp_path, split="idx_999")


def test_irstd1k_original(tmp_path: Path) -> None:
    for k in (1, 2, 3):
        _image(tmp_path / f"IRSTD1k_Img/XDU{k}.png", size=(48, 48), mode="L")
        _mask(tmp_path / f"IRSTD1k_Label/XDU{k}.png", size=(48, 48))
    _lines(tmp_path / "trainval.txt", "XDU1", "XDU2")
    _lines(tmp_path / "test.txt", "XDU3")
    index = resolve_layout(tmp_path)
    assert (index.layout, index.split) == ("irstd-1k", None)
    assert index.test[0].mask == tmp_path / "IRSTD1k_Label/XDU3.png"


def test_dnanet_ratio_folders_and_mixed_suffixes(tmp_path: Path) -> None:
    _image(tmp_path / "images/000001.png", size=(37, 29))
    _image(tmp_path / "images/000002.bmp", size=(37, 29))
    _image(tmp_path / "images/000003.jpg", size=(37, 29))
    for stem in ("000001", "000002", "000003"):
        _mask(tmp_path / f"masks/{stem}.png", size=(37, 29))
    _lines(tmp_path / "50_50/train.txt", "000001", "000002")
    _lines(tmp_path / "50_50/test.txt", "000003")
    _lines(tmp_path / "70_20/train.txt", "000001")
    _lines(tmp_path / "70_20/test.txt", "000002.bmp", "000003")
    index = resolve_layout(tmp_path)
    assert (index.layout, index.split) == ("dnanet", "50_50")
    assert index.train[1].image.name == "000002.bmp"
    assert index.test[0].image.name == "000003.jpg"
    other = resolve_layout(tmp_path, "dnanet", "70_20")
    assert [s.stem for s in other.test] == ["000002", "000003"]


def test_basicirstd_named_splits(tmp_path: Path) -> None:
    for stem in ("a", "b", "c"):
        _image(tmp_path / f"images/{stem}.png", size=(32, 32), mode="L")
        _mask(tmp_path / f"masks/{stem}.png", size=(32, 32))
    _lines(tmp_path / "img_idx/train_NUAA-SIRST.txt", "a", "b")
    _lines(tmp_path / "img_idx/test_NUAA-SIRST.txt", "c")
    _lines(tmp_path / "img_idx/train_NUDT-SIRST.txt", "a")
    _lines(tmp_path / "img_idx/test_NUDT-SIRST.txt", "b", "c")
    assert resolve_layout(tmp_path).layout == "basicirstd"
    index = resolve_layout(tmp_path, split="NUDT-SIRST")
    assert [s.stem for s in index.test] == ["b", "c"]


def test_msda_net_folders_are_the_split(tmp_path: Path) -> None:
    for part, stems in (("train", ("1", "2")), ("test", ("3",))):
        for stem in stems:
            _image(tmp_path / f"{part}/image/{stem}.png", size=(32, 32))
            _mask(tmp_path / f"{part}/mask/{stem}.png", size=(32, 32))
    index = resolve_layout(tmp_path)
    assert index.layout == "msda-net"
    assert [s.stem for s in index.train] == ["1", "2"] and index.test[0].stem == "3"
    with pytest.raises(DataError, match="no named splits"):
        resolve_layout(tmp_path, split="50_50")


def test_unknown_or_missing_folders_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        resolve_layout(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'random'}.*no known dataset layout"):
        resolve_layout(tmp_path / "random")
    with pytest.raises(DataError, match="unknown layout 'voc'"):
        resolve_layout(tmp_path / "random", layout="voc")
