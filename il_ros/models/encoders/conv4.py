"""``conv4``: a fast 4-layer conv encoder that keeps a ~19x19 map for the spatial softmax."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.encoders.keypoints import KeypointProjection
from il_ros.models.layers import check_positive
from il_ros.models.registry import register
from il_ros.models.resnet import make_norm, NORMS


@dataclass
class Conv4EncoderConfig:
    """Options of the ``conv4`` image encoder (76x76 input -> 19x19 map by default)."""

    channels: tuple[int, ...] = (32, 32, 32, 32)
    """Output channels of the 3x3 conv layers (32-64-64-64 trained 2.2x slower; see
    docs/models.md)."""
    strides: tuple[int, ...] = (2, 2, 1, 1)
    """Stride of each layer (same length as channels)."""
    norm: str = 'group'
    """'group' or 'batch' after every conv."""
    num_kp: int = 32
    """Spatial-softmax keypoints."""
    feat_dim: int = 64
    """Output features per camera frame."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('conv4', channels=list(self.channels), strides=list(self.strides),
                       num_kp=self.num_kp, feat_dim=self.feat_dim)
        if len(self.channels) != len(self.strides) or not self.channels:
            raise ValueError(f'conv4: channels {list(self.channels)} and strides '
                             f'{list(self.strides)} need the same (non-zero) length')
        if self.norm not in NORMS:
            raise ValueError(f'conv4: norm {self.norm!r} unknown; use one of {NORMS}')


@register('encoder', 'conv4')
class Conv4Encoder(nn.Module):
    """3x3 convs (+ norm + ReLU) -> keypoints -> ``feat_dim`` features."""

    config_class = Conv4EncoderConfig
    modality = 'image'

    def __init__(self, cfg: Conv4EncoderConfig, in_channels: int = 3,
                 load_weights: bool = True):
        """Build the layers (``load_weights`` is accepted for a uniform interface)."""
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c, s in zip(cfg.channels, cfg.strides):
            layers += [nn.Conv2d(c_in, int(c), 3, int(s), 1, bias=False),
                       make_norm(cfg.norm, int(c)), nn.ReLU(inplace=True)]
            c_in = int(c)
        self.trunk = nn.Sequential(*layers)
        self.head = KeypointProjection(c_in, cfg.num_kp, cfg.feat_dim)
        self.out_dim = cfg.feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float -> (N, feat_dim)."""
        return self.head(self.trunk(x))
