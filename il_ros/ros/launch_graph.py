"""Build a ``ros2 launch`` description from the node graph in config/graph.yaml.

Used by launch/*.launch.py on a ROS install (needs the ``launch`` and ``launch_ros``
packages, which the PyPI wheels do not ship; ``il-ros`` runs the same graph without them).
The nodes are planned at launch time by il_ros.graph_plan.plan_graph, the function
``il-ros`` uses too: typed argument values, the robot's recorder topics, and the cameras and
control rate of a checkpoint.
"""
from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.logging import get_logger
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from il_ros.config import load_graph
from il_ros.graph_plan import (check_namespace, find_executable, JOY_EXECUTABLE, JOY_PACKAGE,
                               joystick_missing_message, NAMESPACE_ARG, NAMESPACE_HELP,
                               plan_graph)
from il_ros.launcher import dds_profile_env


def graph_launch_description(graph: str, extra_args: dict | None = None) -> LaunchDescription:
    """One DeclareLaunchArgument per graph argument, then the nodes, planned at launch time.

    ``extra_args``: ``{node: {Node keyword: value}}`` (a ``condition``, a ``prefix``).

    First, unless the environment of ``ros2 launch`` already names a Fast DDS profile file,
    the shipped profile (config/dds/fastdds.xml) is set for every node the launch starts
    (docs/ros-network.md).
    """
    g = load_graph()
    if graph not in g.graphs:
        raise KeyError(f'graph {graph!r} not in config/graph.yaml; have {sorted(g.graphs)}')
    actions = [SetEnvironmentVariable(name, value)
               for name, value in dds_profile_env(os.environ).items()]
    actions += [DeclareLaunchArgument(a, default_value=g.args[a].default,
                                      description=g.args[a].description)
                for a in g.graph_args(graph)]
    actions.append(DeclareLaunchArgument(NAMESPACE_ARG, default_value='',
                                         description=NAMESPACE_HELP))
    actions.append(OpaqueFunction(function=graph_nodes, args=[graph, extra_args or {}]))
    return LaunchDescription(actions)


def graph_nodes(context, graph: str, extra_args: dict) -> list:
    """The graph's Node actions for the launch arguments of ``context`` (an OpaqueFunction).

    A ConfigError (a value of the wrong type, an unknown robot or camera, an unreadable
    checkpoint) ends the launch before any node starts, with a message naming it.
    """
    g = load_graph()
    values = {a: context.launch_configurations.get(a)
              for a in [*g.graph_args(graph), NAMESPACE_ARG]}
    actions = []
    for name, plan in plan_graph(graph, values, g).items():
        params = {k: _launch_value(v) for k, v in plan.params.items()}
        node = Node(package='il_ros', executable=plan.executable, name=name,
                    parameters=[*([str(plan.params_file)] if plan.params_file else []), params],
                    remappings=list(plan.remappings.items()), output='screen',
                    emulate_tty=True, **_namespace(plan.namespace),
                    **extra_args.get(name, {}))
        actions.append(node)
        if g.exit_with.get(graph) == name:
            # e.g. the recorder in auto mode exits when its episodes are done: end the launch
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=[EmitEvent(event=Shutdown(reason=f'{name} exited'))])))
    return actions


def joystick_driver(**kwargs) -> OpaqueFunction:
    """With ``teleop_mode:=joy``: the joystick driver (``joy``'s joy_node) if installed.

    When the ament index has no such executable, a warning names the package to install and
    the joy topic teleop reads, and nothing starts. ``kwargs``: e.g. a ``condition``.
    """
    return OpaqueFunction(function=_joystick_actions, **kwargs)


def _joystick_actions(context) -> list:
    if context.launch_configurations.get('teleop_mode') != 'joy':
        return []
    namespace = check_namespace(context.launch_configurations.get(NAMESPACE_ARG))
    if find_executable(JOY_PACKAGE, JOY_EXECUTABLE) is None:
        get_logger('il_ros').warning(joystick_missing_message(namespace))
        return []
    return [Node(package=JOY_PACKAGE, executable=JOY_EXECUTABLE, name=JOY_EXECUTABLE,
                 output='screen', **_namespace(namespace))]


def _namespace(namespace: str) -> dict:
    """Node keyword for a planned namespace ('' none: the node stays where launch puts it)."""
    # relative, so that an enclosing PushRosNamespace still applies
    return {'namespace': namespace.lstrip('/')} if namespace else {}


def _launch_value(value):
    """A planned parameter value for launch_ros (which would read a bare str as YAML)."""
    return ParameterValue(value, value_type=str) if isinstance(value, str) else value
