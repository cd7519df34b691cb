"""Build a Policy from its config: parts from the registry, normalizers from dataset stats.

:func:`build_policy` makes a freshly initialized policy for training;
:func:`assemble_policy` wires the registered parts (the checkpoint loader calls it, then
loads the weights). The Policy itself (:mod:`il_ros.models.policy`) receives its parts and
knows nothing of the registry or of checkpoints.
"""
from __future__ import annotations

import numpy as np

from il_ros import keys
from il_ros.data.stats import Normalizer, normalizers_from_stats
from il_ros.models import registry
from il_ros.models.obs_encoder import ObsEncoder
from il_ros.models.policy import Policy
from il_ros.models.policy_config import PolicyConfig, RobotSpec


def assemble_policy(cfg: PolicyConfig, spec: RobotSpec, normalizers: dict[str, Normalizer],
                    load_weights: bool = True) -> Policy:
    """Build the parts from the registry and wire them into a Policy.

    ``load_weights``: read the pretrained encoder files named in the config (a checkpoint
    load passes False: its weights replace them).
    """
    image_encoders = {c: registry.build('encoder', cfg.encoder, in_channels=3,
                                        load_weights=load_weights) for c in cfg.cameras}
    proprio = (registry.build('encoder', cfg.proprio_encoder, in_dim=spec.proprio_dim)
               if cfg.proprio_keys else None)
    encoder = ObsEncoder(image_encoders, proprio, bf16=cfg.bf16,
                         channels_last=cfg.channels_last, amp_dtype=cfg.amp_dtype)
    core = registry.build('core', cfg.core, in_dim=encoder.out_dim,
                          obs_horizon=cfg.obs_horizon, seq_len=cfg.seq_len)
    head = registry.build('head', cfg.head, in_dim=core.out_dim, action_dim=spec.action_dim,
                          horizon=cfg.action_horizon)
    return Policy(cfg, spec, encoder, core, head, normalizers)


def build_policy(cfg: PolicyConfig, spec: RobotSpec, stats: dict) -> Policy:
    """Build a freshly initialized policy whose normalizers come from ``stats`` (Dataset.stats)."""
    if list(cfg.cameras) != list(spec.cameras):
        raise ValueError(f'config cameras {cfg.cameras} != spec cameras {spec.cameras}')
    modes = {keys.ACTION: cfg.normalize_action,
             **{k: cfg.normalize_proprio for k in cfg.proprio_keys}}
    stats = dict(stats)
    for cam in cfg.cameras:
        k = keys.image_key(cam)
        modes[k] = cfg.normalize_images
        if cfg.normalize_images == 'identity':
            stats.setdefault(k, {'mean': np.zeros(3)})
    norms = normalizers_from_stats(stats, modes)
    a_shape = norms[keys.ACTION].scale.shape
    p_dim = sum(int(np.prod(norms[k].scale.shape)) for k in cfg.proprio_keys)
    if a_shape != (spec.action_dim,) or p_dim != spec.proprio_dim:
        raise ValueError(f'stats do not fit the spec: action {a_shape} vs '
                         f'({spec.action_dim},), proprio {p_dim} vs {spec.proprio_dim}')
    bad = [k for k in cfg.proprio_keys if len(norms[k].scale.shape) != 1]
    if bad:
        raise ValueError(f'proprio keys must be 1-D vectors; {bad} are not')
    return assemble_policy(cfg, spec, norms, load_weights=True)
