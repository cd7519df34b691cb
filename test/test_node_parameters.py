"""Bad start-up parameters: each node exits with one clear line and code 2 (issue #14).

Every value below once gave a traceback (often a second AttributeError from destroy_node
after the real error), a ZeroDivisionError, or started a node whose safety limit was off
(max_step 0, negative or NaN). Each runs as a real process; the check is exit code 2, one
line on stderr naming the parameter and its value, and no traceback.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')
from conftest import REPO  # noqa: E402

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
