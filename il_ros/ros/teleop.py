"""teleop: drive the robot by keyboard, joystick or a scripted expert.

Modes (parameter ``mode``):

- ``scripted``: the sim task's expert. It reads ``/sim/state`` and answers each state with an
  action. Under DART (``noise`` > 0) the noisy, executed action goes to ``command_topic`` and
  the expert's clean action to ``label_topic``, which the dataset uses as the action label.
- ``keyboard``: jog joints from the terminal (see il_ros.control.teleop_input.KEYBOARD_HELP).
- ``joy``: jog joints from ``sensor_msgs/Joy`` axes while the deadman button is held.

Human modes publish ``std_msgs/Bool(True)`` heartbeats on ``/il/intervention`` while the deadman
is held, and commands only then. Releasing the deadman (the joy button let go, or no key for
``deadman_timeout_s``) publishes one ``Bool(False)``: the explicit hand-back, after which the
controller's policy drives again. A teleop that dies while held sends no hand-back, and the
controller latches a HOLD instead (docs/controller.md, "Takeover"). Scripted mode publishes
heartbeats when ``publish_intervention`` is set (a scripted supervisor taking over).
"""
from __future__ import annotations

import sys
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float64MultiArray

from il_ros import keys
from il_ros.control.teleop_input import (GRIPPER_KEY, KEYBOARD_HELP, Deadman, JointJogger,
                                         joy_delta, key_delta)
from il_ros.ros.conversions import array_msg
from il_ros.ros.node_utils import (COMMAND_QOS, declare, ParameterError, run, SENSOR_QOS,
                                   STATE_QOS)

MODES = ('scripted', 'keyboard', 'joy')


class Teleop(Node):
    """Teleoperation node; one instance runs one mode."""

    def __init__(self):
        super().__init__('teleop')
        from il_ros.sim.registry import TASKS
        p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        pos = {'min': 0.0, 'min_exclusive': True}
        self.mode = p('mode', 'scripted', f'Input: one of {MODES}.', choices=MODES)
        self.task = p('task', 'lift', 'Sim task whose expert (scripted) or joint layout '
                      '(human modes, when arm_joints is empty) is used.', choices=TASKS)
        self.noise = p('noise', 0.0, 'DART: std of the noise added to the executed command '
                       '(scripted mode; units as in the task expert, rad for arm joints).',
                       min=0.0)
        self.seed = p('seed', 0, 'Seed of the expert; episode k uses seed + k.', min=0)
        command_topic = p('command_topic', keys.TOPIC_COMMAND,
                          'Executed command (Float64MultiArray of joint position targets).')
        label_topic = p('label_topic', keys.TOPIC_TELEOP_COMMAND,
                        'Clean teleop command: the action label (empty: do not publish).')
        self.publish_intervention = p(
            'publish_intervention', self.mode != 'scripted',
            'Publish deadman heartbeats on the intervention topic.')
        intervention_topic = p('intervention_topic', keys.TOPIC_INTERVENTION,
                               'Deadman heartbeats (Bool: true while held, one false on '
                               'release).')
        self.rate = p('rate_hz', 20.0, 'Command rate in human modes.', **pos)
        self.deadman = Deadman(p('deadman_timeout_s', 0.5,
                                 'Human control lapses this long after the last input (then '
                                 'the hand-back, Bool false, is published).', **pos))
        arm_joints = declare(self, 'arm_joints', [], 'Arm joints in command order; empty: '
                             'the task\'s.', array_type='string')
        lower = declare(self, 'joint_lower', [], 'Arm joint lower limits; used with '
                        'arm_joints (else the task\'s limits).', array_type='double')
        upper = declare(self, 'joint_upper', [], 'Arm joint upper limits (see joint_lower).',
                        array_type='double')
        self.key_step = p('key_step', 0.05, 'Keyboard: jog per key press (rad).', **pos)
        self.joy_scale = p('joy_scale', 0.8, 'Joy: joint speed at full axis (rad/s).',
                           finite=True)
        self.axis_map = p('joy_axis_map', [0, 1, 3, 4, 6, 7],
                          'Joy: axis index driving each arm joint (-1: none).')
        self.deadman_button = p('joy_deadman_button', 4, 'Joy: deadman button index.', min=0)
        self.gripper_button = p('joy_gripper_button', 0, 'Joy: gripper toggle button index.')

        self.pub_cmd = self.create_publisher(Float64MultiArray, command_topic, COMMAND_QOS)
        self.pub_label = (self.create_publisher(Float64MultiArray, label_topic, COMMAND_QOS)
                          if label_topic else None)
        self.pub_intervention = self.create_publisher(Bool, intervention_topic, COMMAND_QOS)

        if self.mode == 'scripted':
            self._init_scripted()
        else:
            self._init_human(arm_joints, lower, upper)

    # -- scripted --------------------------------------------------------------------------
    def _init_scripted(self) -> None:
        from il_ros.sim import make_env, make_expert
        self.env = make_env(self.task, render=False)
        self.expert = make_expert(self.task, noise=self.noise, seed=self.seed)
        self.episode = None
        self.create_subscription(Float64MultiArray, keys.TOPIC_SIM_STATE, self._on_state,
                                 STATE_QOS)
        self.get_logger().info(f'scripted expert for {self.task}, DART noise {self.noise}')

    def _on_state(self, msg: Float64MultiArray) -> None:
        state = np.asarray(msg.data, np.float64)
        self.env.set_state(state)
        episode = int(state[0])
        if episode != self.episode:
            self.expert.reset(self.env, seed=self.seed + episode)
            self.episode = episode
        act = self.expert.act(self.env)
        # The tag lets the sim drop this answer if it arrives after a reset.
        self._publish(act.executed, act.label, tag=f'{keys.EPISODE_TAG}{episode}')

    # -- human -----------------------------------------------------------------------------
    def _init_human(self, arm_joints, lower, upper) -> None:
        if not arm_joints:
            from il_ros.sim import make_env
            env = make_env(self.task, render=False)
            arm_joints = env.action_names[:-1]
            lower, upper = env.action_low[:-1], env.action_high[:-1]
            env.close()
        if not (len(arm_joints) == len(lower) == len(upper)):
            raise ParameterError(f'parameter joint_lower={list(lower)!r}: arm_joints '
                                 f'({len(arm_joints)}), joint_lower ({len(lower)}) and '
                                 f'joint_upper ({len(upper)}) must have the same length')
        try:
            self.jogger = JointJogger(np.asarray(lower), np.asarray(upper))
        except ValueError:
            raise ParameterError(f'parameter joint_lower={list(lower)!r}: must be finite and '
                                 f'not exceed joint_upper={list(upper)!r}') from None
        self.arm_joints = list(arm_joints)
        self.lock = threading.Lock()
        self.create_subscription(JointState, keys.TOPIC_JOINT_STATES, self._on_joints,
                                 SENSOR_QOS)
        self.latest_arm = None
        self.was_active = False
        if self.mode == 'joy':
            self.create_subscription(Joy, '/joy', self._on_joy, SENSOR_QOS)
        else:
            if not sys.stdin.isatty():
                raise ParameterError('parameter mode=keyboard: needs a terminal on stdin; run '
                                     'it with `il-ros node teleop` or `ros2 run il_ros teleop` '
                                     'in a terminal, or use mode:=joy')
            print(KEYBOARD_HELP, flush=True)
            threading.Thread(target=self._read_keys, daemon=True).start()
        self.create_timer(1.0 / self.rate, self._human_tick)

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [j for j in self.arm_joints if j not in index]
        if missing:
            self.get_logger().error(f'{keys.TOPIC_JOINT_STATES} lacks joints {missing}',
                                    throttle_duration_sec=5.0)
            return
        self.latest_arm = np.array([msg.position[index[j]] for j in self.arm_joints])

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joy(self, msg: Joy) -> None:
        held = 0 <= self.deadman_button < len(msg.buttons) and msg.buttons[self.deadman_button]
        with self.lock:
            if not held:
                self.deadman.release()    # let go: hand back at the next tick, not later
                return
            if not self._take_control():
                return
            self.deadman.press(self._now())
            self.jogger.jog(joy_delta(msg.axes, self.axis_map[:len(self.arm_joints)],
                                      self.joy_scale, 1.0 / self.rate))
            if 0 <= self.gripper_button < len(msg.buttons):
                self.jogger.toggle_gripper(bool(msg.buttons[self.gripper_button]))

    def _read_keys(self) -> None:
        import termios
        import tty
        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while True:
                ch = sys.stdin.read(1)
                if not ch:
                    return
                with self.lock:
                    if not self._take_control():
                        continue
                    self.deadman.press(self._now())
                    if ch == GRIPPER_KEY:
                        self.jogger.toggle_gripper(True)
                        self.jogger.toggle_gripper(False)
                    else:
                        d = key_delta(ch, len(self.arm_joints), self.key_step)
                        if d is not None:
                            self.jogger.jog(d)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def _take_control(self) -> bool:
        """On a new press after a lapse, restart jogging from the measured pose."""
        if self.latest_arm is None:
            self.get_logger().warning('no joint state yet; input ignored',
                                      throttle_duration_sec=2.0)
            return False
        if not self.deadman.active(self._now()):
            self.jogger.sync(self.latest_arm)
        return True

    def _human_tick(self) -> None:
        with self.lock:
            active = self.deadman.active(self._now()) and self.jogger.ready
            action = self.jogger.action() if active else None
        if active:
            self._publish(action, action)
        elif self.was_active:
            if self.publish_intervention:
                self.pub_intervention.publish(Bool(data=False))     # the explicit hand-back
            self.get_logger().info('deadman released: control handed back')
        self.was_active = active

    # -- output ----------------------------------------------------------------------------
    def _publish(self, executed: np.ndarray, label: np.ndarray, tag: str = 'command') -> None:
        self.pub_cmd.publish(array_msg(executed, tag))
        if self.pub_label is not None:
            self.pub_label.publish(array_msg(label, tag))
        if self.publish_intervention:
            self.pub_intervention.publish(Bool(data=True))


def main(args=None):
    """Run the teleop node."""
    run(Teleop, args)


if __name__ == '__main__':
    main()
