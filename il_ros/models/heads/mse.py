"""``mse``: a deterministic regression head (Gaussian with fixed sigma)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.heads.base import check_head_inputs, reduce_loss
from il_ros.models.layers import check_positive, make_mlp
from il_ros.models.registry import register


LOSSES = ('mse', 'l1')


@dataclass
class MseConfig:
    """Options of the ``mse`` head."""

    hidden: tuple[int, ...] = ()
    """Hidden ReLU layers before the output layer."""
    loss: str = 'mse'
    """The regression loss per action: 'mse' (squared error) or 'l1' (absolute error, as
    ACT trains its chunks). Squared error pulls on the weights in proportion to each error,
    so a few frames the policy gets far wrong (corrections in states the demonstrations
    never visit) can own a batch; with 'l1' every frame pulls as hard however wrong
    (docs/experiments/hg-dagger.md)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('mse head', hidden=list(self.hidden))
        if self.loss not in LOSSES:
            raise ValueError(f'mse head: loss must be one of {LOSSES}, got {self.loss!r}')


@register('head', 'mse')
class MseHead(nn.Module):
    """features -> MLP -> (N, Tp, A); loss: squared (or absolute) error per step."""

    config_class = MseConfig

    def __init__(self, cfg: MseConfig, in_dim: int, action_dim: int, horizon: int):
        """Predict ``horizon`` actions of ``action_dim``."""
        super().__init__()
        self.action_dim, self.horizon, self.kind = action_dim, horizon, cfg.loss
        self.net = make_mlp(in_dim, cfg.hidden, horizon * action_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, F) -> (N, Tp, A)."""
        return self.net(features).reshape(-1, self.horizon, self.action_dim)

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Masked, weighted MSE or L1 (mean over A, then over valid steps)."""
        check_head_inputs('mse', features, target_actions, self.horizon, self.action_dim)
        err = self(features) - target_actions
        per_step = (err.abs() if self.kind == 'l1' else err.pow(2)).mean(-1)    # (N, Tp)
        return reduce_loss(per_step, mask, weight)

    def sample(self, features, generator=None) -> torch.Tensor:
        """Return the regressed actions (deterministic)."""
        return self(features)
