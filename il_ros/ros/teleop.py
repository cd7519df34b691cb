"""teleop: drive the robot by keyboard, joystick or a scripted expert.

Parameter ``robot`` (a name in config/robots or a robot YAML) gives the action names, limits,
gripper, joint-state topic and command interface. Modes (parameter ``mode``):

- ``scripted``: the sim task's expert for the robot. It reads ``/sim/state`` and answers each
  state with an action. Under DART (``noise`` > 0) the noisy, executed action is the command
  and the expert's clean action goes to ``label_topic``, which the dataset uses as the label.
- ``keyboard``: from the terminal (il_ros.control.teleop_input.CARTESIAN_HELP /
  KEYBOARD_HELP).
- ``joy``: from ``sensor_msgs/Joy`` axes while the deadman button is held.

Human modes work in ``space`` ``cartesian`` (the hand moves along the world axes and turns
about the vertical; the damped-least-squares IK of the robot's sim model, the one the scripted
experts use, solves the joint targets) or ``joint`` (one key or axis per arm joint).
``auto`` (default): cartesian when the robot has a sim model, joint otherwise (a robot
without one has no kinematics here; cartesian then is an error). The gripper key/button
works when the robot has a gripper.

The command goes to the robot's ``command.topic`` through its command adapter
(Float64MultiArray, JointTrajectory or JointState), or, when ``command_topic`` is set, to
that topic as ``Float64MultiArray`` in action order (the controller's human channel in the
deploy and dagger graphs, which forwards it through its safety filter). The label topic is
``Float64MultiArray`` in action order too.

A takeover (the deadman pressed after a lapse) starts from the robot's current command: the
last command received on the robot's ``command.topic`` (what the controller executed, after
its safety filter, or this node's own last command when it drives the robot), when one
arrived within ``start_from_command_timeout_s``. On a position-controlled arm the measured
pose lags that target, so starting from it would jump back. With no such command (the
controller disabled or silent, or the parameter 0) it starts from the measured joint state.
Every takeover starts afresh from that command or state, not from the jogger's target when
the previous takeover ended. The gripper takes the command's gripper value; from the measured
state (which may not include the gripper) it keeps its last value. Each takeover logs which
of the two it started from.

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
from il_ros.control.teleop_input import (CARTESIAN_HELP, CartesianJogger, cartesian_key_delta,
                                         Deadman, GRIPPER_KEY, JointJogger, joy_delta,
                                         joy_twist, KEYBOARD_HELP, key_delta)
from il_ros.ros.command_adapters import (command_msg_type, CommandError,
                                         Float64MultiArrayAdapter, make_adapter, make_parser)
from il_ros.ros.conversions import array_msg
from il_ros.ros.node_diagnostics import TeleopDiagnostics
from il_ros.ros.node_utils import (COMMAND_QOS, declare, ParameterError, run, SENSOR_QOS,
                                   STATE_QOS)
from il_ros.robot import DEFAULT_ROBOT
from il_ros.ros.robot_param import (check_sim_task, load_robot_param, refuse_removed,
                                    ROBOT_DESCRIPTION, robot_file)

MODES = ('scripted', 'keyboard', 'joy')
SPACES = ('auto', 'cartesian', 'joint')
REMOVED = {'arm_joints': 'actions[].name', 'joint_lower': 'actions[].low',
           'joint_upper': 'actions[].high'}
"""Parameters that duplicated robot facts -> the robot YAML field that gives them now."""


class Teleop(Node):
    """Teleoperation node; one instance runs one mode."""

    def __init__(self):
        super().__init__('teleop')
        from il_ros.sim.registry import TASKS
        # Read at start-up only: every parameter is read-only (rclpy refuses a later set).
        p = lambda *a, **k: declare(self, *a, read_only=True, **k)  # noqa: E731
        pos = {'min': 0.0, 'min_exclusive': True}
        self.robot = robot = load_robot_param(p('robot', DEFAULT_ROBOT, ROBOT_DESCRIPTION))
        refuse_removed(self, REMOVED, robot)
        self.mode = p('mode', 'scripted', f'Input: one of {MODES}.', choices=MODES)
        self.task = p('task', 'lift', 'Sim task whose expert (scripted) or model (cartesian '
                      'space) is used.', choices=TASKS)
        self.space = p('space', 'auto', 'Human modes: cartesian (move the hand, IK on the '
                       "robot's sim model), joint (one joint per key/axis), or auto: "
                       'cartesian when the robot has a sim model.', choices=SPACES)
        self.noise = p('noise', 0.0, 'DART: std of the noise added to the executed command '
                       '(scripted mode; units as in the task expert, rad for arm joints).',
                       min=0.0)
        self.seed = p('seed', 0, 'Seed of the expert; episode k uses seed + k.', min=0)
        command_topic = p('command_topic', '', "Empty: drive the robot (its command topic "
                          'and message type). Else: publish the command there as '
                          'Float64MultiArray in action order (the controller\'s human '
                          'channel).')
        label_topic = p('label_topic', keys.TOPIC_TELEOP_COMMAND,
                        'Clean teleop command: the action label (empty: do not publish).')
        self.publish_intervention = p(
            'publish_intervention', self.mode != 'scripted',
            'Publish deadman heartbeats on the intervention topic.')
        intervention_topic = p('intervention_topic', keys.TOPIC_INTERVENTION,
                               'Deadman heartbeats (Bool: true while held, one false on '
                               'release).')
        self.rate = p('rate_hz', robot.control_rate_hz, 'Command rate in human modes '
                      "(default: the robot's control_rate_hz).", **pos)
        self.deadman = Deadman(p('deadman_timeout_s', 0.5,
                                 'Human control lapses this long after the last input (then '
                                 'the hand-back, Bool false, is published).', **pos))
        self.start_from_command_s = p(
            'start_from_command_timeout_s', 0.5, "Human modes: a takeover starts from the "
            "robot's last command (its command topic) when one arrived within this many "
            'seconds, else from the measured joint state; 0: always the measured state.',
            min=0.0)
        self.key_step = p('key_step', 0.05, 'Keyboard, joint space: jog per key press (rad).',
                          **pos)
        self.key_step_m = p('key_step_m', 0.01, 'Keyboard, cartesian: hand move per key '
                            'press (m).', **pos)
        self.key_yaw_step = p('key_yaw_step', 0.1, 'Keyboard, cartesian: hand turn per key '
                              'press (rad).', **pos)
        self.joy_scale = p('joy_scale', 0.8, 'Joy, joint space: joint speed at full axis '
                           '(rad/s).', finite=True)
        self.axis_map = p('joy_axis_map', [0, 1, 3, 4, 6, 7],
                          'Joy, joint space: axis index driving each arm joint (-1: none).',
                          min=-1)
        self.joy_speed = p('joy_speed', 0.1, 'Joy, cartesian: hand speed at full axis (m/s).',
                           **pos)
        self.joy_yaw_speed = p('joy_yaw_speed', 0.8, 'Joy, cartesian: hand turn rate at full '
                               'axis (rad/s).', **pos)
        self.cartesian_axes = p('joy_cartesian_axes', [1, 0, 4, 3], 'Joy, cartesian: axes '
                                'driving the hand along x, y, z and its yaw (-1: none).',
                                min=-1)
        self.deadman_button = p('joy_deadman_button', 4, 'Joy: deadman button index.', min=0)
        self.gripper_button = p('joy_gripper_button', 0, 'Joy: gripper toggle button index '
                                '(-1: none).', min=-1)

        if command_topic and self.resolve_topic_name(command_topic) == self.resolve_topic_name(
                robot.command.topic) and robot.command.type != 'float64_multi_array':
            raise ParameterError(
                f'parameter command_topic={command_topic!r}: that is the robot\'s command '
                f'topic, which takes {robot.command.type} ({robot_file(robot)}); leave '
                'command_topic empty to drive the robot through its command adapter')
        if command_topic:
            self.adapter = Float64MultiArrayAdapter(robot.action_names, 1.0 / self.rate,
                                                   label='teleop')
        else:
            self.adapter = make_adapter(robot.command.type, robot.action_names,
                                        1.0 / self.rate)
        self.pub_cmd = self.create_publisher(self.adapter.msg_type,
                                             command_topic or robot.command.topic, COMMAND_QOS)
        self.pub_label = (self.create_publisher(Float64MultiArray, label_topic, COMMAND_QOS)
                          if label_topic else None)
        self.pub_intervention = self.create_publisher(Bool, intervention_topic, COMMAND_QOS)

        if self.mode == 'scripted':
            self._init_scripted()
        else:
            self._init_human()
        self.diagnostics = TeleopDiagnostics(self)         # /diagnostics, once a second

    # -- scripted --------------------------------------------------------------------------
    def _init_scripted(self) -> None:
        from il_ros.sim import make_env, make_expert
        check_sim_task(self.robot, self.task)
        self.env = make_env(self.task, render=False, robot=self.robot)
        self.expert = make_expert(self.task, noise=self.noise, seed=self.seed,
                                  robot=self.robot)
        self.episode = None
        self.create_subscription(Float64MultiArray, keys.TOPIC_SIM_STATE, self._on_state,
                                 STATE_QOS)
        self.get_logger().info(f'scripted expert for {self.robot.name} {self.task}, DART noise '
                               f'{self.noise}; commands on {self.pub_cmd.topic_name}')

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
    def _init_human(self) -> None:
        robot = self.robot
        self.arm_joints = robot.arm_actions
        grip = robot.gripper
        self.gripper_index = robot.action_names.index(grip.action) if grip else None
        if self.space == 'auto':
            self.space = 'cartesian' if robot.sim is not None else 'joint'
        if self.space == 'cartesian':
            self.jogger = self._cartesian_jogger()
        else:
            arm = [robot.action(n) for n in self.arm_joints]
            self.jogger = JointJogger(np.array([a.low for a in arm]),
                                      np.array([a.high for a in arm]),
                                      gripper_index=self.gripper_index)
        self.lock = threading.Lock()
        self.create_subscription(JointState, robot.joint_states.topic, self._on_joints,
                                 SENSOR_QOS)
        self.latest_arm = None
        self.latest_command = None      # (receipt time, (A,) the robot's last command)
        if self.start_from_command_s > 0:
            self.parse_command = make_parser(robot.command.type, robot.action_names)
            self.arm_index = [robot.action_names.index(n) for n in self.arm_joints]
            self.create_subscription(command_msg_type(robot.command.type), robot.command.topic,
                                     self._on_command, COMMAND_QOS)
        self.joy_axes = None       # the latest stick deflection while the deadman is held
        self.was_active = False
        if self.mode == 'joy':
            self.create_subscription(Joy, 'joy', self._on_joy, SENSOR_QOS)
        else:
            if not sys.stdin.isatty():
                raise ParameterError('parameter mode=keyboard: needs a terminal on stdin; run '
                                     'it with `il-ros node teleop` or `ros2 run il_ros teleop` '
                                     'in a terminal, or use mode:=joy')
            print(CARTESIAN_HELP if self.space == 'cartesian' else KEYBOARD_HELP, flush=True)
            threading.Thread(target=self._read_keys, daemon=True).start()
        self.create_timer(1.0 / self.rate, self._human_tick)
        self.get_logger().info(
            f'{self.mode} teleop of {robot.name} in {self.space} space; gripper: '
            f'{grip.action if grip else "none"}; commands on {self.pub_cmd.topic_name}')

    def _cartesian_jogger(self) -> CartesianJogger:
        """The hand jogger on the IK of the robot's sim model (the experts' IK)."""
        robot = self.robot
        if robot.sim is None:
            raise ParameterError(
                f'parameter space={self.space!r}: robot {robot.name!r} has no sim section '
                f'in {robot_file(robot)}, so no kinematic model for cartesian teleop; use '
                'space:=joint')
        from il_ros.sim import make_env
        check_sim_task(robot, self.task)
        env = make_env(self.task, render=False, robot=robot)
        self._model_env = env      # owns the model the IK works on
        return CartesianJogger(env.ik, env.data.qpos, gripper_index=self.gripper_index)

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [j for j in self.arm_joints if j not in index]
        if missing:
            self.get_logger().error(f'{self.resolve_topic_name(self.robot.joint_states.topic)} '
                                    f'lacks joints {missing}',
                                    throttle_duration_sec=5.0)
            return
        self.latest_arm = np.array([msg.position[index[j]] for j in self.arm_joints])

    def _on_command(self, msg) -> None:
        """Keep the robot's latest command, the start of the next takeover."""
        try:
            command = self.parse_command(msg)
        except CommandError as e:
            self.get_logger().warning(f'{self.resolve_topic_name(self.robot.command.topic)}: '
                                      f'{e}; not used as a takeover start',
                                      throttle_duration_sec=5.0)
            return
        self.latest_command = (self._now(), command)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joy(self, msg: Joy) -> None:
        held = 0 <= self.deadman_button < len(msg.buttons) and msg.buttons[self.deadman_button]
        with self.lock:
            if not held:
                self.deadman.release()    # let go: hand back at the next tick, not later
                self.joy_axes = None
                return
            if not self._take_control():
                return
            self.deadman.press(self._now())
            # The stick is a velocity: the tick integrates the latest axes over its period,
            # however often the joystick driver publishes.
            self.joy_axes = list(msg.axes)
            if self.gripper_index is not None and 0 <= self.gripper_button < len(msg.buttons):
                self.jogger.toggle_gripper(bool(msg.buttons[self.gripper_button]))

    def _jog_joy(self, dt: float) -> None:
        """Move by the latest stick deflection for ``dt`` seconds (under the lock)."""
        if self.space == 'cartesian':
            self.jogger.jog(*joy_twist(self.joy_axes, self.cartesian_axes, self.joy_speed,
                                       self.joy_yaw_speed, dt))
        else:
            self.jogger.jog(joy_delta(self.joy_axes, self.axis_map[:len(self.arm_joints)],
                                      self.joy_scale, dt))

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
                    self._key(ch)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def _key(self, ch: str) -> None:
        """Apply one key press (under the lock, the deadman pressed)."""
        if ch == GRIPPER_KEY:
            if self.gripper_index is not None:
                self.jogger.toggle_gripper(True)
                self.jogger.toggle_gripper(False)
        elif self.space == 'cartesian':
            move = cartesian_key_delta(ch, self.key_step_m, self.key_yaw_step)
            if move is not None:
                self.jogger.jog(*move)
        else:
            d = key_delta(ch, len(self.arm_joints), self.key_step)
            if d is not None:
                self.jogger.jog(d)

    def _take_control(self) -> bool:
        """On a new press after a lapse, restart jogging from the robot's current command.

        That is the latest command on the robot's command topic when it is fresh (a clock
        that went back, as at a sim reset, makes it stale), else the measured pose. False
        (input ignored) when there is neither.
        """
        now = self._now()
        if self.deadman.active(now):
            return True
        last = self.latest_command
        if last is not None and 0.0 <= now - last[0] <= self.start_from_command_s:
            command = last[1]
            grip = None if self.gripper_index is None else command[self.gripper_index]
            self.jogger.sync(command[self.arm_index], grip)
            self.get_logger().info(f'takeover from the robot\'s command '
                                   f'({now - last[0]:.2f} s old)')
            return True
        if self.latest_arm is None:
            self.get_logger().warning('no joint state yet; input ignored',
                                      throttle_duration_sec=2.0)
            return False
        self.jogger.sync(self.latest_arm)
        self.get_logger().info('takeover from the measured joint state (' + (
            'no command on the robot\'s command topic' if last is None else
            f'the robot\'s last command is {now - last[0]:.2f} s old') + ')')
        return True

    def _human_tick(self) -> None:
        with self.lock:
            active = self.deadman.active(self._now()) and self.jogger.ready
            if active and self.joy_axes is not None:
                self._jog_joy(1.0 / self.rate)
            action = self.jogger.action() if active else None
        if active:
            self._publish(action, action)
        elif self.was_active:
            if self.publish_intervention:
                self.pub_intervention.publish(Bool(data=False))     # the explicit hand-back
            self.get_logger().info('deadman released: control handed back')
        self.was_active = active

    # -- output ----------------------------------------------------------------------------
    def _publish(self, executed: np.ndarray, label: np.ndarray, tag: str = '') -> None:
        self.pub_cmd.publish(self.adapter(executed, self._now(), tag=tag))
        self.diagnostics.on_command()
        if self.pub_label is not None:
            self.pub_label.publish(array_msg(label, tag or 'teleop'))
        if self.publish_intervention:
            self.pub_intervention.publish(Bool(data=True))


    def destroy_node(self):
        """Close the sim models it holds (expert mirror, IK model), then destroy the node."""
        for name in ('env', '_model_env'):
            env = getattr(self, name, None)
            if env is not None:
                env.close()
        return super().destroy_node()


def main(args=None):
    """Run the teleop node."""
    run(Teleop, args)


if __name__ == '__main__':
    main()
