"""Spatial-softmax keypoints followed by a linear projection (robomimic's visual core)."""
from __future__ import annotations

import torch
from torch import nn

from il_ros.models.spatial_softmax import SpatialSoftmax


class KeypointProjection(nn.Module):
    """(N, C, H, W) feature map -> K keypoints (x, y) -> linear -> (N, feat_dim)."""

    def __init__(self, in_channels: int, num_kp: int, feat_dim: int,
                 learnable_temperature: bool = False):
        """``num_kp`` heatmaps from a 1x1 conv; ``feat_dim`` output features."""
        super().__init__()
        self.pool = SpatialSoftmax(in_channels, num_kp,
                                   learnable_temperature=learnable_temperature)
        self.proj = nn.Linear(self.pool.output_dim(), feat_dim)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feat_dim)."""
        kp = self.pool(feature_map)                                     # (N, K, 2) float32
        return self.proj(kp.flatten(1).to(self.proj.weight.dtype))      # (N, feat_dim)
