"""An exponential moving average of the weights (`train.ema`), for short noisy runs.

On a few hundred steps at a high learning rate, a network's false alarms at full resolution
swing by an order of magnitude from one epoch to the next (docs/recipe.md), so the epoch
chosen on val is partly a draw. The average of the recent weights moves slowly: validation
scores it, checkpoints ship it as the model, and the live weights keep training.
BatchNorm's running statistics are averaged with the weights, so the two stay consistent.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

# The first updates follow the live weights closely (decay (1 + n) / (10 + n)), so that the
# random initialisation is forgotten within tens of steps, not hundreds.
WARMUP = 10


class WeightAverage:
    """The averaged copy of `net`; `update(net)` after each optimiser step."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.net = copy.deepcopy(net).eval()
        for param in self.net.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (WARMUP + self.updates))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        live = net.state_dict()
        for key, value in self.net.state_dict().items():
            if value.is_floating_point():
                value.lerp_(live[key].detach(), 1.0 - decay)
            else:  # BatchNorm's num_batches_tracked
                value.copy_(live[key])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        self.updates = int(state["updates"])
        self.net.load_state_dict(weights)
