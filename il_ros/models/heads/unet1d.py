"""A 1-D conditional UNet over an action chunk (diffusion_policy's ConditionalUnet1D).

Input ``(N, Tp, A)`` noisy actions, a diffusion timestep and a global condition (the
observation features). Each residual block is FiLM-conditioned on
``[timestep embedding, condition]`` (a per-channel scale and bias). The chunk is halved
``len(down_dims) - 1`` times, so Tp must be divisible by ``2 ** (len(down_dims) - 1)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` whose CPU batch-1 forward is an im2col matmul.

    PyTorch sends batch-1 1-D convolutions on CPU to its native slow kernel (its oneDNN
    heuristic wants a batch > 1): 400 us against 80 us for im2col + addmm at 256 channels
    and length 4, 1 thread (measured; docs/models.md). Same parameters, same results.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, Cin, L) -> (N, Cout, Lout)."""
        if (x.shape[0] != 1 or x.device.type != 'cpu' or self.groups != 1
                or self.dilation != (1,) or self.padding_mode != 'zeros'
                or isinstance(self.padding, str)):
            return super().forward(x)
        (k,), (s,), (p,) = self.kernel_size, self.stride, self.padding
        cols = F.pad(x[0], (p, p)).unfold(1, k, s)                      # (Cin, Lout, k)
        cols = cols.permute(1, 0, 2).reshape(cols.shape[1], -1)        # (Lout, Cin*k)
        w = self.weight.reshape(self.out_channels, -1)                  # (Cout, Cin*k)
        out = cols @ w.t() if self.bias is None else torch.addmm(self.bias, cols, w.t())
        return out.t().unsqueeze(0)                                     # (1, Cout, Lout)


class SinusoidalPosEmb(nn.Module):
    """(N,) timesteps -> (N, dim) sinusoidal embedding."""

    def __init__(self, dim: int):
        """``dim`` must be even."""
        super().__init__()
        half = dim // 2
        freq = torch.exp(torch.arange(half) * (-math.log(10000) / max(half - 1, 1)))
        self.register_buffer('freq', freq, persistent=False)             # (dim/2,)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(N,) -> (N, dim)."""
        arg = t.float()[:, None] * self.freq[None]                      # (N, dim/2)
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        """Same-length convolution."""
        super().__init__()
        self.block = nn.Sequential(Conv1d(c_in, c_out, kernel, padding=kernel // 2),
                                   nn.GroupNorm(groups, c_out), nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, Cin, L) -> (N, Cout, L)."""
        return self.block(x)


class CondResBlock(nn.Module):
    """Two conv blocks, FiLM (scale, bias from the condition) between them, residual."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        """``cond_dim``: size of [timestep embedding, global condition]."""
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel, groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.residual = Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(N, Cin, L), (N, cond_dim) -> (N, Cout, L)."""
        out = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)     # (N, Cout, 1) each
        out = self.block2(out * scale + bias)
        return out + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Noise predictor eps(x_t, t, cond) over (N, Tp, A) chunks."""

    def __init__(self, action_dim: int, cond_dim: int, down_dims=(64, 128, 256),
                 kernel: int = 5, groups: int = 8, step_embed_dim: int = 128):
        """``down_dims``: channels per level; every one divisible by ``groups``."""
        super().__init__()
        dims = [action_dim, *down_dims]
        self.step_encoder = nn.Sequential(
            SinusoidalPosEmb(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim))
        c = step_embed_dim + cond_dim
        levels = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(levels):
            last = i == len(levels) - 1
            self.down.append(nn.ModuleList([
                CondResBlock(d_in, d_out, c, kernel, groups),
                CondResBlock(d_out, d_out, c, kernel, groups),
                Conv1d(d_out, d_out, 3, 2, 1) if not last else nn.Identity()]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([CondResBlock(mid, mid, c, kernel, groups),
                                  CondResBlock(mid, mid, c, kernel, groups)])
        self.up = nn.ModuleList()
        for d_in, d_out in reversed(levels[1:]):                         # one per halving
            self.up.append(nn.ModuleList([
                CondResBlock(2 * d_out, d_in, c, kernel, groups),
                CondResBlock(d_in, d_in, c, kernel, groups),
                nn.ConvTranspose1d(d_in, d_in, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel, groups),
                                   Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(N, Tp, A) noisy chunk, (N,) timesteps, (N, G) condition -> (N, Tp, A)."""
        h = x.transpose(1, 2)                                           # (N, A, Tp)
        c = torch.cat([self.step_encoder(t), cond], dim=-1)             # (N, C)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, up in self.up:
            h = res2(res1(torch.cat([h, skips.pop()], dim=1), c), c)
            h = up(h)
        return self.final(h).transpose(1, 2)                           # (N, Tp, A)
