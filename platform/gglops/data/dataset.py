"""torch Datasets over `Sample`s: augmented fixed-size training crops, original-size eval."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from gglops.data.io import fit_mask_to_image, read_image, read_mask
from gglops.data.layouts import Sample
from gglops.data.transforms import augment, draw_plan, pad_crop, resize, target_crop

CACHE_BYTES = 1 << 30  # decoded samples kept in memory per dataset (per loader worker)


class _Cache:
    """Bounded memo of decoded tensors: small sets are decoded once, big ones stream."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit, self.used = limit, 0
        self.items: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.items.get(index)

    def put(self, index: int, item: tuple[torch.Tensor, torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in item)
        if self.used + size <= self.limit:
            self.items[index] = item
            self.used += size


@contextmanager
def _one_thread() -> Iterator[None]:
    """Per-sample ops are tiny: torch's thread pool costs far more than it saves (25x slower
    measured on a busy 2-core machine) and competes with the training step for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_pair(sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (3,H,W) float in [0,1], mask (1,H,W) float in {0,1}) at the original size; a
    mask drawn at another scale of its image is fitted to it (`fit_mask_to_image`)."""
    array = read_image(sample.image)
    mask = fit_mask_to_image(read_mask(sample.mask), array.shape[-2:], sample.mask)
    return torch.from_numpy(array), torch.from_numpy(mask).to(torch.float32)[None]


class TrainDataset(Dataset):
    """Fixed-size (image (3,S,S), mask (1,S,S)) pairs with seeded reference augmentations
    (`augment_p`: probability of the reference's block of `augment_n` drawn transforms).

    `fit`: resize to S (the reference), pad to S and take a random window, or crop a random
    S×S patch (`crop`, S = the patch size) that holds a target with probability `target_p`.
    Augmentation applies inside the window, after it is cut.

    Draws depend on (seed, epoch, index) only. The epoch lives in shared memory so that
    `set_epoch` reaches persistent DataLoader workers too.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        fit: Literal["resize", "pad", "crop"] = "resize",
        augment_p: float = 0.5,
        augment_n: int = 3,
        seed: int = 0,
        target_p: float = 0.5,
    ) -> None:
        self.samples = list(samples)
        self.image_size, self.fit, self.target_p = image_size, fit, target_p
        self.augment_p, self.augment_n, self.seed = augment_p, augment_n, seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache = _Cache()

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def _base(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded (and, for fit=resize, already resized) pair: deterministic, so cached."""
        item = self._cache.get(index)
        if item is None:
            item = load_pair(self.samples[index])
            if self.fit == "resize":
                item = resize(*item, self.image_size)
            self._cache.put(index, item)
        return item

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        with _one_thread():
            image, mask = self._base(index)
            if self.fit == "pad":
                image, mask = pad_crop(image, mask, self.image_size, rng)
            elif self.fit == "crop":
                image, mask = target_crop(image, mask, self.image_size, rng, self.target_p)
            return augment(image, mask, draw_plan(rng, self.augment_p, self.augment_n))


class EvalDataset(Dataset):
    """(image (3,H,W), mask (1,H,W), stem), by default at the ORIGINAL size: iterate it or
    use batch 1. With `size` set (the `resized` eval protocol), image AND mask are resized to
    size×size first, so the metrics (Fa's pixel count included) are the resized split's.
    """

    def __init__(self, samples: Sequence[Sample], size: int | None = None) -> None:
        self.samples = list(samples)
        self.size = size
        self._cache = _Cache()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        item = self._cache.get(index)
        if item is None:
            item = load_pair(self.samples[index])
            if self.size is not None:
                with _one_thread():
                    item = resize(*item, self.size)
            self._cache.put(index, item)
        return item[0], item[1], self.samples[index].stem

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, str]]:
        return (self[i] for i in range(len(self)))
