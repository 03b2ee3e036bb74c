"""onnxruntime session settings: parity with torch, BatchNorm folded at export, a portable
offline-optimised graph, and one-line errors for bad files and settings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gglnet import GGLNet, ProbabilityModel
from gglops.core.errors import UsageError
from gglops.model import onnxrt

AXES = {0: "N", 2: "H", 3: "W"}


@pytest.fixture(scope="module")
def model() -> ProbabilityModel:
    """A small net whose BatchNorms are not identities, so folding them is really tested."""
    torch.manual_seed(0)
    net = GGLNet(width_mult=0.25)
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return ProbabilityModel(net).eval()


@pytest.fixture(scope="module")
def onnx_path(model: ProbabilityModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnxrt") / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter
        torch.onnx.export(
            model,
            (torch.rand(1, 3, 32, 32),),
            str(path),
            input_names=["image"],
            output_names=["probs"],
            dynamic_axes={"image": AXES, "probs": AXES},
            **onnxrt.export_kwargs(),
        )
    return path


def _reference(model: ProbabilityModel, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).numpy()


def _assert_parity(session: ort.InferenceSession, model: ProbabilityModel) -> None:
    rng = np.random.default_rng(1)
    for shape in ((1, 3, 64, 64), (2, 3, 32, 48)):
        batch = rng.random(shape, dtype=np.float32)
        got = session.run(["probs"], {"image": batch})[0]
        expected = _reference(model, batch)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4
        assert np.array_equal(got > 0.5, expected > 0.5)


@pytest.mark.parametrize("threads", [1, 2])
def test_session_matches_torch(onnx_path: Path, model: ProbabilityModel, threads: int) -> None:
    _assert_parity(onnxrt.create_session(onnx_path, threads), model)


def test_export_folds_batchnorm_into_convs(onnx_path: Path) -> None:
    ops = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    assert "Conv" in ops
    assert "BatchNormalization" not in ops


def test_session_options_are_the_measured_ones() -> None:
    options = onnxrt.session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.intra_op_num_threads == onnxrt.default_threads()
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry(onnxrt.SPIN_KEY) == "0"
    assert onnxrt.session_options(3).intra_op_num_threads == 3
    assert onnxrt.session_options(spin=True).get_session_config_entry(onnxrt.SPIN_KEY) == "1"


def test_optimized_graph_is_portable_and_at_parity(
    onnx_path: Path, model: ProbabilityModel, tmp_path: Path
) -> None:
    dst = onnxrt.optimize_onnx(onnx_path, tmp_path / "sub" / "opt.onnx")
    nodes = onnx.load(str(dst)).graph.node
    ops = {node.op_type for node in nodes}
    assert not ops & {"ReorderInput", "ReorderOutput"}  # no CPU-specific NCHWc layout
    assert len(nodes) < len(onnx.load(str(onnx_path)).graph.node)
    assert [p.name for p in dst.parent.iterdir()] == ["opt.onnx"]  # no temp file left
    _assert_parity(onnxrt.create_session(dst, 1), model)


def test_bad_inputs_are_one_line_usage_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(UsageError, match=r"garbage\.onnx: onnxruntime cannot load it"):
        onnxrt.create_session(garbage)
    with pytest.raises(UsageError, match=r"missing\.onnx: no such ONNX file"):
        onnxrt.create_session(tmp_path / "missing.onnx")
    with pytest.raises(UsageError, match=r"garbage\.onnx: onnxruntime cannot optimise it"):
        onnxrt.optimize_onnx(garbage, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.onnx"]
    with pytest.raises(UsageError, match="threads must be >= 1, got 0"):
        onnxrt.create_session(garbage, threads=0)
