"""Synthetic generator (determinism, targets, splits) and the data manifest built on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from gglops.cli import app
from gglops.core.errors import DataError
from gglops.data.io import read_image, read_mask
from gglops.data.manifest import build_manifest
from gglops.data.synth import synthesize


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _stems(path: Path) -> list[str]:
    return path.read_text().split()


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    first = _hashes(synthesize(tmp_path / "a", n=12, size=48, seed=5))
    again = _hashes(synthesize(tmp_path / "b", n=12, size=48, seed=5))
    other = _hashes(synthesize(tmp_path / "c", n=12, size=48, seed=6))
    assert first == again
    assert len(first) == 12 * 2 + 5  # images, masks, idx_427 (2) + idx_320 (3) lists
    assert first.keys() == other.keys() and first != other


def test_splits_are_disjoint_and_sized(synth_data: Path) -> None:
    trainval, test = (_stems(synth_data / f"idx_427/{f}.txt") for f in ("trainval", "test"))
    assert (len(trainval), len(test)) == (19, 5) and not set(trainval) & set(test)
    three = [_stems(synth_data / f"idx_320/{f}.txt") for f in ("train", "val", "test")]
    assert [len(s) for s in three] == [12, 5, 7]
    assert sorted(s for split in three for s in split) == sorted(trainval + test)


def test_targets_span_point_to_extended_and_stand_out(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "d", n=60, size=64, seed=11)
    areas, contrasts, per_image = [], [], []
    for mask_path in sorted((root / "masks").glob("*.png")):
        mask = read_mask(mask_path).astype(bool)
        image = read_image(root / "images" / mask_path.name.replace("_pixels0", ""))[0]
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        per_image.append(count)
        for k in range(1, count + 1):
            blob = labels == k
            ring = ndimage.binary_dilation(blob, iterations=3) & ~mask
            areas.append(int(blob.sum()))
            contrasts.append(image[blob].max() - image[ring].mean())
    assert min(per_image) >= 1 and max(per_image) == 3
    assert min(areas) <= 2 and max(areas) >= 40  # point-like … extended
    assert np.percentile(areas, 90) <= 80
    assert np.mean(np.array(contrasts) > 0.05) >= 0.9  # brighter than the local background
    image = np.asarray(Image.open(root / "images/Misc_1.png"))
    assert image.dtype == np.uint8 and image.shape == (64, 64) and image.std() > 0.01 * 255


def test_refuses_to_overwrite_a_dataset(synth_data: Path) -> None:
    before = _hashes(synth_data)
    with pytest.raises(DataError, match=str(synth_data)):
        synthesize(synth_data, n=4, size=32, seed=0)
    assert _hashes(synth_data) == before


def test_cli_synth_and_manifest(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-set"
    result = runner.invoke(
        app, ["data", "synth", str(out), "--n", "6", "--size", "32", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    manifest_file = tmp_path / "m/manifest.json"
    result = runner.invoke(app, ["data", "manifest", str(out), "--out", str(manifest_file)])
    assert result.exit_code == 0, result.output
    stored = json.loads(manifest_file.read_text())
    assert stored == build_manifest(out).model_dump(mode="json")
    assert stored["counts"] == {"train": 5, "test": 1} and stored["split"] == "idx_427"


def test_manifest_is_stable_and_detects_changes(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", n=8, size=32, seed=1)
    b = synthesize(tmp_path / "elsewhere/b", n=8, size=32, seed=1)
    base = build_manifest(a)
    assert base == build_manifest(b)  # identity is content, not location
    assert "images/Misc_1.png" in base.files and "idx_427/test.txt" in base.files
    assert build_manifest(a, "nuaa-sirst", "idx_320").data_hash != base.data_hash

    pixels = np.asarray(Image.open(a / "images/Misc_1.png")).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(a / "images/Misc_1.png")
    changed = build_manifest(a)
    assert changed.data_hash != base.data_hash
    assert {k for k in base.files if base.files[k] != changed.files[k]} == {"images/Misc_1.png"}

    trainval, test = _stems(b / "idx_427/trainval.txt"), _stems(b / "idx_427/test.txt")
    (b / "idx_427/trainval.txt").write_text("\n".join(trainval[1:]) + "\n")
    (b / "idx_427/test.txt").write_text("\n".join([*test, trainval[0]]) + "\n")
    moved = build_manifest(b)
    assert moved.splits["test"].checksum != base.splits["test"].checksum
    assert moved.data_hash != base.data_hash


@pytest.mark.parametrize("seed", range(6))
def test_small_images_hold_every_target(tmp_path: Path, seed: int) -> None:
    # At 32 px the largest (80 px) targets used to leave no room for a centre.
    root = synthesize(tmp_path / "d", n=24, size=32, seed=seed)
    masks = sorted((root / "masks").glob("*.png"))
    assert len(masks) == 24
    assert all(np.asarray(Image.open(m)).any() for m in masks)
