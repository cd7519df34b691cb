"""supervisor: a scripted person who watches a policy run in the sim and takes over.

It takes over when the policy goes wrong (HG-DAgger in sim). The gate is
il_ros.sim.supervisor.Supervisor (ROS-free); this node feeds it and speaks the controller's
human-takeover channel.

Per ``/sim/state`` (the sim's privileged state, one per control tick):

1. the newest command seen on the robot's command topic since the previous state (what the
   robot executed in answer to it; the controller's output), read back from the robot's
   command message type into action order, and the state go to the gate;
2. while the gate holds control: ``Bool(True)`` on ``intervention_topic`` (the deadman
   heartbeat) and the expert's command on ``human_command_topic``, which the controller
   forwards to the robot through its safety filter. On hand-back: one ``Bool(False)``,
   which releases the controller at once;
3. the expert's label for every state goes to ``label_topic`` (a clean action for every
   visited state: the DAgger baseline's relabelling, recorded beside the executed command).

``~/enable`` (SetBool) arms or disarms the gate (disarmed: it never takes over and releases
control it holds; labels are still published). ``~/status`` (String, JSON) carries the
counts: steps, human_steps (ticks in control: the expert-labelled steps), takeovers, this
episode's counts, and the last deviation/danger values.
"""
from __future__ import annotations

import json

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool

from il_ros import keys
from il_ros.ros.command_adapters import command_msg_type, CommandError, make_parser
from il_ros.ros.conversions import array_msg
from il_ros.ros.node_diagnostics import SupervisorDiagnostics
from il_ros.ros.node_utils import COMMAND_QOS, declare, ParameterError, run, STATE_QOS
from il_ros.robot import DEFAULT_ROBOT
from il_ros.ros.robot_param import (check_sim_task, load_robot_param, refuse_removed,
                                    ROBOT_DESCRIPTION)
from il_ros.sim.registry import TASKS
from il_ros.sim.supervisor import GateConfig, Supervisor

TOPIC_EXPERT_LABEL = 'il/expert/label'
REMOVED = {'command_topic': 'command.topic'}
"""Parameters that duplicated robot facts -> the robot YAML field that gives them now."""


class SupervisorNode(Node):
    """The supervisor node (see the module docstring)."""

    def __init__(self):
        super().__init__('supervisor')
        # Read at start-up only: every parameter is read-only (rclpy refuses a later set).
        p = lambda *a, **k: declare(self, *a, read_only=True, **k)  # noqa: E731
        self.robot = robot = load_robot_param(p('robot', DEFAULT_ROBOT, ROBOT_DESCRIPTION))
        refuse_removed(self, REMOVED, robot)
        task = p('task', 'lift', 'Sim task whose expert supervises.', choices=TASKS)
        seed = p('seed', 0, 'Seed of the expert; sim episode k uses seed + k.', min=0)
        self.active = p('active', True, 'Start armed (may take over); ~/enable toggles.')
        d = GateConfig()
        gate = GateConfig(
            deviation_m=p('deviation_m', d.deviation_m, 'Take over when the hand position '
                          'the executed command aims at is this far (m) from the expert\'s '
                          '(for trigger_steps ticks); <= 0: off.', finite=True),
            gripper_deviation=p('gripper_deviation', d.gripper_deviation, 'Gripper command '
                                'difference (0..1) that counts as a deviation; <= 0: off.',
                                finite=True),
            stall_m=p('stall_m', d.stall_m, 'Stall: the hand moved less than this (m) over '
                      'stall_steps ticks while deviating; <= 0: off.', finite=True),
            stall_steps=p('stall_steps', d.stall_steps, 'Window of the stall rule (ticks).',
                          min=1),
            danger_on_m=_none_if_negative(p(
                'danger_on_m', -1.0, 'Take over at once when the task\'s danger distance '
                'exceeds this (path: m from the curve; corridor 0.04); < 0: the task\'s '
                'default (path 0.02), 0: off.', finite=True)),
            danger_off_m=_none_if_negative(p(
                'danger_off_m', -1.0, 'Recovered below this danger distance; < 0: the '
                'task\'s default (path 0.01).', finite=True)),
            trigger_steps=p('trigger_steps', d.trigger_steps, 'Consecutive deviating ticks '
                            'before taking over.', min=1),
            min_takeover_steps=p('min_takeover_steps', d.min_takeover_steps, 'Ticks in '
                                 'control before handing back can start.', min=0),
            release_steps=p('release_steps', d.release_steps, 'Consecutive recovered ticks '
                            'before handing back.', min=1))
        human_topic = p('human_command_topic', keys.TOPIC_TELEOP_COMMAND,
                        'Where the expert\'s command goes while in control (the '
                        'controller\'s human channel).')
        intervention_topic = p('intervention_topic', keys.TOPIC_INTERVENTION,
                               'Deadman heartbeats: True while in control, False to release.')
        label_topic = p('label_topic', TOPIC_EXPERT_LABEL, 'The expert\'s label for every '
                        'state (empty: not published).')
        status_rate = p('status_rate_hz', 2.0, 'Rate of ~/status.', min=0.0,
                        min_exclusive=True)
        try:
            gate.for_task(task)
        except ValueError as e:
            off = self.get_parameter('danger_off_m').value
            raise ParameterError(f'parameter danger_off_m={off!r}: {e}') from None

        check_sim_task(robot, task)
        self.sup = Supervisor(task, gate, seed=seed, robot=robot)
        self.sup.arm(self.active)
        self.executed: np.ndarray | None = None
        self.last: dict = {}
        self.pub_human = self.create_publisher(Float64MultiArray, human_topic, COMMAND_QOS)
        self.pub_beat = self.create_publisher(Bool, intervention_topic, COMMAND_QOS)
        self.pub_label = (self.create_publisher(Float64MultiArray, label_topic, STATE_QOS)
                          if label_topic else None)
        self.pub_status = self.create_publisher(String, '~/status', STATE_QOS)
        self.parse_command = make_parser(robot.command.type, robot.action_names)
        self.create_subscription(command_msg_type(robot.command.type), robot.command.topic,
                                 self._on_command, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, keys.TOPIC_SIM_STATE, self._on_state,
                                 STATE_QOS)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_timer(1.0 / status_rate, self._publish_status)
        self.seq = 0
        self.diagnostics = SupervisorDiagnostics(self)     # /diagnostics, once a second
        g = self.sup.gate
        self.get_logger().info(
            f'{robot.name} {task}: {"armed" if self.active else "disarmed"}, judging '
            f'{robot.command.type} on {self.resolve_topic_name(robot.command.topic)}; take '
            f'over at deviation '
            f'{g.deviation_m} m x{g.trigger_steps}, stall {g.stall_m} m/{g.stall_steps} '
            f'ticks, danger {g.danger_on_m} m; release after {g.min_takeover_steps}+'
            f'{g.release_steps} ticks (danger < {g.danger_off_m} m)')

    def _on_command(self, msg) -> None:
        try:
            self.executed = self.parse_command(msg)
        except CommandError as e:
            topic = self.resolve_topic_name(self.robot.command.topic)
            self.get_logger().warning(f'cannot read the command on {topic} (not judged): {e}',
                                      throttle_duration_sec=5.0)

    def _on_state(self, msg: Float64MultiArray) -> None:
        state = np.asarray(msg.data, np.float64)
        was = self.sup.in_control
        episode = self.sup.episode
        executed, self.executed = self.executed, None
        step = self.sup.step(state, executed)
        if self.sup.episode != episode and was:
            self._release('new episode')            # control held in the old one ends
        if self.pub_label is not None:
            self.pub_label.publish(array_msg(step.label, 'expert_label'))
        if self.sup.in_control:
            # The command first: the controller needs one before a heartbeat gives it control.
            self.pub_human.publish(array_msg(step.label, 'supervisor'))
            self.pub_beat.publish(Bool(data=True))
            if step.event == 'takeover':
                self.get_logger().info(
                    f'episode {self.sup.episode}: take over ({step.reason}; deviation '
                    f'{_fmt(step.deviation)} m, danger {_fmt(step.danger)} m)')
        elif step.event == 'release':
            self._release(f'recovered after {self.sup._held} ticks')
        self.last = {'deviation': step.deviation, 'danger': step.danger,
                     'reason': step.reason}

    def _release(self, why: str) -> None:
        self.pub_beat.publish(Bool(data=False))
        self.get_logger().info(f'episode {self.sup.episode}: hand back ({why})')

    def _on_enable(self, request, response):
        self.active = bool(request.data)
        if self.sup.arm(self.active):
            self._release('disarmed')
        response.success = True
        response.message = 'armed' if self.active else 'disarmed'
        return response

    def status(self) -> dict:
        """Return the ~/status message: takeover counters and the last decision."""
        return {'seq': self.seq, 'active': self.active, **self.sup.counts(), **self.last}

    def _publish_status(self) -> None:
        self.seq += 1
        self.pub_status.publish(String(data=json.dumps(self.status())))

    def destroy_node(self):
        """Release a takeover in progress, close the gate, then destroy the node."""
        sup = getattr(self, 'sup', None)
        if sup is not None:
            if sup.in_control and self.context.ok():
                # (after Ctrl-C the context is already shut down: nothing can be sent)
                self.pub_beat.publish(Bool(data=False))
            sup.close()
        return super().destroy_node()


def _none_if_negative(v: float) -> float | None:
    return None if v < 0 else float(v)


def _fmt(v) -> str:
    return '-' if v is None else f'{v:.3f}'


def main(args=None):
    """Run the supervisor node."""
    run(SupervisorNode, args)


if __name__ == '__main__':
    main()
