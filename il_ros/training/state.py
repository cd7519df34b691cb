"""Resumable training state: EMA weights, optimizer, RNG streams, all without pickle.

``checkpoints/last`` holds the policy checkpoint (``save_checkpoint``: the files named by
``keys.CHECKPOINT_*``) plus two files written here:

- ``trainer_state.safetensors``: every tensor of the AdamW state (``optim/<param>/<name>``)
  and the RNG states (``rng/torch``, ``rng/numpy``);
- ``trainer_state.json``: step, elapsed training seconds, the optimizer's param groups, the
  numpy/random RNG scalars, the best score so far and the rest of the loop's bookkeeping.

Folders are replaced whole (:func:`replace_dir`): written under a temporary name, then
swapped in, so a kill at any moment leaves either the old or the new folder in place.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import random
import shutil

import numpy as np
from safetensors.torch import load_file, save_file
import torch

STATE_TENSORS = 'trainer_state.safetensors'
STATE_JSON = 'trainer_state.json'


class Ema:
    """Exponential moving average of a module's floating-point parameters.

    ``decay_t = min(decay, (1 + t) / (10 + t))`` at update t, so the average tracks the raw
    weights in the first steps and settles to ``decay`` (diffusion_policy's EMA warmup).
    Buffers (e.g. normalizer constants) are copied, not averaged.
    """

    def __init__(self, shadow: torch.nn.Module, decay: float):
        """``shadow``: a second instance of the model's architecture holding the average.

        Start it from the model's weights (``shadow.load_state_dict(model.state_dict())``)
        for a new run, or from the saved average when resuming.
        """
        self.decay = float(decay)
        self.shadow = shadow
        self.shadow.requires_grad_(False)
        self.shadow.eval()

    def rate(self, step: int) -> float:
        """Effective decay at update ``step`` (0-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the shadow weights toward ``model``'s."""
        d = self.rate(step)
        ema_p, cur_p = [], []
        for pe, p in zip(self.shadow.parameters(), model.parameters()):
            if p.is_floating_point():
                ema_p.append(pe)
                cur_p.append(p.detach())
        if ema_p:
            torch._foreach_lerp_(ema_p, cur_p, 1.0 - d)
        for be, b in zip(self.shadow.buffers(), model.buffers()):
            be.copy_(b)


# ---- RNG ---------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Return the global torch, numpy and random states as (tensors, JSON-able scalars)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {'rng/torch': torch.get_rng_state(),
               'rng/numpy': torch.from_numpy(np.asarray(keys, dtype=np.int64))}
    scalars = {'numpy': [name, int(pos), int(has_gauss), float(gauss)],
               'random': [version, list(internal), gauss_next]}
    return tensors, scalars


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(tensors['rng/torch'])
    name, pos, has_gauss, gauss = scalars['numpy']
    np.random.set_state((name, tensors['rng/numpy'].numpy().astype(np.uint32), int(pos),
                         int(has_gauss), float(gauss)))
    version, internal, gauss_next = scalars['random']
    random.setstate((version, tuple(internal), gauss_next))


class rng_fork:  # noqa: N801 - used like a function: ``with rng_fork(seed):``
    """Run a block on its own seeded torch/numpy/random streams, restoring them after.

    Validation and rollouts draw random numbers (diffusion noise, GMM samples); forking keeps
    the training streams, and so the training run, the same whenever they happen.
    """

    def __init__(self, seed: int):
        """``seed``: the block's seed."""
        self.seed = int(seed)

    def __enter__(self):
        self._saved = rng_state()
        torch.manual_seed(self.seed)
        np.random.seed(self.seed % 2 ** 32)
        random.seed(self.seed)

    def __exit__(self, *exc):
        set_rng_state(*self._saved)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


# ---- optimizer ---------------------------------------------------------------------------
def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """``opt.state_dict()`` split into tensors (for safetensors) and JSON."""
    sd = opt.state_dict()
    tensors, meta = {}, {}
    for pid, st in sd['state'].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f'optim/{pid}/{name}'] = v.detach().contiguous()
            else:
                meta.setdefault(str(pid), {})[name] = v
    return tensors, {'param_groups': sd['param_groups'], 'scalars': meta}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith('optim/'):
            _, pid, name = key.split('/', 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, scalars in meta.get('scalars', {}).items():
        state.setdefault(int(pid), {}).update(scalars)
    opt.load_state_dict({'state': state, 'param_groups': meta['param_groups']})


# ---- files -------------------------------------------------------------------------------
def write_trainer_state(folder: Path, opt: torch.optim.Optimizer, info: dict) -> None:
    """Write the optimizer and RNG state plus ``info`` (JSON-able) into ``folder``."""
    tensors, optim_meta = optimizer_state(opt)
    rng_t, rng_s = rng_state()
    save_file({**tensors, **rng_t}, str(folder / STATE_TENSORS))
    text = json.dumps({**info, 'optimizer': optim_meta, 'rng': rng_s}, indent=1,
                      allow_nan=True)
    (folder / STATE_JSON).write_text(text)


def read_trainer_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) written by :func:`write_trainer_state`."""
    return load_file(str(folder / STATE_TENSORS)), json.loads((folder / STATE_JSON).read_text())


def has_trainer_state(folder: Path) -> bool:
    """Whether ``folder`` holds a complete resumable state."""
    return (folder / STATE_JSON).is_file() and (folder / STATE_TENSORS).is_file()


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, 'rb') as f:
                os.fsync(f.fileno())


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap the finished folder ``tmp`` in as ``final`` (the old one is removed after).

    Between the two renames ``final`` is briefly missing; :func:`recover_dir` puts the old
    folder back if the process died right there.
    """
    _fsync_tree(tmp)
    old = final.with_name(final.name + '.old')
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(final: Path) -> None:
    """Undo an interrupted :func:`replace_dir`: restore ``final`` from ``final.old``."""
    old = final.with_name(final.name + '.old')
    if not final.exists() and old.exists():
        os.replace(old, final)
    for leftover in (old, final.with_name(final.name + '.tmp')):
        if leftover.exists():
            shutil.rmtree(leftover)
