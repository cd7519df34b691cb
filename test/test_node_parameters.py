"""Node parameters: bad start-up values, descriptors, and changes while a node runs.

Start-up (issue #14): every value in CASES once gave a traceback (often a second
AttributeError from destroy_node after the real error), a ZeroDivisionError, or started a
node whose safety limit was off (max_step 0, negative or NaN). Each runs as a real process;
the check is exit code 2, one line on stderr naming the parameter and its value, and no
traceback.

Descriptors and run time (issue #17): every numeric parameter of every node carries its
range (or a documented reason why it has none), every parameter the node reads only at
start-up is read-only, and a set of a bad value on a running node is refused with a reason
naming the parameter and what is allowed, while the node keeps running.
"""
from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys

import pytest

rclpy = pytest.importorskip('rclpy')
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402

from conftest import call_service, REPO, wait_for  # noqa: E402
from il_ros.ros.node_utils import declare, ParameterError  # noqa: E402

CASES = [
    # (node, ros args, text the line must contain)
    ('controller', ['rate_hz:=-5.0'], 'rate_hz=-5.0'),
    ('controller', ['rate_hz:=-5'], 'rate_hz=-5'),
    ('controller', ['status_rate_hz:=0.0'], 'status_rate_hz=0.0'),
    ('controller', ['takeover_timeout_s:=0.0'], 'takeover_timeout_s=0.0'),
    ('controller', ['human_command_timeout_s:=-1.0'], 'human_command_timeout_s=-1.0'),
    ('controller', ['watchdog_periods:=-1.0'], 'watchdog_periods=-1.0'),
    ('controller', ['joint_lower:=[0.0,1.0]'], 'removed: the robot description holds it'),
    ('controller', ['robot:=nope'], "robot='nope': unknown robot 'nope'"),
    ('controller', ['cameras:=[front,nope]'], "the robot has ['front', 'wrist']"),
    ('controller', ['max_step:=[0.0]'], 'max_step=[0.0]'),
    ('controller', ['max_step:=[-0.1]'], 'max_step=[-0.1]'),
    ('controller', ['max_step:=[.nan]'], 'max_step=[nan]'),
    ('controller', ['max_step:=[.inf]'], 'allow_unlimited_step'),
    ('controller', ['max_step:=0.1'], 'a list of floating-point numbers'),
    ('controller', ['max_step:=[0.1,0.2]'], 'one per command value'),
    ('controller', ['max_step_other:=0.5'], 'removed'),
    ('controller', ['max_step_per_value:=[0.1,0.1]'], 'removed'),
    ('controller', ['chunk_policy:=nope'], "chunk_policy='nope'"),
    ('controller', ['chunk_max_jump:=[0.0]'], 'chunk_max_jump=[0.0]'),
    ('controller', ['chunk_max_velocity:=[-1.0]'], 'chunk_max_velocity=[-1.0]'),
    ('controller', ['max_invalid_chunks:=0'], 'max_invalid_chunks=0'),
    ('controller', ['chunk_max_jump:=[0.1,0.2]'], 'chunk_max_jump=[0.1, 0.2]'),
    ('controller', ['fault_periods:=2.0'], 'fault_periods=2.0'),
    ('controller', ['command_adapter:=twist_stamped'], 'config/robots/<name>.yaml'),
    ('controller', ['device:=gpu'], "device='gpu': device must be auto, cpu, cuda or cuda:N"),
    ('sim_robot', ['real_time_factor:=-1.0'], 'real_time_factor=-1.0'),
    ('sim_robot', ['task:=nope'], "task='nope'"),
    ('sim_robot', ['cameras:=[nope]'], "cameras=['nope']"),
    ('teleop', ['mode:=nope'], "mode='nope'"),
    ('teleop', ['task:=nope'], "task='nope'"),
    ('teleop', ['mode:=joy', 'rate_hz:=0.0'], 'rate_hz=0.0'),
    ('teleop', ['mode:=joy', 'deadman_timeout_s:=-1.0'], 'deadman_timeout_s=-1.0'),
    ('supervisor', ['task:=nope'], "task='nope'"),
    ('supervisor', ['status_rate_hz:=0.0'], 'status_rate_hz=0.0'),
    ('supervisor', ['trigger_steps:=0'], 'trigger_steps=0'),
]


def exit_2_line(node: str, params: list[str]) -> str:
    """Return the one stderr line of ``il_ros.ros.<node>`` started with ``params``.

    Asserts exit code 2, no traceback, and one line starting ``<node>: parameter ``.
    """
    args = [sys.executable, '-m', f'il_ros.ros.{node}', '--ros-args']
    for prm in params:
        args += ['-p', prm]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=str(REPO),
                         stdin=subprocess.DEVNULL, env={**os.environ})
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert 'Traceback' not in res.stderr + res.stdout, res.stderr
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f'{node}: parameter '), lines[0]
    return lines[0]


@pytest.mark.parametrize('node,params,text', CASES,
                         ids=[f'{n}-{" ".join(p)}' for n, p, _ in CASES])
def test_bad_parameter_exits_2_with_one_line(node, params, text):
    line = exit_2_line(node, params)
    assert text in line and params[-1].split(':=')[0] in line, line


def _yaml_text(value) -> str:
    """A default as config/controller.yaml and docs/controller.md write it."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return '[]' if not value else repr(value)
    return "''" if value == '' else str(value)


def test_controller_parameter_table_matches_the_docs_and_the_yaml():
    """Every parameter of the node's table is in docs/controller.md and the YAML, by default."""
    import yaml

    from il_ros.ros.controller_params import PARAMS
    doc = (REPO / 'docs' / 'controller.md').read_text()
    rows = dict(re.findall(r'^\| `(\w+)` \| `([^`]*)` \|', doc, re.MULTILINE))
    conf = yaml.safe_load((REPO / 'config' / 'controller.yaml').read_text())
    conf = conf['controller']['ros__parameters']
    names = [p.name for p in PARAMS]
    assert sorted(conf) == sorted(names), set(conf) ^ set(names)
    assert set(names) <= set(rows), set(names) - set(rows)
    for p in PARAMS:
        assert rows[p.name] == _yaml_text(p.default), (p.name, rows[p.name], p.default)
        v = conf[p.name]
        assert v == p.default and type(v) is type(p.default), (p.name, v, p.default)


ROBOT_CASES = [
    # (change to the sim arm's description, text the line must contain)
    (lambda d: d['actions'][2].pop('high'), 'actions[2] (elbow): missing high'),
    (lambda d: d['command'].update(type='twist_stamped'),
     "command: type 'twist_stamped' has no command adapter"),
    (lambda d: d['cameras'][0].update(encoding='yuv422'),
     "cameras[0] (front): encoding 'yuv422' is not one of"),
]


@pytest.mark.parametrize('change,text', ROBOT_CASES, ids=['missing_limit', 'command_type',
                                                          'camera_encoding'])
def test_a_bad_robot_yaml_stops_the_controller_naming_file_and_field(tmp_path, change, text):
    """A robot YAML with a missing limit, an unsupported command type or camera encoding."""
    import yaml

    from il_ros.robot import robot_path
    d = yaml.safe_load(robot_path('sim_arm').read_text())
    change(d)
    path = tmp_path / 'my_arm.yaml'
    path.write_text(yaml.safe_dump(d))
    line = exit_2_line('controller', [f'robot:={path}'])
    assert str(path) in line and text in line, line


# -- descriptors: ranges and read-only flags -----------------------------------------------

NODE_CLASSES = {'controller': 'Controller', 'sim_robot': 'SimRobot', 'teleop': 'Teleop',
                'supervisor': 'SupervisorNode', 'recorder': 'Recorder', 'trainer': 'Trainer'}
WRITABLE = {
    'controller': {'checkpoint', 'enabled', 'max_step'},
    'recorder': {'output_dir', 'storage', 'task', 'operator', 'queue_size', 'expected_rates',
                 'expected_topics_timeout_s', 'max_loss_fraction', 'reset_timeout_s',
                 'success_hold_s', 'episode_timeout_s'},
    'trainer': {'config', 'task', 'dataset', 'out_dir', 'max_minutes', 'max_steps',
                'eval_task', 'overrides', 'threads', 'nproc'},
    'sim_robot': set(), 'teleop': set(), 'supervisor': set(),
}
"""Parameters whose change at run time the node applies (it reads them where it uses them:
the controller's hot-load, enable and step limits; each episode of the recorder; each
~/train call of the trainer). Every other parameter is read at start-up: read-only."""
_STEP = ('a list (one value, or one per command value): its length and each value are '
         'checked against the robot by the controller; .inf only with allow_unlimited_step')
_OFF = 'any finite value; <= 0 switches the rule off'
NO_RANGE = {
    ('sim_robot', 'real_time_factor'): 'any finite value: <= 0 (as fast as the nodes go) '
                                       'only with lockstep, checked at start-up',
    ('teleop', 'joy_scale'): 'any finite value: a negative scale inverts the axes',
    ('supervisor', 'deviation_m'): _OFF, ('supervisor', 'gripper_deviation'): _OFF,
    ('supervisor', 'stall_m'): _OFF,
    ('supervisor', 'danger_on_m'): 'any finite value: < 0 the task\'s default, 0 off',
    ('supervisor', 'danger_off_m'): 'any finite value: < 0 the task\'s default',
    ('controller', 'max_step'): _STEP, ('controller', 'chunk_max_jump'): _STEP,
    ('controller', 'chunk_max_velocity'): _STEP,
}
"""Numeric parameters without a range (or, for lists, listed constraints), and why."""
_INT, _DOUBLE, _INT_ARRAY, _DOUBLE_ARRAY = 2, 3, 7, 8     # rcl_interfaces ParameterType


@pytest.fixture(scope='module')
def described(client_node, tmp_path_factory):
    """Every node built in this process with its defaults: ``{node: {name: descriptor}}``."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp('nodes'))      # the recorder's and trainer's folders
    out = {}
    try:
        for node, cls in NODE_CLASSES.items():
            built = getattr(importlib.import_module(f'il_ros.ros.{node}'), cls)()
            try:
                names = [n for n in built.get_parameters_by_prefix('') if n != 'use_sim_time']
                out[node] = dict(zip(names, built.describe_parameters(names)))
            finally:
                built.destroy_node()
    finally:
        os.chdir(cwd)
    return out


@pytest.mark.parametrize('node', NODE_CLASSES)
def test_every_numeric_parameter_has_a_range_or_a_reason(described, node):
    """Scalars: a range in the descriptor; lists: constraints; else a reason in NO_RANGE."""
    missing = []
    for name, d in described[node].items():
        has = bool(d.floating_point_range or d.integer_range)
        if d.type in (_INT_ARRAY, _DOUBLE_ARRAY):
            has = bool(d.additional_constraints)
        elif d.type not in (_INT, _DOUBLE):
            assert not has, (name, d)
            continue
        if (node, name) in NO_RANGE:
            assert not has, f'{name} has a range now: drop it from NO_RANGE'
        elif not has:
            missing.append(name)
        for r in d.floating_point_range:
            assert r.step == 0.0 and r.from_value <= r.to_value, (name, r)
            assert (f'[>= {r.from_value}' in d.description or 'one of' in d.description
                    or '[> ' in d.description), (name, d)
        if '[> ' in d.description and d.floating_point_range:     # an exclusive minimum
            assert 'itself is refused' in d.additional_constraints, (name, d)
    assert not missing, f'{node}: numeric parameters without a range or reason: {missing}'
    assert {n for (o, n) in NO_RANGE if o == node} <= set(described[node])


@pytest.mark.parametrize('node', NODE_CLASSES)
def test_parameters_read_at_start_up_are_read_only(described, node):
    writable = {name for name, d in described[node].items() if not d.read_only}
    assert writable == WRITABLE[node], writable ^ WRITABLE[node]


def test_declare_puts_the_limits_into_the_descriptor(client_node):
    n = rclpy.create_node('declare_ranges')
    try:
        declare(n, 'rate', 2.0, 'A rate.', min=0.0, min_exclusive=True)
        declare(n, 'nice', 0, 'Nice.', read_only=True, min=-20, max=19)
        declare(n, 'version', 8, 'One of two.', choices=[8, 9])
        declare(n, 'steps', [], 'Steps.', array_type='double', min=0.0)
        declare(n, 'mode', 'a', 'Mode.', choices=['a', 'b'])
        rate, nice, version, steps, mode = n.describe_parameters(
            ['rate', 'nice', 'version', 'steps', 'mode'])
    finally:
        n.destroy_node()
    r = rate.floating_point_range[0]
    assert (r.from_value, r.to_value, r.step) == (0.0, math.inf, 0.0) and not rate.read_only
    assert '0.0 itself is refused' in rate.additional_constraints, rate
    i = nice.integer_range[0]
    assert (i.from_value, i.to_value, i.step) == (-20, 19, 0) and nice.read_only
    assert nice.description == 'Nice. [>= -20, <= 19]'
    assert (version.integer_range[0].from_value, version.integer_range[0].to_value) == (8, 9)
    assert 'one of [8, 9]' in version.additional_constraints
    assert not steps.floating_point_range and steps.additional_constraints == 'each value >= 0.0'
    assert not (mode.integer_range or mode.floating_point_range)
    assert mode.additional_constraints == "one of ['a', 'b']"


def test_a_start_up_value_outside_the_range_is_our_one_line(client_node):
    """Refused by rclpy while declaring, it still raises our ParameterError naming it."""
    n = rclpy.create_node('declare_override', parameter_overrides=[
        Parameter('rate', value=-1.0), Parameter('nice', value=40)])
    try:
        with pytest.raises(ParameterError, match=r'^parameter rate=-1\.0: must be >= 0\.0$'):
            declare(n, 'rate', 2.0, 'A rate.', min=0.0)
        with pytest.raises(ParameterError, match=r'^parameter nice=40: must be <= 19$'):
            declare(n, 'nice', 0, 'Nice.', read_only=True, min=-20, max=19)
    finally:
        n.destroy_node()


def test_run_time_sets_outside_the_limits_are_refused(client_node):
    n = rclpy.create_node('declare_sets')
    registered = []
    add = n.add_on_set_parameters_callback
    n.add_on_set_parameters_callback = lambda cb: (registered.append(cb), add(cb))[1]
    try:
        declare(n, 'rate', 2.0, 'A rate.', min=0.0, min_exclusive=True)
        declare(n, 'fraction', 0.5, 'A fraction.', min=0.0, max=1.0)
        declare(n, 'steps', [0.1], 'Steps.', min=0.0, min_exclusive=True)
        declare(n, 'mode', 'a', 'Mode.', choices=['a', 'b'])
        declare(n, 'nice', 0, 'Nice.', read_only=True, min=-20, max=19)
        assert len(registered) == 1                       # one callback per node

        def refused(name, value):
            res = n.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful, (name, value)
            return res.reason
        # rclpy's range check: the name and the range
        assert refused('fraction', 1.5) == ('Parameter fraction out of range Min: 0.0, '
                                            'Max: 1.0, value: 1.5')
        assert 'Parameter rate out of range Min: 0.0, Max: inf' in refused('rate', -1.0)
        assert 'Parameter rate out of range' in refused('rate', math.nan)
        # what a range cannot say: our check
        assert refused('rate', 0.0) == 'parameter rate=0.0: must be > 0.0'
        assert refused('steps', [0.1, 0.0]) == 'parameter steps=[0.1, 0.0]: must be > 0.0'
        assert refused('mode', 'c') == "parameter mode='c': must be one of ['a', 'b']"
        assert refused('nice', 5) == 'Trying to set a read-only parameter: nice.'
        assert 'Wrong parameter type' in refused('fraction', 1)
        for name, value in [('rate', 0.5), ('fraction', 1.0), ('steps', [0.2, 0.3]),
                            ('mode', 'b')]:
            assert n.set_parameters([Parameter(name, value=value)])[0].successful, name
            assert n.get_parameter(name).value == value
        assert n.get_parameter('nice').value == 0
    finally:
        n.destroy_node()


# -- changes on running nodes, over the parameter services ---------------------------------

def _set(node, target: str, name: str, value):
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call_service(node, SetParameters, f'/{target}/set_parameters', req).results[0]


def _get(node, target: str, name: str):
    res = call_service(node, GetParameters, f'/{target}/get_parameters',
                GetParameters.Request(names=[name]))
    return parameter_value_to_python(res.values[0])


def test_a_running_trainer_refuses_bad_values_and_takes_good_ones(procs, client_node,
                                                                  tmp_path):
    """``ros2 param set /trainer max_minutes -1.0`` and friends, over the parameter service."""
    p = procs.python('il_ros.ros.trainer', '--ros-args', '-p', f'out_dir:={tmp_path / "run"}',
                     name='trainer')
    desc = call_service(client_node, DescribeParameters, '/trainer/describe_parameters',
                 DescribeParameters.Request(names=['max_minutes', 'status_rate_hz']))
    minutes, status_rate = desc.descriptors
    assert minutes.floating_point_range[0].from_value == 0.0 and not minutes.read_only
    assert status_rate.read_only
    for value in (-1.0, math.nan):
        res = _set(client_node, 'trainer', 'max_minutes', value)
        assert not res.successful and 'max_minutes out of range Min: 0.0' in res.reason, res
    res = _set(client_node, 'trainer', 'threads', -2)
    assert not res.successful and 'threads out of range. Min: 0,' in res.reason, res
    res = _set(client_node, 'trainer', 'status_rate_hz', 5.0)
    assert res.reason == 'Trying to set a read-only parameter: status_rate_hz.', res
    assert _set(client_node, 'trainer', 'max_minutes', 2.5).successful
    assert _get(client_node, 'trainer', 'max_minutes') == 2.5
    assert p.poll() is None, procs.log(p)


def test_a_running_controller_refuses_start_up_parameters(procs, client_node):
    """Read-only parameters are refused by rclpy; ``enabled`` and step limits still change."""
    p = procs.python('il_ros.ros.controller', name='controller')
    desc = call_service(client_node, DescribeParameters, '/controller/describe_parameters',
                 DescribeParameters.Request(names=['rate_hz']))
    assert desc.descriptors[0].read_only and desc.descriptors[0].floating_point_range
    res = _set(client_node, 'controller', 'rate_hz', 5.0)
    assert res.reason == 'Trying to set a read-only parameter: rate_hz.', res
    res = _set(client_node, 'controller', 'max_step', [0.0])
    assert not res.successful and 'max_step' in res.reason, res
    assert _set(client_node, 'controller', 'enabled', True).successful
    assert _get(client_node, 'controller', 'enabled') is True
    assert _get(client_node, 'controller', 'rate_hz') == 0.0
    assert p.poll() is None, procs.log(p)


def _ros2(*args: str) -> str:
    """Run the real ``ros2`` CLI (ros2cli in this interpreter) without a daemon; its output.

    Without a daemon each call discovers the graph anew and may not see the node yet
    ("Node not found"): such a call is repeated, for up to a minute.
    """
    code = 'import sys; from ros2cli.cli import main; sys.argv[0] = "ros2"; sys.exit(main())'

    def once():
        res = subprocess.run([sys.executable, '-c', code, *args[:2], '--no-daemon', *args[2:]],
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        out = res.stdout + res.stderr
        return None if 'Node not found' in out else out
    return wait_for(once, 60, interval=0.5, what=f'ros2 {" ".join(args)} to find the node')


def test_ros2_param_describe_and_set_on_a_running_trainer(procs, tmp_path):
    """What a ROS user sees: ``ros2 param describe`` ranges, ``ros2 param set`` refusals."""
    pytest.importorskip('ros2cli', reason='the ros2 CLI (ros2cli, ros2param) is not '
                        'installed: see ../shared/ros2-tools')
    p = procs.python('il_ros.ros.trainer', '--ros-args', '-p', f'out_dir:={tmp_path / "run"}',
                     name='trainer')
    out = _ros2('param', 'describe', '/trainer', 'max_minutes', 'status_rate_hz')
    assert 'Min value: 0.0' in out and 'Max value: inf' in out and 'Read only: true' in out
    out = _ros2('param', 'set', '/trainer', 'max_minutes', '--', '-1.0')
    assert 'Setting parameter failed: Parameter max_minutes out of range Min: 0.0' in out, out
    out = _ros2('param', 'set', '/trainer', 'status_rate_hz', '5.0')
    assert ('Setting parameter failed: Trying to set a read-only parameter: status_rate_hz.'
            in out), out
    assert 'Set parameter successful' in _ros2('param', 'set', '/trainer', 'max_minutes', '2.5')
    assert p.poll() is None, procs.log(p)


def test_ctrl_c_inside_a_foreign_call_is_a_clean_exit(monkeypatch):
    """SIGINT during a ctypes call (MuJoCo's EGL) surfaces as ArgumentError: exit 0."""
    import ctypes

    from il_ros.ros import node_utils

    class Node:
        def destroy_node(self):
            pass

    def spin_raising(error):
        def spin(node):
            raise error
        return spin
    for name, value in (('init', lambda args=None: None), ('try_shutdown', lambda: None),
                        ('ok', lambda: True)):
        monkeypatch.setattr(node_utils.rclpy, name, value)
    monkeypatch.setattr(node_utils.rclpy, 'spin',
                        spin_raising(ctypes.ArgumentError('argument 3: KeyboardInterrupt: ')))
    assert node_utils.run(Node) == 0
    monkeypatch.setattr(node_utils.rclpy, 'spin',
                        spin_raising(ctypes.ArgumentError('argument 3: TypeError: bad')))
    with pytest.raises(ctypes.ArgumentError):
        node_utils.run(Node)
