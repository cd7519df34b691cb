"""The ``robot`` node parameter: which robot description a node speaks for.

Every node that needs robot facts (joint and action names, limits, topics, the command
interface, cameras) declares ``robot`` (a name in config/robots or a path to a robot YAML),
loads it with :func:`load_robot_param` and takes those facts from the loaded
:class:`~il_ros.robot.RobotDescription`, never from parameters of its own. Parameters that
once duplicated a robot fact are refused by name (:func:`refuse_removed`), so an old launch
file or parameter file fails at start with a line that says where the fact lives now.
"""
from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from il_ros.config import ConfigError
from il_ros.robot import load_robot, RobotDescription, robot_path
from il_ros.ros.node_utils import ParameterError


ROBOT_DESCRIPTION = ('Robot description: a name in config/robots (sim_arm, panda, ...) or a '
                     'path to a robot YAML.')
"""The description of every node's ``robot`` parameter."""


def load_robot_param(name: str) -> RobotDescription:
    """Load the robot a node's ``robot`` parameter names (ParameterError when it is bad).

    A node declares the parameter itself (``declare(node, 'robot', DEFAULT_ROBOT,
    ROBOT_DESCRIPTION)``, so tools that read its declarations see it) and passes the value.
    """
    try:
        return load_robot(name)
    except (ConfigError, OSError) as e:
        raise ParameterError(f'parameter robot={name!r}: {e}') from None


def robot_file(robot: RobotDescription) -> str:
    """The YAML a robot was loaded from (for messages)."""
    if robot.source:
        return robot.source
    try:
        return str(robot_path(robot.name))
    except ConfigError:
        return f'config/robots/{robot.name}.yaml'


def refuse_removed(node: Node, removed: dict[str, str], robot: RobotDescription) -> None:
    """Refuse parameters that now come from the robot description, naming its file.

    ``removed`` maps each old parameter to the field of the robot YAML that replaces it
    (e.g. ``'image_width': 'cameras[].width'``). A removed parameter that is set raises
    ParameterError: ``parameter image_width=320: removed; the robot description gives it
    (cameras[].width in .../sim_arm.yaml)``.
    """
    where = robot_file(robot)
    for name, field in removed.items():
        value = node.declare_parameter(name, None, ParameterDescriptor(
            description=f'(removed: {field} of the robot description)',
            dynamic_typing=True, read_only=True)).value
        if value is not None:
            raise ParameterError(
                f'parameter {name}={value!r}: removed; the robot description gives it '
                f'({field} in {where}): edit that file or pass robot:=<your robot YAML>')


def check_sim_task(robot: RobotDescription, task: str) -> None:
    """ParameterError naming the robot file when ``robot`` has no sim scene for ``task``."""
    from il_ros.sim.env import scene_of
    try:
        scene_of(robot, task)
    except ValueError as e:
        raise ParameterError(f'parameter task={task!r}: {e}') from None
