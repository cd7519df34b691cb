"""Build a ``ros2 launch`` description from the node graph in config/graph.yaml.

Used by launch/*.launch.py on a ROS install (needs the ``launch`` and ``launch_ros``
packages, which the PyPI wheels do not ship; ``il-ros`` runs the same graph without them).
"""
from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, RegisterEventHandler,
                            SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from il_ros.config import load_graph
from il_ros.launcher import dds_profile_env


def graph_launch_description(graph: str, extra_args: dict | None = None) -> LaunchDescription:
    """One DeclareLaunchArgument per graph argument, one Node per graph member.

    Each node gets its parameter file from config/, then the graph's fixed overrides, then
    the launch arguments mapped onto its parameters (values are parsed as YAML, so
    ``episodes:=20`` is an integer and ``cameras:=[front,wrist]`` a string array).

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
    for name, fixed in g.graphs[graph].items():
        spec = g.nodes[name]
        overrides = dict(fixed)
        overrides.update({param: ParameterValue(LaunchConfiguration(arg))
                          for param, arg in spec.args.items()})
        params = [str(g.params_path(name))] if spec.params else []
        node = Node(package='il_ros', executable=spec.executable, name=name,
                    parameters=[*params, overrides], remappings=list(spec.remappings.items()),
                    output='screen', emulate_tty=True, **(extra_args or {}).get(name, {}))
        actions.append(node)
        if g.exit_with.get(graph) == name:
            # e.g. the recorder in auto mode exits when its episodes are done: end the launch
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=[EmitEvent(event=Shutdown(reason=f'{name} exited'))])))
    return LaunchDescription(actions)
