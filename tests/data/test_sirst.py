"""NUAA-SIRST as published: its quirks, its splits, patch training and the custom layout.

Tests on the real files use the local copy (`nuaa_sirst_source`); the rest build small
cases of their own.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gglops.core.errors import DataError
from gglops.core.params import CustomLayout, DataParams, Params
from gglops.data.dataset import TrainDataset, load_pair
from gglops.data.io import fit_mask_to_image, mask_size_rule
from gglops.data.layouts import Sample, resolve_layout
from gglops.data.manifest import build_manifest
from gglops.data.selection import held_out, selection_splits
from gglops.data.transforms import target_crop
from gglops.data.validate import validate_dataset


def test_published_sirst_validates_with_one_rule_applied(
    nuaa_sirst_source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """idx_427 reads as train 256 / val 85 / test 86; Misc_111's mask, drawn on a 592x400
    copy of its 325x220 image, is scaled to it with a warning naming the file."""
    with caplog.at_level(logging.WARNING, logger="gglops"):
        report = validate_dataset(nuaa_sirst_source, "auto", "idx_427")
    assert report.ok, [p.line() for p in report.problems]
    assert {name: s.images for name, s in report.stats.items()} == {
        "train": 256,
        "val": 85,
        "test": 86,
    }
    assert all(s.images_with_targets == s.images for s in report.stats.values())
    warned = [r.getMessage() for r in caplog.records if "Misc_111_pixels0.png" in r.getMessage()]
    assert len(warned) <= 1  # once per process (an earlier test may have read it already)
    splits = resolve_layout(nuaa_sirst_source).splits.values()
    sample = next(s for split in splits for s in split if s.stem == "Misc_111")
    image, mask = load_pair(sample)
    assert image.shape[-2:] == mask.shape[-2:] == (220, 325)
    ys, xs = np.nonzero(mask[0].numpy())
    # The box annotation (masks/Misc_111.xml, 592x400 frame): x 261-274, y 206-216.
    assert xs.min() >= 261 * 325 / 592 - 1 and xs.max() <= 274 * 325 / 592 + 1
    assert ys.min() >= 206 * 220 / 400 - 1 and ys.max() <= 216 * 220 / 400 + 1


def test_the_split_protocols_on_sirst(nuaa_sirst_source: Path) -> None:
    index = resolve_layout(nuaa_sirst_source, "nuaa-sirst", "idx_427")
    val = selection_splits(index, "val")
    assert (len(val.fit), len(val.select), len(val.test)) == (256, 85, 86)
    literature = selection_splits(index, "test")
    assert (len(literature.fit), len(literature.select)) == (341, 86)
    assert literature.select == literature.test
    assert {s.stem for s in val.fit}.isdisjoint({s.stem for s in val.select})


def _samples(n: int) -> list[Sample]:
    return [Sample(f"s{i:03d}", Path(f"i{i}.png"), Path(f"m{i}.png")) for i in range(n)]


def test_holdout_is_fixed_seeded_and_disjoint() -> None:
    train = _samples(40)
    kept, out = held_out(train, 0.1, seed=0)
    assert len(out) == 4 and len(kept) == 36
    assert {s.stem for s in kept}.isdisjoint({s.stem for s in out})
    assert held_out(list(reversed(train)), 0.1, seed=0)[1] == out  # order-independent
    assert held_out(train, 0.1, seed=1)[1] != out
    with pytest.raises(DataError, match="too few to hold out"):
        held_out(train[:1], 0.1, seed=0)


def test_mask_size_rule_scales_same_aspect_and_refuses_another(tmp_path: Path) -> None:
    assert mask_size_rule((400, 592), (220, 325)) is None
    assert "another aspect ratio" in (mask_size_rule((400, 400), (220, 325)) or "")
    mask = np.zeros((400, 592), np.uint8)
    mask[210, 300] = 1  # a 1-px target survives the shrink
    fitted = fit_mask_to_image(mask, (220, 325), tmp_path / "m.png")
    assert fitted.shape == (220, 325) and fitted.sum() >= 1
    with pytest.raises(DataError, match=r"m\.png: mask is 400x400"):
        fit_mask_to_image(np.zeros((400, 400), np.uint8), (220, 325), tmp_path / "m.png")


@pytest.mark.parametrize("shape", [(40, 50), (100, 120)])
def test_target_crop_holds_a_target_when_forced_and_pads_small_images(
    shape: tuple[int, int],
) -> None:
    image = torch.rand(3, *shape)
    mask = torch.zeros(1, *shape)
    mask[0, shape[0] - 3, shape[1] - 2] = 1  # a 1-px target in a corner
    for seed in range(50):
        rng = np.random.default_rng(seed)
        crop_img, crop_mask = target_crop(image, mask, 64, rng, target_p=1.0)
        assert crop_img.shape == (3, 64, 64) and crop_mask.shape == (1, 64, 64)
        assert crop_mask.sum() == 1
    hits = sum(
        float(target_crop(image, mask, 32, np.random.default_rng(s), 0.0)[1].sum())
        for s in range(200)
    )
    assert hits < 100  # unforced crops find the corner target far less often


def test_crop_training_samples_are_patches_and_seeded(nuaa_sirst_source: Path) -> None:
    index = resolve_layout(nuaa_sirst_source)
    dataset = TrainDataset(index.train[:6], 64, fit="crop", augment_p=0, seed=3, target_p=1.0)
    image, mask = dataset[0]
    assert image.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
    assert all(dataset[i][1].sum() > 0 for i in range(6))  # forced onto a target
    again = TrainDataset(index.train[:6], 64, fit="crop", augment_p=0, seed=3, target_p=1.0)
    assert torch.equal(again[0][0], image)


def test_crop_needs_a_patch_size() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        DataParams(fit="crop")
    assert DataParams(fit="crop", patch_size=96).train_size == 96


def _rearranged(source: Path, root: Path) -> CustomLayout:
    """SIRST's files in a layout no loader knows: mixed images as .png, masks elsewhere,
    split files named freely."""
    (root / "mixed").mkdir(parents=True)
    (root / "annotations" / "masks").mkdir(parents=True)
    (root / "splits").mkdir()
    index = resolve_layout(source, "nuaa-sirst", "idx_427")
    picked = {"train": index.train[:6], "val": index.val[:3], "test": index.test[:3]}
    for name, samples in picked.items():
        for s in samples:
            shutil.copy(s.image, root / "mixed" / s.image.name)
            shutil.copy(s.mask, root / "annotations" / "masks" / s.mask.name)
        (root / "splits" / f"{name}.txt").write_text("\n".join(s.stem for s in samples))
    return CustomLayout(
        images="mixed",
        masks="annotations/masks",
        mask_suffix="_pixels0",
        train="splits/train.txt",
        val="splits/val.txt",
        test="splits/test.txt",
    )


def test_custom_layout_reads_rearranged_sirst(nuaa_sirst_source: Path, tmp_path: Path) -> None:
    custom = _rearranged(nuaa_sirst_source, tmp_path)
    index = resolve_layout(tmp_path, "custom", custom=custom)
    assert (len(index.train), len(index.val), len(index.test)) == (6, 3, 3)
    assert validate_dataset(tmp_path, "custom", custom=custom).ok
    no_val = custom.model_copy(update={"val": None})
    splits = selection_splits(resolve_layout(tmp_path, "custom", custom=no_val), "val")
    assert splits.protocol == "holdout" and len(splits.select) == 1
    with pytest.raises(DataError, match=r"data\.custom\.images"):
        resolve_layout(tmp_path, "custom", custom=custom.model_copy(update={"images": "nope"}))
    with pytest.raises(ValueError, match=r"data\.custom"):
        DataParams(layout="custom")
    Image.new("L", (8, 8)).save(tmp_path / "mixed" / "extra.png")  # unlisted: not read
    assert len(resolve_layout(tmp_path, "custom", custom=custom).train) == 6


def test_run_lineage_hashes_a_custom_layout(nuaa_sirst_source: Path, tmp_path: Path) -> None:
    """train and tune record the data hash of the layout params.yaml describes."""
    from gglops.adapters.tracking import lineage

    custom = _rearranged(nuaa_sirst_source, tmp_path)
    params = Params().with_overrides({"data.layout": "custom", "data.custom": custom.model_dump()})
    found = lineage(params, tmp_path, source="gglops train")
    assert found.data_hash == build_manifest(tmp_path, "custom", None, custom).data_hash
