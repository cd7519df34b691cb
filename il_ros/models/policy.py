"""The Policy: obs encoders -> history core -> action head, with its normalizers.

``Policy(cfg, spec, encoder, core, head, normalizers)`` receives its parts (built by
:func:`il_ros.models.builders.build_policy` or :func:`il_ros.models.checkpoint.load_checkpoint`).
Its API:

- ``loss(batch)``: a ``WindowDataset`` batch (uint8 images ``(B, T, H, W, 3)``); crops and
  jitters the images itself in training mode (center crop otherwise), normalizes, and uses
  ``batch['weight']`` and the padding masks;
- ``reset(seed=None)``, ``act(obs) -> (A,)`` and ``act_chunk(obs) -> (Ta, A)`` (=
  ``observe(obs)`` + ``plan()``, for a controller that feeds every tick and plans when its
  queue runs low) on raw
  observation dicts (``'image/<cam>'`` (H, W, 3) uint8, proprio keys), returning raw
  (unnormalized) actions. ``act`` keeps the obs history, the core's hidden state and the
  action queue (receding horizon: a chunk of Ta actions is executed, then it replans).

It acts on the device its parameters are on (``policy.to('cuda')``; :attr:`Policy.device`):
each observation moves there as it arrives, the planned chunk comes back to the CPU (numpy
float64, unnormalized and made absolute there, with the joints observed on the CPU), and the
random draws of the heads come from the policy's CPU ``torch.Generator`` and move to the
device, so ``reset(seed)`` gives the same noise stream on the CPU and on a GPU. On the CPU
no tensor is copied for this.
"""
from __future__ import annotations

from collections import deque
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from il_ros import keys
from il_ros.data.augment import ImageAugment
from il_ros.data.stats import Normalizer
from il_ros.models.obs_encoder import ObsEncoder
from il_ros.models.policy_config import PolicyConfig, RobotSpec

__all__ = ['Policy', 'PolicyConfig', 'RobotSpec']


class Policy(nn.Module):
    """A visuomotor BC policy (see the module doc)."""

    def __init__(self, cfg: PolicyConfig, spec: RobotSpec, encoder: ObsEncoder,
                 core: nn.Module, head: nn.Module, normalizers: dict[str, Normalizer]):
        """Wire the parts; ``normalizers`` has 'action', every proprio key and camera key."""
        super().__init__()
        need = [keys.ACTION, *cfg.proprio_keys, *map(keys.image_key, cfg.cameras)]
        missing = [k for k in need if k not in normalizers]
        if missing:
            raise ValueError(f'Policy: no normalizer for {missing}')
        if list(cfg.cameras) != list(spec.cameras):
            raise ValueError(f'Policy: config cameras {cfg.cameras} != spec {spec.cameras}')
        self.cfg, self.spec = cfg, spec
        self.encoder, self.core, self.head = encoder, core, head
        self.normalizers = {k: normalizers[k] for k in need}
        self._img_norm = {c: normalizers[keys.image_key(c)].channels_first()
                          for c in cfg.cameras}
        j = cfg.color_jitter
        self.augment = ImageAugment(cfg.crop, j, j, j)
        self._gen = torch.Generator().manual_seed(0)   # CPU: same draws on every device
        self._device: torch.device | None = None       # cache of the property `device`
        self._history: deque = deque(maxlen=cfg.obs_horizon)
        self._queue: deque = deque()
        self._seq_features: torch.Tensor | None = None
        self._last_chunk: torch.Tensor | None = None   # raw (1, Tp, A) of the last plan
        self._since_plan = 0                             # observations since that plan
        try:
            a_idx, q_idx = spec.joint_actions() if cfg.relative_actions else ([], [])
        except ValueError as e:
            raise ValueError(f'Policy: {e}') from None
        self._rel_a, self._rel_q = torch.tensor(a_idx, dtype=torch.long), \
            torch.tensor(q_idx, dtype=torch.long)

    # ----------------------------------------------------------------- training
    def sampler_spec(self) -> dict:
        """Return the windows the trainer must load (``WindowDataset`` arguments)."""
        return {'obs_keys': [*map(keys.image_key, self.cfg.cameras), *self.cfg.proprio_keys],
                'obs_horizon': self.cfg.window, 'action_horizon': self.cfg.action_horizon,
                'obs_aligned_actions': self.cfg.sequence_core}

    def _images(self, obs: dict, train: bool, generator=None) -> dict[str, torch.Tensor]:
        out = {}
        for cam in self.cfg.cameras:
            x = self.augment(obs[keys.image_key(cam)], train=train, generator=generator)
            out[cam] = self._img_norm[cam].normalize(x)                 # (B, T, 3, h, w)
        return out

    def _proprio(self, obs: dict) -> torch.Tensor | None:
        if not self.cfg.proprio_keys:
            return None
        return torch.cat([self.normalizers[k].normalize(obs[k].to(torch.float32))
                          for k in self.cfg.proprio_keys], dim=-1)      # (B, T, P)

    def loss(self, batch: dict) -> torch.Tensor:
        """Training loss of one ``WindowDataset`` batch (a scalar tensor)."""
        obs = batch['obs']
        b, dev = batch['action'].shape[0], batch['action'].device
        weight = batch.get('weight')
        weight = torch.ones(b, device=dev) if weight is None else weight.to(torch.float32)
        if not self.core.sequence:
            return self.head.loss(*self.stacked_chunks(batch), weight)
        feats = self.encoder(self._images(obs, self.training), self._proprio(obs))  # (B,T,D)
        if 'action_seq' not in batch or 'obs_pad' not in batch:
            raise ValueError('a sequence core needs per-frame actions: build the '
                             'WindowDataset with obs_aligned_actions=True (see '
                             'Policy.sampler_spec())')
        features = self.core(feats)                                     # (B, T, F)
        t, tp = features.shape[1], self.cfg.action_horizon
        stream = torch.cat([batch['action_seq'], batch['action'][:, 1:]], dim=1)  # (B,T+Tp-1,A)
        target = self._target(stream.unfold(1, tp, 1).permute(0, 1, 3, 2), obs)  # (B,T,Tp,A)
        pad = torch.cat([torch.zeros(b, t, dtype=torch.bool, device=dev),
                         batch['action_pad'][:, 1:]], 1)                # (B, T+Tp-1)
        valid = (~pad).unfold(1, tp, 1) if self.cfg.mask_padding else \
            torch.ones(b, t, tp, dtype=torch.bool, device=dev)          # (B, T, Tp)
        valid = valid & ~batch['obs_pad'][:, :, None]                   # (B, T, Tp)
        return self.head.loss(features.reshape(b * t, -1), target.reshape(b * t, tp, -1),
                              valid.reshape(b * t, tp), weight.repeat_interleave(t))

    def stacked_chunks(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a frame-stack core's head loss compares, for one ``WindowDataset`` batch.

        Returns features (B, F), normalized target chunks (B, Tp, A) and valid steps (B, Tp).
        """
        obs = batch['obs']
        feats = self.encoder(self._images(obs, self.training), self._proprio(obs))  # (B,T,D)
        act = self._target(batch['action'], obs, frame=-1)             # (B, Tp, A)
        mask = (~batch['action_pad'] if self.cfg.mask_padding
                else torch.ones(act.shape[:2], dtype=torch.bool, device=act.device))
        return self.core(feats)[:, 0], act, mask

    def _target(self, action: torch.Tensor, obs: dict, frame: int | None = None):
        """Normalized training targets from raw ``action`` (B, [T,] Tp, A).

        With relative actions the joint actions become offsets from ``joint_pos`` at the
        obs frame that plans them: ``frame`` (one frame for all) or each of the T frames.
        """
        action = action.to(torch.float32)
        if len(self._rel_a):
            q = obs[keys.OBS_JOINT_POS].to(torch.float32)               # (B, T, J)
            q = q[:, frame, None] if frame is not None else q[:, :, None]
            action = action.clone()
            action[..., self._rel_a] -= q[..., self._rel_q]
        return self.normalizers[keys.ACTION].normalize(action)

    def _absolute(self, chunk: torch.Tensor) -> torch.Tensor:
        """Raw absolute (1, Tp, A) float64 actions from a normalized chunk of the head."""
        raw = self.normalizers[keys.ACTION].unnormalize(chunk.double())
        if len(self._rel_a):
            q = self._history[-1]['joint_pos']                          # (J,) float64
            raw[..., self._rel_a] += q[self._rel_q]
        return raw

    def _relative(self, raw: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_absolute` (for the latest observation's joints)."""
        raw = raw.clone()
        if len(self._rel_a):
            raw[..., self._rel_a] -= self._history[-1]['joint_pos'][self._rel_q]
        return self.normalizers[keys.ACTION].normalize(raw).to(torch.float32)

    # ------------------------------------------------------------------ acting
    @property
    def device(self) -> torch.device:
        """The device of the parameters, where the policy acts (the CPU without any).

        Cached (a parameter walk costs ~10 us a tick); ``.to()``, ``.cuda()`` and ``.cpu()``
        clear the cache (:meth:`_apply`).
        """
        if self._device is None:
            p = next(self.parameters(), None)
            self._device = p.device if p is not None else torch.device('cpu')
        return self._device

    def _apply(self, fn, *args, **kwargs):
        self._device = None                  # .to() / .cuda() / .cpu() may move the weights
        return super()._apply(fn, *args, **kwargs)

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: clear history, hidden state and queue; reseed when given."""
        self._history.clear()
        self._queue.clear()
        self._seq_features = None
        self._last_chunk, self._since_plan = None, 0
        self.core.reset()
        if seed is not None:
            self._gen.manual_seed(int(seed))

    @contextmanager
    def _inference(self):
        was = self.training              # walking the modules costs ~1 ms: only when needed
        if was:
            self.train(False)
        try:
            with torch.inference_mode():
                yield
        finally:
            if was:
                self.train(True)

    def _frame(self, obs: dict) -> dict:
        """Validate one raw observation and turn it into normalized (1, 1, ...) tensors.

        The tensors are on :attr:`device` (uint8 images move before they are normalized);
        ``joint_pos`` (relative actions) stays on the CPU, where chunks are made absolute.
        """
        dev = self.device
        images = {}
        for cam in self.cfg.cameras:
            k = keys.image_key(cam)
            if k not in obs:
                raise KeyError(f'observation has no {k!r} (keys: {sorted(obs)})')
            a = np.asarray(obs[k])
            if a.shape != (*self.spec.image_size, 3) or a.dtype != np.uint8:
                raise ValueError(f'{k}: expected uint8 {(*self.spec.image_size, 3)}, got '
                                 f'{a.dtype} {a.shape}')
            images[k] = torch.from_numpy(np.ascontiguousarray(a))[None, None].to(
                dev, non_blocking=True)                                 # no-op on the CPU
        lowdim = {}
        for k in self.cfg.proprio_keys:
            if k not in obs:
                raise KeyError(f'observation has no {k!r} (keys: {sorted(obs)})')
            a = np.asarray(obs[k], dtype=np.float32)
            want = self.normalizers[k].scale.shape
            if a.shape != want or not np.isfinite(a).all():
                raise ValueError(f'{k}: expected finite {want}, got {a.shape}')
            lowdim[k] = torch.from_numpy(a)[None, None].to(dev, non_blocking=True)
        frame = {'images': self._images(images, train=False), 'proprio': self._proprio(lowdim)}
        if len(self._rel_a):
            frame['joint_pos'] = torch.from_numpy(
                np.asarray(obs[keys.OBS_JOINT_POS], dtype=np.float64))
        return frame

    def _encode(self, frames: list[dict]) -> torch.Tensor:
        images = {c: torch.cat([f['images'][c] for f in frames], 1) for c in self.cfg.cameras}
        proprio = (torch.cat([f['proprio'] for f in frames], 1)
                   if self.cfg.proprio_keys else None)
        return self.encoder(images, proprio)                            # (1, T, D)

    def _history_features(self) -> torch.Tensor:
        """Return the (1, To, D) features of the history.

        Each frame is encoded once, when first needed: the encoders work per frame, so a
        frame's features never change.
        """
        frames = list(self._history)
        todo = []
        for f in frames:
            if 'feat' not in f and all(f is not g for g in todo):
                todo.append(f)
        if todo:
            feats = self._encode(todo)                                  # (1, n, D)
            for j, f in enumerate(todo):
                f['feat'] = feats[:, j]                                 # (1, D)
        return torch.stack([f['feat'] for f in frames], dim=1)          # (1, To, D)

    def _observe(self, obs: dict) -> None:
        frame = self._frame(obs)
        self._since_plan += 1
        if not self._history:
            self._history.extend([frame] * self.cfg.obs_horizon)       # pad like the sampler
        else:
            self._history.append(frame)
        if self.core.sequence:
            self._seq_features = self.core.step(self._history_features())  # (1, F)

    def _plan(self, generator) -> np.ndarray:
        features = (self._seq_features if self.core.sequence
                    else self.core.step(self._history_features()))     # (1, F)
        gen = generator or self._gen
        if getattr(self.head, 'accepts_prior', False):
            # the previous plan's actions for this tick on: chunk index = ticks since it
            prior = (self._relative(self._last_chunk[:, self._since_plan - 1:]).to(
                features.device, non_blocking=True) if self._last_chunk is not None else None)
            chunk = self.head.sample(features, generator=gen, prior=prior)  # (1, Tp, A)
        else:
            chunk = self.head.sample(features, generator=gen)
        raw = self._absolute(chunk.cpu())                               # (1, Tp, A) on the CPU
        self._last_chunk, self._since_plan = raw, 1
        return raw[0].numpy()

    def act(self, obs: dict, generator: torch.Generator | None = None) -> np.ndarray:
        """One raw action (A,) float64 for this control tick (replans when the queue is empty).

        ``generator`` overrides the policy's own (seeded by :meth:`reset`); the heads draw
        on the generator's device and move the draws to :attr:`device` (the policy's own is
        a CPU generator: a seed gives the same draws on any device).
        """
        with self._inference():
            self._observe(obs)
            if not self._queue:
                self._queue.extend(self._plan(generator)[:self.cfg.action_exec])
            return self._queue.popleft().copy()

    def act_chunk(self, obs: dict, generator: torch.Generator | None = None) -> np.ndarray:
        """Return a fresh (Ta, A) raw chunk, for a controller that schedules chunks itself.

        Use either :meth:`act` or this within an episode; this one clears act's queue.
        Equivalent to :meth:`observe` then :meth:`plan`.
        """
        self.observe(obs)
        return self.plan(generator)

    def observe(self, obs: dict) -> None:
        """Record this tick's observation without planning.

        A controller that plans only when its chunk queue runs low still calls this every
        tick, so the frame history stays on consecutive ticks and an LSTM steps once a tick.
        """
        with self._inference():
            self._observe(obs)

    def plan(self, generator: torch.Generator | None = None) -> np.ndarray:
        """A fresh (Ta, A) raw chunk from the observations recorded so far."""
        if not self._history:
            raise RuntimeError('plan() before any observe(): no observation yet')
        with self._inference():
            self._queue.clear()
            return self._plan(generator)[:self.cfg.action_exec].copy()
