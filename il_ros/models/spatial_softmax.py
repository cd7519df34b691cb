"""Spatial-softmax keypoints (robomimic's ``SpatialSoftmax``, Levine et al. 2016).

A 1x1 conv maps the feature map to K keypoint heatmaps; a softmax over each heatmap's pixels
gives a distribution whose expected (x, y) position is the keypoint, in [-1, 1] image
coordinates (x left to right, y top to bottom).
"""
from __future__ import annotations

import torch
from torch import nn


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) feature map -> (B, K, 2) expected keypoint positions (x, y)."""

    def __init__(self, in_channels: int, num_kp: int | None = 32, temperature: float = 1.0,
                 learnable_temperature: bool = False, noise_std: float = 0.0):
        """``num_kp=None``: one keypoint per input channel (no 1x1 conv).

        ``noise_std``: Gaussian noise added to the heatmaps in training (robomimic option).
        """
        super().__init__()
        self.num_kp = num_kp or in_channels
        self.nets = nn.Conv2d(in_channels, num_kp, 1) if num_kp else None
        temp = torch.tensor(float(temperature))
        if learnable_temperature:
            self.temperature = nn.Parameter(temp)
        else:
            self.register_buffer('temperature', temp)
        self.noise_std = noise_std

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K, 2)."""
        x = feature if self.nets is None else self.nets(feature)        # (B, K, H, W)
        b, k, h, w = x.shape
        if self.training and self.noise_std > 0:
            x = x + torch.randn_like(x) * self.noise_std
        attn = torch.softmax(x.reshape(b, k, h * w).float() / self.temperature, dim=-1)
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h, device=x.device),
                                torch.linspace(-1.0, 1.0, w, device=x.device), indexing='ij')
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)    # (H*W, 2)
        return attn @ grid                                              # (B, K, 2)

    def output_dim(self) -> int:
        """Flattened output size (2 * K)."""
        return 2 * self.num_kp
