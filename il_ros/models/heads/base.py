"""Loss reduction, input checks and act-time random draws shared by the heads."""
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


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device('cpu')


def _move(x: torch.Tensor, device) -> torch.Tensor:
    """``x`` on ``device``; asynchronous only from the CPU (a GPU -> CPU copy must wait)."""
    return x.to(device, non_blocking=x.device.type == 'cpu')


def randn(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard normal float32 draws of ``shape`` on ``device``.

    They are drawn where ``generator`` lives (the CPU for the policy's own generator, and
    for None: the global CPU generator), then moved to ``device``: a seed gives the same
    noise stream whether the policy acts on the CPU or on a GPU (a CPU generator cannot
    draw on a GPU). On the CPU the move is a no-op: no copy.
    """
    return _move(torch.randn(shape, generator=generator, device=_draw_device(generator)),
                 device)


def rand(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform [0, 1) float32 draws, made like :func:`randn` (on the generator's device)."""
    return _move(torch.rand(shape, generator=generator, device=_draw_device(generator)),
                 device)


def multinomial(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probs`` (N, K) -> (N,), drawn like :func:`randn`.

    The probabilities go to the generator's device for the draw; the indices come back to
    ``probs``' device.
    """
    idx = torch.multinomial(probs.to(_draw_device(generator)), 1, generator=generator)
    return _move(idx[:, 0], probs.device)
