"""Build a ``ros2 launch`` description from the node graph in config/graph.yaml.

Used by launch/*.launch.py on a ROS install (needs the ``launch`` and ``launch_ros``
packages, which the PyPI wheels do not ship; ``il-ros`` runs the same graph without them).
The nodes are planned at launch time by il_ros.graph_plan.plan_graph, the function
``il-ros`` uses too: typed argument values, the robot's recorder topics, and the cameras and
control rate of a checkpoint. The managed nodes (the controller and the recorder) are
``launch_ros`` LifecycleNodes started with ``autostart:=false``: the launch configures each
once its process is up and activates it once configured (ChangeState events), as a ROS
lifecycle launch does (:func:`lifecycle_startup`).
"""
from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit, OnProcessStart
from launch.events import matches_action, Shutdown
from launch.logging import get_logger
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from il_ros.config import load_graph
from il_ros.graph_plan import (check_namespace, find_executable, JOY_EXECUTABLE, JOY_PACKAGE,
                               joystick_missing_message, NAMESPACE_ARG, NAMESPACE_HELP,
                               plan_graph)
from il_ros.launcher import dds_profile_env

MANAGED = ('controller', 'recorder')
"""Executables that are lifecycle nodes: launched as LifecycleNode and driven to active."""


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
        kwargs = {**_namespace(plan.namespace), **extra_args.get(name, {})}
        managed = plan.executable in MANAGED
        if managed:
            params['autostart'] = False                 # the launch drives the transitions
            kwargs.setdefault('namespace', '')
        node = (LifecycleNode if managed else Node)(
            package='il_ros', executable=plan.executable, name=name,
            parameters=[*([str(plan.params_file)] if plan.params_file else []), params],
            remappings=list(plan.remappings.items()), output='screen', emulate_tty=True,
            **kwargs)
        actions.append(node)
        if managed:
            actions += lifecycle_startup(node, end_on_failure=g.exit_with.get(graph) == name)
        if g.exit_with.get(graph) == name:
            # e.g. the recorder in auto mode exits when its episodes are done: end the launch
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=[EmitEvent(event=Shutdown(reason=f'{name} exited'))])))
    return actions


def lifecycle_startup(node, end_on_failure: bool = False) -> list:
    """Configure ``node`` (a LifecycleNode) when its process starts; activate it once configured.

    Only the configure the launch asked for leads to activate (start state ``configuring``),
    so a ``deactivate`` or ``cleanup`` by the user is not undone. ``end_on_failure``: a
    configure that fails shuts the node down (its process exits), which ends the launch
    through the graph's exit handler (the recorder of a record graph, which would otherwise
    wait for ever); the node's error line is in the log.
    """
    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition))
    actions = [
        RegisterEventHandler(OnProcessStart(
            target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[change(Transition.TRANSITION_ACTIVATE)]))]
    if end_on_failure:
        actions.append(RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='unconfigured',
            entities=[change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)])))
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
