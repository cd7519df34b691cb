"""Named default configs, so training YAMLs can say ``preset: lstm_gmm``.

``preset(name, **overrides)`` returns a :class:`PolicyConfig`. Overrides replace top-level
fields; for the component dicts (encoder, proprio_encoder, core, head) an override with
the same (or no) ``name`` is merged into the preset's options, one with another name
replaces them::

    preset('lstm_gmm', head={'num_modes': 3})           # lstm + gmm with K=3
    preset('none_mse', encoder={'name': 'conv4'})       # conv4 instead of resnet18
"""
from __future__ import annotations

import copy

from il_ros.models.policy_config import PolicyConfig

_COMPONENTS = ('encoder', 'proprio_encoder', 'core', 'head')

# Every preset runs its image encoders under bf16 autocast with channels_last tensors:
# measured faster for training and batch-1 act with both encoders (docs/models.md), on a
# CPU with native bf16; without it the encoders run in fp32 (obs_encoder.bf16_is_native).
# preset(name, bf16=False, channels_last=False) gives exact fp32.
_FAST = {'bf16': True, 'channels_last': True}

PRESETS: dict[str, dict] = {
    # Frame stack (To=2) + MLP + MSE: the fast, strong baseline on unimodal tasks.
    'none_mse': {'core': {'name': 'none'}, 'head': {'name': 'mse'},
                 'obs_horizon': 2, 'action_horizon': 1, 'action_exec': 1},
    # The same with a conv4 encoder: ~2x the training throughput of half-width ResNet-18.
    'conv4_mse': {'encoder': {'name': 'conv4'}, 'core': {'name': 'none'},
                  'head': {'name': 'mse'}, 'obs_horizon': 2, 'action_horizon': 1,
                  'action_exec': 1},
    # Frame stack + chunked MSE (Tp=Ta=8): ACT-like open-loop chunks, no multimodality.
    'none_mse_chunk': {'core': {'name': 'none'}, 'head': {'name': 'mse'},
                       'obs_horizon': 2, 'action_horizon': 8, 'action_exec': 8},
    # Frame stack + GMM (mode mean at act time).
    'none_gmm': {'core': {'name': 'none'}, 'head': {'name': 'gmm'},
                 'obs_horizon': 2, 'action_horizon': 1, 'action_exec': 1},
    # Frame stack + Gaussian NLL.
    'none_gaussian': {'core': {'name': 'none'}, 'head': {'name': 'gaussian'},
                      'obs_horizon': 2, 'action_horizon': 1, 'action_exec': 1},
    # robomimic BC-RNN-GMM: LSTM 2x400 over 10-step windows, GMM with 5 modes.
    'lstm_gmm': {'core': {'name': 'lstm'}, 'head': {'name': 'gmm'},
                 'obs_horizon': 1, 'seq_len': 10, 'action_horizon': 1, 'action_exec': 1},
    # robomimic BC-RNN with a deterministic head.
    'lstm_mse': {'core': {'name': 'lstm'}, 'head': {'name': 'mse'},
                 'obs_horizon': 1, 'seq_len': 10, 'action_horizon': 1, 'action_exec': 1},
    # Diffusion Policy (CNN): To=2, Tp=16, Ta=8, DDIM with 10 steps, the stacked features
    # condition the UNet directly (FiLM).
    'diffusion': {'core': {'name': 'none', 'hidden': []}, 'head': {'name': 'diffusion'},
                  'obs_horizon': 2, 'action_horizon': 16, 'action_exec': 8},
}


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return sorted(PRESETS)


def preset(name: str, **overrides) -> PolicyConfig:
    """Return the preset's PolicyConfig with ``overrides`` applied (see module doc)."""
    if name not in PRESETS:
        raise ValueError(f'policy preset {name!r} unknown; presets: {preset_names()}')
    fields = {**_FAST, **copy.deepcopy(PRESETS[name])}
    for k, v in overrides.items():
        base = fields.get(k)
        if k in _COMPONENTS and isinstance(v, dict) and isinstance(base, dict) and \
                v.get('name', base['name']) == base['name']:
            fields[k] = {**base, **v}
        elif k in _COMPONENTS and isinstance(v, dict) and base is None and 'name' not in v:
            fields[k] = {**getattr(PolicyConfig(), k), **v}
        else:
            fields[k] = copy.deepcopy(v)
    return PolicyConfig(**fields)
