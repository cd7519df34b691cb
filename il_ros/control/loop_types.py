"""The control loop's settings and the values one tick takes and gives (ROS-free).

See :mod:`il_ros.control.loop`; docs/controller.md lists every setting as a node parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
import math

import numpy as np

from il_ros.control.chunk_guard import CHUNK_POLICIES, ChunkGuard
from il_ros.control.safety import (check_limit_settings, check_step_limit_list, per_value,
                                   SettingError, Status, step_limits, StepLimitError)
from il_ros.control.slot import Refused

JUMP_STEPS = 5.0
"""Default ``chunk_max_jump``: this many step limits; ``chunk_max_velocity``: this many step
limits per period."""
FAULTS = ('nonfinite_chunk', 'invalid_chunks', 'watchdog')


@dataclass
class LoopConfig:
    """The loop's settings; the controller node's parameters of the same names."""

    rate_hz: float = 20.0
    enabled: bool = False
    watchdog_periods: float = 3.0
    fault_periods: float = 20.0
    takeover_timeout_s: float = 0.5
    human_command_timeout_s: float = 0.25
    ensemble_k: float = 0.0
    plan_ahead: int = 0
    max_wait_fraction: float = 0.6
    max_step: list = field(default_factory=list)
    allow_unlimited_step: bool = False
    chunk_policy: str = 'clamp'
    chunk_max_jump: list = field(default_factory=list)
    chunk_max_velocity: list = field(default_factory=list)
    max_invalid_chunks: int = 3
    max_backlog: int = 10
    keep_ticks: bool = False

    def __post_init__(self):
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise SettingError(f'rate_hz={self.rate_hz!r}: must be a finite number > 0')
        if not 1.0 <= self.watchdog_periods <= self.fault_periods:
            raise SettingError(f'fault_periods={self.fault_periods!r}: must be >= '
                               f'watchdog_periods ({self.watchdog_periods!r}) >= 1')
        if self.chunk_policy not in CHUNK_POLICIES:
            raise SettingError(f'chunk_policy={self.chunk_policy!r}: must be one of '
                               f'{list(CHUNK_POLICIES)}')
        if self.max_invalid_chunks < 1:
            raise SettingError(f'max_invalid_chunks={self.max_invalid_chunks!r}: must be >= 1')
        for name in ('max_step', 'chunk_max_jump', 'chunk_max_velocity'):
            check_step_limit_list(name, getattr(self, name),
                                  self.allow_unlimited_step or name != 'max_step')

    @classmethod
    def names(cls) -> list[str]:
        """The setting names."""
        return [f.name for f in fields(cls)]


@dataclass
class Observation:
    """What the robot's streams give one tick."""

    frame: dict | None = None
    """The policy's input (``image/<cam>``, proprio keys); None when invalid."""
    age_s: float = math.inf
    """Age of the stalest stream (inf: a stream never arrived, or the frame is unusable)."""
    invalid: str | None = None
    """Why ``frame`` is None (``no_image``, ``bad_joint_states``, ``frozen``...)."""
    measured: np.ndarray | None = None
    """Measured positions in command order (NaN where no joint measures a value)."""
    measured_age_s: float = math.inf
    """Age of the joint state behind ``measured``."""


@dataclass
class HumanInput:
    """The human's part of one tick: a deadman heartbeat and a command, both at ``now``."""

    held: bool | None = None
    """True: a heartbeat; False: the explicit hand-back; None: no message this tick."""
    command: np.ndarray | None = None


@dataclass
class TickResult:
    """What one tick decided."""

    tick: int
    command: np.ndarray | None
    """Publish this (None: nothing at all, e.g. while disabled)."""
    source: str
    """``policy``, ``intervention`` or ``hold`` (keys.SOURCE_*)."""
    reason: str
    safety: Status


class ActPolicy:
    """Adapts a policy with only ``reset()`` and ``act(obs)`` to observe/plan (Ta = 1)."""

    def __init__(self, policy):
        self.inner, self._obs = policy, None

    def reset(self, seed: int | None = None) -> None:
        """Reset the wrapped policy (with ``seed`` when it takes one)."""
        try:
            self.inner.reset(seed=seed)
        except TypeError:
            self.inner.reset()

    def observe(self, obs: dict) -> None:
        """Keep the newest frame."""
        self._obs = obs

    def plan(self) -> np.ndarray:
        """One action for the newest frame, as a (1, A) chunk."""
        return np.asarray(self.inner.act(self._obs), np.float64).reshape(1, -1)


def command_limits(cfg: LoopConfig, action_names, joint_names, limits,
                   max_step=None) -> tuple:
    """(lower, upper, step) of each command value, or Refused naming what is missing.

    ``limits(action_names)``: (lower, upper) or (lower, upper, default step limits) - the
    robot description's (il_ros.control.slot.robot_limits) - or None when nobody knows
    them (it may raise Refused itself). ``max_step``: instead of ``cfg.max_step``.
    """
    action_names = list(action_names)
    if not action_names:
        raise Refused('no command value names: the checkpoint and the robot name none')
    found = limits(action_names)
    if found is None:
        raise Refused(f'no joint limits for the command values {action_names}: describe '
                      'the robot in a robot YAML (docs/robots.md)')
    lower, upper = list(found[0]), list(found[1])
    try:
        check_limit_settings(lower, upper, action_names)
        step = step_limits(action_names, list(joint_names),
                           cfg.max_step if max_step is None else max_step,
                           cfg.allow_unlimited_step, found[2] if len(found) > 2 else None)
        for name in ('chunk_max_jump', 'chunk_max_velocity'):
            per_value(name, getattr(cfg, name), action_names, step, True)
    except (SettingError, StepLimitError) as e:
        raise Refused(f'parameter {e}') from None
    return lower, upper, step


def make_guard(cfg: LoopConfig, safety, names: list[str], period_s: float) -> ChunkGuard:
    """The chunk guard of a safety filter's command values.

    Defaults: ``chunk_max_jump`` :data:`JUMP_STEPS` step limits, ``chunk_max_velocity`` as
    many step limits per period (a value without a step limit: its range instead).
    """
    s = np.asarray(safety.cfg.max_step, float)
    lo, hi = np.asarray(safety.cfg.lower), np.asarray(safety.cfg.upper)
    finite = np.where(np.isfinite(s), s, np.maximum(hi - lo, 1e-9))
    jump = per_value('chunk_max_jump', cfg.chunk_max_jump, names,
                     (JUMP_STEPS * finite).tolist(), True)
    vel = per_value('chunk_max_velocity', cfg.chunk_max_velocity, names,
                    (JUMP_STEPS * finite / period_s).tolist(), True)
    return ChunkGuard(lo, hi, jump, vel, period_s, cfg.chunk_policy, names)
