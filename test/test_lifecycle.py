"""The controller and the recorder as managed (lifecycle) nodes, over real processes.

Each node starts with ``autostart:=false`` and is driven through configure -> activate ->
deactivate -> activate -> deactivate -> cleanup -> shutdown with the standard lifecycle
services (``~/change_state``, ``~/get_state``: lifecycle_msgs/srv), checking what each
transition does: the controller commands the robot only while active and HOLDs (sends
nothing) when deactivated; the recorder records only while active and closes the open
episode ``complete`` on deactivate. A configure that cannot succeed (a checkpoint path that
does not exist, an output folder that is a file) returns FAILURE, logs the reason naming the
parameter, and leaves the node running, unconfigured; fixed, it configures. Shutdown ends
the process with exit code 0. Every wait is event-based with a generous timeout.
"""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip('rclpy')
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from conftest import wait_for  # noqa: E402
from test_controller_node import make_checkpoint, Robot, start  # noqa: E402
from test_recorder import meta as read_meta  # noqa: E402
import test_launch_real as launch_real  # noqa: E402

ament_prefix = launch_real.ament_prefix             # the module's fixture: il_ros's prefix

T = Transition


def change(robot, node, transition) -> bool:
    """Ask ``node`` for one transition; True when it succeeded."""
    return robot.call(ChangeState, f'/{node}/change_state',
                      ChangeState.Request(transition=Transition(id=transition))).success


def state(robot, node) -> str:
    """``node``'s lifecycle state (a query: asked again when its answer is lost)."""
    return robot.call(GetState, f'/{node}/get_state', GetState.Request(),
                      tries=3).current_state.label


def set_string(robot, node, name, value) -> bool:
    v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    req = SetParameters.Request(parameters=[Parameter(name=name, value=v)])
    return robot.call(SetParameters, f'/{node}/set_parameters', req).results[0].successful


def test_controller_commands_only_while_active(procs, ros_node, tmp_path):
    import torch
    torch.set_num_threads(1)
    ckpt = make_checkpoint(tmp_path / 'ckpt', 0)
    missing = str(tmp_path / 'no_such_checkpoint')
    robot = Robot(ros_node)
    p = start(procs, robot, 'autostart:=false', f'checkpoint:={missing}', 'enabled:=true')
    assert state(robot, 'controller') == 'unconfigured'
    t0 = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t0)) >= 10, 30, '10 ticks unconfigured')
    assert not robot.cmds and set(robot.sources_since(t0)) == {'hold'}
    assert robot.status[-1]['lifecycle'] == 'unconfigured'

    # A checkpoint that does not exist: configure fails naming it; the node stays up.
    assert not change(robot, 'controller', T.TRANSITION_CONFIGURE)
    assert state(robot, 'controller') == 'unconfigured' and p.poll() is None
    robot.wait(lambda: 'configure failed: parameter checkpoint=' in procs.log(p), 10,
               'the reason in the log')
    assert missing in procs.log(p)
    ans = robot.call(Trigger, '/controller/load_checkpoint', Trigger.Request())
    assert not ans.success and 'unconfigured' in ans.message, ans.message

    # Fixed: configure loads it; inactive, the loaded policy sends nothing.
    assert set_string(robot, 'controller', 'checkpoint', ckpt)
    assert change(robot, 'controller', T.TRANSITION_CONFIGURE)
    assert state(robot, 'controller') == 'inactive'
    t1 = time.monotonic()
    robot.wait(lambda: len(robot.sources_since(t1)) >= 10, 30, '10 ticks inactive')
    assert not robot.cmds, 'an inactive controller sent a command'

    for _ in range(2):                   # activate -> commands; deactivate -> HOLD, none sent
        assert change(robot, 'controller', T.TRANSITION_ACTIVATE)
        t_on = time.monotonic()
        robot.wait(lambda: len(robot.cmds_since(t_on)) >= 5, 60, 'commands while active')
        robot.wait(lambda: robot.sources_since(t_on)[-3:] == ['policy'] * 3, 30, 'POLICY')
        assert robot.loaded(ckpt)()
        assert change(robot, 'controller', T.TRANSITION_DEACTIVATE)
        assert state(robot, 'controller') == 'inactive'
        t_off = time.monotonic()
        robot.wait(lambda: len(robot.sources_since(t_off)) >= 20, 30, '20 ticks inactive')
        assert not robot.cmds_since(t_off), 'commands went on after deactivate'
        assert set(robot.sources_since(t_off)) == {'hold'}
        assert robot.status[-1]['lifecycle'] == 'inactive'
        # ~/enable while inactive changes the flag, never the output.
        assert robot.call(SetBool, '/controller/enable', SetBool.Request(data=True)).success

    assert change(robot, 'controller', T.TRANSITION_CLEANUP)
    assert state(robot, 'controller') == 'unconfigured'
    robot.wait(lambda: robot.status[-1]['checkpoint'] is None, 30, 'the policy dropped')
    assert change(robot, 'controller', T.TRANSITION_UNCONFIGURED_SHUTDOWN)
    wait_for(lambda: p.poll() is not None, 30, what='the controller to exit after shutdown')
    log = procs.log(p)
    assert p.returncode == 0 and 'Traceback' not in log, log


def test_recorder_records_only_while_active_and_deactivate_closes_the_episode(
        procs, ros_node, tmp_path):
    robot = Robot(ros_node)                          # its call() spins the probe node
    pub = ros_node.create_publisher(String, '/lc/data', 10)
    blocker = tmp_path / 'eps'
    blocker.write_text('a file where the output folder should be')
    rec = procs.python('il_ros.ros.recorder', '--ros-args', '-p', f'output_dir:={blocker}',
                       '-p', 'autostart:=false', '-p', 'topics:=[/lc/data]', name='recorder')
    assert state(robot, 'recorder') == 'unconfigured'
    ans = robot.call(Trigger, '/recorder/start_episode', Trigger.Request())
    assert not ans.success and 'unconfigured' in ans.message, ans.message

    # An output folder that cannot be made: configure fails naming it; the node stays up.
    assert not change(robot, 'recorder', T.TRANSITION_CONFIGURE)
    assert state(robot, 'recorder') == 'unconfigured' and rec.poll() is None
    wait_for(lambda: 'configure failed: parameter output_dir=' in procs.log(rec), 10,
             what='the reason in the log')
    blocker.unlink()
    assert change(robot, 'recorder', T.TRANSITION_CONFIGURE)
    assert blocker.is_dir() and state(robot, 'recorder') == 'inactive'
    ans = robot.call(Trigger, '/recorder/start_episode', Trigger.Request())
    assert not ans.success and 'inactive' in ans.message, ans.message

    def publish(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub.publish(String(data='x'))
            rclpy.spin_once(ros_node, timeout_sec=0.02)

    for i in range(2):             # activate, record; deactivate closes the episode complete
        assert change(robot, 'recorder', T.TRANSITION_ACTIVATE)
        wait_for(lambda: 'subscribed /lc/data ' in procs.log(rec), 20, what='subscription')
        ans = robot.call(Trigger, '/recorder/start_episode', Trigger.Request())
        assert ans.success, ans.message
        publish(1.0)
        assert change(robot, 'recorder', T.TRANSITION_DEACTIVATE)
        meta = read_meta(blocker, i)
        assert meta['status'] == 'complete', meta
        assert meta['topics']['/lc/data']['count'] > 0, meta
    assert not (blocker / 'episode_0002.json').exists()

    assert change(robot, 'recorder', T.TRANSITION_CLEANUP)
    assert state(robot, 'recorder') == 'unconfigured'
    assert change(robot, 'recorder', T.TRANSITION_UNCONFIGURED_SHUTDOWN)
    wait_for(lambda: rec.poll() is not None, 30, what='the recorder to exit after shutdown')
    log = procs.log(rec)
    assert rec.returncode == 0 and 'Traceback' not in log, log


def test_autostart_recorder_whose_configure_fails_exits_1_naming_the_folder(procs, tmp_path):
    """il-ros record's path (autostart): a failed configure ends the process, not a hang."""
    blocker = tmp_path / 'eps'
    blocker.write_text('a file where the output folder should be')
    rec = procs.python('il_ros.ros.recorder', '--ros-args', '-p', f'output_dir:={blocker}',
                       name='recorder')
    wait_for(lambda: rec.poll() is not None, 30, what='the recorder to exit')
    log = procs.log(rec)
    assert rec.returncode == 1, log
    assert f"configure failed: parameter output_dir='{blocker}'" in log, log
    assert 'Traceback' not in log, log


@launch_real.needs_launch
def test_record_launch_ends_when_the_recorder_cannot_configure(procs, tmp_path, ament_prefix):
    """A record launch whose recorder fails configure ends, the reason in its log.

    Under ``ros2 launch`` the recorder is a LifecycleNode that the launch configures; here
    its output folder is a file.

    The launch files' successful path (configure, activate, record, end) is
    test_launch_real.py's record, deploy and dagger launches.
    """
    blocker = tmp_path / 'bags'
    blocker.write_text('a file where the output folder should be')
    p = launch_real._start_ros2_launch(procs, ament_prefix, 'record.launch.py', 'task:=lift',
                                       'episodes:=1', f'out:={blocker}')
    wait_for(lambda: p.poll() is not None, 120, interval=0.5, what='the launch to end')
    log = procs.log(p)
    assert f"configure failed: parameter output_dir='{blocker}'" in log, log[-3000:]
    assert 'exit code 1' in log, log[-3000:]       # the recorder, shut down unconfigured
    assert 'Traceback' not in log, log[-3000:]
