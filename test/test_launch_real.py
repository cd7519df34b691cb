"""Every launch file under the real ``ros2 launch``, and il-ros, over real processes.

Needs the ``launch``, ``launch_ros`` and ``ros2cli`` packages (a ROS install, or the wheels
of ../shared/ros2-tools in the venv); without them the ``ros2 launch`` cases are skipped and
test_launch_files.py checks the launch files against stand-ins. The package is found through
an ament prefix made in a temp folder (share/il_ros links to this checkout, lib/il_ros holds
one small script per node), as the ros2-tools README describes for an editable install.

One launch per file, for a few seconds; while it runs the test checks, all at once: the
node processes are up, each node has the expected parameters (over its get_parameters
service, typed: ``rtf:=4`` is the double 4.0, ``seed:=3`` the integer 3) and the topics
flow. Then SIGINT: every node finishes cleanly and no process of the launch is left. The
record launch (``episodes:=2``) ends by itself with 2 complete bags. The dagger launch runs
in its real-robot form (``sim:=false``; a sim_robot started beside it plays the robot) with
a stand-in ``joy_node`` in a second ament prefix: the launch starts it, and an episode
without a takeover is complete. The deploy launch with ``teleop_mode:=joy`` and no ``joy``
package says so.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys
import types

import pytest

from conftest import REPO, tiny_sim_checkpoint
from launch_probe import (check_ended, children, GraphProbe, interrupt_and_check,
                          make_prefix, param_types, two_camera_checkpoint, wait_for)

HAVE_LAUNCH = all(importlib.util.find_spec(m) is not None
                  for m in ('launch', 'launch_ros', 'ros2cli', 'ros2launch'))
needs_launch = pytest.mark.skipif(not HAVE_LAUNCH, reason='no launch / launch_ros / ros2cli '
                                  'here (install ../shared/ros2-tools to run these)')
ROS2 = 'import sys; from ros2cli.cli import main; sys.exit(main())'
JOY_STUB = '''
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import Joy
rclpy.init(args=sys.argv)
node = rclpy.create_node('joy_node')
pub = node.create_publisher(Joy, '/joy', 10)
node.create_timer(0.05, lambda: pub.publish(Joy(axes=[0.0] * 8, buttons=[0] * 11)))
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
rclpy.try_shutdown()
'''
"""A stand-in for ``joy``'s joy_node: an idle joystick (no button held) at 20 Hz."""


@pytest.fixture(scope='module')
def ament_prefix(tmp_path_factory) -> Path:
    """A prefix holding the ament index entry, share/il_ros and lib/il_ros/<executable>."""
    from il_ros.config import load_graph
    exes = {s.executable for s in load_graph().nodes.values()}
    prefix = make_prefix(tmp_path_factory.mktemp('prefix'), 'il_ros', {
        exe: f'import sys\nfrom il_ros.ros.{exe} import main\nsys.exit(main())\n'
        for exe in exes})
    share = prefix / 'share' / 'il_ros'
    (share / 'package.xml').symlink_to(REPO / 'package.xml')
    for folder in ('launch', 'config', 'sim'):      # real folders, linked files (ament rule)
        for f in (REPO / folder).rglob('*'):
            if f.is_file():
                dst = share / f.relative_to(REPO)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(f)
    return prefix


@pytest.fixture(scope='module')
def joy_prefix(tmp_path_factory) -> Path:
    """A second prefix with package ``joy`` whose joy_node is :data:`JOY_STUB`."""
    return make_prefix(tmp_path_factory.mktemp('joy_prefix'), 'joy', {'joy_node': JOY_STUB})


def _launch_env(*prefixes: Path) -> dict:
    """The test's environment, ``prefixes`` first on AMENT_PREFIX_PATH (then a ROS install's)."""
    have = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    env = {**os.environ,
           'AMENT_PREFIX_PATH': os.pathsep.join([*map(str, prefixes), *have, sys.prefix]),
           'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])}
    return {k: v for k, v in env.items() if v is not None}


def _start_ros2_launch(procs, prefix, launch_file, *args, remove=(), prefixes=()):
    env = _launch_env(prefix, *prefixes)
    for name in remove:
        env.pop(name, None)
    log = procs.log_dir / f'ros2_launch_{launch_file}.log'
    fh = open(log, 'wb')  # noqa: SIM115 - closed below, the process keeps its copy
    p = subprocess.Popen([sys.executable, '-c', ROS2, 'launch', 'il_ros', launch_file, *args],
                         stdout=fh, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                         start_new_session=True)
    fh.close()
    procs.procs.append((p, log))
    return p


# ---- the four launch files --------------------------------------------------------------

@needs_launch
def test_sim_launch(procs, ament_prefix, ros_node):
    """Headless (no MUJOCO_GL, no DISPLAY), typed arguments, images and joint states flow."""
    from sensor_msgs.msg import Image, JointState
    T = param_types()
    p = _start_ros2_launch(procs, ament_prefix, 'sim.launch.py', 'rtf:=4', 'seed:=3',
                           remove=('MUJOCO_GL', 'DISPLAY', 'PYOPENGL_PLATFORM'))
    probe = GraphProbe(ros_node)
    probe.topic('/camera/front/image_raw', Image)
    probe.topic('/joint_states', JointState)
    probe.ask('sim_robot', ['real_time_factor', 'seed', 'robot', 'cameras'])
    probe.wait(p, lambda: procs.log(p), 120, what='the sim launch')
    assert probe.params['sim_robot'] == {
        'real_time_factor': (T.PARAMETER_DOUBLE, 4.0), 'seed': (T.PARAMETER_INTEGER, 3),
        'robot': (T.PARAMETER_STRING, 'sim_arm'),
        'cameras': (T.PARAMETER_STRING_ARRAY, ['front'])}
    kids = children(p)
    assert sorted(kids.values()) == ['il_ros/sim_robot'], kids
    interrupt_and_check(procs, p, kids)


@needs_launch
def test_sim_launch_in_a_namespace(procs, ament_prefix, ros_node):
    """``namespace:=robot1``: /robot1/sim_robot publishes /robot1/..., its clock included."""
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    T = param_types()
    p = _start_ros2_launch(procs, ament_prefix, 'sim.launch.py', 'namespace:=robot1',
                           'seed:=3')
    probe = GraphProbe(ros_node)
    probe.topic('/robot1/camera/front/image_raw', Image)
    probe.topic('/robot1/joint_states', JointState)
    probe.topic('/robot1/clock', Clock)
    probe.ask('robot1/sim_robot', ['seed'])
    probe.wait(p, lambda: procs.log(p), 120, what='the namespaced sim launch')
    assert probe.params['robot1/sim_robot'] == {'seed': (T.PARAMETER_INTEGER, 3)}
    names = {n for n, _ in ros_node.get_topic_names_and_types()}
    assert not {'/joint_states', '/camera/front/image_raw', '/sim/state'} & names, names
    assert '/robot1/sim/reset' in {n for n, _ in ros_node.get_service_names_and_types()}
    interrupt_and_check(procs, p, children(p))


@needs_launch
def test_record_launch_records_two_episodes_and_ends(procs, ament_prefix, ros_node, tmp_path):
    """``episodes:=2 cameras:=[front,wrist]``: both cameras recorded, 2 bags, then it ends."""
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64MultiArray
    T = param_types()
    out = tmp_path / 'bags'
    p = _start_ros2_launch(procs, ament_prefix, 'record.launch.py', 'task:=lift',
                           'episodes:=2', 'cameras:=[front,wrist]', 'rtf:=4', 'noise:=0',
                           f'out:={out}')
    probe = GraphProbe(ros_node)
    probe.topic('/camera/wrist/image_raw', Image)
    probe.topic('/il/command', Float64MultiArray)
    probe.ask('recorder', ['auto_episodes', 'output_dir', 'use_sim_time', 'topics'])
    probe.ask('teleop', ['mode', 'noise', 'use_sim_time'])
    probe.ask('sim_robot', ['cameras', 'lockstep', 'real_time_factor'])
    probe.wait(p, lambda: procs.log(p), 120, what='the record launch')
    kids = children(p)
    assert sorted(kids.values()) == ['il_ros/recorder', 'il_ros/sim_robot', 'il_ros/teleop']
    rec = probe.params['recorder']
    assert rec['auto_episodes'] == (T.PARAMETER_INTEGER, 2)
    assert rec['output_dir'] == (T.PARAMETER_STRING, str(out))
    assert rec['use_sim_time'] == (T.PARAMETER_BOOL, True)
    assert {'camera/front/image_raw', 'camera/wrist/image_raw'} <= set(rec['topics'][1])
    assert probe.params['teleop'] == {'mode': (T.PARAMETER_STRING, 'scripted'),
                                      'noise': (T.PARAMETER_DOUBLE, 0.0),
                                      'use_sim_time': (T.PARAMETER_BOOL, True)}
    assert probe.params['sim_robot'] == {
        'cameras': (T.PARAMETER_STRING_ARRAY, ['front', 'wrist']),
        'lockstep': (T.PARAMETER_BOOL, True), 'real_time_factor': (T.PARAMETER_DOUBLE, 4.0)}
    wait_for(lambda: p.poll() is not None, 300, interval=0.5, what='the launch to end')
    check_ended(procs, p, kids)
    metas = sorted(out.glob('episode_*.json'))
    assert len(metas) == 2, procs.log(p)[-3000:]
    for path in metas:
        meta = json.loads(path.read_text())
        assert meta['status'] in ('complete', 'complete_with_loss'), meta
        with Reader(path.with_suffix('')) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
        for topic in ('/camera/front/image_raw', '/camera/wrist/image_raw', '/joint_states',
                      '/il/command', '/il/teleop/command'):
            assert counts.get(topic, 0) > 5, (topic, counts)
        assert meta['topics']['/camera/wrist/image_raw']['expected_rate_source'] == 'parameter'


@needs_launch
def test_deploy_launch_drives_with_the_checkpoints_cameras(procs, ament_prefix, ros_node,
                                                           tmp_path, monkeypatch):
    """A checkpoint needing front + wrist: the sim renders both and the policy drives.

    With ``teleop:=true teleop_mode:=joy`` and no ``joy`` package the launch warns, naming
    the package and /joy, and starts no driver (teleop waits for /joy).
    """
    from std_msgs.msg import Float64MultiArray, String

    from il_ros.graph_plan import find_executable
    from il_ros.ros.node_utils import STATE_QOS
    T = param_types()
    ckpt = two_camera_checkpoint(tmp_path / 'ckpt')
    p = _start_ros2_launch(procs, ament_prefix, 'deploy.launch.py', f'checkpoint:={ckpt}',
                           'enabled:=true', 'teleop:=true', 'teleop_mode:=joy')
    probe = GraphProbe(ros_node)
    probe.topic('/il/control_source', String, STATE_QOS)
    probe.topic('/il/command', Float64MultiArray)
    probe.ask('controller', ['checkpoint', 'rate_hz', 'enabled'])
    probe.ask('sim_robot', ['cameras', 'state_rate_hz'])
    probe.ask('teleop', ['mode', 'command_topic'])
    probe.wait(p, lambda: procs.log(p), 180, until=lambda: any(
        m.data == 'policy' for m in probe.seen['/il/control_source']), what='the policy to drive')
    assert probe.params['controller'] == {'checkpoint': (T.PARAMETER_STRING, ckpt),
                                          'rate_hz': (T.PARAMETER_DOUBLE, 20.0),
                                          'enabled': (T.PARAMETER_BOOL, True)}
    assert probe.params['sim_robot'] == {
        'cameras': (T.PARAMETER_STRING_ARRAY, ['front', 'wrist']),
        'state_rate_hz': (T.PARAMETER_DOUBLE, 20.0)}
    assert probe.params['teleop'] == {'mode': (T.PARAMETER_STRING, 'joy'),
                                      'command_topic': (T.PARAMETER_STRING, 'il/teleop/command')}
    kids = children(p)
    joy = find_executable('joy', 'joy_node', _launch_env(ament_prefix)['AMENT_PREFIX_PATH'])
    assert sorted(kids.values()) == ['il_ros/controller', 'il_ros/sim_robot', 'il_ros/teleop',
                                     *(['joy/joy_node'] if joy else [])]
    log = interrupt_and_check(procs, p, kids)
    if joy is None:                                     # a ROS install may have joy
        assert "no joy_node of package 'joy'" in log and 'on /joy' in log, log[-3000:]


@needs_launch
def test_dagger_launch_on_a_robot(procs, ament_prefix, joy_prefix, ros_node, tmp_path):
    """Real-robot form: joy_node starts; an episode without a takeover is complete.

    A sim_robot beside the launch plays the robot (its cameras, joint states, command).
    """
    import rclpy
    from sensor_msgs.msg import Joy
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from il_ros.ros.node_utils import STATE_QOS
    T = param_types()
    ckpt = tiny_sim_checkpoint(tmp_path / 'ckpt')
    out = tmp_path / 'bags'
    procs.python('il_ros.ros.sim_robot', '--ros-args', '-p', 'cameras:=[front]',
                 '-p', 'state_rate_hz:=20.0', name='robot')
    p = _start_ros2_launch(procs, ament_prefix, 'dagger.launch.py', f'checkpoint:={ckpt}',
                           'enabled:=true', f'out:={out}', prefixes=(joy_prefix,))
    probe = GraphProbe(ros_node)
    probe.topic('/joy', Joy)
    probe.topic('/il/control_source', String, STATE_QOS)
    probe.ask('recorder', ['topics', 'optional_topics', 'use_sim_time'])
    probe.ask('teleop', ['mode'])
    probe.ask('controller', ['checkpoint', 'enabled'])
    probe.ask('joy_node', ['use_sim_time'])
    probe.wait(p, lambda: procs.log(p), 180, until=lambda: any(
        m.data == 'policy' for m in probe.seen['/il/control_source']), what='the policy to drive')
    kids = children(p)
    assert sorted(kids.values()) == ['il_ros/controller', 'il_ros/recorder', 'il_ros/teleop',
                                     'joy/joy_node'], kids
    rec = probe.params['recorder']
    assert rec['use_sim_time'] == (T.PARAMETER_BOOL, False)
    assert set(rec['optional_topics'][1]) == {      # relative: the recorder resolves them
        'il/teleop/command', 'il/intervention', 'il/expert/label', 'sim/state', 'sim/success'}
    assert set(rec['optional_topics'][1]) < set(rec['topics'][1])
    assert probe.params['teleop'] == {'mode': (T.PARAMETER_STRING, 'joy')}
    assert probe.params['controller'] == {'checkpoint': (T.PARAMETER_STRING, ckpt),
                                          'enabled': (T.PARAMETER_BOOL, True)}

    def call(srv, name, request):
        client = ros_node.create_client(srv, name)
        assert client.wait_for_service(30), name
        future = client.call_async(request)
        rclpy.spin_until_future_complete(ros_node, future, timeout_sec=30)
        ros_node.destroy_client(client)
        assert future.done() and future.result().success, (name, future.result())
        return future.result()
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    def recorder_state() -> int:
        client = ros_node.create_client(GetState, '/recorder/get_state')
        try:
            if not client.wait_for_service(5):
                return -1
            future = client.call_async(GetState.Request())
            rclpy.spin_until_future_complete(ros_node, future, timeout_sec=5)
            return future.result().current_state.id if future.done() else -1
        finally:
            ros_node.destroy_client(client)
    # the launch configures, then activates the recorder; it takes requests once active
    wait_for(lambda: recorder_state() == State.PRIMARY_STATE_ACTIVE, 60,
             what='the launch to activate the recorder')
    call(Trigger, '/recorder/start_episode', Trigger.Request())
    meta_path = out / 'episode_0000.json'
    wait_for(lambda: json.loads(meta_path.read_text())['topics'].get(
        '/il/command', {}).get('count', 0) >= 10, 60, what='10 policy commands recorded')
    call(SetBool, '/recorder/stop_episode', SetBool.Request(data=False))
    meta = json.loads(meta_path.read_text())
    # not incomplete (loss on a busy machine may make it complete_with_loss)
    assert meta['status'] in ('complete', 'complete_with_loss'), (meta['status'],
                                                                    meta['warnings'])
    assert set(meta['expected_topics']) == {'/camera/front/image_raw', '/joint_states',
                                            '/il/command', '/il/control_source'}
    assert not [w for w in meta['warnings'] if 'intervention' in w or 'teleop' in w], meta
    counts = {t: v['count'] for t, v in meta['topics'].items()}
    assert counts.get('/il/intervention', 0) == 0 and counts.get('/il/teleop/command', 0) == 0
    assert counts['/joint_states'] > 0 and counts['/camera/front/image_raw'] > 0, counts
    interrupt_and_check(procs, p, kids)


# ---- the joystick driver, in process ------------------------------------------------------

@needs_launch
@pytest.mark.parametrize('installed', [True, False], ids=['joy', 'no_joy'])
def test_joystick_driver_starts_joy_node_or_says_how_to_get_one(installed, tmp_path,
                                                                monkeypatch):
    from launch import LaunchContext
    from launch_ros.actions import Node

    from il_ros.ros import launch_graph
    from il_ros.ros.launch_graph import joystick_driver
    warned = []
    monkeypatch.setattr(launch_graph, 'get_logger', lambda name: types.SimpleNamespace(
        warning=warned.append))                     # launch's logger, whose screen is fixed
    prefix = (make_prefix(tmp_path / 'p', 'joy', {'joy_node': JOY_STUB}) if installed
              else tmp_path)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    context = LaunchContext()
    context.launch_configurations['teleop_mode'] = 'joy'
    actions = joystick_driver().execute(context)
    if installed:
        assert len(actions) == 1 and isinstance(actions[0], Node)
        assert (actions[0].node_package, actions[0].node_executable) == ('joy', 'joy_node')
        assert not warned
    else:
        assert actions == [] and len(warned) == 1
        assert "package 'joy'" in warned[0] and 'install' in warned[0]
        assert 'sensor_msgs/Joy on /joy' in warned[0]
    context.launch_configurations['teleop_mode'] = 'keyboard'
    assert joystick_driver().execute(context) == []


def test_find_executable_reads_the_ament_index(tmp_path):
    from il_ros.graph_plan import find_executable
    a = make_prefix(tmp_path / 'a', 'joy', {'joy_node': 'pass\n'})
    b = make_prefix(tmp_path / 'b', 'other', {})
    path = os.pathsep.join([str(b), str(a)])
    assert find_executable('joy', 'joy_node', path) == a / 'lib' / 'joy' / 'joy_node'
    assert find_executable('joy', 'game_controller_node', path) is None
    assert find_executable('joy', 'joy_node', str(b)) is None
    (a / 'lib' / 'joy' / 'joy_node').chmod(0o644)
    assert find_executable('joy', 'joy_node', path) is None


def test_dagger_plan_lets_the_takeover_topics_be_silent():
    """The recorder of the dagger graph expects only the robot's topics and the source."""
    from il_ros.graph_plan import plan_graph
    rec = plan_graph('dagger', {})['recorder'].params
    expected = set(rec['topics']) - set(rec['optional_topics'])
    assert expected == {'camera/front/image_raw', 'joint_states', 'il/command',
                        'il/control_source'}
    assert 'optional_topics' not in plan_graph('record', {})['recorder'].params


# ---- il-ros, the other front end ----------------------------------------------------------

def test_il_ros_typed_values_reach_the_nodes(procs, ros_node, tmp_path):
    """Under il-ros too, ``rtf=4`` and ``seed=3`` arrive as the double 4.0 and the integer 3."""
    from il_ros.launcher import GraphRunner, ros_env
    T = param_types()
    runner = GraphRunner('sim', {'rtf': '4', 'seed': '3'}, tmp_path / 'logs',
                         env=ros_env(dict(os.environ)))
    runner.start()
    p = runner.procs['sim_robot'].popen
    try:
        probe = GraphProbe(ros_node)
        probe.ask('sim_robot', ['real_time_factor', 'seed'])
        probe.wait(p, lambda: 'sim_robot ended', 90, what='sim_robot')
    finally:
        runner.stop()
    assert probe.params['sim_robot'] == {'real_time_factor': (T.PARAMETER_DOUBLE, 4.0),
                                         'seed': (T.PARAMETER_INTEGER, 3)}


def test_il_ros_deploy_drives_with_the_checkpoints_cameras(procs, ros_node, tmp_path):
    """``il-ros deploy`` with a front + wrist checkpoint: the sim renders both, it drives.

    Before the cameras came from the checkpoint, the deploy graph rendered the front camera
    only and the controller held forever.
    """
    from std_msgs.msg import String

    from il_ros.ros.node_utils import STATE_QOS
    ckpt = two_camera_checkpoint(tmp_path / 'ckpt')
    p = procs.python('il_ros.cli', 'deploy', '--checkpoint', ckpt, '--sim', 'lift',
                     '--enable', '--log-dir', str(tmp_path / 'logs'), name='il_ros_deploy')
    probe = GraphProbe(ros_node)
    probe.topic('/il/control_source', String, STATE_QOS)
    probe.wait(p, lambda: procs.log(p), 180, until=lambda: any(
        m.data == 'policy' for m in probe.seen['/il/control_source']), what='the policy to drive')
