"""Control-loop telemetry: counters, latency percentiles, deadline misses, HOLD reasons.

ROS-free. :class:`Telemetry` keeps all-time counters and percentiles (for the shutdown
summary and ``bench/controller.py``) and a window since the last status (for ``~/status``).
Times are seconds of the loop's clocks; reported in ms.
"""
from __future__ import annotations

from collections import Counter, deque
from itertools import islice

import numpy as np

from il_ros import keys

COUNTERS = ('ticks', 'policy_ticks', 'human_ticks', 'hold_ticks', 'published', 'underruns',
            'priming_ticks', 'late_plans', 'missed_deadlines', 'swaps', 'refused', 'resets',
            'worker_errors', 'tick_errors', 'faults')
HISTORY = 100_000
"""Per-tick samples kept for the all-time percentiles (about 80 minutes at 20 Hz)."""


def percentiles(values, qs=(50, 99)) -> dict:
    """``{'p50': .., 'p99': .., 'max': ..}`` of ``values`` in ms (None when empty)."""
    v = np.asarray(values, float)
    if not v.size:
        return {f'p{q}': None for q in qs} | {'max': None}
    return {**{f'p{q}': round(float(np.percentile(v, q)), 3) for q in qs},
            'max': round(float(v.max()), 3)}


def recent_median(values, n: int = 50) -> float | None:
    """Median of the newest ``n`` of ``values`` (a deque, newest last), rounded; None if empty.

    Reads only those ``n``, not the whole history.
    """
    recent = list(islice(reversed(values), n))
    return round(float(np.median(recent)), 2) if recent else None


class Telemetry:
    """What the loop did, tick by tick (see the module doc)."""

    def __init__(self, period_s: float, keep_ticks: bool = False):
        self.period = period_s
        self.counts = {c: 0 for c in COUNTERS}
        self.hold_reasons: Counter = Counter()
        self.latency_ms: deque = deque(maxlen=HISTORY)
        self.jitter_ms: deque = deque(maxlen=HISTORY)
        self.queue_depth: deque = deque(maxlen=HISTORY)
        self.keep_ticks = keep_ticks
        self.ticks: list[tuple] = []     # (tick, jitter_ms, latency_ms, source, reason, queued)
        self._win = {'lat': [], 'gap': [], 'miss': 0, 'holds': Counter()}
        self._last_start: float | None = None

    def record(self, k: int, source: str, reason: str, jitter_s: float, latency_s: float,
               t_start: float, missed: bool, queued: int) -> None:
        """Account one tick (``t_start``: the tick's start on the latency clock)."""
        c = self.counts
        c['ticks'] += 1
        c[{keys.SOURCE_POLICY: 'policy_ticks', keys.SOURCE_INTERVENTION: 'human_ticks'}.get(
            source, 'hold_ticks')] += 1
        if source == keys.SOURCE_HOLD:
            self.hold_reasons[reason] += 1
            self._win['holds'][reason] += 1
        if missed:
            c['missed_deadlines'] += 1
            self._win['miss'] += 1
        lat, jit = latency_s * 1e3, jitter_s * 1e3
        self.latency_ms.append(lat)
        self.jitter_ms.append(jit)
        self.queue_depth.append(queued)
        if self._last_start is not None:
            self._win['gap'].append((t_start - self._last_start) * 1e3)
        self._last_start = t_start
        self._win['lat'].append(lat)
        if self.keep_ticks:
            self.ticks.append((k, round(jit, 3), round(lat, 3), source, reason, queued))

    def window(self) -> dict:
        """The status window since the last call, then start a new one."""
        w = self._win
        lat, gap = np.asarray(w['lat']), np.asarray(w['gap'])
        out = {'ticks': int(lat.size),
               'latency_ms_p50': round(float(np.median(lat)), 2) if lat.size else None,
               'latency_ms_max': round(float(lat.max()), 2) if lat.size else None,
               'gap_ms_max': round(float(gap.max()), 2) if gap.size else None,
               'missed_deadlines': w['miss'], 'hold_reasons': dict(w['holds'])}
        self._win = {'lat': [], 'gap': [], 'miss': 0, 'holds': Counter()}
        return out

    def summary(self, plan_ms) -> dict:
        """All-time figures: tick latency, jitter, plan latency, misses, queue, HOLD reasons."""
        n = self.counts['ticks']
        q = np.asarray(self.queue_depth, float)
        return {
            'ticks': n, 'period_ms': round(self.period * 1e3, 3),
            'tick_latency_ms': percentiles(self.latency_ms),
            'jitter_ms': percentiles(self.jitter_ms),
            'plan_latency_ms': {**percentiles(plan_ms), 'n': len(plan_ms)},
            'missed_deadlines': self.counts['missed_deadlines'],
            'missed_deadline_rate': round(self.counts['missed_deadlines'] / n, 5) if n else None,
            'queue_depth': {'mean': round(float(q.mean()), 2) if q.size else None,
                            'max': int(q.max()) if q.size else None},
            'hold_reasons': dict(self.hold_reasons.most_common()),
        }
