"""The five real folder conventions: auto-detection, splits, stems, odd sizes and modes."""

from __future__ import annotations

import codecs
import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gglnet import GGLNet
from gglops.core.errors import DataError
from gglops.data.io import read_image, read_mask
from gglops.data.layouts import LAYOUTS, read_split_file, resolve_layout
from gglops.data.manifest import build_manifest
from gglops.data.synth import synthesize
from gglops.model.bundle import save_bundle


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


# --- hostile split files, through the CLI ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_split_files_with_bom_and_crlf_read_like_plain_ones(
    synth_data: Path, tmp_path: Path, gglops_cli, reliability
) -> None:
    """Windows editors write a UTF-8 BOM and CRLF: the BOM is not part of the first stem."""
    root = Path(shutil.copytree(synth_data, tmp_path / "data"))
    for split in (root / "idx_427/trainval.txt", root / "idx_427/test.txt"):
        split.write_bytes(codecs.BOM_UTF8 + split.read_text().replace("\n", "\r\n").encode())
    code, output = gglops_cli(["data", "validate", str(root)])
    assert code == 0 and "warning" not in output, output
    out = tmp_path / "manifest.json"
    code, output = gglops_cli(["data", "manifest", str(root), "--out", str(out)])
    assert code == 0, output
    ours, plain = json.loads(out.read_text()), build_manifest(synth_data).model_dump(mode="json")
    assert ours["splits"] == plain["splits"]  # same stems, hence same split checksums
    images = {k: v for k, v in plain["files"].items() if not k.endswith(".txt")}
    assert {k: v for k, v in ours["files"].items() if not k.endswith(".txt")} == images
    first = resolve_layout(root).train[0].stem
    assert first == resolve_layout(synth_data).train[0].stem and not first.startswith("\ufeff")
    counts = f"{ours['counts']['train']}/{ours['counts']['test']}"
    reliability(
        "split files with a UTF-8 BOM and CRLF line ends (as Windows editors write them)",
        f"validate exit 0, manifest exit 0: {counts} train/test stems, first {first!r}; split "
        "checksums and image hashes equal to those of the plain files",
    )


_WATCHED: dict[str, list[str]] = {}  # folder → files opened under it while a test watches


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        for folder, seen in _WATCHED.items():
            if path.startswith(folder):
                seen.append(path)


sys.addaudithook(_audit)  # cannot be removed; records nothing unless a test watches a folder


@pytest.fixture
def watch_opens() -> Iterator[Callable[[Path], list[str]]]:
    """`watch_opens(folder)`: the list of files this process opens under `folder` from now."""
    yield lambda folder: _WATCHED.setdefault(str(folder), [])
    _WATCHED.clear()


ESCAPES = {
    "relative (..)": lambda outside: "../../elsewhere/x",
    "absolute": lambda outside: str(outside / "x"),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_split_entry_outside_the_root_is_refused_by_every_command(
    synth_data: Path, tmp_path: Path, case: str, gglops_cli, watch_opens, reliability
) -> None:
    root = Path(shutil.copytree(synth_data, tmp_path / "data"))
    outside = tmp_path / "elsewhere"  # a real pair there: only the entry stops it being read
    outside.mkdir()
    stem = resolve_layout(root).train[0].stem
    shutil.copy(root / f"images/{stem}.png", outside / "x.png")
    shutil.copy(root / f"masks/{stem}_pixels0.png", outside / "x_pixels0.png")
    entry = ESCAPES[case](outside)
    split = root / "idx_427/trainval.txt"
    split.write_text(split.read_text() + f"{entry}\n")
    line = len(split.read_text().splitlines())
    expected = f"{split}: line {line}: split entry {entry!r}"
    bundle = save_bundle(GGLNet(width_mult=0.25), tmp_path / "bundle", width_mult=0.25)
    params = str(ROOT / "params.yaml")
    commands = {
        "validate": ["data", "validate", str(root)],
        "manifest": ["data", "manifest", str(root), "--out", str(tmp_path / "m.json")],
        "train": ["train", "--params", params, "--data", str(root), "--out", str(tmp_path / "t")],
        "evaluate": ["evaluate", str(bundle), str(root), "--params", params,
                     "--out", str(tmp_path / "metrics.json")],
    }  # fmt: skip
    opened = watch_opens(outside)
    seen: dict[str, str] = {}
    for name, args in commands.items():
        code, output = gglops_cli(args)
        lines = output.strip().splitlines()
        assert code == 2 and "Traceback" not in output, (name, output)
        assert expected in lines[0] and len(lines) == (2 if name == "validate" else 1), output
        seen[name] = lines[0]
    assert opened == []  # not one file under elsewhere/ was opened
    assert not any((tmp_path / f).exists() for f in ("m.json", "t", "metrics.json"))
    shown = seen["manifest"].replace(str(tmp_path), "TMP")
    reliability(
        f"split entry outside the data root: {case}",
        f"validate, manifest, train, evaluate: exit 2, nothing opened outside; {shown}",
    )


def test_split_entry_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    split = tmp_path / "test.txt"
    split.write_bytes(b"a\nb\x00c\n")
    with pytest.raises(DataError, match=r"test.txt: line 2: split entry 'b\\x00c' holds a NUL"):
        read_split_file(split)


def test_tiled_prediction_covers_a_large_image_and_matches_where_windows_agree() -> None:
    """Above the tile size an image is predicted in overlapping windows whose union is the
    frame; a pixel-wise model gives the same probabilities tiled or whole."""
    import numpy as np

    from gglops.model.inference import predict_probs, tile_starts

    assert tile_starts(100, 128) == [0]
    starts = tile_starts(2500, 1024)
    assert starts[0] == 0 and starts[-1] == 2500 - 1024
    assert all(b - a <= 1024 - 256 for a, b in itertools.pairwise(starts))
    seen: list[tuple[int, ...]] = []

    def pixelwise(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        assert batch.shape[-1] % 32 == 0 and batch.shape[-2] % 32 == 0
        return batch[:, :1] * 0.5

    image = np.random.default_rng(0).random((3, 300, 170), dtype=np.float32)
    whole = predict_probs(pixelwise, image)
    tiled = predict_probs(pixelwise, image, tile=128)
    assert whole.shape == tiled.shape == (300, 170)
    assert len(seen) == 1 + len(tile_starts(300, 128)) * len(tile_starts(170, 128))
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
