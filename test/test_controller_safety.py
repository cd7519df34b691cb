"""The controller's takeover and fault cases, over the real node process.

The test process plays the robot and the human (test_controller_node.Robot). The loop's
timing is tested exactly with a fake clock in test/test_control_loop.py; here every wait is
event-based with a generous timeout, and what is checked is what reaches the topics:

- a human command sent 3 s before any heartbeat is never executed, heartbeats alone HOLD;
  a takeover puts the human's command on the robot, the explicit hand-back gives control
  back to the policy (reset), with one command per control source across both; heartbeats
  that stop without a hand-back latch a HOLD until ``~/enable``;
- the step limit cannot be turned off by 0, a negative or NaN at run time (refused with a
  reason) and the published commands keep to it (start-up refusals: test_node_parameters);
- a chunk whose first action jumps beyond ``chunk_max_jump`` never reaches the command
  topic (``chunk_policy`` reject); ``max_invalid_chunks`` of them in a row latch a fault:
  nothing but HOLD is published, also across a hot swap and a human takeover, until
  ``~/reset``, which clears it;
- a camera whose header stamp freezes while its messages keep arriving, a mono8 or 16UC1
  image, and a JointState naming a joint twice each HOLD with a warning naming the topic (an
  image of another size is fitted to the checkpoint's: test_images).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from test_controller_node import make_checkpoint, Robot, start  # noqa: E402

FAR = np.array([0.9, -0.9, 0.9])      # outside the tiny policy's action range (+-0.5)
POSE = np.array([0.1, -0.2, 0.3])     # Robot.joints: the measured pose, in action order


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('ckpt')
    return {'a': make_checkpoint(d / 'a', 0),
            # actions about 0.9 on every joint: 0.6-1.1 from the robot's pose
            'far': make_checkpoint(d / 'far', 4, action_min=[0.88] * 3, action_max=[0.92] * 3),
            # actions within 0.02 of the robot's pose
            'near': make_checkpoint(d / 'near', 5, action_min=POSE - 0.02,
                                    action_max=POSE + 0.02)}


def driving(robot):
    robot.wait(lambda: [s for _, s in robot.sources[-3:]] == ['policy'] * 3, 60,
               'the policy driving')


def steps(cmds) -> np.ndarray:
    c = np.array(cmds)
    return np.abs(np.diff(c, axis=0)).max(axis=1)


def test_takeover_stale_human_command_lapse_and_step_limit(procs, ros_node, ckpts):
    robot = Robot(ros_node)
    p = start(procs, robot, f'checkpoint:={ckpts["a"]}', 'enabled:=true', 'max_step:=[5.0]',
              'takeover_timeout_s:=0.3')
    driving(robot)

    # 1. A human command 3 s before any heartbeat, then heartbeats alone (35+ ticks).
    robot.pub_human.publish(Float64MultiArray(data=list(FAR)))
    robot.spin(3.0)
    robot.beats_only = True
    t_beats = time.monotonic()
    robot.wait(lambda: robot.status[-1]['reason'] == 'human_command_stale', 30,
               'HOLD for the stale human command')
    robot.wait(lambda: len(robot.sources_since(t_beats)) >= 35, 30, '35 ticks of heartbeats')
    t_held = next(ts for ts, s in robot.sources if ts >= t_beats and s == 'hold')
    assert 'intervention' not in robot.sources_since(t_beats)
    assert set(robot.sources_since(t_held)) == {'hold'}          # nor does the policy drive
    assert not any(np.allclose(c, FAR) for _, c in robot.cmds), 'the stale command was sent'
    robot.beats_only = False
    robot.release()
    t_rel = time.monotonic()
    robot.wait(lambda: 'policy' in robot.sources_since(t_rel), 30, 'the policy back')

    # 2. A takeover: the human's command drives; the hand-back resets the policy. While
    #    enabled every tick sends a command, also across the takeover, the hand-back and
    #    the re-priming after it (HOLD repeats the last command sent).
    gen0 = robot.status[-1]['generation']
    human = np.array([0.45, -0.35, 0.25])
    robot.human = human
    robot.publish(force=True)
    t_take = robot.last_beat
    robot.wait(lambda: any(np.allclose(c, human) for c in robot.cmds_since(t_take)), 30,
               'the human command on the robot')
    t_cmd = next(ts for ts, c in robot.cmds if ts >= t_take and np.allclose(c, human))
    robot.wait(lambda: len(robot.sources_since(t_cmd + 0.01)) >= 15, 30, 'human ticks')
    assert set(robot.sources_since(t_cmd + 0.01)) == {'intervention'}
    assert all(np.allclose(c, human) for c in robot.cmds_since(t_cmd + 0.01))
    robot.release()
    t_rel = time.monotonic()
    robot.wait(lambda: robot.sources_since(t_rel)[-3:] == ['policy'] * 3, 30,
               'the policy back after the hand-back')
    robot.wait(lambda: robot.status[-1]['source'] == 'policy', 30, 'a status of the policy')
    st = robot.status[-1]
    assert not st['takeover_latched'] and st['handovers'] >= 2, st
    assert st['generation'] > gen0, 'the policy was not reset at the handover'
    t_end = robot.sources[-2][0]
    n_src = len([ts for ts, _ in robot.sources if t_take <= ts <= t_end])
    n_cmd = len([ts for ts, _ in robot.cmds if t_take <= ts <= t_end])
    assert n_src >= 15 and abs(n_cmd - n_src) <= 1, (n_cmd, n_src)

    # 3. Heartbeats that stop without a hand-back (a crashed teleop): latched HOLD,
    #    whatever the policy could do, until ~/enable.
    robot.human = human
    t_take = time.monotonic()
    robot.wait(lambda: 'intervention' in robot.sources_since(t_take), 30, 'the takeover')
    robot.human = None                                   # silence: no Bool(False)
    t_stop = time.monotonic()
    robot.wait(lambda: robot.status[-1]['reason'] == 'takeover_lapsed', 30, 'the lapse')
    assert robot.status[-1]['takeover_latched'] and robot.status[-1]['takeover_lapses'] == 1
    t_latched = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t_latched)) >= 30, 30, '30 latched ticks')
    assert set(robot.sources_since(t_latched)) == {'hold'}
    held = robot.cmds_since(t_stop)
    assert held and all(np.allclose(c, human) for c in held), 'HOLD must freeze'
    assert 'without a hand-back' in procs.log(p)
    assert robot.call(SetBool, '/controller/enable', SetBool.Request(data=True)).success
    t_on = time.monotonic()
    robot.wait(lambda: robot.sources_since(t_on)[-3:] == ['policy'] * 3, 30,
               'the policy after ~/enable')
    assert not robot.status[-1]['takeover_latched']

    # 4. The step limit at run time: 0, negative, NaN and inf are refused (the limit stays),
    #    a valid one applies at once; a far human command ramps at the limit.
    res = robot.set_param('max_step', [0.05])
    assert res.successful, res.reason
    robot.human = FAR.copy()
    t0 = time.monotonic()
    robot.wait(lambda: 'intervention' in robot.sources_since(t0), 30, 'the takeover')
    for bad in ([0.0], [-0.1], [float('nan')], [float('inf')], [0.1, 0.1]):
        res = robot.set_param('max_step', bad)
        assert not res.successful and 'max_step' in res.reason, (bad, res.reason)
        robot.human = -robot.human    # a new far target each time: the ramp goes on
        t_flip = time.monotonic()
        robot.wait(lambda: len(robot.cmds_since(t_flip)) >= 10, 30, 'commands')
        if bad == [float('inf')]:
            assert 'allow_unlimited_step' in res.reason        # inf: only when allowed
    cmds = robot.cmds_since(t0)
    d = steps(cmds)
    assert len(cmds) >= 30 and d.max() <= 0.05 + 1e-9, d.max()
    assert (d > 0.05 - 1e-9).sum() >= 10, d                   # it did ramp at the limit
    assert robot.status[-1]['safety']['rate_limited'] >= 10
    res = robot.set_param('max_step', [0.02])
    assert res.successful, res.reason
    t1 = time.monotonic()
    robot.human = -robot.human
    robot.wait(lambda: len(robot.cmds_since(t1)) >= 20, 30, 'commands at the new limit')
    d = steps(robot.cmds_since(t1))
    assert d.max() <= 0.02 + 1e-9 and (d > 0.02 - 1e-9).sum() >= 10, d
    assert robot.status[-1]['unlimited_step'] == []


def test_chunk_jump_never_reaches_the_robot_and_the_fault_latches_until_reset(
        procs, ros_node, ckpts):
    robot = Robot(ros_node)
    p = start(procs, robot, f'checkpoint:={ckpts["far"]}', 'enabled:=true',
              'chunk_policy:=reject', 'chunk_max_jump:=[0.2]', 'max_invalid_chunks:=3')
    robot.wait(robot.loaded(ckpts['far']), 60, 'the far checkpoint to load')
    robot.wait(lambda: robot.status[-1]['fault'] is not None, 30, 'the latched fault')
    st = robot.status[-1]
    assert st['fault']['reason'] == 'invalid_chunks', st
    assert st['chunks']['jump'] >= 3 and st['chunks']['rejected'] >= 3, st
    assert st['reason'] == 'fault_invalid_chunks' and st['source'] == 'hold', st
    assert 'FAULT invalid_chunks' in procs.log(p)
    # (a) No action of the far chunks ever reached the command topic: every command is the
    #     HOLD pose (before any command, HOLD sends the measured pose).
    t0 = time.monotonic()
    robot.wait(lambda: len(robot.cmds_since(t0)) >= 20, 30, '20 commands while latched')
    assert robot.cmds and all(np.allclose(c, POSE) for _, c in robot.cmds), robot.cmds[-3:]
    assert 'policy' not in [s for _, s in robot.sources]

    # (b) Latched: nothing but HOLD across a hot swap to a good checkpoint and a human
    #     takeover, until ~/reset.
    res = robot.set_param('checkpoint', ckpts['near'])
    assert res.successful, res.reason
    robot.wait(robot.loaded(ckpts['near']), 60, 'the near checkpoint to swap in')
    robot.human = np.array([0.45, -0.35, 0.25])
    t1 = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t1)) >= 20, 30, '20 ticks while latched')
    robot.human = None
    robot.release()
    assert set(robot.sources_since(t0)) == {'hold'}
    assert all(np.allclose(c, POSE) for c in robot.cmds_since(t0))
    st = robot.status[-1]
    assert st['fault']['reason'] == 'invalid_chunks' and st['faults'] == 1, st
    ans = robot.call(Trigger, '/controller/reset', Trigger.Request())
    assert ans.success and 'invalid_chunks' in ans.message, ans.message
    t2 = time.monotonic()
    robot.wait(lambda: robot.sources_since(t2)[-3:] == ['policy'] * 3, 30,
               'the policy after ~/reset')
    robot.wait(lambda: robot.status[-1]['source'] == 'policy', 30, 'a status of the policy')
    st = robot.status[-1]
    assert st['fault'] is None and st['faults'] == 1 and st['resets'] >= 1, st
    near = np.array(robot.cmds_since(t2))
    assert np.all(np.abs(near - POSE) <= 0.2), near


def test_frozen_camera_and_malformed_streams_hold_naming_the_topic(procs, ros_node, ckpts):
    robot = Robot(ros_node)
    # fault_periods: a frozen camera HOLDs here, it does not latch (that is the first test).
    p = start(procs, robot, f'checkpoint:={ckpts["a"]}', 'enabled:=true',
              'fault_periods:=2000.0')
    driving(robot)
    cases = [
        ('frozen', "/camera/front/image_raw: messages arrive but their header stamp",
         lambda on: setattr(robot, 'image_stamp',
                            ros_node.get_clock().now().to_msg() if on else None)),
        ('bad_image', "/camera/front/image_raw: encoding 'mono8'",
         lambda on: setattr(robot, 'encoding', 'mono8' if on else 'rgb8')),
        ('bad_image', "/camera/front/image_raw: encoding '16UC1'",   # (any size is fitted)
         lambda on: setattr(robot, 'encoding', '16UC1' if on else 'rgb8')),
        ('bad_joint_states', "/joint_states: joints ['j0'] are named more than once",
         lambda on: setattr(robot, 'joint_names', ['j0', 'j2', 'j1', 'j0'] if on
                            else ['other', 'j2', 'j1', 'j0'])),
    ]
    for reason, line, fault in cases:
        fault(True)
        t0 = time.monotonic()
        robot.wait(lambda: robot.status[-1]['reason'] == reason, 30, f'HOLD {reason}')
        robot.wait(lambda: line in procs.log(p), 30, f'the warning {line!r}')
        t1 = time.monotonic()
        robot.wait(lambda: len(robot.sources_since(t1)) >= 5, 30, 'five more ticks')
        assert robot.last_camera > t0                        # the messages kept coming
        assert set(robot.sources_since(t1)) == {'hold'}
        assert robot.status[-1]['reason'] == reason
        fault(False)
        t1 = time.monotonic()
        robot.wait(lambda: robot.sources_since(t1)[-3:] == ['policy'] * 3, 30,
                   f'the policy back after {reason}')
    assert robot.status[-1]['tick_errors'] == 0 and robot.status[-1]['fault'] is None
