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


def batch_soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − (Σp·t + 1) / (Σp + Σt − Σp·t + 1), the sums over the whole batch.

    The surrogate of the dataset-level IoU that mIoU scores. Patch training needs it: a crop
    without a target has, per image, the term Σp / (Σp + 1), whose gradient on each
    background pixel (1 / (Σp + 1)², near 1) outweighs the pull on a target pixel
    (1 / (|T| + 1)) many times over, and drives every logit into saturation before the
    targets are learned. Over the batch, those crops only add to the union."""
    return soft_iou_loss(logits.reshape(1, -1), target.reshape(1, -1))  # the batch as one image


def bce_soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise BCE (stable, on logits) plus soft IoU: BCE gives early gradients."""
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return bce + soft_iou_loss(logits, target)


def bce_batch_soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise BCE plus the batch-level soft IoU: the loss for patch training."""
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return bce + batch_soft_iou_loss(logits, target)


# Keys are the values of params.yaml `train.loss`.
LOSSES: dict[str, Loss] = {
    "soft_iou": soft_iou_loss,
    "bce_soft_iou": bce_soft_iou_loss,
    "batch_soft_iou": batch_soft_iou_loss,
    "bce_batch_soft_iou": bce_batch_soft_iou_loss,
}
