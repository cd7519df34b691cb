"""The controller node as a real process over DDS, with tiny random-init checkpoints.

The test process plays the robot: it publishes camera images and joint states, a human's
deadman heartbeats and commands, and watches the command topic, /il/control_source and
/controller/status. These tests prove the node's wiring; the loop's timing (watchdog,
takeover within one period, swap without a gap, latch and reset) is tested exactly, with a
fake clock, in test/test_control_loop.py. Every wait here is event-based with a generous
timeout: no wall-clock bound is asserted.

Checked here: nothing is sent while disabled; a camera that stops gives HOLD (stale), then,
while enabled, a latched watchdog fault that HOLDs after the camera is back until ~/reset;
hot swaps (trainer topic, parameter, service) keep the loop ticking; a mismatched
checkpoint is refused while the old one keeps running; a checkpoint with NaN weights is
refused at its warm-up while the old one keeps driving, and the ``checkpoint`` parameter
names the running checkpoint.

test/test_controller_safety.py has the takeover and fault cases: step limits, stale human
commands, lapsed heartbeats, chunk checks and the latched fault, frozen and malformed
streams.
"""
from __future__ import annotations

import json
from pathlib import Path
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.qos import (DurabilityPolicy, QoSProfile, qos_profile_sensor_data,  # noqa: E402
                       ReliabilityPolicy)
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402


PERIOD = 0.05
JOINTS = ['j0', 'j1', 'j2']
HW = 32
TEST_ROBOT = {
    'name': 'test_arm', 'description': 'three joints, one 32x32 camera (test only)',
    'control_rate_hz': 1 / PERIOD, 'joint_states': {'joints': JOINTS},
    'actions': [{'name': j, 'low': -1.0, 'high': 1.0, 'max_step': 0.1} for j in JOINTS],
    'cameras': [{'name': 'front', 'topic': '/camera/front/image_raw', 'width': HW,
                 'height': HW}]}
"""The robot the tests play: a robot description written to the test's folder."""
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def make_checkpoint(path, seed=0, actions=JOINTS, nan=False, action_min=None, action_max=None,
                    cameras=('front',)):
    """A tiny random-init conv4 + MLP policy for the test robot (3 joints, 32x32 camera).

    Its actions span ``action_min..action_max`` (default -0.5..0.5 for every value): the
    action normalizer maps the network's output range onto it.
    """
    import torch

    from il_ros.models import build_policy, RobotSpec, save_checkpoint
    from il_ros.models.presets import preset
    torch.manual_seed(seed)
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1],
                                      'num_kp': 4, 'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]}, crop=None, cameras=list(cameras))
    spec = RobotSpec(joint_names=JOINTS, action_names=list(actions), action_dim=len(actions),
                     proprio_dim=len(JOINTS), cameras=list(cameras), image_size=(HW, HW),
                     control_rate_hz=1 / PERIOD)
    a, j = len(actions), len(JOINTS)
    lo = np.array([-0.5] * a if action_min is None else action_min, float)
    hi = np.array([0.5] * a if action_max is None else action_max, float)
    stats = {'action': {'min': lo.tolist(), 'max': hi.tolist(),
                        'mean': ((lo + hi) / 2).tolist(), 'std': ((hi - lo) * 0.3).tolist()},
             'joint_pos': {'min': [-1.0] * j, 'max': [1.0] * j, 'mean': [0.0] * j,
                           'std': [0.5] * j},
             **{f'image/{c}': {'mean': [0.5] * 3, 'std': [0.25] * 3} for c in cameras}}
    policy = build_policy(cfg, spec, stats)
    if nan:
        with torch.no_grad():
            for prm in policy.head.parameters():
                prm.fill_(float('nan'))
    save_checkpoint(policy, path)
    return str(path)


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('ckpts')
    return {'a': make_checkpoint(d / 'a', 0), 'b': make_checkpoint(d / 'b', 1),
            'nan': make_checkpoint(d / 'nan', 2, nan=True),
            'other_robot': make_checkpoint(d / 'other', 3, actions=JOINTS + ['gripper'])}


class Robot:
    """The test's probe node playing the robot, a human and an observer."""

    def __init__(self, node):
        self.node = node
        self.cmds, self.sources, self.status = [], [], []
        node.create_subscription(Float64MultiArray, '/il/command',
                                 lambda m: self.cmds.append((time.monotonic(),
                                                             np.array(m.data))), RELIABLE)
        node.create_subscription(String, '/il/control_source',
                                 lambda m: self.sources.append((time.monotonic(), m.data)),
                                 RELIABLE)
        node.create_subscription(String, '/controller/status',
                                 lambda m: self.status.append(json.loads(m.data)), RELIABLE)
        self.pub_img = node.create_publisher(Image, '/camera/front/image_raw',
                                             qos_profile_sensor_data)
        self.pub_js = node.create_publisher(JointState, '/joint_states',
                                            qos_profile_sensor_data)
        self.pub_beat = node.create_publisher(Bool, '/il/intervention', RELIABLE)
        self.pub_human = node.create_publisher(Float64MultiArray, '/il/teleop/command',
                                               RELIABLE)
        self.camera, self.human = True, None
        self.beats_only = False          # heartbeats without a human command
        self.last_camera = self.last_beat = None
        self.image_stamp = None          # a fixed header stamp (a frozen camera), else now
        self.encoding, self.size = 'rgb8', HW
        self.joint_names = ['other', *reversed(JOINTS)]
        self.joints = [0.1, -0.2, 0.3]
        self._next_pub = 0.0
        self.proc = None

    def publish(self, force=False):
        now = time.monotonic()
        if now < self._next_pub and not force:
            return
        self._next_pub = now + 0.02
        js = JointState(name=self.joint_names,   # mapped by name, not by order
                        position=[9.0, *reversed(self.joints)])
        js.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_js.publish(js)
        if self.camera:
            ch, n = (1 if self.encoding == 'mono8' else 3), self.size
            img = Image(height=n, width=n, encoding=self.encoding, step=ch * n,
                        data=bytes(np.full(n * n * ch, int(now * 50) % 256, np.uint8)))
            img.header.stamp = self.image_stamp or js.header.stamp
            self.pub_img.publish(img)
            self.last_camera = now
        if self.human is not None or self.beats_only:
            if self.human is not None:
                self.pub_human.publish(Float64MultiArray(data=list(self.human)))
            self.pub_beat.publish(Bool(data=True))
            self.last_beat = now

    def spin(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.publish()
            rclpy.spin_once(self.node, timeout_sec=0.005)
            if self.proc is not None:
                assert self.proc.poll() is None, 'the controller died'
            if until is not None and until():
                return True
        return False

    def wait(self, pred, timeout, what):
        assert self.spin(timeout, pred), f'timed out waiting for {what}; last status ' \
            f'{self.status[-1:]}'

    def call(self, srv_type, name, request, timeout=10.0, tries=1):
        """The answer of service ``name``; an idempotent request may be sent ``tries`` times.

        A server can see a new client's request before DDS has matched the client's response
        reader, and then drops the answer ("failed to send response (timeout)", a loaded
        Jazzy CI run): asking again on the same client, once matched, gets it.
        """
        client = self.node.create_client(srv_type, name)
        self.wait(client.service_is_ready, 30, f'service {name}')
        for _ in range(tries):
            fut = client.call_async(request)
            if self.spin(timeout, fut.done):
                return fut.result()
            client.remove_pending_request(fut)
        raise AssertionError(f'timed out waiting for an answer from {name} ({tries} '
                             f'tries); last status {self.status[-1:]}')

    def release(self):
        """The human lets go of the deadman: the explicit hand-back (Bool false)."""
        self.human = None
        self.pub_beat.publish(Bool(data=False))

    def set_param(self, name, value):
        if isinstance(value, str):
            v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        elif isinstance(value, list):
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                               double_array_value=[float(x) for x in value])
        else:
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        req = SetParameters.Request(parameters=[Parameter(name=name, value=v)])
        return self.call(SetParameters, '/controller/set_parameters', req).results[0]

    def get_param(self, name):
        req = GetParameters.Request(names=[name])
        v = self.call(GetParameters, '/controller/get_parameters', req).values[0]
        return v.string_value if v.type == ParameterType.PARAMETER_STRING else v.double_value

    def sources_since(self, t):
        return [s for ts, s in self.sources if ts >= t]

    def cmds_since(self, t):
        return [c for ts, c in self.cmds if ts >= t]

    def loaded(self, path):
        return lambda: self.status and self.status[-1]['checkpoint'] == path


def write_robot(folder, **changes) -> str:
    """Write :data:`TEST_ROBOT` (with ``changes``) as a robot YAML; return its path."""
    from il_ros.config import save_yaml
    path = Path(folder) / f'robot_{len(list(Path(folder).glob("robot_*.yaml")))}.yaml'
    save_yaml({**TEST_ROBOT, **changes}, path)
    return str(path)


def start(procs, robot, *params):
    if not any(p.startswith('robot:=') for p in params):
        params = (f'robot:={write_robot(procs.log_dir)}', *params)
    args = ['--ros-args', '-p', 'status_rate_hz:=10.0']
    for prm in params:
        args += ['-p', prm]
    robot.proc = procs.python('il_ros.ros.controller', *args, name='controller')
    robot.wait(lambda: robot.status, 60, 'the controller\'s first status')
    return robot.proc


def test_disabled_sends_nothing_enable_watchdog_latch_and_reset(procs, ros_node, ckpts):
    robot = Robot(ros_node)
    p = start(procs, robot, f'checkpoint:={ckpts["a"]}', 'enabled:=false',
              'watchdog_periods:=3.0', 'fault_periods:=20.0')
    robot.wait(robot.loaded(ckpts['a']), 60, 'checkpoint a to load')
    t0 = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t0)) >= 20, 30, '20 ticks while disabled')
    assert not robot.cmds, 'a command was published while disabled'
    assert set(robot.sources_since(t0)) == {'hold'}
    assert robot.status[-1]['reason'] == 'disabled' and robot.status[-1]['fault'] is None

    assert robot.call(SetBool, '/controller/enable', SetBool.Request(data=True)).success
    t_on = time.monotonic()
    robot.wait(lambda: len(robot.cmds_since(t_on)) >= 10, 30, 'commands after enabling')
    robot.wait(lambda: robot.sources_since(t_on)[-5:] == ['policy'] * 5, 30, 'the policy')
    cmds = np.array(robot.cmds_since(t_on))
    assert cmds.shape[1] == 3 and np.all(np.isfinite(cmds)) and np.all(np.abs(cmds) <= 1.0)

    # A camera that stops: HOLD (stale) once its newest image is older than the watchdog,
    # repeating the last command; while enabled, older than fault_periods: a latched fault.
    robot.camera = False
    t_stop = robot.last_camera
    robot.wait(lambda: robot.status[-1]['reason'] in ('stale', 'fault_watchdog'), 30,
               'HOLD stale')
    robot.wait(lambda: robot.status[-1]['fault'] is not None, 30, 'the watchdog fault')
    st = robot.status[-1]
    assert st['safety']['hold_stale'] > 0, st
    assert st['fault']['reason'] == 'watchdog' and st['faults'] == 1, st
    assert 'FAULT watchdog' in procs.log(p)
    t_hold = next(ts for ts, s in robot.sources if ts >= t_stop and s == 'hold')
    held = robot.cmds_since(t_hold + 0.03)
    assert held and all(np.array_equal(c, held[0]) for c in held), 'HOLD must freeze'
    # The camera is back, but the fault stays latched: HOLD until ~/reset.
    robot.camera = True
    t_back = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t_back)) >= 20, 30, '20 ticks after the camera')
    assert set(robot.sources_since(t_back)) == {'hold'}
    assert robot.status[-1]['reason'] == 'fault_watchdog', robot.status[-1]
    assert all(np.array_equal(c, held[0]) for c in robot.cmds_since(t_back))
    ans = robot.call(Trigger, '/controller/reset', Trigger.Request())
    assert ans.success and 'watchdog' in ans.message, ans.message
    t_reset = time.monotonic()
    robot.wait(lambda: robot.sources_since(t_reset)[-3:] == ['policy'] * 3, 30,
               'POLICY after ~/reset')
    assert robot.status[-1]['fault'] is None and robot.status[-1]['resets'] >= 1

    assert robot.call(SetBool, '/controller/enable', SetBool.Request(data=False)).success
    t_off = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t_off)) >= 5, 30, 'ticks after disabling')
    t_quiet = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t_quiet)) >= 20, 30, '20 disabled ticks')
    assert not robot.cmds_since(t_quiet), 'commands went on after disabling'
    assert set(robot.sources_since(t_quiet)) == {'hold'}
    assert robot.status[-1]['tick_errors'] == 0 and robot.status[-1]['worker_errors'] == 0


def test_hot_swaps_keep_the_loop_running_mismatch_and_nan_weights_refused(procs, ros_node, ckpts):
    robot = Robot(ros_node)
    start(procs, robot, 'enabled:=true')
    robot.spin(1.0)
    # no policy: HOLD; the robot description names the command values, so the loop holds
    # the measured position (nothing else reaches the robot)
    assert {s for _, s in robot.sources} == {'hold'}
    assert all(np.allclose(c, robot.joints) for _, c in robot.cmds), robot.cmds[-1:]
    assert robot.status[-1]['reason'] == 'no_policy'

    # 1. The trainer's latched checkpoint topic.
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = ros_node.create_publisher(String, '/trainer/checkpoint', latched)
    pub.publish(String(data=ckpts['a']))
    robot.wait(lambda: robot.loaded(ckpts['a'])() and robot.status[-1]['source'] == 'policy',
               60, 'checkpoint a from the trainer topic')
    # The `checkpoint` parameter names the running checkpoint, whichever way it came.
    assert _poll(lambda: robot.get_param('checkpoint') == ckpts['a'], robot)
    robot.spin(1.0)

    # 2. The checkpoint parameter (hot reload), then 3. a mismatched one (refused).
    res = robot.set_param('checkpoint', ckpts['b'])
    assert res.successful, res.reason
    robot.wait(robot.loaded(ckpts['b']), 30, 'checkpoint b')
    robot.spin(0.5)
    res = robot.set_param('checkpoint', ckpts['other_robot'])
    assert not res.successful and 'action_dim 4 != 3' in res.reason, res.reason
    robot.spin(0.5)
    st = robot.status[-1]       # the refusal is reported, and b keeps running
    assert 'action_dim 4 != 3' in st['last_error'] and st['checkpoint'] == ckpts['b'], st
    # 4. ~/load_checkpoint reloads the parameter, still b.
    swaps = robot.status[-1]['swaps']
    ans = robot.call(Trigger, '/controller/load_checkpoint', Trigger.Request())
    assert ans.success, ans.message
    robot.wait(lambda: robot.status[-1]['swaps'] == swaps + 1, 30, 'the reload of b')
    robot.spin(0.5)
    st = robot.status[-1]
    assert st['checkpoint'] == ckpts['b'] and st['refused'] == 1
    assert st['last_error'] == '', st      # a successful swap clears the refusal's message
    # The loop kept running through three swaps and a refusal (its timing: the fake-clock
    # tests), and the policy drives again.
    robot.wait(lambda: robot.sources[-3:] and [s for _, s in robot.sources[-3:]] ==
               ['policy'] * 3, 30, 'the policy driving after the swaps')
    st = robot.status[-1]
    assert st['tick'] - robot.status[0]['tick'] >= 40 and st['tick_errors'] == 0

    # 5. A checkpoint with NaN weights (its description fits, so the set succeeds): refused
    #    at its warm-up; b keeps driving and the `checkpoint` parameter goes back to b.
    assert robot.get_param('checkpoint') == ckpts['b']
    refused, swaps = st['refused'], st['swaps']
    res = robot.set_param('checkpoint', ckpts['nan'])
    assert res.successful, res.reason
    robot.wait(lambda: robot.status[-1]['refused'] == refused + 1, 60,
               'the NaN checkpoint to be refused')
    t_nan = time.monotonic()
    robot.wait(lambda: len(robot.cmds_since(t_nan)) >= 20, 10, 'commands after the refusal')
    st = robot.status[-1]
    assert st['checkpoint'] == ckpts['b'] and st['swaps'] == swaps and not st['loading'], st
    assert ckpts['nan'] in st['last_error'] and 'not finite' in st['last_error'], st
    assert 'policy' in robot.sources_since(t_nan)                 # b drives on
    after = np.array(robot.cmds_since(t_nan))
    assert np.all(np.isfinite(after)) and len({c.tobytes() for c in after}) > 1
    assert _poll(lambda: robot.get_param('checkpoint') == ckpts['b'], robot), \
        robot.get_param('checkpoint')


def _poll(pred, robot, tries=20):
    for _ in range(tries):
        if pred():
            return True
        robot.spin(0.2)
    return False


def test_command_adapters():
    from il_ros.ros.command_adapters import make_adapter
    values = np.array([0.1, 0.2, 1.0])
    traj = make_adapter('joint_trajectory', ['a', 'b', 'g'], 0.05)(values, 12.5)
    assert traj.joint_names == ['a', 'b', 'g'] and list(traj.points[0].positions) == [
        0.1, 0.2, 1.0]
    assert traj.points[0].time_from_start.nanosec == 50_000_000
    js = make_adapter('joint_state', ['a', 'b', 'g'], 0.05)(values, 12.5)
    assert list(js.name) == ['a', 'b', 'g'] and js.header.stamp.sec == 12
    arr = make_adapter('float64_multi_array', [], 0.05)(values, 0.0)
    assert list(arr.data) == [0.1, 0.2, 1.0]
    with pytest.raises(NotImplementedError, match='twist_stamped'):
        make_adapter('twist_stamped', ['a'], 0.05)
    with pytest.raises(ValueError, match='unknown'):
        make_adapter('nope', ['a'], 0.05)


def test_drives_a_robot_with_native_size_bgr8_and_jpeg_cameras(procs, ros_node, tmp_path):
    """The controller drives a robot that speaks like a real one.

    Cameras at their own size (not the policy's), one bgr8 Image and one JPEG
    CompressedImage, joint states in another order with a joint the policy does not read,
    and JointTrajectory commands on its own topic.
    """
    import cv2
    from sensor_msgs.msg import CompressedImage
    from trajectory_msgs.msg import JointTrajectory
    ckpt = make_checkpoint(tmp_path / 'two_cams', 6, cameras=('front', 'wrist'))
    path = write_robot(procs.log_dir, command={'type': 'joint_trajectory',
                                               'topic': '/arm/joint_trajectory'},
                       cameras=[{'name': 'front', 'topic': '/cam/front', 'encoding': 'bgr8',
                                 'width': 80, 'height': 60, 'rate_hz': 20.0},
                                {'name': 'wrist', 'topic': '/cam/wrist/compressed',
                                 'type': 'CompressedImage', 'encoding': 'jpeg', 'width': 64,
                                 'height': 48, 'rate_hz': 20.0}])
    robot = Robot(ros_node)
    robot.camera = False                       # this test publishes its own cameras
    trajs = []
    ros_node.create_subscription(JointTrajectory, '/arm/joint_trajectory', trajs.append,
                                 RELIABLE)
    front = ros_node.create_publisher(Image, '/cam/front', qos_profile_sensor_data)
    wrist = ros_node.create_publisher(CompressedImage, '/cam/wrist/compressed',
                                      qos_profile_sensor_data)
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    jpeg = cv2.imencode('.jpg', rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))[1]

    def cameras():
        stamp = ros_node.get_clock().now().to_msg()
        img = Image(height=60, width=80, encoding='bgr8', step=240, data=bgr.tobytes())
        img.header.stamp = stamp
        front.publish(img)
        c = CompressedImage(format='jpeg', data=jpeg.tobytes())
        c.header.stamp = stamp
        wrist.publish(c)
    timer = ros_node.create_timer(0.03, cameras)
    try:
        start(procs, robot, f'robot:={path}', f'checkpoint:={ckpt}', 'enabled:=true')
        robot.wait(lambda: [s for _, s in robot.sources[-5:]] == ['policy'] * 5, 60,
                   'the policy driving from the native-size cameras')
    finally:
        ros_node.destroy_timer(timer)
    assert trajs and trajs[-1].joint_names == JOINTS and len(trajs[-1].points) == 1
    assert not robot.cmds                      # nothing on the default command topic
    st = robot.status[-1]
    assert st['tick_errors'] == 0 and st['checkpoint'] == ckpt, st


def test_a_checkpoint_needing_a_camera_the_robot_lacks_is_refused(tmp_path):
    """The slot refuses it before loading weights, naming the robot's file and the cameras."""
    from il_ros.control.slot import PolicySlot, Refused, RobotOverrides
    from il_ros.robot import load_robot
    robot = load_robot(write_robot(tmp_path))                  # a front camera only
    ckpt = make_checkpoint(tmp_path / 'two', 7, cameras=('front', 'wrist'))
    slot = PolicySlot(RobotOverrides(rate_hz=1 / PERIOD, joint_names=robot.joint_names,
                                     action_names=robot.action_names, robot=robot),
                      lambda a, j: None)
    with pytest.raises(Refused, match=r"robot_0.yaml: cameras: checkpoint .*two needs "
                                      r"camera\(s\) \['wrist'\], the robot has \['front'\]"):
        slot.check(ckpt)
    assert slot.check(make_checkpoint(tmp_path / 'one', 8)).cameras == ['front']
