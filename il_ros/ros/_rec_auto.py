"""Automatic episodes for scripted collection: reset the sim, record, stop on success/timeout.

A steady-clock timer drives a small state machine on the recorder node:

    wait_topics -> resetting -> recording -> (stop) -> resetting -> ... -> done

- ``wait_topics``: until every configured topic is subscribed (or, after
  ``expected_topics_timeout_s``, with a warning) and the reset service is there.
- ``resetting``: call ``reset_service`` (std_srvs/Trigger); a refusal or no answer within
  ``reset_timeout_s`` (wall time) ends the run with exit code 1.
- ``recording``: success messages (``success_topic``, std_msgs/Bool) count only while the
  episode records. The episode stops once success has been true without a break for
  ``success_hold_s`` of node-clock time (success=True), or ``episode_timeout_s`` after the
  start (success=False). Under ``use_sim_time`` both follow ``/clock``.
- After ``auto_episodes`` stopped episodes the node's ``done`` future gets 0 and ``main``
  returns it as the exit code. An episode that cannot be started or written (a full disk)
  is logged, left ``incomplete`` and recorded again after the next reset: one transient
  error never ends a collection run. :data:`MAX_FAILURES_IN_A_ROW` failed episodes in a row
  end it with 1.

The success subscription is best effort (depth 10) so it matches any publisher.
"""
from __future__ import annotations

import time

from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from il_ros.data.episode_writer import EpisodeError

MAX_FAILURES_IN_A_ROW = 3

class AutoEpisodes:
    """Drives ``node`` (a Recorder) through ``auto_episodes`` episodes."""

    def __init__(self, node, steady_clock):
        """Create the reset client, the success subscription and the 20 Hz driver timer."""
        self.node = node
        self.total = int(node.param('auto_episodes'))
        self.recorded = 0
        self.failures = 0       # failed episodes in a row
        self.state = 'wait_topics'
        self._since = time.monotonic()
        self._future = None
        self._success_at = None
        self._start_ns = 0
        self._warned = False
        self._client = node.create_client(Trigger, node.param('reset_service'))
        self._sub = node.create_subscription(
            Bool, node.param('success_topic'), self._on_success,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._timer = node.create_timer(0.05, self._tick, clock=steady_clock)

    def _now(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_success(self, msg: Bool) -> None:
        if self.state != 'recording':
            return
        if not msg.data:
            # Success must hold without a break: a True still in flight from the previous
            # episode (the sim publishes False within one tick of the reset) must not end
            # the new episode. Seen: a 12-frame "successful" lift episode at the start pose.
            self._success_at = None
        elif self._success_at is None:
            self._success_at = self._now()

    def _finish(self, code: int, why: str) -> None:
        self.state = 'done'
        self._timer.cancel()
        # One severity per call site: rclpy refuses a call site whose severity changes.
        if code == 0:
            self.node.get_logger().info(f'auto episodes: {why}')
        else:
            self.node.get_logger().error(f'auto episodes: {why}')
        if not self.node.done.done():
            self.node.done.set_result(code)

    def pause(self) -> None:
        """Stop driving (the node was deactivated); the closed episode is not counted."""
        if self.state != 'done':
            self._timer.cancel()

    def resume(self) -> None:
        """Drive again (the node was activated): wait for the topics, reset, record."""
        if self.state != 'done':
            self.state, self._since, self._future = 'wait_topics', time.monotonic(), None
            self._timer.reset()

    def _tick(self) -> None:
        try:
            {'wait_topics': self._tick_wait_topics, 'resetting': self._tick_resetting,
             'recording': self._tick_recording, 'done': self._tick_done}[self.state]()
        except EpisodeError as err:
            self._episode_failed(str(err))

    def _episode_failed(self, why: str) -> None:
        """Record the episode again after a reset; give up after too many in a row."""
        self.failures += 1
        if self.failures >= MAX_FAILURES_IN_A_ROW:
            self._finish(1, f'stopping after {self.failures} failed episodes in a row; '
                         f'last: {why}')
            return
        self.node.get_logger().error(
            f'auto episode {self.recorded + 1}/{self.total} failed ({why}); recording it '
            f'again ({self.failures} failure(s) in a row, {MAX_FAILURES_IN_A_ROW} end the run)')
        self._request_reset()

    def _tick_done(self) -> None:
        pass

    def _tick_wait_topics(self) -> None:
        node = self.node
        waited = time.monotonic() - self._since
        missing = [t for t in node.configured_topics if t not in node.subscribed]
        if missing and waited < node.param('expected_topics_timeout_s'):
            return
        if missing and not self._warned:
            self._warned = True
            node.get_logger().warning(f'no publisher yet for {missing}; starting anyway')
        if not self._client.service_is_ready():
            if waited > node.param('reset_timeout_s'):
                self._finish(1, f'reset service {self._client.srv_name} not available after '
                             f'{waited:.0f} s')
            return
        self._request_reset()

    def _request_reset(self) -> None:
        self.state = 'resetting'
        self._since = time.monotonic()
        self._future = self._client.call_async(Trigger.Request())

    def _tick_resetting(self) -> None:
        if not self._future.done():
            if time.monotonic() - self._since > self.node.param('reset_timeout_s'):
                self._finish(1, f'reset service {self._client.srv_name} did not answer')
            return
        result = self._future.result()
        if result is None or not result.success:
            why = result.message if result is not None else 'no response'
            self._finish(1, f'reset service {self._client.srv_name} refused: {why}')
            return
        self._success_at = None
        self.node.start_episode()
        self._start_ns = self._now()
        self.state = 'recording'

    def _tick_recording(self) -> None:
        node = self.node
        if node.episode is None:  # the writer failed and the node closed the episode
            raise EpisodeError(f'episode ended early: {node.last_result}')
        now = self._now()
        hold = int(node.param('success_hold_s') * 1e9)
        if self._success_at is not None and now - self._success_at >= hold:
            success = True
        elif now - self._start_ns >= int(node.param('episode_timeout_s') * 1e9):
            success = False
        else:
            return
        meta = node.stop_episode(success)
        if meta['error']:
            raise EpisodeError(meta['error'])
        self.failures = 0
        self.recorded += 1
        node.get_logger().info(f'auto episode {self.recorded}/{self.total}: {meta["bag"]} '
                               f'success={success}')
        if self.recorded >= self.total:
            self._finish(0, f'{self.total} episodes recorded')
        else:
            self._request_reset()
