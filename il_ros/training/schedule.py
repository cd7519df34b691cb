"""What changes from step to step: the batch order and the learning rate.

Both are pure functions of the config and the step (and, for a time budget, the training
seconds), so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from il_ros.training.config import TrainConfig


class EpochSampler(torch.utils.data.Sampler):
    """Sample indices, epoch after epoch, from global batch ``start`` on, forever.

    Epoch e is a permutation drawn from ``(seed, e)``, cut to whole batches, so batch b of
    the run is the same however the run was interrupted and resumed.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0,
                 indices: np.ndarray | None = None):
        """Sample ``0..n-1``, or only ``indices`` (e.g. the samples whose weight is not 0)."""
        super().__init__()
        self.indices = None if indices is None else np.asarray(indices, np.int64)
        self.n = n if indices is None else len(self.indices)
        self.bs, self.seed, self.start = batch_size, seed, start
        self.per_epoch = self.n // batch_size

    def __len__(self) -> int:
        return 2 ** 62

    def _perm(self, epoch: int) -> np.ndarray:
        perm = np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return perm if self.indices is None else self.indices[perm]

    def batch(self, b: int) -> list[int]:
        """The sample indices of global batch ``b`` (the batch of step ``b``)."""
        epoch, skip = divmod(b, self.per_epoch)
        return self._perm(epoch)[skip * self.bs:(skip + 1) * self.bs].tolist()

    def __iter__(self):
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            yield from self._perm(epoch)[skip * self.bs:self.per_epoch * self.bs].tolist()
            epoch, skip = epoch + 1, 0


def lr_at(cfg: TrainConfig, step: int, train_s: float) -> float:
    """Learning rate of ``step``: linear warmup, then cosine to ``lr * min_lr_ratio``.

    The cosine runs over ``max_steps`` when it is set (a ``max_minutes`` budget then only
    stops the run), else over the ``max_minutes`` of training time.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.max_steps is not None:      # by steps: the same schedule on every run
        p = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    else:                              # by the wall-clock budget
        p = train_s / (60.0 * cfg.max_minutes)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(p, 0.0), 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def eta_s(cfg: TrainConfig, step: int, train_s: float) -> float | None:
    """Seconds of training left at ``step`` after ``train_s`` s (None: no budget to end)."""
    rate, left = step / max(train_s, 1e-9), []
    if cfg.max_steps is not None:
        left.append(max(cfg.max_steps - step, 0) / max(rate, 1e-9))
    if cfg.max_minutes is not None:
        left.append(max(60.0 * cfg.max_minutes - train_s, 0.0))
    return round(min(left), 1) if left else None
