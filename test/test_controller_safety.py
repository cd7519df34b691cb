"""The controller's fault cases, over the real node process (issue #14).

The test process plays the robot and the human (test_controller_node.Robot). Checked:

- the step limit cannot be turned off by 0, a negative or NaN at run time (refused with a
  reason) and the published commands keep to it (start-up refusals: test_node_parameters);
- a human command sent 3 s before any heartbeat is never executed, heartbeats alone HOLD;
- heartbeats that stop without a hand-back latch a HOLD until ``~/enable``;
- a camera whose header stamp freezes while its messages keep arriving, a mono8 or resized
  image, and a JointState naming a joint twice each HOLD with a warning naming the topic.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from test_controller_node import HW, make_checkpoint, Robot, start  # noqa: E402

FAR = np.array([0.9, -0.9, 0.9])      # outside the tiny policy's action range (+-0.5)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    return make_checkpoint(tmp_path_factory.mktemp('ckpt') / 'a', 0)


def driving(robot):
    robot.wait(lambda: [s for _, s in robot.sources[-3:]] == ['policy'] * 3, 60,
               'the policy driving')


def steps(cmds) -> np.ndarray:
    c = np.array(cmds)
    return np.abs(np.diff(c, axis=0)).max(axis=1)


def test_step_limit_cannot_be_disabled_at_run_time(procs, ros_node, ckpt):
    robot = Robot(ros_node)
    start(procs, robot, f'checkpoint:={ckpt}', 'enabled:=true', 'max_step:=0.05')
    driving(robot)
    robot.human = FAR.copy()          # a human command far away: ramps at the step limit
    t0 = time.monotonic()
    robot.wait(lambda: 'intervention' in robot.sources_since(t0), 10, 'the takeover')
    for bad in (0.0, -0.1, float('nan'), float('inf')):
        res = robot.set_param('max_step', bad)
        assert not res.successful and 'max_step' in res.reason, (bad, res.reason)
        robot.human = -robot.human    # a new far target each time: the ramp goes on
        t_flip = time.monotonic()
        robot.wait(lambda: len(robot.cmds_since(t_flip)) >= 10, 10, 'commands')
    assert 'allow_unlimited_step' in res.reason                # inf: only when allowed
    cmds = robot.cmds_since(t0)
    assert len(cmds) >= 30
    d = steps(cmds)
    assert d.max() <= 0.05 + 1e-9, d.max()
    assert (d > 0.05 - 1e-9).sum() >= 10, d                   # it did ramp at the limit
    assert robot.status[-1]['safety']['rate_limited'] >= 10

    # A valid change applies at once.
    res = robot.set_param('max_step', 0.02)
    assert res.successful, res.reason
    t1 = time.monotonic()
    robot.human = -robot.human
    robot.wait(lambda: len(robot.cmds_since(t1)) >= 20, 10, 'commands at the new limit')
    d = steps(robot.cmds_since(t1))
    assert d.max() <= 0.02 + 1e-9 and (d > 0.02 - 1e-9).sum() >= 10, d
    assert robot.status[-1]['unlimited_step'] == []


def test_stale_human_command_is_never_executed_and_a_silent_stop_latches_hold(
        procs, ros_node, ckpt):
    robot = Robot(ros_node)
    p = start(procs, robot, f'checkpoint:={ckpt}', 'enabled:=true', 'max_step:=5.0',
              'takeover_timeout_s:=0.3')
    driving(robot)

    # 1. A human command 3 s before any heartbeat, then heartbeats alone (30+ ticks).
    robot.pub_human.publish(Float64MultiArray(data=list(FAR)))
    robot.spin(3.0)
    robot.beats_only = True
    t_beats = time.monotonic()
    robot.wait(lambda: robot.status[-1]['reason'] == 'human_command_stale', 10,
               'HOLD for the stale human command')
    robot.wait(lambda: len(robot.sources_since(t_beats)) >= 35, 20, '35 ticks of heartbeats')
    assert 'intervention' not in robot.sources_since(t_beats)
    assert set(robot.sources_since(t_beats + 0.3)) == {'hold'}   # nor does the policy drive
    assert not any(np.allclose(c, FAR) for _, c in robot.cmds), 'the stale command was sent'
    assert robot.status[-1]['reason'] == 'human_command_stale'

    # 2. The explicit hand-back gives control back to the policy.
    robot.beats_only = False
    robot.release()
    t_rel = time.monotonic()
    robot.wait(lambda: 'policy' in robot.sources_since(t_rel), 10, 'the policy back')

    # 3. A takeover whose heartbeats stop without a hand-back (a crashed teleop): latched
    #    HOLD, whatever the policy could do, until ~/enable.
    human = np.array([0.45, -0.35, 0.25])
    robot.human = human
    t_take = time.monotonic()
    robot.wait(lambda: any(np.allclose(c, human) for c in robot.cmds_since(t_take)), 10,
               'the human command on the robot')
    robot.human = None                                   # silence: no Bool(False)
    t_stop = time.monotonic()
    robot.wait(lambda: robot.status[-1]['reason'] == 'takeover_lapsed', 10, 'the lapse')
    assert robot.status[-1]['takeover_latched'] and robot.status[-1]['takeover_lapses'] == 1
    t_latched = time.monotonic()
    robot.spin(2.0)                                      # >> takeover_timeout_s
    assert set(robot.sources_since(t_latched)) == {'hold'}
    held = robot.cmds_since(t_stop)
    assert held and all(np.allclose(c, human) for c in held), 'HOLD must freeze'
    assert 'without a hand-back' in procs.log(p)
    assert robot.call(SetBool, '/controller/enable', SetBool.Request(data=True)).success
    t_on = time.monotonic()
    robot.wait(lambda: robot.sources_since(t_on)[-3:] == ['policy'] * 3, 10,
               'the policy after ~/enable')
    assert not robot.status[-1]['takeover_latched']


def test_frozen_camera_and_malformed_streams_hold_naming_the_topic(procs, ros_node, ckpt):
    robot = Robot(ros_node)
    p = start(procs, robot, f'checkpoint:={ckpt}', 'enabled:=true')
    driving(robot)
    cases = [
        ('frozen', "/camera/front/image_raw: messages arrive but their header stamp",
         lambda on: setattr(robot, 'image_stamp',
                            ros_node.get_clock().now().to_msg() if on else None)),
        ('bad_image', "/camera/front/image_raw: encoding 'mono8'",
         lambda on: setattr(robot, 'encoding', 'mono8' if on else 'rgb8')),
        ('bad_image', '/camera/front/image_raw: image is 16x16',
         lambda on: setattr(robot, 'size', 16 if on else HW)),
        ('bad_joint_states', "/joint_states: joints ['j0'] are named more than once",
         lambda on: setattr(robot, 'joint_names', ['j0', 'j2', 'j1', 'j0'] if on
                            else ['other', 'j2', 'j1', 'j0'])),
    ]
    for reason, line, fault in cases:
        fault(True)
        t0 = time.monotonic()
        robot.wait(lambda: robot.status[-1]['reason'] == reason, 10, f'HOLD {reason}')
        robot.spin(0.5)
        assert robot.last_camera > t0 + 0.4                  # the messages kept coming
        assert robot.status[-1]['source'] == 'hold' and robot.status[-1]['reason'] == reason
        assert line in procs.log(p), (line, procs.log(p)[-2000:])
        fault(False)
        t1 = time.monotonic()
        robot.wait(lambda: robot.sources_since(t1)[-3:] == ['policy'] * 3, 10,
                   f'the policy back after {reason}')
    assert robot.status[-1]['tick_errors'] == 0
