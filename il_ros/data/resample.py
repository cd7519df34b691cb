"""Causal resampling of message streams onto the control-rate tick grid.

Every observation stream contributes, at tick t, its newest sample at or before t: nothing
from the future. The action stream may look ``lookahead`` periods past t, to take the command
that answers the observation of tick t (see ConvertConfig.action_lookahead).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    """The time base chosen for one stream."""

    times: np.ndarray
    """(N,) seconds, one per message, in the bag's order."""
    source: str
    """'header' (message header stamps) or 'receive' (the bag's log time)."""
    note: str = ''
    """Why receive time was used, when it was."""


def choose_timing(stamps: np.ndarray | None, receive: np.ndarray, tolerance_s: float) -> Timing:
    """Header stamps when present and plausible, else receive times.

    Stamps are implausible when any is zero or their median distance from the receive times
    exceeds ``tolerance_s`` (another clock, or a driver that stamps nothing useful).
    """
    receive = np.asarray(receive, np.float64)
    if stamps is None:
        return Timing(receive, 'receive', 'type has no header')
    stamps = np.asarray(stamps, np.float64)
    if np.any(stamps <= 0):
        return Timing(receive, 'receive', 'zero header stamps')
    offset = float(np.median(receive - stamps))
    if abs(offset) > tolerance_s:
        return Timing(receive, 'receive', f'header stamps {offset:+.3f}s from receive time')
    return Timing(stamps, 'header')


def first_backwards(times: np.ndarray) -> int | None:
    """Index of the first sample whose time is before its predecessor's, or None."""
    bad = np.flatnonzero(np.diff(times) < 0)
    return int(bad[0]) + 1 if bad.size else None


def nominal_period(times: np.ndarray) -> float:
    """Median interval between samples (inf for fewer than 2)."""
    if times.size < 2:
        return float('inf')
    return float(np.median(np.diff(times)))


def tick_grid(starts: list[float], ends: list[float], rate_hz: float,
              anchor: np.ndarray | None = None) -> np.ndarray:
    """Ticks from the latest stream start to the earliest stream end, at ``rate_hz``.

    Starting at the latest start means every stream has a sample at the first tick. With
    ``anchor`` (a camera's sample times) the grid starts at the first anchor sample from
    then on, so a camera running at the control rate has a frame exactly at every tick.
    """
    t0, t1 = max(starts), min(ends)
    if anchor is not None:
        later = anchor[anchor >= t0 - 1e-9]
        if later.size:
            t0 = float(later[0])
    if t1 < t0:
        return np.zeros(0)
    n = int(np.floor((t1 - t0) * rate_hz + 1e-9)) + 1
    return t0 + np.arange(n) / rate_hz


def latest_at_or_before(times: np.ndarray, ticks: np.ndarray,
                        lookahead_s: float = 0.0) -> np.ndarray:
    """For each tick, the index of the newest sample with time <= tick + lookahead (-1: none).

    ``times`` must be non-decreasing.
    """
    return np.searchsorted(times, ticks + lookahead_s + 1e-9, side='right') - 1


@dataclass
class Staleness:
    """How old each tick's sample is, relative to the stream's period."""

    worst_periods: float
    """Largest sample age at a tick, in stream periods (max of the stream's own period and
    the control period)."""
    worst_tick_time: float
    """Tick time where that happened."""
    stale_ticks: int
    """Ticks whose sample is older than the warning threshold."""
    age: np.ndarray
    """(T,) the age of each tick's sample, in those periods; inf before the first sample."""


def staleness(times: np.ndarray, ticks: np.ndarray, idx: np.ndarray, control_period: float,
              warn_periods: float) -> Staleness:
    """Age of the sample used at each tick, in periods."""
    if ticks.size == 0:
        return Staleness(0.0, float('nan'), 0, np.zeros(0))
    period = max(nominal_period(times), control_period)
    age = (ticks - times[np.maximum(idx, 0)]) / period  # (T,)
    age[idx < 0] = np.inf
    worst = int(np.argmax(age))
    return Staleness(float(age[worst]), float(ticks[worst]), int(np.sum(age > warn_periods)),
                     age)
