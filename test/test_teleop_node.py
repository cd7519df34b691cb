"""The teleop node in joy mode, as a real process over DDS.

While the deadman button is held it publishes commands and intervention heartbeats; the
command starts from the robot's current command (the last one on its command topic, when
fresh), else from the measured joint state, and moves with the stick; when the button is
released both stop, after one ``Bool(False)`` on the intervention topic: the explicit
hand-back the controller needs to give control back to its policy (heartbeats that merely
stop latch a HOLD there). Keyboard mode hands back when the deadman lapses.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState, Joy  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402

from conftest import wait_for  # noqa: E402


@pytest.fixture
def node(ros_node):
    return ros_node


def robot_yaml(path, actions=('a', 'b', 'gripper'), gripper=True) -> str:
    """A two-joint robot without a sim model (joint space), its gripper where asked."""
    import yaml
    d = {'name': 'two_joint', 'joint_states': {'joints': ['a', 'b']},
         'actions': [{'name': n, 'low': 0.0 if n == 'gripper' else -1.0, 'high': 1.0,
                      'max_step': 0.1} for n in actions],
         'command': {'type': 'float64_multi_array', 'topic': '/il/command'}}
    if gripper:
        d['gripper'] = {'action': 'gripper', 'joints': ['a'], 'open': 0.0, 'closed': 1.0}
    file = path / 'two_joint.yaml'
    file.write_text(yaml.safe_dump(d))
    return str(file)


def test_joy_deadman_drives_commands(procs, node, tmp_path):
    robot = robot_yaml(tmp_path, ('gripper', 'a', 'b'))      # the gripper first, for once
    p = procs.python('il_ros.ros.teleop', '--ros-args', '-p', 'mode:=joy',
                     '-p', f'robot:={robot}', '-p', 'joy_axis_map:=[0,1]',
                     '-p', 'joy_scale:=1.0', '-p', 'rate_hz:=20.0',
                     '-p', 'deadman_timeout_s:=1.0', name='teleop')   # the button ends it
    cmds, beats = [], []
    node.create_subscription(Float64MultiArray, '/il/command',
                             lambda m: cmds.append((time.monotonic(), list(m.data))), 10)
    node.create_subscription(Bool, '/il/intervention',
                             lambda m: beats.append((time.monotonic(), m.data)), 10)
    pub_js = node.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)
    pub_joy = node.create_publisher(Joy, '/joy', qos_profile_sensor_data)

    def spin_for(seconds, joy=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub_js.publish(JointState(name=['b', 'x', 'a'], position=[0.2, 9.0, -0.1]))
            if joy is not None:
                pub_joy.publish(joy)
            rclpy.spin_once(node, timeout_sec=0.02)
            assert p.poll() is None, procs.log(p)

    wait_for(lambda: node.count_subscribers('/joy') > 0, 20, what='teleop to subscribe /joy')
    spin_for(1.0)  # joint states arrive; no deadman yet
    assert not cmds and not beats, 'teleop published without the deadman held'

    held = Joy(axes=[0.5, 0.0], buttons=[0, 0, 0, 0, 1])
    spin_for(1.0, held)
    end = time.monotonic() + 4.0       # 20 Hz for 1 s; a loaded machine may stall the node
    while len(beats) < 10 and time.monotonic() < end:
        spin_for(0.1, held)
    assert cmds and all(b for _, b in beats) and len(beats) >= 10
    first, last = np.array(cmds[0][1]), np.array(cmds[-1][1])
    # Starts from the measured pose (a=-0.1, b=0.2), gripper open; the stick moves joint a.
    # Action order: gripper, a, b.
    np.testing.assert_allclose(first[[0, 2]], [0.0, 0.2])
    assert abs(first[1] - -0.1) < 0.1
    assert last[1] > first[1] + 0.2 and abs(last[2] - 0.2) < 1e-9

    released = Joy(axes=[0.5, 0.0], buttons=[0, 0, 0, 0, 0])
    spin_for(0.6, released)
    n_cmd, n_beat = len(cmds), len(beats)
    spin_for(0.6, released)
    assert len(cmds) == n_cmd and len(beats) == n_beat, 'commands continued after release'
    # One hand-back, after the last command, and nothing else False.
    assert [b for _, b in beats].count(False) == 1 and beats[-1][1] is False, beats[-3:]
    assert beats[-1][0] >= cmds[-1][0]


def test_a_takeover_starts_from_the_robots_current_command(procs, node, tmp_path):
    """Each takeover starts from the fresh executed command, else from the measured pose.

    The teleop feeds the controller's human channel; the test plays the controller, whose
    executed command on the robot's command topic (here ``/il/command``) differs from the
    measured pose (a position-controlled arm lags its target). Takeover 1 starts exactly at
    executed command 1 (the gripper too) and the stick moves it; takeover 2 starts at
    executed command 2, not where takeover 1 ended; takeover 3, with no command for longer
    than ``start_from_command_timeout_s``, starts from the measured pose (the gripper as
    takeover 2 left it: the sim gripper is not a joint).
    """
    robot = robot_yaml(tmp_path)                              # actions a, b, gripper
    p = procs.python('il_ros.ros.teleop', '--ros-args', '-p', 'mode:=joy',
                     '-p', f'robot:={robot}', '-p', 'joy_axis_map:=[0,1]',
                     '-p', 'joy_scale:=1.0', '-p', 'rate_hz:=20.0',
                     '-p', 'deadman_timeout_s:=0.3', '-p', 'start_from_command_timeout_s:=1.0',
                     '-p', 'command_topic:=/il/teleop/command', name='teleop')
    cmds = []
    node.create_subscription(Float64MultiArray, '/il/teleop/command',
                             lambda m: cmds.append(np.array(m.data)), 10)
    pub_js = node.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)
    pub_joy = node.create_publisher(Joy, '/joy', qos_profile_sensor_data)
    pub_exec = node.create_publisher(Float64MultiArray, '/il/command', 10)
    measured = [-0.1, 0.2]

    def spin_for(seconds, joy=None, executed=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub_js.publish(JointState(name=['b', 'a'], position=measured[::-1]))
            if executed is not None:
                pub_exec.publish(Float64MultiArray(data=list(executed)))
            if joy is not None:
                pub_joy.publish(joy)
            rclpy.spin_once(node, timeout_sec=0.02)
            assert p.poll() is None, procs.log(p)

    def takeover(executed, axes=(0.0, 0.0), seconds=0.5):
        """Hold the deadman (still stick, then ``axes``); release; the takeover's commands."""
        n = len(cmds)
        spin_for(0.3, Joy(axes=[0.0, 0.0], buttons=[0, 0, 0, 0, 1]), executed)
        spin_for(seconds, Joy(axes=list(axes), buttons=[0, 0, 0, 0, 1]), executed)
        end = time.monotonic() + 4.0               # a loaded machine may stall the node
        while len(cmds) < n + 5 and time.monotonic() < end:
            spin_for(0.1, Joy(axes=list(axes), buttons=[0, 0, 0, 0, 1]), executed)
        got = cmds[n:]
        spin_for(0.6, Joy(axes=[0.0, 0.0], buttons=[0, 0, 0, 0, 0]), executed)  # released
        assert len(got) >= 5, procs.log(p)
        return got

    wait_for(lambda: node.count_subscribers('/joy') > 0, 20, what='teleop to subscribe /joy')
    first = [0.3, -0.4, 1.0]
    spin_for(1.0, executed=first)
    got = takeover(first, axes=(0.5, 0.0))
    np.testing.assert_allclose(got[0], first, rtol=0, atol=1e-9)
    assert got[-1][0] > first[0] + 0.1 and abs(got[-1][1] - first[1]) < 1e-9, got[-1]

    second = [-0.5, 0.6, 0.0]
    got = takeover(second)
    np.testing.assert_allclose(got[0], second, rtol=0, atol=1e-9)

    spin_for(2.0)                           # no executed command for 2 s: stale
    got = takeover(None)
    np.testing.assert_allclose(got[0], measured + [0.0], rtol=0, atol=1e-9)


@pytest.mark.parametrize('gripper', [True, False], ids=['gripper', 'no_gripper'])
def test_keyboard_keys_jog_joints_through_a_terminal(procs, node, tmp_path, gripper):
    """Keyboard mode reads a real terminal (a pty): 'q' jogs joint 1 up, space closes.

    A robot without a gripper gets commands of its arm joints only; space does nothing.
    """
    import os
    import pty
    import subprocess
    import sys
    robot = robot_yaml(tmp_path, ('a', 'b', 'gripper') if gripper else ('a', 'b'), gripper)
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, '-m', 'il_ros.ros.teleop', '--ros-args', '-p', 'mode:=keyboard',
         '-p', f'robot:={robot}', '-p', 'key_step:=0.1', '-p', 'deadman_timeout_s:=0.4'],
        stdin=slave, stdout=open(tmp_path / 'kb.log', 'wb'), stderr=subprocess.STDOUT,
        start_new_session=True)
    procs.procs.append((p, tmp_path / 'kb.log'))
    os.close(slave)
    cmds, beats = [], []
    node.create_subscription(Float64MultiArray, '/il/command',
                             lambda m: cmds.append(list(m.data)), 10)
    node.create_subscription(Bool, '/il/intervention', lambda m: beats.append(m.data), 10)
    pub_js = node.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)

    def spin_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub_js.publish(JointState(name=['a', 'b'], position=[0.0, 0.5]))
            rclpy.spin_once(node, timeout_sec=0.02)
            assert p.poll() is None, (tmp_path / 'kb.log').read_text()

    wait_for(lambda: node.count_subscribers('/joint_states') > 0, 20,
             what='keyboard teleop to start')
    spin_for(1.0)
    assert not cmds, 'published before any key was pressed'
    os.write(master, b'q')
    spin_for(0.3)
    os.write(master, b'q ')
    spin_for(0.3)
    assert cmds, (tmp_path / 'kb.log').read_text()
    g = [0.0] if gripper else []
    np.testing.assert_allclose(cmds[0], [0.1, 0.5] + g)                 # the measured pose
    np.testing.assert_allclose(cmds[-1], [0.2, 0.5] + [1.0] * gripper)  # + gripper closed
    spin_for(0.8)                                           # the deadman lapses: hand back
    assert beats and beats[-1] is False and beats.count(False) == 1, beats[-3:]
    os.close(master)


def test_joy_cartesian_moves_the_hand_through_the_robots_command_adapter(procs, node,
                                                                        tmp_path):
    """The joystick moves the hand forward in a straight line, through the robot's adapter.

    The robot is the sim arm described as a ros2_control arm: JointTrajectory commands,
    joint states in the driver's order with extras.
    """
    from trajectory_msgs.msg import JointTrajectory

    from il_ros.robot import load_robot
    from il_ros.sim import make_env
    from test_sim_robot_robots import _like_a_real_robot
    path = _like_a_real_robot(tmp_path)
    robot = load_robot(path)
    p = procs.python('il_ros.ros.teleop', '--ros-args', '-p', 'mode:=joy',
                     '-p', f'robot:={path}', '-p', 'joy_speed:=0.1', name='teleop')
    env = make_env('lift', render=False, seed=1)
    names = robot.sim.published_joints
    pos, _, _ = env.joint_state()
    measured = JointState(name=names, position=[float(pos[env.joint_names.index(n)])
                                                for n in names])
    start = env.ee_pos()
    cmds = []
    node.create_subscription(JointTrajectory, robot.command.topic, cmds.append, 10)
    pub_js = node.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)
    pub_joy = node.create_publisher(Joy, '/joy', qos_profile_sensor_data)

    def spin_for(seconds, joy=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub_js.publish(measured)
            if joy is not None:
                pub_joy.publish(joy)
            rclpy.spin_once(node, timeout_sec=0.02)
            assert p.poll() is None, procs.log(p)

    wait_for(lambda: node.count_subscribers('/joy') > 0, 30, what='teleop to subscribe /joy')
    spin_for(0.5)
    spin_for(1.5, Joy(axes=[0.0, 1.0, 0.0, 0.0, 0.0], buttons=[0, 0, 0, 0, 1]))  # forward
    assert cmds, procs.log(p)
    assert all(list(m.joint_names) == robot.action_names for m in cmds)
    q = np.array(cmds[-1].points[0].positions)
    assert np.all(q >= robot.action_low) and np.all(q <= robot.action_high)
    env.data.qpos[env.ik.qpos_idx] = q[:-1]
    hand = env.ik.site_pose(env.data.qpos)[0]
    moved = hand - start
    assert moved[0] > 0.05, moved                        # ~0.1 m/s for ~1.5 s
    np.testing.assert_allclose(moved[1:], 0.0, atol=0.005)
    env.close()


def test_keyboard_cartesian_keys_move_the_hand_through_a_terminal(procs, node, tmp_path):
    """On the sim arm (space auto: cartesian) 'r' lifts the hand by key_step_m per press."""
    import os
    import pty
    import subprocess
    import sys

    from il_ros.sim import make_env
    env = make_env('lift', render=False, seed=2)
    pos, _, _ = env.joint_state()
    measured = JointState(name=env.joint_names, position=[float(x) for x in pos])
    start = env.ee_pos()
    master, slave = pty.openpty()
    log = tmp_path / 'kb.log'
    p = subprocess.Popen(
        [sys.executable, '-m', 'il_ros.ros.teleop', '--ros-args', '-p', 'mode:=keyboard',
         '-p', 'key_step_m:=0.02', '-p', 'deadman_timeout_s:=0.5'],
        stdin=slave, stdout=open(log, 'wb'), stderr=subprocess.STDOUT, start_new_session=True)
    procs.procs.append((p, log))
    os.close(slave)
    cmds = []
    node.create_subscription(Float64MultiArray, '/il/command',
                             lambda m: cmds.append(np.array(m.data)), 10)
    pub_js = node.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)

    def spin_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub_js.publish(measured)
            rclpy.spin_once(node, timeout_sec=0.02)
            assert p.poll() is None, log.read_text()

    wait_for(lambda: node.count_subscribers('/joint_states') > 0, 30,
             what='keyboard teleop to start')
    spin_for(1.0)
    os.write(master, b'rrr')
    spin_for(0.4)
    assert cmds, log.read_text()
    assert 'cartesian' in log.read_text()
    env.data.qpos[env.ik.qpos_idx] = cmds[-1][:-1]
    moved = env.ik.site_pose(env.data.qpos)[0] - start
    np.testing.assert_allclose(moved, [0.0, 0.0, 0.06], atol=0.003)
    os.close(master)
    env.close()
