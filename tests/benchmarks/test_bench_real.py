"""bench.real_accuracy without training: the baseline's own reader (Misc_111 on the real
files), its patches, the figures, the pass rule and their registration in bench/run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench import real_accuracy as real
from gglops.stages.train.precision import cpu_has_native_bf16


def _run(trainer: str, seed: int, test_miou: float, curve: list[float]) -> real.RunResult:
    points = [
        {"epoch": i + 1, "loss": 0.5, "miou": m, "niou": m, "pd": 0.9, "fa": 2e-5}
        for i, m in enumerate(curve)
    ]
    test = {"miou": test_miou, "niou": test_miou, "pd": 0.9, "fa": 1e-5}
    best = max(range(len(curve)), key=lambda i: (curve[i], i)) + 1
    return real.RunResult(trainer, seed, points, best, test, wall_s=1.0)


def test_baseline_reads_misc_111_scaled_to_its_image(nuaa_sirst_source: Path) -> None:
    from gglops.data.dataset import load_pair
    from gglops.data.layouts import Sample

    raw = real.read_mask(nuaa_sirst_source / "masks" / "Misc_111_pixels0.png")
    assert raw.shape == (400, 592) and raw.sum() > 0  # the published quirk: 592x400
    image, mask = real.read_pair(nuaa_sirst_source, "Misc_111")
    assert image.shape == (3, 220, 325) and mask.shape == (1, 220, 325)
    assert set(np.unique(mask)) == {0.0, 1.0} and 0.0 <= image.min() <= image.max() <= 1.0
    # The platform reads the same files its own way (target-preserving scaling): the
    # images agree exactly and the scaled target overlaps.
    stem = "Misc_111"
    sample = Sample(stem, nuaa_sirst_source / "images" / f"{stem}.png",
                    nuaa_sirst_source / "masks" / f"{stem}_pixels0.png")  # fmt: skip
    theirs_image, theirs_mask = (t.numpy() for t in load_pair(sample))
    np.testing.assert_allclose(image, theirs_image)
    both, either = (mask * theirs_mask).sum(), np.maximum(mask, theirs_mask).sum()
    assert both / either > 0.5


def test_baseline_mask_reader_any_mode_and_size_rule(tmp_path: Path) -> None:
    target = np.zeros((20, 30), np.uint8)
    target[4:8, 10:14] = 1
    for mode, scale in [("L", 255), ("L", 1), ("P", 7)]:
        path = tmp_path / f"{mode}{scale}.png"
        Image.fromarray(target * scale).convert(mode).save(path)
        np.testing.assert_array_equal(real.read_mask(path), target)
    Image.fromarray(target.astype(bool)).save(tmp_path / "one.png")  # mode '1'
    np.testing.assert_array_equal(real.read_mask(tmp_path / "one.png"), target)
    Image.new("L", (30, 20)).save(tmp_path / "empty.png")
    assert real.read_mask(tmp_path / "empty.png").sum() == 0
    big = np.kron(target, np.ones((2, 2), np.uint8)) * 255  # drawn at twice the scale
    Image.fromarray(big).save(tmp_path / "big.png")
    np.testing.assert_array_equal(real.read_mask(tmp_path / "big.png", (30, 20)), target)
    with pytest.raises(ValueError, match="does not match"):
        real.read_mask(tmp_path / "big.png", (30, 30))


def test_baseline_image_reader_gives_three_channels(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    for name in ("l.png", "p.png"):
        image = real.read_image(tmp_path / name)
        assert image.shape == (3, 3, 4) and image.dtype == np.float32
        np.testing.assert_allclose(image[1], grey / 255.0, atol=1e-6)
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 2] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert real.read_image(tmp_path / "rgb.png")[:, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_patches_pad_small_images_and_flip_with_their_masks() -> None:
    image = np.zeros((3, 10, 40), np.float32)
    image[:, 0, 0] = 2.0
    mask = np.zeros((1, 10, 40), np.float32)
    mask[0, 0, 0] = 1.0
    dataset = real.PatchFlipDataset([(image, mask)], patch=16, seed=0)
    for _ in range(20):
        patch, patch_mask = dataset[0]
        assert patch.shape == (3, 16, 16) and patch_mask.shape == (1, 16, 16)
        assert (patch[0] == 2.0).nonzero().tolist() == patch_mask[0].nonzero().tolist()


def test_figures_ratio_and_pass_rule_are_registered() -> None:
    from bench.run import FIGURES, BenchFailedError

    runs = [
        _run("platform", 0, 0.60, [0.1, 0.5, 0.4]),
        _run("baseline", 0, 0.62, [0.2, 0.3, 0.5]),
        _run("platform", 1, 0.64, [0.2, 0.6, 0.6]),
        _run("baseline", 1, 0.66, [0.1, 0.6, 0.5]),
    ]
    figures = real.figures_of(runs, {"seeds": [0, 1]}, wall_s=5.0)
    headline = {name for name in figures if name != "real_detail"}
    assert headline == {n for n in FIGURES if n.startswith("real_")}
    assert figures["real_miou_platform"] == pytest.approx(0.62)  # mean over seeds
    assert figures["real_miou_baseline"] == pytest.approx(0.64)
    assert figures["real_platform_vs_baseline"]["value"] == pytest.approx(0.62 / 0.64)
    gap = figures["real_miou_platform_minus_baseline"]
    assert gap["value"] == pytest.approx(-0.02) and gap["passed"]  # exactly at the bound
    target = FIGURES["real_miou_platform_minus_baseline"].target
    assert target is not None and target.met(-0.02) and not target.met(-0.021)
    real.check_pass(figures)
    assert [r["best_epoch"] for r in figures["real_detail"]["runs"]] == [2, 3, 3, 2]

    runs[0] = _run("platform", 0, 0.50, [0.1, 0.2, 0.3])
    figures = real.figures_of(runs, {}, wall_s=5.0)
    assert not figures["real_miou_platform_minus_baseline"]["passed"]
    with pytest.raises(BenchFailedError, match="real_accuracy") as failed:
        real.check_pass(figures)
    assert failed.value.figures is figures  # bench/run.py still saves them


def test_pass_rule_and_the_zero_baseline() -> None:
    assert real.passes(0.63, 0.65) and real.passes(0.70, 0.65)
    assert not real.passes(0.62, 0.65)
    runs = [_run("platform", 0, 0.1, [0.1]), _run("baseline", 0, 0.0, [0.0])]
    figures = real.figures_of(runs, {}, wall_s=1.0)
    assert str(figures["real_platform_vs_baseline"]["value"]).startswith("not measured")
    placeholder = real.not_measured("no copy")
    assert all(v.startswith("not measured") for v in placeholder.values())


def test_recipe_and_precision_follow_the_laptop_recipe(tmp_path: Path) -> None:
    recipe = real.Recipe.load(real.RECIPE)
    assert (recipe.width_mult, recipe.patch_size, recipe.batch_size) == (0.5, 160, 8)
    assert (recipe.optimizer, recipe.lr, recipe.lr_schedule) == ("adamw", 1e-3, "cosine")
    assert (recipe.loss, recipe.epochs, recipe.precision) == ("bce_batch_soft_iou", 40, "auto")
    smoke = real.Recipe.load(real.RECIPE, real.Config(smoke=True, epochs=3).overrides)
    assert (smoke.width_mult, smoke.patch_size, smoke.epochs) == (0.25, 32, 3)
    assert recipe.threads == 2  # the recipe's train.cpus_per_worker
    native = cpu_has_native_bf16()
    assert real.concrete_precision("auto") == ("bf16" if native else "fp32")
    assert real.concrete_precision("fp32") == "fp32"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu avx512f avx512_bf16\n")
    probe = cpu_has_native_bf16.__wrapped__
    assert probe(cpuinfo) and not probe(tmp_path / "none")


def test_smoke_subset_keeps_the_layout_and_misc_111(
    nuaa_sirst_source: Path, tmp_path: Path
) -> None:
    from gglops.data.layouts import resolve_layout

    root = real.write_subset(nuaa_sirst_source, tmp_path / "subset")
    index = resolve_layout(root, "nuaa-sirst", "idx_427")
    assert (len(index.train), len(index.val), len(index.test)) == (16, 8, 8)
    assert "Misc_111" in real.read_split(root, "test")
    assert not (root / "idx_427" / "test.txt").read_text().endswith("\n")


def test_learning_curves_plot(tmp_path: Path) -> None:
    runs: list[Any] = [_run("platform", 0, 0.5, [0.1, 0.4]), _run("baseline", 0, 0.4, [0.2, 0.3])]
    path = real.plot_curves(runs, tmp_path / "curves.png", "title")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100


def test_baseline_runs_are_reused_only_for_the_same_recipe(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict, replace

    recipe = real.Recipe.load(real.RECIPE, ["train.epochs=2"])
    earlier = tmp_path / "earlier" / "baseline-s3"
    earlier.mkdir(parents=True)
    (earlier / "result.json").write_text(json.dumps(asdict(_run("baseline", 3, 0.4, [0.2, 0.3]))))
    (earlier / "recipe.json").write_text(json.dumps(asdict(recipe)))
    (tmp_path / "new").mkdir()
    reused = real.reuse_baseline(earlier.parent, recipe, 3, tmp_path / "new")
    assert (reused.trainer, reused.seed, reused.test["miou"]) == ("baseline", 3, 0.4)
    assert (tmp_path / "new" / "baseline-s3" / "result.json").is_file()  # kept with the new run
    with pytest.raises(ValueError, match="another recipe"):
        real.reuse_baseline(earlier.parent, replace(recipe, lr=0.5), 3, tmp_path / "other")
    with pytest.raises(ValueError, match="baseline-s4"):
        real.reuse_baseline(earlier.parent, recipe, 4, tmp_path / "other")
    # A run from before recipe.json: its number of epochs and its precision are checked.
    (earlier / "recipe.json").unlink()
    old = _run("baseline", 3, 0.4, [0.2, 0.3])
    old = replace(old, extra={"precision": real.concrete_precision(recipe.precision)})
    (earlier / "result.json").write_text(json.dumps(asdict(old)))
    assert real.reuse_baseline(earlier.parent, recipe, 3, tmp_path / "again").seed == 3
    other_precision = "bf16" if real.concrete_precision(recipe.precision) == "fp32" else "fp32"
    for other in (replace(recipe, epochs=12), replace(recipe, precision=other_precision)):
        with pytest.raises(ValueError, match="another recipe"):
            real.reuse_baseline(earlier.parent, other, 3, tmp_path / "other")
