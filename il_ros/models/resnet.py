"""ResNet-18 written in the project, state-dict compatible with torchvision's resnet18.

Module names follow torchvision exactly (``conv1``, ``bn1``, ``layer1``..``layer4`` of
``BasicBlock`` with ``conv1/bn1/conv2/bn2/downsample.0/.1``, ``fc``), so a torchvision state
dict loads with :func:`load_torchvision_weights`. Options:

- ``norm='group'`` replaces every BatchNorm by GroupNorm (groups of ``gn_group_size``
  channels, as diffusion_policy/robomimic do for small-batch BC). The layers keep their
  ``bnX`` names, so BatchNorm weights (weight/bias) load; the running statistics are dropped.
- ``width``: channel multiplier (0.5 = half width: ~4x fewer FLOPs); weights only load at 1.
- ``num_classes=None``: no ``fc`` (use :meth:`ResNet18.forward_features` for the map).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

NORMS = ('batch', 'group')
_RUNNING = ('running_mean', 'running_var', 'num_batches_tracked')


def make_norm(kind: str, channels: int, gn_group_size: int = 16) -> nn.Module:
    """BatchNorm2d or GroupNorm over ``channels`` (groups of ~``gn_group_size``)."""
    if kind == 'batch':
        return nn.BatchNorm2d(channels)
    if kind == 'group':
        groups = max(1, channels // gn_group_size)
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    raise ValueError(f'norm {kind!r} unknown; use one of {NORMS}')


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (torchvision's BasicBlock)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, norm: str,
                 gn_group_size: int):
        """``downsample`` (1x1 conv + norm) when the stride or width changes."""
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, planes, gn_group_size)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, planes, gn_group_size)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            make_norm(norm, planes, gn_group_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, C, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's parameter names."""

    def __init__(self, norm: str = 'batch', width: float = 1.0,
                 num_classes: int | None = 1000, in_channels: int = 3,
                 gn_group_size: int = 16):
        """See the module doc for the options."""
        super().__init__()
        if width <= 0:
            raise ValueError(f'width must be > 0, got {width}')
        self.norm_kind, self.width = norm, width
        chans = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 7, 2, 3, bias=False)
        self.bn1 = make_norm(norm, chans[0], gn_group_size)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = chans[0]
        for i, (c, stride) in enumerate(zip(chans, (1, 2, 2, 2))):
            blocks = [BasicBlock(inplanes, c, stride, norm, gn_group_size),
                      BasicBlock(c, c, 1, norm, gn_group_size)]
            setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
            inplanes = c
        self.out_channels = chans[-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[-1], num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, C, ~H/32, ~W/32) feature map (84x84 -> 3x3)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, num_classes), or (B, C) pooled features without fc."""
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)     # (B, C)
        return x if self.fc is None else self.fc(x)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no weights file here')
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is "not a weights file"
        raise ValueError(f'{path}: cannot read a state dict: {type(e).__name__}: {e}') from None
    if isinstance(sd, dict) and isinstance(sd.get('state_dict'), dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f'{path}: not a state dict of tensors')
    return sd


def load_torchvision_weights(model: ResNet18, path) -> dict[str, list[str]]:
    """Load a local torchvision ``resnet18`` state dict (``.pth`` or ``.safetensors``).

    Never downloads; ``.pth`` files load with ``weights_only=True`` (no pickle code). BN
    running statistics are dropped for a GroupNorm model, and ``fc`` is skipped when the
    model has none or a different size. Any other missing, unexpected or mis-shaped key
    raises ValueError naming the file. Returns ``{'loaded': [...], 'skipped': [...]}``.
    """
    path = Path(path)
    sd = _read_state_dict(path)
    own = model.state_dict()
    skipped = []
    for k in list(sd):
        is_running = k.rsplit('.', 1)[-1] in _RUNNING
        fc_off = k.startswith('fc.') and (k not in own or own[k].shape != sd[k].shape)
        if (is_running and model.norm_kind == 'group') or fc_off:
            skipped.append(k)
            del sd[k]
    missing = sorted(k for k in own if k not in sd and not k.startswith('fc.'))
    unexpected = sorted(k for k in sd if k not in own)
    shapes = sorted(f'{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}'
                    for k in sd if k in own and sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f'{name} ({len(v)}): {v[:5]}' for name, v in
                 (('missing', missing), ('unexpected', unexpected), ('shape mismatch', shapes))
                 if v]
        raise ValueError(f'{path}: does not match ResNet18(norm={model.norm_kind!r}, '
                         f'width={model.width}): ' + '; '.join(parts))
    model.load_state_dict(sd, strict=False)
    return {'loaded': sorted(sd), 'skipped': sorted(skipped)}
