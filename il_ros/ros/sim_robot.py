"""sim_robot: a MuJoCo-simulated arm that speaks the same ROS 2 topics as a real robot.

Publishes camera images, ``/joint_states``, ``/clock``, ``/sim/state`` (privileged state for
scripted experts) and ``/sim/success``; executes joint-position commands from ``/il/command``
(std_msgs/Float64MultiArray, the ros2_control forward-command layout); offers ``/sim/reset``.

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

import time

import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from il_ros import keys
from il_ros.ros.conversions import array_msg, image_msg, joint_state_msg, to_time
from il_ros.ros.node_utils import (COMMAND_QOS, declare, ParameterError, run, SENSOR_QOS,
                                   STATE_QOS)
from il_ros.sim import make_env, TASKS


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
        p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        pos = {'min': 0.0, 'min_exclusive': True}
        self.task = p('task', 'lift', 'Sim task: lift, reach_around, or the long-horizon task '
                      'path.', choices=TASKS)
        cameras = p('cameras', ['front'], 'Cameras to render and publish (front, wrist).')
        width = p('image_width', 84, 'Rendered image width in pixels.', min=1)
        height = p('image_height', 84, 'Rendered image height in pixels.', min=1)
        camera_rate = p('camera_rate_hz', 20.0, 'Image publication rate (sim time).', **pos)
        js_rate = p('joint_state_rate_hz', 50.0, 'JointState publication rate (sim time).',
                    **pos)
        state_rate = p('state_rate_hz', 20.0,
                       'Rate of /sim/state and /sim/success (sim time); the scripted '
                       'expert acts once per /sim/state, so this is its control rate.', **pos)
        self.rtf = p('real_time_factor', 1.0,
                     'Sim seconds per wall second; >1 for fast scripted recording. With '
                     'lockstep a speed cap, where <= 0 means as fast as the nodes go.',
                     finite=True)
        self.seed = p('seed', 0, 'Seed of the first episode; episode k uses seed + k.', min=0)
        self.command_timeout = p('command_timeout_s', 0.0,
                                 'Hold the last command this long (sim s) before holding the '
                                 'current pose; 0 holds the last command forever.', min=0.0)
        tick_hz = p('tick_rate_hz', 100.0, 'Wall-clock rate of the stepping timer.', **pos)
        command_topic = p('command_topic', keys.TOPIC_COMMAND, 'Joint position commands.')
        self.lockstep = p('lockstep', False, 'Wait for the command answering each /sim/state '
                          'before stepping on (scripted collection).')
        self.lockstep_timeout = p('lockstep_timeout_s', 1.0, 'Lockstep: wall seconds to wait '
                                  'for a command before going on with the last one.', **pos)
        if not (self.rtf > 0 or self.lockstep):
            raise ParameterError(f'parameter real_time_factor={self.rtf!r}: must be > 0 '
                                 '(<= 0, as fast as the nodes go, only with lockstep: true)')
        try:
            self.env = make_env(self.task, cameras=tuple(cameras), image_size=(height, width),
                                seed=self.seed)
        except ValueError as e:
            if 'camera' not in str(e):
                raise
            raise ParameterError(f'parameter cameras={list(cameras)!r}: {e}') from None
        self.frame_prefix = 'sim'
        self.streams = {
            'camera': _Stream(camera_rate, 'camera_rate_hz'),
            'joint_states': _Stream(js_rate, 'joint_state_rate_hz'),
            'state': _Stream(state_rate, 'state_rate_hz'),
        }
        self.pub_images = {c: self.create_publisher(Image, keys.camera_topic(c), SENSOR_QOS)
                           for c in self.env.cameras}
        self.pub_js = self.create_publisher(JointState, keys.TOPIC_JOINT_STATES, SENSOR_QOS)
        self.pub_state = self.create_publisher(Float64MultiArray, keys.TOPIC_SIM_STATE,
                                               STATE_QOS)
        self.pub_success = self.create_publisher(Bool, keys.TOPIC_SIM_SUCCESS, STATE_QOS)
        self.pub_clock = self.create_publisher(Clock, keys.TOPIC_CLOCK, STATE_QOS)
        self.create_subscription(Float64MultiArray, command_topic, self._on_command,
                                 COMMAND_QOS)
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
        self.get_logger().info(
            f'task={self.task} cameras={list(self.env.cameras)} {width}x{height} '
            f'rtf={self.rtf} joints={self.env.joint_names} actions={self.env.action_names}')

    # -- callbacks -----------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        tag = msg.layout.dim[0].label if msg.layout.dim else ''
        if tag.startswith(keys.EPISODE_TAG) and tag != self.episode_tag:
            # An answer to a state of the previous episode, in flight across a reset.
            self.stale_commands += 1
            return
        a = np.asarray(msg.data, np.float64)
        n = len(self.env.action_names)
        if a.shape != (n,) or not np.all(np.isfinite(a)):
            self.bad_commands += 1
            self.get_logger().warning(
                f'ignoring command on {keys.TOPIC_COMMAND}: expected {n} finite values '
                f'({self.env.action_names}), got {a.tolist()}', throttle_duration_sec=2.0)
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
        pos, _, _ = self.env.joint_state()
        idx = [self.env.joint_names.index(j) for j in self.env.action_names[:-1]]
        return np.concatenate([pos[idx], self.last_command[-1:]])

    def _publish_due(self) -> bool:
        """Publish every stream due now; True when /sim/state was published."""
        t = self.sim_time
        if self.streams['joint_states'].due(t):
            pos, vel, eff = self.env.joint_state()
            self.pub_js.publish(joint_state_msg(self.env.joint_names, pos, vel, eff, t))
        if self.streams['camera'].due(t):
            for cam, pub in self.pub_images.items():
                pub.publish(image_msg(self.env.render(cam), t, f'{self.frame_prefix}/{cam}'))
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


def main(args=None):
    """Run the sim_robot node."""
    run(SimRobot, args)


if __name__ == '__main__':
    main()
