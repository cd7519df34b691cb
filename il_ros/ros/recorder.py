"""The recorder node: raw CDR from configured (or all discovered) topics into episode bags.

Services: ``~/start_episode`` (Trigger), ``~/stop_episode`` (SetBool: data = success),
``~/discard_episode`` (Trigger); health on ``/diagnostics`` (il_ros/ros/node_diagnostics.py).
With ``auto_episodes`` > 0 the node drives scripted collection itself (see
:mod:`il_ros.ros._rec_auto`) and exits 0 when done.

Each topic is subscribed with ``raw=True``, reliability and durability matched to its
publishers and KEEP_ALL history (see :mod:`il_ros.ros._rec_topics`); the callback hands the
bytes and the node-clock time to :class:`il_ros.data.episode_writer.EpisodeWriter`, which
queues them for its writer thread. Messages on transient-local (latched) topics are cached
and written at the start of every episode, so each bag is self-contained.

Episode end states: ``complete``; ``incomplete`` when an expected topic sent nothing, a
write failed (the node ends the episode itself and logs the error) or the node was shut down
(SIGINT/SIGTERM) mid-episode; ``complete_with_loss`` when a topic lost more than
``max_loss_fraction`` of its messages (per-topic expected and measured rates, gaps and lost
counts are in the metadata); ``discarded`` (bag folder deleted, JSON kept). A SIGKILL leaves
the JSON at ``recording``, which bag-info reports as partial (``il-ros bag-recover`` copies
out what its completed chunks hold). A failed episode never ends the node: the services keep
answering and the next episode starts afresh.

A lifecycle node (il_ros/ros/_rec_lifecycle.py; docs/ros-network.md, "Managed nodes"):
``configure`` creates and checks the output folder and subscribes, ``activate`` starts
recording (auto episodes, or accepting ~/start_episode), ``deactivate`` closes the open
episode as a stop does (nothing lost) and pauses auto mode, ``cleanup`` unsubscribes,
``shutdown`` ends the process. ``autostart`` (default true) configures and activates at
start-up; a failed configure then ends the process with exit code 1.

Parameters are checked at start-up (a bad value: one line on stderr, exit code 2) and on
every change; they are read when an episode starts, so ``output_dir``, ``task``,
``operator``, ``storage``, ``queue_size``, ``expected_rates`` and ``max_loss_fraction`` may
be changed between episodes. ``output_dir`` may only move inside ``output_root`` (read-only;
default: the start-up ``output_dir``) unless ``allow_any_output_dir`` (read-only) is true.
``bag_version`` (read-only, 8 or 9, default 8) is the rosbag2 metadata version of the bags:
8 is read by Humble, Jazzy and Kilted; Humble refuses 9.
"""
from __future__ import annotations

import os
from pathlib import Path
import sys
import time

from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy
from rclpy.task import Future
from std_srvs.srv import SetBool, Trigger

from il_ros.data.episode_writer import (BAG_VERSIONS, DEFAULT_BAG_VERSION, EpisodeError,
                                        EpisodeWriter)
from il_ros.ros._rec_lifecycle import RecorderLifecycle
from il_ros.ros.recorder_params import (EXCLUDED_TOPICS, PARAMS, parse_rates, READ_ONLY,
                                    START_UP)
from il_ros.ros._rec_topics import (bag_qos, ensure_type, msg_class, needs_resubscribe,
                                    subscription_qos, typestore_for_distro)
from il_ros.ros.lifecycle import autostart
from il_ros.ros.node_diagnostics import RecorderDiagnostics
from il_ros.ros.node_utils import declare, ParameterError


class Recorder(RecorderLifecycle, LifecycleNode):
    """Records topics into one rosbag2 bag per episode; see the module docstring."""

    def __init__(self, **kwargs):
        """Declare and check parameters, start discovery and the services.

        Raises ParameterError (before any timer or service exists) for a bad parameter.
        """
        super().__init__('recorder', **kwargs)
        for name, (default, text, limits) in PARAMS.items():
            declare(self, name, default, text, read_only=name in START_UP,
                    array_type='string', **limits)
        for name, (default, text) in READ_ONLY.items():
            declare(self, name, default, text, read_only=True)
        declare(self, 'bag_version', DEFAULT_BAG_VERSION, 'rosbag2 metadata version of the '
                'bags: 8 is read by Humble, Jazzy and Kilted; Humble refuses 9.',
                read_only=True, choices=list(BAG_VERSIONS))
        # relative names resolve in the node's namespace: bags store the resolved names
        self.configured_topics = [self.resolve_topic_name(t) for t in self.param('topics') if t]
        optional = [self.resolve_topic_name(t) for t in self.param('optional_topics') if t]
        if set(optional) - set(self.configured_topics):
            raise ParameterError(f'parameter optional_topics={optional!r}: must be among '
                                 f'topics {self.configured_topics!r}')
        self.expected_topics = [t for t in self.configured_topics if t not in optional]
        parse_rates('expected_rates', self.param('expected_rates'))
        start_dir = self._resolve(self.param('output_dir'))
        self._root = (self._resolve(self.param('output_root'))
                      if self.param('output_root') else start_dir)
        refused = self._outside_root(start_dir)
        if refused:
            raise ParameterError(f'parameter output_dir={self.param("output_dir")!r}: '
                                 f'{refused}')
        self.add_on_set_parameters_callback(self._check_params)
        self._typestore = typestore_for_distro()
        self.subscribed: dict[str, dict] = {}     # topic -> {type, sub, qos, offered}
        self._latched: dict[str, bytes] = {}  # last message of each transient-local topic
        self._skipped: set[str] = set()      # topics whose type cannot be recorded
        self._episode: EpisodeWriter | None = None
        self._episode_mono = 0.0
        self._late_checked = False
        self.last_result = ''
        self.done = Future()
        self.state = 'unconfigured'           # lifecycle state (the node's callbacks set it)
        self._configure_failed = False
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_service(Trigger, '~/start_episode', self._srv_start)
        self.create_service(SetBool, '~/stop_episode', self._srv_stop)
        self.create_service(Trigger, '~/discard_episode', self._srv_discard)
        self.create_timer(self.param('discovery_period_s'), self.discover, clock=self._steady)
        self.create_timer(0.2, self._watch, clock=self._steady)
        self._auto = None
        self._diag = RecorderDiagnostics(self)      # /diagnostics, once a second
        auto = self.param('auto_episodes')
        mode = f'auto ({auto} episodes)' if auto > 0 else 'manual'
        self.get_logger().info(
            f'recording {self.configured_topics or "all discovered topics"} to '
            f'{self.param("output_dir")} ({self.param("storage")}), {mode}'
            + ('' if self.param('autostart') else ', unconfigured (autostart false)'))
        if self.param('autostart') and not autostart(self) and not self.done.done():
            self.done.set_result(1)               # il-ros record: exit 1, the reason logged

    def param(self, name: str):
        """Current value of parameter ``name`` (``[]`` for an unset string array)."""
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:  # `[]` in YAML leaves an array unset
            value = None
        return [] if value is None and name in ('topics', 'optional_topics',
                                                'expected_rates') else value

    @staticmethod
    def _resolve(path: str) -> Path:
        return Path(os.path.abspath(Path(path).expanduser()))

    def _outside_root(self, path: Path) -> str | None:
        """Why ``path`` may not be the output folder (outside the root), or None."""
        if self.param('allow_any_output_dir'):
            return None
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(self._root))
        if real == root or root in real.parents:
            return None
        return (f'{path} is outside the output root {self._root} (set output_root at '
                'start-up, or allow_any_output_dir:=true)')

    def _check_params(self, params) -> SetParametersResult:
        for p in params:
            try:
                if p.name == 'expected_rates':
                    parse_rates(p.name, p.value)
                if p.name == 'output_dir':
                    refused = self._outside_root(self._resolve(str(p.value)))
                    if refused:
                        raise ParameterError(f'parameter output_dir={p.value!r}: {refused}')
            except ParameterError as err:
                self.get_logger().warning(f'refused: {err}')
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    # ---- topics ----

    def discover(self) -> None:
        """Subscribe to wanted topics that have publishers; re-match QoS when needed.

        Only while configured (inactive or active).
        """
        if self.state not in ('inactive', 'active'):
            return
        for topic, types in self.get_topic_names_and_types():
            wanted = (topic in self.configured_topics if self.configured_topics
                      else topic not in EXCLUDED_TOPICS)
            if not wanted or topic in self._skipped or not types:
                continue
            try:
                self._discover_one(topic, types)
            except Exception as err:  # noqa: BLE001 - one odd topic must not stop discovery
                self._skipped.add(topic)
                self.get_logger().warning(f'not recording {topic} {types}: '
                                          f'{type(err).__name__}: {err}')

    def _discover_one(self, topic: str, types: list[str]) -> None:
        """Subscribe to one wanted topic, or re-subscribe with QoS that matches."""
        pubs = self.get_publishers_info_by_topic(topic)
        if not pubs:
            return
        qos = subscription_qos(pubs)
        have = self.subscribed.get(topic)
        if have and not needs_resubscribe(have['qos'], qos):
            return
        if len(types) > 1:
            self.get_logger().warning(f'{topic} has several types {types}; recording '
                                      f'{types[0]}')
        self._subscribe(topic, types[0], qos, pubs, have)

    def _subscribe(self, topic, msgtype, qos, pubs, have) -> None:
        try:
            cls = msg_class(msgtype)
            if not ensure_type(self._typestore, msgtype):
                raise ImportError(f'no message definition for {msgtype} found')
        except (ImportError, ValueError) as err:
            self._skipped.add(topic)  # warned about once
            self.get_logger().warning(f'not recording {topic} (type {msgtype!r}): {err}')
            return
        if have:
            self.destroy_subscription(have['sub'])
        sub = self.create_subscription(cls, topic, lambda data, t=topic: self._on_msg(t, data),
                                       qos, raw=True)
        self.subscribed[topic] = {
            'type': msgtype, 'sub': sub, 'qos': qos, 'offered': bag_qos(pubs),
            'latched': qos.durability == DurabilityPolicy.TRANSIENT_LOCAL}
        self.get_logger().info(
            f'subscribed {topic} [{msgtype}] {qos.reliability.name.lower()}/'
            f'{qos.durability.name.lower()}')
        if self._episode is not None:
            self._register(self._episode, topic)

    def _register(self, ep: EpisodeWriter, topic: str) -> None:
        info = self.subscribed[topic]
        ep.add_topic(topic, info['type'], info['offered'])

    def _on_msg(self, topic: str, data: bytes) -> None:
        self._diag.on_msg(topic)
        if self.subscribed[topic]['latched']:
            self._latched[topic] = data
        ep = self._episode
        if ep is not None:
            ep.write(topic, data, self.get_clock().now().nanoseconds)

    # ---- episodes (also used by AutoEpisodes) ----

    @property
    def episode(self) -> EpisodeWriter | None:
        """The episode being recorded, if any."""
        return self._episode

    def start_episode(self) -> EpisodeWriter:
        """Open the next episode. Raises EpisodeError (naming the path) on failure."""
        if self._episode is not None:
            raise EpisodeError(f'{self._episode.name} is already recording; stop or discard '
                               'it first')
        if self.state != 'active':
            raise EpisodeError(f'the recorder is {self.state}: it records only while active '
                               '(lifecycle: configure, then activate)')
        self.discover()
        now = self.get_clock().now().nanoseconds
        ep = EpisodeWriter.open(
            self.param('output_dir'), start_time_ns=now, storage=self.param('storage'),
            queue_size=self.param('queue_size'), task=self.param('task'),
            operator=self.param('operator'), expected_topics=self.expected_topics,
            typestore=self._typestore, logger=self.get_logger(),
            expected_rates=parse_rates('expected_rates', self.param('expected_rates'),
                                       self.resolve_topic_name),
            max_loss_fraction=self.param('max_loss_fraction'),
            bag_version=self.param('bag_version'),
            extra={'node': self.get_fully_qualified_name(),
                   'use_sim_time': bool(self.param('use_sim_time')),
                   'log_time': 'node clock (sim time)' if self.param('use_sim_time')
                   else 'node clock (system time)'})
        for topic in self.subscribed:
            self._register(ep, topic)
        for topic, data in self._latched.items():
            ep.write(topic, data, now)
        if now == 0:
            ep.warn('the node clock reads 0 (use_sim_time without /clock yet?): log times are 0')
        self._episode, self._episode_mono, self._late_checked = ep, time.monotonic(), False
        self.get_logger().info(f'{ep.name}: recording to {ep.bag_path}')
        return ep

    def stop_episode(self, success: bool | None, discard: bool = False,
                     interrupted: bool = False) -> dict:
        """Finish (or discard) the current episode; returns its metadata."""
        ep = self._episode
        if ep is None:
            raise EpisodeError('no episode is recording' + (
                f' (last: {self.last_result})' if self.last_result else ''))
        self._episode = None
        now = self.get_clock().now().nanoseconds
        if interrupted:
            ep.warn('the recorder was shut down during the episode')
        meta = ep.discard(now) if discard else ep.finish(success, now, interrupted)
        counts = ', '.join(f'{t} {v["count"]}' for t, v in meta['topics'].items())
        self.last_result = f'{ep.name} {meta["status"]}' + (
            f': {meta["error"]}' if meta['error'] else '')
        line = f'{ep.name}: {meta["status"]} (success={meta["success"]}) {counts}'
        # One severity per call site: rclpy refuses a call site whose severity changes.
        if meta['error']:
            self.get_logger().error(line)
        else:
            self.get_logger().info(line)
        return meta

    def _watch(self) -> None:
        """Warn about silent configured topics; end an episode whose writer failed."""
        ep = self._episode
        if ep is None:
            return
        if ep.error is not None:
            try:
                self.stop_episode(None)
            except Exception as err:  # noqa: BLE001 - the node outlives a failed episode
                self.get_logger().error(f'{ep.name}: closing the failed episode: {err}')
            return
        if (not self._late_checked and time.monotonic() - self._episode_mono
                > self.param('expected_topics_timeout_s')):
            self._late_checked = True
            counts = ep.counts()
            for topic in self.expected_topics:
                if counts.get(topic, 0) == 0:
                    ep.warn(f'configured topic {topic} sent no message in the first '
                            f'{self.param("expected_topics_timeout_s"):g} s')

    # ---- services ----

    def _srv_start(self, request, response):
        try:
            ep = self.start_episode()
            response.success, response.message = True, f'{ep.name} recording to {ep.bag_path}'
        except Exception as err:  # noqa: BLE001 - always answer; the node keeps running
            what = str(err) if isinstance(err, EpisodeError) else f'{type(err).__name__}: {err}'
            self.get_logger().error(f'start_episode failed: {what}')
            response.success, response.message = False, what
        return response

    def _srv_stop(self, request, response):
        return self._finish_reply(response, bool(request.data), False)

    def _srv_discard(self, request, response):
        return self._finish_reply(response, None, True)

    def _finish_reply(self, response, success, discard):
        try:
            meta = self.stop_episode(success, discard=discard)
        except EpisodeError as err:
            response.success, response.message = False, str(err)
            return response
        except Exception as err:  # noqa: BLE001 - always answer; the node keeps running
            self.get_logger().error(f'stopping the episode failed: {type(err).__name__}: {err}')
            response.success, response.message = False, f'{type(err).__name__}: {err}'
            return response
        response.success = meta['error'] is None
        response.message = f'{meta["bag"]} {meta["status"]}' + ''.join(
            f'; {w}' for w in meta['warnings']) + (f'; {meta["error"]}' if meta['error']
                                                   else '')
        return response

    def shutdown_episode(self) -> None:
        """Close an episode left open at shutdown (marked incomplete, interrupted)."""
        if self._episode is not None:
            try:
                self.stop_episode(None, interrupted=True)
            except Exception as err:  # noqa: BLE001 - shutting down; report and go on
                self.get_logger().error(f'closing the episode at shutdown failed: {err}')


def main(args=None) -> int:
    """Run the recorder until shutdown (manual) or until the auto episodes are done."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = Recorder()
        rclpy.spin_until_future_complete(node, node.done)
        code = node.done.result() if node.done.done() else 0
    except (ParameterError, InvalidParameterTypeException) as err:
        print(f'recorder: {err}', file=sys.stderr, flush=True)  # one line, like a command
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown_episode()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
