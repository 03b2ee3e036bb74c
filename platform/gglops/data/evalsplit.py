"""The test split that a command evaluates, read once for everything that looks at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gglops.data.dataset import EvalDataset
from gglops.data.io import read_image
from gglops.data.layouts import DatasetIndex, resolve_layout
from gglops.data.manifest import DataManifest, manifest_of

if TYPE_CHECKING:
    from gglops.core.params import CustomLayout


@dataclass
class EvalSplit:
    """The test split of a data root, read once: its images decoded once (EvalDataset's
    bounded cache) and its files hashed once, so that evaluating several models and checking
    ONNX parity (promotion) or drawing overlays (report) reuse the same pass's data."""

    index: DatasetIndex
    size: int | None  # None: original resolution; else the `resized` protocol's size
    dataset: EvalDataset

    @classmethod
    def load(
        cls,
        root: Path,
        layout: str = "auto",
        split: str | None = None,
        size: int | None = None,
        custom: CustomLayout | None = None,
    ) -> EvalSplit:
        index = resolve_layout(Path(root), layout, split, custom)
        return cls(index=index, size=size, dataset=EvalDataset(index.test, size))

    @cached_property
    def manifest(self) -> DataManifest:
        return manifest_of(self.index)

    def originals(self) -> Iterator[np.ndarray]:
        """Images (3, H, W) at their original size: the decoded ones under `original`."""
        if self.size is None:
            return (image.numpy() for image, _mask, _stem in self.dataset)
        return (read_image(sample.image) for sample in self.index.test)
