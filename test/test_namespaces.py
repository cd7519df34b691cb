"""Namespaces: relative names resolve in the node's namespace, so two robots run side by side.

- Two sim robots started as ``il-ros`` plans them (graph ``sim``, ``namespace`` robot1 and
  robot2, different seeds) on ONE ROS domain: each publishes its own joint states and
  camera, a command on /robot1/il/command moves robot1 only (and one on /robot2's moves
  robot2 only), each keeps its sim clock on <namespace>/clock (nodes on sim time in a
  namespaced graph follow their own sim's) and /diagnostics names each robot's node.
- The recorder resolves its relative topics in its namespace (bags store resolved names);
  conversion matches a namespaced bag's topics to the robot's relative names in the namespace
  of the recorder that wrote it (episode metadata), or in ``ConvertConfig.namespace``.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rclpy

from il_ros import keys
from il_ros.config import ConfigError
from il_ros.graph_plan import check_namespace, plan_graph
from il_ros.robot import load_robot

NAMESPACES = ('/robot1', '/robot2')


def test_names_resolve_as_ros_resolves_them():
    assert keys.resolve_name('joint_states') == '/joint_states'
    assert keys.resolve_name('il/command', '/robot1') == '/robot1/il/command'
    assert keys.resolve_name('il/command', 'robot1/') == '/robot1/il/command'
    assert keys.resolve_name('/clock', '/robot1') == '/clock'          # absolute stays
    assert keys.resolve_name(keys.TOPIC_CLOCK, '/robot1') == '/clock'  # global by convention
    with pytest.raises(ValueError, match='private'):
        keys.resolve_name('~/status', '/robot1')
    assert [check_namespace(x) for x in ('', None, '/', 'robot1', '/a/b/')] == [
        '', '', '', '/robot1', '/a/b']
    for bad in ('1robot', 'robot-1', 'a//b', 'ü'):
        with pytest.raises(ConfigError, match='namespace'):
            check_namespace(bad)


def test_the_shipped_names_are_relative_except_the_global_ones():
    for name in ('sim_arm', 'panda'):
        robot = load_robot(name)
        topics = [robot.joint_states.topic, robot.command.topic,
                  *(c.topic for c in robot.cameras)]
        assert not any(t.startswith('/') for t in topics), (name, topics)
    plans = plan_graph('dagger', {'checkpoint': ''})
    topics = plans['recorder'].params['topics']
    assert topics and not any(t.startswith('/') for t in topics), topics
    assert keys.TOPIC_CLOCK == '/clock'


def test_a_namespaced_sim_graph_keeps_its_own_clock():
    clock = {'/clock': '/robot1/clock'}
    plans = plan_graph('record', {'namespace': 'robot1'})
    assert {n: p.remappings for n, p in plans.items()} == {
        'sim_robot': clock, 'teleop': clock, 'recorder': clock}
    assert all(p.remappings == {} for p in plan_graph('record', {}).values())
    # deploy: only the sim publishes the clock; the controller runs on the system clock
    deploy = plan_graph('deploy', {'namespace': 'robot1', 'checkpoint': ''})
    assert deploy['sim_robot'].remappings == clock and deploy['controller'].remappings == {}
    dagger = plan_graph('dagger', {'namespace': 'robot1', 'checkpoint': ''},
                        extra={'recorder': {'use_sim_time': True}})
    assert dagger['recorder'].remappings == clock and dagger['supervisor'].remappings == {}


def _start_sims(procs):
    """Two sim_robot processes, as il-ros starts them, in /robot1 and /robot2."""
    from il_ros.launcher import node_command
    out = {}
    for k, ns in enumerate(NAMESPACES):
        plan = plan_graph('sim', {'seed': 11 + k, 'namespace': ns.strip('/')})['sim_robot']
        assert plan.namespace == ns
        out[ns] = procs.start(node_command(plan), f'sim_robot{k + 1}')
    return out


def test_two_namespaced_sim_robots_run_side_by_side_without_cross_talk(procs, ros_node):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    from il_ros.ros.node_utils import SENSOR_QOS, STATE_QOS
    robot = load_robot('sim_arm')
    sims = _start_sims(procs)
    joints = {ns: [] for ns in NAMESPACES}
    images = {ns: 0 for ns in NAMESPACES}
    diag_names = set()

    def on_image(ns, _msg):
        images[ns] += 1

    for ns in NAMESPACES:     # the probe is in no namespace: it names them in full
        ros_node.create_subscription(JointState, f'{ns}/joint_states',
                                     lambda m, ns=ns: joints[ns].append(m), SENSOR_QOS)
        ros_node.create_subscription(Image, f'{ns}/camera/front/image_raw',
                                     lambda m, ns=ns: on_image(ns, m), SENSOR_QOS)
    ros_node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: diag_names.update(s.name.split(':')[0] for s in m.status), STATE_QOS)
    pubs = {ns: ros_node.create_publisher(Float64MultiArray, f'{ns}/il/command', 10)
            for ns in NAMESPACES}

    def spin_until(pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            rclpy.spin_once(ros_node, timeout_sec=0.05)
            for ns, p in sims.items():
                assert p.poll() is None, procs.log(p)[-3000:]
        pytest.fail(f'timed out after {timeout} s waiting for {what}: '
                    + ' | '.join(procs.log(p)[-1500:] for p in sims.values()))

    spin_until(lambda: all(len(joints[ns]) > 5 and images[ns] > 2 for ns in NAMESPACES), 60,
               'joint states and images from both robots')
    spin_until(lambda: {'robot1/sim_robot', 'robot2/sim_robot'} <= diag_names, 15,
               'both robots on the global /diagnostics')
    names = dict(ros_node.get_topic_names_and_types())
    for ns in NAMESPACES:                  # each sim's own clock, not the global /clock
        published = dict(ros_node.get_publisher_names_and_types_by_node('sim_robot', ns))
        assert f'{ns}/clock' in published and '/clock' not in published, sorted(published)
    for ns in NAMESPACES:
        assert f'{ns}/sim/state' in names and f'{ns}/sim/success' in names
    assert not {'/joint_states', '/il/command', '/camera/front/image_raw', '/sim/state'} & set(
        names), sorted(names)
    services = {n for n, _ in ros_node.get_service_names_and_types()}
    assert {'/robot1/sim/reset', '/robot2/sim/reset'} <= services, sorted(services)

    arm = robot.arm_actions
    base = arm[0]

    def position(ns, joint=base):
        m = joints[ns][-1]
        return m.position[list(m.name).index(joint)]

    def settled():
        """Both arms still: no joint moved 1 mrad over the last 0.3 s of joint states."""
        before = {ns: np.array([position(ns, j) for j in arm]) for ns in NAMESPACES}
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            rclpy.spin_once(ros_node, timeout_sec=0.05)
        return all(np.abs(np.array([position(ns, j) for j in arm]) - before[ns]).max() < 1e-3
                   for ns in NAMESPACES)

    for mover, still in (NAMESPACES, NAMESPACES[::-1]):
        spin_until(settled, 30, 'both arms to settle')     # the last mover may still converge
        start = {ns: np.array([position(ns, j) for j in arm]) for ns in NAMESPACES}
        target = start[mover].copy()
        target[0] += 0.4 if target[0] < 1.0 else -0.4
        for _ in range(5):
            pubs[mover].publish(Float64MultiArray(data=[*target, 0.0]))
            rclpy.spin_once(ros_node, timeout_sec=0.05)
        spin_until(lambda: abs(position(mover) - target[0]) < 0.05, 30,
                   f'{mover} {base} to reach the commanded {target[0]:.2f}')
        for _ in range(10):                    # a few more joint states of the other robot
            rclpy.spin_once(ros_node, timeout_sec=0.05)
        now = np.array([position(still, j) for j in arm])
        assert np.abs(now - start[still]).max() < 0.02, (still, now, start[still])
    for ns, p in sims.items():
        assert 'ignoring command' not in procs.log(p), procs.log(p)


def test_the_recorder_resolves_its_topics_in_its_namespace(ros_node, tmp_path):
    from rclpy.parameter import Parameter

    from il_ros.ros.recorder import Recorder
    params = [Parameter('topics', value=['joint_states', 'camera/front/image_raw', '/clock']),
              Parameter('optional_topics', value=['camera/front/image_raw']),
              Parameter('expected_rates', value=['joint_states=50']),
              Parameter('output_dir', value=str(tmp_path / 'bags'))]
    rec = Recorder(namespace='/robot1', parameter_overrides=params)
    try:
        assert rec.configured_topics == ['/robot1/joint_states',
                                         '/robot1/camera/front/image_raw', '/clock']
        assert rec.expected_topics == ['/robot1/joint_states', '/clock']
        assert rec.get_fully_qualified_name() == '/robot1/recorder'
    finally:
        rec.destroy_node()


def _namespaced_bag(tmp_path, meta: dict | None):
    """A bag as a recorder in /robot1 writes it: every topic under /robot1."""
    from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag
    robot = load_robot('sim_arm')
    spec = SyntheticBagSpec(
        cameras={'front': '/robot1/camera/front/image_raw'}, image_hw=(84, 84),
        joint_states_topic='/robot1/joint_states', joint_names=tuple(robot.joint_names),
        action_topic='/robot1/il/command', action_dim=len(robot.action_names),
        control_source_topic='/robot1/il/control_source')
    bag = write_synthetic_bag(tmp_path / 'bags' / 'episode_0000', spec)
    if meta is not None:
        (bag.parent / 'episode_0000.json').write_text(json.dumps(meta))
    return bag


@pytest.mark.parametrize('how', ['episode metadata', 'namespace option', 'neither'])
def test_conversion_matches_a_namespaced_bag_to_the_robots_relative_names(tmp_path, how):
    from il_ros.data.convert import convert
    from il_ros.data.store import Dataset
    from il_ros.data.topic_map import ConvertConfig, TopicMap
    robot = load_robot('sim_arm')
    meta = {'status': 'complete', 'node': '/robot1/recorder'} if how == 'episode metadata' \
        else None
    _namespaced_bag(tmp_path, meta)
    cfg = ConvertConfig(topics=TopicMap.from_robot(robot, ['front']),
                        namespace='robot1' if how == 'namespace option' else '')
    reports = convert([tmp_path / 'bags'], tmp_path / 'ds', cfg, progress=False)
    if how == 'neither':       # no recorder metadata, no option: the names resolve under /
        assert [r.status for r in reports] == ['rejected'], reports
        assert '/joint_states (joints)' in reports[0].reason, reports[0].reason
        return
    assert [r.status for r in reports] == ['converted'], reports
    assert Dataset(tmp_path / 'ds').num_episodes == 1
    assert '/robot1/joint_states' in reports[0].time_sources, reports[0].time_sources
