"""Observation streams: is the newest sample new, and does a joint state name a joint twice.

ROS-free; the controller feeds it receive times and header stamps.

Receive time alone misses a frozen source that keeps publishing: a camera driver stuck
re-sending its last frame, or a bridge repeating a cached joint state. When a stream's
messages carry a header stamp (non-zero), a message counts as a new sample only when its
stamp is later than the previous message's; the watchdog then measures the age of the
newest *new* sample, so a frozen stream HOLDs after the watchdog period even while its
messages keep arriving. Streams with zero stamps are judged by receive time alone.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class StreamClock:
    """When one stream last delivered a new sample (receive times in seconds, one clock)."""

    fresh_t: float | None = None
    """Receive time of the newest message that was a new sample."""
    recv_t: float | None = None
    """Receive time of the newest message of any kind."""
    stamp_ns: int = 0
    """Header stamp of the newest message (0: the stream carries no stamps)."""
    repeats: int = 0
    """Messages whose non-zero stamp did not advance (all time)."""

    def update(self, t_recv: float, stamp_ns: int) -> bool:
        """Record a message received at ``t_recv``; True when it is a new sample."""
        new = stamp_ns == 0 or self.stamp_ns == 0 or stamp_ns > self.stamp_ns
        self.recv_t = t_recv
        self.stamp_ns = stamp_ns
        if new:
            self.fresh_t = t_recv
        else:
            self.repeats += 1
        return new

    def age(self, now: float) -> float:
        """Seconds since the newest new sample (inf before the first)."""
        return float('inf') if self.fresh_t is None else now - self.fresh_t

    def frozen(self, now: float, limit_s: float) -> bool:
        """Tell whether messages arrive within ``limit_s`` but their stamp stopped advancing."""
        return (self.recv_t is not None and now - self.recv_t <= limit_s
                and not self.age(now) <= limit_s)


def duplicate_names(names) -> list[str]:
    """Names that occur more than once (a JointState that names a joint twice is ambiguous)."""
    return sorted(n for n, c in Counter(names).items() if c > 1)
