"""The robot description: one YAML per robot, ``config/robots/<name>.yaml``, one dataclass.

Every robot fact the package needs lives here, and every part takes it from here: the
recorder's topics, the conversion topic map, the controller (joint and action names, limits,
step limits, command interface, cameras), teleop, the supervisor, ``sim_robot``, the launch
files and ``il-ros`` (``robot:=NAME`` / ``--robot NAME``). A dataset stores the description
it was converted with, and a checkpoint carries it. ROS-free.

Units: joint positions in rad (revolute) or m (prismatic), step limits per control tick.
See docs/robots.md for the fields and how to write one for your arm.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import math
from pathlib import Path

from il_ros.config import ConfigError, from_dict, load_yaml

DEFAULT_ROBOT = 'sim_arm'
"""The package's own 5-joint sim arm."""
COMMAND_TYPES = ('float64_multi_array', 'joint_trajectory', 'joint_state')
"""Command interfaces with an adapter (il_ros/ros/command_adapters.py)."""
IMAGE_ENCODINGS = ('rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8')
"""``sensor_msgs/Image`` encodings the image pipeline decodes (il_ros/images.py)."""
COMPRESSED_FORMATS = ('jpeg', 'png')
"""``sensor_msgs/CompressedImage`` formats it decodes."""


@dataclass
class Action:
    """One value of the command vector."""

    name: str
    """Joint name (or ``gripper``): the name the command interface uses."""
    low: float
    """Lower limit; the safety filter clamps to it."""
    high: float
    """Upper limit."""
    max_step: float
    """Largest change per control tick (the safety filter's step limit); ``.inf`` only with
    the controller's ``allow_unlimited_step``."""

    def __post_init__(self):
        self.low, self.high = float(self.low), float(self.high)
        self.max_step = float(self.max_step)
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f'need finite low < high, got low {self.low}, high {self.high}')
        if not self.max_step > 0:
            raise ValueError(f'max_step must be > 0, got {self.max_step}')


@dataclass
class Gripper:
    """A gripper command in [0, 1] (0 open, 1 closed) driving finger joints."""

    action: str
    """Name of the gripper's action (one of ``actions``)."""
    joints: list[str]
    """Finger joints it moves (observed in the joint states)."""
    open: float
    """Finger joint position at command 0 (fully open)."""
    closed: float
    """Finger joint position at command 1 (closed on nothing)."""

    def __post_init__(self):
        self.joints = [str(j) for j in self.joints]
        self.open, self.closed = float(self.open), float(self.closed)
        if not self.joints:
            raise ValueError('joints: at least one finger joint is needed')

    def command(self, finger_position: float) -> float:
        """The command in [0, 1] that puts a finger joint at ``finger_position``."""
        span = self.closed - self.open
        return float(min(1.0, max(0.0, (finger_position - self.open) / span)))

    def position(self, command: float) -> float:
        """The finger joint position of ``command`` in [0, 1]."""
        return self.open + (self.closed - self.open) * float(command)


@dataclass
class Camera:
    """One camera as the robot publishes it."""

    name: str
    """Camera name; the dataset key is ``image/<name>``."""
    topic: str
    """Its topic."""
    type: str = 'Image'
    """``Image`` (sensor_msgs/Image) or ``CompressedImage``."""
    encoding: str = 'rgb8'
    """For ``Image``: one of rgb8, bgr8, mono8, rgba8, bgra8. For ``CompressedImage``: jpeg
    or png."""
    width: int = 84
    """Native width, px."""
    height: int = 84
    """Native height, px."""
    rate_hz: float = 20.0
    """Publishing rate, Hz."""

    def __post_init__(self):
        if not str(self.name).isidentifier():
            raise ValueError(f'name {self.name!r} must be an identifier (it becomes the '
                             f'dataset key image/{self.name})')
        if self.type == 'Image':
            ok = IMAGE_ENCODINGS
        elif self.type == 'CompressedImage':
            ok = COMPRESSED_FORMATS
        else:
            raise ValueError(f'type {self.type!r} is not Image or CompressedImage')
        if self.encoding not in ok:
            raise ValueError(f'encoding {self.encoding!r} is not one of {ok} for {self.type}')
        self.width, self.height, self.rate_hz = int(self.width), int(self.height), \
            float(self.rate_hz)
        if min(self.width, self.height) < 8 or not self.rate_hz > 0:
            raise ValueError(f'need width, height >= 8 px and rate_hz > 0, got '
                             f'{self.width}x{self.height} at {self.rate_hz} Hz')

    @property
    def compressed(self) -> bool:
        """Tell whether the camera publishes ``sensor_msgs/CompressedImage``."""
        return self.type == 'CompressedImage'


@dataclass
class JointStates:
    """The proprioception stream."""

    joints: list[str]
    """Observed joints the policy reads, in the policy's order. The robot may publish them in
    any order and with other joints besides."""
    topic: str = 'joint_states'
    """``sensor_msgs/JointState`` topic."""
    rate_hz: float = 50.0
    """Publishing rate, Hz."""

    def __post_init__(self):
        self.joints = [str(j) for j in self.joints]
        if not self.joints:
            raise ValueError('joints: at least one observed joint is needed')
        if not float(self.rate_hz) > 0:
            raise ValueError(f'rate_hz must be > 0, got {self.rate_hz}')
        self.rate_hz = float(self.rate_hz)


@dataclass
class Command:
    """How the robot takes commands."""

    type: str = 'float64_multi_array'
    """``float64_multi_array`` (ros2_control forward command controller layout),
    ``joint_trajectory`` (joint_trajectory_controller) or ``joint_state``."""
    topic: str = 'il/command'
    """Command topic."""

    def __post_init__(self):
        if self.type not in COMMAND_TYPES:
            why = (' (a joint-position policy gives no Cartesian velocity without the robot\'s '
                   'kinematics)' if self.type == 'twist_stamped' else '')
            raise ValueError(f'type {self.type!r} has no command adapter{why}; supported: '
                             f'{", ".join(COMMAND_TYPES)}')


@dataclass
class SimInfo:
    """Where the robot lives in the MuJoCo sim (il_ros/sim); absent for a real robot."""

    scenes: dict[str, str] = field(default_factory=dict)
    """Task name -> MJCF scene file under sim/."""
    ee_site: str = 'ee'
    """End-effector site (the IK target): between the fingertip pads."""
    home: list[float] = field(default_factory=list)
    """Arm joint positions of a comfortable hand-down posture (the IK seed); one per
    non-gripper action."""
    published_joints: list[str] = field(default_factory=list)
    """Names and order ``sim_robot`` publishes on the joint-state topic (may include joints
    the policy does not read); empty: ``joint_states.joints``."""


@dataclass
class RobotDescription:
    """One robot (see the module docstring and docs/robots.md)."""

    name: str
    """Robot name; ``config/robots/<name>.yaml``."""
    joint_states: JointStates
    """Observed joints and their topic."""
    actions: list[Action]
    """The command vector, in order, with limits."""
    command: Command = field(default_factory=Command)
    """Command interface."""
    cameras: list[Camera] = field(default_factory=list)
    """Every camera the robot has (a policy uses a subset)."""
    gripper: Gripper | None = None
    """The gripper action, if any."""
    control_rate_hz: float = 20.0
    """Default control rate, Hz (a checkpoint's own rate wins at deploy)."""
    description: str = ''
    """One line for people."""
    sim: SimInfo | None = None
    """The robot's sim scenes, for sim robots only."""
    source: str = ''
    """File it was loaded from (not part of the YAML)."""

    def __post_init__(self):
        if not self.actions:
            raise ValueError('actions: at least one action is needed')
        names = self.action_names
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f'actions: duplicate names {dup}')
        cams = [c.name for c in self.cameras]
        dup = sorted({n for n in cams if cams.count(n) > 1})
        if dup:
            raise ValueError(f'cameras: duplicate names {dup}')
        if self.gripper is not None:
            if self.gripper.action not in names:
                raise ValueError(f'gripper.action {self.gripper.action!r} is not one of the '
                                 f'actions {names}')
            g = self.action(self.gripper.action)
            if (g.low, g.high) != (0.0, 1.0):
                raise ValueError(f'actions[{names.index(g.name)}] ({g.name}): a gripper '
                                 f'command spans low 0 .. high 1, got {g.low} .. {g.high}')
        self.control_rate_hz = float(self.control_rate_hz)
        if not self.control_rate_hz > 0:
            raise ValueError(f'control_rate_hz must be > 0, got {self.control_rate_hz}')
        if self.sim is not None and self.sim.home and len(self.sim.home) != len(
                self.arm_actions):
            raise ValueError(f'sim.home has {len(self.sim.home)} values for '
                             f'{len(self.arm_actions)} arm actions {self.arm_actions}')

    # ---- derived facts -----------------------------------------------------------------
    @property
    def action_names(self) -> list[str]:
        """Names of the command vector, in order."""
        return [a.name for a in self.actions]

    @property
    def arm_actions(self) -> list[str]:
        """Action names without the gripper's."""
        g = self.gripper.action if self.gripper else None
        return [a.name for a in self.actions if a.name != g]

    @property
    def joint_names(self) -> list[str]:
        """Observed joint names, in the policy's order."""
        return list(self.joint_states.joints)

    @property
    def action_low(self) -> list[float]:
        """Lower limit of each action."""
        return [a.low for a in self.actions]

    @property
    def action_high(self) -> list[float]:
        """Upper limit of each action."""
        return [a.high for a in self.actions]

    @property
    def max_step(self) -> list[float]:
        """Step limit per tick of each action."""
        return [a.max_step for a in self.actions]

    @property
    def camera_names(self) -> list[str]:
        """Names of all cameras."""
        return [c.name for c in self.cameras]

    def action(self, name: str) -> Action:
        """Return the action called ``name`` (KeyError naming the robot)."""
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f'robot {self.name!r} has no action {name!r}; it has {self.action_names}')

    def camera(self, name: str) -> Camera:
        """Return the camera called ``name`` (KeyError naming the robot's file)."""
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f'{self.source or self.name}: no camera {name!r}; the robot has '
                       f'{self.camera_names}')

    def check_cameras(self, names, what: str = 'the checkpoint') -> None:
        """Raise ConfigError naming the file when ``names`` are not all cameras of the robot."""
        missing = [n for n in names if n not in self.camera_names]
        if missing:
            raise ConfigError(f'{self.source or self.name}: cameras: {what} needs camera(s) '
                              f'{missing}, the robot has {self.camera_names}')

    def to_dict(self) -> dict:
        """JSON-able form (what a dataset and a checkpoint store); ``source`` left out."""
        d = dataclasses.asdict(self)
        d.pop('source')
        return d

    @classmethod
    def from_dict(cls, data: dict, where: str = 'robot') -> RobotDescription:
        """Build and validate from a dict; errors name ``where`` and the field."""
        return _build(data, where)


def _sub(cls, data, where: str):
    """``config.from_dict`` with a mapping check and required fields named when missing."""
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping, got {type(data).__name__}')
    fields = dataclasses.fields(cls)
    missing = [f.name for f in fields if f.name not in data
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing and set(data) <= {f.name for f in fields}:   # unknown keys: from_dict says so
        raise ConfigError(f'{where}: missing {", ".join(missing)}')
    return from_dict(cls, data, where)


def _build(data, where: str) -> RobotDescription:
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: a robot description is a mapping, got '
                          f'{type(data).__name__}')
    d = dict(data)
    d.pop('source', None)
    if 'joint_states' in d:
        d['joint_states'] = _sub(JointStates, d['joint_states'], f'{where}: joint_states')
    if 'actions' in d:
        acts = d['actions']
        if not isinstance(acts, list):
            raise ConfigError(f'{where}: actions: expected a list of actions')
        d['actions'] = [_sub(Action, a, f'{where}: actions[{i}]'
                             + (f' ({a["name"]})' if isinstance(a, dict) and 'name' in a
                                else '')) for i, a in enumerate(acts)]
    if 'command' in d:
        d['command'] = _sub(Command, d['command'], f'{where}: command')
    if 'cameras' in d:
        cams = d['cameras'] or []
        d['cameras'] = [_sub(Camera, c, f'{where}: cameras[{i}]'
                             + (f' ({c["name"]})' if isinstance(c, dict) and 'name' in c
                                else '')) for i, c in enumerate(cams)]
    if d.get('gripper') is not None:
        d['gripper'] = _sub(Gripper, d['gripper'], f'{where}: gripper')
    if d.get('sim') is not None:
        d['sim'] = _sub(SimInfo, d['sim'], f'{where}: sim')
    robot = _sub(RobotDescription, d, where)
    robot.source = where
    return robot


def robots_dir() -> Path:
    """The folder of the package's robot descriptions (config/robots)."""
    from il_ros.resources import share_dir
    return share_dir() / 'config' / 'robots'


def robot_names() -> list[str]:
    """Names of the robot descriptions shipped in config/robots."""
    return sorted(p.stem for p in robots_dir().glob('*.yaml'))


def robot_path(name_or_path: str | Path) -> Path:
    """The YAML of a robot: a file path as given, else ``config/robots/<name>.yaml``."""
    s = str(name_or_path)
    if s.endswith(('.yaml', '.yml')) or '/' in s:
        return Path(s).expanduser()
    p = robots_dir() / f'{s}.yaml'
    if not p.exists():
        raise ConfigError(f'unknown robot {s!r}: no {p}; known robots: '
                          f'{", ".join(robot_names())} (or give a path to a robot YAML)')
    return p


def load_robot(name_or_path: str | Path | None = None) -> RobotDescription:
    """Load and validate a robot description (None or '': the default sim arm)."""
    path = robot_path(name_or_path or DEFAULT_ROBOT)
    robot = _build(load_yaml(path), str(path))
    if path.stem != robot.name and path.parent == robots_dir():
        raise ConfigError(f'{path}: name {robot.name!r} differs from the file name '
                          f'{path.stem!r}')
    return robot
