"""controller: run a policy checkpoint at a fixed rate behind a safety filter and an arbiter.

The decisions are made by the ROS-free :class:`~il_ros.control.loop.ControlLoop`
(docs/controller.md, "The tick"): the policy slot (background loading, hot swap at a tick
boundary, refusal of a checkpoint that does not fit), the inference worker (a plain
thread: torch never runs in the executor), the takeover arbiter, the action queue, the
chunk guard, the safety filter, latched faults and telemetry. This node only:

- declares its parameters from one table (il_ros/ros/controller_params.py) and builds the
  loop's settings from them; a bad value stops the node with one line and exit code 2;
- converts the camera images and joint states into the loop's Observation
  (il_ros/ros/observation.py: a missing, malformed, frozen or stale stream HOLDs with a
  throttled warning naming the topic);
- runs a timer at ``rate_hz`` that calls ``loop.tick(now, observation)`` and publishes its
  command through the command adapter and the control source on ``/il/control_source``;
- feeds the deadman heartbeats and human commands to the loop's arbiter;
- serves ``~/enable``, ``~/reset`` (clears a latched fault; the first plan after it waits
  for camera and joint messages received after it) and ``~/load_checkpoint``,
  publishes ``~/status`` (the loop's status and a sequence number) and ``/diagnostics``
  (il_ros/ros/node_diagnostics.py), and hot-loads from the
  ``checkpoint`` parameter and the trainer's latched checkpoint topic; the ``checkpoint``
  parameter always names the running checkpoint;
- is a lifecycle node (il_ros/ros/lifecycle.py; docs/controller.md, "Lifecycle"):
  ``configure`` checks the ``checkpoint`` and starts loading it, ``activate`` starts
  commanding, ``deactivate`` HOLDs (nothing on the command topic, which is a lifecycle
  publisher), ``cleanup`` drops the policy; ``autostart`` (default true) does configure and
  activate at start-up;
- on shutdown, logs a one-line telemetry summary and writes ``stats_file`` when set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import sys
import time
import traceback

from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.lifecycle import LifecycleNode
from rclpy.parameter import Parameter as RclParameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from il_ros import keys
from il_ros.control.loop import ControlLoop
from il_ros.control.safety import check_step_settings, SettingError
from il_ros.control.slot import (config_mtime, PolicySlot, Refused, robot_limits,
                                 RobotOverrides)
from il_ros.control.worker import ThreadWorker
from il_ros.fsio import atomic_write_json
from il_ros.images import preprocess_of
from il_ros.render import setup_headless_gl
from il_ros.ros.command_adapters import make_adapter
from il_ros.ros.controller_params import declare_all, loop_config, RUNTIME
from il_ros.ros.conversions import array_from_msg
from il_ros.ros.lifecycle import autostart, end_after_shutdown, failed, SUCCESS
from il_ros.ros.node_diagnostics import ControllerDiagnostics
from il_ros.ros.node_utils import COMMAND_QOS, ParameterError, run, SENSOR_QOS, STATE_QOS
from il_ros.ros.observation import Streams

CHECKPOINT_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
"""The trainer's ~/checkpoint is latched: a controller started later still gets the newest."""
TICK_COLUMNS = ['tick', 'jitter_ms', 'latency_ms', 'source', 'reason', 'queued']
"""Columns of ``ticks`` in ``stats_file`` (Telemetry.ticks rows)."""


def _jsonable(o):
    return o.item() if hasattr(o, 'item') else str(o)


class Controller(LifecycleNode):
    """The controller node (see the module docstring)."""

    def __init__(self):
        super().__init__('controller')
        self.log = self.get_logger()
        self.p = p = declare_all(self)
        self.period = 1.0 / p['rate_hz']
        if p['nice']:
            try:
                os.nice(int(p['nice']))
            except OSError as e:
                self.log.warning(f'nice {p["nice"]}: {e} (needs CAP_SYS_NICE); running at the '
                                 'default priority')
        import torch

        import il_ros.models.checkpoint  # noqa: F401 - imported now, not by the first hot load
        torch.set_num_threads(max(1, int(p['torch_threads'])))

        self.robot = robot = p['robot_description']
        over = RobotOverrides(
            rate_hz=p['rate_hz'], joint_names=robot.joint_names,
            action_names=robot.action_names, cameras=list(p['cameras']), robot=robot)
        self.slot = PolicySlot(over, lambda a, j: self.loop.check_actions(a, j),
                               use_ema=p['use_ema'], log=self.log, device=p['device'])
        cfg = loop_config(p, keep_ticks=bool(p['stats_file']))
        self.loop = ControlLoop(cfg, worker=ThreadWorker(), slot=self.slot,
                                limits=robot_limits(robot), log=self.log)
        self.loop.on_robot, self.loop.on_swap = self._on_robot, self._on_swap
        self.loop.on_refused = self._sync_checkpoint_param
        self.streams = Streams(self.resolve_topic_name(robot.joint_states.topic),
                               self.loop.warn, self.log)     # names in messages: resolved
        self.proprio: list[str] = []
        self.adapter = self.pub_cmd = None
        self.status_seq = 0
        self._echo = False                     # the node itself sets `checkpoint` (no load)
        self.state = 'unconfigured'            # lifecycle state (the node's callbacks set it)

        self.pub_source = self.create_publisher(String, p['control_source_topic'], STATE_QOS)
        self.pub_status = self.create_publisher(String, '~/status', STATE_QOS)
        self.create_subscription(JointState, robot.joint_states.topic, self._on_joints,
                                 SENSOR_QOS)
        self.create_subscription(Bool, p['intervention_topic'], self._on_intervention,
                                 COMMAND_QOS)
        self.create_subscription(Float64MultiArray, p['human_command_topic'], self._on_human,
                                 COMMAND_QOS)
        if p['checkpoint_topic']:
            self.create_subscription(String, p['checkpoint_topic'], self._on_checkpoint_topic,
                                     CHECKPOINT_QOS)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(Trigger, '~/load_checkpoint', self._on_load_service)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if p['cameras']:
            self._subscribe_cameras(p['cameras'])
        # The robot's command layout is known: human takeover works before any policy.
        try:
            self.loop.configure(robot.action_names, robot.joint_names)
        except (SettingError, Refused) as e:
            raise ParameterError(str(e) if str(e).startswith('parameter ') else
                                 f'parameter robot={p["robot"]!r}: {e}') from None
        self._setup_command()
        self.create_timer(self.period, self._tick)
        self.create_timer(1.0 / p['status_rate_hz'], self._publish_status)
        self.diagnostics = ControllerDiagnostics(self)      # /diagnostics, once a second
        self.log.info(f'robot {robot.name} ({robot.source}), {p["rate_hz"]:g} Hz, '
                      f'{"enabled" if cfg.enabled else "disabled"}, {robot.command.type} on '
                      f'{self.resolve_topic_name(robot.command.topic)}, chunk policy '
                      f'{cfg.chunk_policy}, policy on {self.slot.device}'
                      + ('' if p['autostart'] else ', unconfigured (autostart false)'))
        self._built = True                     # destroy_node reports telemetry
        if p['autostart']:
            autostart(self)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state):
        """Check the ``checkpoint`` now (FAILURE naming it) and load it in the background."""
        path = self.get_parameter('checkpoint').value
        if path:
            try:
                self.slot.request(path, 'configure')
            except Exception as e:  # noqa: BLE001 - Refused, or a bug: FAILURE, unconfigured
                why = str(e) if isinstance(e, Refused) else f'{type(e).__name__}: {e}'
                self.loop.last_error = why
                return failed(self, 'configure', f'parameter checkpoint={path!r}: {why}')
        self.state = 'inactive'
        self.log.info(f'configured: checkpoint {path or "(none: HOLD until one is loaded)"}')
        return super().on_configure(state)

    def on_activate(self, state):
        """Start commanding; an enabled loop re-primes from the measured pose."""
        ret = super().on_activate(state)                 # the command publisher
        if self.loop.enabled:
            self.loop.enable(False)
            self.loop.enable(True)
        self.state = 'active'
        self.log.info(f'active: {"enabled" if self.loop.enabled else "disabled"}, commands '
                      f'on {self.robot.command.topic}')
        return ret

    def on_deactivate(self, state):
        """HOLD: nothing more on the command topic (its publisher is deactivated too)."""
        self.state = 'inactive'
        ret = super().on_deactivate(state)
        self.pub_source.publish(String(data=keys.SOURCE_HOLD))
        self.log.info(f'inactive: HOLD, nothing is published on {self.robot.command.topic}')
        return ret

    def on_cleanup(self, state):
        """Drop the policy (and one loaded but not swapped in); configure loads it again."""
        self.slot.take()
        self.loop.policy = self.loop.policy_name = self.loop.policy_mtime = None
        self.state = 'unconfigured'
        self.log.info('cleaned up: no policy')
        return super().on_cleanup(state)

    def on_shutdown(self, state):
        """HOLD, then end the process (exit 0), as after Ctrl-C."""
        if self.state == 'active':
            self.on_deactivate(state)
        self.state = 'finalized'
        end_after_shutdown(self, rclpy.try_shutdown)
        return SUCCESS

    # ------------------------------------------------------------------ robot set-up
    def _setup_command(self) -> None:
        """The command adapter and publisher, once the loop knows the command values."""
        self.adapter = make_adapter(self.robot.command.type, self.loop.action_names,
                                    self.period)
        # A lifecycle publisher: an inactive controller cannot command the robot.
        self.pub_cmd = self.create_lifecycle_publisher(
            self.adapter.msg_type, self.robot.command.topic, COMMAND_QOS)
        if self.state == 'active':
            self.pub_cmd.on_activate(None)
        self._warn_unlimited()

    def _warn_unlimited(self) -> None:
        off = self.loop.unlimited_step()
        if off:
            self.log.warning(f'NO STEP LIMIT on {off} (allow_unlimited_step: inf step limits; '
                             'only the joint limits clamp them)')

    def _subscribe_cameras(self, cameras: list[str]) -> None:
        for cam in cameras:
            if cam in self.streams.camera_topics:
                continue
            info = self.robot.camera(cam)      # the slot refused cameras the robot lacks
            self.streams.camera_topics[cam] = self.resolve_topic_name(info.topic)
            self.streams.declared[cam] = info.encoding
            cls = CompressedImage if info.compressed else Image
            self.create_subscription(cls, info.topic, lambda m, c=cam: self._on_image(c, m),
                                     SENSOR_QOS)

    def _on_robot(self, spec) -> None:
        """The first checkpoint fixed the robot: its cameras, and the command publisher."""
        self._subscribe_cameras(list(spec.cameras))
        if self.pub_cmd is None:
            self._setup_command()

    def _on_swap(self, loaded) -> None:
        self.proprio = list(loaded.policy.cfg.proprio_keys)
        self.streams.preprocess = preprocess_of(loaded.policy)   # the checkpoint's record
        self._sync_checkpoint_param(None)

    # ------------------------------------------------------------------ callbacks
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, cam: str, msg) -> None:
        self.streams.on_image(cam, msg, self._now())

    def _on_joints(self, msg: JointState) -> None:
        self.streams.on_joints(msg, self._now())

    def _on_intervention(self, msg: Bool) -> None:
        self.loop.heartbeat(self._now(), bool(msg.data))

    def _on_human(self, msg: Float64MultiArray) -> None:
        self.loop.human_command(array_from_msg(msg), self._now())

    def _on_checkpoint_topic(self, msg: String) -> None:
        # The trainer re-uses one folder (checkpoints/best) for each new best: the same path
        # with a newer policy.json is a new checkpoint.
        if not msg.data or self.state not in ('inactive', 'active') or (
                str(Path(msg.data).resolve()) == self.loop.policy_name
                            and config_mtime(msg.data) == self.loop.policy_mtime):
            return
        try:
            self.slot.request(msg.data, 'checkpoint topic')
        except Refused as e:
            self.loop.refuse(str(e))

    def _on_load_service(self, request, response):
        path = self.get_parameter('checkpoint').value
        if self.state not in ('inactive', 'active'):
            response.success = False
            response.message = f'the node is {self.state}: configure it (configure loads it)'
            return response
        if not path:
            response.success = False
            response.message = 'the checkpoint parameter is empty: set it to a checkpoint folder'
            return response
        try:
            path = self.slot.request(path, '~/load_checkpoint')
        except Refused as e:
            self.loop.refuse(str(e))
            response.success, response.message = False, str(e)
            return response
        response.success = True
        response.message = (f'loading {path} in the background; it takes over at a tick '
                            'boundary (see ~/status)')
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        if self._echo:
            return SetParametersResult(successful=True)    # _sync_checkpoint_param
        for prm in params:
            if prm.name not in RUNTIME:
                return SetParametersResult(successful=False, reason=(
                    f'{prm.name} is read at start-up; only {list(RUNTIME)} change at run time'))
        step = [prm for prm in params if prm.name == 'max_step']
        new_step = [float(v) for v in step[-1].value] if step else None
        if new_step is not None:
            try:
                check_step_settings(new_step, self.loop.cfg.allow_unlimited_step,
                                    self.loop.action_names)
            except SettingError as e:
                self.log.error(f'refused: parameter {e}')
                return SetParametersResult(successful=False, reason=f'parameter {e}')
        for prm in params:
            if prm.name == 'checkpoint' and prm.value and self.state in ('inactive', 'active'):
                try:
                    self.slot.request(prm.value, 'parameter')
                except Refused as e:
                    self.loop.refuse(str(e))
                    return SetParametersResult(successful=False, reason=str(e))
            elif prm.name == 'enabled':
                self._set_enabled(bool(prm.value))
        if new_step is not None:
            if self.loop.safety is not None:
                self.log.info(f'step limits {self.loop.set_step(new_step)}')
                self._warn_unlimited()
            else:
                self.loop.cfg.max_step = new_step
        return SetParametersResult(successful=True)

    def _sync_checkpoint_param(self, failed: str | None) -> None:
        """Make the ``checkpoint`` parameter name the running checkpoint ('' for none).

        After a swap it names the running one (also after a load from the trainer topic or
        ~/load_checkpoint); after the background load of the path it names failed, it goes
        back. Runs in the executor (the tick), never in a loader thread.
        """
        value = self.get_parameter('checkpoint').value
        current = str(Path(value).expanduser().resolve()) if value else ''
        running = self.loop.policy_name or ''
        if (failed is not None and current != failed) or current == running:
            return
        self._echo = True
        try:
            self.set_parameters([RclParameter('checkpoint', value=running)])
        finally:
            self._echo = False
        self.log.info(f'parameter checkpoint={running!r}: the running checkpoint'
                      + (f' ({failed} was refused)' if failed else ''))

    def _set_enabled(self, on: bool) -> None:
        self.loop.enable(on)
        self.log.info('enabled' if on else 'disabled: nothing is published on '
                      f'{self.resolve_topic_name(self.robot.command.topic)}')

    def _on_enable(self, request, response):
        self._set_enabled(bool(request.data))
        response.success = True
        response.message = 'enabled' if self.loop.enabled else 'disabled'
        if self.loop.enabled and self.loop.policy is None:
            loading = self.slot.loading
            response.message += (' (no policy loaded: HOLD until one is'
                                 + (f'; loading {loading})' if loading else ')'))
        return response

    def _on_reset(self, request, response):
        fault = self.loop.fault
        self.loop.reset()
        self.streams.restart(self._now())     # HOLD until every stream has a newer message
        response.success = True
        response.message = ('the policy is reset and re-primed at the next policy tick'
                            + (f'; the latched fault {fault["reason"]} is cleared'
                               if fault else ''))
        return response

    # ------------------------------------------------------------------ the tick
    def _tick(self) -> None:
        if self.state != 'active':          # unconfigured or inactive: HOLD, nothing sent
            self.pub_source.publish(String(data=keys.SOURCE_HOLD))
            return
        started = time.perf_counter()       # the tick latency includes building the frame
        try:
            self.loop.swap_in()                 # before the frame: it follows the new policy
            now = self._now()
            cfg = self.loop.cfg
            obs = self.streams.observation(now, self.loop.robot, self.proprio,
                                           self.loop.action_names,
                                           cfg.watchdog_periods * self.period,
                                           cfg.watchdog_periods)
            res = self.loop.tick(now, obs, started=started)
            if res.command is not None and self.pub_cmd is not None:
                self.pub_cmd.publish(self.adapter(res.command, now))
            self.pub_source.publish(String(data=res.source))
        except Exception:  # noqa: BLE001 - a bug must not stop the loop: HOLD, loudly
            self.loop.counts['tick_errors'] += 1
            self.loop.warn('tick', 'control tick failed, nothing sent:\n'
                           f'{traceback.format_exc()}')
            self.pub_source.publish(String(data=keys.SOURCE_HOLD))

    def _publish_status(self) -> None:
        self.status_seq += 1
        status = {'seq': self.status_seq, 'lifecycle': self.state, **self.loop.status()}
        self.pub_status.publish(String(data=json.dumps(status, default=_jsonable)))

    def destroy_node(self):
        """Stop the worker, log the telemetry summary, write ``stats_file``; destroy the node.

        Also called on a node whose construction failed (rclpy's shutdown destroys every
        node of the context): only what was built is cleaned up.
        """
        if getattr(self, '_destroyed', False):     # after the shutdown transition: twice
            return None
        self._destroyed = True
        loop = getattr(self, 'loop', None)
        if loop is None or not getattr(self, '_built', False):
            if loop is not None:
                loop.close()
            return super().destroy_node()
        loop.close()
        s = loop.summary()
        lat, plan = s['tick_latency_ms'], s['plan_latency_ms']
        self.log.info(
            f'telemetry: {s["ticks"]} ticks, tick latency p50 {lat["p50"]} p99 {lat["p99"]} '
            f'max {lat["max"]} ms, plan p50 {plan["p50"]} p99 {plan["p99"]} ms (n '
            f'{plan["n"]}), {s["missed_deadlines"]} missed deadlines, queue mean '
            f'{s["queue_depth"]["mean"]}, faults {loop.counts["faults"]}, HOLD reasons '
            f'{s["hold_reasons"]}')
        if self.p['stats_file']:
            try:
                atomic_write_json(Path(self.p['stats_file']), {
                    'period_s': self.period, 'summary': s, 'counts': dict(loop.counts),
                    'plan_ms': list(loop.worker.plan_hist),
                    'dropped_actions': loop.queue.dropped, 'columns': TICK_COLUMNS,
                    'ticks': loop.telemetry.ticks})
            except (OSError, TypeError, ValueError) as e:
                self.log.error(f'cannot write stats_file {self.p["stats_file"]}: {e}')
        return super().destroy_node()


def main(args=None):
    """Run the controller node; the process ends without the interpreter's teardown.

    Everything is closed by then (node, worker, stats_file). Tearing torch's modules down
    took 2-3 s after SIGINT, over 5 s on a busy machine, where ``ros2 launch`` escalates to
    SIGTERM and reports the node as died.
    """
    setup_headless_gl()
    code = run(Controller, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    main()
