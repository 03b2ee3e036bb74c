"""The whole GPU check of issue 27 in one call (`bench/gpu_check.sh` runs this).

Steps, in this order, each in its own process under its own time budget, each result written
to the JSON as soon as it is known (a step killed at its budget still leaves what it wrote):

  ray_gpu     `gglops train --gpu` on synthetic data (`gglops data synth`): Ray Train, one
              worker, process group over NCCL (NCCL_DEBUG=INFO lines kept as proof), 2 epochs,
              sqlite MLflow and a local Ray (as bench/accuracy.py's `_platform_env`). Where ray
              or mlflow cannot be imported it says so and runs one-rank DDP over NCCL instead.
  pal         3 epochs of the PAL recipe (pipelines/nuaa-sirst/recipes/pal.yaml) on NUAA-SIRST
              with the platform's `TrainSession` (the code every Ray rank runs, here without
              Ray), and the time 400 epochs would take.
  onnx        `gglops.model.export.export_onnx` of the GPU-trained models and `check_parity` (torch
              on the CPU vs onnxruntime, the rule `gglops export` applies), plus the CUDA model
              in true fp32 (TF32 off) vs onnxruntime.
  throughput  bench/train_step.py on the GPU: fp32 vs bf16 autocast, + channels_last, +
              torch.compile at 256² and 512² (default width, batch 16), peak memory; last, so
              it gets what the others left of the deadline.

    bash bench/gpu_check.sh              # on a GPU machine: $OUT/gpu_check.json or bench/
    bash bench/gpu_check.sh --dry-run    # CPU: tiny sizes, to prove the code paths

Without a CUDA device (and without --dry-run) it prints one line saying what it needs and
exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAL = ROOT / "pipelines" / "nuaa-sirst" / "recipes" / "pal.yaml"
DEMO = ROOT / "params.yaml"
SOURCE_ENV = "NUAA_SOURCE"
CARRIED_SIRST = ROOT / ".gpucheck" / "nuaa-sirst"  # where `gpu_check.sh --prepare` copies it
LOCAL_SIRST = ROOT.parent / "shared" / "datasets" / "nuaa-sirst"
RAY_LOGS = Path(tempfile.gettempdir()) / "ray" / "session_latest" / "logs"
NEEDS_GPU = "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is false)"
DEADLINE_S = 460.0  # the whole check; gpu_check.sh's `timeout` is the backstop at 480 s
# Seconds per step on a GPU; --dry-run multiplies them (CPU compiles are slow).
# The order they run in: throughput last, where it gets what the others left (up to 220 s).
BUDGETS_S = {"ray_gpu": 90.0, "pal": 110.0, "onnx": 60.0, "throughput": 220.0}
DRY_SCALE = 6.0
PAL_EPOCHS, PAL_FULL_EPOCHS = 3, 400
STEPS = tuple(BUDGETS_S)
Result = dict[str, Any]


# --- where things are --------------------------------------------------------------------------


def sirst_source() -> Path | None:
    """$NUAA_SOURCE, else the copy beside the repository, else the carried copy."""
    env = os.environ.get(SOURCE_ENV)
    candidates = [Path(env)] if env else [LOCAL_SIRST, CARRIED_SIRST]
    return next((p for p in candidates if (p / "idx_427").is_dir()), None)


def missing(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def import_session() -> types.ModuleType:
    """`gglops.stages.train.session` without the package's __init__ where ray/mlflow are absent
    (the GPU image has torch but not the platform's Ray/MLflow stack)."""
    if (
        missing("ray", "mlflow", "pydantic_settings", "rich")
        and "gglops.stages.train" not in sys.modules
    ):
        package = types.ModuleType("gglops.stages.train")
        package.__path__ = [str(ROOT / "platform" / "gglops" / "stages" / "train")]
        sys.modules["gglops.stages.train"] = package
    from gglops.stages.train import session

    return session


def device_of(dry_run: bool) -> Any:
    import torch

    return torch.device("cpu" if dry_run else "cuda")


def write_json(path: Path, doc: Result) -> None:
    """Temp + rename: a reader (or a killed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


class Part:
    """A step's own result file, rewritten at every `put` (what survives a kill)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: Result = {}

    def put(self, **values: Any) -> None:
        self.data.update(values)
        write_json(self.path, self.data)


# --- (a) Ray Train on the GPU with NCCL --------------------------------------------------------


def platform_env(work: Path) -> dict[str, str]:
    """A local Ray and a sqlite MLflow in `work` (bench/accuracy.py's `_platform_env`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GGLOPS_RAY_ADDRESS", "RAY_ADDRESS")}
    return env | {
        "GGLOPS_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "GGLOPS_STORAGE_PATH": str(work / "ray"),
        "PYTHONUNBUFFERED": "1",
    }


def step_ray_gpu(part: Part, work: Path, dry_run: bool) -> None:
    if dry_run:
        part.put(status="skipped", reason="dry run on CPU: needs a CUDA GPU")
        return
    absent = missing("ray", "mlflow", "pydantic", "pydantic_settings", "typer", "rich")
    if absent:
        part.put(ray_train="not run", reason=f"cannot import {', '.join(absent)}")
        part.put(nccl_ddp=nccl_ddp_step(work))
        part.put(status="partial: DDP over NCCL without Ray")
        return
    from gglops.stages.train.trainer import BACKENDS

    env = platform_env(work) | {"NCCL_DEBUG": "INFO"}  # NCCL names itself in the logs
    gglops = [sys.executable, "-m", "gglops"]
    data = work / "synth"
    start = time.perf_counter()
    subprocess.run(
        [*gglops, "data", "synth", str(data), "--n", "64", "--size", "64", "--seed", "0"],
        check=True,
        cwd=work,
        env=env,
        capture_output=True,
    )
    part.put(synth_s=time.perf_counter() - start)
    sets = [
        "train.epochs=2",
        "train.workers=1",
        "train.cpus_per_worker=2",
        "train.run_name=gpu-check",
        "data.loader_workers=0",
    ]
    cmd = [*gglops, "train", "--params", str(DEMO), "--data", str(data), "--gpu"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    cmd += ["--model-dir", str(work / "ray_model"), "--out", str(work / "ray_out.json")]
    log = work / "ray_train.log"
    part.put(command=" ".join(cmd[2:]), backend_configured=BACKENDS[True])
    start = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(cmd, cwd=work, env=env, stdout=handle, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    result: Result = {
        "ray_train": "ran" if done.returncode == 0 else f"failed (exit {done.returncode})",
        "wall_s": time.perf_counter() - start,
        "nccl_seen": nccl_lines(text, RAY_LOGS),
        "log_tail": text.strip().splitlines()[-8:],
    }
    if done.returncode == 0:
        out = json.loads((work / "ray_out.json").read_text())
        result |= {k: out.get(k) for k in ("run_id", "precision", "images_per_s", "epochs")}
        result["model_dir"] = str(work / "ray_model")
    part.put(**result, status="ok" if done.returncode == 0 else "failed")


def nccl_lines(text: str, ray_logs: Path, limit: int = 3) -> list[str]:
    """`NCCL INFO` lines (NCCL_DEBUG=INFO) in the driver's output and Ray's worker logs: the
    proof that the process group's collectives ran over NCCL."""
    found = [line for line in text.splitlines() if "NCCL INFO" in line][:limit]
    if ray_logs.is_dir():
        for log in sorted(ray_logs.glob("worker-*")):
            lines = log.read_text(errors="replace").splitlines()
            found += [line for line in lines if "NCCL INFO" in line][: limit - len(found)]
            if len(found) >= limit:
                break
    return found


def nccl_ddp_step(work: Path, steps: int = 3, backend: str = "nccl") -> Result:
    """One-rank DDP over NCCL (the process group Ray Train sets up), a few bf16 steps."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from gglnet import LOSSES, GGLNet

    store = dist.FileStore(str(work / f"{backend}.store"), 1)
    dist.init_process_group(backend, store=store, rank=0, world_size=1)
    try:
        device = torch.device("cuda", 0) if backend == "nccl" else torch.device("cpu")
        ids = [0] if device.type == "cuda" else None
        model = DistributedDataParallel(GGLNet(width_mult=0.5).to(device), device_ids=ids)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        images = torch.rand(8, 3, 64, 64, device=device)
        masks = (torch.rand(8, 1, 64, 64, device=device) > 0.998).float()
        losses = []
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(images)
            loss = LOSSES["bce_soft_iou"](logits.float(), masks)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        flag = torch.ones(1, device=device)
        dist.all_reduce(flag)
        return {"ran": True, "backend": dist.get_backend(), "losses": losses}
    finally:
        dist.destroy_process_group()


# --- (b) train_step on the GPU -----------------------------------------------------------------


def step_throughput(part: Part, work: Path, dry_run: bool) -> None:
    import torch

    from bench import train_step as ts

    device = device_of(dry_run)
    if dry_run:
        recipes = [ts.Recipe("dry32", 32, 2, 0.25)]
        names, rounds, steps, warmup = ("fp32", "bf16", "bf16_cl", "bf16_cl_compile"), 2, 2, 2
    else:
        recipes = [ts.Recipe("gpu256", 256, 16, 1.0), ts.Recipe("gpu512", 512, 16, 1.0)]
        names = ("fp32", "bf16", "bf16_cl", "bf16_cl_compile")
        rounds, steps, warmup = 3, 4, 3
    variants = [ts.BY_NAME[n] for n in names]
    part.put(
        device=ts._device_name(device),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        tf32_cudnn=torch.backends.cudnn.allow_tf32,
        note="dry run on CPU" if dry_run else "peak memory: max allocated during the warm-up",
    )
    for recipe in recipes:  # one size at a time: a timeout keeps the sizes done
        detail = ts.run(
            [recipe],
            variants,
            device,
            threads=1 if dry_run else ts.THREADS,  # shared CPUs: one thread behaves
            rounds=rounds,
            steps=steps,
            warmup=warmup,
            log=lambda line: print(line, flush=True),
        )
        result = detail["recipes"][recipe.name]
        rows = result["variants"]
        best = result["best"]
        summary = {
            "best": best,
            "fp32_images_per_s": rows["fp32"]["images_per_s"],
            "best_images_per_s": rows[best]["images_per_s"],
            "speedup_vs_fp32": rows[best]["images_per_s"] / rows["fp32"]["images_per_s"],
            "fraction_of_fp32_peak": ts.fraction_of_peak(
                result["forward_gflop_per_image"],
                rows[best]["images_per_s"],
                detail["matmul_peak_gflops"],
            ),
            "matmul_peak_gflops": detail["matmul_peak_gflops"],
            "table": result["table"],
        }
        part.put(**{recipe.name: summary}, status="ok")


# --- (c) the PAL recipe on SIRST ---------------------------------------------------------------


def pal_params(root: Path, dry_run: bool) -> Any:
    from gglops.core.params import load_params

    sets = [f"data.root={root}", f"train.epochs={PAL_EPOCHS}"]
    workers = min(4, len(os.sched_getaffinity(0)) - 1)
    sets.append(f"data.loader_workers={max(workers, 0)}")
    if dry_run:  # tiny: what runs is the code path, not the recipe
        sets += ["model.width_mult=0.25", "data.patch_size=32", "data.image_size=32"]
        sets += ["train.epochs=1", "train.batch_size=8", "data.loader_workers=0"]
    return load_params(PAL, sets)


def step_pal(part: Part, work: Path, dry_run: bool) -> None:
    import torch

    root = sirst_source()
    if root is None:
        part.put(status="skipped", reason=f"no NUAA-SIRST (set ${SOURCE_ENV} or carry .gpucheck)")
        return
    absent = missing("pydantic", "scipy", "PIL", "yaml")
    if absent:
        part.put(status="skipped", reason=f"cannot import {', '.join(absent)}")
        return
    from gglops.model.bundle import save_bundle

    session_module = import_session()
    params = pal_params(root, dry_run)
    device = device_of(dry_run)
    if dry_run:
        torch.set_num_threads(1)
    start = time.perf_counter()
    session = session_module.build_session(params, root, device=device)
    part.put(
        source=str(root),
        recipe=str(PAL.relative_to(ROOT)),
        precision=session.precision,
        channels_last=params.train.channels_last,
        batch_size=params.train.batch_size,
        patch=params.data.train_size,
        loader_workers=params.data.loader_workers,
        train_images=len(session.dataset),
        select_images=len(session.eval_set),
        build_s=time.perf_counter() - start,
        note="dry run on CPU" if dry_run else "TrainSession in-process (no Ray, no checkpoint)",
    )
    epochs: list[Result] = []
    for epoch in range(params.train.epochs):
        stats = session.train_epoch(epoch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        scores = session.validate()
        validate_s = time.perf_counter() - start
        epochs.append(
            {
                "epoch": epoch,
                "loss": stats.loss,
                "train_s": stats.seconds,
                "images_per_s": stats.images / stats.seconds,
                "validate_s": validate_s,
                "val_miou": scores.get("miou"),
            }
        )
        part.put(epochs=epochs, **projection(epochs, PAL_FULL_EPOCHS))
    bundle = save_bundle(session.net, work / "pal_model", params.model.width_mult)
    memory = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    part.put(model_dir=str(bundle), peak_memory_mb=memory, status="ok")


def projection(epochs: list[Result], full: int) -> Result:
    """Time for `full` epochs: the first epoch as measured, the rest at the later epochs'
    mean (train + validate; epoch 0 carries warm-up: cudnn, allocator, first decodes)."""
    per = [e["train_s"] + e["validate_s"] for e in epochs]
    steady = per[1:] or per
    mean = sum(steady) / len(steady)
    total = per[0] + mean * (full - 1)
    return {
        "epoch_s_steady": mean,
        f"projected_{full}_epochs_s": total,
        f"projected_{full}_epochs_h": total / 3600,
    }


# --- (d) ONNX parity of the GPU-trained model --------------------------------------------------


def parity_images(limit: int = 8) -> tuple[list[Any], str]:
    root = sirst_source()
    if root is None:
        return [], "synthetic inputs"
    from gglops.data.dataset import load_pair
    from gglops.data.layouts import resolve_layout

    samples = resolve_layout(root, "nuaa-sirst", "idx_427").test[:limit]
    return [load_pair(s)[0].numpy() for s in samples], f"{len(samples)} SIRST test images"


def step_onnx(part: Part, work: Path, dry_run: bool) -> None:
    absent = missing("onnx", "onnxruntime", "pydantic")
    if absent:
        part.put(status="skipped", reason=f"cannot import {', '.join(absent)}")
        return
    from gglops.model.bundle import load_bundle
    from gglops.model.export import OPSETS, PARITY_MAX_ABS, export_onnx

    bundles = {
        name: work / folder
        for name, folder in (("pal", "pal_model"), ("ray_gpu", "ray_model"))
        if (work / folder / "model.pt").exists()
    }
    if not bundles:
        part.put(status="skipped", reason="no GPU-trained model: steps pal and ray_gpu left none")
        return
    images, source = parity_images()
    device = device_of(dry_run)
    part.put(source=source, rule=f"max abs diff <= {PARITY_MAX_ABS:g} and no mask pixel differs")
    for name, bundle in bundles.items():
        start = time.perf_counter()
        path = export_onnx(load_bundle(bundle), work / f"{name}.onnx")  # the product export
        row: Result = {"model_dir": str(bundle), "opset": OPSETS["legacy"]}
        row |= {"bytes": path.stat().st_size, "export_s": time.perf_counter() - start}
        row |= cpu_parity(load_bundle(bundle), path, images, source)
        if device.type == "cuda":
            row |= cuda_parity(bundle, path, images, source)
        part.put(**{name: row})
    passed = all(part.data[name]["passed"] for name in bundles)
    part.put(status="ok" if passed else "failed: the parity rule (see each model's row)")


def cpu_parity(model: Any, path: Path, images: list[Any], source: str) -> Result:
    """`gglops export`'s parity check (torch on the CPU vs onnxruntime), and how many pixels
    sit so near the 0.5 threshold that a difference within the tolerance flips them."""
    import numpy as np

    from gglops.model.export import check_parity, onnx_prob_fn, synthetic_inputs
    from gglops.model.inference import predict_probs, torch_prob_fn

    inputs = images or synthetic_inputs()
    torch_fn = torch_prob_fn(model)
    report = check_parity(torch_fn, onnx_prob_fn(path), inputs, source)
    near = sum(
        int((np.abs(predict_probs(torch_fn, image) - 0.5) <= report.max_abs_diff).sum())
        for image in inputs
    )
    return {
        "passed": report.passed,
        "max_abs_diff_cpu": report.max_abs_diff,
        "mask_mismatch_pixels": report.mask_mismatch_pixels,
        "pixels_within_max_diff_of_threshold": near,
    }


def cuda_parity(bundle: Path, path: Path, images: list[Any], source: str) -> Result:
    """The model on the GPU in true fp32 (TF32 off) against onnxruntime on the CPU."""
    import torch

    from gglops.model.bundle import load_bundle
    from gglops.model.export import check_parity, onnx_prob_fn, synthetic_inputs
    from gglops.model.inference import torch_prob_fn

    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        model = load_bundle(bundle).to(torch.device("cuda"))
        inputs = images or synthetic_inputs()
        report = check_parity(torch_prob_fn(model), onnx_prob_fn(path), inputs, source)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    return {
        "max_abs_diff_cuda_fp32": report.max_abs_diff,
        "mask_mismatch_pixels_cuda": report.mask_mismatch_pixels,
    }


STEP_FUNCTIONS: dict[str, Callable[[Part, Path, bool], None]] = {
    "ray_gpu": step_ray_gpu,
    "pal": step_pal,
    "onnx": step_onnx,
    "throughput": step_throughput,
}


# --- the orchestrator ------------------------------------------------------------------------


def environment(dry_run: bool) -> Result:
    import torch

    info: Result = {
        "host": platform.node(),
        "python": sys.executable,
        "python_version": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": len(os.sched_getaffinity(0)),
        "sirst": str(sirst_source()),
        "missing_packages": missing(
            "pydantic", "pydantic_settings", "ray", "mlflow", "onnx", "onnxruntime", "scipy"
        ),
    }
    if not dry_run:
        props = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": torch.cuda.get_device_name(0),
            "gpu_memory_gib": props.total_memory / 2**30,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return info


def run_step(name: str, work: Path, budget_s: float, dry_run: bool) -> Result:
    """`name` in a child process (its own CUDA context and memory), killed at `budget_s`."""
    part = work / f"{name}.json"
    cmd = [sys.executable, "-m", "bench.gpu_check", "--step", name, "--work", str(work)]
    cmd += ["--dry-run"] if dry_run else []
    log = work / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as handle:
        child = subprocess.Popen(
            cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc: int | None = child.wait(timeout=max(budget_s, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the step's own group: Ray, loader workers
            child.wait()
            rc = None
    result: Result = json.loads(part.read_text()) if part.exists() else {}
    result["seconds"] = time.perf_counter() - start
    result["budget_s"] = budget_s
    if rc is None:
        result["status"] = f"timed out after {budget_s:.0f} s (results so far kept)"
    elif rc != 0:
        result["status"] = f"failed (exit {rc})"
    if rc != 0:
        result["log_tail"] = log.read_text(errors="replace").strip().splitlines()[-12:]
    return result


def orchestrate(out: Path, steps: list[str], dry_run: bool, deadline_s: float) -> Result:
    begin = time.perf_counter()
    doc: Result = {
        "check": "issue 27 GPU check",
        "dry_run": dry_run,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "deadline_s": deadline_s,
        "environment": environment(dry_run),
        "steps": {},
    }
    if dry_run:
        doc["note"] = "dry run on CPU: tiny sizes, to prove the code paths; no figure is a GPU's"
    write_json(out, doc)
    scale = DRY_SCALE if dry_run else 1.0
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        for name in steps:
            left = deadline_s - (time.perf_counter() - begin)
            if left < 5:
                doc["steps"][name] = {"status": "skipped: the check's deadline was reached"}
                write_json(out, doc)
                continue
            print(f"[gpu_check] {name} (budget {min(BUDGETS_S[name] * scale, left):.0f} s)")
            doc["steps"][name] = {"status": "running"}
            write_json(out, doc)
            result = run_step(name, work, min(BUDGETS_S[name] * scale, left), dry_run)
            doc["steps"][name] = result
            write_json(out, doc)
            print(f"[gpu_check] {name}: {result.get('status')} in {result['seconds']:.0f} s")
    doc["total_s"] = time.perf_counter() - begin
    write_json(out, doc)
    return doc


def default_out() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu_check.json" if out else ROOT / "bench" / "gpu_check.json"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU")
    parser.add_argument("--out", type=Path, help="default: $OUT/gpu_check.json or bench/")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, help="seconds in all")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # a child's one step
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print(NEEDS_GPU, flush=True)
        return 2
    if args.step:
        part = Part(args.work / f"{args.step}.json")
        try:
            STEP_FUNCTIONS[args.step](part, args.work, args.dry_run)
        except Exception as exc:
            part.put(status="failed", error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
            return 1
        return 0
    steps = args.steps.split(",")
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step {', '.join(unknown)} (known: {', '.join(STEPS)})")
    out = args.out or default_out()
    doc = orchestrate(out, steps, args.dry_run, args.deadline)
    print(f"[gpu_check] wrote {out} ({doc['total_s']:.0f} s)")
    bad = ("failed", "timed out")
    failed = [n for n, r in doc["steps"].items() if str(r.get("status")).startswith(bad)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
