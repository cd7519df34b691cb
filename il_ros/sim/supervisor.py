"""The scripted supervisor: the sim's stand-in for a person who watches a policy run.

It takes over when the policy goes wrong (HG-DAgger). ROS-free; the ``supervisor`` node
(il_ros/ros/supervisor.py) wraps it.

At every control tick the supervisor gets the simulator's privileged state (``/sim/state``,
mirrored into a non-rendering env with ``env.set_state`` as the scripted teleop does) and
the command the robot last executed. It asks the task's scripted expert what it would do in
that state (the *label*) and runs a gate:

- **take over** when a rule fires:

  - *deviation* (for ``trigger_steps`` consecutive ticks; at once beyond twice the
    threshold): the hand position the executed command aims at (forward kinematics of its
    joint targets) is more than ``deviation_m`` from the one the expert's command for the
    same state aims at, or the gripper commands differ by more than ``gripper_deviation``.
    This is the novice-vs-expert discrepancy gate of HG-DAgger / SafeDAgger. The executed
    command is compared with the label of the state it answered (the previous one), so the
    expert itself deviates by 0.
  - *stall*: the hand moved less than ``stall_m`` over the last ``stall_steps`` ticks while
    the executed command deviated from the expert's by more than half that all along (a
    policy that stopped short; the expert pausing, e.g. to close the gripper, is not one).
  - *danger* (at once): a task-specific distance to failure exceeds ``danger_on_m``. On
    ``path`` it is the hand's horizontal distance from the drawn curve (the task fails at
    0.04 m, the corridor edge); the other tasks have none.

- **hand back** once recovered: after at least ``min_takeover_steps`` ticks in control, and
  then ``release_steps`` consecutive ticks with the danger (when the task has one) below
  ``danger_off_m``. (While the supervisor drives, the executed command *is* the expert's,
  so the deviation says nothing about recovery; the state does.)

While in control the supervisor's output is the expert's clean label, which the controller
forwards to the robot through its safety filter. ``human_steps`` (ticks in control) is the
cost of the corrections: the number of expert-labelled steps.

On ``reach_around`` (two valid sides) the expert follows the side the hand is already
closer to, so a policy that picked the other valid side is not overruled.
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
import math

import numpy as np

from il_ros.robot import DEFAULT_ROBOT, RobotDescription
from il_ros.sim.registry import make_env, make_expert, TASKS

TASK_DANGER = {'path': (0.02, 0.01)}
"""Task -> default (danger_on_m, danger_off_m); tasks not listed have no danger signal."""


@dataclass
class GateConfig:
    """Thresholds of the takeover gate (see the module doc).

    A threshold <= 0 disables its rule; ``None`` for the danger thresholds means the task's
    default (TASK_DANGER).
    """

    deviation_m: float = 0.04
    """Hand-position distance (m) between the executed command's and the expert's targets."""
    gripper_deviation: float = 0.5
    """Gripper command difference (0 open .. 1 closed) that counts as a deviation."""
    danger_on_m: float | None = None
    """Take over when the task's danger distance exceeds this (path: distance from the
    curve, m; the corridor is 0.04 m)."""
    danger_off_m: float | None = None
    """Recovered when the danger distance is below this."""
    stall_m: float = 0.01
    """The hand moving less than this (m) over ``stall_steps`` ticks is a stall."""
    stall_steps: int = 20
    """Window of the stall rule, in ticks."""
    trigger_steps: int = 2
    """Consecutive ticks the deviation rule must fire before taking over (ignores one-tick
    blips; the danger rule acts at once)."""
    min_takeover_steps: int = 10
    """Ticks in control before handing back can start."""
    release_steps: int = 5
    """Consecutive recovered ticks (after ``min_takeover_steps``) before handing back."""

    def __post_init__(self):
        for name in ('trigger_steps', 'release_steps', 'stall_steps'):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'{name} must be an integer >= 1, got {v!r}')
        if not isinstance(self.min_takeover_steps, int) or self.min_takeover_steps < 0:
            raise ValueError(f'min_takeover_steps must be an integer >= 0, '
                             f'got {self.min_takeover_steps!r}')
        for name in ('deviation_m', 'gripper_deviation', 'stall_m', 'danger_on_m',
                     'danger_off_m'):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f'{name} must be finite (<= 0 disables it), got {v}')

    def for_task(self, task: str) -> GateConfig:
        """This config with the task's danger defaults filled in."""
        on, off = TASK_DANGER.get(task, (0.0, 0.0))
        d = asdict(self)
        if d['danger_on_m'] is None:
            d['danger_on_m'] = on
        if d['danger_off_m'] is None:
            d['danger_off_m'] = off if d['danger_on_m'] == on else 0.5 * d['danger_on_m']
        if d['danger_on_m'] > 0 and d['danger_off_m'] > d['danger_on_m']:
            raise ValueError(f'danger_off_m ({d["danger_off_m"]}) must not exceed '
                             f'danger_on_m ({d["danger_on_m"]})')
        return GateConfig(**d)


@dataclass
class SupervisorStep:
    """What the supervisor decided for one tick."""

    in_control: bool
    """Whether the supervisor drives this tick (publish the label as the human command)."""
    label: np.ndarray
    """(A,) the expert's clean action for this state (the training label)."""
    event: str | None
    """'takeover', 'release' or None."""
    deviation: float | None
    """Hand distance (m) between the executed and the expert's targets (None: no command)."""
    danger: float | None
    """The task's danger distance (None: the task has none)."""
    reason: str
    """Why it took over (while in control): 'deviation', 'gripper', 'stall', 'danger';
    '' when not in control."""


class Supervisor:
    """The gate plus the expert for one task; feed it every tick with :meth:`step`."""

    def __init__(self, task: str, gate: GateConfig | None = None, seed: int = 0,
                 robot: str | RobotDescription | None = DEFAULT_ROBOT):
        """Watch ``task`` on ``robot`` (a name, a YAML path or a description).

        ``seed`` is the expert's: sim episode k reseeds it with ``seed + k`` (as the
        scripted teleop does).
        """
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
        self.task = task
        self.gate = (gate or GateConfig()).for_task(task)
        self.seed = int(seed)
        self.env = make_env(task, robot, render=False)
        self.robot = self.env.robot
        self.expert = make_expert(task, self.robot, seed=seed)
        self._grip = self.env.gripper_action_idx
        self.episode: int | None = None
        self.armed = True
        # totals over all episodes
        self.steps = 0
        self.human_steps = 0
        self.takeovers = 0
        self.episodes = 0
        self._new_episode_counters()

    def _new_episode_counters(self) -> None:
        self.in_control = False
        self.episode_steps = 0
        self.episode_human_steps = 0
        self.episode_takeovers = 0
        self._fire = 0            # consecutive ticks a takeover rule fired
        self._held = 0            # ticks in control in this takeover
        self._calm = 0            # consecutive recovered ticks after min_takeover_steps
        self._reason = ''
        self._prev_label: np.ndarray | None = None
        self._want = 0            # consecutive ticks deviating by more than stall_m / 2
        self._hand: deque = deque(maxlen=self.gate.stall_steps + 1)

    # ------------------------------------------------------------------ signals
    def hand_target(self, command: np.ndarray) -> np.ndarray:
        """World position (m) of the hand when the arm is at ``command``'s joint targets."""
        q = self.env.data.qpos.copy()
        q[self.env.ik.qpos_idx] = np.asarray(command, np.float64)[self.env.arm_action_idx]
        return self.env.ik.site_pose(q)[0]

    def deviation(self, executed: np.ndarray, label: np.ndarray) -> float:
        """Return the hand distance (m) between the targets of two commands.

        The joints they do not command are at the current state's qpos.
        """
        return float(np.linalg.norm(self.hand_target(executed) - self.hand_target(label)))

    def danger(self) -> float | None:
        """The task's distance-to-failure signal in the mirrored state, or None."""
        if self.task == 'path':
            return float(self.env.path_distance())
        return None

    # ------------------------------------------------------------------ the tick
    def reset(self) -> None:
        """Forget the current episode (the next state starts a new one)."""
        self.episode = None
        self._new_episode_counters()

    def step(self, state, executed=None) -> SupervisorStep:
        """Mirror ``state`` (a ``/sim/state`` vector) and judge ``executed``: one tick.

        ``executed``: the (A,) command the robot ran in answer to the previous state (None:
        none seen).
        """
        env = self.env
        env.set_state(state)
        episode = int(env.episode_index)
        if episode != self.episode:
            self._new_episode_counters()
            self.expert.reset(env, seed=self.seed + episode)
            self.episode = episode
            self.episodes += 1
        if self.task == 'reach_around' and not self.in_control:
            self._follow_nearest_side()
        label = self.expert.act(env).label
        dev = grip = None
        if executed is not None and self._prev_label is not None:
            executed = np.asarray(executed, np.float64)
            if executed.shape == label.shape and np.all(np.isfinite(executed)):
                dev = self.deviation(executed, self._prev_label)
                if self._grip is not None:
                    grip = abs(float(executed[self._grip] - self._prev_label[self._grip]))
        self._prev_label = label
        ee = env.ee_pos()
        self._hand.append(ee)
        danger = self.danger()
        g = self.gate
        event = None
        if not self.in_control:
            reason = ''
            if g.danger_on_m > 0 and danger is not None and danger > g.danger_on_m:
                reason, self._fire = 'danger', g.trigger_steps
            else:
                if dev is not None and g.deviation_m > 0 and dev > g.deviation_m:
                    reason = 'deviation'
                    if dev > 2 * g.deviation_m:      # far off: no time to wait
                        self._fire = g.trigger_steps - 1
                elif grip is not None and g.gripper_deviation > 0 and grip > g.gripper_deviation:
                    reason = 'gripper'
                self._fire = self._fire + 1 if reason else 0
                if not reason and self._stalled(ee, dev):
                    reason, self._fire = 'stall', g.trigger_steps
            if self._fire >= g.trigger_steps and env.failure() is None and self.armed:
                self.in_control, self._reason = True, reason
                self._held = self._calm = 0
                self.takeovers += 1
                self.episode_takeovers += 1
                event = 'takeover'
        else:
            self._held += 1
            if self._held >= g.min_takeover_steps:
                recovered = not (g.danger_on_m > 0 and danger is not None
                                 and danger >= g.danger_off_m)
                self._calm = self._calm + 1 if recovered else 0
                if self._calm >= g.release_steps or env.failure() is not None:
                    self.in_control, self._fire = False, 0
                    self._hand.clear()
                    self._want = 0
                    event = 'release'
        self.steps += 1
        self.episode_steps += 1
        if self.in_control:
            self.human_steps += 1
            self.episode_human_steps += 1
        return SupervisorStep(self.in_control, label, event, dev, danger,
                              self._reason if self.in_control else '')

    def arm(self, on: bool) -> bool:
        """Arm (may take over) or disarm (never takes over).

        Returns True when disarming ended a takeover in progress.
        """
        self.armed = bool(on)
        released = not self.armed and self.in_control
        if released:
            self.in_control, self._fire = False, 0
        return released

    def _stalled(self, ee: np.ndarray, dev: float | None) -> bool:
        g = self.gate
        if g.stall_m <= 0:
            return False
        want = dev is not None and dev > 0.5 * g.stall_m
        self._want = self._want + 1 if want else 0
        if self._want < g.stall_steps or len(self._hand) <= g.stall_steps:
            return False
        return float(np.linalg.norm(ee - self._hand[0])) < g.stall_m

    def _follow_nearest_side(self) -> None:
        """reach_around: make the expert follow the detour the hand is closer to."""
        env, ee = self.env, self.env.ee_pos()
        dist = {m: env.detour(m).nearest(ee)[0] for m in ('left', 'right')}
        self.expert.mode = min(dist, key=dist.get)

    def counts(self) -> dict:
        """Totals and this episode's counts (JSON-able)."""
        return {'episode': self.episode, 'in_control': self.in_control,
                'steps': self.steps, 'human_steps': self.human_steps,
                'takeovers': self.takeovers, 'episodes': self.episodes,
                'episode_steps': self.episode_steps,
                'episode_human_steps': self.episode_human_steps,
                'episode_takeovers': self.episode_takeovers}

    def close(self) -> None:
        """Close the supervisor's mirror env."""
        self.env.close()
