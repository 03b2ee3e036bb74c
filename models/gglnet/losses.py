"""Training losses on logits (the sigmoid is applied here, not in the model)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean over the batch of per-image (Σp·t + 1) / (Σp + Σt − Σp·t + 1)."""
    probs = torch.sigmoid(logits).flatten(1)
    target = target.to(probs.dtype).flatten(1)
    inter = (probs * target).sum(dim=1)
    union = probs.sum(dim=1) + target.sum(dim=1) - inter
    return 1.0 - ((inter + 1.0) / (union + 1.0)).mean()


def bce_soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise BCE (stable, on logits) plus soft IoU: BCE gives early gradients."""
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return bce + soft_iou_loss(logits, target)


# Keys are the values of params.yaml `train.loss`.
LOSSES: dict[str, Loss] = {
    "soft_iou": soft_iou_loss,
    "bce_soft_iou": bce_soft_iou_loss,
}
