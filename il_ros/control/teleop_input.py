"""ROS-free teleoperation input: turn keys or joystick axes into joint-position targets.

A human jogs joint targets; the deadman logic decides when the human is "in control" so the
node can publish heartbeats on the intervention channel. Units: joint targets in rad (or m for
prismatic joints), gripper in [0, 1] (0 open, 1 closed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Key -> (arm joint index, direction). Space toggles the gripper.
DEFAULT_KEYMAP: dict[str, tuple[int, int]] = {
    'q': (0, +1), 'a': (0, -1),
    'w': (1, +1), 's': (1, -1),
    'e': (2, +1), 'd': (2, -1),
    'r': (3, +1), 'f': (3, -1),
    't': (4, +1), 'g': (4, -1),
    'y': (5, +1), 'h': (5, -1),
}
GRIPPER_KEY = ' '

KEYBOARD_HELP = """il_ros keyboard teleop
  q/a w/s e/d r/f t/g y/h   jog arm joints 1..6 (+/-)
  space                     toggle gripper
  Ctrl-C                    quit
Each key press counts as holding the deadman for `deadman_timeout_s`."""


@dataclass
class JointJogger:
    """Integrates jog commands into clamped joint-position targets."""

    low: np.ndarray
    """(A-1,) lower limits of the arm joints."""
    high: np.ndarray
    """(A-1,) upper limits of the arm joints."""
    target: np.ndarray | None = None
    """(A-1,) current arm target; None until synced from the measured joint state."""
    gripper: float = 0.0
    """Gripper command in [0, 1]."""
    _last_toggle: bool = field(default=False, repr=False)

    def __post_init__(self):
        self.low = np.asarray(self.low, np.float64)
        self.high = np.asarray(self.high, np.float64)
        if self.low.shape != self.high.shape or np.any(self.low > self.high):
            raise ValueError(f'joint limits must have equal shapes and low <= high, got '
                             f'{self.low} / {self.high}')

    @property
    def ready(self) -> bool:
        """Tell whether a target exists (synced to the arm at least once)."""
        return self.target is not None

    def sync(self, arm_pos: np.ndarray) -> None:
        """Start jogging from the measured arm position (on handover to the human)."""
        arm_pos = np.asarray(arm_pos, np.float64)
        if arm_pos.shape != self.low.shape:
            raise ValueError(f'expected {self.low.size} arm joint positions, got {arm_pos.size}')
        self.target = np.clip(arm_pos, self.low, self.high)

    def jog(self, delta: np.ndarray) -> None:
        """Move the arm target by ``delta`` (A-1,), clamped to the limits."""
        if self.target is None:
            raise RuntimeError('jog before sync: no joint state received yet')
        self.target = np.clip(self.target + np.asarray(delta, np.float64), self.low, self.high)

    def toggle_gripper(self, pressed: bool = True) -> None:
        """Toggle on the rising edge of ``pressed`` (a held button toggles once)."""
        if pressed and not self._last_toggle:
            self.gripper = 0.0 if self.gripper > 0.5 else 1.0
        self._last_toggle = pressed

    def action(self) -> np.ndarray:
        """(A,) arm targets followed by the gripper command."""
        if self.target is None:
            raise RuntimeError('no target yet: waiting for the first joint state')
        return np.concatenate([self.target, [self.gripper]])


def key_delta(key: str, n_arm: int, step: float, keymap=None) -> np.ndarray | None:
    """Arm jog delta for one key press, or None when the key is not a jog key."""
    keymap = DEFAULT_KEYMAP if keymap is None else keymap
    if key not in keymap:
        return None
    joint, sign = keymap[key]
    if joint >= n_arm:
        return None
    d = np.zeros(n_arm)
    d[joint] = sign * step
    return d


def joy_delta(axes, axis_map, scale: float, dt: float, deadzone: float = 0.1) -> np.ndarray:
    """Arm jog delta from joystick axes: ``axis_map[j]`` is the axis driving joint j (-1: none).

    An axis value in [-1, 1] moves its joint at ``value * scale`` per second.
    """
    axes = np.asarray(axes, np.float64)
    d = np.zeros(len(axis_map))
    for j, ax in enumerate(axis_map):
        if 0 <= ax < axes.size and abs(axes[ax]) > deadzone:
            d[j] = axes[ax] * scale * dt
    return d


@dataclass
class Deadman:
    """Tracks whether the human holds control: active until ``timeout_s`` after the last press."""

    timeout_s: float = 0.5
    last_t: float | None = None

    def press(self, t: float) -> None:
        """Record a deadman press at time ``t``."""
        self.last_t = t

    def active(self, t: float) -> bool:
        """Tell whether the deadman is held at ``t`` (pressed within ``timeout_s``)."""
        return self.last_t is not None and t - self.last_t <= self.timeout_s

    def release(self) -> None:
        """The deadman was let go (a button released): not active from now on."""
        self.last_t = None
