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

    def __call__(self, values: np.ndarray, stamp_s: float) -> Float64MultiArray:
        """Return the command message for ``values`` (stamp unused)."""
        return array_msg(values, self.label)


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

    def __call__(self, values: np.ndarray, stamp_s: float) -> JointTrajectory:
        """Return the command message for ``values``, stamped ``stamp_s``."""
        msg = JointTrajectory()
        msg.header.stamp = to_time(stamp_s)
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

    def __call__(self, values: np.ndarray, stamp_s: float) -> JointState:
        """Return the command message for ``values``, stamped ``stamp_s``."""
        msg = JointState()
        msg.header.stamp = to_time(stamp_s)
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
