"""Chunk-level safety: a planned chunk of actions is checked as a whole before it is queued.

ROS-free. The per-tick :class:`~il_ros.control.safety.SafetyFilter` still filters every
command sent; this guard looks at the whole plan first, where a single bad action shows as
a discontinuity. A chunk of N actions (N, A) is checked against, in order:

1. **shape and finiteness**: not (N, A), or any NaN/Inf -> rejected whatever the policy
   (a NaN is a fault: the loop latches, see :mod:`il_ros.control.loop`);
2. **limits**: an action beyond ``[lower, upper]`` by more than :data:`LIMIT_TOLERANCE` of
   the range (a slight overshoot is clamped by the per-tick filter, not flagged);
3. **jump**: the first action farther than ``max_jump`` from the reference (the last command
   sent, else the measured position; values with neither are not checked);
4. **velocity**: consecutive actions whose difference over one period exceeds
   ``max_velocity`` (units per second); this is the jump between consecutive actions.

What to do with a chunk that breaks 2-4 is the ``policy``:

- ``clamp``: clip to the limits, then slew: the first action moves at most ``max_jump``
  from the reference and each next one at most ``max_velocity * period`` from the previous;
- ``truncate``: keep the actions before the first one that breaks a rule (none left ->
  rejected);
- ``reject``: drop the whole chunk (the loop HOLDs when nothing else is queued, and counts
  it towards a latched fault).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CHUNK_POLICIES = ('clamp', 'truncate', 'reject')
"""What to do with a chunk that breaks a rule; see the module doc."""
LIMIT_TOLERANCE = 0.02
"""An action may pass a limit by this fraction of the value's range before the chunk is
flagged (the per-tick clamp still applies)."""
RULES = ('shape', 'nonfinite', 'limits', 'jump', 'velocity')


@dataclass
class ChunkVerdict:
    """What the guard made of one chunk."""

    actions: np.ndarray | None
    """The actions to queue (possibly clamped or truncated); None: rejected."""
    broken: list[str] = field(default_factory=list)
    """The rules the chunk broke (names from :data:`RULES`), in check order."""
    detail: str = ''
    """One line for a log: which value, which action, by how much."""

    @property
    def nonfinite(self) -> bool:
        """Tell whether the chunk held NaN or Inf (a fault)."""
        return 'nonfinite' in self.broken


class ChunkGuard:
    """Checks chunks of one robot's command vector (see the module doc)."""

    def __init__(self, lower, upper, max_jump, max_velocity, period_s: float,
                 policy: str = 'clamp', names: list[str] | None = None):
        if policy not in CHUNK_POLICIES:
            raise ValueError(f'chunk policy {policy!r}: must be one of {list(CHUNK_POLICIES)}')
        self.lo = np.asarray(lower, float)
        self.hi = np.asarray(upper, float)
        self.jump = np.broadcast_to(np.asarray(max_jump, float), self.lo.shape).copy()
        self.velocity = np.broadcast_to(np.asarray(max_velocity, float), self.lo.shape).copy()
        if np.any(~(self.jump > 0)) or np.any(~(self.velocity > 0)):
            raise ValueError(f'max_jump {self.jump.tolist()} and max_velocity '
                             f'{self.velocity.tolist()} must be > 0')
        self.period = float(period_s)
        self.policy = policy
        self.names = list(names) if names else [f'value {i}' for i in range(self.lo.size)]
        self.tol = LIMIT_TOLERANCE * (self.hi - self.lo)
        self.counts = {r: 0 for r in RULES}
        self.counts.update(checked=0, clamped=0, truncated=0, rejected=0)

    def check(self, chunk, reference: np.ndarray | None) -> ChunkVerdict:
        """Check one chunk (N, A); ``reference``: last command sent or measured (NaN: none)."""
        self.counts['checked'] += 1
        a = np.asarray(chunk, float)
        if a.ndim != 2 or a.shape[1] != self.lo.size or a.shape[0] == 0:
            return self._reject(['shape'], f'chunk of shape {a.shape}, expected (N, '
                                f'{self.lo.size})')
        if not np.all(np.isfinite(a)):
            i, j = np.argwhere(~np.isfinite(a))[0]
            return self._reject(['nonfinite'], f'action {i} {self.names[j]} = {a[i, j]}')
        bad = self._violations(a, reference)       # (rule, first action index, detail)
        if not bad:
            return ChunkVerdict(a)
        broken = [r for r in RULES if any(b[0] == r for b in bad)]
        detail = '; '.join(b[2] for b in bad)
        for r in broken:
            self.counts[r] += 1
        if self.policy == 'reject':
            return self._reject(broken, detail, counted=True)
        if self.policy == 'truncate':
            first = min(b[1] for b in bad)
            if first == 0:
                return self._reject(broken, detail, counted=True)
            self.counts['truncated'] += 1
            return ChunkVerdict(a[:first], broken, f'{detail}: kept {first} of {len(a)}')
        self.counts['clamped'] += 1
        return ChunkVerdict(self._clamp(a, reference), broken, f'{detail}: clamped')

    def _violations(self, a: np.ndarray, ref) -> list[tuple[str, int, str]]:
        out = []
        over = (a < self.lo - self.tol) | (a > self.hi + self.tol)
        if over.any():
            i, j = np.argwhere(over)[0]
            out.append(('limits', int(i), f'action {i} {self.names[j]} = {a[i, j]:.4g} outside '
                        f'[{self.lo[j]:.4g}, {self.hi[j]:.4g}]'))
        if ref is not None:
            r = np.asarray(ref, float)
            d = np.where(np.isfinite(r), np.abs(a[0] - np.where(np.isfinite(r), r, 0.0)), 0.0)
            if np.any(d > self.jump):
                j = int(np.argmax(d - self.jump))
                out.append(('jump', 0, f'first action {self.names[j]} {d[j]:.4g} from the '
                            f'current {r[j]:.4g} (max_jump {self.jump[j]:.4g})'))
        if len(a) > 1:
            v = np.abs(np.diff(a, axis=0)) / self.period
            fast = v > self.velocity
            if fast.any():
                i, j = np.argwhere(fast)[0]
                out.append(('velocity', int(i) + 1, f'actions {i}->{i + 1} {self.names[j]} at '
                            f'{v[i, j]:.4g}/s (max_velocity {self.velocity[j]:.4g})'))
        return out

    def _clamp(self, a: np.ndarray, ref) -> np.ndarray:
        out = np.clip(a, self.lo, self.hi)
        if ref is not None:
            r = np.asarray(ref, float)
            ok = np.isfinite(r)
            safe = np.where(ok, r, out[0])
            out[0] = np.where(ok, np.clip(out[0], safe - self.jump, safe + self.jump), out[0])
        step = self.velocity * self.period
        for i in range(1, len(out)):
            out[i] = np.clip(out[i], out[i - 1] - step, out[i - 1] + step)
        return out

    def _reject(self, broken, detail, counted=False) -> ChunkVerdict:
        if not counted:
            for r in broken:
                self.counts[r] += 1
        self.counts['rejected'] += 1
        return ChunkVerdict(None, list(broken), detail)
