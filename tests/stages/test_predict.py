"""`gglops predict`: same-size masks and overlays for any image size, from ONNX or a bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gglnet import GGLNet
from gglops.model.bundle import save_bundle
from gglops.model.export import export_onnx
from gglops.model.inference import pad_to_multiple
from gglops.stages.predict import BOX_COLOUR, overlay, target_boxes


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


# --- a valid ONNX file of another model --------------------------------------------------------


NCHW = ["N", 3, "H", "W"]


def _onnx_model(path: Path, inputs: dict, outputs: dict, nodes: list, inits: list) -> Path:
    """A tiny valid graph; `inputs`/`outputs` map names to float32 shapes (str: dynamic)."""
    from onnx import TensorProto, checker, helper, save

    def values(shapes: dict) -> list:
        return [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]

    graph = helper.make_graph(nodes, "foreign", values(inputs), values(outputs), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    checker.check_model(model, full_check=True)
    save(model, str(path))
    return path


def _graph(kind: str) -> tuple[dict, dict, list, list]:
    """(inputs, outputs, nodes, initializers) of each foreign model; "ours" has our interface."""
    from onnx import helper, numpy_helper

    node = helper.make_node
    probs = {"probs": ["N", 1, "H", "W"]}

    def grey(src: str) -> list:  # mean over the channels, then a sigmoid: (N, 1, H, W)
        return [
            node("ReduceMean", [src], ["g"], axes=[1], keepdims=1),
            node("Sigmoid", ["g"], ["probs"]),
        ]

    unsqueeze = [node("Unsqueeze", ["image", "axis"], ["g"]), node("Sigmoid", ["g"], ["probs"])]
    axis = numpy_helper.from_array(np.array([1], np.int64), "axis")
    graphs = {
        "ours": ({"image": NCHW}, probs, grey("image"), []),
        "input named x": ({"x": NCHW}, probs, grey("x"), []),
        "rank-3 input": ({"image": ["N", "H", "W"]}, probs, unsqueeze, [axis]),
        "1-channel input": ({"image": ["N", 1, "H", "W"]}, probs, grey("image"), []),
        "two outputs": (
            {"image": NCHW},
            {**probs, "aux": NCHW},
            [*grey("image"), node("Identity", ["image"], ["aux"])],
            [],
        ),
    }
    return graphs[kind]


def _frame(path: Path) -> Path:
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(path)
    return path


def test_onnx_from_another_tool_with_our_interface_is_accepted(tmp_path, gglops_cli) -> None:
    model = _onnx_model(tmp_path / "grey.onnx", *_graph("ours"))
    image = _frame(tmp_path / "frame.png")
    code, output = gglops_cli(["predict", str(model), str(image), "--out", str(tmp_path / "o")])
    assert code == 0, output
    assert (tmp_path / "o/frame_mask.png").is_file()


FOREIGN = {  # what the one line must say
    "input named x": "inputs are 'x', not 'image'",
    "rank-3 input": "input 'image' has rank 3",
    "1-channel input": "input 'image' has 1 channel(s), not 3",
    "two outputs": "2 outputs ('probs', 'aux'), not 1 ('probs')",
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_onnx_of_another_model_is_one_line_exit_2(
    synth_data, kind, tmp_path, gglops_cli, reliability
) -> None:
    import onnxruntime as ort

    model = _onnx_model(tmp_path / "foreign.onnx", *_graph(kind))
    ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])  # a valid ONNX file
    image = _frame(tmp_path / "frame.png")
    out = tmp_path / "out"
    params = str(Path(__file__).resolve().parents[2] / "params.yaml")
    commands = {
        "predict": ["predict", str(model), str(image), "--out", str(out)],
        "evaluate": ["evaluate", str(model), str(synth_data), "--params", params,
                     "--out", str(tmp_path / "metrics.json")],
    }  # fmt: skip
    lines = {}
    for name, args in commands.items():
        code, output = gglops_cli(args)
        assert code == 2 and "Traceback" not in output, (name, output)
        (lines[name],) = output.strip().splitlines()
        assert f"{model}: ONNX interface mismatch: {FOREIGN[kind]}" in lines[name], lines[name]
    assert not out.exists() and not (tmp_path / "metrics.json").exists()
    shown = lines["predict"].replace(str(tmp_path), "TMP")
    reliability(f"predict/evaluate on the ONNX file of another model: {kind}",
                f"both exit 2, nothing written; {shown}")  # fmt: skip


# --- names of the results -----------------------------------------------------------------------


def test_images_sharing_a_stem_keep_every_result(models, tmp_path, gglops_cli, reliability):
    """a/img.png b/img.png and x.png x.jpg: numbered in the order given, none overwritten."""
    rng = np.random.default_rng(1)
    images = [
        tmp_path / "a/img.png",
        tmp_path / "b/img.png",
        tmp_path / "x.png",
        tmp_path / "x.jpg",
    ]
    for k, path in enumerate(images):  # a size of its own: each result is traced to its image
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40 + k, 56), dtype=np.uint8)).save(path)
    out = tmp_path / "out"
    code, output = gglops_cli(
        ["predict", str(models["onnx"]), *map(str, images), "--out", str(out)]
    )
    assert code == 0, output
    names = ["img-1", "img-2", "x-1", "x-2"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}_{kind}.png" for n in names for kind in ("mask", "overlay")
    )
    for k, (path, name) in enumerate(zip(images, names, strict=True)):
        assert f"{path}: " in output and f"{out / name}_mask.png" in output
        assert Image.open(out / f"{name}_mask.png").size == (56, 40 + k)
        assert Image.open(out / f"{name}_overlay.png").size == (56, 40 + k)
    assert "note: 4 images share a file stem" in output
    reliability(
        "predict on images that share a stem (a/img.png b/img.png x.png x.jpg)",
        f"exit {code}; 4 masks + 4 overlays, numbered in the order given: {', '.join(names)}",
    )


def test_out_naming_a_file_is_one_line_exit_2(models, tmp_path, gglops_cli, reliability):
    image = _frame(tmp_path / "frame.png")
    target = tmp_path / "results.png"
    target.write_bytes(b"keep me")
    lines = {}
    for out in (target, target / "sub"):
        code, output = gglops_cli(["predict", str(models["onnx"]), str(image), "--out", str(out)])
        assert code == 2 and "Traceback" not in output, output
        (lines[out],) = output.strip().splitlines()
        assert lines[out].startswith(f"error: {out}: --out must be a folder, not a file"), output
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png", "results.png"]
    reliability(
        "predict --out naming an existing file",
        f"exit 2, nothing written; {lines[target].replace(str(tmp_path), 'TMP')}",
    )


def test_a_result_never_overwrites_an_input(models, tmp_path, gglops_cli) -> None:
    images = [_frame(tmp_path / "a.png"), _frame(tmp_path / "a_mask.png")]
    before = images[1].read_bytes()
    code, output = gglops_cli(
        ["predict", str(models["onnx"]), *map(str, images), "--out", str(tmp_path)]
    )
    assert code == 2 and f"{tmp_path / 'a_mask.png'}: a result would overwrite" in output, output
    assert images[1].read_bytes() == before


def test_result_names_are_distinct_and_deterministic() -> None:
    from gglops.stages.predict import result_names

    paths = [Path(p) for p in ("a/img.png", "img-1.png", "b/IMG.jpg", "c/img.bmp", "solo.png")]
    assert result_names(paths) == ["img-2", "img-1", "IMG-3", "img-4", "solo"]
    assert result_names(paths) == result_names(list(paths))
