"""``il-ros foxglove-layout``: the layout shows what the recorder stores, by valid message paths.

Every topic a panel reads is one the recorder stores for that robot in the dagger graph (so
a recorded bag fills every panel but diagnostics), and every message path names fields that
the topic's message type has (checked against the ROS message definitions in rosbags'
typestore).
"""
from __future__ import annotations

import json
import re

import pytest
from rosbags.typesys import get_typestore, Stores

from il_ros import cli, keys
from il_ros.graph_plan import recorder_topics
from il_ros.robot import load_robot

TS = get_typestore(Stores.ROS2_KILTED)
COMMAND_MSG = {'joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
               'float64_multi_array': 'std_msgs/msg/Float64MultiArray',
               'joint_state': 'sensor_msgs/msg/JointState'}


def panels(node):
    """Every panel dict in a layout's content tree."""
    if node.get('type') == 'panel':
        yield node
    for item in node.get('items', []) + node.get('tabs', []):
        yield from panels(item['content'])


def field_type(msgtype: str, path: str) -> str:
    """Walk ``.a[0].b`` through ``msgtype``'s definition to the type of the last field.

    That is a message type, or a base type such as float64 (a number or an array of them).
    """
    for name in re.findall(r'\.(\w+)', path):
        fields = dict(TS.get_msgdef(msgtype).fields)
        assert name in fields, f'{msgtype} has no field {name!r} (path {path})'
        kind, detail = fields[name]
        if kind.name in ('SEQUENCE', 'ARRAY'):
            kind, detail = detail[0]
        msgtype = detail[0] if kind.name == 'BASE' else detail
    return msgtype


def read_layout(path):
    data = json.loads(path.read_text())
    got = {}
    for p in panels(data['content']):
        cfg = p['config']
        if p['panelType'] == 'Image':
            got.setdefault('images', []).append(cfg['imageMode']['imageTopic'])
        for series in cfg.get('paths', []):
            got.setdefault(p['panelType'], []).append(series['value'])
        if p['panelType'] == 'DiagnosticsSummary':
            got['diagnostics'] = True
    return got


@pytest.mark.parametrize('robot_name', ['sim_arm', 'panda'])
def test_the_layout_reads_recorded_topics_by_valid_paths(tmp_path, robot_name, capsys):
    robot = load_robot(robot_name)
    out = tmp_path / 'layout.json'
    assert cli.main(['foxglove-layout', '--robot', robot_name, '--out', str(out)]) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    got = read_layout(out)
    recorded = recorder_topics(robot, robot.camera_names, 'dagger')
    resolved = {keys.resolve_name(t): t for t in recorded}
    assert got['images'] == [keys.resolve_name(robot.camera(c).topic)
                             for c in robot.camera_names]
    types = {keys.resolve_name(robot.joint_states.topic): 'sensor_msgs/msg/JointState',
             keys.resolve_name(robot.command.topic): COMMAND_MSG[robot.command.type],
             keys.resolve_name(keys.TOPIC_CONTROL_SOURCE): 'std_msgs/msg/String'}
    paths = got['Plot'] + got['StateTransitions']
    assert len(paths) == 3 and got['diagnostics']
    for path in paths:
        topic, rest = re.match(r'^(/[\w/]+?)((?:\.\w+(?:\[\d+\])?)+)$', path).groups()
        assert topic in resolved, f'{topic} is not recorded ({sorted(resolved)})'
        leaf = field_type(types[topic], rest)
        assert leaf in ('float64', 'string'), (path, leaf)


def test_a_namespace_moves_every_topic_and_bad_input_is_one_line(tmp_path, capsys):
    out = tmp_path / 'ns.json'
    assert cli.main(['foxglove-layout', '--robot', 'panda', '--cameras', 'wrist',
                     '--namespace', 'robot1', '--out', str(out)]) == 0
    got = read_layout(out)
    assert got['images'] == ['/robot1/wrist_camera/color/image_raw/compressed']
    assert all(p.startswith('/robot1/') for p in got['Plot'] + got['StateTransitions'])
    capsys.readouterr()
    assert cli.main(['foxglove-layout', '--robot', 'panda', '--cameras', 'side',
                     '--out', str(tmp_path / 'x.json')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'panda.yaml' in err[0] and "['side']" in err[0], err
    assert not (tmp_path / 'x.json').exists()
    bad = tmp_path / 'arm.yaml'
    bad.write_text('name: arm\n')
    assert cli.main(['foxglove-layout', '--robot', str(bad), '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0], err
