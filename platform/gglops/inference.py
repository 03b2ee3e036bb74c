"""Predictions at the original resolution: pad to a multiple of 16, predict, crop back.

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


def pad_to_multiple(image: Any, multiple: int = 16) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad (3,H,W) or (N,3,H,W) at the bottom/right; returns (padded, (H, W))."""
    array = _as_numpy(image)
    h, w = array.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)]
        array = np.pad(array, widths)
    return array, (h, w)


def predict_probs(fn: ProbFn, image: Any, multiple: int = 16) -> np.ndarray:
    """Probabilities (H, W) for one image (3, H, W) (or (1, 3, H, W)) at its own size."""
    array = _as_numpy(image)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"predict_probs takes one image, got a batch of {array.shape[0]}")
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"expected an image (3, H, W), got shape {array.shape}")
    padded, (h, w) = pad_to_multiple(array[None], multiple)
    probs = np.asarray(fn(np.ascontiguousarray(padded)))
    return probs.reshape(probs.shape[-2:])[:h, :w].astype(np.float32)


def torch_prob_fn(model: Any) -> ProbFn:
    """A ProbFn for a torch module returning logits: sigmoid under no_grad, on its device."""
    import torch

    device = next(model.parameters()).device

    def fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch).to(device))
            return torch.sigmoid(logits).float().cpu().numpy()

    return fn
