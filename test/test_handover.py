"""Taking over and handing back, over real processes.

- A person holds the joystick's deadman for about 1 s while a random-init policy drives the
  sim arm (sim_robot, controller, teleop in joy mode, recorder, each its own process): the
  teleop's first command is the command the controller was executing (no jump back to the
  lagging measured pose), the bag's ``/il/control_source`` and, after ``il-ros convert``,
  the dataset hold about 1 s of ``intervention`` frames: the first frames of the correction
  are recorded and labelled, not only one.
- The hand-back: after a takeover at one pose, a policy whose actions are far from it is
  reset (its ``generation`` grows) and its first commands move at most ``max_step`` per tick
  from the human's last command: they ramp, they do not jump (the test plays the robot, as
  in test_controller_safety.py).

Every wait is event-based with a generous timeout; the 1 s of the takeover is the test's
own wall time, and the counts allow for a loaded machine (0.6 s to 1.6 s worth of frames).
The teleop starts seconds before the takeover, so the test first waits for the recorder to
subscribe to its topics and for an unrecorded takeover that the teleop logs as starting from
the robot's command (DDS discovery of a new node takes a few seconds here).
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from conftest import tiny_sim_checkpoint  # noqa: E402
from test_controller_node import make_checkpoint, Robot, start  # noqa: E402

RATE = 20.0          # the sim arm's control rate, and the conversion's grid
HELD_S = 1.0         # how long the test holds the deadman (wall time)
SEED = 3000


def messages(bag, topic):
    """[(receive time ns, message)] of ``topic`` in ``bag``."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        assert conns, f'{topic} not in {bag}'
        return [(t, store.deserialize_cdr(raw, c.msgtype))
                for c, t, raw in reader.messages(connections=conns)]


def test_a_one_second_takeover_is_about_one_second_of_intervention_frames(procs, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Joy
    from std_srvs.srv import SetBool, Trigger

    from il_ros import keys
    from il_ros.data.store import Dataset, decode_labels
    from il_ros.ros.dagger_driver import start_sim_graph
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt', 'lift')
    bags = tmp_path / 'bags'
    runner, driver = start_sim_graph('lift', tmp_path / 'logs', bags, first_seed=SEED,
                                     checkpoint=ckpt, with_trainer=False,
                                     nodes=['sim_robot', 'controller', 'recorder'])
    try:
        teleop = procs.python(
            'il_ros.ros.teleop', '--ros-args', '-p', 'mode:=joy', '-p', 'space:=joint',
            '-p', f'command_topic:={keys.TOPIC_TELEOP_COMMAND}',
            '-p', 'label_topic:=il/teleop/label', name='teleop', env=runner.env)
        joy = driver.node.create_publisher(Joy, 'joy', qos_profile_sensor_data)
        driver.spin_until(lambda: driver.node.count_subscribers('joy') > 0 or
                          teleop.poll() is not None, 60, 'the teleop to subscribe /joy')
        assert teleop.poll() is None, procs.log(teleop)
        # The recorder subscribes to a topic once it has discovered a publisher (every
        # discovery_period_s), the controller from its start: 2 subscribers each means the
        # teleop has been discovered, so the takeover is recorded from its first tick.
        driver.spin_until(lambda: min(driver.node.count_subscribers(t) for t in (
            keys.TOPIC_TELEOP_COMMAND, keys.TOPIC_INTERVENTION)) >= 2, 60,
            "the recorder to subscribe the teleop's topics")

        def trigger(name):
            ans = driver.call(Trigger, name, Trigger.Request())
            assert ans.success, (name, ans.message)
            return ans.message

        def set_bool(name, on):
            ans = driver.call(SetBool, name, SetBool.Request(data=on))
            assert ans.success, (name, ans.message)
            return ans.message

        def hold(seconds, pressed):
            """Publish the joystick (still stick; deadman ``pressed``) for ``seconds``."""
            msg = Joy(axes=[0.0] * 8, buttons=[0, 0, 0, 0, int(pressed)])
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                joy.publish(msg)
                driver.executor.spin_once(timeout_sec=0.02)
                driver.check_alive()

        # Unrecorded warm-up takeovers until one starts from the controller's command: the
        # teleop's subscription to it is matched (DDS discovery of a node started seconds
        # ago), so the recorded takeover tests where a takeover starts, not discovery.
        set_bool('controller/enable', True)

        def warm_up():
            hold(0.2, True)
            hold(0.4, False)
            return "takeover from the robot's command" in procs.log(teleop)
        driver.spin_until(warm_up, 60, "a takeover from the robot's command")
        set_bool('controller/enable', False)

        assert trigger(keys.SERVICE_SIM_RESET).endswith(f'seed {SEED}')
        trigger('recorder/start_episode')
        trigger('controller/reset')
        driver.sources.clear()
        set_bool('controller/enable', True)
        driver.spin_until(lambda: driver.sources[-3:] == ['policy'] * 3, 60,
                          'the policy driving')
        hold(HELD_S, True)                                    # the takeover
        hold(1.0, False)                                      # the hand-back
        driver.spin_until(lambda: driver.sources[-3:] == ['policy'] * 3, 30,
                          'the policy back after the hand-back')
        set_bool('controller/enable', False)
        stopped = driver.call(SetBool, 'recorder/stop_episode', SetBool.Request(data=False))
        assert stopped.success, stopped.message
        live = list(driver.sources)
    finally:
        driver.close()
        runner.stop()
    assert 'intervention' in live, (live, procs.log(teleop))

    metas = sorted(bags.glob('episode_*.json'))
    assert len(metas) == 1, metas
    bag = metas[0].with_suffix('')
    # The teleop's first command is one the controller executed just before (the robot's
    # current command when the deadman was pressed), exactly, not the measured pose.
    human = messages(bag, '/' + keys.TOPIC_TELEOP_COMMAND)
    executed = messages(bag, '/' + keys.TOPIC_COMMAND)
    t_h, first = human[0][0], np.asarray(human[0][1].data)
    # Bag times are the recorder's receive times: under load it can receive the controller's
    # command after the teleop's reply to it, so the window reaches 0.2 s past t_h.
    before = [np.asarray(m.data) for t, m in executed if t_h - 1e9 < t < t_h + 2e8]
    assert any(np.allclose(c, first, rtol=0, atol=1e-9) for c in before), \
        (first, before[-3:], procs.log(teleop)[-2000:])

    # About 1 s of intervention ticks, in the bag and in the dataset (a loaded machine may
    # leave a HOLD tick inside the takeover, so the frames are counted, not a run of them).
    sources = [m.data for _, m in messages(bag, '/' + keys.TOPIC_CONTROL_SOURCE)]
    lo, hi = int(0.6 * HELD_S * RATE), int(1.6 * HELD_S * RATE)
    assert lo <= sources.count('intervention') <= hi, sources

    ds_path = tmp_path / 'dataset'
    # Labels are the point here (staleness is tested in test_convert.py): a stall of a loaded
    # machine at the handover may leave a gap in /il/command, so allow 8 periods.
    res = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'convert', str(bags), '--out',
                          str(ds_path), '--image-size', '48', '48', '--rate', str(RATE),
                          '--stale-reject', '8'], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ds = Dataset(ds_path)
    assert ds.num_episodes == 1
    labels = decode_labels(ds.read('label', 0, 0, ds.episode_lengths[0]))
    assert lo <= labels.count('intervention') <= hi, labels


JOINTS_POSE = np.array([0.1, -0.2, 0.3])      # Robot.joints: the measured pose
HUMAN = np.array([0.3, 0.0, 0.5])             # the human's pose: 0.2 from the measured one
MAX_STEP = 0.02


def test_the_hand_back_resets_the_policy_and_its_first_commands_ramp(procs, ros_node,
                                                                     tmp_path):
    """Policy actions about 0.9 on every joint, 0.4-0.9 from the human's last command.

    The human's pose differs from the measured one (the test robot does not move), so a
    step limit taken against the measured pose instead of the last command would show too.
    """
    import torch
    torch.set_num_threads(1)
    far = make_checkpoint(tmp_path / 'far', 4, action_min=[0.88] * 3, action_max=[0.92] * 3)
    robot = Robot(ros_node)
    robot.human = HUMAN.copy()          # held from the start: the policy never drives before
    start(procs, robot, f'checkpoint:={far}', 'enabled:=true', f'max_step:=[{MAX_STEP}]')
    robot.wait(lambda: robot.loaded(far)() and not robot.status[-1]['loading'], 60,
               'the checkpoint to load')
    robot.wait(lambda: len(robot.cmds) >= 3 and np.allclose(robot.cmds[-1][1], HUMAN), 60,
               'the human command on the robot (ramped from the measured pose)')
    t_human = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t_human)) >= 10, 30, '10 human ticks')
    assert set(robot.sources_since(t_human)) == {'intervention'}
    robot.wait(lambda: robot.status and robot.status[-1]['source'] == 'intervention', 30,
               'a status of the takeover')
    gen0 = robot.status[-1]['generation']
    robot.release()
    t_rel = time.monotonic()
    robot.wait(lambda: robot.sources_since(t_rel).count('policy') >= 10, 60,
               '10 policy ticks after the hand-back')
    robot.wait(lambda: robot.status[-1]['source'] == 'policy', 30, 'a status of the policy')
    assert robot.status[-1]['generation'] > gen0, 'the policy was not reset at the hand-back'

    before = [c for ts, c in robot.cmds if ts < t_rel]
    after = robot.cmds_since(t_rel)
    assert np.allclose(before[-1], HUMAN), before[-1]
    c = np.array([before[-1], *after])
    step = np.abs(np.diff(c, axis=0)).max(axis=1)
    assert step.max() <= MAX_STEP + 1e-9, step
    # They ramp towards the policy's actions: at the limit, away from the human's pose.
    assert (step > MAX_STEP - 1e-9).sum() >= 5, step
    assert np.all(c[-1] > HUMAN + 5 * MAX_STEP - 1e-9), c[-1]
