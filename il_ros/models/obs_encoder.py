"""Fuse every camera (one encoder each, not shared) and proprio into one feature per frame."""
from __future__ import annotations

import functools

import torch
from torch import nn


@functools.cache
def bf16_is_native(device_type: str) -> bool:
    """Whether ``device_type`` computes bfloat16 in hardware, so bf16 autocast speeds it up.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: AVX512-BF16 or AMX. Elsewhere the CPU
    emulates bfloat16: the demo recipe trained at 26 samples/s under bf16 autocast against
    279 in float32 on an AMD EPYC (Zen 3, AVX2 only; docs/models.md), so ``bf16`` is
    ignored there.
    """
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == 'cpu':
        probes = ('_is_avx512_bf16_supported', '_is_amx_tile_supported')
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


AMP_DTYPES = ('auto', 'bfloat16', 'float16')
"""``PolicyConfig.amp_dtype`` values: the reduced precision the image encoders run in."""


def autocast_dtype(device_type: str, amp_dtype: str = 'auto') -> torch.dtype | None:
    """The dtype the image encoders autocast to on ``device_type``; None: float32.

    'auto': bfloat16 where the device computes it natively (:func:`bf16_is_native`), else
    float16 on a CUDA GPU (pre-Ampere GPUs: V100, T4; the trainer then scales the loss with
    a GradScaler), else None. 'bfloat16': bfloat16 where native, else None. 'float16':
    float16 on CUDA, else None (CPUs emulate it).
    """
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f'amp_dtype must be one of {", ".join(AMP_DTYPES)}, got {amp_dtype!r}')
    if amp_dtype != 'float16' and bf16_is_native(device_type):
        return torch.bfloat16
    if amp_dtype != 'bfloat16' and device_type == 'cuda':
        return torch.float16
    return None


class ObsEncoder(nn.Module):
    """``{camera: (B, T, C, h, w)}`` + proprio ``(B, T, P)`` -> ``(B, T, D)``.

    T is folded into the batch for the per-frame encoders. ``bf16`` runs the image encoders
    under autocast to :func:`autocast_dtype` (``amp_dtype`` 'auto': bfloat16 where the device
    computes it natively, float16 on other CUDA GPUs, else float32), and ``channels_last``
    feeds them NHWC tensors (measured in docs/models.md); the output is always float32.
    """

    def __init__(self, image_encoders: dict[str, nn.Module],
                 proprio_encoder: nn.Module | None = None, bf16: bool = False,
                 channels_last: bool = False, amp_dtype: str = 'auto'):
        """``image_encoders``: camera name -> image encoder, in input order."""
        super().__init__()
        if not image_encoders and proprio_encoder is None:
            raise ValueError('ObsEncoder needs at least one camera or a proprio encoder')
        self.cameras = list(image_encoders)
        self.image_encoders = nn.ModuleDict(image_encoders)
        self.proprio_encoder = proprio_encoder
        self.bf16, self.channels_last = bf16, channels_last
        autocast_dtype('cpu', amp_dtype)                # a bad name fails here, not mid-run
        self.amp_dtype = amp_dtype
        if channels_last:
            self.image_encoders.to(memory_format=torch.channels_last)
        self.out_dim = (sum(e.out_dim for e in self.image_encoders.values())
                        + (proprio_encoder.out_dim if proprio_encoder is not None else 0))

    def precision(self, device_type: str) -> torch.dtype | None:
        """The dtype the image encoders autocast to on ``device_type`` (None: float32)."""
        return autocast_dtype(device_type, self.amp_dtype) if self.bf16 else None

    def forward(self, images: dict[str, torch.Tensor],
                proprio: torch.Tensor | None = None) -> torch.Tensor:
        """Encode every frame; returns (B, T, D) float32."""
        feats = []
        for cam in self.cameras:
            x = images[cam]                                             # (B, T, C, h, w)
            b, t = x.shape[:2]
            x = x.reshape(b * t, *x.shape[2:])                          # (B*T, C, h, w)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            dt = self.precision(x.device.type)
            with torch.autocast(x.device.type, dtype=dt or torch.bfloat16, enabled=dt is not None):
                f = self.image_encoders[cam](x)                         # (B*T, F)
            feats.append(f.float().reshape(b, t, -1))                   # (B, T, F)
        if self.proprio_encoder is not None:
            if proprio is None:
                raise ValueError('this encoder has a proprio encoder: pass proprio')
            b, t = proprio.shape[:2]
            f = self.proprio_encoder(proprio.reshape(b * t, -1))        # (B*T, Fp)
            feats.append(f.reshape(b, t, -1))                           # (B, T, Fp)
        return torch.cat(feats, dim=-1)                                 # (B, T, D)
