"""``diffusion``: a conditional 1-D UNet denoising action chunks (Diffusion Policy).

Training is DDPM: draw t uniformly in [0, T), noise the normalized target chunk, regress
the clean chunk (``prediction_type='sample'``, the default), the noise ('epsilon') or the
velocity ('v_prediction') with a masked MSE. Sampling is DDIM with ``num_inference_steps``
steps and eta = 0, so the only randomness is the initial noise, drawn from the given
``torch.Generator``: the same generator state gives the same chunk. The noise is drawn on
the generator's device (the CPU for the policy's) and moved to the features' device, so a
seed gives the same initial noise on the CPU and on a GPU. Training noise is drawn on the
training device (no generator).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from il_ros.models.heads.base import check_head_inputs, randn, reduce_loss
from il_ros.models.heads.ddim import NoiseSchedule, PREDICTION_TYPES, SCHEDULES
from il_ros.models.heads.unet1d import ConditionalUnet1D
from il_ros.models.layers import check_positive
from il_ros.models.registry import register


@dataclass
class DiffusionConfig:
    """Options of the ``diffusion`` head."""

    down_dims: tuple[int, ...] = (64, 128, 256)
    """UNet channels per level (~4M parameters at the defaults with a 256-wide condition);
    the chunk is halved between levels."""
    kernel_size: int = 5
    """Conv1d kernel size."""
    n_groups: int = 8
    """GroupNorm groups; every down_dims entry must be divisible by it."""
    step_embed_dim: int = 128
    """Diffusion timestep embedding size (even)."""
    num_train_steps: int = 100
    """DDPM steps T."""
    num_inference_steps: int = 10
    """DDIM steps k at act time (1..T)."""
    beta_schedule: str = 'squaredcos_cap_v2'
    """'squaredcos_cap_v2' or 'linear'."""
    clip_sample: bool = True
    """Clip the predicted x0 to [-1, 1] while sampling (actions are minmax-normalized)."""
    prediction_type: str = 'sample'
    """What the UNet regresses: 'sample' (the clean chunk), 'epsilon' (the noise, Diffusion
    Policy's choice) or 'v_prediction'. On reach_around, 2000 CPU steps: sample 90%,
    v_prediction 76%, epsilon 32% (docs/models.md)."""

    def __post_init__(self):
        """Reject impossible values."""
        check_positive('diffusion head', down_dims=list(self.down_dims),
                       kernel_size=self.kernel_size, n_groups=self.n_groups,
                       step_embed_dim=self.step_embed_dim,
                       num_train_steps=self.num_train_steps,
                       num_inference_steps=self.num_inference_steps)
        if not self.down_dims:
            raise ValueError('diffusion head: down_dims needs at least one level')
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(f'diffusion head: down_dims {bad} not divisible by n_groups '
                             f'{self.n_groups}')
        if self.kernel_size % 2 == 0 or self.step_embed_dim % 2:
            raise ValueError('diffusion head: kernel_size must be odd and step_embed_dim even')
        if self.num_inference_steps > self.num_train_steps:
            raise ValueError(f'diffusion head: num_inference_steps {self.num_inference_steps}'
                             f' > num_train_steps {self.num_train_steps}')
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f'diffusion head: prediction_type {self.prediction_type!r} '
                             f'unknown; use one of {PREDICTION_TYPES}')
        if self.beta_schedule not in SCHEDULES:
            raise ValueError(f'diffusion head: beta_schedule {self.beta_schedule!r} unknown; '
                             f'use one of {SCHEDULES}')

    def check_policy(self, action_horizon: int, **_) -> None:
        """Raise ValueError when the chunk cannot be halved ``len(down_dims) - 1`` times."""
        div = 2 ** (len(self.down_dims) - 1)
        if action_horizon % div:
            raise ValueError(f'diffusion head: action_horizon {action_horizon} must be '
                             f'divisible by {div} (2 ** (len(down_dims) - 1)); change '
                             f'action_horizon or use fewer down_dims')


@register('head', 'diffusion')
class DiffusionHead(nn.Module):
    """Denoise (N, Tp, A) chunks conditioned on (N, F) features."""

    config_class = DiffusionConfig

    def __init__(self, cfg: DiffusionConfig, in_dim: int, action_dim: int, horizon: int):
        """Build the UNet and the noise schedule."""
        super().__init__()
        cfg.check_policy(action_horizon=horizon)
        self.cfg = cfg
        self.action_dim, self.horizon = action_dim, horizon
        self.unet = ConditionalUnet1D(action_dim, in_dim, tuple(cfg.down_dims),
                                      cfg.kernel_size, cfg.n_groups, cfg.step_embed_dim)
        self.schedule = NoiseSchedule(cfg.num_train_steps, cfg.beta_schedule, cfg.clip_sample)

    def loss(self, features, target_actions, mask, weight) -> torch.Tensor:
        """Masked, weighted MSE to the ``prediction_type`` target at a random timestep."""
        check_head_inputs('diffusion', features, target_actions, self.horizon,
                          self.action_dim)
        n = features.shape[0]
        noise = torch.randn_like(target_actions)                        # (N, Tp, A)
        t = torch.randint(0, self.cfg.num_train_steps, (n,), device=features.device)
        noisy = self.schedule.add_noise(target_actions, noise, t)
        target = self.schedule.target(self.cfg.prediction_type, target_actions, noise, t)
        per_step = (self.unet(noisy, t, features) - target).pow(2).mean(-1)  # (N, Tp)
        return reduce_loss(per_step, mask, weight)

    def sample(self, features, generator=None,
               num_inference_steps: int | None = None) -> torch.Tensor:
        """DDIM from noise drawn with ``generator`` (on its device, see above) -> (N, Tp, A)."""
        n = features.shape[0]
        x = randn((n, self.horizon, self.action_dim), generator, features.device)
        steps = self.schedule.ddim_timesteps(num_inference_steps
                                             or self.cfg.num_inference_steps)
        for i, t in enumerate(steps):
            prev = steps[i + 1] if i + 1 < len(steps) else -1
            tt = torch.full((n,), t, device=features.device, dtype=torch.long)
            eps = self.schedule.to_epsilon(self.cfg.prediction_type,
                                           self.unet(x, tt, features), t, x)
            x = self.schedule.ddim_step(eps, t, x, prev)
        return x
