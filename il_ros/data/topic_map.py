"""Which topic plays which role in a bag, and how bags are converted (validated config).

The defaults match the package's own node graph, so bags recorded by ``il-ros record`` need
no topic map. For anyone else's robot, write a YAML like::

    cameras: {front: /my_robot/cam0/image_raw/compressed}
    joint_states: {topic: /my_robot/joint_states, joints: [shoulder, elbow, wrist]}
    action: {topic: /my_robot/arm_controller/commands, type: float64_multi_array}
    control_source: /il/control_source

A relative name (no leading '/', as the robot descriptions and the package defaults write
them) matches the bag's topic of that name in the namespace the bag was recorded in
(:meth:`TopicMap.resolved`): ``joint_states`` is ``/joint_states`` in a bag recorded without
a namespace and ``/robot1/joint_states`` in one the recorder wrote in ``/robot1``. An
absolute name matches only itself.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from il_ros import keys
from il_ros.config import ConfigError, from_dict, load_yaml

ACTION_TYPES = ('float64_multi_array', 'joint_state', 'joint_trajectory', 'twist_stamped')


@dataclass
class JointStatesRole:
    """The proprioception stream."""

    topic: str = keys.TOPIC_JOINT_STATES
    """sensor_msgs/JointState topic."""
    joints: list[str] = field(default_factory=list)
    """Joint names to keep, in this order; empty: all, in the order of the first message."""


@dataclass
class ActionRole:
    """The action label stream."""

    topic: str = keys.TOPIC_COMMAND
    """Command topic. Under DART point it at the clean label, ``il/teleop/command``."""
    type: str = 'float64_multi_array'
    """Message layout: float64_multi_array, joint_state (positions), joint_trajectory (first
    point's positions) or twist_stamped (linear xyz, angular xyz). A bag names its topics'
    message types, and that wins; this is for a type the bag does not name."""
    joints: list[str] = field(default_factory=list)
    """For joint_state / joint_trajectory: joint names in action order (empty: as sent)."""

    def __post_init__(self):
        if self.type not in ACTION_TYPES:
            raise ValueError(f'action.type {self.type!r} is not one of {ACTION_TYPES}')


@dataclass
class TopicMap:
    """Roles of the topics in a bag."""

    cameras: dict[str, str] = field(
        default_factory=lambda: {'front': keys.camera_topic('front')})
    """Camera name -> sensor_msgs/Image or CompressedImage topic."""
    joint_states: JointStatesRole = field(default_factory=JointStatesRole)
    """Proprioception."""
    action: ActionRole = field(default_factory=ActionRole)
    """Action labels."""
    control_source: str | None = keys.TOPIC_CONTROL_SOURCE
    """std_msgs/String topic naming who controlled the robot (demo/policy/intervention/hold).
    A bag without it is all ``demo``."""

    def __post_init__(self):
        if isinstance(self.joint_states, dict):
            self.joint_states = from_dict(JointStatesRole, self.joint_states, 'joint_states')
        if isinstance(self.action, dict):
            self.action = from_dict(ActionRole, self.action, 'action')
        if not self.cameras:
            raise ValueError('cameras: at least one camera topic is needed')
        for name in self.cameras:
            if not name.isidentifier():
                raise ValueError(f'camera name {name!r} must be an identifier (it becomes '
                                 f'the dataset key {keys.image_key(name)!r})')

    @classmethod
    def from_robot(cls, robot, cameras=None, action_topic: str | None = None) -> TopicMap:
        """The topic map of a robot description's topics (il_ros.robot.RobotDescription).

        ``cameras``: the cameras to convert (default: all of the robot's); ``action_topic``:
        the action label topic instead of the robot's command topic (under DART, the clean
        label ``il/teleop/command``; its message type is read from the bag).
        """
        cams = list(cameras) if cameras else robot.camera_names
        robot.check_cameras(cams, 'the conversion')
        return cls(cameras={c: robot.camera(c).topic for c in cams},
                   joint_states=JointStatesRole(robot.joint_states.topic, robot.joint_names),
                   action=ActionRole(action_topic or robot.command.topic, robot.command.type,
                                     robot.action_names))

    def resolved(self, namespace: str = '/') -> TopicMap:
        """This map with relative names resolved in ``namespace`` (absolute ones unchanged)."""
        def r(name):
            return keys.resolve_name(name, namespace)
        return TopicMap(
            cameras={c: r(t) for c, t in self.cameras.items()},
            joint_states=JointStatesRole(r(self.joint_states.topic),
                                         list(self.joint_states.joints)),
            action=ActionRole(r(self.action.topic), self.action.type, list(self.action.joints)),
            control_source=r(self.control_source) if self.control_source else None)

    def required_topics(self) -> list[str]:
        """Topics every episode must contain."""
        return [*self.cameras.values(), self.joint_states.topic, self.action.topic]

    def to_dict(self) -> dict:
        """Return the config as a JSON-able dict."""
        return asdict(self)


@dataclass
class ConvertConfig:
    """How bags become dataset episodes."""

    topics: TopicMap = field(default_factory=TopicMap)
    """Topic roles."""
    robot: str = ''
    """Robot description (name in config/robots or a YAML path) the bags were recorded on:
    every episode stores it with its action names, and the checkpoints trained on the
    dataset carry it. Empty: none is stored (joint names come from the bags)."""
    rate_hz: float = 20.0
    """Control rate the episode is resampled to."""
    image_size: tuple[int, int] = (84, 84)
    """(H, W) of stored images; others are center-cropped to the aspect ratio, then resized."""
    pre_intervention_frames: int = 10
    """Policy frames right before a takeover are labelled pre_intervention."""
    stale_warn: float = 2.0
    """A stream whose newest sample is older than this many periods at a tick is reported."""
    stale_reject: float = 4.0
    """... and older than this many periods rejects the episode."""
    stale_action_hold: float = 0.0
    """0 (the default): the action stream is checked like the others (``stale_reject``).
    > 0: a tick whose newest action is older than this many periods is labelled ``hold``
    (weight 0 in training) instead of rejecting the episode, and the rest of the episode is
    kept. For deployed episodes (``il-ros dagger``), where a starved controller or recorder
    leaves a short gap in the command stream in the middle of an intervention."""
    max_hold_fraction: float = 0.5
    """With ``stale_action_hold``: the episode is still rejected when more than this
    fraction of its frames would be such stale-action holds (the recording is mostly
    broken)."""
    min_frames: int = 10
    """Shorter episodes are rejected."""
    stamp_tolerance_s: float = 0.5
    """Header stamps further than this from the receive time (median) are implausible: the
    stream is then timed by receive time."""
    action_lookahead: float = 0.5
    """The action of tick t is the newest command received by t + lookahead * period: the
    command answering the observation of tick t, sent within half a period of it."""
    namespace: str = ''
    """Namespace the relative topic names of ``topics`` resolve in (``/robot1``). Empty (the
    default): each bag's own, the namespace of the recorder that wrote it (its episode
    metadata, :func:`il_ros.data.episodes.recorded_namespace`), or ``/`` for a bag without
    such metadata (e.g. one from ``ros2 bag record``)."""
    keep_incomplete: bool = False
    """False (the default): episodes the recorder marked ``incomplete`` (shut down
    mid-episode, a topic missing, a write error) are skipped with a warning. True: they are
    converted, and labelled so in the report and the episode's dataset metadata."""

    def __post_init__(self):
        if isinstance(self.topics, dict):
            self.topics = from_dict(TopicMap, self.topics, 'topics')
        self.image_size = tuple(int(x) for x in self.image_size)
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f'image_size must be (H, W) >= 8 px, got {self.image_size}')
        if not self.rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {self.rate_hz}')
        if not 1.0 <= self.stale_warn <= self.stale_reject:
            raise ValueError(f'need 1 <= stale_warn <= stale_reject, got {self.stale_warn}, '
                             f'{self.stale_reject}')
        if self.stale_action_hold and not self.stale_warn <= self.stale_action_hold:
            raise ValueError(f'need stale_action_hold 0 (off) or >= stale_warn '
                             f'({self.stale_warn}), got {self.stale_action_hold}')
        if not 0.0 < self.max_hold_fraction <= 1.0:
            raise ValueError(f'max_hold_fraction must be in (0, 1], got '
                             f'{self.max_hold_fraction}')
        if self.robot:
            from il_ros.robot import load_robot
            load_robot(self.robot)                 # a bad robot fails now, naming its file
        self.namespace = keys.normalize_namespace(self.namespace)
        if not 0.0 <= self.action_lookahead < 1.0:
            raise ValueError(f'action_lookahead must be in [0, 1), got {self.action_lookahead}')


def load_topic_map(path: str | Path | None) -> TopicMap:
    """TopicMap from YAML (None: the package defaults), with errors naming the file."""
    if path is None:
        return TopicMap()
    try:
        return from_dict(TopicMap, load_yaml(path) or {}, str(path))
    except (TypeError, ValueError) as e:
        raise ConfigError(f'{path}: {e}') from None
