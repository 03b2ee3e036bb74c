"""ONNX Runtime vs torch eager latency of the full default GGL-Net on CPU, measured together.

Batch 1, `threads` intra-op threads for both, median of `repeats` runs after `warmup`. In the
same run: the model's forward FLOPs (torch's FlopCounterMode), the machine's fp32 matmul peak
(a large torch matmul on the same threads), so the fraction of peak is a same-run ratio; the
parity (max abs difference) of every ONNX variant; and the variants themselves at the first
size: graph optimisation levels, the saved ORT-optimised graph, and the dynamo exporter.

    python -m bench.onnx_latency            # prints the dict as JSON
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gglnet import GGLNet

MATMUL_N = 2048
LEVELS = ("basic", "extended", "all")


def _median_s(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(threads: int, repeats: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.rand(MATMUL_N, MATMUL_N), torch.rand(MATMUL_N, MATMUL_N)
    seconds = _median_s(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * MATMUL_N**3 / seconds / 1e9


def forward_gflop(model: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def _session(path: Path, threads: int, level: str, save_to: Path | None = None) -> Any:
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_case(session: Any, x: np.ndarray, ref: np.ndarray, repeats: int, warmup: int) -> dict:
    run = lambda: session.run(["probs"], {"image": x})[0]  # noqa: E731
    diff = float(np.abs(run() - ref).max())
    return {"s": _median_s(run, repeats, warmup), "max_abs_diff": diff}


def _variants(
    paths: dict[str, Path], tmp: Path, x: np.ndarray, ref: np.ndarray, threads: int, reps: int
) -> dict[str, dict]:
    """Each ONNX variant's latency and parity on one input."""
    out = {f"legacy_{lv}": _ort_case(_session(paths["legacy"], threads, lv), x, ref, reps, 3)
           for lv in LEVELS}  # fmt: skip
    saved = tmp / "optimised.onnx"
    _session(paths["legacy"], threads, "all", save_to=saved)  # writes the optimised graph
    out["legacy_saved_all"] = _ort_case(_session(saved, threads, "basic"), x, ref, reps, 3)
    if "dynamo" in paths:
        out["dynamo_all"] = _ort_case(_session(paths["dynamo"], threads, "all"), x, ref, reps, 3)
    return out


def measure(
    sizes: tuple[int, ...] = (256, 512),
    threads: int = 2,
    repeats: int = 10,
    warmup: int = 3,
    with_dynamo: bool = True,
) -> dict[str, Any]:
    from gglops.export import export_onnx

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = GGLNet().eval()
    prob = lambda t: torch.sigmoid(model(t))  # noqa: E731
    out: dict[str, Any] = {"onnx_threads": threads, "onnx_repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        paths, export_s = {}, {}
        for exporter in ("legacy", "dynamo") if with_dynamo else ("legacy",):
            start = time.perf_counter()
            paths[exporter] = export_onnx(model, tmp / f"{exporter}.onnx", exporter)
            export_s[exporter] = round(time.perf_counter() - start, 2)
        out["onnx_export_s"] = export_s
        session = _session(paths["legacy"], threads, "all")
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            with torch.inference_mode():
                ref = prob(x).numpy()
                eager = _median_s(lambda x=x: prob(x), repeats, warmup)
            ort_case = _ort_case(session, x.numpy(), ref, repeats, warmup)
            out[f"torch_eager_s_{size}"] = round(eager, 4)
            out[f"onnxruntime_s_{size}"] = round(ort_case["s"], 4)
            out[f"onnxruntime_speedup_vs_torch_{size}"] = round(eager / ort_case["s"], 2)
            out[f"onnx_parity_max_abs_diff_{size}"] = ort_case["max_abs_diff"]
        first = sizes[0]
        x = torch.rand(1, 3, first, first)
        with torch.inference_mode():
            ref = prob(x).numpy()
        variants = _variants(paths, tmp, x.numpy(), ref, threads, repeats)
    out[f"onnx_variants_{first}"] = {
        k: {"s": round(v["s"], 4), "max_abs_diff": v["max_abs_diff"]} for k, v in variants.items()
    }
    gflop = forward_gflop(model, first)
    peak = matmul_peak_gflops(threads)
    out[f"gflop_forward_{first}"] = round(gflop, 2)
    out["matmul_peak_gflops"] = round(peak, 1)
    out[f"onnx_fraction_of_peak_{first}"] = round(gflop / out[f"onnxruntime_s_{first}"] / peak, 3)
    out[f"eager_fraction_of_peak_{first}"] = round(gflop / out[f"torch_eager_s_{first}"] / peak, 3)
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
