"""Robot facts come from the robot description, not from node parameters.

The nodes refuse the parameters that once duplicated them, and bad robot settings exit 2
with one line naming the robot's file.

Each case runs the node as a real process (as test_node_parameters does): exit code 2, one
line on stderr naming the parameter, and no traceback.
"""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
from test_node_parameters import exit_2_line  # noqa: E402

SIM_ARM = 'config/robots/sim_arm.yaml'

CASES = [
    # (node, ros args, texts the line must contain)
    ('sim_robot', ['image_width:=320'], ['image_width=320', 'cameras[].width', SIM_ARM]),
    ('sim_robot', ['image_height:=240'], ['image_height=240', 'cameras[].height']),
    ('sim_robot', ['camera_rate_hz:=15.0'], ['camera_rate_hz=15.0', 'cameras[].rate_hz']),
    ('sim_robot', ['joint_state_rate_hz:=100.0'], ['joint_states.rate_hz', SIM_ARM]),
    ('sim_robot', ['command_topic:=/x'], ["command_topic='/x'", 'command.topic', SIM_ARM]),
    ('sim_robot', ['cameras:=[front,nope]'], ["cameras=['front', 'nope']", SIM_ARM,
                                             "no camera 'nope'"]),
    ('sim_robot', ['robot:=nope'], ["robot='nope'", 'known robots', 'panda', 'sim_arm']),
    ('teleop', ['arm_joints:=[a,b]'], ['arm_joints=', 'actions[].name', SIM_ARM]),
    ('teleop', ['joint_lower:=[-1.0]'], ['joint_lower=[-1.0]', 'actions[].low']),
    ('teleop', ['joint_upper:=[1.0]'], ['joint_upper=[1.0]', 'actions[].high']),
    ('teleop', ['robot:=panda', 'command_topic:=/panda_arm_controller/joint_trajectory'],
     ['command_topic=', 'joint_trajectory', 'config/robots/panda.yaml', 'leave']),
    ('teleop', ['mode:=joy', 'robot:=ROBOT_WITHOUT_SIM', 'space:=cartesian'],
     ["space='cartesian'", 'no sim section', 'space:=joint']),
    ('sim_robot', ['robot:=LIFT_ONLY', 'task:=path'], ["task='path'", 'lift_only.yaml',
                                                       'has tasks: lift']),
    ('teleop', ['robot:=LIFT_ONLY', 'task:=reach_around'], ["task='reach_around'",
                                                            'lift_only.yaml']),
    ('supervisor', ['robot:=LIFT_ONLY', 'task:=path'], ["task='path'", 'lift_only.yaml']),
    ('supervisor', ['command_topic:=/il/command'], ['command_topic=', 'command.topic']),
    ('supervisor', ['robot:=/no/such/robot.yaml'], ["robot='/no/such/robot.yaml'"]),
]


@pytest.mark.parametrize('node,params,texts', CASES,
                         ids=[f'{n}-{" ".join(p)}' for n, p, _ in CASES])
def test_robot_facts_are_not_node_parameters(node, params, texts, tmp_path):
    robot = tmp_path / 'no_sim.yaml'
    robot.write_text('name: no_sim\njoint_states: {joints: [a]}\n'
                     'actions: [{name: a, low: -1.0, high: 1.0, max_step: 0.1}]\n')
    import yaml

    from il_ros.robot import robot_path
    lift_only = yaml.safe_load(robot_path('panda').read_text())     # a robot with one scene
    lift_only['sim']['scenes'] = {'lift': lift_only['sim']['scenes']['lift']}
    (tmp_path / 'lift_only.yaml').write_text(yaml.safe_dump({**lift_only, 'name': 'lift_only'}))
    line = exit_2_line(node, [p.replace('ROBOT_WITHOUT_SIM', str(robot)).replace(
        'LIFT_ONLY', str(tmp_path / 'lift_only.yaml')) for p in params])
    for text in texts:
        assert text in line, (text, line)
