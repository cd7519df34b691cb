"""ROS-free teleoperation input: turn keys or joystick axes into joint-position targets.

Two spaces:

- joint (:class:`JointJogger`): each key or stick axis moves one arm joint target;
- cartesian (:class:`CartesianJogger`): keys and sticks move the end effector along the
  world axes (and turn it about the vertical); a damped-least-squares IK (the one the
  scripted experts use, passed in) turns the hand target into joint targets. The hand keeps
  the orientation it had when control was taken (pointing down, in the sim tasks).

Either way the output is the robot's action vector: the arm targets with the gripper command
at the gripper action's index, or the arm targets alone for a robot without a gripper. The
deadman logic decides when the human is "in control" so the node can publish heartbeats on
the intervention channel. Units: joint targets in rad (or m for prismatic joints), hand
positions in m, gripper in [0, 1] (0 open, 1 closed).
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
DOWN_COS = 0.95
"""Cartesian teleop: a hand whose axis is within ~18 deg of straight down is held down."""

# Key -> (world axis 0 x, 1 y, 2 z, or 3 yaw about z; direction), cartesian space.
CARTESIAN_KEYMAP: dict[str, tuple[int, int]] = {
    'w': (0, +1), 's': (0, -1),     # forward / back (+x: away from the base)
    'a': (1, +1), 'd': (1, -1),     # left / right
    'r': (2, +1), 'f': (2, -1),     # up / down
    'q': (3, +1), 'e': (3, -1),     # turn the hand left / right about the vertical
}

KEYBOARD_HELP = """il_ros keyboard teleop (joint space)
  q/a w/s e/d r/f t/g y/h   jog arm joints 1..6 (+/-)
  space                     toggle gripper (robots with a gripper)
  Ctrl-C                    quit
Each key press counts as holding the deadman for `deadman_timeout_s`."""

CARTESIAN_HELP = """il_ros keyboard teleop (cartesian: the hand, in the world frame)
  w/s   forward / back (x)      a/d   left / right (y)      r/f   up / down (z)
  q/e   turn the hand left / right about the vertical
  space toggle gripper (robots with a gripper)              Ctrl-C quit
Each key press counts as holding the deadman for `deadman_timeout_s`."""


def with_gripper(arm: np.ndarray, gripper: float, gripper_index: int | None) -> np.ndarray:
    """The action vector: ``arm`` targets with ``gripper`` inserted at ``gripper_index``.

    ``gripper_index`` -1 appends it (the sim arms' layout); None: no gripper.
    """
    arm = np.asarray(arm, np.float64)
    if gripper_index is None:
        return arm.copy()
    i = arm.size if gripper_index == -1 else int(gripper_index)
    return np.insert(arm, i, gripper)


class _GripperToggle:
    """Gripper state toggled on the rising edge of a button."""

    gripper: float
    _last_toggle: bool

    def toggle_gripper(self, pressed: bool = True) -> None:
        """Toggle on the rising edge of ``pressed`` (a held button toggles once)."""
        if pressed and not self._last_toggle:
            self.gripper = 0.0 if self.gripper > 0.5 else 1.0
        self._last_toggle = pressed

    def _sync_gripper(self, gripper: float | None) -> None:
        """Take the gripper command of the robot's current command (None: keep ours)."""
        if gripper is not None:
            self.gripper = float(gripper)


@dataclass
class JointJogger(_GripperToggle):
    """Integrates jog commands into clamped joint-position targets."""

    low: np.ndarray
    """(A-1,) lower limits of the arm joints."""
    high: np.ndarray
    """(A-1,) upper limits of the arm joints."""
    target: np.ndarray | None = None
    """(A-1,) current arm target; None until synced (the robot's command or joint state)."""
    gripper: float = 0.0
    """Gripper command in [0, 1]."""
    gripper_index: int | None = -1
    """Index of the gripper in the action vector; -1: after the arm; None: no gripper."""
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

    def sync(self, arm_pos: np.ndarray, gripper: float | None = None) -> None:
        """Start jogging from ``arm_pos`` (on handover to the human).

        ``arm_pos``: the robot's current command's arm targets, or the measured arm
        position; ``gripper``: the current command's gripper value (None: keep the
        gripper command as it is).
        """
        arm_pos = np.asarray(arm_pos, np.float64)
        if arm_pos.shape != self.low.shape:
            raise ValueError(f'expected {self.low.size} arm joint positions, got {arm_pos.size}')
        self.target = np.clip(arm_pos, self.low, self.high)
        self._sync_gripper(gripper)

    def jog(self, delta: np.ndarray) -> None:
        """Move the arm target by ``delta`` (A-1,), clamped to the limits."""
        if self.target is None:
            raise RuntimeError('jog before sync: no joint state received yet')
        self.target = np.clip(self.target + np.asarray(delta, np.float64), self.low, self.high)

    def action(self) -> np.ndarray:
        """(A,) the arm targets with the gripper command at its index."""
        if self.target is None:
            raise RuntimeError('no target yet: waiting for the first joint state')
        return with_gripper(self.target, self.gripper, self.gripper_index)


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


class CartesianJogger(_GripperToggle):
    """Moves a hand target in the world frame and solves joint targets for it by IK.

    Args:
        ik: the arm's damped-least-squares IK (il_ros.sim.kinematics.ArmIK or one with its
            interface: ``qpos_idx``, ``low``, ``high``, ``site_pose(qpos)`` and
            ``solve(qpos, target, approach=, finger_dir=)``).
        qpos: (nq,) a full ``qpos`` of its model; only the arm joints are changed (the rest,
            e.g. objects, do not move the hand).
        gripper_index: as :class:`JointJogger`'s.
        blocked_m: when IK ends farther than this from the target (out of reach or at a
            joint limit) the target is pulled back to where the hand can go, so holding a
            key against a limit never winds up a target the arm cannot follow.
    """

    def __init__(self, ik, qpos, gripper_index: int | None = -1, blocked_m: float = 0.005):
        self.ik = ik
        self.q = np.array(qpos, np.float64)
        self.gripper_index = gripper_index
        self.blocked_m = float(blocked_m)
        self.gripper = 0.0
        self._last_toggle = False
        self.target: np.ndarray | None = None        # (n_arm,) joint targets
        self.hand: np.ndarray | None = None          # (3,) hand target, m
        self.approach = np.array([0.0, 0.0, -1.0])
        self.finger_dir: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        """Tell whether a target exists (synced to the arm at least once)."""
        return self.target is not None

    def hand_position(self, arm_pos: np.ndarray | None = None) -> np.ndarray:
        """(3,) the hand position for ``arm_pos`` (default: the current joint targets)."""
        q = self.q.copy()
        q[self.ik.qpos_idx] = self.target if arm_pos is None else arm_pos
        return self.ik.site_pose(q)[0]

    def sync(self, arm_pos: np.ndarray, gripper: float | None = None) -> None:
        """Start from ``arm_pos``, keeping the hand's orientation there.

        ``gripper``: as in :meth:`JointJogger.sync`.
        """
        arm_pos = np.asarray(arm_pos, np.float64)
        if arm_pos.shape != self.ik.low.shape:
            raise ValueError(f'expected {self.ik.low.size} arm joint positions, got '
                             f'{arm_pos.size}')
        self.target = np.clip(arm_pos, self.ik.low, self.ik.high)
        self._sync_gripper(gripper)
        self.q[self.ik.qpos_idx] = self.target
        pos, rot = self.ik.site_pose(self.q)
        self.hand = pos
        self.approach = rot[:, 2].copy()
        self.finger_dir = None
        flat = rot[:, 1] - rot[2, 1] * np.array([0.0, 0.0, 1.0])
        if self.approach[2] < -DOWN_COS and np.linalg.norm(flat) > 1e-6:
            # Hand (nearly) down, as in the sim tasks: keep it exactly down, with its yaw.
            # (An arm with fewer than 6 joints cannot keep a tilted hand's orientation
            # everywhere; the IK would then give up position for it.)
            self.approach = np.array([0.0, 0.0, -1.0])
            self.finger_dir = flat / np.linalg.norm(flat)

    def jog(self, delta: np.ndarray, yaw: float = 0.0) -> None:
        """Move the hand target by ``delta`` (3,) m and turn it by ``yaw`` rad about z."""
        if self.target is None:
            raise RuntimeError('jog before sync: no joint state received yet')
        self.hand = self.hand + np.asarray(delta, np.float64)
        if yaw and self.finger_dir is not None:
            c, s = np.cos(yaw), np.sin(yaw)
            x, y, z = self.finger_dir
            self.finger_dir = np.array([c * x - s * y, s * x + c * y, z])
        self.q[self.ik.qpos_idx] = self.target
        q_arm = self.ik.solve(self.q, self.hand, approach=self.approach,
                              finger_dir=self.finger_dir)
        self.target = np.clip(q_arm, self.ik.low, self.ik.high)
        reached = self.hand_position()
        if float(np.linalg.norm(reached - self.hand)) > self.blocked_m:
            self.hand = reached

    def action(self) -> np.ndarray:
        """(A,) the arm joint targets with the gripper command at its index."""
        if self.target is None:
            raise RuntimeError('no target yet: waiting for the first joint state')
        return with_gripper(self.target, self.gripper, self.gripper_index)


def cartesian_key_delta(key: str, step_m: float,
                        yaw_step: float) -> tuple[np.ndarray, float] | None:
    """(hand delta (3,) m, yaw rad) for one key press, or None when it is not a jog key."""
    if key not in CARTESIAN_KEYMAP:
        return None
    axis, sign = CARTESIAN_KEYMAP[key]
    d = np.zeros(3)
    if axis == 3:
        return d, sign * yaw_step
    d[axis] = sign * step_m
    return d, 0.0


def joy_twist(axes, axis_map, speed: float, yaw_speed: float, dt: float,
              deadzone: float = 0.1) -> tuple[np.ndarray, float]:
    """(hand delta (3,) m, yaw rad) over ``dt`` from joystick axes.

    ``axis_map`` = the axes driving [x, y, z, yaw] (-1: none); full deflection moves the
    hand at ``speed`` m/s and turns it at ``yaw_speed`` rad/s.
    """
    d = joy_delta(axes, list(axis_map)[:4], 1.0, dt, deadzone)
    d = np.concatenate([d, np.zeros(4 - d.size)])
    return d[:3] * speed, float(d[3] * yaw_speed)


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
