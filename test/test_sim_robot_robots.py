"""sim_robot speaks each robot's own interface, as a real process over DDS, headless.

For every robot description with a sim scene: /joint_states with the robot's published names
and order at its rate (the Panda: extra finger joint, driver order, 100 Hz), every camera at
its native size and encoding (the Panda: a bgr8 Image and a JPEG CompressedImage, 320x240),
and motion from a command on the robot's own topic and type (the Panda: JointTrajectory on
/panda_arm_controller/joint_trajectory); a command that does not name every action moves
nothing. The node starts with MUJOCO_GL and DISPLAY unset: it picks the GL backend itself.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402

from conftest import wait_for  # noqa: E402
from il_ros.robot import load_robot  # noqa: E402


# The sim arm as a real robot's driver would speak it: the first arm's scene, with the
# Panda's kind of interface (runs before the Panda scene exists).
LIKE_A_REAL_ROBOT = {
    'command': {'type': 'joint_trajectory', 'topic': '/arm_controller/joint_trajectory'},
    'joint_states': {'topic': '/joint_states', 'rate_hz': 100.0,
                     'joints': ['base_yaw', 'shoulder', 'elbow', 'wrist_pitch', 'wrist_roll',
                                'finger_left', 'finger_right']},
    'cameras': [
        {'name': 'front', 'topic': '/front/color/image_raw', 'type': 'Image',
         'encoding': 'bgr8', 'width': 96, 'height': 72, 'rate_hz': 15.0},
        {'name': 'wrist', 'topic': '/wrist/color/image_raw/compressed',
         'type': 'CompressedImage', 'encoding': 'jpeg', 'width': 96, 'height': 72,
         'rate_hz': 15.0}],
    'published_joints': ['finger_right', 'wrist_roll', 'base_yaw', 'shoulder', 'elbow',
                         'wrist_pitch', 'finger_left'],
}


def _like_a_real_robot(tmp_path) -> str:
    import yaml

    from il_ros.robot import robot_path
    d = yaml.safe_load(robot_path('sim_arm').read_text())
    spec = dict(LIKE_A_REAL_ROBOT)
    d['sim']['published_joints'] = spec.pop('published_joints')
    d.update(spec)
    path = tmp_path / 'sim_arm_like_a_real_robot.yaml'
    path.write_text(yaml.safe_dump(d))
    return str(path)


ROBOTS = [
    'sim_arm',
    'like_a_real_robot',
    'panda',
]


def _median_period(stamps) -> float:
    return float(np.median(np.diff(sorted(stamps))))


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


@pytest.mark.parametrize('robot_name', ROBOTS)
def test_sim_robot_speaks_like_the_robot(procs, ros_node, monkeypatch, tmp_path, robot_name):
    from il_ros.ros.command_adapters import make_adapter
    if robot_name == 'like_a_real_robot':
        robot_name = _like_a_real_robot(tmp_path)
    robot = load_robot(robot_name)
    for var in ('MUJOCO_GL', 'DISPLAY', 'PYOPENGL_PLATFORM'):
        monkeypatch.delenv(var, raising=False)
    p = procs.python('il_ros.ros.sim_robot', '--ros-args', '-p', f'robot:={robot_name}',
                     name='sim_robot')
    node = ros_node
    js, images = [], {c.name: [] for c in robot.cameras}
    node.create_subscription(JointState, robot.joint_states.topic, js.append,
                             qos_profile_sensor_data)
    for cam in robot.cameras:
        node.create_subscription(CompressedImage if cam.compressed else Image, cam.topic,
                                 images[cam.name].append, qos_profile_sensor_data)
    adapter = make_adapter(robot.command.type, robot.action_names, 0.05)
    pub = node.create_publisher(adapter.msg_type, robot.command.topic, 10)

    def spin_until(pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
            assert p.poll() is None, procs.log(p)
            if pred():
                return
        pytest.fail(f'timed out after {timeout}s waiting for {what}\n{procs.log(p)[-3000:]}')

    spin_until(lambda: len(js) >= 50 and all(len(v) >= 5 for v in images.values()), 90,
               'joint states and every camera')
    # Joint states: the published names and order (extra joints too), at the robot's rate.
    names = list(robot.sim.published_joints or robot.joint_names)
    assert all(list(m.name) == names for m in js), js[-1].name
    assert _median_period(map(_stamp, js)) == pytest.approx(1 / robot.joint_states.rate_hz,
                                                             rel=0.05)
    # Cameras: native size, the robot's encoding, the robot's rate.
    import cv2
    for cam in robot.cameras:
        msg = images[cam.name][-1]
        if cam.compressed:
            assert msg.format == cam.encoding
            img = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (cam.height, cam.width, 3), cam.name
        else:
            assert (msg.encoding, msg.width, msg.height) == (cam.encoding, cam.width,
                                                             cam.height)
            assert len(msg.data) == msg.step * msg.height
        assert _median_period(map(_stamp, images[cam.name])) == pytest.approx(
            1 / cam.rate_hz, rel=0.05), cam.name

    def arm_position(name):
        m = js[-1]
        return m.position[list(m.name).index(name)]

    first = robot.arm_actions[0]
    start = np.array([arm_position(n) for n in robot.arm_actions])
    target = np.r_[start + np.r_[0.3, np.zeros(start.size - 1)], [0.0]]
    target[:-1] = np.clip(target[:-1], robot.action_low[:-1], robot.action_high[:-1])
    # A command that lacks an action (a name, or a value) moves nothing.
    bad = adapter(target[:-1], 0.0) if robot.command.type == 'float64_multi_array' else None
    if bad is None:
        bad = make_adapter(robot.command.type, robot.action_names[:-1], 0.05)(target[:-1], 0.0)
    wait_for(lambda: node.count_subscribers(robot.command.topic) > 0, 20, what='subscriber')
    for _ in range(20):
        pub.publish(bad)
        rclpy.spin_once(node, timeout_sec=0.05)
    spin_until(lambda: 'ignoring command' in procs.log(p), 20, 'the bad command warning')
    assert abs(arm_position(first) - start[0]) < 0.02, 'moved on a bad command'
    # The robot's own command message moves the arm.
    for _ in range(3):
        pub.publish(adapter(target, 0.0))
        rclpy.spin_once(node, timeout_sec=0.05)
    spin_until(lambda: abs(arm_position(first) - target[0]) < 0.05, 30,
               f'{first} to reach the commanded {target[0]:.2f}')


@pytest.mark.parametrize('robot_name', ROBOTS[1:])
def test_scripted_teleop_drives_the_robot_through_its_command_interface(procs, ros_node,
                                                                        tmp_path, robot_name):
    """Scripted collection in lockstep over the robot's own command message.

    The expert's episode-tagged command (a JointTrajectory) reaches the sim, which lifts
    the cube.
    """
    from std_msgs.msg import Bool
    if robot_name == 'like_a_real_robot':
        robot_name = _like_a_real_robot(tmp_path)
    common = ['--ros-args', '-p', f'robot:={robot_name}', '-p', 'seed:=4']
    sim = procs.python('il_ros.ros.sim_robot', *common, '-p', 'lockstep:=true',
                       '-p', 'real_time_factor:=3.0', '-p', 'cameras:=[front]', name='sim')
    teleop = procs.python('il_ros.ros.teleop', *common, name='teleop')
    success = []
    ros_node.create_subscription(Bool, '/sim/success', lambda m: success.append(m.data), 10)
    end = time.monotonic() + 120
    while time.monotonic() < end and not any(success):
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        assert sim.poll() is None and teleop.poll() is None, (procs.log(sim), procs.log(teleop))
    assert any(success), procs.log(sim)[-2000:] + procs.log(teleop)[-2000:]
    assert 'ignoring command' not in procs.log(sim), procs.log(sim)
