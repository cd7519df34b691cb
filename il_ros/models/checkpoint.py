"""Policy checkpoints: a folder of safetensors weights plus a JSON description.

Layout (the file names are :data:`il_ros.keys.CHECKPOINT_CONFIG_FILE`, ``..._MODEL_FILE``
and ``..._EMA_FILE``)::

    <path>/policy.json          format, config, spec, normalizers, preprocess, extra
    <path>/model.safetensors    the policy's state dict
    <path>/ema.safetensors      optional EMA weights (the same keys or a subset)

The JSON alone is read without torch by :func:`il_ros.checkpoint_meta.read_checkpoint_meta`.

Nothing is ever unpickled: weights are read only with ``safetensors`` and the rest is JSON.
A folder holding only pickle-style files (``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) is
refused with a message saying so. Each file is written to a temp name and renamed, and
``policy.json`` last, so a reader never sees a half-written file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from il_ros.checkpoint_meta import (CHECKPOINT_FORMAT as FORMAT, checkpoint_preprocess,
                                   read_checkpoint_meta)
from il_ros.data.stats import Normalizer
from il_ros.fsio import atomic_write
from il_ros.images import preprocess_of
from il_ros.keys import (CHECKPOINT_CONFIG_FILE as CONFIG_FILE,  # short local names
                         CHECKPOINT_EMA_FILE as EMA_FILE, CHECKPOINT_MODEL_FILE as MODEL_FILE)
from il_ros.models.builders import assemble_policy
from il_ros.models.policy_config import PolicyConfig, RobotSpec

_PICKLE_SUFFIXES = ('.pt', '.pth', '.pkl', '.pickle', '.ckpt', '.bin')


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the robot (spec) or its own architecture (weights)."""


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().to('cpu').contiguous().clone() for k, v in state.items()}


def save_checkpoint(policy, path, extra: dict | None = None,
                    ema_state: dict | None = None) -> Path:
    """Write ``policy`` (and optionally EMA weights) to the folder ``path``; returns it.

    ``extra``: JSON-able training info (step, metrics, dataset...), returned by
    :func:`load_checkpoint`. ``ema_state``: a state dict of the EMA copy of the policy.
    The JSON's ``preprocess`` says how camera images become the policy's input
    (:func:`il_ros.images.preprocess_of`: the policy's ``preprocess`` attribute, which the
    trainer sets from the dataset, else the default at its image size).
    """
    from safetensors.torch import save_file
    path = Path(path)
    try:
        pre = preprocess_of(policy)
        meta = {'format': FORMAT, 'config': policy.cfg.to_dict(), 'spec': policy.spec.to_dict(),
                'normalizers': {k: n.to_dict() for k, n in policy.normalizers.items()},
                'preprocess': pre.to_dict() if pre is not None else None,
                'extra': extra or {}, 'ema': ema_state is not None}
        text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f'checkpoint metadata is not JSON-able (check extra): {e}') from None
    if ema_state is not None:
        own = policy.state_dict()
        bad = sorted(k for k in ema_state if k not in own or own[k].shape != ema_state[k].shape)
        if bad:
            raise ValueError(f'ema_state keys not in the policy or mis-shaped: {bad[:5]}')
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / MODEL_FILE, lambda p: save_file(_tensors(policy.state_dict()), str(p)))
    if ema_state is not None:
        atomic_write(path / EMA_FILE, lambda p: save_file(_tensors(ema_state), str(p)))
    elif (path / EMA_FILE).exists():
        (path / EMA_FILE).unlink()                  # stale EMA of an older save
    atomic_write(path / CONFIG_FILE, lambda p: p.write_text(text))
    return path


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    try:
        return load_file(str(file))
    except Exception as e:  # noqa: BLE001 - any parse failure means "not safetensors"
        raise ValueError(f'{file}: not a safetensors file ({type(e).__name__}: {e}); '
                         f'pickle files are never loaded') from None


def _checkpoint_dir(path: Path) -> Path:
    if path.is_file() and path.name == CONFIG_FILE:
        return path.parent
    if path.is_file():
        raise ValueError(f'{path}: a checkpoint is a folder with {CONFIG_FILE} and '
                         f'{MODEL_FILE}; single files (pickles included) are never loaded')
    if not path.is_dir():
        raise FileNotFoundError(f'{path}: no checkpoint here')
    return path


def _upgrade_config(config):
    """Fill the fields whose default changed since a checkpoint was written.

    Each gets the value it was trained with: a diffusion head saved before
    ``prediction_type`` existed regressed the noise ('epsilon'; the default is 'sample').
    """
    head = config.get('head') if isinstance(config, dict) else None
    if isinstance(head, dict) and head.get('name') == 'diffusion' \
            and 'prediction_type' not in head:
        config = {**config, 'head': {**head, 'prediction_type': 'epsilon'}}
    return config


def load_checkpoint(path, expect=None, use_ema: bool = True):
    """Load a checkpoint folder -> ``(policy, extra)``; the policy is in eval mode.

    ``policy.preprocess`` is the checkpoint's image preprocessing
    (:func:`il_ros.checkpoint_meta.checkpoint_preprocess`).

    ``expect`` (a RobotSpec): the robot it will drive; any difference raises
    CheckpointMismatch naming the fields (e.g. ``action_dim 6 != 7``, checkpoint first).
    ``use_ema``: load the EMA weights when the checkpoint has them.
    """
    folder = _checkpoint_dir(Path(path))
    cfg_file, model_file = folder / CONFIG_FILE, folder / MODEL_FILE
    if not cfg_file.is_file() or not model_file.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        hint = (f'; found {pickles}: pickle files are never loaded, re-save with '
                f'save_checkpoint' if pickles else '')
        raise ValueError(f'{folder}: not a policy checkpoint (needs {CONFIG_FILE} and '
                         f'{MODEL_FILE}){hint}')
    meta = read_checkpoint_meta(folder)          # ValueError when corrupt or of another format
    try:
        cfg = PolicyConfig.from_dict(_upgrade_config(meta['config']))
        spec = RobotSpec.from_dict(meta['spec'])
        norms = {k: Normalizer.from_dict(d) for k, d in meta['normalizers'].items()}
        preprocess = checkpoint_preprocess(meta)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{cfg_file}: invalid checkpoint description: {e}') from None
    if expect is not None:
        diff = spec.mismatches(expect)
        if diff:
            raise CheckpointMismatch(f'{folder} does not fit this robot (checkpoint != '
                                     f'robot): ' + '; '.join(diff))
    policy = assemble_policy(cfg, spec, norms, load_weights=False)
    state = _read_weights(model_file)
    if use_ema and (folder / EMA_FILE).is_file():
        ema = _read_weights(folder / EMA_FILE)
        unknown = sorted(set(ema) - set(state))
        if unknown:
            raise CheckpointMismatch(f'{folder / EMA_FILE}: keys not in the model: '
                                     f'{unknown[:5]}')
        state.update(ema)
    _load_state(policy, state, model_file)
    policy.preprocess = preprocess
    return policy.eval(), meta.get('extra', {})


def _load_state(policy, state: dict, file: Path) -> None:
    own = policy.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f'{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}'
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = [f'{n} ({len(v)}): {v[:4]}' for n, v in
                 (('missing', missing), ('unexpected', unexpected), ('shape', shapes)) if v]
        raise CheckpointMismatch(f'{file}: weights do not fit the config: ' + '; '.join(parts))
    policy.load_state_dict(state, strict=True)
