"""The safety filter every command passes before it reaches the robot (ROS-free).

Order of checks, per control tick:

1. disabled                 -> HOLD (nothing is sent at all: see ``SafetyFilter.sendable``)
2. stale observations       -> HOLD (watchdog: newest observation older than N periods)
3. NaN / Inf or a wrong size  -> HOLD
4. clamp to joint limits    (status CLAMPED)
5. limit the step per tick  (status RATE_LIMITED), relative to the last command sent

A step limit is a positive number, or ``inf`` for "no step limit" (the clamp still applies);
zero, negative and NaN limits are refused (:func:`check_step_limit`), so a typo can never
turn the limit off. ``inf`` is accepted only when the caller explicitly allows it.

HOLD repeats the last command that was sent (or, before any, the measured position), so a
fault freezes the robot where it is instead of jumping anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import math

import numpy as np


class SettingError(ValueError):
    """A safety setting the filter cannot run with.

    The message names the setting and its value (``<name>=<value>: must be ...``); a node
    prefixes ``parameter`` and exits (il_ros.ros.node_utils.ParameterError).
    """


class StepLimitError(SettingError):
    """A step limit that would not limit: zero, negative, NaN, or ``inf`` not allowed."""


def check_step_limit(name: str, value, allow_unlimited: bool = False) -> float:
    """Return ``value`` as a float if it is a valid step limit, else raise StepLimitError.

    Valid: a finite number > 0; ``inf`` (no step limit) only with ``allow_unlimited``.
    """
    if isinstance(value, (bool, str)) or value is None:
        raise StepLimitError(f'{name}={value!r}: must be a number > 0')
    v = float(value)
    if math.isnan(v) or v <= 0:
        raise StepLimitError(f'{name}={value!r}: must be > 0 (a step limit of 0, a negative '
                             'or NaN would not limit anything)')
    if math.isinf(v) and not allow_unlimited:
        raise StepLimitError(f'{name}={value!r}: no step limit (inf) needs '
                             'allow_unlimited_step: true')
    return v


def check_step_limit_list(name: str, values, allow_unlimited: bool = False) -> list[float]:
    """:func:`check_step_limit` for each of a list; the message shows the whole list."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(check_step_limit(name, v, allow_unlimited))
        except StepLimitError as e:
            why = str(e).split(': ', 1)[1]
            raise StepLimitError(f'{name}={list(values)!r}: value {i} ({v!r}): {why}') from None
    return out


DEFAULT_STEP_JOINT = 0.1
"""Default step limit per tick of a command value that is a measured joint (rad or m)."""
DEFAULT_STEP_OTHER = 1.0
"""Default step limit per tick of a command value no joint measures (a gripper in [0, 1])."""


def per_value(name: str, values, action_names: list[str], defaults: list[float],
              allow_unlimited: bool = False) -> list[float]:
    """Expand a per-command-value setting (raises StepLimitError naming a bad value).

    ``values``: empty (``defaults``), one value (for every command value) or one per command
    value. Every value is a limit: checked with :func:`check_step_limit`.
    """
    values = check_step_limit_list(name, list(values), allow_unlimited)
    if not values:
        return [float(v) for v in defaults]
    if len(values) == 1:
        return values * len(action_names)
    if len(values) != len(action_names):
        raise StepLimitError(f'{name}={values!r}: must have one value, or one per command value '
                             f'({len(action_names)}: {action_names})')
    return values


def default_steps(action_names: list[str], joint_names: list[str]) -> list[float]:
    """:data:`DEFAULT_STEP_JOINT` for measured joints, :data:`DEFAULT_STEP_OTHER` for others."""
    return [DEFAULT_STEP_JOINT if n in joint_names else DEFAULT_STEP_OTHER
            for n in action_names]


def step_limits(action_names: list[str], joint_names: list[str], max_step=(),
                allow_unlimited: bool = False, defaults=None) -> list[float]:
    """Return the step limit of each command value (raises StepLimitError naming a bad one).

    ``max_step``: empty (``defaults``: the robot description's step limits, else
    :func:`default_steps`), one value for every command value, or one per command value.
    """
    if defaults is None:
        defaults = default_steps(list(action_names), list(joint_names))
    return per_value('max_step', max_step, list(action_names), defaults, allow_unlimited)


def check_step_settings(max_step=(), allow_unlimited: bool = False,
                        action_names=()) -> bool:
    """Check the ``max_step`` setting (StepLimitError names a bad value).

    With ``action_names``, a list of several values must have one per name. Returns True
    when a value is ``inf`` (no step limit), for a warning.
    """
    values = check_step_limit_list('max_step', list(max_step), allow_unlimited)
    if action_names and len(values) > 1:
        step_limits(list(action_names), [], values, allow_unlimited)
    return any(math.isinf(v) for v in values)


def check_limit_settings(lower, upper, action_names=()) -> None:
    """Refuse joint limits the filter cannot use (SettingError naming the setting).

    Both lists finite and of one length, ``lower <= upper`` value by value, and, with
    ``action_names``, one value per command value. Empty lists pass (limits come later).
    """
    lower, upper = list(lower), list(upper)
    for name, v in (('joint_lower', lower), ('joint_upper', upper)):
        if not all(math.isfinite(x) for x in v):
            raise SettingError(f'{name}={v!r}: must be finite numbers')
    if len(lower) != len(upper):
        raise SettingError(f'joint_upper={upper!r}: must have one value per joint_lower '
                           f'value ({len(lower)}: {lower!r})')
    bad = [i for i, (lo, hi) in enumerate(zip(lower, upper)) if lo > hi]
    if bad:
        i = bad[0]
        raise SettingError(f'joint_lower={lower!r}: must not exceed joint_upper={upper!r} '
                           f'(value {i}: {lower[i]} > {upper[i]})')
    names = list(action_names)
    if names and lower and len(lower) != len(names):
        raise SettingError(f'joint_lower={lower!r}: must have one value per action_names '
                           f'value ({len(names)}: {names})')


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
    all. Each must be > 0; ``inf`` means no step limit for that value (needs
    ``allow_unlimited``)."""
    watchdog_periods: float = 3.0
    """Observations older than this many control periods -> HOLD."""
    allow_unlimited: bool = False
    """Accept ``inf`` step limits (no step limit); never zero, negative or NaN."""

    def __post_init__(self):
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise ValueError(f'lower/upper must be equal-length lists, got {lo.shape} and '
                             f'{hi.shape}')
        if np.any(lo > hi) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f'need finite lower <= upper, got {self.lower} / {self.upper}')
        step = np.broadcast_to(np.asarray(self.max_step, float), lo.shape)
        for v in step:
            check_step_limit('max_step', v, self.allow_unlimited)
        self.max_step = step.tolist()
        if not self.watchdog_periods > 0:   # also NaN
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

    def set_step(self, max_step: list[float]) -> None:
        """Change the step limits (checked as in :class:`SafetyConfig`)."""
        step = np.broadcast_to(np.asarray(max_step, float), self._lo.shape)
        for v in step:
            check_step_limit('max_step', v, self.cfg.allow_unlimited)
        self.cfg.max_step = step.tolist()
        self._step = step.copy()

    @property
    def unlimited(self) -> list[int]:
        """Indices of the command values without a step limit (``inf``)."""
        return [i for i, v in enumerate(self._step) if math.isinf(v)]

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
                on = np.isfinite(self._step) & np.isfinite(ref)
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
