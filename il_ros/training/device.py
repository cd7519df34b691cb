"""Where a training run computes: ``TrainConfig.device`` and the moves it needs.

``auto`` (default) is the first CUDA GPU when PyTorch sees one, else the CPU; ``cpu``,
``cuda`` or ``cuda:N`` name one. On a GPU the image encoders run under bfloat16 autocast
where the GPU computes it natively (``bf16``; il_ros.models.obs_encoder), batches come from
pinned memory, and in-training rollouts run on a CPU copy of the weights, as the controller
does. Checkpoints hold CPU tensors whatever the device (il_ros.models.checkpoint), so a
GPU-trained policy loads and runs on a robot's CPU.
"""
from __future__ import annotations

import copy
import re

import torch

DEVICE_RE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def check_device_name(name) -> None:
    """ValueError unless ``name`` is auto, cpu, cuda or cuda:N."""
    if not isinstance(name, str) or not DEVICE_RE.match(name):
        raise ValueError(f'device must be auto, cpu, cuda or cuda:N, got {name!r}')


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; ValueError naming ``device`` when it is not there."""
    check_device_name(name)
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(name)
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {name}: PyTorch sees no CUDA GPU here (torch '
                             f'{torch.__version__}); use device=auto or cpu')
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f'device {name}: this machine has {count} CUDA GPU(s), '
                             f'cuda:0..cuda:{count - 1}')
    return dev


def to_device(batch, device: torch.device):
    """``batch`` (tensors in dicts and lists) on ``device`` (asynchronously from pinned)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def on_cpu(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` itself when on the CPU, else a CPU copy (for rollouts in the sim)."""
    p = next(module.parameters(), None)
    if p is None or p.device.type == 'cpu':
        return module
    return copy.deepcopy(module).to('cpu')
