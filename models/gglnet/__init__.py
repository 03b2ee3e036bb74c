"""GGL-Net for infrared small target detection: pure torch, no platform dependencies."""

from gglnet.losses import LOSSES, Loss, bce_soft_iou_loss, soft_iou_loss
from gglnet.model import (
    GGLNet,
    ProbabilityModel,
    check_input_size,
    count_parameters,
    gradient_magnitude,
)

__all__ = [
    "LOSSES",
    "GGLNet",
    "Loss",
    "ProbabilityModel",
    "bce_soft_iou_loss",
    "check_input_size",
    "count_parameters",
    "gradient_magnitude",
    "soft_iou_loss",
]
