"""The controller node's parameters: one table, declared, validated and turned into settings.

:data:`PARAMS` is the single source: the node declares every parameter from it (with its
description and range, so ``ros2 param describe`` shows them), builds the
:class:`~il_ros.control.loop_types.LoopConfig` from the rows that are loop settings, and
docs/controller.md and config/controller.yaml list the same names and defaults
(test/test_node_parameters.py checks that). A bad value stops the node at start-up with
one line and exit code 2 (:class:`~il_ros.ros.node_utils.ParameterError`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rclpy.node import Node
from rcl_interfaces.msg import ParameterDescriptor

from il_ros import keys
from il_ros.control.chunk_guard import CHUNK_POLICIES
from il_ros.control.loop_types import LoopConfig
from il_ros.control.safety import check_step_settings, SettingError
from il_ros.config import ConfigError
from il_ros.robot import load_robot
from il_ros.ros.lifecycle import AUTOSTART
from il_ros.ros.node_utils import declare, ParameterError

@dataclass(frozen=True)
class Param:
    """One node parameter."""

    name: str
    default: object
    description: str
    limits: dict = field(default_factory=dict)
    """``min``, ``max``, ``min_exclusive``, ``choices`` (node_utils.check_value)."""
    runtime: bool = False
    """Changeable while the node runs (else read at start-up; a set is rejected)."""
    array_type: str | None = None
    """Element type of an empty-list default."""
    loop: bool = False
    """A LoopConfig setting of the same name."""


P = Param
PARAMS: tuple[Param, ...] = (
    P('checkpoint', '', 'Policy checkpoint folder. Empty: no policy (HOLD). Set at run time '
      'to hot-load (refused, with the reason, when it does not fit the robot); always names '
      'the running checkpoint.', runtime=True),
    P('autostart', True, AUTOSTART),
    P('use_ema', True, 'Load the EMA weights when the checkpoint has them.'),
    P('robot', 'sim_arm', 'Robot description: a name in config/robots or a path to a robot '
      'YAML (docs/robots.md). Joint and action names, limits, step limits, the command '
      'interface, the joint-state topic and the cameras come from it.'),
    P('rate_hz', 0.0, 'Control rate (Hz); 0: the robot\'s control_rate_hz. A checkpoint '
      'trained at another rate is refused.', {'min': 0.0}, loop=True),
    P('enabled', False, 'Start enabled. Disabled: nothing is published on the command topic. '
      'Also ~/enable (SetBool).', runtime=True, loop=True),
    P('max_step', [], 'Largest change per tick of each command value: [] = the robot '
      'description\'s max_step; one value = every command value; or one per command value. '
      'Each > 0, or .inf with allow_unlimited_step. Set at run time to tighten.',
      runtime=True, array_type='double', loop=True),
    P('allow_unlimited_step', False, 'Accept .inf step limits (no step limit; only the joint '
      'limits clamp); logged as a warning and listed in ~/status.', loop=True),
    P('watchdog_periods', 3.0, 'Observations older than this many periods (a stream whose '
      'header stamp stopped advancing counts as old) -> HOLD.', {'min': 1.0}, loop=True),
    P('fault_periods', 20.0, 'Observations older than this many periods while enabled -> '
      'latched fault (HOLD until ~/reset); >= watchdog_periods.', {'min': 1.0}, loop=True),
    P('takeover_timeout_s', 0.5, 'Heartbeats that stop this long without a hand-back (Bool '
      'false) lapse into a latched HOLD (until ~/enable or ~/reset).',
      {'min': 0.0, 'min_exclusive': True}, loop=True),
    P('human_command_timeout_s', 0.25, 'A human command older than this is never executed '
      '(HOLD while the human holds control).', {'min': 0.0, 'min_exclusive': True}, loop=True),
    P('ensemble_k', 0.0, 'Temporal ensembling of overlapping chunks, weights exp(-k * age); '
      '0: off (a newer chunk replaces the older one).', {'min': 0.0}, loop=True),
    P('plan_ahead', 0, 'Plan a chunk when fewer than this many actions are queued; 0: auto '
      '(the worst of the last 20 plans in ticks, + 2).', {'min': 0}, loop=True),
    P('max_wait_fraction', 0.6, 'A tick with no queued action waits at most this fraction '
      'of a period for the worker, then HOLDs.', {'min': 0.0, 'max': 1.0}, loop=True),
    P('chunk_policy', 'clamp', 'A planned chunk that passes a limit, jumps from the current '
      'command or moves too fast: clamp it, truncate it before the first bad action, or '
      'reject it (HOLD).', {'choices': CHUNK_POLICIES}, loop=True),
    P('chunk_max_jump', [], 'Largest distance of a chunk\'s first action from the last '
      'command sent (else the measured position): [] = 5 step limits; one value = all; or '
      'one per command value; > 0.', array_type='double', loop=True),
    P('chunk_max_velocity', [], 'Largest speed (units/s) between consecutive actions of a '
      'chunk: [] = 5 step limits per period; one value = all; or one per command value; > 0.',
      array_type='double', loop=True),
    P('max_invalid_chunks', 3, 'This many rejected chunks (or inference errors) in a row '
      'latch a fault (HOLD until ~/reset).', {'min': 1}, loop=True),
    P('cameras', [], 'Cameras the policy reads; empty: the checkpoint\'s.',
      array_type='string'),
    P('intervention_topic', keys.TOPIC_INTERVENTION, 'Deadman heartbeats (Bool: true holds '
      'human control, false hands it back at once).'),
    P('human_command_topic', keys.TOPIC_TELEOP_COMMAND, 'Human command (Float64MultiArray, '
      'action order), used while human control holds.'),
    P('control_source_topic', keys.TOPIC_CONTROL_SOURCE, 'Control source (policy, '
      'intervention or hold), every tick.'),
    P('checkpoint_topic', 'trainer/checkpoint', 'Latched String topic of checkpoint paths '
      'to hot-load (the trainer\'s ~/checkpoint); empty: none.'),
    P('status_rate_hz', 1.0, 'Rate of ~/status (String, JSON).',
      {'min': 0.0, 'min_exclusive': True}),
    P('stats_file', '', 'On shutdown, write the telemetry summary and every tick\'s timing '
      '(JSON) here (bench/controller.py); empty: do not.'),
    P('torch_threads', 1, 'torch CPU threads (1: best for batch-1 control on a shared '
      'machine).', {'min': 1}),
    P('device', 'cpu', 'Where the policy runs: cpu, cuda, cuda:N or auto (the GPU when '
      'PyTorch sees one). Checkpoints load on the CPU and move there; a device this machine '
      'lacks stops the node at start-up.'),
    P('nice', 0, 'Change the CPU priority by this much (os.nice) at start-up; < 0 puts the '
      'loop ahead of training jobs (needs CAP_SYS_NICE or root).', {'min': -20, 'max': 19}),
)
BY_NAME = {p.name: p for p in PARAMS}
RUNTIME = tuple(p.name for p in PARAMS if p.runtime) + ('use_sim_time',)
"""Parameters that may change while the node runs; the others are read at start-up."""
_ROBOT = ('removed: the robot description holds it (the robot parameter; '
          'config/robots/<name>.yaml, docs/robots.md)')
REMOVED = {
    **{name: _ROBOT for name in ('joint_names', 'action_names', 'joint_lower', 'joint_upper',
                                 'command_adapter', 'command_topic', 'camera_topics',
                                 'joint_states_topic')},
    'max_step_other': 'removed: give max_step one value per command value (the default '
                      '[] is the robot description\'s max_step)',
    'max_step_per_value': 'removed: max_step takes one value per command value',
}
"""Parameters of earlier versions that are refused (not silently ignored) when set."""


def declare_all(node: Node) -> dict:
    """Declare every parameter of :data:`PARAMS` and return their values (checked).

    Raises ParameterError (one line, exit 2) for a value out of range, a removed parameter
    that is set, or settings that contradict each other.
    """
    for name, why in REMOVED.items():
        v = node.declare_parameter(name, None, ParameterDescriptor(
            description=f'({why})', dynamic_typing=True, read_only=True)).value
        if v is not None:
            raise ParameterError(f'parameter {name}={v!r}: {why}')
    values = {p.name: declare(node, p.name, p.default, p.description, read_only=not p.runtime,
                              array_type=p.array_type, **p.limits) for p in PARAMS}
    try:
        values['robot_description'] = robot = load_robot(values['robot'])
    except ConfigError as e:
        raise ParameterError(f'parameter robot={values["robot"]!r}: {e}') from None
    if not values['rate_hz']:
        values['rate_hz'] = robot.control_rate_hz
    check(values)
    return values


def check(values: dict) -> bool:
    """Refuse settings that contradict each other or the robot, or a missing device.

    Each raises ParameterError naming the parameter.

    Returns True when a step limit is ``inf`` (no step limit; the node warns).
    """
    robot = values['robot_description']
    try:
        robot.check_cameras(values['cameras'], 'the cameras parameter')
    except ConfigError as e:
        raise ParameterError(f'parameter cameras={list(values["cameras"])!r}: {e}') from None
    try:
        unlimited = check_step_settings(values['max_step'], values['allow_unlimited_step'],
                                        robot.action_names)
        loop_config(values)
    except SettingError as e:
        raise ParameterError(f'parameter {e}') from None
    # last: it imports PyTorch (3 s here), which a bad setting above need not wait for
    from il_ros.training.device import resolve_device
    try:
        resolve_device(values['device'])
    except ValueError as e:
        raise ParameterError(f'parameter device={values["device"]!r}: {e}') from None
    return unlimited


def loop_config(values: dict, **override) -> LoopConfig:
    """The LoopConfig of these parameter values (raises SettingError naming a bad one)."""
    kw = {p.name: values[p.name] for p in PARAMS if p.loop}
    kw.update(override)
    for name in ('max_step', 'chunk_max_jump', 'chunk_max_velocity'):
        kw[name] = [float(v) for v in kw[name]]
    return LoopConfig(**kw)
