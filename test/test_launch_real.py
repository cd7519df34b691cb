"""The launch files under the real ``ros2 launch``, and il-ros, over real processes.

Needs the ``launch``, ``launch_ros`` and ``ros2cli`` packages (a ROS install, or the wheels
of ../shared/ros2-tools in the venv); without them the ``ros2 launch`` cases are skipped and
test_launch_files.py checks the launch files against stand-ins. The package is found through
an ament prefix made in a temp folder (share/il_ros links to this checkout, lib/il_ros holds
one small script per node), as the ros2-tools README describes for an editable install.

What is checked: typed values (``rtf:=4``, ``seed:=3``) reach the nodes' double and integer
parameters under both front ends; ``record.launch.py cameras:=[front,wrist]`` records both
cameras and exits by itself; ``sim.launch.py`` starts with no MUJOCO_GL and no DISPLAY.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import sys

import pytest

from conftest import REPO, wait_for

HAVE_LAUNCH = all(importlib.util.find_spec(m) is not None
                  for m in ('launch', 'launch_ros', 'ros2cli', 'ros2launch'))
needs_launch = pytest.mark.skipif(not HAVE_LAUNCH, reason='no launch / launch_ros / ros2cli '
                                  'here (install ../shared/ros2-tools to run these)')
ROS2 = 'import sys; from ros2cli.cli import main; sys.exit(main())'


@pytest.fixture(scope='module')
def ament_prefix(tmp_path_factory) -> Path:
    """A prefix holding the ament index entry, share/il_ros and lib/il_ros/<executable>."""
    from il_ros.config import load_graph
    prefix = tmp_path_factory.mktemp('prefix')
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'il_ros').touch()
    share = prefix / 'share' / 'il_ros'
    share.mkdir()
    (share / 'package.xml').symlink_to(REPO / 'package.xml')
    for folder in ('launch', 'config', 'sim'):      # real folders, linked files (ament rule)
        for f in (REPO / folder).rglob('*'):
            if f.is_file():
                dst = share / f.relative_to(REPO)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(f)
    lib = prefix / 'lib' / 'il_ros'
    lib.mkdir(parents=True)
    for exe in {s.executable for s in load_graph().nodes.values()}:
        script = lib / exe
        script.write_text(f'#!{sys.executable}\nimport sys\n'
                          f'from il_ros.ros.{exe} import main\nsys.exit(main())\n')
        script.chmod(0o755)
    return prefix


def _launch_env(prefix: Path, **changes) -> dict:
    env = {**os.environ,
           'AMENT_PREFIX_PATH': os.pathsep.join([str(prefix), sys.prefix]),
           'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def _start_ros2_launch(procs, prefix, launch_file, *args, remove=()):
    import subprocess
    env = _launch_env(prefix)
    for name in remove:
        env.pop(name, None)
    log = procs.log_dir / 'ros2_launch.log'
    fh = open(log, 'wb')  # noqa: SIM115 - closed below, the process keeps its copy
    p = subprocess.Popen([sys.executable, '-c', ROS2, 'launch', 'il_ros', launch_file, *args],
                         stdout=fh, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                         start_new_session=True)
    fh.close()
    procs.procs.append((p, log))
    return p


def _get_params(node, target: str, names: list[str], timeout: float = 90.0) -> dict:
    """``{name: (type, value)}`` of ``target``'s parameters, over its get_parameters service."""
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python
    client = node.create_client(GetParameters, f'/{target}/get_parameters')
    try:
        wait_for(lambda: client.wait_for_service(timeout_sec=0.2), timeout,
                 what=f'/{target}/get_parameters')
        future = client.call_async(GetParameters.Request(names=names))
        rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
        values = future.result().values
        return {n: (v.type, parameter_value_to_python(v)) for n, v in zip(names, values)}
    finally:
        node.destroy_client(client)


@pytest.mark.parametrize('front_end', [
    pytest.param('ros2_launch', marks=needs_launch), 'il_ros'])
def test_typed_values_reach_the_nodes(front_end, procs, ros_node, tmp_path, request):
    """``rtf:=4`` and ``seed:=3`` arrive as the double 4.0 and the integer 3."""
    from rcl_interfaces.msg import ParameterType
    runner = None
    if front_end == 'ros2_launch':
        prefix = request.getfixturevalue('ament_prefix')
        p = _start_ros2_launch(procs, prefix, 'sim.launch.py', 'rtf:=4', 'seed:=3')
    else:
        from il_ros.launcher import GraphRunner, ros_env
        runner = GraphRunner('sim', {'rtf': '4', 'seed': '3'}, tmp_path / 'logs',
                             env=ros_env(dict(os.environ)))
        runner.start()
        p = runner.procs['sim_robot'].popen
    try:
        got = _get_params(ros_node, 'sim_robot', ['real_time_factor', 'seed'])
        assert p.poll() is None
    finally:
        if runner is not None:
            runner.stop()
    assert got == {'real_time_factor': (ParameterType.PARAMETER_DOUBLE, 4.0),
                   'seed': (ParameterType.PARAMETER_INTEGER, 3)}


@needs_launch
def test_record_launch_records_every_camera_asked_for(procs, ament_prefix, tmp_path):
    """``cameras:=[front,wrist]`` renders and records both; the launch ends with the recorder."""
    import json

    from rosbags.rosbag2 import Reader
    out = tmp_path / 'bags'
    p = _start_ros2_launch(procs, ament_prefix, 'record.launch.py', 'task:=lift',
                           'episodes:=1', 'cameras:=[front,wrist]', 'rtf:=4', 'noise:=0',
                           f'out:={out}')
    wait_for(lambda: p.poll() is not None, 300, interval=0.5, what='the launch to end')
    log = procs.log(p)
    assert p.returncode == 0, log[-3000:]
    metas = sorted(out.glob('episode_*.json'))
    assert len(metas) == 1, log[-3000:]
    meta = json.loads(metas[0].read_text())
    assert meta['status'] in ('complete', 'complete_with_loss'), meta
    with Reader(metas[0].with_suffix('')) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    for topic in ('/camera/front/image_raw', '/camera/wrist/image_raw', '/joint_states',
                  '/il/command', '/il/teleop/command'):
        assert counts.get(topic, 0) > 5, (topic, counts)
    assert meta['topics']['/camera/wrist/image_raw']['expected_rate_source'] == 'parameter'


@needs_launch
def test_sim_launch_starts_headless(procs, ament_prefix, ros_node):
    """No MUJOCO_GL, no DISPLAY: sim_robot picks a backend and publishes camera images."""
    from sensor_msgs.msg import Image

    from il_ros.ros.node_utils import SENSOR_QOS
    got = []
    ros_node.create_subscription(Image, '/camera/front/image_raw', got.append, SENSOR_QOS)
    p = _start_ros2_launch(procs, ament_prefix, 'sim.launch.py',
                           remove=('MUJOCO_GL', 'DISPLAY', 'PYOPENGL_PLATFORM'))
    import rclpy

    def image():
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        assert p.poll() is None, procs.log(p)[-3000:]
        return got
    wait_for(image, 120, interval=0.0, what='a camera image from the headless sim')


def _two_camera_checkpoint(path: Path) -> str:
    """A small random-init sim-arm policy that needs the front and the wrist camera."""
    import torch

    from il_ros.models import build_policy, save_checkpoint
    from il_ros.models.presets import preset
    from il_ros.training.spec import sim_spec
    torch.manual_seed(0)
    spec = sim_spec('lift')
    spec.cameras = ['front', 'wrist']
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1],
                                      'num_kp': 4, 'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]}, crop=None, cameras=spec.cameras)
    a, j = spec.action_dim, spec.proprio_dim
    stats = {'action': {'min': [-0.2] * a, 'max': [0.2] * a},
             'joint_pos': {'mean': [0.0] * j, 'std': [0.5] * j},
             **{f'image/{c}': {'mean': [0.5] * 3, 'std': [0.25] * 3} for c in spec.cameras}}
    return str(save_checkpoint(build_policy(cfg, spec, stats), path))


@pytest.mark.parametrize('front_end', [
    pytest.param('ros2_launch', marks=needs_launch), 'il_ros'])
def test_deploy_drives_with_the_checkpoints_cameras(front_end, procs, ros_node, tmp_path,
                                                    request):
    """A checkpoint needing front + wrist: the sim renders both and the policy drives.

    Before the cameras came from the checkpoint, deploy.launch.py rendered the front camera
    only and the controller held forever.
    """
    import rclpy
    from std_msgs.msg import String

    from il_ros.ros.node_utils import STATE_QOS
    ckpt = _two_camera_checkpoint(tmp_path / 'ckpt')
    sources = []
    ros_node.create_subscription(String, '/il/control_source',
                                 lambda m: sources.append(m.data), STATE_QOS)
    if front_end == 'ros2_launch':
        p = _start_ros2_launch(procs, request.getfixturevalue('ament_prefix'),
                               'deploy.launch.py', f'checkpoint:={ckpt}', 'enabled:=true')
    else:
        p = procs.python('il_ros.cli', 'deploy', '--checkpoint', ckpt, '--sim', 'lift',
                         '--enable', '--log-dir', str(tmp_path / 'logs'), name='il_ros_deploy')

    def driving():
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        assert p.poll() is None, procs.log(p)[-3000:]
        return 'policy' in sources
    wait_for(driving, 180, interval=0.0, what=f'the policy to drive (sources seen: '
             f'{sorted(set(sources))})')
