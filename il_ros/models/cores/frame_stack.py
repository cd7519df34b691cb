"""``none``: no recurrent history; the ``obs_horizon`` frames' features are concatenated."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.layers import check_positive, make_mlp, mlp_out_dim
from il_ros.models.registry import register


@dataclass
class FrameStackConfig:
    """Options of the ``none`` core (frame stacking)."""

    hidden: tuple[int, ...] = (256, 256)
    """MLP (ReLU) over the stacked features; () passes the concatenation through unchanged
    (what diffusion_policy feeds its UNet as the global condition)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('none core', hidden=list(self.hidden))


@register('core', 'none')
class FrameStackCore(nn.Module):
    """(B, To, D) -> concat -> MLP -> (B, 1, F)."""

    config_class = FrameStackConfig
    sequence = False

    def __init__(self, cfg: FrameStackConfig, in_dim: int, obs_horizon: int,
                 seq_len: int = 1):
        """``in_dim`` features per frame, ``obs_horizon`` frames (``seq_len`` unused)."""
        super().__init__()
        self.obs_horizon = obs_horizon
        self.net = make_mlp(in_dim * obs_horizon, cfg.hidden, None)
        self.out_dim = mlp_out_dim(in_dim * obs_horizon, cfg.hidden, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, To, D) -> (B, 1, F)."""
        if x.shape[1] != self.obs_horizon:
            raise ValueError(f'none core expects {self.obs_horizon} frames, got {x.shape[1]}')
        return self.net(x.flatten(1)).unsqueeze(1)                      # (B, 1, F)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """(B, To, D) history -> (B, F)."""
        return self.forward(x)[:, 0]

    def reset(self) -> None:
        """Stateless: nothing to clear."""
