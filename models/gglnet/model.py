"""GGL-Net (Zhao et al., IEEE GRSL 2023): gradient-guided infrared small target detection.

Follows the authors' reference (YuChuang1205/MSDA-Net, model/GGL_Net) layer for layer;
`GGLNet()` has 8,988,093 parameters. `forward` returns logits; `ProbabilityModel` adds the
sigmoid for export and serving.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from gglnet.blocks import (
    ChannelGate,
    DownResidualBlock,
    GradientSupplement,
    LocalContrast,
    ResidualBlock,
    SEResidualBlock,
    SpatialGate,
    TwoWayGuidanceFusion,
    conv_bn,
)

BASE_WIDTHS = (16, 32, 64, 128, 256)
SIZE_MULTIPLE = 2 ** (len(BASE_WIDTHS) - 1)  # four halvings: H and W must divide by 16
# Probability every pixel starts at (`calibrate_prior`): a logit of −2.2, where soft IoU
# learns from for every seed measured (docs/recipe.md).
PRIOR = 0.1


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-channel gradient magnitude by central differences with zero padding.

    gx = (x[i, j+1] − x[i, j−1]) / 2, gy = (x[i−1, j] − x[i+1, j]) / 2, g = √(gx² + gy²).
    """
    padded = F.pad(x, (1, 1, 1, 1))
    gx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) * 0.5
    gy = (padded[:, :, :-2, 1:-1] - padded[:, :, 2:, 1:-1]) * 0.5
    return torch.sqrt(gx * gx + gy * gy)


def scaled_widths(width_mult: float) -> tuple[int, ...]:
    """Stage widths scaled by `width_mult` (rounded, at least 1)."""
    return tuple(max(1, round(c * width_mult)) for c in BASE_WIDTHS)


def check_input_size(height: int, width: int) -> None:
    """Raise ValueError unless both sides are multiples of 16 (four 2× downsamplings)."""
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"GGLNet needs H and W divisible by {SIZE_MULTIPLE}, got {height}×{width}; "
            "pad or resize the input"
        )


class EncoderStage(nn.Module):
    """Entry block (plain or downsampling residual), two SE residual blocks, then GSM."""

    def __init__(self, in_ch: int, out_ch: int, grad_ch: int, *, downsample: bool) -> None:
        super().__init__()
        entry = DownResidualBlock(in_ch, out_ch) if downsample else ResidualBlock(out_ch)
        self.blocks = nn.Sequential(entry, SEResidualBlock(out_ch), SEResidualBlock(out_ch))
        self.gsm = GradientSupplement(grad_ch, out_ch)

    def forward(self, x: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return self.gsm(self.blocks(x), gradient)


class GGLNet(nn.Module):
    """Maps an image batch (N, C, H, W) in [0, 1] to target logits (N, 1, H, W)."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        if in_channels < 1 or width_mult <= 0:
            raise ValueError(
                f"GGLNet needs in_channels >= 1 and width_mult > 0, "
                f"got {in_channels} and {width_mult}"
            )
        self.in_channels = in_channels
        self.width_mult = width_mult
        widths = scaled_widths(width_mult)
        self.stem = nn.Sequential(conv_bn(in_channels, widths[0]), conv_bn(widths[0], widths[0]))
        entry_widths = (widths[0], *widths[:-1])
        self.stages = nn.ModuleList(
            EncoderStage(c_in, c_out, in_channels, downsample=i > 0)
            for i, (c_in, c_out) in enumerate(zip(entry_widths, widths, strict=True))
        )
        self.pool = nn.MaxPool2d(2)
        self.lcls = nn.ModuleList(LocalContrast(c) for c in widths)
        # fusions[i] merges level i+1 (deeper) into level i; applied deep to shallow.
        self.fusions = nn.ModuleList(
            TwoWayGuidanceFusion(deep, shallow) for shallow, deep in pairwise(widths)
        )
        prediction = nn.Conv2d(widths[0], 1, 1)
        self.head = nn.Sequential(
            nn.Conv2d(widths[0], widths[0], 1), nn.ReLU(inplace=True), prediction
        )
        reference_init(self)
        init_prediction(prediction)
        calibrate_prior(self, PRIOR)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five GSM outputs, full resolution first."""
        gradient = gradient_magnitude(x)
        out = self.stem(x)
        levels = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                gradient = self.pool(gradient)
            out = stage(out, gradient)
            levels.append(out)
        return levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x.shape[-2], x.shape[-1])
        levels = [lcl(level) for lcl, level in zip(self.lcls, self.encode(x), strict=True)]
        fused = levels[-1]
        for fusion, shallow in zip(reversed(self.fusions), reversed(levels[:-1]), strict=True):
            fused = fusion(fused, shallow)
        return self.head(fused)


class ProbabilityModel(nn.Module):
    """Wraps a logits model with a sigmoid: the form that is exported to ONNX and served."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def reference_init(model: nn.Module) -> None:
    """`init_weights` wherever the reference applies it: everywhere except the fusion
    modules' channel and spatial attention gates, whose own init is never called there, so
    they keep PyTorch's default (uniform) init."""
    gates = [m for m in model.modules() if isinstance(m, ChannelGate | SpatialGate)]
    keep = {id(inner) for gate in gates for inner in gate.modules()}
    for module in model.modules():
        if id(module) not in keep:
            init_weights(module)


def init_prediction(conv: nn.Conv2d) -> None:
    """Kaiming normal with fan_IN for the 16 → 1 prediction conv, zero bias (the reference
    uses fan_out; docs/recipe.md). `calibrate_prior` then sets the bias.

    Fan-out gives this conv weights of std √2 over 16 non-negative (ReLU) inputs: each seed
    starts every pixel near one common logit offset w·E[h] of ±10, and a start that far out
    saturates every sigmoid (a collapse to all-background with soft IoU). Fan-in (std
    √(2/16)) narrows the offset to about ±2–4 and keeps the weights large enough for Adam's
    updates upstream to move the logits (weights of std 0.01, as RetinaNet's head, learn
    several times slower here)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def calibrate_prior(model: GGLNet, prior: float = PRIOR) -> None:
    """Set the prediction conv's bias so that a fresh network's mean logit is logit(prior):
    every seed then starts every pixel near probability `prior` (RetinaNet's prior bias,
    with the weights' seed-dependent offset w·E[h] taken out).

    The offset is measured by one train-mode forward pass on a fixed pseudo-random batch (a
    generator of its own: the global RNG is not drawn from, so seeding stays as it was).
    BatchNorm normalises each batch, so the offset on noise is the one real images get
    (within ±0.5 logit over 16 seeds). BatchNorm running statistics are restored."""
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1), got {prior}")
    conv = model.head[-1]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    side = 2 * SIZE_MULTIPLE
    probe = torch.rand(2, model.in_channels, side, side, generator=torch.Generator().manual_seed(0))
    saved = [b.clone() for b in model.buffers()]
    training = model.training
    try:
        model.train()
        with torch.no_grad():
            conv.bias.zero_()
            offset = model(probe.to(conv.weight.device)).mean()
            conv.bias.fill_(math.log(prior / (1 - prior)) - offset.item())
    finally:
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved, strict=True):
                buffer.copy_(value)
        model.train(training)


def init_weights(module: nn.Module) -> None:
    """Kaiming normal (fan_out, ReLU) for convs with zero bias; BatchNorm to identity."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
