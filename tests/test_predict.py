"""`gglops predict`: same-size masks and overlays for any image size, from ONNX or a bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gglnet import GGLNet
from gglops.export import export_onnx
from gglops.inference import pad_to_multiple
from gglops.modelio import save_bundle
from gglops.predict import BOX_COLOUR, overlay, target_boxes


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("predict-model")
    torch.manual_seed(0)
    net = GGLNet(width_mult=0.25).eval()
    net.head[-1].bias.data.fill_(0.3)  # bias up: plenty of detections to draw
    return {
        "bundle": save_bundle(net, tmp / "bundle", width_mult=0.25),
        "onnx": export_onnx(net, tmp / "model.onnx"),
    }


@pytest.mark.parametrize("kind", ["onnx", "bundle"])
def test_odd_size_image_gives_same_size_mask_and_overlay(
    models, kind, tmp_path, gglops_cli, reliability
):
    rng = np.random.default_rng(0)
    image = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 255, (213, 300), dtype=np.uint8)).save(image)
    code, out = gglops_cli(["predict", str(models[kind]), str(image), "--out", str(tmp_path)])
    assert code == 0, out
    mask = np.asarray(Image.open(tmp_path / "frame_mask.png"))
    over = Image.open(tmp_path / "frame_overlay.png")
    assert mask.shape == (213, 300) and set(np.unique(mask)) <= {0, 255}
    assert over.size == (300, 213) and over.mode == "RGB"
    padded, _ = pad_to_multiple(np.zeros((3, 213, 300), np.float32))
    observed = f"exit {code}; padded to {padded.shape[1]}x{padded.shape[2]}, cropped back"
    reliability(
        f"predict on a 213x300 image (not /16), {kind}",
        f"{observed}: mask {mask.shape[0]}x{mask.shape[1]}, overlay {over.height}x{over.width}",
    )


def test_overlay_boxes_each_target() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:13, 20:24] = True
    mask[30, 5] = True
    assert target_boxes(mask) == [(20, 10, 23, 12), (5, 30, 5, 30)]
    image = np.zeros((3, 40, 50), dtype=np.float32)
    drawn = np.asarray(overlay(image, mask))
    red = np.all(drawn == BOX_COLOUR, axis=-1)
    assert red[8, 18:26].all() and red[14, 18:26].all()  # top and bottom edges, 2 px margin
    assert not red[11, 21]  # the target itself is not painted over


def test_unreadable_image_is_exit_2_naming_it(models, tmp_path, gglops_cli, reliability) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    code, out = gglops_cli(["predict", str(models["onnx"]), str(bad), "--out", str(tmp_path)])
    assert code == 2 and "broken.png" in out
    assert not list(tmp_path.glob("*_mask.png"))
    line = out.strip().replace(str(tmp_path), "TMP")
    reliability("predict on a file that is not an image", f"exit {code}; no mask written; {line}")
