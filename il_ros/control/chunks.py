"""Timed action chunks: receding-horizon execution and temporal ensembling (ROS-free).

A policy that predicts a chunk of actions from the observation at time t_obs gives each
action a tick: action i is meant for ``t_obs + i * period``. The queue hands out the action
of the current tick; actions whose tick has passed while the policy was still thinking are
dropped, never executed late. A newer chunk replaces the older one's future actions
(receding horizon) or, with ``ensemble_k``, is averaged with them, older predictions
weighted ``exp(-k * age)`` as in ACT's temporal ensembling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ActionQueue:
    """Actions keyed by control tick."""

    period_s: float
    ensemble_k: float | None = None
    dropped: int = 0
    underruns: int = 0
    _by_tick: dict = field(default_factory=dict, repr=False)   # tick -> [(chunk_seq, action)]
    _seq: int = 0

    def _tick(self, t: float) -> int:
        return int(round(t / self.period_s))

    def add_chunk(self, actions: np.ndarray, t_first: float) -> None:
        """Add (N, A) actions; the first is meant for the tick at ``t_first``."""
        actions = np.asarray(actions, float)
        if actions.ndim != 2:
            raise ValueError(f'a chunk is (N, A), got shape {actions.shape}')
        k0 = self._tick(t_first)
        self._seq += 1
        for i, a in enumerate(actions):
            k = k0 + i
            if self.ensemble_k is None:
                self._by_tick[k] = [(self._seq, a)]
            else:
                self._by_tick.setdefault(k, []).append((self._seq, a))

    def pop(self, t: float) -> np.ndarray | None:
        """The action for the tick at ``t`` (None: nothing planned, an underrun)."""
        k = self._tick(t)
        for old in [j for j in self._by_tick if j < k]:
            del self._by_tick[old]
            self.dropped += 1
        entries = self._by_tick.pop(k, None)
        if not entries:
            self.underruns += 1
            return None
        if self.ensemble_k is None or len(entries) == 1:
            return entries[-1][1].copy()
        seqs = np.array([s for s, _ in entries], float)
        w = np.exp(-self.ensemble_k * (seqs - seqs.min()))  # oldest prediction: weight 1
        acts = np.stack([a for _, a in entries])
        return (w[:, None] * acts).sum(0) / w.sum()

    def remaining(self, t: float) -> int:
        """Planned actions from the tick at ``t`` on."""
        k = self._tick(t)
        return sum(1 for j in self._by_tick if j >= k)

    def clear(self) -> None:
        """Forget every planned action (handover, reset)."""
        self._by_tick.clear()
