"""``gaussian``: a diagonal Gaussian with learned sigma, trained by negative log-likelihood."""
from __future__ import annotations

from dataclasses import dataclass
import math

import torch
from torch import nn
import torch.nn.functional as F

from il_ros.models.heads.base import check_head_inputs, randn, reduce_loss
from il_ros.models.layers import check_positive, make_mlp
from il_ros.models.registry import register

SAMPLE_MODES = ('mean', 'sample')
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class GaussianConfig:
    """Options of the ``gaussian`` head."""

    hidden: tuple[int, ...] = ()
    """Hidden ReLU layers before the output layer."""
    min_std: float = 0.01
    """Floor on sigma (normalized action units): sigma = softplus(raw) + min_std."""
    sample_mode: str = 'mean'
    """At act time: 'mean' (low-noise evaluation) or 'sample' (draw from the Gaussian)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('gaussian head', hidden=list(self.hidden), min_std=self.min_std)
        if self.sample_mode not in SAMPLE_MODES:
            raise ValueError(f'gaussian head: sample_mode {self.sample_mode!r} unknown; use '
                             f'one of {SAMPLE_MODES}')


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, std^2)."""
    return -0.5 * ((x - mean) / std).pow(2) - std.log() - _HALF_LOG_2PI


@register('head', 'gaussian')
class GaussianHead(nn.Module):
    """features -> (mean, sigma) of each action dimension of each step."""

    config_class = GaussianConfig

    def __init__(self, cfg: GaussianConfig, in_dim: int, action_dim: int, horizon: int):
        """Predict ``horizon`` Gaussians over ``action_dim``."""
        super().__init__()
        self.cfg = cfg
        self.action_dim, self.horizon = action_dim, horizon
        self.net = make_mlp(in_dim, cfg.hidden, 2 * horizon * action_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, F) -> mean, std, each (N, Tp, A)."""
        out = self.net(features).reshape(-1, 2, self.horizon, self.action_dim)
        return out[:, 0], F.softplus(out[:, 1]) + self.cfg.min_std

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Masked, weighted NLL (summed over A, averaged over valid steps)."""
        check_head_inputs('gaussian', features, target_actions, self.horizon, self.action_dim)
        mean, std = self(features)
        nll = -gaussian_log_prob(target_actions, mean, std).sum(-1)     # (N, Tp)
        return reduce_loss(nll, mask, weight)

    def sample(self, features, generator=None) -> torch.Tensor:
        """Return the mean ('mean') or a draw using ``generator`` ('sample').

        The noise is drawn on the generator's device (the CPU for the policy's) and moved to
        the features' device, so a seed gives the same draw on any device
        (:func:`~il_ros.models.heads.base.randn`).
        """
        mean, std = self(features)
        if self.cfg.sample_mode == 'mean':
            return mean
        return mean + std * randn(mean.shape, generator, mean.device)
