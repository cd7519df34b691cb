"""The safety filter every command passes before it reaches the robot (ROS-free).

Order of checks, per control tick:

1. disabled                 -> HOLD (nothing is sent at all: see ``SafetyFilter.sendable``)
2. stale observations       -> HOLD (watchdog: newest observation older than N periods)
3. NaN / Inf or a wrong size  -> HOLD
4. clamp to joint limits    (status CLAMPED)
5. limit the step per tick  (status RATE_LIMITED), relative to the last command sent

HOLD repeats the last command that was sent (or, before any, the measured position), so a
fault freezes the robot where it is instead of jumping anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Status(str, Enum):
    """What the filter did to one command."""

    OK = 'ok'
    CLAMPED = 'clamped'
    RATE_LIMITED = 'rate_limited'
    HOLD_INVALID = 'hold_invalid'
    HOLD_STALE = 'hold_stale'
    HOLD_DISABLED = 'hold_disabled'

    @property
    def is_hold(self) -> bool:
        """Tell whether this status outputs HOLD."""
        return self.value.startswith('hold')


@dataclass
class SafetyConfig:
    """Limits of one robot's command vector (A values)."""

    lower: list[float]
    """Lower limit of each command value (joint limits; gripper 0)."""
    upper: list[float]
    """Upper limit of each command value."""
    max_step: list[float] | float = 0.1
    """Largest change of each value per tick (rad per tick for joints); a scalar applies to
    all. <= 0 disables the step limit for that value."""
    watchdog_periods: float = 3.0
    """Observations older than this many control periods -> HOLD."""

    def __post_init__(self):
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise ValueError(f'lower/upper must be equal-length lists, got {lo.shape} and '
                             f'{hi.shape}')
        if np.any(lo > hi) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f'need finite lower <= upper, got {self.lower} / {self.upper}')
        step = np.broadcast_to(np.asarray(self.max_step, float), lo.shape)
        self.max_step = step.tolist()
        if self.watchdog_periods <= 0:
            raise ValueError(f'watchdog_periods must be > 0, got {self.watchdog_periods}')

    @property
    def dim(self) -> int:
        """Return the number of command values."""
        return len(self.lower)


@dataclass
class SafetyFilter:
    """Stateful filter: remembers the last command sent, for HOLD and the step limit."""

    cfg: SafetyConfig
    enabled: bool = False
    last_sent: np.ndarray | None = field(default=None, repr=False)
    counts: dict = field(default_factory=lambda: {s.value: 0 for s in Status})

    def __post_init__(self):
        self._lo = np.asarray(self.cfg.lower, float)
        self._hi = np.asarray(self.cfg.upper, float)
        self._step = np.asarray(self.cfg.max_step, float)

    def reset(self, measured: np.ndarray | None = None) -> None:
        """Forget the last command (e.g. after the robot was moved by hand).

        HOLD and the step limit then start from ``measured``.
        """
        self.last_sent = None if measured is None else np.clip(
            np.asarray(measured, float), self._lo, self._hi)

    def hold_command(self, measured: np.ndarray | None) -> np.ndarray | None:
        """What HOLD sends: the last command sent, else the measured position (clamped)."""
        if self.last_sent is not None:
            return self.last_sent.copy()
        if measured is not None and np.all(np.isfinite(measured)):
            return np.clip(np.asarray(measured, float), self._lo, self._hi)
        return None

    def __call__(self, command, obs_age_s: float, period_s: float,
                 measured: np.ndarray | None = None) -> tuple[np.ndarray | None, Status]:
        """Filter one command. Returns (command to send or None, status).

        ``obs_age_s``: age of the newest observation the command was computed from (or, for a
        human command, of the robot's state). ``measured``: current positions, used for HOLD
        before any command was sent (only when every value is finite) and as the step
        limit's reference for each of its finite values.
        """
        status = self._check(command, obs_age_s, period_s)
        if status.is_hold:
            out = self.hold_command(measured)
        else:
            cmd = np.asarray(command, float)
            out = np.clip(cmd, self._lo, self._hi)
            if np.any(out != cmd):
                status = Status.CLAMPED
            ref = self.last_sent if self.last_sent is not None else (
                None if measured is None else np.asarray(measured, float))
            if ref is not None and ref.shape == out.shape:
                # Per value: a value without a reference (e.g. a gripper command that no
                # joint state measures, before the first command) is not step-limited.
                on = (self._step > 0) & np.isfinite(ref)
                safe_ref = np.where(on, ref, out)
                limited = np.where(on, np.clip(out, safe_ref - self._step,
                                               safe_ref + self._step), out)
                if np.any(limited != out):
                    status = Status.RATE_LIMITED
                out = limited
        self.counts[status.value] += 1
        if out is not None and self.enabled:
            self.last_sent = out.copy()
        return out, status

    def _check(self, command, obs_age_s: float, period_s: float) -> Status:
        if not self.enabled:
            return Status.HOLD_DISABLED
        if not obs_age_s <= self.cfg.watchdog_periods * period_s:  # also catches NaN ages
            return Status.HOLD_STALE
        cmd = np.asarray(command, float) if command is not None else None
        if cmd is None or cmd.shape != (self.cfg.dim,) or not np.all(np.isfinite(cmd)):
            return Status.HOLD_INVALID
        return Status.OK

    @property
    def sendable(self) -> bool:
        """Whether anything may be published at all (never while disabled)."""
        return self.enabled
