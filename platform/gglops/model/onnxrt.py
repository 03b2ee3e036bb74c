"""onnxruntime CPU sessions for GGL-Net with the settings measured fastest at parity:
ORT_ENABLE_ALL, intra-op threads = usable CPUs, one inter-op thread, sequential mode,
spinning off. The measurements behind each choice are in docs/onnx.md (bench/onnx_tuning.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gglops.core.errors import UsageError, first_line
from gglops.core.files import atomic_path

PROVIDERS = ["CPUExecutionProvider"]
OPSET = 17
# Spinning keeps idle intra-op workers busy-waiting between ops: ~15% faster on an idle
# machine, 1.3–2× slower when other processes compete for the same cores (measured both).
SPIN = False
SPIN_KEY = "session.intra_op.allow_spinning"


def default_threads() -> int:
    """CPUs this process may run on (affinity-aware, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0))


def session_options(threads: int | None = None, *, spin: bool = SPIN) -> Any:
    """SessionOptions for batch-1 CPU latency: full graph optimisation, `threads` intra-op."""
    import onnxruntime as ort

    count = default_threads() if threads is None else threads
    if count < 1:
        raise UsageError(f"onnxruntime threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = count
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = True  # shapes repeat between calls: reuse one plan
    options.enable_cpu_mem_arena = True
    options.add_session_config_entry(SPIN_KEY, "1" if spin else "0")
    return options


@dataclass(frozen=True)
class TensorSpec:
    """One float32 (N, C, H, W) tensor of a model's interface."""

    name: str
    channels: int

    def __str__(self) -> str:
        return f"{self.name!r} float32 (N, {self.channels}, H, W)"


@dataclass(frozen=True)
class Interface:
    """The inputs and outputs, in order, that a caller will feed and read."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __str__(self) -> str:
        ins, outs = (", ".join(map(str, specs)) for specs in (self.inputs, self.outputs))
        return f"input {ins} → output {outs}"


def _tensor_problems(kind: str, arg: Any, spec: TensorSpec) -> list[str]:
    # onnxruntime gives [] for a shape the graph leaves unknown: nothing to check there.
    shape = list(arg.shape or [])
    channels = shape[1] if len(shape) == 4 else None
    checks = {
        f"is {arg.type}, not tensor(float)": arg.type != "tensor(float)",
        f"has rank {len(shape)} {shape}, not 4 (N, C, H, W)": bool(shape) and len(shape) != 4,
        f"has {channels} channel(s), not {spec.channels}": isinstance(channels, int)
        and channels != spec.channels,
    }
    return [f"{kind} {arg.name!r} {what}" for what, bad in checks.items() if bad]


def _side_problems(kind: str, args: Sequence[Any], specs: Sequence[TensorSpec]) -> list[str]:
    names, wanted = [a.name for a in args], [s.name for s in specs]
    shown, named = ", ".join(map(repr, names)) or "none", ", ".join(map(repr, wanted))
    if len(names) != len(wanted):
        return [f"{len(names)} {kind}s ({shown}), not {len(wanted)} ({named})"]
    if names != wanted:
        return [f"{kind}s are {shown}, not {named}"]
    pairs = zip(args, specs, strict=True)
    return [problem for arg, spec in pairs for problem in _tensor_problems(kind, arg, spec)]


def interface_problems(session: Any, interface: Interface) -> list[str]:
    """What in the session's declared inputs/outputs differs from `interface` ([] if none)."""
    return _side_problems("input", session.get_inputs(), interface.inputs) + _side_problems(
        "output", session.get_outputs(), interface.outputs
    )


def create_session(
    path: Path | str,
    threads: int | None = None,
    *,
    spin: bool = SPIN,
    interface: Interface | None = None,
) -> Any:
    """A CPU InferenceSession on `path`; a missing or unreadable file, or (with `interface`)
    a valid ONNX file of another model, is a UsageError naming the file and the mismatch."""
    import onnxruntime as ort

    source = Path(path)
    if not source.is_file():
        raise UsageError(f"{source}: no such ONNX file")
    options = session_options(threads, spin=spin)
    try:
        session = ort.InferenceSession(str(source), options, providers=PROVIDERS)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise UsageError(f"{source}: onnxruntime cannot load it ({first_line(exc)})") from None
    # Checked here, not at the first run: another model's file fails there with "Required
    # inputs (['x']) are missing", which names neither the file nor what was expected.
    if interface is not None and (problems := interface_problems(session, interface)):
        raise UsageError(
            f"{source}: ONNX interface mismatch: {'; '.join(problems)} (wanted: {interface})"
        )
    return session


def optimize_onnx(src: Path | str, dst: Path | str) -> Path:
    """Save the portable (ORT_ENABLE_EXTENDED) optimised graph of `src` to `dst`.

    Constant folding and Conv+BN/activation fusions are done once, so later sessions load
    faster; the CPU-specific NCHWc pass still runs at load, so `dst` stays portable across
    machines (an ORT_ENABLE_ALL graph would not). Written to a temp file, then renamed.
    """
    import onnxruntime as ort

    source, target = Path(src), Path(dst)
    if not source.is_file():
        raise UsageError(f"{source}: no such ONNX file")
    options = session_options(1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    try:
        with atomic_path(target) as staged:
            options.optimized_model_filepath = str(staged)
            ort.InferenceSession(str(source), options, providers=PROVIDERS)
    except Exception as exc:
        raise UsageError(f"{source}: onnxruntime cannot optimise it ({first_line(exc)})") from None
    return target


def export_kwargs() -> dict[str, Any]:
    """`torch.onnx.export` options for the recommended exporter (legacy, opset 17).

    The caller adds input/output names and `dynamic_axes`; BatchNorm folds into the convs
    only in eval mode, so export `model.eval()` under `torch.no_grad()`.
    """
    return {"dynamo": False, "opset_version": OPSET, "do_constant_folding": True}
