"""ONNX Runtime tuning study for GGL-Net on CPU: session variants side by side in one run.

Every variant and torch eager are timed interleaved (one call each per round, medians of
`REPS` rounds after warm-up), so machine-wide noise hits them alike; the matmul peak is
measured in the same run. Two clocks: wall time at `THREADS` threads (the target figures,
noisy when other work shares the cores) and single-thread CPU time (`time.thread_time`, which
time-slicing by other processes barely moves: the figures to compare variants by).

    python -m bench.onnx_tuning           # headline figures as JSON (what measure() returns)
    python -m bench.onnx_tuning --study   # also every variant, 256² only

The headline figures run the product path: `gglops.model.export.export_onnx` and a session from
`gglops.model.onnxrt.create_session`. The study adds the alternatives that were measured and not
chosen (optimisation levels, spinning, parallel mode, the dynamo exporter, a saved graph).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

THREADS = 2
REPS = 10
SIZES = (256, 512)
PEAK_N = 2048
Clock = Callable[[], float]


@dataclass(frozen=True)
class Variant:
    """One way to run the exported graph; the defaults are `gglops.model.onnxrt`'s settings."""

    level: str = "ORT_ENABLE_ALL"
    spin: bool | None = None  # None: gglops.model.onnxrt.SPIN
    config: dict[str, str] = field(default_factory=dict)
    parallel: bool = False
    graph: str = "legacy"  # which file: a key of the study's exported/saved graphs


STUDY: dict[str, Variant] = {
    "chosen": Variant(),
    "extended_only": Variant(level="ORT_ENABLE_EXTENDED"),
    "spinning": Variant(spin=True),
    "parallel_mode": Variant(parallel=True),
    "denormals_as_zero": Variant(config={"session.set_denormal_as_zero": "1"}),
    "dynamo_export": Variant(graph="dynamo"),
    "saved_extended_graph": Variant(graph="saved"),
}


def build_net() -> Any:
    """The default GGL-Net (seeded) with non-identity BatchNorms, so folding is exercised."""
    import torch

    from gglnet import GGLNet

    torch.manual_seed(0)
    net = GGLNet()
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return net.eval()


def probability_model(net: Any) -> Any:
    """What torch eager serves and what the ONNX file computes: sigmoid probabilities."""
    from gglnet import ProbabilityModel

    return ProbabilityModel(net).eval()


def export(net: Any, path: Path, exporter: str = "legacy") -> Path:
    """The product export (`gglops.model.export.export_onnx`: checked, dynamic N/H/W)."""
    from gglops.model.export import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter
        return export_onnx(net, path, exporter)


def graphs(net: Any, tmp: Path) -> dict[str, Path]:
    """The study's graph files: both exporters and the saved portable optimised graph."""
    from gglops.model.onnxrt import optimize_onnx

    legacy = export(net, tmp / "legacy.onnx")
    return {
        "legacy": legacy,
        "dynamo": export(net, tmp / "dynamo.onnx", "dynamo"),
        "saved": optimize_onnx(legacy, tmp / "saved.onnx"),
    }


def session(path: Path, threads: int, variant: Variant) -> Any:
    """A study session; `Variant()` reproduces `gglops.model.onnxrt.create_session`."""
    import onnxruntime as ort

    from gglops.model import onnxrt

    spin = onnxrt.SPIN if variant.spin is None else variant.spin
    options = onnxrt.session_options(threads, spin=spin)
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, variant.level)
    for key, value in variant.config.items():
        options.add_session_config_entry(key, value)
    if variant.parallel:  # branches on inter-op threads, one thread per op
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.inter_op_num_threads, options.intra_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=onnxrt.PROVIDERS)


def interleaved(calls: dict[str, Callable[[], Any]], reps: int, clock: Clock) -> dict:
    """Per call: the times of `reps` rounds, each round running every call once."""
    for call in calls.values():  # warm-up: allocator arenas, memory plans, oneDNN kernels
        call()
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            start = clock()
            call()
            times[name].append(clock() - start)
    return times


def model_gflop(model: Any, size: int) -> float:
    """Forward FLOPs per image (a multiply-add counts 2), from torch's FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def parity(sess: Any, model: Any, size: int) -> tuple[float, int]:
    """Max abs probability difference and differing mask pixels (threshold 0.5)."""
    import torch

    batch = np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32)
    got = sess.run(["probs"], {"image": batch})[0]
    with torch.inference_mode():
        ref = model(torch.from_numpy(batch)).numpy()
    return float(np.abs(got - ref).max()), int(((got > 0.5) != (ref > 0.5)).sum())


def _calls(model: Any, sessions: dict[str, Any], size: int) -> dict[str, Callable[[], Any]]:
    import torch

    image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    tensor = torch.from_numpy(image)
    a, b = torch.rand(PEAK_N, PEAK_N), torch.rand(PEAK_N, PEAK_N)
    calls: dict[str, Callable[[], Any]] = {"torch": lambda: model(tensor), "peak": lambda: a @ b}
    for name, sess in sessions.items():
        calls[name] = lambda s=sess: s.run(["probs"], {"image": image})
    return calls


def timed(model: Any, sessions: dict[str, Any], size: int, threads: int, clock: Clock) -> dict:
    """Median ms per call name, plus the matmul peak (GFLOP/s, best round) on `threads`."""
    import torch

    torch.set_num_threads(threads)
    with torch.inference_mode():
        times = interleaved(_calls(model, sessions, size), REPS, clock)
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    medians["peak_gflops"] = 2 * PEAK_N**3 / min(times.pop("peak")) / 1e9
    return medians


def _ratios(prefix: str, ms: dict[str, float], gflop: float) -> dict[str, float]:
    return {
        f"torch_eager_ms{prefix}": ms["torch"],
        f"ort_ms{prefix}": ms["chosen"],
        f"onnxruntime_speedup_vs_torch{prefix}": ms["torch"] / ms["chosen"],
        f"onnx_fraction_of_peak{prefix}": gflop / ms["chosen"] * 1e3 / ms["peak_gflops"],
    }


def measure() -> dict[str, Any]:
    """Chosen settings vs torch eager: wall at THREADS threads, 1-thread CPU time, parity."""
    import torch

    from gglops.model.onnxrt import create_session

    net, previous = build_net(), torch.get_num_threads()
    model = probability_model(net)
    figures: dict[str, Any] = {"onnx_threads": THREADS, "load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        path = export(net, Path(tmp) / "model.onnx")
        chosen = {
            "chosen": create_session(path, THREADS),
            "spinning": session(path, THREADS, STUDY["spinning"]),  # the SPIN trade-off
        }
        diffs = [parity(chosen["chosen"], model, size) for size in (*SIZES, 64)]
        peaks = []
        for size in SIZES:
            gflop = model_gflop(model, size)
            ms = timed(model, chosen, size, THREADS, time.perf_counter)
            figures |= _ratios(f"_{size}", ms, gflop) | {f"model_gflop_{size}": gflop}
            figures[f"ort_spinning_ms_{size}"] = ms["spinning"]
            peaks.append(ms["peak_gflops"])
        single = {"chosen": create_session(path, 1)}
        size = SIZES[0]
        cpu = timed(model, single, size, 1, time.thread_time)
        figures |= _ratios(f"_{size}_1thread_cpu", cpu, figures[f"model_gflop_{size}"])
        figures["matmul_peak_gflops_1thread_cpu"] = cpu["peak_gflops"]
    torch.set_num_threads(previous)
    figures["matmul_peak_gflops"] = max(peaks)  # best of every round in this run
    for size in SIZES:  # against the run's best peak, not the one measured beside it
        ms = figures[f"ort_ms_{size}"]
        figures[f"onnx_fraction_of_peak_{size}"] = (
            figures[f"model_gflop_{size}"] / ms * 1e3 / figures["matmul_peak_gflops"]
        )
    figures["onnx_max_abs_diff"] = max(d for d, _ in diffs)
    figures["onnx_mask_mismatch_pixels"] = sum(m for _, m in diffs)
    return figures


def study(size: int = 256) -> dict[str, dict[str, float]]:
    """Every STUDY variant at `size`: wall ms at THREADS threads and 1-thread CPU ms."""
    net = build_net()
    model = probability_model(net)
    with tempfile.TemporaryDirectory() as tmp:
        paths = graphs(net, Path(tmp))
        wide = {name: session(paths[v.graph], THREADS, v) for name, v in STUDY.items()}
        narrow = {
            name: session(paths[v.graph], 1, v) for name, v in STUDY.items() if not v.parallel
        }
        wall = timed(model, wide, size, THREADS, time.perf_counter)
        cpu = timed(model, narrow, size, 1, time.thread_time)
        diffs = {name: parity(sess, model, 64)[0] for name, sess in wide.items()}
    rows = {name: {"wall_ms": wall[name]} for name in ("torch", *STUDY)}
    for name in ("torch", *narrow):
        rows[name]["cpu_ms_1thread"] = cpu[name]
    for name, diff in diffs.items():
        rows[name]["max_abs_diff"] = diff
    rows["matmul_peak"] = {"wall_gflops": wall["peak_gflops"], "cpu_gflops": cpu["peak_gflops"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--study", action="store_true", help="also time every variant")
    args = parser.parse_args()
    results: dict[str, Any] = {"figures": measure()}
    if args.study:
        results["study_256"] = study()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
