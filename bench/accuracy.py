"""Accuracy: the platform (`gglops train`) vs a plain PyTorch loop, same files, same recipe.

Both train the default (full-width) GGL-Net on one synthetic benchmark written once by
`gglops data synth` (NUAA-SIRST layout, split idx_427), each with the same seeds:

- platform: the real `gglops train` CLI in a subprocess, as a user runs it (local Ray, MLflow
  on a sqlite file in a temp dir), with the reference recipe: Adam lr 1e-4, batch 4, soft-IoU,
  no LR schedule, no clipping, `train.augment.p` 0.5, `data.fit` resize, deterministic. Its
  per-epoch test metrics come from `--history`.
- baseline: the loop below. It shares no data code with gglops: PIL reads the PNGs, masks are
  grey > 127.5, images /255 replicated to 3 channels, random horizontal/vertical flips only,
  a seeded shuffling DataLoader; `gglnet.GGLNet()`, `gglnet.soft_iou_loss`, Adam, same lr,
  batch size and epochs.

Both are scored on the test split after every epoch by `gglops.core.metrics.IRSTDMetrics`
(threshold 0.5, each image at its original size); the headline figures are the final
epoch's, mean over seeds (no pick of a best epoch on the test split). Both use one CPU
thread, because a `gglops train` worker gets one CPU: a platform run and a baseline run of
the same seed then share the 2 cores, side by side.

Collapse rule (fails the bench): with E epochs and k = ceil(E / 10), a run has collapsed
when its test mIoU is below 0.05 at every epoch k..E (1-based), i.e. it has not reached
0.05 by epoch k and never does afterwards. Epochs before k are warm-up and do not count, so
a run that touched 0.05 early and fell below it from epoch k on counts as collapsed too.

    python -m bench.accuracy                          # the full bench (~25 min on 2 cores)
    python -m bench.accuracy --n 24 --size 32 --epochs 2 --width-mult 0.25 --out /tmp/a.json
                                                      # a smoke run (results.json untouched)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bench.common import BenchFailedError, run_child, run_standalone

BIN = Path(sys.executable).parent
MIN_MIOU = 0.05
SPLIT = "idx_427"
METRICS = ("miou", "niou", "pd", "fa")
RUN_TIMEOUT_S = 3600.0  # one run; the whole bench is sized for ~25 min
EPOCH_LINE = re.compile(r"\[gglops\] (epoch \d+/\d+.*)$")


@dataclass(frozen=True)
class Protocol:
    """Everything that defines the benchmark; recorded with the figures."""

    n: int = 300  # synth images (~240 trainval / 60 test)
    size: int = 128  # synth side = data.image_size = evaluation size
    data_seed: int = 7
    epochs: int = 8
    seeds: tuple[int, ...] = (0, 1)
    lr: float = 1e-4
    batch_size: int = 4
    width_mult: float = 1.0
    augment_p: float = 0.5
    min_miou: float = MIN_MIOU  # collapse floor

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Protocol:
        raw = json.loads(text)
        return cls(**{**raw, "seeds": tuple(raw["seeds"])})


@dataclass(frozen=True)
class RunResult:
    """One trainer × seed: the per-epoch test metrics (1-based epochs) and its wall time."""

    trainer: str  # "platform" | "baseline"
    seed: int
    curve: list[dict[str, float]]  # per epoch: epoch, loss, miou, niou, pd, fa
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float]:
        return {k: self.curve[-1][k] for k in METRICS}

    @property
    def label(self) -> str:
        return f"{self.trainer} seed {self.seed}"


# --- collapse rule ---------------------------------------------------------------------------


def collapse_from(epochs: int) -> int:
    """First epoch (1-based) the collapse rule looks at: ceil(epochs / 10)."""
    return max(1, math.ceil(epochs / 10))


def collapsed(miou: Sequence[float], epochs: int, floor: float = MIN_MIOU) -> bool:
    """Below `floor` at every epoch from `collapse_from(epochs)` to the last one."""
    watched = miou[collapse_from(epochs) - 1 :]
    return len(watched) > 0 and all(v < floor for v in watched)


# --- data ------------------------------------------------------------------------------------


def synth(out: Path, protocol: Protocol) -> Path:
    """The benchmark's files, written by the CLI a user would run."""
    cmd = [str(BIN / "gglops"), "data", "synth", str(out), "--n", str(protocol.n)]
    cmd += ["--size", str(protocol.size), "--seed", str(protocol.data_seed)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return out


def read_split(root: Path, name: str) -> list[str]:
    text = (root / SPLIT / f"{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_pair(root: Path, stem: str) -> tuple[Any, Any]:
    """(image (3, H, W) float32 in [0, 1], mask (1, H, W) float32 in {0, 1}), PIL only."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(root / "images" / f"{stem}.png").convert("L"), np.float32)
    mask = np.asarray(Image.open(root / "masks" / f"{stem}_pixels0.png").convert("L"))
    image = np.repeat((grey / 255.0)[None], 3, axis=0)
    return image, (mask > 127.5).astype(np.float32)[None]


# --- baseline: a plain torch loop ------------------------------------------------------------


class FlipDataset:
    """In-memory pairs with independent random horizontal and vertical flips (p 0.5 each)."""

    def __init__(self, pairs: list[tuple[Any, Any]], seed: int) -> None:
        import numpy as np

        self.pairs, self.rng = pairs, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import numpy as np
        import torch

        image, mask = self.pairs[index]
        for axis in (-1, -2):  # horizontal, vertical
            if self.rng.random() < 0.5:
                image, mask = np.flip(image, axis), np.flip(mask, axis)
        return torch.from_numpy(image.copy()), torch.from_numpy(mask.copy())


def evaluate(model: Any, pairs: list[tuple[Any, Any]]) -> dict[str, float]:
    """Test metrics at each image's own size: zero-pad to a multiple of 16, crop back."""
    import numpy as np
    import torch

    from gglops.core.metrics import IRSTDMetrics

    metrics = IRSTDMetrics()
    model.eval()
    with torch.no_grad():
        for image, mask in pairs:
            h, w = image.shape[-2:]
            padded = np.pad(image, ((0, 0), (0, -h % 16), (0, -w % 16)))
            logits = model(torch.from_numpy(padded)[None])
            metrics.update(torch.sigmoid(logits)[0, 0, :h, :w].numpy(), mask[0])
    return metrics.compute()


def train_baseline(root: Path, protocol: Protocol, seed: int) -> RunResult:
    """The plain loop; prints one line per epoch."""
    import torch
    from torch.utils.data import DataLoader

    from gglnet import GGLNet, soft_iou_loss

    start = time.perf_counter()
    torch.set_num_threads(1)  # as a `gglops train` worker (1 CPU)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    train = [read_pair(root, s) for s in read_split(root, "trainval")]
    test = [read_pair(root, s) for s in read_split(root, "test")]
    dataset = FlipDataset(train, seed)
    loader = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=protocol.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )  # the last partial batch is kept, as the reference (and the platform) do
    model = GGLNet(width_mult=protocol.width_mult)
    optimizer = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    curve = []
    for epoch in range(1, protocol.epochs + 1):
        model.train()
        tick, total, seen = time.perf_counter(), 0.0, 0
        for images, masks in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = soft_iou_loss(model(images), masks)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(images), seen + len(images)
        rate = seen / (time.perf_counter() - tick)
        point = {"epoch": epoch, "loss": total / max(seen, 1), **evaluate(model, test)}
        curve.append(point)
        print(f"{_epoch_text(point, protocol.epochs)}  {rate:.1f} img/s", flush=True)
    return RunResult("baseline", seed, curve, time.perf_counter() - start)


def _epoch_text(point: dict[str, float], epochs: int) -> str:
    return (
        f"epoch {point['epoch']}/{epochs}  loss {point['loss']:.4f}  mIoU {point['miou']:.4f}  "
        f"nIoU {point['niou']:.4f}  Pd {point['pd']:.3f}  Fa {point['fa'] * 1e6:.1f}e-6"
    )


# --- running the two trainers ----------------------------------------------------------------


def _stream(
    cmd: list[str],
    log: Path,
    relay: Callable[[str], None],
    timeout_s: float = RUN_TIMEOUT_S,
    **kw: Any,
) -> None:
    """Run `cmd`, everything to `log`, progress lines to `relay`; a failure names the log.
    A run still going after `timeout_s` is killed: a hung Ray must not hang `make bench`."""
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, **kw
        )
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                relay(line.rstrip("\n"))
            rc = proc.wait()
        finally:
            watchdog.cancel()
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{cmd[0]} … exited {rc}; log {log}:\n{tail}")


def _printer(
    label: str, pattern: re.Pattern[str], prefix: str = "[accuracy]"
) -> Callable[[str], None]:
    """Relay progress lines once each (Ray's log forwarding can repeat a worker's line)."""
    seen: set[str] = set()

    def relay(line: str) -> None:
        match = pattern.search(line)
        if match and match.group(1) not in seen:
            seen.add(match.group(1))
            print(f"{prefix} {label}: {match.group(1)}", flush=True)

    return relay


def augment_key() -> str:
    """train.augment.strength was renamed train.augment.p: the name params.py has now."""
    from gglops.core.params import AugmentParams

    return "p" if "p" in AugmentParams.model_fields else "strength"


def platform_params(protocol: Protocol, root: Path) -> dict[str, Any]:
    """params.yaml for `gglops train`: the reference recipe on the benchmark's files."""
    from gglops.core.params import DataParams

    data = {"dataset": "synthetic-accuracy", "root": str(root), "layout": "nuaa-sirst"}
    data |= {"split": SPLIT, "image_size": protocol.size, "fit": "resize", "loader_workers": 0}
    if "eval_protocol" in DataParams.model_fields:
        data["eval_protocol"] = "original"
    train = {
        "epochs": protocol.epochs,
        "batch_size": protocol.batch_size,
        "lr": protocol.lr,
        "weight_decay": 0.0,
        "loss": "soft_iou",
        "lr_schedule": "none",
        "grad_clip": 0.0,
        "deterministic": True,
        "workers": 1,
        "use_gpu": False,
        "keep_checkpoints": 1,
        "augment": {augment_key(): protocol.augment_p},
    }
    return {"data": data, "model": {"width_mult": protocol.width_mult}, "train": train}


def _platform_env(work: Path) -> dict[str, str]:
    """A local Ray and a sqlite MLflow in `work`: no stack needed, nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if k not in ("GGLOPS_RAY_ADDRESS", "RAY_ADDRESS")}
    return env | {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "GGLOPS_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "GGLOPS_STORAGE_PATH": str(work / "ray"),
        "PYTHONUNBUFFERED": "1",
    }


def run_platform(root: Path, protocol: Protocol, seed: int, work: Path) -> RunResult:
    """`gglops train` on the benchmark; the curve is its `--history` (test split, per epoch)."""
    import csv

    run = work / f"platform-s{seed}"
    run.mkdir()
    params = run / "params.yaml"
    params.write_text(yaml.safe_dump(platform_params(protocol, root), sort_keys=False))
    cmd = [str(BIN / "gglops"), "train", "--params", str(params), "--data", str(root)]
    cmd += ["--set", f"train.seed={seed}", "--set", f"train.run_name=accuracy-s{seed}"]
    cmd += ["--no-gpu", "--history", str(run / "history.csv"), "--out", str(run / "out.json")]
    start = time.perf_counter()
    label = f"platform seed {seed}"
    _stream(cmd, run / "train.log", _printer(label, EPOCH_LINE), cwd=run, env=_platform_env(run))
    wall = time.perf_counter() - start
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    curve = [
        {"epoch": int(r["epoch"]) + 1, "loss": float(r["train_loss"])}
        | {k: float(r[f"val_{k}"]) for k in METRICS}
        for r in rows
    ]
    out = json.loads((run / "out.json").read_text())
    # `metrics` there is the best epoch picked on the test split: kept as detail only.
    extra = {k: out[k] for k in ("run_id", "best_epoch", "metrics", "images_per_s") if k in out}
    return RunResult("platform", seed, curve, wall, extra)


def run_baseline(root: Path, protocol: Protocol, seed: int, work: Path) -> RunResult:
    """`train_baseline` in its own process (its own thread settings, RNG and memory)."""
    run = work / f"baseline-s{seed}"
    run.mkdir()
    out = run / "result.json"
    cmd = [sys.executable, "-m", "bench.accuracy", "baseline", "--data", str(root)]
    cmd += ["--seed", str(seed), "--protocol", protocol.to_json(), "--out", str(out)]
    pattern = re.compile(r"^(epoch \d+/\d+.*)$")
    repo = Path(__file__).resolve().parents[1]
    # One thread from the start, as Ray gives its 1-CPU worker (OMP_NUM_THREADS=1).
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    relay = _printer(f"baseline seed {seed}", pattern)
    _stream(cmd, run / "train.log", relay, cwd=repo, env=env)
    raw = json.loads(out.read_text())
    return RunResult(**raw)


def run_all(root: Path, protocol: Protocol, work: Path, jobs: int) -> list[RunResult]:
    """Seed by seed, the two trainers side by side (`jobs` 2) or one after the other."""
    results = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for seed in protocol.seeds:
            pair = [pool.submit(fn, root, protocol, seed, work) for fn in TRAINERS.values()]
            results += [f.result() for f in pair]
    return results


TRAINERS: dict[str, Callable[[Path, Protocol, int, Path], RunResult]] = {
    "platform": run_platform,
    "baseline": run_baseline,
}


# --- figures ---------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def figures_of(
    runs: list[RunResult], protocol: Protocol, splits: dict[str, int], wall_s: float
) -> dict[str, Any]:
    """results.json entries: per-trainer means over seeds, the ratio, collapses, detail."""
    means = {
        trainer: {k: _mean([r.final[k] for r in runs if r.trainer == trainer]) for k in METRICS}
        for trainer in TRAINERS
    }
    out: dict[str, Any] = {
        f"accuracy_{k}_{trainer}": means[trainer][k] for trainer in TRAINERS for k in METRICS
    }
    base = means["baseline"]["miou"]
    ratio = means["platform"]["miou"] / base if base > 0 else "not measured: baseline mIoU is 0"
    record = {
        "data": f"gglops data synth --n {protocol.n} --size {protocol.size} "
        f"--seed {protocol.data_seed} (NUAA-SIRST layout, split {SPLIT})",
        "split_sizes": splits,
        "image_size": protocol.size,
        "evaluation": "test split, original resolution (= image_size), IRSTDMetrics, "
        "threshold 0.5, final epoch, mean over seeds",
        **{k: v for k, v in asdict(protocol).items() if k not in ("n", "size", "data_seed")},
        "augment": f"platform train.augment.{augment_key()} = {protocol.augment_p}; "
        "baseline random horizontal and vertical flips, p 0.5 each",
        "threads_per_run": 1,
    }
    out["accuracy_platform_vs_baseline"] = {"value": ratio, "protocol": record}
    floor = protocol.min_miou
    bad = [r.label for r in runs if collapsed([p["miou"] for p in r.curve], protocol.epochs, floor)]
    out["accuracy_collapsed_runs"] = {"value": len(bad), "runs": bad}
    out["accuracy_detail"] = {
        "protocol": record,
        "collapse_rule": f"test mIoU < {protocol.min_miou} at every epoch from "
        f"ceil(epochs/10) = {collapse_from(protocol.epochs)} to {protocol.epochs}",
        "wall_s": wall_s,
        "runs": [asdict(r) | {"final": r.final} for r in runs],
    }
    return out


def check_collapse(figures: dict[str, Any]) -> None:
    """Raise `BenchFailedError` (carrying the figures, so they are still saved) on any collapse."""
    bad = figures["accuracy_collapsed_runs"]["runs"]
    if bad:
        rule = figures["accuracy_detail"]["collapse_rule"]
        raise BenchFailedError(f"accuracy: collapsed runs ({rule}): {', '.join(bad)}", figures)


def measure(
    protocol: Protocol | None = None, jobs: int = 2, work: Path | None = None
) -> dict[str, Any]:
    """The whole bench: synth once, 2 trainers × seeds, figures (BenchFailedError on a collapse).
    `work` keeps the data, logs, histories and MLflow db there (else a temp dir)."""
    protocol = protocol or Protocol()
    if protocol.min_miou != MIN_MIOU:
        print(f"[accuracy] collapse floor {protocol.min_miou} (not {MIN_MIOU})", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gglops-accuracy-") as tmp:
        if work is not None:
            work.mkdir(parents=True, exist_ok=False)  # a second bench must not mix in
        root = synth((work or Path(tmp)) / "data", protocol)
        splits = {name: len(read_split(root, name)) for name in ("trainval", "test")}
        print(
            f"[accuracy] {protocol.n} synthetic {protocol.size}² images ({splits['trainval']} "
            f"train / {splits['test']} test), {protocol.epochs} epochs, seeds "
            f"{list(protocol.seeds)}, width {protocol.width_mult}, {jobs} run(s) at a time",
            flush=True,
        )
        runs = run_all(root, protocol, work or Path(tmp), jobs)
    figures = figures_of(runs, protocol, splits, time.perf_counter() - start)
    check_collapse(figures)
    return figures


# --- command line ----------------------------------------------------------------------------


def _bench_args(parser: argparse.ArgumentParser) -> None:
    d = Protocol()
    parser.add_argument("--n", type=int, default=d.n, help="synthetic images")
    parser.add_argument("--size", type=int, default=d.size, help="image side (multiple of 16)")
    parser.add_argument("--data-seed", type=int, default=d.data_seed)
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="e.g. 0,1")
    parser.add_argument("--width-mult", type=float, default=d.width_mult)
    parser.add_argument("--min-miou", type=float, default=d.min_miou, help="collapse floor")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    parser.add_argument("--work", type=Path, help="keep data, logs and histories here (new dir)")


def _protocol(args: argparse.Namespace) -> Protocol:
    seeds = tuple(int(s) for s in args.seeds.split(","))
    return replace(
        Protocol(),
        n=args.n,
        size=args.size,
        data_seed=args.data_seed,
        epochs=args.epochs,
        seeds=seeds,
        width_mult=args.width_mult,
        min_miou=args.min_miou,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["baseline"]:  # one baseline run, in the child process of run_baseline
        return run_child(
            argv[1:], "bench.accuracy baseline", "--protocol",
            lambda data, text, seed: train_baseline(data, Protocol.from_json(text), seed),
        )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _bench_args(parser)
    args = parser.parse_args(argv)
    return run_standalone(
        lambda: measure(_protocol(args), args.jobs, args.work), "[accuracy]", args.out
    )


if __name__ == "__main__":
    sys.exit(main())
