"""/diagnostics: the updater helper's levels on injected clocks, and every node over real DDS.

The unit tests drive il_ros.ros.diagnostics and the nodes' tasks (il_ros.ros.node_diagnostics)
with fake clocks and no timer; the graph test starts sim_robot, teleop, recorder,
controller, trainer and supervisor as processes, once, and reads their statuses from
``/diagnostics`` as any ROS tool would.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import rclpy

from conftest import wait_for


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def values(msg) -> dict:
    return {kv.key: kv.value for kv in msg.values}


def by_name(arr) -> dict:
    return {s.name: s for s in arr.status}


# ---------------------------------------------------------------------------- the helper

def test_status_merge_keeps_the_worst_level_and_joins_its_messages():
    from il_ros.ros.diagnostics import ERROR, fmt, OK, Status, WARN
    s = Status()
    s.summary(OK, 'idle')
    s.merge(OK, 'ignored')                      # an OK never adds to a message
    assert (s.level, s.message) == (OK, 'idle')
    s.merge(WARN, 'a late')
    s.merge(WARN, 'b silent')
    assert (s.level, s.message) == (WARN, 'a late; b silent')
    s.merge(ERROR, 'disk full')
    s.merge(WARN, 'c late')
    assert (s.level, s.message) == (ERROR, 'disk full')
    assert [fmt(v) for v in (None, True, 0.123456, 3, {'b': 1, 'a': 2}, float('nan'))] == \
        ['-', 'true', '0.1235', '3', '{"a": 2, "b": 1}', 'nan']


def test_rate_meter_and_deltas_on_an_injected_clock():
    from il_ros.ros.diagnostics import Deltas, RateMeter
    clock = FakeClock()
    m = RateMeter(clock)
    assert m.age() is None
    clock.t += 2.0
    assert m.rate() == 0.0                      # an empty window: no events, not None
    for _ in range(10):
        clock.t += 0.1
        m.tick()
    assert m.rate() == pytest.approx(10.0)      # 10 events in the 1 s since the last read
    clock.t += 3.0
    assert m.age() == pytest.approx(3.0) and m.count == 10
    assert m.rate() == 0.0
    assert m.rate() is None                     # no time passed since the last read
    d = Deltas()
    assert d({'a': 3, 'b': 0}) == {'a': 3, 'b': 0}
    assert d({'a': 5, 'b': 0}) == {'a': 2, 'b': 0}


def test_updater_names_statuses_after_the_node_and_a_failing_task_reports_error(ros_node):
    from diagnostic_msgs.msg import DiagnosticArray

    from il_ros.ros.diagnostics import Diagnostics, level_of, WARN

    def ok(status):
        status.add('x', 1.5)
        status.summary(WARN, 'late')

    def broken(status):
        raise KeyError('nope')

    diag = Diagnostics(ros_node, 'robot_7', start=False)
    diag.add('first', ok)
    diag.add('second', broken)
    arr = diag.collect()
    name = ros_node.get_name()
    assert [s.name for s in arr.status] == [f'{name}: first', f'{name}: second']
    first, second = arr.status
    assert {s.hardware_id for s in arr.status} == {'robot_7'}
    assert (level_of(first.level), first.message, values(first)) == (WARN, 'late', {'x': '1.5'})
    assert level_of(second.level) == 2 and 'KeyError' in second.message
    # It is published as a DiagnosticArray on /diagnostics.
    got = []
    ros_node.create_subscription(DiagnosticArray, '/diagnostics', got.append, 10)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        diag.publish()
        rclpy.spin_once(ros_node, timeout_sec=0.1)
    assert got and got[0].status[0].name == f'{name}: first'


# ---------------------------------------------------------------------------- node tasks

def shim(ros_node, **attrs):
    """A stand-in node: the real node's publisher/clock/name, the attributes a task reads."""
    return SimpleNamespace(get_name=ros_node.get_name, get_clock=ros_node.get_clock,
                           get_fully_qualified_name=ros_node.get_fully_qualified_name,
                           resolve_topic_name=ros_node.resolve_topic_name,
                           create_publisher=ros_node.create_publisher, **attrs)


def test_recorder_warns_for_silent_and_late_topics_low_disk_and_drops(ros_node, tmp_path):
    from il_ros.ros.diagnostics import ERROR, level_of, OK, WARN
    from il_ros.ros.node_diagnostics import RecorderDiagnostics
    clock = FakeClock()
    params = {'output_dir': str(tmp_path / 'not_yet' / 'episodes'),
              'expected_topics_timeout_s': 5.0}
    node = shim(ros_node, configured_topics=['/a', '/b'], subscribed={}, episode=None,
                last_result='', param=params.__getitem__)
    rd = RecorderDiagnostics(node, clock=clock, start=False)
    for _ in range(20):
        rd.on_msg('/a')                          # the window starts at the first message
        clock.t += 0.05
    s = by_name(rd.diag.collect())
    name = ros_node.get_name()
    topics = s[f'{name}: topics']
    assert level_of(topics.level) == OK          # /b is not overdue yet
    assert values(topics)['/a rate_hz'] == '20' and values(topics)['/b messages'] == '0'
    assert level_of(s[f'{name}: episode'].level) == OK
    disk = s[f'{name}: disk']
    assert values(disk)['path'] == str(tmp_path) and level_of(disk.level) in (OK, WARN)
    clock.t += 6.0                               # /b silent since the start, /a late
    topics = by_name(rd.diag.collect())[f'{name}: topics']
    assert level_of(topics.level) == WARN
    assert 'silent (no message yet): /b' in topics.message and 'late' in topics.message
    assert '/a (6 s)' in topics.message
    rd.disk_warn_bytes = 1 << 62
    assert level_of(by_name(rd.diag.collect())[f'{name}: disk'].level) == WARN
    rd.disk_error_bytes = 1 << 62
    assert level_of(by_name(rd.diag.collect())[f'{name}: disk'].level) == ERROR
    # An episode: OK while the queue keeps up, WARN once messages were dropped.
    drops = {}
    node.episode = SimpleNamespace(name='episode_0003', error=None, queue_size=10,
                                   queue_depth=lambda: 2, drop_counts=lambda: drops,
                                   counts=lambda: {'/a': 5})
    ep = by_name(rd.diag.collect())[f'{name}: episode']
    assert (level_of(ep.level), ep.message) == (OK, 'recording episode_0003')
    assert values(ep)['queue_depth'] == '2' and values(ep)['queue_size'] == '10'
    drops['/a'] = 4
    ep = by_name(rd.diag.collect())[f'{name}: episode']
    assert level_of(ep.level) == WARN and '4 messages dropped' in ep.message
    node.episode.error = 'No space left on device'
    assert level_of(by_name(rd.diag.collect())[f'{name}: episode'].level) == ERROR


class Policy:
    """A ControlLoop policy that plans a constant action or raises when told to."""

    cfg = SimpleNamespace(action_exec=1)

    def __init__(self):
        self.fail = False

    def reset(self, seed=None):
        pass

    def observe(self, obs):
        pass

    def plan(self):
        if self.fail:
            raise RuntimeError('CUDA out of memory')
        return np.array([[0.0, 0.0, 0.5]])


def test_controller_ok_while_the_policy_drives_warn_on_hold_error_on_inference_failure(
        ros_node):
    from il_ros.control.loop import ControlLoop
    from il_ros.control.loop_types import LoopConfig, Observation
    from il_ros.ros.diagnostics import ERROR, level_of, OK, WARN
    from il_ros.ros.node_diagnostics import ControllerDiagnostics
    clock = FakeClock(0.0)
    loop = ControlLoop(LoopConfig(enabled=True, rate_hz=16.0), clock=clock,
                       limits=lambda names: ([-1.0, -1.0, 0.0], [1.0, 1.0, 1.0]))
    loop.configure(['a', 'b', 'g'], ['a', 'b'])
    policy = Policy()
    loop.set_policy(policy, 'ckpt')
    node = shim(ros_node, loop=loop, robot=SimpleNamespace(name='sim_arm'))
    cd = ControllerDiagnostics(node, clock=clock, start=False)
    name = ros_node.get_name()
    home = np.array([0.0, 0.0, np.nan])

    def ticks(first, n):
        for k in range(first, first + n):
            loop.tick(k / 16.0, Observation(frame={'t': k}, age_s=0.0, invalid=None,
                                            measured=home, measured_age_s=0.0))
        return by_name(cd.diag.collect())

    s = ticks(0, 16)
    control, timing = s[f'{name}: control'], s[f'{name}: timing']
    assert (level_of(control.level), control.message) == (OK, 'policy drives')
    assert control.hardware_id == 'sim_arm' and values(control)['checkpoint'] == 'ckpt'
    assert level_of(timing.level) == OK and values(timing)['ticks'] == '16'
    loop.enable(False)
    control = ticks(16, 4)[f'{name}: control']
    assert (level_of(control.level), control.message) == (WARN, 'HOLD: disabled')
    assert values(control)['hold_reasons'] == '{"disabled": 4}'
    loop.enable(True)
    policy.fail = True
    control = ticks(20, 2)[f'{name}: control']
    assert level_of(control.level) == ERROR and 'policy inference failed' in control.message
    policy.fail = False
    s = ticks(22, 1)
    assert level_of(s[f'{name}: control'].level) != ERROR       # the errors were last period
    assert values(s[f'{name}: control'])['worker_errors'] != '0'


def test_sim_robot_reports_its_real_time_factor_and_warns_after_a_stall(ros_node):
    from il_ros.ros.diagnostics import level_of, OK, WARN
    from il_ros.ros.node_diagnostics import SimRobotDiagnostics
    clock = FakeClock(0.0)
    sim = SimpleNamespace(sim_time=0.0, lag_forgiven=0.0, bad_commands=0, stale_commands=0,
                          rtf=2.0, waiting_since=None, sim_start=0.0, wall_start=0.0,
                          lockstep=False, episode=0, last_command_t=None,
                          robot=SimpleNamespace(name='sim_arm'))
    sd = SimRobotDiagnostics(shim(ros_node, **vars(sim)), clock=clock, start=False)
    node = sd.node
    name = ros_node.get_name()
    clock.t, node.sim_time = 1.0, 2.0
    st = by_name(sd.diag.collect())[f'{name}: simulation']
    assert level_of(st.level) == OK and values(st)['real_time_factor'] == '2'
    assert values(st)['lag_s'] == '0'
    clock.t, node.sim_time = 2.0, 3.0              # half speed
    st = by_name(sd.diag.collect())[f'{name}: simulation']
    assert level_of(st.level) == WARN and 'x1.00 of x2' in st.message
    assert values(st)['lag_s'] == '1'
    clock.t, node.sim_time, node.lag_forgiven = 3.0, 5.0, 0.75
    st = by_name(sd.diag.collect())[f'{name}: simulation']
    assert level_of(st.level) == WARN and '0.75 s of sim time dropped' in st.message


def test_trainer_levels_follow_the_run_state(ros_node):
    from il_ros.ros.diagnostics import ERROR, level_of, OK, WARN
    from il_ros.ros.node_diagnostics import TrainerDiagnostics
    clock = FakeClock(0.0)
    status = {'state': 'idle', 'step': 0, 'message': '', 'warnings': []}
    td = TrainerDiagnostics(shim(ros_node, status=status), clock=clock, start=False)
    name = f'{ros_node.get_name()}: training'
    assert level_of(by_name(td.diag.collect())[name].level) == OK
    clock.t = 2.0
    status.update(state='training', step=50)
    st = by_name(td.diag.collect())[name]
    assert level_of(st.level) == OK and values(st)['steps_per_s'] == '25'
    assert st.message == 'training: step 50, 25.0 steps/s'
    status.update(state='failed', message='dataset episode 3: no frames')
    st = by_name(td.diag.collect())[name]
    assert level_of(st.level) == ERROR and 'no frames' in st.message
    status.update(state='stopped', message='stopped at 60 steps')
    assert level_of(by_name(td.diag.collect())[name].level) == WARN


def test_teleop_and_supervisor_warn_when_their_input_stops(ros_node):
    from il_ros.ros.diagnostics import level_of, OK, WARN
    from il_ros.ros.node_diagnostics import SupervisorDiagnostics, TeleopDiagnostics
    clock = FakeClock(0.0)
    robot = SimpleNamespace(name='sim_arm', joint_states=SimpleNamespace(topic='/js'))
    name = ros_node.get_name()
    td = TeleopDiagnostics(shim(ros_node, mode='scripted', episode=2, robot=robot),
                           clock=clock, start=False)
    clock.t = 1.0
    for _ in range(20):
        td.on_command()
    st = by_name(td.diag.collect())[f'{name}: input']
    assert level_of(st.level) == OK and values(st)['commands'] == '20'
    clock.t = 7.0                                # 6 s without a /sim/state to answer
    st = by_name(td.diag.collect())[f'{name}: input']
    assert level_of(st.level) == WARN and 'no /sim/state answered for 6 s' in st.message
    human = shim(ros_node, mode='joy', space='cartesian', was_active=False, latest_arm=None,
                 robot=robot)
    st = by_name(TeleopDiagnostics(human, clock=clock, start=False).diag.collect())
    assert 'no joint state on /js' in st[f'{name}: input'].message
    counts = {'in_control': False, 'steps': 0}
    sup = shim(ros_node, active=True, last={}, robot=robot,
               sup=SimpleNamespace(counts=lambda: dict(counts)))
    sd = SupervisorDiagnostics(sup, clock=clock, start=False)
    clock.t, counts['steps'] = 8.0, 20
    st = by_name(sd.diag.collect())[f'{name}: gate']
    assert (level_of(st.level), st.message) == (OK, 'armed')
    clock.t = 20.0
    st = by_name(sd.diag.collect())[f'{name}: gate']
    assert level_of(st.level) == WARN and 'no /sim/state for 12 s' in st.message


# ---------------------------------------------------------------------------- real processes

def test_every_node_publishes_its_diagnostics(procs, ros_node, tmp_path):
    """One graph: each node's statuses arrive on /diagnostics with the expected levels."""
    from diagnostic_msgs.msg import DiagnosticArray
    from std_srvs.srv import Trigger

    from il_ros.ros.diagnostics import level_of, OK, WARN
    ros = ['--ros-args', '-p', 'robot:=sim_arm']
    procs.python('il_ros.ros.sim_robot', *ros, '-p', 'cameras:=[front]', name='sim')
    procs.python('il_ros.ros.teleop', *ros, name='teleop')
    procs.python('il_ros.ros.recorder', '--ros-args', '-p', f'output_dir:={tmp_path / "eps"}',
                 '-p', 'topics:=[/joint_states,/not_published]',
                 '-p', 'expected_topics_timeout_s:=2.0', name='recorder')
    procs.python('il_ros.ros.controller', *ros, name='controller')
    procs.python('il_ros.ros.trainer', '--ros-args', '-p', f'out_dir:={tmp_path / "run"}',
                 name='trainer')
    procs.python('il_ros.ros.supervisor', *ros, name='supervisor')
    latest = {}
    ros_node.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda m: latest.update(by_name(m)), 50)

    def seen(name, pred=lambda s: True):
        s = latest.get(name)
        return s is not None and pred(s)

    want = {
        'sim_robot: simulation': lambda s: float(values(s)['real_time_factor']) > 0,
        'teleop: input': lambda s: level_of(s.level) == OK and int(values(s)['commands']) > 0,
        'recorder: episode': lambda s: level_of(s.level) == OK and s.message == 'idle',
        'recorder: disk': lambda s: 'free_gib' in values(s),
        'recorder: topics': lambda s: (level_of(s.level) == WARN
                                       and '/not_published' in s.message
                                       and float(values(s)['/joint_states rate_hz']) > 0),
        'controller: control': lambda s: (level_of(s.level) == WARN
                                          and s.message == 'HOLD: disabled'),
        'controller: timing': lambda s: int(values(s)['ticks']) > 0,
        'trainer: training': lambda s: level_of(s.level) == OK and values(s)['state'] == 'idle',
        'supervisor: gate': lambda s: level_of(s.level) == OK and s.message == 'armed',
    }

    def all_seen():
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        return all(seen(n, p) for n, p in want.items())

    try:
        wait_for(all_seen, 180, interval=0.0, what='every node\'s diagnostics')
    except BaseException:
        print({n: (level_of(s.level), s.message, values(s)) for n, s in latest.items()})
        for p, _ in procs.procs:
            print(procs.log(p)[-1500:])
        raise
    assert latest['sim_robot: simulation'].hardware_id == 'sim_arm'
    assert latest['controller: control'].hardware_id == 'sim_arm'
    # Recording: the episode status names the episode and its writer queue.
    client = ros_node.create_client(Trigger, '/recorder/start_episode')
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(ros_node, future, timeout_sec=20)
    assert future.result().success, future.result().message
    latest.pop('recorder: episode')

    def recording():
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        return seen('recorder: episode', lambda s: s.message.startswith('recording episode_'))

    wait_for(recording, 30, interval=0.0, what='the recording status')
    assert 'queue_depth' in values(latest['recorder: episode'])
    # The diagnostics timer never outlives the node: each stops cleanly on SIGINT.
    procs.stop_all()
    for p, _ in procs.procs:
        assert p.returncode == 0 and 'Traceback' not in procs.log(p), procs.log(p)[-3000:]
