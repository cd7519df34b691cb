"""What each node of a graph starts with: typed argument values and robot-derived parameters.

Both front ends call :func:`plan_graph`: ``ros2 launch il_ros <graph>.launch.py`` (through
il_ros.ros.launch_graph, at launch time) and ``il-ros record|deploy|dagger`` (through
il_ros.launcher.GraphRunner), so for the same arguments they start the same nodes with the
same parameters. The plan adds to the graph's fixed overrides and argument values what the
robot description (il_ros/robot.py) and the checkpoint say:

- every graph argument is parsed to its declared type (``rtf:=4`` is the double 4.0,
  ``seed:=3`` the integer 3, ``cameras:=[front,wrist]`` a string array);
- ``cameras`` left empty: the checkpoint's cameras when the graph runs the controller with a
  checkpoint, else the robot's first camera (``front`` on the shipped robots: today's
  recording default). Every camera must be one of the robot's;
- with a checkpoint, the controller's ``rate_hz`` and the sim's ``state_rate_hz`` are the
  checkpoint's control rate;
- the recorder (graphs ``record`` and ``dagger``) records :func:`recorder_topics`, of
  which :data:`OPTIONAL_TOPICS` may stay silent, and is told :func:`expected_rates`;
- ``namespace`` (:data:`NAMESPACE_ARG`, ``namespace:=robot1`` / ``--namespace robot1``) puts
  every node in that ROS namespace: the relative topic and service names (the robot's, the
  package's) resolve under it, the global ones (/diagnostics, /rosout) do not. The sim's
  clock is the exception: in a namespace, ``sim_robot`` and the nodes on sim time
  (``use_sim_time``) remap /clock to ``<namespace>/clock``, so two simulated graphs on one
  domain each keep their own time. Nodes on the system clock (a real robot) are untouched.

:func:`find_executable` looks a ROS package's executable up in the ament index (the launch
files start the joystick driver with it when one is installed).

ROS-free: it needs neither rclpy nor launch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from il_ros import keys
from il_ros.config import ConfigError, GraphConfig, load_graph
from il_ros.config import GRAPH_ARG_TYPES as ARG_TYPES
from il_ros.robot import load_robot, robot_path, robots_dir, RobotDescription

EXPERT_LABEL_TOPIC = 'il/expert/label'
"""The scripted supervisor's label of every state (il_ros/ros/supervisor.py)."""

PACKAGE_TOPICS = {
    'record': (keys.TOPIC_TELEOP_COMMAND, keys.TOPIC_SIM_STATE, keys.TOPIC_SIM_SUCCESS),
    'dagger': (keys.TOPIC_CONTROL_SOURCE, keys.TOPIC_TELEOP_COMMAND, keys.TOPIC_INTERVENTION,
               EXPERT_LABEL_TOPIC, keys.TOPIC_SIM_STATE, keys.TOPIC_SIM_SUCCESS),
}
"""The package's own topics the recorder stores in each graph, after the robot's."""

OPTIONAL_TOPICS = {
    'dagger': (keys.TOPIC_TELEOP_COMMAND, keys.TOPIC_INTERVENTION, EXPERT_LABEL_TOPIC,
               keys.TOPIC_SIM_STATE, keys.TOPIC_SIM_SUCCESS),
}
"""Recorded topics that may stay silent in a whole episode of the graph (the recorder's
``optional_topics``): in ``dagger`` the takeover topics send nothing in an episode without a
takeover, and the sim's topics nothing on a real robot. Such an episode is complete."""

NAMESPACE_ARG = 'namespace'
"""The argument (launch ``namespace:=``, il-ros ``--namespace``) that puts a graph's nodes in a
ROS namespace; not a node parameter, so not in config/graph.yaml's args."""
NAMESPACE_HELP = ('ROS namespace of every node (e.g. robot1): relative topic and service names '
                  'resolve under it; empty: none')

JOY_PACKAGE, JOY_EXECUTABLE, JOY_TOPIC = 'joy', 'joy_node', 'joy'
"""The joystick driver the launch files start for ``teleop_mode:=joy``, and its topic."""


def check_namespace(text) -> str:
    """The namespace argument as an absolute namespace (``robot1`` -> ``/robot1``; '' none).

    Raises ConfigError naming the argument (:func:`il_ros.keys.normalize_namespace`).
    """
    try:
        return keys.normalize_namespace(text)
    except ValueError as e:
        raise ConfigError(f'graph argument {NAMESPACE_ARG}: {e}') from None


def parse_arg(name: str, value, type_: str):
    """Return the graph argument ``name`` as its declared type.

    ``value`` is launch text (``'4'``, ``'[front,wrist]'``, ``"''"``) or already a Python
    value (from il-ros's argparse). Raises ConfigError naming the argument and the type.
    """
    if type_ not in ARG_TYPES:
        raise ConfigError(f'graph argument {name}: unknown type {type_!r}; one of {ARG_TYPES}')
    if isinstance(value, str):
        text = value.strip()
        if type_ == 'str':
            # A YAML-quoted text ('' or '3') is unquoted; anything else is taken as written.
            return yaml.safe_load(text) if text[:1] in ('"', "'") and len(text) > 1 else value
        if type_ == 'str_list' and text == '':
            return []
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f'graph argument {name}={text!r}: must be {_TYPE_WORDS[type_]}, '
                              'not valid YAML') from None
    return _coerce(name, value, type_)


_TYPE_WORDS = {'str': 'text', 'int': 'an integer', 'float': 'a number',
               'bool': 'true or false', 'str_list': 'a list of names, e.g. [front,wrist]'}


def _coerce(name: str, value, type_: str):
    bad = ConfigError(f'graph argument {name}={value!r}: must be {_TYPE_WORDS[type_]}')
    if type_ == 'str':
        return '' if value is None else str(value)
    if type_ == 'bool':
        if not isinstance(value, bool):
            raise bad
        return value
    if type_ == 'int':
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if type_ == 'float':
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if isinstance(value, str):                     # str_list: one bare name is a list of one
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v for v in value):
        raise bad
    return list(value)


@dataclass
class NodePlan:
    """One node as both front ends start it."""

    name: str
    """Node name (``__node``)."""
    executable: str
    """Console script / ``il_ros.ros.<executable>``."""
    params_file: Path | None
    """Its parameter file under config/, or None."""
    params: dict = field(default_factory=dict)
    """Parameter overrides (typed values), applied after the file."""
    remappings: dict[str, str] = field(default_factory=dict)
    """Topic remappings."""
    namespace: str = ''
    """ROS namespace (``/robot1``; '' none): :func:`check_namespace` of the argument."""


def recorder_topics(robot: RobotDescription, cameras, graph: str = 'record') -> list[str]:
    """Topics the recorder stores in ``graph``.

    The robot's selected camera topics, its joint-state topic, its command topic, then the
    package's own topics of the graph (:data:`PACKAGE_TOPICS`), without repeats.
    """
    robot.check_cameras(cameras, 'the recording')
    topics = [robot.camera(c).topic for c in cameras] + [
        robot.joint_states.topic, robot.command.topic, *PACKAGE_TOPICS.get(graph, ())]
    return list(dict.fromkeys(topics))


def expected_rates(robot: RobotDescription, cameras) -> list[str]:
    """``TOPIC=HZ`` of the robot's selected cameras and joint states (the recorder's loss)."""
    robot.check_cameras(cameras, 'the recording')
    return ([f'{robot.camera(c).topic}={robot.camera(c).rate_hz:g}' for c in cameras]
            + [f'{robot.joint_states.topic}={robot.joint_states.rate_hz:g}'])


def checkpoint_facts(checkpoint) -> dict:
    """The cameras and control rate a checkpoint was trained with (its JSON, no torch).

    Raises ConfigError naming the checkpoint when it cannot be read.
    """
    from il_ros.checkpoint_meta import read_checkpoint_meta
    try:
        spec = read_checkpoint_meta(checkpoint)['spec']
        return {'cameras': list(spec['cameras']),
                'control_rate_hz': float(spec['control_rate_hz'])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f'checkpoint {checkpoint}: {e}') from None


def robot_param(name_or_path: str) -> str:
    """The ``robot`` parameter for nodes: a shipped name as is, a file as an absolute path."""
    path = robot_path(name_or_path)
    return name_or_path if path.parent == robots_dir() else str(path.resolve())


def graph_values(graph: GraphConfig, graph_name: str, values: dict) -> dict:
    """Every argument the graph's nodes use, typed; unset ones at their declared default."""
    out = {}
    for arg in graph.graph_args(graph_name):
        spec = graph.args[arg]
        given = values.get(arg)
        out[arg] = parse_arg(arg, spec.default if given is None else given, spec.type)
    return out


def plan_graph(graph_name: str, values: dict, graph: GraphConfig | None = None,
               extra: dict | None = None) -> dict[str, NodePlan]:
    """Return ``{node: NodePlan}`` for every member of ``graph_name`` (see the module doc).

    ``values``: graph argument -> text or Python value (missing or None: the default), and
    :data:`NAMESPACE_ARG` -> the nodes' namespace;
    ``extra``: ``{node: {param: value}}`` applied last (il-ros's own overrides). Raises
    ConfigError naming the argument, robot file or checkpoint that is wrong.
    """
    g = graph or load_graph()
    if graph_name not in g.graphs:
        raise ConfigError(f'no graph {graph_name!r} in config/graph.yaml; have '
                          f'{sorted(g.graphs)}')
    typed = graph_values(g, graph_name, values)
    namespace = check_namespace(values.get(NAMESPACE_ARG))
    members = g.graphs[graph_name]
    ckpt = typed.get('checkpoint') if 'controller' in members else None
    facts = checkpoint_facts(ckpt) if ckpt else None
    robot = None
    if 'robot' in typed:
        robot = load_robot(typed['robot'] or None)
        typed['robot'] = robot_param(typed['robot'] or robot.name)
        if 'cameras' in typed:
            if not typed['cameras']:
                typed['cameras'] = (facts['cameras'] if facts else robot.camera_names[:1])
            robot.check_cameras(typed['cameras'], 'the graph argument cameras')
    plans = {}
    for name in members:
        spec = g.nodes[name]
        params = g.node_params(graph_name, name, typed)
        if facts and name == 'controller':
            params.setdefault('rate_hz', facts['control_rate_hz'])
        if facts and name == 'sim_robot':
            params.setdefault('state_rate_hz', facts['control_rate_hz'])
        if name == 'recorder' and robot is not None and 'cameras' in typed:
            params.setdefault('topics', recorder_topics(robot, typed['cameras'], graph_name))
            params.setdefault('expected_rates', expected_rates(robot, typed['cameras']))
        params.update((extra or {}).get(name) or {})
        if name == 'recorder' and graph_name in OPTIONAL_TOPICS:
            params.setdefault('optional_topics', [t for t in OPTIONAL_TOPICS[graph_name]
                                                  if t in params.get('topics', ())])
        remappings = dict(spec.remappings)
        if namespace and (name == 'sim_robot' or params.get('use_sim_time')):
            remappings.setdefault(keys.TOPIC_CLOCK, namespace + keys.TOPIC_CLOCK)
        plans[name] = NodePlan(name, spec.executable, g.params_path(name), params,
                               remappings, namespace)
    return plans


def find_executable(package: str, executable: str, prefix_path: str | None = None) -> Path | None:
    """``<prefix>/lib/<package>/<executable>`` as ``ros2 run`` finds it, or None.

    The package is looked up as the ament index does: the first prefix of ``prefix_path``
    (default ``$AMENT_PREFIX_PATH``) holding ``share/ament_index/resource_index/packages/
    <package>``; None when no prefix has the package or it has no such executable file.
    """
    import os
    path = os.environ.get('AMENT_PREFIX_PATH', '') if prefix_path is None else prefix_path
    for prefix in filter(None, path.split(os.pathsep)):
        if (Path(prefix) / 'share/ament_index/resource_index/packages' / package).is_file():
            exe = Path(prefix) / 'lib' / package / executable
            return exe if exe.is_file() and os.access(exe, os.X_OK) else None
    return None


def joystick_missing_message(namespace: str = '') -> str:
    """What the launch says when ``teleop_mode:=joy`` finds no joystick driver installed.

    ``namespace``: the graph's (the joystick topic is named as teleop resolves it there).
    """
    topic = keys.resolve_name(JOY_TOPIC, namespace or '/')
    return (f'teleop_mode:=joy reads sensor_msgs/Joy on {topic}, and no joystick driver '
            f'is installed (no {JOY_EXECUTABLE} of package {JOY_PACKAGE!r} in the ament '
            f'index): install it (apt install ros-$ROS_DISTRO-{JOY_PACKAGE}) or run another '
            f'driver that publishes {topic}; until then no takeover is possible')
