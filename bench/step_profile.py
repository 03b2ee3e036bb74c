"""Where a training step's time goes: torch.profiler over the laptop recipe's step (issue 27).

The step is bench/train_step.py's `StepState` (the platform's step: forward under autocast,
loss in float32, backward, clipping, AdamW) at the laptop recipe (160², batch 8, width 0.5)
in the variant a laptop run uses (bf16 + channels_last, eager) and in fp32 eager. Each
variant is warmed up, then `steps` steps run under the profiler (CPU activities, no shapes
or stacks, so the profiler itself costs little). Every operator's self time is put in one
category by the first pattern its name matches (CATEGORIES): convolutions (forward and
backward, oneDNN), BatchNorm, element-wise and activations, resampling and pooling,
attention products, the optimiser and clipping, layout and dtype copies, and the rest.

What it answers: which share of a step compiled fusion could remove (element-wise, norms,
copies: memory-bound, many small kernels) and which it cannot (the convolutions, already in
oneDNN's kernels; their achieved GFLOP/s is printed beside the matmul peak).

    python -m bench.step_profile               # laptop recipe, 2 threads, 8 profiled steps
    python -m bench.step_profile --quick       # smoke: 32², batch 2, width 0.25, 2 steps
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from typing import Any

from bench.train_step import RECIPES, Recipe, StepState, Variant, forward_gflop

THREADS = 2
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("convolution", r"conv|mkldnn_convolution"),
        ("batch norm", r"batch_norm|native_batch_norm"),
        ("resample and pool", r"upsample|pool|interpolate"),
        ("attention products", r"bmm|matmul|\bmm\b|addmm|softmax|baddbmm"),
        ("optimiser and clipping", r"adam|foreach|_fused|norm\b|clip|lerp|sqrt|addcdiv|addcmul"),
        ("copies and layout", r"copy|contiguous|clone|to_copy|\bto\b|empty|_to_dtype|cat"),
        (
            "element-wise and activations",
            r"relu|sigmoid|gelu|mul|add|sub|div|threshold|where|clamp|neg|exp|log|abs|sum|mean|"
            r"fill|zero|pow|max|min|ones|sign",
        ),
    )
)


def category(op: str) -> str:
    """The first category whose pattern matches the operator's name, else 'other'."""
    name = op.lower()
    return next((cat for cat, pattern in CATEGORIES if pattern.search(name)), "other")


def profile(recipe: Recipe, variant: Variant, steps: int, warmup: int = 3) -> dict[str, Any]:
    """Self CPU time per category over `steps` steps, and the conv's share and GFLOP/s."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    state = StepState(recipe, variant, torch.device("cpu"))
    for _ in range(warmup):
        state.step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = state.block(steps)
    totals: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = {}
    for event in prof.key_averages():
        if event.key.startswith(("aten::", "mkldnn::", "Optimizer.")) or "::" not in event.key:
            totals[category(event.key)] += event.self_cpu_time_total / 1e6
            ops[event.key] = event.self_cpu_time_total / 1e6
    busy = sum(totals.values())
    shares = {cat: seconds / busy for cat, seconds in sorted(totals.items(), key=lambda i: -i[1])}
    conv_s = totals.get("convolution", 0.0)
    # Convolutions carry nearly all FLOPs: 3 × forward (forward + both backward products).
    conv_gflops = 3 * forward_gflop(recipe) * recipe.batch * steps / conv_s if conv_s else 0.0
    return {
        "variant": variant.name,
        "steps": steps,
        "images_per_s_under_profiler": recipe.batch * steps / wall,
        "op_seconds_per_wall_second": busy / wall,  # the rest: the profiler, Python, autograd
        "shares": shares,
        "top_ops": {
            op: round(seconds / busy, 4)
            for op, seconds in sorted(ops.items(), key=lambda i: -i[1])[:12]
        },
        "conv_gflops": conv_gflops,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(
        prog="python -m bench.step_profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--quick", action="store_true", help="32², batch 2, width 0.25, 2 steps")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    recipe = RECIPES[0]
    steps = args.steps
    if args.quick:
        recipe, steps = Recipe("quick", 32, 2, 0.25), 2
    variants = (Variant("fp32"), Variant("bf16", channels_last=True))
    result = {
        "recipe": f"{recipe.name}: {recipe.size}², batch {recipe.batch}, width {recipe.width}",
        "threads": args.threads,
        "profiles": [profile(recipe, v, steps) for v in variants],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
