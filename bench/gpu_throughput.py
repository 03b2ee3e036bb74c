"""1-GPU training throughput with AMP and channels-last (the platform's GPU path).

Runs `gglops.stages.train.session` (the code Ray Train runs on every rank) on one CUDA device:
default model, batch 8, 256², epoch 0 as warm-up. Without a GPU every figure says so.

    python -m bench.gpu_throughput   # prints the figures as JSON
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured: no GPU lent"
SIZE, IMAGES, EPOCHS = 256, 96, 3


def _rate(params: Any, root: Path) -> float:
    import torch

    from gglops.stages.train.session import build_session

    session = build_session(params, root, device=torch.device("cuda"))
    rates = []
    for epoch in range(EPOCHS):
        stats = session.train_epoch(epoch)
        torch.cuda.synchronize()
        rates.append(stats.images / stats.seconds)
    return max(rates[1:])


def measure() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"gpu_amp_channels_last_images_per_s": NOT_MEASURED, "gpu_device": NOT_MEASURED}
    from gglops.core.params import Params
    from gglops.data.synth import synthesize

    base = {"data.image_size": SIZE, "data.layout": "auto", "data.split": None}
    configs = {
        "gpu_amp_channels_last": {"train.precision": "auto", "train.channels_last": True},
        "gpu_fp32": {"train.precision": "fp32", "train.channels_last": False},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(Path(tmp) / "data", IMAGES, SIZE, 0)
        figures: dict[str, Any] = {
            f"{name}_images_per_s": _rate(Params().with_overrides({**base, **over}), root)
            for name, over in configs.items()
        }
    figures["gpu_device"] = torch.cuda.get_device_name(0)
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
