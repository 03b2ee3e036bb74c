"""ONNX export of GGL-Net with probabilities out, checked by onnx.checker and parity with torch.

The TorchScript-based exporter (`dynamo=False`, opset 17) is the default and the dynamo one
(opset 18) stays selectable; the released file is the plain ONNX graph, optimised by
onnxruntime when it loads it. Why, measured: docs/onnx.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from gglops.core.errors import CheckError, UsageError, first_line
from gglops.core.files import atomic_path, sha256_file
from gglops.core.metrics import THRESHOLD
from gglops.model.inference import ProbFn, predict_probs

Exporter = Literal["legacy", "dynamo"]
INPUT_NAME, OUTPUT_NAME = "image", "probs"
OPSETS: dict[Exporter, int] = {"legacy": 17, "dynamo": 18}
PARITY_MAX_ABS = 1e-4
SYNTH_PARITY_SHAPES = ((64, 64), (48, 80), (75, 53))  # no data: a few sizes, some not /16


class ParityReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_inputs: int
    source: str  # "test split of <root>" or "synthetic inputs"
    max_abs_diff: float
    mask_mismatch_pixels: int

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= PARITY_MAX_ABS and self.mask_mismatch_pixels == 0


class OnnxArtifact(BaseModel):
    """What was exported: the file, its identity and its interface."""

    model_config = ConfigDict(frozen=True)

    path: Path
    sha256: str
    size: int
    opset: int
    exporter: Exporter
    inputs: dict[str, list[str | int]]
    outputs: dict[str, list[str | int]]
    parity: ParityReport


def export_onnx(model: Any, path: Path, exporter: Exporter = "legacy") -> Path:
    """Write `ProbabilityModel(model)` as ONNX to `path` (temp + rename) and check it."""
    import onnx
    import torch

    from gglnet import ProbabilityModel

    wrapped = ProbabilityModel(model).eval()
    example = torch.rand(1, 3, 64, 64)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporters' deprecation/tracer chatter
        torch.onnx.export(
            wrapped,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSETS[exporter],
            **_exporter_options(exporter),
        )
        onnx.checker.check_model(str(tmp), full_check=True)
    return path


def _exporter_options(exporter: Exporter) -> dict[str, Any]:
    if exporter == "dynamo":
        import torch

        dims = {0: torch.export.Dim("N"), 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
        return {"dynamo": True, "dynamic_shapes": (dims,), "verbose": False}
    axes = {0: "N", 2: "H", 3: "W"}
    return {"dynamo": False, "dynamic_axes": {INPUT_NAME: axes, OUTPUT_NAME: axes}}


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session with the settings measured fastest (`gglops.model.onnxrt`), on a
    file with the interface we export (another model's ONNX is a UsageError naming it)."""
    from gglops.model.onnxrt import Interface, TensorSpec, create_session

    interface = Interface((TensorSpec(INPUT_NAME, 3),), (TensorSpec(OUTPUT_NAME, 1),))
    return create_session(path, threads, interface=interface)


def onnx_prob_fn(path: Path, threads: int | None = None) -> ProbFn:
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    session = onnx_session(path, threads)

    def fn(batch: np.ndarray) -> np.ndarray:
        try:
            (probs,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch.astype(np.float32)})
        except InvalidArgument as exc:  # e.g. a graph exported with a fixed H and W
            reason = first_line(exc)
            raise UsageError(f"{path}: refuses a {batch.shape} input ({reason})") from None
        # The declared shapes may be unknown ([]): what came back is checked too.
        n, _, h, w = batch.shape
        if probs.shape != (n, 1, h, w):
            raise UsageError(
                f"{path}: output {OUTPUT_NAME!r} is {probs.shape} for a {batch.shape} input, "
                f"expected {(n, 1, h, w)}"
            )
        return probs

    return fn


def io_shapes(path: Path) -> tuple[dict[str, list[str | int]], dict[str, list[str | int]]]:
    """Input and output names with their shapes (symbolic dims as names)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def shape(value: Any) -> list[str | int]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims]

    return {v.name: shape(v) for v in graph.input}, {v.name: shape(v) for v in graph.output}


def synthetic_inputs(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((3, h, w), dtype=np.float32) for h, w in SYNTH_PARITY_SHAPES]


def check_parity(
    torch_fn: ProbFn, onnx_fn: ProbFn, images: Iterable[np.ndarray], source: str
) -> ParityReport:
    """Max abs probability difference and differing mask pixels over `images`."""
    worst, mismatched, count = 0.0, 0, 0
    for image in images:
        ref, got = predict_probs(torch_fn, image), predict_probs(onnx_fn, image)
        worst = max(worst, float(np.abs(ref - got).max()))
        mismatched += int(((ref > THRESHOLD) != (got > THRESHOLD)).sum())
        count += 1
    if count == 0:
        raise CheckError(f"ONNX parity: {source} holds no images to check on")
    return ParityReport(
        n_inputs=count, source=source, max_abs_diff=worst, mask_mismatch_pixels=mismatched
    )


def build_artifact(
    model: Any,
    dst: Path,
    images: Iterable[np.ndarray] | None = None,
    source: str = "synthetic inputs",
    exporter: Exporter = "legacy",
) -> OnnxArtifact:
    """Export, check and parity-test; raises CheckError when parity fails."""
    from gglops.model.inference import torch_prob_fn

    export_onnx(model, dst, exporter)
    inputs = synthetic_inputs() if images is None else images
    parity = check_parity(torch_prob_fn(model), onnx_prob_fn(dst), inputs, source)
    if not parity.passed:
        raise CheckError(
            f"ONNX parity failed on {parity.source}: max abs diff {parity.max_abs_diff:.2e} "
            f"(limit {PARITY_MAX_ABS:g}), {parity.mask_mismatch_pixels} mask pixels differ"
        )
    ins, outs = io_shapes(dst)
    return OnnxArtifact(
        path=dst,
        sha256=sha256_file(dst),
        size=dst.stat().st_size,
        opset=OPSETS[exporter],
        exporter=exporter,
        inputs=ins,
        outputs=outs,
        parity=parity,
    )
