"""DDPM noise schedule (training) and DDIM sampling steps, as in diffusers' schedulers.

- ``squaredcos_cap_v2``: alpha_bar(t) = cos^2((t/T + 0.008)/1.008 * pi/2), betas capped at
  0.999 (Nichol & Dhariwal); ``linear``: betas from 1e-4 to 0.02.
- :meth:`NoiseSchedule.ddim_timesteps` uses diffusers' 'leading' spacing
  (``arange(k) * (T // k)``, descending); :meth:`NoiseSchedule.ddim_step` is DDIM with
  eta = 0 (deterministic) and ``alpha_bar(-1) = 1``, with optional clipping of the predicted
  x0 to [-1, 1] (normalized actions live there).
"""
from __future__ import annotations

import math

import numpy as np
import torch

SCHEDULES = ('squaredcos_cap_v2', 'linear')
PREDICTION_TYPES = ('epsilon', 'sample', 'v_prediction')


def make_betas(schedule: str, num_steps: int) -> np.ndarray:
    """(T,) float64 betas of ``schedule``."""
    if schedule == 'squaredcos_cap_v2':
        def alpha_bar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps),
                             0.999) for i in range(num_steps)])
    if schedule == 'linear':
        return np.linspace(1e-4, 0.02, num_steps)
    raise ValueError(f'beta schedule {schedule!r} unknown; use one of {SCHEDULES}')


class NoiseSchedule:
    """alpha_bar table plus the DDPM forward process and DDIM reverse steps."""

    def __init__(self, num_train_steps: int = 100, schedule: str = 'squaredcos_cap_v2',
                 clip_sample: bool = True):
        """Precompute alpha_bar for ``num_train_steps`` steps."""
        self.num_train_steps, self.clip_sample = num_train_steps, clip_sample
        ab = np.cumprod(1.0 - make_betas(schedule, num_train_steps))
        self.alphas_cumprod = torch.tensor(ab, dtype=torch.float32)     # (T,)

    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at the (N,) timesteps ``t``, shaped to broadcast over ``like``."""
        return self.alphas_cumprod.to(like.device)[t].reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
        """Return x_t ~ q(x_t | x0): sqrt(ab_t) x0 + sqrt(1 - ab_t) noise; ``t`` (N,) int."""
        ab = self._alpha_bar(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def target(self, prediction_type: str, x0: torch.Tensor, noise: torch.Tensor,
               t: torch.Tensor) -> torch.Tensor:
        """The regression target of ``prediction_type`` for x_t = add_noise(x0, noise, t).

        'epsilon': the noise; 'sample': x0 itself; 'v_prediction': sqrt(ab) noise -
        sqrt(1 - ab) x0 (Salimans & Ho, 2022).
        """
        if prediction_type == 'epsilon':
            return noise
        if prediction_type == 'sample':
            return x0
        if prediction_type == 'v_prediction':
            ab = self._alpha_bar(t, x0)
            return ab.sqrt() * noise - (1 - ab).sqrt() * x0
        raise ValueError(f'prediction type {prediction_type!r} unknown; use one of '
                         f'{PREDICTION_TYPES}')

    def to_epsilon(self, prediction_type: str, pred: torch.Tensor, t: int,
                   x_t: torch.Tensor) -> torch.Tensor:
        """Convert a network output of ``prediction_type`` at step ``t`` to the noise."""
        if prediction_type == 'epsilon':
            return pred
        ab = self.alphas_cumprod[t].item()
        if prediction_type == 'sample':
            return (x_t - math.sqrt(ab) * pred) / math.sqrt(1 - ab)
        if prediction_type == 'v_prediction':
            return math.sqrt(1 - ab) * x_t + math.sqrt(ab) * pred
        raise ValueError(f'prediction type {prediction_type!r} unknown; use one of '
                         f'{PREDICTION_TYPES}')

    def ddim_timesteps(self, k: int) -> list[int]:
        """Return the k timesteps visited when sampling, descending ('leading' spacing)."""
        if not 1 <= k <= self.num_train_steps:
            raise ValueError(f'DDIM steps must be in [1, {self.num_train_steps}], got {k}')
        ratio = self.num_train_steps // k
        return [i * ratio for i in range(k)][::-1]

    def ddim_step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor,
                  prev_t: int) -> torch.Tensor:
        """x_t -> x_{prev_t} with eta = 0, given the predicted noise ``eps``."""
        ab_t = self.alphas_cumprod[t].item()
        ab_prev = self.alphas_cumprod[prev_t].item() if prev_t >= 0 else 1.0
        x0 = (x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        if self.clip_sample:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x_t - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
        return math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
