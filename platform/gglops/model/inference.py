"""Predictions at the original resolution: pad to a multiple of 32, predict, crop back.

GGL-Net downsamples four times, so inputs must be multiples of 16. Every consumer
(train validation, `gglops evaluate`, ONNX parity, predict) goes through `predict_probs`
with a backend-specific `ProbFn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# float32 batch (N, 3, H, W) → probabilities (N, 1, H, W); H and W are multiples of 16.
ProbFn = Callable[[np.ndarray], np.ndarray]


def _as_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float32)


# Native-resolution evaluation pads to a multiple of 32 (as the PAL framework does) and crops
# back; an image with a side above TILE is predicted in overlapping TILE² windows.
MULTIPLE = 32
TILE = 1024


def pad_to_multiple(image: Any, multiple: int = MULTIPLE) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad (3,H,W) or (N,3,H,W) at the bottom/right; returns (padded, (H, W))."""
    array = _as_numpy(image)
    h, w = array.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)]
        array = np.pad(array, widths)
    return array, (h, w)


def predict_probs(fn: ProbFn, image: Any, multiple: int = MULTIPLE, tile: int = TILE) -> np.ndarray:
    """Probabilities (H, W) for one image (3, H, W) (or (1, 3, H, W)) at its own size."""
    array = _as_numpy(image)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"predict_probs takes one image, got a batch of {array.shape[0]}")
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"expected an image (3, H, W), got shape {array.shape}")
    if max(array.shape[-2:]) > tile:
        return _tiled_probs(fn, array, multiple, tile)
    return _padded_probs(fn, array, multiple)


def _padded_probs(fn: ProbFn, array: np.ndarray, multiple: int) -> np.ndarray:
    padded, (h, w) = pad_to_multiple(array[None], multiple)
    probs = np.asarray(fn(np.ascontiguousarray(padded)))
    return probs.reshape(probs.shape[-2:])[:h, :w].astype(np.float32)


def tile_starts(extent: int, tile: int) -> list[int]:
    """Window starts covering [0, extent) with windows of `tile` overlapping by at least a
    quarter, the last one flush with the end."""
    if extent <= tile:
        return [0]
    stride = tile - tile // 4
    starts = list(range(0, extent - tile, stride))
    return [*starts, extent - tile]


def _tiled_probs(fn: ProbFn, array: np.ndarray, multiple: int, tile: int) -> np.ndarray:
    """The mean of overlapping windows' probabilities, each window padded like an image."""
    h, w = array.shape[-2:]
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    for top in tile_starts(h, tile):
        for left in tile_starts(w, tile):
            window = array[:, top : top + tile, left : left + tile]
            wh, ww = window.shape[-2:]
            total[top : top + wh, left : left + ww] += _padded_probs(fn, window, multiple)
            count[top : top + wh, left : left + ww] += 1
    return total / count


def torch_prob_fn(model: Any) -> ProbFn:
    """A ProbFn for a torch module returning logits: sigmoid under no_grad, on its device."""
    import torch

    device = next(model.parameters()).device

    def fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch).to(device))
            return torch.sigmoid(logits).float().cpu().numpy()

    return fn
