"""``resnet18``: the project's ResNet-18 trunk (GroupNorm) -> spatial-softmax keypoints."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.encoders.keypoints import KeypointProjection
from il_ros.models.layers import check_positive
from il_ros.models.registry import register
from il_ros.models.resnet import load_torchvision_weights, NORMS, ResNet18


@dataclass
class ResNet18EncoderConfig:
    """Options of the ``resnet18`` image encoder."""

    width: float = 0.5
    """Channel multiplier. 0.5 measured ~3x faster than 1.0 with the same success on a push
    task; pretrained ``weights`` need 1.0."""
    norm: str = 'group'
    """'group' (GroupNorm, batch-independent, the default for BC) or 'batch'."""
    num_kp: int = 32
    """Spatial-softmax keypoints."""
    feat_dim: int = 64
    """Output features per camera frame."""
    learnable_temperature: bool = False
    """Learn the spatial-softmax temperature."""
    weights: str | None = None
    """Local torchvision resnet18 file (.pth/.safetensors) to start from; never downloaded.
    Only read by build_policy (a checkpoint carries the trained weights)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('resnet18', width=self.width, num_kp=self.num_kp,
                       feat_dim=self.feat_dim)
        if self.norm not in NORMS:
            raise ValueError(f'resnet18: norm {self.norm!r} unknown; use one of {NORMS}')
        if self.weights and self.width != 1.0:
            raise ValueError('resnet18: pretrained weights need width=1.0; drop weights or '
                             'set width to 1.0')


@register('encoder', 'resnet18')
class ResNet18Encoder(nn.Module):
    """ResNet-18 feature map (stride 32) -> keypoints -> ``feat_dim`` features."""

    config_class = ResNet18EncoderConfig
    modality = 'image'

    def __init__(self, cfg: ResNet18EncoderConfig, in_channels: int = 3,
                 load_weights: bool = True):
        """Build the trunk; ``load_weights`` reads ``cfg.weights`` when set."""
        super().__init__()
        self.trunk = ResNet18(norm=cfg.norm, width=cfg.width, num_classes=None,
                              in_channels=in_channels)
        if cfg.weights and load_weights:
            load_torchvision_weights(self.trunk, cfg.weights)
        self.head = KeypointProjection(self.trunk.out_channels, cfg.num_kp, cfg.feat_dim,
                                       cfg.learnable_temperature)
        self.out_dim = cfg.feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float -> (N, feat_dim)."""
        return self.head(self.trunk.forward_features(x))
