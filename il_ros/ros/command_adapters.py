"""Command adapters: a filtered command vector -> the robot's own command message.

The controller computes one vector of joint-position targets per tick, in the checkpoint's
``action_names`` order (for the sim arm: five joint angles, then the gripper in [0, 1]).
An adapter turns it into the message the robot's driver listens to:

- ``float64_multi_array``: ``std_msgs/Float64MultiArray``, the values in action order (the
  layout of ros2_control's forward command controllers, and what ``sim_robot`` reads);
- ``joint_trajectory``: ``trajectory_msgs/JointTrajectory`` with one point, the action names
  as joint names, reached ``time_from_start`` = one control period later
  (ros2_control's joint_trajectory_controller);
- ``joint_state``: ``sensor_msgs/JointState`` with the action names and positions only
  (e.g. a topic-based ros2_control hardware interface);
- ``twist_stamped``: not implemented; a joint-position policy gives no Cartesian velocity
  without the robot's kinematics (see :func:`make_adapter`).

A parser (:func:`make_parser`) is the inverse: it turns such a message back into the vector
in action order, for a node that plays the robot (``sim_robot``) or watches its commands
(the supervisor). A message it cannot map exactly (wrong length, a missing or unknown joint
name, no trajectory point, a value that is not finite) raises :class:`CommandError`, and the
node ignores it: no motion on a command it does not understand.

An optional ``tag`` (the episode a scripted command answers) travels in the
Float64MultiArray's ``layout.dim[0].label`` and in the ``header.frame_id`` of the other two;
:func:`command_tag` reads it back.
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration
import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_ros.ros.conversions import array_msg, to_time

ADAPTERS = ('float64_multi_array', 'joint_trajectory', 'joint_state', 'twist_stamped')


class Float64MultiArrayAdapter:
    """Joint position targets as ``std_msgs/Float64MultiArray`` (action order)."""

    msg_type = Float64MultiArray

    def __init__(self, names: list[str], period_s: float, label: str = 'controller'):
        self.names, self.label = list(names), label

    def __call__(self, values: np.ndarray, stamp_s: float,
                 tag: str = '') -> Float64MultiArray:
        """Return the command message for ``values`` (stamp unused; ``tag``: the label)."""
        return array_msg(values, tag or self.label)


class JointTrajectoryAdapter:
    """One-point ``trajectory_msgs/JointTrajectory`` to reach in one control period."""

    msg_type = JointTrajectory

    def __init__(self, names: list[str], period_s: float):
        if not names:
            raise ValueError('the joint_trajectory adapter needs the action names (the '
                             'checkpoint has none: set the action_names parameter)')
        self.names = list(names)
        sec = int(period_s)
        self.duration = Duration(sec=sec, nanosec=int(round((period_s - sec) * 1e9)))

    def __call__(self, values: np.ndarray, stamp_s: float, tag: str = '') -> JointTrajectory:
        """Return the command message for ``values``, stamped ``stamp_s``."""
        msg = JointTrajectory()
        msg.header.stamp = to_time(stamp_s)
        msg.header.frame_id = tag
        msg.joint_names = self.names
        msg.points = [JointTrajectoryPoint(
            positions=[float(v) for v in values], time_from_start=self.duration)]
        return msg


class JointStateAdapter:
    """``sensor_msgs/JointState`` with names and positions (velocity/effort left empty)."""

    msg_type = JointState

    def __init__(self, names: list[str], period_s: float):
        if not names:
            raise ValueError('the joint_state adapter needs the action names (the checkpoint '
                             'has none: set the action_names parameter)')
        self.names = list(names)

    def __call__(self, values: np.ndarray, stamp_s: float, tag: str = '') -> JointState:
        """Return the command message for ``values``, stamped ``stamp_s``."""
        msg = JointState()
        msg.header.stamp = to_time(stamp_s)
        msg.header.frame_id = tag
        msg.name = self.names
        msg.position = [float(v) for v in values]
        return msg


_CLASSES = {'float64_multi_array': Float64MultiArrayAdapter,
            'joint_trajectory': JointTrajectoryAdapter,
            'joint_state': JointStateAdapter}


def make_adapter(kind: str, names: list[str], period_s: float):
    """Return the adapter ``kind`` for commands with ``names`` sent every ``period_s``."""
    if kind == 'twist_stamped':
        raise NotImplementedError(
            'command_adapter twist_stamped is not implemented: the policies output joint '
            'position targets, and turning them into a geometry_msgs/TwistStamped needs the '
            "robot's kinematics (an end-effector velocity controller). Use "
            'float64_multi_array, joint_trajectory or joint_state.')
    if kind not in _CLASSES:
        raise ValueError(f'command_adapter {kind!r} unknown; use one of {ADAPTERS}')
    return _CLASSES[kind](names, period_s)


# ---- parsers: the robot's command message -> the vector in action order ------------------
class CommandError(ValueError):
    """A command message that does not map exactly onto the action vector."""


def _by_name(names: list[str], got_names, positions, what: str) -> np.ndarray:
    got = list(got_names)
    unknown = [n for n in got if n not in names]
    missing = [n for n in names if n not in got]
    dup = sorted({n for n in got if got.count(n) > 1})
    if unknown or missing or dup:
        parts = [f'unknown {unknown}' if unknown else '', f'missing {missing}' if missing else '',
                 f'repeated {dup}' if dup else '']
        raise CommandError(f'{what}: joint names {", ".join(p for p in parts if p)} '
                           f'(expected {names})')
    if len(positions) != len(got):
        raise CommandError(f'{what}: {len(positions)} positions for {len(got)} joint names')
    index = {n: i for i, n in enumerate(got)}
    return np.array([positions[index[n]] for n in names], np.float64)


def _finite(a: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise CommandError(f'values must be finite, got {a.tolist()}')
    return a


def _parse_array(names: list[str], msg: Float64MultiArray) -> np.ndarray:
    a = np.asarray(msg.data, np.float64)
    if a.shape != (len(names),):
        raise CommandError(f'expected {len(names)} values ({names}), got {a.size}')
    return _finite(a)


def _parse_trajectory(names: list[str], msg: JointTrajectory) -> np.ndarray:
    if not msg.points:
        raise CommandError('JointTrajectory without points')
    return _finite(_by_name(names, msg.joint_names, msg.points[0].positions,
                            'JointTrajectory'))


def _parse_joint_state(names: list[str], msg: JointState) -> np.ndarray:
    return _finite(_by_name(names, msg.name, msg.position, 'JointState'))


_PARSERS = {'float64_multi_array': _parse_array, 'joint_trajectory': _parse_trajectory,
            'joint_state': _parse_joint_state}


def command_msg_type(kind: str):
    """The message class of the command interface ``kind``."""
    if kind not in _CLASSES:
        raise ValueError(f'command type {kind!r} unknown; use one of {list(_CLASSES)}')
    return _CLASSES[kind].msg_type


def make_parser(kind: str, names: list[str]):
    """Return ``parse(msg) -> (A,) vector in the order of names`` for interface ``kind``.

    The inverse of :func:`make_adapter`: ``float64_multi_array`` takes the values in order;
    ``joint_trajectory`` maps the first point's positions by ``joint_names``;
    ``joint_state`` maps ``position`` by ``name``. Raises :class:`CommandError` on a message
    that does not name every action exactly once (or has the wrong length).
    """
    command_msg_type(kind)
    names = list(names)
    fn = _PARSERS[kind]
    return lambda msg: fn(names, msg)


def command_tag(msg) -> str:
    """The tag a command carries (see the module doc), or ''."""
    if isinstance(msg, Float64MultiArray):
        return msg.layout.dim[0].label if msg.layout.dim else ''
    return msg.header.frame_id
