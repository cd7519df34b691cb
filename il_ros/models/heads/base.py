"""Loss reduction shared by the heads."""
from __future__ import annotations

import torch


def reduce_loss(values: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted masked mean of per-step (N, Tp) or per-sample (N,) loss values.

    ``sum(values * mask * weight) / count(mask)``: padded entries drop out, and the label
    weights keep their relative and absolute scale (a batch whose weights are all 2 gives
    twice the loss). A batch with no valid entry gives 0 (with a graph).
    """
    m = mask.to(values.dtype)
    w = weight.to(values.dtype).reshape((-1,) + (1,) * (values.dim() - 1))
    return (values * m * w).sum() / m.sum().clamp_min(1.0)


def check_head_inputs(name: str, features: torch.Tensor, target: torch.Tensor,
                      horizon: int, action_dim: int) -> None:
    """Raise ValueError when the shapes do not fit the head."""
    if features.dim() != 2 or target.shape != (features.shape[0], horizon, action_dim):
        raise ValueError(f'{name} head: expected features (N, F) and targets (N, {horizon}, '
                         f'{action_dim}); got {tuple(features.shape)} and '
                         f'{tuple(target.shape)}')
