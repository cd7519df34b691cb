"""The robot description (il_ros/robot.py).

Loading, validation naming the file and the field, and the parts that take their robot facts
from it (topic map, joint and step limits).
"""
from __future__ import annotations

import pytest
import yaml

from il_ros.config import ConfigError
from il_ros.control.slot import Refused, robot_limits
from il_ros.data.topic_map import TopicMap
from il_ros.robot import load_robot, robot_names, robot_path, RobotDescription


def _sim_arm() -> dict:
    return yaml.safe_load(robot_path('sim_arm').read_text())


def test_the_shipped_robots_load():
    assert {'sim_arm', 'panda'} <= set(robot_names())
    arm = load_robot()
    assert arm.name == 'sim_arm' and arm.action_names[-1] == 'gripper'
    assert arm.arm_actions == arm.action_names[:-1] and len(arm.joint_names) == 7
    panda = load_robot('panda')
    assert len(panda.arm_actions) == 7 and panda.command.type == 'joint_trajectory'
    # it speaks like a real arm: extra joints, another order, cameras not at policy size
    assert set(panda.sim.published_joints) > set(panda.joint_names)
    assert panda.sim.published_joints[:len(panda.joint_names)] != panda.joint_names
    assert {(c.type, c.encoding) for c in panda.cameras} == {('Image', 'bgr8'),
                                                             ('CompressedImage', 'jpeg')}
    assert all(c.width >= 320 and c.height >= 240 and c.rate_hz >= 15 for c in panda.cameras)
    assert panda.joint_states.rate_hz >= 100
    # a description round-trips through the JSON a dataset and a checkpoint store
    assert RobotDescription.from_dict(panda.to_dict()).to_dict() == panda.to_dict()


@pytest.mark.parametrize('change,text', [
    (lambda d: d['actions'][1].pop('low'), 'actions[1] (shoulder): missing low'),
    (lambda d: d['actions'][1].update(low=3.0), 'actions[1] (shoulder): need finite low < high'),
    (lambda d: d['actions'][0].update(max_step=0), 'actions[0] (base_yaw): max_step must be > 0'),
    (lambda d: d['actions'].append(dict(d['actions'][0])), "duplicate names ['base_yaw']"),
    (lambda d: d.update(speed=3), "unknown key(s) ['speed']"),
    (lambda d: d['command'].update(type='twist_stamped'), 'has no command adapter'),
    (lambda d: d['cameras'][1].update(type='PointCloud2'), 'cameras[1] (wrist): type'),
    (lambda d: d['gripper'].update(action='hand'), "gripper.action 'hand' is not one of"),
    (lambda d: d['actions'][5].update(high=2.0), 'a gripper command spans low 0 .. high 1'),
    (lambda d: d.pop('joint_states'), 'missing joint_states'),
])
def test_a_bad_description_names_the_file_and_the_field(tmp_path, change, text):
    d = _sim_arm()
    change(d)
    path = tmp_path / 'my_arm.yaml'
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as e:
        load_robot(path)
    assert str(path) in str(e.value) and text in str(e.value), str(e.value)


def test_unknown_robot_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown robot 'ur5'.*known robots: .*panda"):
        load_robot('ur5')


def test_topic_map_and_limits_come_from_the_robot():
    panda = load_robot('panda')
    tm = TopicMap.from_robot(panda, ['front'], action_topic='/il/teleop/command')
    assert tm.cameras == {'front': 'front_camera/color/image_raw'}      # relative: resolved
    assert tm.resolved().cameras == {'front': '/front_camera/color/image_raw'}  # in the bag's
    assert tm.resolved('/robot1').joint_states.topic == '/robot1/joint_states'  # namespace
    assert tm.resolved('/robot1').action.topic == '/il/teleop/command'  # absolute stays
    assert tm.joint_states.joints == panda.joint_names
    assert tm.action.topic == '/il/teleop/command' and tm.action.joints == panda.action_names
    with pytest.raises(ConfigError, match=r'panda.yaml: cameras: the conversion needs'):
        TopicMap.from_robot(panda, ['side'])
    lower, upper, step = robot_limits(panda)(panda.action_names)
    assert lower[3] == -3.0718 and upper[5] == 3.7525 and step == panda.max_step
    with pytest.raises(Refused, match=r"panda.yaml: actions: the command values \['a'\]"):
        robot_limits(panda)(['a'])


def test_the_loop_defaults_to_the_robots_step_limits():
    from il_ros.control.loop import ControlLoop
    from il_ros.control.loop_types import LoopConfig
    panda = load_robot('panda')
    loop = ControlLoop(LoopConfig(rate_hz=20.0, enabled=True), limits=robot_limits(panda))
    loop.configure(panda.action_names, panda.joint_names)
    assert loop.safety.cfg.max_step == panda.max_step
    assert loop.set_step([0.05]) == [0.05] * 8
    assert loop.set_step([]) == panda.max_step


def test_nothing_outside_the_sim_imports_the_sim_arms_names():
    """The sim arm's module constants stay in il_ros/sim (the sim's own tests aside).

    Every other part takes its robot facts from the robot descriptions.
    """
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    names = re.compile(r'\b(ARM_JOINTS|FINGER_JOINTS|GRIPPER|HOME_ARM|FINGER_OPEN)\b')
    files = [p for d in ('il_ros', 'bench', 'launch') for p in (root / d).rglob('*.py')
             if 'il_ros/sim/' not in p.as_posix()]
    users = [str(p.relative_to(root)) for p in files if names.search(p.read_text())]
    assert not users, users
