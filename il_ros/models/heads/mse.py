"""``mse``: a deterministic regression head (Gaussian with fixed sigma)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.heads.base import check_head_inputs, reduce_loss
from il_ros.models.layers import check_positive, make_mlp
from il_ros.models.registry import register


@dataclass
class MseConfig:
    """Options of the ``mse`` head."""

    hidden: tuple[int, ...] = ()
    """Hidden ReLU layers before the output layer."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('mse head', hidden=list(self.hidden))


@register('head', 'mse')
class MseHead(nn.Module):
    """features -> MLP -> (N, Tp, A); loss: mean squared error per step."""

    config_class = MseConfig

    def __init__(self, cfg: MseConfig, in_dim: int, action_dim: int, horizon: int):
        """Predict ``horizon`` actions of ``action_dim``."""
        super().__init__()
        self.action_dim, self.horizon = action_dim, horizon
        self.net = make_mlp(in_dim, cfg.hidden, horizon * action_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, F) -> (N, Tp, A)."""
        return self.net(features).reshape(-1, self.horizon, self.action_dim)

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Masked, weighted MSE (mean over A, then over valid steps)."""
        check_head_inputs('mse', features, target_actions, self.horizon, self.action_dim)
        per_step = (self(features) - target_actions).pow(2).mean(-1)    # (N, Tp)
        return reduce_loss(per_step, mask, weight)

    def sample(self, features, generator=None) -> torch.Tensor:
        """Return the regressed actions (deterministic)."""
        return self(features)
