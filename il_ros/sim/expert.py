"""Scripted experts: the shared base class, DART noise and the Cartesian move primitive.

An expert reads the env's privileged state (joint positions, object poses, task parameters)
and returns joint position targets. Each act() is a closed-loop function of that state (plus
the expert's own mode choice), so an expert driving a copy of the env that only receives
``set_state(get_state())`` computes the same actions as one driving the original.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from il_ros.robot import DEFAULT_ROBOT, RobotDescription
from il_ros.sim.env import as_robot, SimEnv
from il_ros.sim.kinematics import cartesian_step


# The position servos need about this long to catch up with a new set-point, so an expert
# leads the hand by speed * max(control_dt, LEAD_TIME): its speed in m/s then hardly
# depends on the control rate.
LEAD_TIME = 0.05              # s
MAX_JUMP = 0.03               # m, cap on a set-point's distance from the hand


def lead_time(env: SimEnv) -> float:
    """Return how far ahead (s) an expert places its set-points at this env's control rate."""
    return max(env.control_dt, LEAD_TIME)


class ExpertAction(NamedTuple):
    """One expert decision.

    label: (A,) the expert's clean action, to be recorded as the training target.
    executed: (A,) the command actually sent; label plus DART noise (equal when noise = 0).
    """

    label: np.ndarray
    executed: np.ndarray


class Expert:
    """Base class of the scripted experts.

    Args:
        noise: DART noise, the standard deviation in rad of zero-mean Gaussian noise added to
            each arm joint target of the executed command (the gripper is not perturbed).
            The label stays clean.
        seed: seeds the expert's random choices (mode, noise); ``reset`` may reseed.
        robot: the robot it drives (a name, a YAML path or a description); the expert
            itself works on any arm through the env's IK, the robot only picks per-robot
            task geometry and is checked against the env's.
    """

    task: str = ''

    def __init__(self, *, noise: float = 0.0, seed: int | None = None,
                 robot: str | RobotDescription | None = DEFAULT_ROBOT):
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f'noise must be a finite std >= 0 (rad), got {noise}')
        self.robot = as_robot(robot)
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._episode: int | None = None

    def reset(self, env: SimEnv, seed: int | None = None) -> None:
        """Prepare for the env's current episode (and reseed when ``seed`` is given)."""
        if env.task != self.task:
            raise ValueError(f'{type(self).__name__} drives {self.task!r}, not {env.task!r}')
        if env.robot.name != self.robot.name:
            raise ValueError(f'this {self.task} expert was made for robot {self.robot.name!r}, '
                             f'the env runs {env.robot.name!r}')
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._episode = env.episode_index
        self._on_reset(env)

    def act(self, env: SimEnv) -> ExpertAction:
        """Return the action for the env's current state (label and noisy executed)."""
        if self._episode is None:
            self.reset(env)
        label = np.clip(self._plan(env), env.action_low, env.action_high)
        executed = label.copy()
        if self.noise > 0.0:
            idx = env.arm_action_idx
            executed[idx] += self._rng.normal(0.0, self.noise, len(idx))
            executed = np.clip(executed, env.action_low, env.action_high)
        return ExpertAction(label, executed)

    # ---- for subclasses ----------------------------------------------------------------------
    def _on_reset(self, env: SimEnv) -> None:
        """Per-episode choices (e.g. a mode); may draw from ``self._rng``."""

    def _plan(self, env: SimEnv) -> np.ndarray:
        """Return the clean (A,) action for the current state."""
        raise NotImplementedError

    @staticmethod
    def move_to(env: SimEnv, goal, gripper: float, *, speed: float | None = None,
                finger_dir: np.ndarray | None = None) -> np.ndarray:
        """Return the action moving the hand (pointing down) toward ``goal``.

        The Cartesian set-point is ``goal`` itself when ``speed`` is None (capped at
        ``MAX_JUMP`` from the hand), else the point ``speed`` * ``lead_time(env)`` from the
        current end-effector position along the straight line to ``goal``. IK turns the
        set-point into joint targets; ``finger_dir`` (default: across the arm's radial
        direction) sets the wrist roll.
        """
        ee = env.ee_pos()
        if finger_dir is None:
            yaw = np.arctan2(ee[1], ee[0])
            finger_dir = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        step = MAX_JUMP if speed is None else speed * lead_time(env)
        target = cartesian_step(ee, np.asarray(goal, dtype=np.float64), step)
        q = env.ik.solve(env.data.qpos, target, finger_dir=finger_dir)
        return env.compose(q, gripper)
