"""Is the data loader ever the bottleneck? Images/s of the training loader alone vs one
GGL-Net training step (forward + backward + Adam, full default model), same size and batch.

The loader figure is the steady state (decoded images cached after the first epoch, as in a
real run) with the augmentation block on every sample; the first, decoding epoch is reported
as well.

    python -m bench.loader_vs_step   # prints the figures as JSON
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SizeResult:
    size: int
    loader_cold_images_per_s: float  # first epoch: PNG decode + resize + augment
    loader_images_per_s: float  # later epochs: augment only (decoded images cached)
    step_images_per_s: float

    @property
    def ratio(self) -> float:
        return self.loader_images_per_s / self.step_images_per_s


def _loader_rates(root: Path, size: int, batch: int, epochs: int) -> list[float]:
    from torch.utils.data import DataLoader

    from gglops.data.dataset import TrainDataset
    from gglops.data.layouts import resolve_layout

    dataset = TrainDataset(resolve_layout(root).train, image_size=size, augment_p=1.0)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    rates = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        start, seen = time.perf_counter(), 0
        for images, _masks in loader:
            seen += len(images)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def _step_rate(size: int, batch: int, steps: int) -> float:
    import torch

    from gglnet import LOSSES, GGLNet

    torch.manual_seed(0)
    model = GGLNet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.rand(batch, 3, size, size)
    masks = (torch.rand(batch, 1, size, size) > 0.99).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        LOSSES["soft_iou"](model(images), masks).backward()
        optimizer.step()

    step()  # warm-up: allocator, kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def measure(
    sizes: tuple[int, ...] = (64, 256),
    batch: int = 4,
    n_images: int = 80,
    epochs: int = 3,
    steps: int = 3,
) -> dict[str, Any]:
    """Figures per size: `loader_vs_step_<S>` = loader images/s ÷ training-step images/s."""
    from gglops.data.synth import synthesize

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            root = synthesize(Path(tmp) / f"s{size}", n_images, size, seed=0)
            rates = _loader_rates(root, size, batch, epochs)
            results.append(
                SizeResult(size, rates[0], max(rates[1:]), _step_rate(size, batch, steps))
            )
    out: dict[str, Any] = {"loader_batch": batch}
    for r in results:
        out[f"loader_vs_step_{r.size}"] = r.ratio
        out.update({f"{k}_{r.size}": v for k, v in asdict(r).items() if k != "size"})
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
