"""Training throughput: `gglops train` (Ray Train) vs a bare torch loop, and 1 vs 2 workers.

Same model, data, batch size, steps and CPU threads. Bare and Ray runs alternate `ROUNDS`
times and the medians are compared, so drift of a shared machine hits both alike. Within a
run the first epoch is warm-up and is dropped. The Ray rate counts everything a Ray epoch
costs except validation (which the bare loop does not do): the time between consecutive
`ray.train.report` arrivals at the controller (training, checkpoint write, report) minus
each epoch's validation time. Ray's start-up (init + `fit()` until the first epoch starts)
is reported on its own as `ray_startup_s`.

    python -m bench.train_throughput   # prints the figures as JSON
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.train import UserCallback

ROUNDS = 3
EPOCHS = 4
IMAGES = 320  # ~256 train images: ~7 s epochs, so per-epoch costs weigh as in real runs
DEFAULTS: dict[str, Any] = {
    "data.image_size": 64,
    "model.width_mult": 0.5,
    "train.batch_size": 8,
    "train.loss": "bce_soft_iou",
    "train.deterministic": False,
    "train.augment.p": 0.5,
    "data.layout": "auto",
    "data.split": None,
    "data.loader_workers": 0,
}


class ReportClock(UserCallback):
    """Appends the wall time of every report to a file: the callback runs in Ray's
    controller process, so a file is how the times reach the driver."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any):
        with self.path.open("a") as out:
            out.write(f"{time.time()}\n")


@dataclass(frozen=True)
class RayRun:
    steady_images_per_s: float  # epochs after the first: train + checkpoint + report
    train_phase_images_per_s: float  # what `gglops train` prints: the training phase only
    epoch_overhead_s: float  # per epoch beyond the training phase: checkpoint, report, sync
    startup_s: float  # fit() called → first epoch starts
    epochs: int


def _bare_loop(params: Any, data_root: Path, threads: int) -> float:
    """Images/s of a plain torch loop (DataLoader, model, loss, Adam) after epoch 0."""
    import torch
    from torch.utils.data import DataLoader

    from gglnet import LOSSES, GGLNet
    from gglops.data.dataset import TrainDataset
    from gglops.data.layouts import resolve_layout

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(params.train.seed)
    index = resolve_layout(data_root, params.data.layout, params.data.split)
    dataset = TrainDataset(
        index.train,
        image_size=params.data.image_size,
        fit=params.data.fit,
        augment_p=params.train.augment.p,
        seed=params.train.seed,
    )
    batch = params.train.batch_size
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    model = GGLNet(width_mult=params.model.width_mult).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=params.train.lr)
    loss_fn = LOSSES[params.train.loss]
    seen, start = 0, 0.0
    for epoch in range(params.train.epochs):
        if epoch == 1:  # epoch 0 is warm-up (decode cache, allocator)
            seen, start = 0, time.perf_counter()
        dataset.set_epoch(epoch)
        for images, masks in loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), masks).backward()
            if params.train.grad_clip > 0:  # the recipe clips; the same work on both sides
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.train.grad_clip)
            optimizer.step()
            seen += len(images)
    torch.set_num_threads(previous)
    return seen / (time.perf_counter() - start)


def _epoch_images(params: Any, data_root: Path) -> int:
    """Images one epoch trains on over all ranks (as `build_session` shards and drops)."""
    from gglops.data.layouts import resolve_layout

    n = len(resolve_layout(data_root, params.data.layout, params.data.split).train)
    world, batch = params.train.workers, params.train.batch_size
    per_rank = -(-n // world)  # DistributedSampler pads every rank to the same length
    drop_last = n // world >= 2 * batch
    return world * (per_rank // batch * batch if drop_last else per_rank)


def _ray_run(params: Any, data_root: Path, storage: Path, cpus: float) -> RayRun:
    from gglops.core.settings import Settings
    from gglops.stages.train.trainer import build_trainer

    clock = storage / "reports.txt"
    storage.mkdir(parents=True)
    trainer = build_trainer(
        params,
        data_root,
        Settings(storage_path=str(storage)),
        "bench",
        mlflow_run_id=None,
        callbacks=[ReportClock(clock)],
        echo=False,
        cpus_per_worker=cpus,
    )
    start = time.time()
    history = trainer.fit().return_value["history"]
    reports = [float(line) for line in clock.read_text().split()]
    images = _epoch_images(params, data_root)
    validate_s = [r["epoch_s"] - images / r["images_per_s"] for r in history]
    # Epochs 1..N-1 span reports[0]..reports[-1]; their validation is taken out of it.
    steady_s = reports[-1] - reports[0] - sum(validate_s[1:])
    phase = statistics.median(r["images_per_s"] for r in history[1:])
    return RayRun(
        steady_images_per_s=images * (len(history) - 1) / steady_s,
        train_phase_images_per_s=phase,
        epoch_overhead_s=steady_s / (len(history) - 1) - images / phase,
        startup_s=reports[0] - history[0]["epoch_s"] - start,
        epochs=len(history),
    )


def _init_ray(cpus: int) -> float:
    import ray

    start = time.perf_counter()
    if not ray.is_initialized():
        ray.init(num_cpus=cpus + 1, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - start


def _ratio_rounds(params: Any, root: Path, tmp: Path, threads: int, rounds: int) -> dict:
    """Alternate bare and Ray runs `rounds` times; medians of each, and their ratio."""
    bare, ray_runs = [], []
    for i in range(rounds):
        bare.append(_bare_loop(params, root, threads))
        print(f"[bench] train round {i + 1}/{rounds}: bare {bare[-1]:.1f} img/s", flush=True)
        ray_runs.append(_ray_run(params, root, tmp / f"ray-{i}", threads))
        print(
            f"[bench] train round {i + 1}/{rounds}: ray {ray_runs[-1].steady_images_per_s:.1f}"
            f" img/s (train phase {ray_runs[-1].train_phase_images_per_s:.1f})",
            flush=True,
        )
    steady = statistics.median(r.steady_images_per_s for r in ray_runs)
    phase = statistics.median(r.train_phase_images_per_s for r in ray_runs)
    bare_rate = statistics.median(bare)
    return {
        "ray_train_throughput_ratio": steady / bare_rate,
        "ray_train_images_per_s": steady,
        "ray_train_phase_throughput_ratio": phase / bare_rate,
        "bare_torch_images_per_s": bare_rate,
        "ray_startup_s": statistics.median(r.startup_s for r in ray_runs),
        "ray_epoch_overhead_s": statistics.median(r.epoch_overhead_s for r in ray_runs),
        "ray_train_rounds": {"bare": bare, "ray": [r.steady_images_per_s for r in ray_runs]},
    }


def _scaling(params: Any, root: Path, tmp: Path) -> dict[str, Any]:
    """1 vs 2 Ray Train workers of one CPU each (ideal ratio 2; the machine has 2 cores)."""
    rates = {}
    for workers in (1, 2):
        run_params = params.with_overrides({"train.workers": workers})
        run = _ray_run(run_params, root, tmp / f"scale-{workers}", 1.0)
        rates[workers] = run.steady_images_per_s
        print(f"[bench] scaling: {workers} worker(s) {rates[workers]:.1f} img/s", flush=True)
    return {
        "scaling_1_worker_images_per_s": rates[1],
        "scaling_2_workers_images_per_s": rates[2],
        "scaling_2_vs_1_workers": rates[2] / rates[1],
    }


def measure(
    epochs: int = EPOCHS, images: int = IMAGES, rounds: int = ROUNDS, scaling: bool = True
) -> dict[str, Any]:
    """Figures for bench/results.json; the ratio target is >= 0.97."""
    import ray

    from gglops.core.params import Params
    from gglops.data.synth import synthesize

    threads = min(2, len(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        root = synthesize(tmp / "data", images, DEFAULTS["data.image_size"], 0)
        params = Params().with_overrides({**DEFAULTS, "train.epochs": epochs})
        figures = {"ray_init_s": _init_ray(max(threads, 2))}
        try:
            figures |= _ratio_rounds(params, root, tmp, threads, rounds)
            if scaling:
                figures |= _scaling(params, root, tmp)
        finally:
            # A second Ray instance left on the machine would confuse the demo's Ray clients
            # ("Found multiple active Ray instances") and double their forwarded logs.
            ray.shutdown()
    figures |= {"ray_train_threads": threads, "ray_train_epochs": epochs}
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
