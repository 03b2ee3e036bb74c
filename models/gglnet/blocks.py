"""Building blocks of GGL-Net: residual blocks, attention gates, GSM, LCL and TGFM.

Convolutions keep their bias (as the reference does, even before BatchNorm): the
parameter count of the default model (8,988,093) depends on it.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(in_ch: int, out_ch: int, *, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """3×3 conv (with bias) + BatchNorm, optionally followed by ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: global average pool, bias-free bottleneck MLP, sigmoid."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class ResidualBlock(nn.Module):
    """Plain residual block: two 3×3 conv-BN, identity skip, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels), conv_bn(channels, channels, relu=False)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + x)


class SEResidualBlock(nn.Module):
    """Residual block with squeeze-and-excitation between its two convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels),
            SqueezeExcite(channels),
            conv_bn(channels, channels, relu=False),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + x)


class DownResidualBlock(nn.Module):
    """Halves the resolution: conv-BN-ReLU, max-pool, conv-BN; skip is a stride-2 conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_ch, out_ch),
            nn.MaxPool2d(2),
            conv_bn(out_ch, out_ch, relu=False),
        )
        self.skip = conv_bn(in_ch, out_ch, stride=2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class GradientSupplement(nn.Module):
    """GSM: encodes the gradient image and fuses it into the stage feature, residually."""

    def __init__(self, grad_ch: int, channels: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(
            conv_bn(grad_ch, channels),
            SqueezeExcite(channels),
            conv_bn(channels, channels),
        )
        self.fuse = nn.Sequential(
            conv_bn(2 * channels, channels),
            SqueezeExcite(channels),
            conv_bn(channels, channels, relu=False),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, feature: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([feature, self.encode(gradient)], dim=1))
        return self.relu(fused + feature)


class LocalContrast(nn.Module):
    """LCL: conv1×1-ReLU, conv3×3-ReLU at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ChannelGate(nn.Module):
    """Shared bias-free 1×1 bottleneck on global max and average pools, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = torch.amax(x, dim=(2, 3), keepdim=True)
        mean = torch.mean(x, dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(peak) + self.mlp(mean))


class SpatialGate(nn.Module):
    """Channel-wise max and mean, a 7×7 conv (with bias), sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = torch.amax(x, dim=1, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return torch.sigmoid(self.conv(torch.cat([peak, mean], dim=1)))


class TwoWayGuidanceFusion(nn.Module):
    """TGFM: the deep map gates the shallow map's channels, the shallow map gates space."""

    def __init__(self, deep_ch: int, shallow_ch: int) -> None:
        super().__init__()
        self.lift = nn.Sequential(
            nn.UpsamplingBilinear2d(scale_factor=2),  # aligned corners, as the reference
            nn.Conv2d(deep_ch, shallow_ch, 1),
            nn.BatchNorm2d(shallow_ch),
            nn.ReLU(inplace=True),
        )
        self.channel_gate = ChannelGate(shallow_ch)
        self.spatial_gate = SpatialGate()

    def forward(self, deep: torch.Tensor, shallow: torch.Tensor) -> torch.Tensor:
        lifted = self.lift(deep)
        return shallow * self.channel_gate(lifted) + lifted * self.spatial_gate(shallow)
