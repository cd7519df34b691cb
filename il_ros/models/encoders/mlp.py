"""``mlp``: a 2-layer MLP for proprioception (normalized joint positions)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.layers import check_positive
from il_ros.models.registry import register


@dataclass
class MlpEncoderConfig:
    """Options of the ``mlp`` proprio encoder."""

    hidden: int = 128
    """Hidden units."""
    out_dim: int = 64
    """Output features per frame."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('mlp', hidden=self.hidden, out_dim=self.out_dim)


@register('encoder', 'mlp')
class MlpEncoder(nn.Module):
    """Linear -> ReLU -> Linear."""

    config_class = MlpEncoderConfig
    modality = 'lowdim'

    def __init__(self, cfg: MlpEncoderConfig, in_dim: int):
        """``in_dim``: the concatenated proprio size."""
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, cfg.out_dim))
        self.out_dim = cfg.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        return self.net(x)
