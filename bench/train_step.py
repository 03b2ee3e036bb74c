"""A bare GGL-Net training step, variant by variant, side by side in one process (issue 27).

The step is the platform's (`TrainSession._step`): the batch moved to the device in the
variant's memory format, forward under autocast, the loss (BCE + soft IoU) in float32 outside
autocast, backward, gradient clipping at the recipes' 1.0, AdamW. Variants: fp32 eager, bf16
autocast, channels_last (fp32, bf16), torch.compile of the model (inductor, default mode, as
`train.compile` does; fp32, bf16) and bf16 + channels_last + compile. Two recipes: the laptop
recipe (160², batch 8, width 0.5) and the demo recipe (64², batch 8, width 0.5).

Every variant is warmed up alone (a compiled one compiles there), then all are timed in
interleaved rounds (a block of `steps` steps each per round, the order rotated every round),
so drift of a shared machine hits them alike; images/s is the median of the rounds. The fp32
matmul peak (2048² on CPU, as bench/onnx_tuning.py) is timed in the same rounds; the fraction
of peak is 3 × forward FLOPs per image (forward + backward) × images/s ÷ the run's best peak.

Compile time: the warm-up's wall time minus as many steady compiled steps (by default with an
empty inductor cache, so it is what a first run pays), and the break-even in steps against the
same variant without compile: compile_s / (eager step s − compiled step s).

Threads: torch.set_num_threads(2) (both cores, as `train.cpus_per_worker: 2`). Inter-op
threads can only be set before a process's first parallel work, so the laptop recipe's fp32
eager and best variants are timed again in a child process with one inter-op thread.

Loader check: images/s that `TrainDataset(fit="crop", patch 160)` and the platform's
`loader_workers: 0` DataLoader produce on one thread from NUAA-SIRST (idx_427 train; $NUAA_SOURCE
or ../shared/datasets/nuaa-sirst), first pass (decoding) and cached, against the best step rate.

    python -m bench.train_step                 # the full bench (~15-40 min), prints JSON
    python -m bench.train_step --quick --threads 1   # smoke: 32², batch 2, width 0.25
    python -m bench.run --only train_step      # the full bench into bench/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCAL_SIRST = ROOT.parent / "shared" / "datasets" / "nuaa-sirst"
SOURCE_ENV = "NUAA_SOURCE"
THREADS = 2
ROUNDS, STEPS, WARMUP = 5, 3, 3
PEAK_N_CUDA = 8192
PREFIX = "[train_step]"


@dataclass(frozen=True)
class Recipe:
    """What a step depends on: image side, batch, model width and the optimiser settings."""

    name: str
    size: int
    batch: int
    width: float
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    loss: str = "bce_soft_iou"


RECIPES = (
    Recipe("laptop", 160, 8, 0.5),  # pipelines/nuaa-sirst/recipes/laptop.yaml
    Recipe("demo", 64, 8, 0.5, lr=3e-3, weight_decay=0.0),  # params.yaml
)
# Smoke: both recipes at one tiny shape, so the second's compiles hit the inductor cache.
QUICK_RECIPES = tuple(Recipe(r.name, 32, 2, 0.25, r.lr, r.weight_decay) for r in RECIPES)


@dataclass(frozen=True)
class Variant:
    precision: str  # fp32 | bf16 | fp16 (autocast dtype; fp32 disables autocast)
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        return "_".join(
            [self.precision]
            + (["cl"] if self.channels_last else [])
            + (["compile"] if self.compile else [])
        )

    @property
    def eager(self) -> Variant:
        """The same variant without torch.compile (its break-even reference)."""
        return Variant(self.precision, self.channels_last, False)


VARIANTS = (
    Variant("fp32"),
    Variant("bf16"),
    Variant("fp32", channels_last=True),
    Variant("bf16", channels_last=True),
    Variant("fp32", compile=True),
    Variant("bf16", compile=True),
    Variant("bf16", channels_last=True, compile=True),
)
BY_NAME = {v.name: v for v in VARIANTS}


# --- the arithmetic (pure) ---------------------------------------------------------------------


def break_even_steps(compile_s: float, eager_step_s: float, compiled_step_s: float) -> float:
    """Steps after which compiling has paid for itself; inf when the compiled step is no faster."""
    saved = eager_step_s - compiled_step_s
    if saved <= 0:
        return math.inf
    return max(compile_s, 0.0) / saved


def train_gflop_per_image(forward_gflop: float) -> float:
    """Forward + backward ≈ 3 × forward (the backward computes input and weight gradients)."""
    return 3.0 * forward_gflop


def fraction_of_peak(forward_gflop: float, images_per_s: float, peak_gflops: float) -> float:
    """Training FLOP rate at `images_per_s` ÷ the fp32 matmul peak."""
    return train_gflop_per_image(forward_gflop) * images_per_s / peak_gflops


def compile_seconds(warmup_s: Sequence[float], steady_step_s: float) -> float:
    """Warm-up wall time beyond what as many steady steps take: the compiler's share."""
    return max(sum(warmup_s) - len(warmup_s) * steady_step_s, 0.0)


def rotated(names: Sequence[str], offset: int) -> list[str]:
    """`names` started at position `offset` (the round's order)."""
    k = offset % len(names) if names else 0
    return [*names[k:], *names[:k]]


def best_of(rates: dict[str, float]) -> str:
    return max(rates, key=lambda name: rates[name])


def json_number(value: float) -> float | str:
    """inf/nan are not JSON: spelled out."""
    return value if math.isfinite(value) else ("never" if value > 0 else str(value))


# --- the step --------------------------------------------------------------------------------


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepState:
    """One variant's model, optimiser and fixed batch; `step()` is one training step."""

    def __init__(self, recipe: Recipe, variant: Variant, device: Any, seed: int = 0) -> None:
        import torch

        from gglnet import LOSSES, GGLNet

        self.recipe, self.variant, self.device = recipe, variant, device
        generator = torch.Generator().manual_seed(seed)
        shape = (recipe.batch, 3, recipe.size, recipe.size)
        self.images = torch.rand(shape, generator=generator).to(device)
        # Sparse 1-px targets, as the detector sees them.
        mask_shape = (recipe.batch, 1, recipe.size, recipe.size)
        self.masks = (torch.rand(mask_shape, generator=generator) > 0.998).float().to(device)
        torch.manual_seed(seed)
        self.format = torch.channels_last if variant.channels_last else torch.contiguous_format
        net = GGLNet(width_mult=recipe.width).to(device)
        if variant.channels_last:
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net = net.train()
        # Static shapes: each recipe compiles as a fresh training process's first step does.
        compiled = torch.compile(net, dynamic=False) if variant.compile else net
        self.model: Callable[[Any], Any] = compiled
        self.optimizer = torch.optim.AdamW(
            net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
        )
        self.loss_fn = LOSSES[recipe.loss]
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[variant.precision]
        self.autocast = lambda: torch.autocast(
            device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        )

    def step(self) -> None:
        import torch

        images = self.images.to(self.device, non_blocking=True, memory_format=self.format)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(images)
        loss = self.loss_fn(logits.float(), self.masks)
        loss.backward()
        if self.recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.recipe.grad_clip)
        self.optimizer.step()

    def block(self, steps: int) -> float:
        """Wall seconds of `steps` steps (device work included)."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(self.device)
        return time.perf_counter() - start


class MatmulPeak:
    """fp32 N×N matmul on `device`: GFLOP/s of one product (the yardstick of onnx_tuning)."""

    def __init__(self, device: Any, n: int) -> None:
        import torch

        self.device, self.n = device, n
        self.a = torch.rand(n, n, device=device)
        self.b = torch.rand(n, n, device=device)
        for _ in range(2):  # warm-up: allocator, BLAS / cuBLAS handles
            self.a @ self.b
        _sync(device)

    def gflops(self) -> float:
        reps = 5 if self.device.type == "cuda" else 1
        start = time.perf_counter()
        for _ in range(reps):
            self.a @ self.b
        _sync(self.device)
        return reps * 2 * self.n**3 / (time.perf_counter() - start) / 1e9


def forward_gflop(recipe: Recipe) -> float:
    """Forward FLOPs per image at the recipe's size and width (torch's FLOP counter, CPU)."""
    from bench.onnx_tuning import model_gflop
    from gglnet import GGLNet

    return float(model_gflop(GGLNet(width_mult=recipe.width).eval(), recipe.size))


def _peak_memory_mb(device: Any) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _reset_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def measure_recipe(
    recipe: Recipe,
    variants: Sequence[Variant],
    device: Any,
    *,
    rounds: int = ROUNDS,
    steps: int = STEPS,
    warmup: int = WARMUP,
    peak_n: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per-variant images/s (median of interleaved rounds), compile time and break-even,
    the matmul peak of these rounds, and the forward FLOPs."""
    from bench.onnx_tuning import PEAK_N

    peak_n = peak_n or (PEAK_N_CUDA if device.type == "cuda" else PEAK_N)
    states, warm, memory = {}, {}, {}
    for variant in variants:
        _reset_peak(device)
        state = StepState(recipe, variant, device)
        warm[variant.name] = [state.block(1) for _ in range(warmup)]
        memory[variant.name] = _peak_memory_mb(device)
        states[variant.name] = state
        log(f"{PREFIX} {recipe.name}: {variant.name} warm-up {sum(warm[variant.name]):.1f} s")
    peak = MatmulPeak(device, peak_n)
    names = list(states)
    rates: dict[str, list[float]] = {name: [] for name in names}
    peaks = []
    for r in range(rounds):
        for name in rotated(names, r):
            rates[name].append(recipe.batch * steps / states[name].block(steps))
        peaks.append(peak.gflops())
        shown = ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names)
        log(f"{PREFIX} {recipe.name} round {r + 1}/{rounds} img/s: {shown}")
    median = {name: statistics.median(values) for name, values in rates.items()}
    rows: dict[str, dict[str, Any]] = {}
    fp32 = median.get("fp32")
    for variant in variants:
        name = variant.name
        step_s = recipe.batch / median[name]
        row: dict[str, Any] = {
            "images_per_s": median[name],
            "step_ms": step_s * 1e3,
            "rounds_images_per_s": rates[name],
            "warmup_s": warm[name],
        }
        if fp32:
            row["speedup_vs_fp32_eager"] = median[name] / fp32
        if memory[name] is not None:
            row["peak_memory_mb"] = memory[name]
        if variant.compile:
            compile_s = compile_seconds(warm[name], step_s)
            row["compile_s"] = compile_s
            twin = variant.eager.name
            if twin in median:
                eager_s = recipe.batch / median[twin]
                row["break_even_vs"] = twin
                row["break_even_steps"] = json_number(break_even_steps(compile_s, eager_s, step_s))
        rows[name] = row
    return {
        "recipe": asdict(recipe),
        "variants": rows,
        "best": best_of(median),
        "forward_gflop_per_image": forward_gflop(recipe),
        "matmul_peak_gflops": max(peaks),
        "matmul_n": peak_n,
        "rounds": rounds,
        "steps_per_round": steps,
        "warmup_steps": warmup,
    }


def table(result: dict[str, Any], peak_gflops: float) -> list[dict[str, Any]]:
    """The per-variant rows as a list (for results.json's detail), with fraction of peak."""
    gflop = result["forward_gflop_per_image"]
    return [
        {"variant": name, **{k: v for k, v in row.items() if k != "rounds_images_per_s"}}
        | {"fraction_of_peak": fraction_of_peak(gflop, row["images_per_s"], peak_gflops)}
        for name, row in result["variants"].items()
    ]


# --- threads, compile cache, loader -------------------------------------------------------------


@contextmanager
def compile_cache(kind: str) -> Iterator[str]:
    """`fresh`: an empty inductor cache (compile_s is what a first run pays); `shared`: the
    user's cache (a rerun of the same shapes compiles from it)."""
    if kind == "shared":
        yield os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")
        return
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="inductor-") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp
        try:
            yield tmp
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def warm_compiler(device: Any) -> float:
    """Compile a tiny conv net's forward and backward once, so that inductor's one-off start-up
    (its workers, compiler probes, precompiled headers) is charged to no variant."""
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).to(device)
    compiled = torch.compile(net, dynamic=False)
    start = time.perf_counter()
    compiled(torch.rand(1, 3, 16, 16, device=device)).sum().backward()
    _sync(device)
    torch._dynamo.reset()
    return time.perf_counter() - start


def _allow_recompiles() -> None:
    """Each compiled variant × recipe is a new guard set on GGLNet.forward's code object."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)


def sirst_source() -> Path:
    """$NUAA_SOURCE, else the local copy beside the repository."""
    env = os.environ.get(SOURCE_ENV)
    return Path(env) if env else LOCAL_SIRST


def loader_rate(
    root: Path, patch: int, batch: int, epochs: int = 2, limit: int | None = None
) -> dict[str, Any]:
    """Images/s of the training loader (`TrainDataset` crop + augmentation, batched by a
    `num_workers=0` DataLoader) on one thread: the first pass decodes, later ones are cached."""
    import torch
    from torch.utils.data import DataLoader

    from gglops.data.dataset import TrainDataset
    from gglops.data.layouts import resolve_layout

    samples = resolve_layout(root, "nuaa-sirst", "idx_427").train[:limit]
    dataset = TrainDataset(samples, image_size=patch, fit="crop", augment_p=0.5, seed=0)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    rates = []
    try:
        for epoch in range(epochs):
            dataset.set_epoch(epoch)
            seen, start = 0, time.perf_counter()
            for images, _masks in loader:
                seen += len(images)
            rates.append(seen / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(previous)
    return {
        "source": str(root),
        "images": len(samples),
        "patch": patch,
        "first_pass_images_per_s": rates[0],
        "cached_images_per_s": statistics.median(rates[1:]) if len(rates) > 1 else rates[0],
    }


def loader_check(recipe: Recipe, step_images_per_s: float, plan: Plan) -> dict[str, Any]:
    """The loader's cached rate ÷ the step's rate (> 1: the loader keeps ahead)."""
    root = sirst_source()
    if not root.is_dir():
        return {"value": f"not measured: no NUAA-SIRST at {root} (set ${SOURCE_ENV})"}
    rate = loader_rate(root, recipe.size, recipe.batch, limit=16 if plan.quick else None)
    cached = rate["cached_images_per_s"]
    # With loader_workers 0 the loader runs between steps: its share of each step's time.
    share = step_images_per_s / (step_images_per_s + cached)
    return rate | {
        "value": cached / step_images_per_s,
        "step_images_per_s": step_images_per_s,
        "serial_share_of_step_time": share,
    }


# --- the bench --------------------------------------------------------------------------------


def run(
    recipes: Sequence[Recipe],
    variants: Sequence[Variant],
    device: Any,
    *,
    threads: int = THREADS,
    rounds: int = ROUNDS,
    steps: int = STEPS,
    warmup: int = WARMUP,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every recipe × variant; the detail that `figures` turns into headline numbers."""
    import torch

    torch.set_num_threads(threads)
    _allow_recompiles()
    compiler_s = warm_compiler(device) if any(v.compile for v in variants) else None
    results = {}
    for recipe in recipes:
        torch._dynamo.reset()  # each recipe compiles as a fresh process would
        results[recipe.name] = measure_recipe(
            recipe, variants, device, rounds=rounds, steps=steps, warmup=warmup, log=log
        )
    peak = max(r["matmul_peak_gflops"] for r in results.values())
    return {
        "device": _device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "matmul_peak_gflops": peak,
        "compiler_warm_up_s": compiler_s,
        "recipes": {name: r | {"table": table(r, peak)} for name, r in results.items()},
        "load_average_1min": os.getloadavg()[0],
    }


def _device_name(device: Any) -> str:
    """The GPU's name, or the CPU model (as bench/run.py's `machine`)."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    from bench.common import machine

    return str(machine()["cpu_model"])


def figures(detail: dict[str, Any]) -> dict[str, Any]:
    """Headline figures: laptop recipe unprefixed, the demo recipe as `..._demo_...`."""
    out: dict[str, Any] = {}
    peak = detail["matmul_peak_gflops"]
    for name, result in detail["recipes"].items():
        tag = "" if name == "laptop" else f"_{name}"
        rows = result["variants"]
        best = result["best"]
        for label, variant in (("fp32", "fp32"), ("bf16", "bf16"), ("best", best)):
            if variant in rows:
                out[f"train_step{tag}_images_per_s_{label}"] = rows[variant]["images_per_s"]
        if "fp32" in rows:
            speedup = rows[best]["images_per_s"] / rows["fp32"]["images_per_s"]
            out[f"train{tag}_speedup_vs_fp32_eager"] = speedup
        gflop = result["forward_gflop_per_image"]
        out[f"train{tag}_fraction_of_peak"] = fraction_of_peak(
            gflop, rows[best]["images_per_s"], peak
        )
        out[f"train_step{tag}_best_variant"] = best
    return out


@dataclass(frozen=True)
class Plan:
    """One invocation: which recipes and variants, how long, on how many threads."""

    quick: bool = False
    threads: int = THREADS
    rounds: int = ROUNDS
    steps: int = STEPS
    warmup: int = WARMUP
    cache: str = "fresh"  # fresh | shared (compile_cache)
    recipes: tuple[str, ...] = ("laptop", "demo")
    variants: tuple[str, ...] = tuple(BY_NAME)

    @classmethod
    def smoke(cls) -> Plan:
        """--quick: tiny shapes, two rounds of two steps, the user's compile cache."""
        return cls(quick=True, rounds=2, steps=2, warmup=2, cache="shared")

    def chosen_recipes(self) -> list[Recipe]:
        return [r for r in (QUICK_RECIPES if self.quick else RECIPES) if r.name in self.recipes]

    def chosen_variants(self) -> list[Variant]:
        return [BY_NAME[name] for name in self.variants]

    def detail(self, device: Any = None) -> dict[str, Any]:
        import torch

        return run(
            self.chosen_recipes(),
            self.chosen_variants(),
            device or torch.device("cpu"),
            threads=self.threads,
            rounds=self.rounds,
            steps=self.steps,
            warmup=self.warmup,
        )

    def args(self) -> list[str]:
        """This plan as command-line arguments (for the inter-op child)."""
        return [
            *(["--quick"] if self.quick else []),
            *("--threads", str(self.threads), "--rounds", str(self.rounds)),
            *("--steps", str(self.steps), "--warmup", str(self.warmup)),
            *("--compile-cache", self.cache, "--recipes", ",".join(self.recipes)),
            *("--variants", ",".join(self.variants)),
        ]


def measure(plan: Plan | None = None) -> dict[str, Any]:
    """Figures for bench/results.json (targets: speedup ≥ 2.5, fraction of peak ≥ 0.30)."""
    plan = plan or Plan()
    with compile_cache(plan.cache):
        detail = plan.detail()
        detail["compile_cache"] = plan.cache if plan.cache == "shared" else "fresh (emptied)"
        out = figures(detail)
        laptop = detail["recipes"].get("laptop")
        if laptop is not None and "fp32" in laptop["variants"]:
            best = laptop["best"]
            best_rate = laptop["variants"][best]["images_per_s"]
            out["train_loader_vs_step"] = loader_check(plan.chosen_recipes()[0], best_rate, plan)
            pair = ("fp32", best) if best != "fp32" else ("fp32",)
            # The child compiles from this run's cache (inherited $TORCHINDUCTOR_CACHE_DIR).
            child = replace(plan, recipes=("laptop",), variants=pair, cache="shared")
            detail["interop_1"] = interop(child, laptop, detail["interop_threads"])
    out["train_step_detail"] = detail
    return out


def interop(plan: Plan, main: dict[str, Any], main_interop: int) -> dict[str, Any]:
    """`plan` in a child process whose torch has one inter-op thread, against `main`."""
    print(f"{PREFIX} inter-op threads 1: {', '.join(plan.variants)} in a child", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        cmd = [sys.executable, "-m", "bench.train_step", "--interop-threads", "1"]
        cmd += [*plan.args(), "--detail-only", "--out", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return {"error": f"child exited {done.returncode}: {' '.join(tail)}"}
        child = json.loads(out.read_text())
    rows = child["recipes"]["laptop"]["variants"]
    best = plan.variants[-1]
    return {
        "interop_threads": child["interop_threads"],
        "images_per_s": {name: rows[name]["images_per_s"] for name in plan.variants},
        "speedup_vs_fp32_eager": rows[best]["images_per_s"] / rows["fp32"]["images_per_s"],
        "best_vs_main_process": rows[best]["images_per_s"] / main["variants"][best]["images_per_s"],
        "main_interop_threads": main_interop,
        "note": "another process, minutes later: compare the speedups, not the rates",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke: tiny sizes, few steps")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch intra-op threads")
    parser.add_argument("--interop-threads", type=int, help="torch inter-op threads")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--variants", help=f"comma-separated subset of {', '.join(BY_NAME)}")
    parser.add_argument("--recipes", default="laptop,demo", help="subset of laptop,demo")
    parser.add_argument("--compile-cache", choices=("fresh", "shared"))
    parser.add_argument("--detail-only", action="store_true", help="no loader, no child")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.interop_threads:
        import torch

        torch.set_num_interop_threads(args.interop_threads)  # before any parallel work
    base = Plan.smoke() if args.quick else Plan()
    given = {
        "threads": args.threads,
        "rounds": args.rounds,
        "steps": args.steps,
        "warmup": args.warmup,
        "cache": args.compile_cache,
        "recipes": tuple(args.recipes.split(",")),
        "variants": tuple(args.variants.split(",")) if args.variants else None,
    }
    plan = replace(base, **{k: v for k, v in given.items() if v is not None})
    unknown = sorted(set(plan.variants) - set(BY_NAME)) + sorted(
        set(plan.recipes) - {r.name for r in RECIPES}
    )
    if unknown:
        parser.error(f"unknown variant or recipe: {', '.join(unknown)}")
    if args.detail_only:
        with compile_cache(plan.cache):
            result: dict[str, Any] = plan.detail()
    else:
        result = measure(plan)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
