"""``gmm``: a Gaussian mixture over the action chunk (robomimic BC-RNN-GMM), tanh-free.

Each of K modes is a diagonal Gaussian over the whole chunk (Tp x A), so a mode is one
consistent plan. At act time the default ``'mode_mean'`` returns the mean of the most
likely mode: sampling the full mixture scored 0-2% on a push task where MSE scored 100%
(docs/models.md), while the mode mean keeps what a mixture is for (not averaging two
valid modes).

``binary_dims`` takes action values that are really open/closed switches (a gripper) out of
the mixture and gives each its own Bernoulli per chunk step (BCE on the target mapped from
the normalized [-1, 1] to [0, 1]; the act value is +-1 by the probability). Measured on lift
(docs/models.md): with the gripper inside the mixture over 8-action chunks, the modes split
by the chunk's open/close pattern and the state came out wrong in 20% of frames.

Training uses beta-NLL (``nll_beta``, default 1): on scripted demos the sigmas fall to the
floor, and the exact NLL's 1/sigma^2-sized gradients then shaped the shared trunk for arm
precision at the expense of everything else (the gripper's timing, the side to pass on).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from il_ros.models.heads.base import check_head_inputs, multinomial, rand, randn, reduce_loss
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
    binary_dims: tuple[int, ...] = ()
    """Action indices (negative counts from the end: ``[-1]`` is the sim arm's gripper)
    modelled as Bernoulli open/closed switches beside the mixture instead of inside it."""
    binary_weight: float = 1.0
    """Scale of the switches' BCE against the mixture NLL. The NLL's gradients grow as the
    sigmas shrink (about 1/sigma^2), so the shared trunk is shaped by the continuous values
    unless the switches weigh more."""
    nll_beta: float = 1.0
    """beta-NLL (Seitzer et al., ICLR 2022) inside the mixture: each component's per-value
    log-likelihood term is scaled by a stop-gradient sigma^(2 beta), so a mean's gradient is
    ``responsibility * (mean - target) / sigma^(2 - 2 beta)``. 0 is the exact mixture NLL
    (robomimic); 1 gives the means an MSE-sized gradient however small the sigmas get, which
    keeps near-noiseless scripted demos from handing the trunk 1/sigma^2-sized gradients
    (measured, docs/models.md: chunked GMM on reach_around 36% -> 84-90%, on lift 0% -> 60%).
    The logged loss stays the exact NLL; only the gradient changes."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('gmm head', num_modes=self.num_modes, hidden=list(self.hidden),
                       min_std=self.min_std, binary_weight=self.binary_weight)
        if not 0.0 <= self.nll_beta <= 1.0:
            raise ValueError(f'gmm head: nll_beta must be in [0, 1], got {self.nll_beta}')
        self.binary_dims = tuple(self.binary_dims)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in self.binary_dims):
            raise ValueError(f'gmm head: binary_dims must be action indices (integers), got '
                             f'{list(self.binary_dims)}')
        if self.sample_mode not in SAMPLE_MODES:
            raise ValueError(f'gmm head: sample_mode {self.sample_mode!r} unknown; use one '
                             f'of {SAMPLE_MODES}')


@register('head', 'gmm')
class GmmHead(nn.Module):
    """features -> K (logit, mean, sigma) over the chunk; loss: mixture NLL."""

    config_class = GmmConfig

    def __init__(self, cfg: GmmConfig, in_dim: int, action_dim: int, horizon: int):
        """Build the head.

        It predicts a K-mode mixture over ``horizon`` x the continuous action values, and a
        Bernoulli logit per step for each of ``cfg.binary_dims``.
        """
        super().__init__()
        self.cfg = cfg
        binary = sorted({d % action_dim for d in cfg.binary_dims
                         if -action_dim <= d < action_dim})
        if len(binary) != len(cfg.binary_dims):
            raise ValueError(f'gmm head: binary_dims {list(cfg.binary_dims)} must be distinct '
                             f'indices of the {action_dim} action values')
        if len(binary) == action_dim:
            raise ValueError('gmm head: binary_dims covers every action value; leave at least '
                             'one to the mixture')
        self.binary = binary
        self.continuous = [d for d in range(action_dim) if d not in binary]
        self.action_dim, self.horizon, self.k = action_dim, horizon, cfg.num_modes
        self.d = horizon * len(self.continuous)
        self.net = make_mlp(in_dim, cfg.hidden,
                            self.k * (1 + 2 * self.d) + horizon * len(binary))

    def outputs(self, features: torch.Tensor):
        """Return all of the head's outputs for features (N, F).

        Logits (N, K), means and stds (N, K, Tp, Ac) over the continuous values, and the
        binary values' logits (N, Tp, Ab) (None without ``binary_dims``).
        """
        n, nb = features.shape[0], len(self.binary)
        out = self.net(features)
        logits = out[:, :self.k]                                        # (N, K)
        mix = out[:, self.k:self.k * (1 + 2 * self.d)]
        rest = mix.reshape(n, self.k, 2, self.horizon, len(self.continuous))
        stds = F.softplus(rest[:, :, 1]) + self.cfg.min_std
        binary = (out[:, self.k * (1 + 2 * self.d):].reshape(n, self.horizon, nb)
                  if nb else None)
        return logits, rest[:, :, 0], stds, binary

    def forward(self, features: torch.Tensor):
        """(N, F) -> logits (N, K), means (N, K, Tp, Ac), stds (N, K, Tp, Ac).

        Ac is A without ``binary_dims``.
        """
        return self.outputs(features)[:3]

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Return the masked, weighted mixture NLL plus the binary values' BCE.

        Padded steps are marginalized out of the NLL; the BCE counts the valid steps.
        """
        check_head_inputs('gmm', features, target_actions, self.horizon, self.action_dim)
        logits, means, stds, binary = self.outputs(features)
        target = target_actions[..., self.continuous]
        lp = gaussian_log_prob(target[:, None], means, stds)            # (N, K, Tp, Ac)
        m = mask[:, None, :, None].to(lp.dtype)                          # (N, 1, Tp, 1)
        comp = (lp * m).sum((-2, -1))                                   # (N, K)
        log_w = F.log_softmax(logits, -1)
        joint = log_w + comp                                            # (N, K)
        nll = -torch.logsumexp(joint, -1)                               # (N,)
        if self.cfg.nll_beta > 0:
            # The exact NLL's gradient is that of sum_k r_k (-log w_k - comp_k) with the
            # responsibilities r held fixed (EM); beta-NLL scales the comp_k terms.
            r = F.softmax(joint, -1).detach()                           # (N, K)
            scale = stds.detach().pow(2 * self.cfg.nll_beta)
            comp_b = (lp * m * scale).sum((-2, -1))
            surrogate = -(r * (log_w + comp_b)).sum(-1)
            nll = surrogate - surrogate.detach() + nll.detach()
        if binary is not None:
            p = ((target_actions[..., self.binary] + 1) / 2).clamp(0, 1)
            bce = F.binary_cross_entropy_with_logits(binary, p.to(binary.dtype),
                                                     reduction='none')   # (N, Tp, Ab)
            bce = (bce * mask[..., None].to(bce.dtype)).sum((-2, -1))     # (N,)
            nll = nll + self.cfg.binary_weight * bce
        return reduce_loss(nll, mask.any(-1), weight)

    accepts_prior = True
    """``sample`` takes ``prior``: the previous plan's actions for this chunk's first steps."""

    def sample(self, features, generator=None, prior=None) -> torch.Tensor:
        """Return the most likely mode's mean, or a draw from the mixture using ``generator``.

        ``prior`` (N, P, A), P <= Tp, normalized: the actions the previous chunk planned for
        this chunk's first P steps; with ``sticky`` the mode is chosen by
        ``log w_k + log N(prior | mean_k[:P], std_k[:P])`` (see GmmConfig.sticky).
        Binary values are +1 where their probability is above 0.5 (``'sample'``: a draw).
        ``'sample'`` draws on the generator's device (the CPU for the policy's) and moves
        the draws to the features' device: a seed gives the same draws on any device.
        """
        logits, means, stds, binary = self.outputs(features)
        rows = torch.arange(features.shape[0], device=features.device)
        if self.cfg.sample_mode == 'mode_mean':
            score = F.log_softmax(logits, -1)                           # (N, K)
            if prior is not None and self.cfg.sticky and prior.shape[1] > 0:
                p = prior.shape[1]
                score = score + gaussian_log_prob(prior[:, None, :, self.continuous],
                                                  means[:, :, :p], stds[:, :, :p]).sum((-2, -1))
            cont = means[rows, score.argmax(-1)]                        # (N, Tp, Ac)
            switch = None if binary is None else binary > 0
        else:
            idx = multinomial(logits.softmax(-1), generator)            # (N,)
            mean, std = means[rows, idx], stds[rows, idx]               # (N, Tp, Ac)
            cont = mean + std * randn(mean.shape, generator, mean.device)
            switch = None if binary is None else \
                rand(binary.shape, generator, binary.device) < binary.sigmoid()
        if switch is None:
            return cont
        out = cont.new_empty(cont.shape[:2] + (self.action_dim,))
        out[..., self.continuous] = cont
        out[..., self.binary] = switch.to(cont.dtype) * 2 - 1
        return out
