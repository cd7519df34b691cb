"""``gmm``: a Gaussian mixture over the action chunk (robomimic BC-RNN-GMM), tanh-free.

Each of K modes is a diagonal Gaussian over the whole chunk (Tp x A), so a mode is one
consistent plan. At act time the default ``'mode_mean'`` returns the mean of the most
likely mode: sampling the full mixture scored 0-2% on a push task where MSE scored 100%
(docs/models.md), while the mode mean keeps what a mixture is for (not averaging two
valid modes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from il_ros.models.heads.base import check_head_inputs, reduce_loss
from il_ros.models.heads.gaussian import gaussian_log_prob
from il_ros.models.layers import check_positive, make_mlp
from il_ros.models.registry import register

SAMPLE_MODES = ('mode_mean', 'sample')


@dataclass
class GmmConfig:
    """Options of the ``gmm`` head."""

    num_modes: int = 5
    """Mixture components K."""
    hidden: tuple[int, ...] = ()
    """Hidden ReLU layers before the output layer."""
    min_std: float = 1e-4
    """Floor on each component's sigma: softplus(raw) + min_std (robomimic)."""
    sample_mode: str = 'mode_mean'
    """At act time: 'mode_mean' (the most likely mode's mean) or 'sample' (a mixture draw)."""
    sticky: bool = True
    """With chunks: pick the mode by its weight times its likelihood of the previous chunk's
    actions for the steps the new chunk covers (the posterior of the mode that made the plan
    being executed), so a replan keeps its plan instead of hopping between modes whose
    weights cross mid-motion (measured: the hop collides with reach_around's pillar)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('gmm head', num_modes=self.num_modes, hidden=list(self.hidden),
                       min_std=self.min_std)
        if self.sample_mode not in SAMPLE_MODES:
            raise ValueError(f'gmm head: sample_mode {self.sample_mode!r} unknown; use one '
                             f'of {SAMPLE_MODES}')


@register('head', 'gmm')
class GmmHead(nn.Module):
    """features -> K (logit, mean, sigma) over the chunk; loss: mixture NLL."""

    config_class = GmmConfig

    def __init__(self, cfg: GmmConfig, in_dim: int, action_dim: int, horizon: int):
        """Predict a K-mode mixture over ``horizon`` x ``action_dim``."""
        super().__init__()
        self.cfg = cfg
        self.action_dim, self.horizon, self.k = action_dim, horizon, cfg.num_modes
        self.d = horizon * action_dim
        self.net = make_mlp(in_dim, cfg.hidden, self.k * (1 + 2 * self.d))

    def forward(self, features: torch.Tensor):
        """(N, F) -> logits (N, K), means (N, K, Tp, A), stds (N, K, Tp, A)."""
        n = features.shape[0]
        out = self.net(features)                                        # (N, K*(1+2D))
        logits = out[:, :self.k]                                        # (N, K)
        rest = out[:, self.k:].reshape(n, self.k, 2, self.horizon, self.action_dim)
        return logits, rest[:, :, 0], F.softplus(rest[:, :, 1]) + self.cfg.min_std

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Masked, weighted mixture NLL; padded steps are marginalized out."""
        check_head_inputs('gmm', features, target_actions, self.horizon, self.action_dim)
        logits, means, stds = self(features)
        lp = gaussian_log_prob(target_actions[:, None], means, stds)    # (N, K, Tp, A)
        m = mask[:, None, :, None].to(lp.dtype)                          # (N, 1, Tp, 1)
        comp = (lp * m).sum((-2, -1))                                   # (N, K)
        nll = -torch.logsumexp(F.log_softmax(logits, -1) + comp, -1)    # (N,)
        return reduce_loss(nll, mask.any(-1), weight)

    accepts_prior = True
    """``sample`` takes ``prior``: the previous plan's actions for this chunk's first steps."""

    def sample(self, features, generator=None, prior=None) -> torch.Tensor:
        """Return the most likely mode's mean, or a draw from the mixture using ``generator``.

        ``prior`` (N, P, A), P <= Tp, normalized: the actions the previous chunk planned for
        this chunk's first P steps; with ``sticky`` the mode is chosen by
        ``log w_k + log N(prior | mean_k[:P], std_k[:P])`` (see GmmConfig.sticky).
        """
        logits, means, stds = self(features)
        if self.cfg.sample_mode == 'mode_mean':
            score = F.log_softmax(logits, -1)                           # (N, K)
            if prior is not None and self.cfg.sticky and prior.shape[1] > 0:
                p = prior.shape[1]
                score = score + gaussian_log_prob(prior[:, None], means[:, :, :p],
                                                  stds[:, :, :p]).sum((-2, -1))
            idx = score.argmax(-1)                                      # (N,)
            return means[torch.arange(len(idx), device=idx.device), idx]
        idx = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]  # (N,)
        rows = torch.arange(len(idx), device=idx.device)
        mean, std = means[rows, idx], stds[rows, idx]                   # (N, Tp, A)
        return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
