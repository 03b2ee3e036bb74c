"""Training throughput: `gglops train` with one Ray Train worker vs a bare torch loop.

Same model, data, batch size, number of steps and CPU threads, measured in one process
run. Images/s is taken over the training phase of each epoch after the first (warm-up);
Ray's start-up and the per-epoch validation are reported separately, so the ratio shows
what the Ray Train loop (DDP wrapper, loader, reporting, checkpointing) costs per step.

    python -m bench.train_throughput   # prints the figures as JSON
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "data.image_size": 64,
    "model.width_mult": 0.5,
    "train.batch_size": 8,
    "train.loss": "bce_soft_iou",
    "train.deterministic": False,
    "train.augment.strength": 0.5,
    "data.layout": "auto",
    "data.split": None,
}


def _dataset(root: Path, n: int, size: int) -> Path:
    from gglops.data.synth import synthesize

    return synthesize(root, n, size, 0)


def _bare_loop(params: Any, data_root: Path, epochs: int, threads: int) -> list[float]:
    """Images/s of each epoch of a plain torch loop: DataLoader, model, loss, Adam."""
    import torch
    from torch.utils.data import DataLoader

    from gglnet import LOSSES, GGLNet
    from gglops.data.dataset import TrainDataset
    from gglops.data.layouts import resolve_layout

    torch.set_num_threads(threads)
    torch.manual_seed(params.train.seed)
    index = resolve_layout(data_root, params.data.layout, params.data.split)
    dataset = TrainDataset(
        index.train,
        image_size=params.data.image_size,
        fit=params.data.fit,
        augment_strength=params.train.augment.strength,
        seed=params.train.seed,
    )
    loader = DataLoader(dataset, batch_size=params.train.batch_size, shuffle=True, drop_last=True)
    model = GGLNet(width_mult=params.model.width_mult).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=params.train.lr)
    loss_fn = LOSSES[params.train.loss]
    rates = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        start, seen = time.perf_counter(), 0
        for images, masks in loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), masks).backward()
            optimizer.step()
            seen += len(images)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def _ray_run(params: Any, data_root: Path, storage: Path, threads: int) -> dict[str, Any]:
    import ray

    from gglops.settings import Settings
    from gglops.train.trainer import build_trainer

    start = time.perf_counter()
    if not ray.is_initialized():
        ray.init(num_cpus=threads + 1, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - start
    trainer = build_trainer(
        params,
        data_root,
        Settings(storage_path=str(storage)),
        "bench",
        mlflow_run_id=None,
        echo=False,
        cpus_per_worker=threads,
    )
    start = time.perf_counter()
    summary = trainer.fit().return_value
    fit_s = time.perf_counter() - start
    history = summary["history"]
    return {
        "rates": [r["images_per_s"] for r in history],
        "epoch_s": [r["epoch_s"] for r in history],
        "ray_start_s": ray_start_s,
        "fit_s": fit_s,
    }


def measure(epochs: int = 4, images: int = 96, threads: int | None = None) -> dict[str, Any]:
    """Figures for bench/results.json; the ratio target is ≥ 0.97."""
    from gglops.params import Params

    threads = threads or min(2, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = _dataset(Path(tmp) / "data", n=images, size=DEFAULTS["data.image_size"])
        params = Params().with_overrides({**DEFAULTS, "train.epochs": epochs})
        # Bare loop before and after the Ray run: drift of a shared machine averages out.
        before = _bare_loop(params, root, epochs, threads)[1:]
        ray_run = _ray_run(params, root, Path(tmp) / "ray", threads)
        after = _bare_loop(params, root, epochs, threads)[1:]
        bare = statistics.median(before + after)
    ray_rate = statistics.median(ray_run["rates"][1:])
    return {
        "ray_train_throughput_ratio": ray_rate / bare,
        "ray_train_images_per_s": ray_rate,
        "bare_torch_images_per_s": bare,
        "ray_train_start_s": ray_run["ray_start_s"],
        "ray_train_fit_s": ray_run["fit_s"],
        "ray_train_epoch_s": statistics.median(ray_run["epoch_s"][1:]),
        "ray_train_threads": threads,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
