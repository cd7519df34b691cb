"""sim_robot: a MuJoCo-simulated arm that speaks the same ROS 2 topics as the real robot.

Parameter ``robot`` (a name in config/robots or a robot YAML) says how it speaks, as the
robot's driver would:

- commands on ``command.topic`` in the robot's ``command.type``: ``Float64MultiArray`` in
  action order, ``JointTrajectory`` (the first point's positions, mapped by ``joint_names``)
  or ``JointState`` (by ``name``); a message that does not name every action exactly once,
  or has the wrong length, is ignored with a throttled warning (no motion);
- ``sensor_msgs/JointState`` on ``joint_states.topic`` at ``joint_states.rate_hz``, with the
  names and order of ``sim.published_joints`` (may hold joints the policy does not read),
  else ``joint_states.joints``;
- every selected camera (parameter ``cameras``; default all) at its native width x height
  and rate: ``Image`` in its encoding or ``CompressedImage`` (jpeg at
  ``il_ros.images.JPEG_QUALITY``, png), made by ``il_ros.ros.conversions.camera_msg``, the
  encoding in-process evaluation mirrors.
  A camera is rendered only when its period is due.

Besides, for the sim's own tools: ``/clock``, ``/sim/state`` (privileged state for scripted
experts), ``/sim/success`` and the ``/sim/reset`` service. The node chooses a headless
MuJoCo GL backend itself (il_ros.render) unless ``MUJOCO_GL`` is set.

Time: the simulation keeps its own clock, monotonic across episodes, and stamps every message
with it. It is advanced from a wall-clock timer at ``real_time_factor`` times real time, one
physics step at a time, so each stream is published at exactly its configured sim-time rate.
After a stall (a starved process) it catches up at most 0.25 s of sim time at once and
then goes on at ``real_time_factor`` again: the rest of the lag is never made up, so the sim
never runs faster than that (a warning says how much was dropped).

Lockstep (``lockstep: true``, for scripted collection): after each ``/sim/state`` the sim waits
for the first command that follows it, then goes on at once. The command answering the state
of tick t then acts from tick t exactly, at any speed-up, and ``/clock`` reads t while the
command is in flight, so a recorder on sim time logs it at t. ``real_time_factor`` becomes a
speed cap (<= 0: as fast as the nodes go). Without a command for ``lockstep_timeout_s`` (wall)
it goes on with the last command, so a missing teleop slows the sim but never stops it.
"""
from __future__ import annotations

from il_ros.render import setup_headless_gl

setup_headless_gl()   # before anything imports mujoco: it reads MUJOCO_GL once, on import

import time  # noqa: E402

import numpy as np  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from il_ros import keys  # noqa: E402
from il_ros.ros.command_adapters import (command_msg_type, command_tag,  # noqa: E402
                                         CommandError, make_parser)
from il_ros.ros.conversions import (array_msg, camera_msg, joint_state_msg,  # noqa: E402
                                    to_time)
from il_ros.ros.node_diagnostics import SimRobotDiagnostics  # noqa: E402
from il_ros.ros.node_utils import (COMMAND_QOS, declare, ParameterError, run,  # noqa: E402
                                   SENSOR_QOS, STATE_QOS)
from il_ros.robot import DEFAULT_ROBOT  # noqa: E402
from il_ros.ros.robot_param import (check_sim_task, load_robot_param,  # noqa: E402
                                    refuse_removed, ROBOT_DESCRIPTION, robot_file)
from il_ros.sim import make_env, TASKS  # noqa: E402

REMOVED = {
    'image_width': 'cameras[].width',
    'image_height': 'cameras[].height',
    'camera_rate_hz': 'cameras[].rate_hz',
    'joint_state_rate_hz': 'joint_states.rate_hz',
    'command_topic': 'command.topic',
}
"""Parameters that duplicated robot facts -> the robot YAML field that gives them now."""


class _Stream:
    """A publication due every ``period`` seconds of sim time."""

    def __init__(self, rate_hz: float, name: str):
        if not rate_hz > 0:
            raise ValueError(f'{name} must be > 0 Hz, got {rate_hz}')
        self.period = 1.0 / rate_hz
        self.next_t = 0.0

    def due(self, t: float) -> bool:
        if t + 1e-9 < self.next_t:
            return False
        # Schedule from the nominal time so rounding never accumulates into drift.
        self.next_t = max(self.next_t + self.period, t - self.period / 2)
        return True


class SimRobot(Node):
    """The simulated robot node."""

    def __init__(self):
        super().__init__('sim_robot')
        # Read at start-up only: every parameter is read-only (rclpy refuses a later set).
        p = lambda *a, **k: declare(self, *a, read_only=True, **k)  # noqa: E731
        pos = {'min': 0.0, 'min_exclusive': True}
        self.robot = robot = load_robot_param(p('robot', DEFAULT_ROBOT, ROBOT_DESCRIPTION))
        refuse_removed(self, REMOVED, robot)
        self.task = p('task', 'lift', 'Sim task: lift, reach_around, or the long-horizon task '
                      'path.', choices=TASKS)
        cameras = p('cameras', [], "Which of the robot's cameras to render and publish "
                    '(each at its native size, encoding and rate); empty: all of them.',
                    array_type='string')
        state_rate = p('state_rate_hz', robot.control_rate_hz,
                       'Rate of /sim/state and /sim/success (sim time); the scripted '
                       'expert acts once per /sim/state, so this is its control rate '
                       "(default: the robot's control_rate_hz).", **pos)
        self.rtf = p('real_time_factor', 1.0,
                     'Sim seconds per wall second; >1 for fast scripted recording. With '
                     'lockstep a speed cap, where <= 0 means as fast as the nodes go.',
                     finite=True)
        self.seed = p('seed', 0, 'Seed of the first episode; episode k uses seed + k.', min=0)
        self.command_timeout = p('command_timeout_s', 0.0,
                                 'Hold the last command this long (sim s) before holding the '
                                 'current pose; 0 holds the last command forever.', min=0.0)
        tick_hz = p('tick_rate_hz', 100.0, 'Wall-clock rate of the stepping timer.', **pos)
        self.lockstep = p('lockstep', False, 'Wait for the command answering each /sim/state '
                          'before stepping on (scripted collection).')
        self.lockstep_timeout = p('lockstep_timeout_s', 1.0, 'Lockstep: wall seconds to wait '
                                  'for a command before going on with the last one.', **pos)
        if not (self.rtf > 0 or self.lockstep):
            raise ParameterError(f'parameter real_time_factor={self.rtf!r}: must be > 0 '
                                 '(<= 0, as fast as the nodes go, only with lockstep: true)')
        check_sim_task(robot, self.task)
        self.cameras = [self._camera(c, cameras) for c in (cameras or robot.camera_names)]
        sizes = sorted({(c.height, c.width) for c in self.cameras})
        if len(sizes) > 1:
            raise ParameterError(f'parameter cameras={list(cameras)!r}: the cameras of '
                                 f'{robot_file(robot)} have different sizes {sizes}; '
                                 'sim_robot renders one size: select cameras of one size')
        self.env = make_env(self.task, cameras=tuple(c.name for c in self.cameras),
                            image_size=sizes[0] if sizes else (84, 84), seed=self.seed,
                            render=bool(self.cameras), robot=robot)
        if list(self.env.action_names) != robot.action_names:
            raise ParameterError(f'parameter robot={robot.name!r}: the sim scene acts on '
                                 f'{self.env.action_names}, {robot_file(robot)} lists '
                                 f'actions {robot.action_names}')
        self.frame_prefix = 'sim'
        self.published_joints = list((robot.sim.published_joints if robot.sim else None)
                                     or robot.joint_names)
        self._js_index = _joint_index(self.env.model, self.published_joints)
        self._arm_index = _joint_index(self.env.model, robot.arm_actions)
        self._gripper_i = (robot.action_names.index(robot.gripper.action)
                           if robot.gripper else None)
        self.streams = {
            'joint_states': _Stream(robot.joint_states.rate_hz, 'joint_states.rate_hz'),
            'state': _Stream(state_rate, 'state_rate_hz'),
        }
        self.camera_streams = {c.name: _Stream(c.rate_hz, f'{c.name} rate_hz')
                               for c in self.cameras}
        self.pub_images = {
            c.name: self.create_publisher(CompressedImage if c.compressed else Image,
                                          c.topic, SENSOR_QOS) for c in self.cameras}
        self.pub_js = self.create_publisher(JointState, robot.joint_states.topic, SENSOR_QOS)
        self.pub_state = self.create_publisher(Float64MultiArray, keys.TOPIC_SIM_STATE,
                                               STATE_QOS)
        self.pub_success = self.create_publisher(Bool, keys.TOPIC_SIM_SUCCESS, STATE_QOS)
        self.pub_clock = self.create_publisher(Clock, keys.TOPIC_CLOCK, STATE_QOS)
        self.parse_command = make_parser(robot.command.type, robot.action_names)
        self.create_subscription(command_msg_type(robot.command.type), robot.command.topic,
                                 self._on_command, COMMAND_QOS)
        self.create_service(Trigger, keys.SERVICE_SIM_RESET, self._on_reset)

        self.sim_time = 0.0          # monotonic across episodes (the /clock time)
        self.episode = -1
        self.last_command_t = None
        self.last_command = None
        self.bad_commands = 0
        self.stale_commands = 0
        self.lag_forgiven = 0.0      # sim s not simulated because the sim fell behind
        self.fresh_command = False   # lockstep: a command arrived since the pause
        self._reset_episode()        # also sets waiting_since (lockstep pause start) to None
        self._anchor()
        self.create_timer(1.0 / tick_hz, self._advance)
        self.diagnostics = SimRobotDiagnostics(self)       # /diagnostics, once a second
        cams = ', '.join(f'{c.name} {c.width}x{c.height} {c.encoding} {c.rate_hz:g} Hz'
                         for c in self.cameras) or 'none'
        self.get_logger().info(
            f'robot={robot.name} task={self.task} rtf={self.rtf} cameras: {cams}; '
            f'{self.pub_js.topic_name} at {robot.joint_states.rate_hz:g} Hz; commands '
            f'{robot.command.type} on {self.resolve_topic_name(robot.command.topic)} '
            f'({robot.action_names})')

    def _camera(self, name: str, selected):
        try:
            return self.robot.camera(name)
        except KeyError as e:
            raise ParameterError(f'parameter cameras={list(selected)!r}: {e.args[0]}') from None

    # -- callbacks -----------------------------------------------------------------------
    def _on_command(self, msg) -> None:
        tag = command_tag(msg)
        if tag.startswith(keys.EPISODE_TAG) and tag != self.episode_tag:
            # An answer to a state of the previous episode, in flight across a reset.
            self.stale_commands += 1
            return
        try:
            a = self.parse_command(msg)
        except CommandError as e:
            self.bad_commands += 1
            self.get_logger().warning(
                f'ignoring command on {self.resolve_topic_name(self.robot.command.topic)} '
                f'(no motion): {e}',
                throttle_duration_sec=2.0)
            return
        self.env.set_command(a)
        self.last_command = a
        self.last_command_t = self.sim_time
        if self.waiting_since is not None:
            self.fresh_command = True
            self._advance()  # lockstep: go on at once, not at the next timer tick

    def _on_reset(self, request, response):
        self._reset_episode()
        response.success = True
        response.message = f'episode {self.episode} seed {self.seed + self.episode}'
        return response

    def _reset_episode(self) -> None:
        self.episode += 1
        self.env.reset(seed=self.seed + self.episode)
        self.last_command_t = None
        self.last_command = None
        self.waiting_since = None  # a lockstep wait was for the old episode's state
        self.episode_tag = None    # no tagged command applies until the new state is out
        # Streams keep their sim-time grid across episodes: the new episode's first sample
        # follows within one period and no stamp is ever repeated.

    def _anchor(self) -> None:
        """Restart real-time pacing from now (after a pause)."""
        self.wall_start = time.monotonic()
        self.sim_start = self.sim_time

    def _advance(self) -> None:
        """Step physics up to the wall-clock target (or, in lockstep, to the next state)."""
        if self.waiting_since is not None:
            waited = time.monotonic() - self.waiting_since
            if not self.fresh_command:
                if waited < self.lockstep_timeout:
                    return
                self.get_logger().warning(
                    f'lockstep: no command within {self.lockstep_timeout}s of /sim/state; '
                    'going on with the last command', throttle_duration_sec=5.0)
            self.waiting_since = None
            self._anchor()
        if self.rtf > 0:
            target = self.sim_start + (time.monotonic() - self.wall_start) * self.rtf
            # Never catch up more than 0.25 s of sim time at once (e.g. after a stall): the
            # rest of the lag is forgiven, i.e. the pacing origin moves *back* by it, so the
            # sim goes on at real_time_factor from here. (Moving it forward, as this once
            # did, doubled the lag at every call after a stall of more than 0.5 s: the sim
            # then ran as fast as the CPU allowed, for good.)
            lag = target - self.sim_time
            if lag > 0.25:
                self.sim_start -= lag - 0.25
                target = self.sim_time + 0.25
                self.lag_forgiven += lag - 0.25
                self.get_logger().warning(
                    f'fell {lag:.2f} s behind real time x {self.rtf:g} (the machine is '
                    f'overloaded?): caught up 0.25 s, the other {lag - 0.25:.2f} s are not '
                    f'made up ({self.lag_forgiven:.2f} s in all)', throttle_duration_sec=5.0)
        else:
            target = self.sim_time + 0.25
        dt = self.env.physics_dt
        while self.sim_time + dt <= target + 1e-12:
            self.env.step_physics(1)
            self.sim_time += dt
            if (self.command_timeout > 0 and self.last_command_t is not None
                    and self.sim_time - self.last_command_t > self.command_timeout):
                self.env.set_command(self._hold_action())
                self.last_command_t = None
            if self._publish_due() and self.lockstep:
                self.waiting_since = time.monotonic()
                self.fresh_command = False
                break
        if not self.lockstep:
            # In lockstep /clock moves only at control ticks (published with /sim/state):
            # it then reads t until the next tick, so a recorder that is slow to take the
            # command answering tick t still logs it at t, not at some time in between.
            self.pub_clock.publish(Clock(clock=to_time(self.sim_time)))

    def _hold_action(self) -> np.ndarray:
        """Keep the arm where it is (current joint positions) and the gripper as commanded."""
        a = self.last_command.copy()
        arm = [i for i in range(a.size) if i != self._gripper_i]
        a[arm] = self.env.data.qpos[self._arm_index[0]]
        return a

    def _publish_due(self) -> bool:
        """Publish every stream due now; True when /sim/state was published."""
        t = self.sim_time
        if self.streams['joint_states'].due(t):
            d, (qi, vi) = self.env.data, self._js_index
            self.pub_js.publish(joint_state_msg(self.published_joints, d.qpos[qi], d.qvel[vi],
                                                d.qfrc_actuator[vi], t))
        for cam in self.cameras:
            # Render a camera only when it is due: rendering is the costly part.
            if self.camera_streams[cam.name].due(t):
                self.pub_images[cam.name].publish(camera_msg(
                    self.env.render(cam.name), t, f'{self.frame_prefix}/{cam.name}', cam))
        if self.streams['state'].due(t):
            # /clock first: a recorder on sim time then logs the answering command at t.
            self.pub_clock.publish(Clock(clock=to_time(t)))
            state = self.env.get_state()  # state[0]: the env's episode index
            self.episode_tag = f'{keys.EPISODE_TAG}{int(state[0])}'
            self.pub_state.publish(array_msg(state, f'{self.task}_state'))
            self.pub_success.publish(Bool(data=bool(self.env.success())))
            return True
        return False

    def destroy_node(self):
        """Close the sim (when it was made), then destroy the node."""
        if getattr(self, 'env', None) is not None:
            self.env.close()
        return super().destroy_node()


def _joint_index(model, names) -> tuple[np.ndarray, np.ndarray]:
    """(qpos addresses, dof addresses) of the named joints of a MuJoCo model."""
    try:
        ids = [model.joint(n).id for n in names]
    except KeyError as e:
        raise ParameterError(f'parameter robot: the sim scene has no joint {e}') from None
    return (np.array([model.jnt_qposadr[j] for j in ids], int),
            np.array([model.jnt_dofadr[j] for j in ids], int))


def main(args=None):
    """Run the sim_robot node."""
    run(SimRobot, args)


if __name__ == '__main__':
    main()
