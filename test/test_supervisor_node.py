"""The supervisor node judges the robot's own command message, as a real process over DDS.

The robot here speaks JointTrajectory on its own topic (the sim arm described as a
ros2_control arm would be): the supervisor reads the executed command back into action
order, takes over a command that drifts off the expert's (heartbeats and the expert's command
on the human channel), and warns about a command it cannot read instead of judging it.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402

from conftest import wait_for  # noqa: E402
from test_sim_robot_robots import _like_a_real_robot  # noqa: E402


def test_supervisor_takes_over_a_drifting_joint_trajectory(procs, ros_node, tmp_path):
    from il_ros.robot import load_robot
    from il_ros.ros.command_adapters import make_adapter
    from il_ros.ros.conversions import array_msg
    from il_ros.sim import make_env, make_expert
    path = _like_a_real_robot(tmp_path)
    robot = load_robot(path)
    p = procs.python('il_ros.ros.supervisor', '--ros-args', '-p', f'robot:={path}',
                     name='supervisor')
    node = ros_node
    beats, human = [], []
    node.create_subscription(Bool, '/il/intervention', lambda m: beats.append(m.data), 10)
    node.create_subscription(Float64MultiArray, '/il/teleop/command',
                             lambda m: human.append(list(m.data)), 10)
    pub_state = node.create_publisher(Float64MultiArray, '/sim/state', 10)
    adapter = make_adapter(robot.command.type, robot.action_names, 0.05)
    pub_cmd = node.create_publisher(adapter.msg_type, robot.command.topic, 10)
    wait_for(lambda: node.count_subscribers(robot.command.topic) > 0
             and node.count_subscribers('/sim/state') > 0, 30, what='the supervisor')
    env, expert = make_env('lift', render=False), make_expert('lift', seed=0)
    env.reset(seed=0)
    expert.reset(env, seed=0)

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
        assert p.poll() is None, procs.log(p)

    # A command that lacks the gripper is not judged (and says why).
    bad = make_adapter(robot.command.type, robot.action_names[:-1], 0.05)
    for _ in range(3):
        pub_state.publish(array_msg(env.get_state(), 'lift_state'))
        spin(0.05)
        pub_cmd.publish(bad(expert.act(env).label[:-1], 0.0))
        spin(0.05)
    wait_for(lambda: 'cannot read the command' in procs.log(p), 10, what='the warning')
    assert not beats
    # The executed command drifts 0.3 rad off the expert's in the base joint: take over.
    for _ in range(15):
        pub_state.publish(array_msg(env.get_state(), 'lift_state'))
        spin(0.05)
        executed = expert.act(env).label + np.r_[0.3, np.zeros(len(robot.action_names) - 1)]
        pub_cmd.publish(adapter(executed, 0.0))
        spin(0.05)
        env.step(executed)
        if beats:
            break
    spin(0.3)
    assert beats and beats[0] is True, procs.log(p)
    assert human and len(human[-1]) == len(robot.action_names)
    env.close()
    # Ctrl-C while in control: a clean exit (once a traceback from the hand-back publish).
    assert procs.stop(p) == 0 and 'Traceback' not in procs.log(p), procs.log(p)
