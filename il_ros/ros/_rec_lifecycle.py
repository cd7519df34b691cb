"""The recorder's lifecycle transitions (a mixin of :class:`il_ros.ros.recorder.Recorder`).

docs/ros-network.md, "Managed nodes": configure creates and checks the output folder and
subscribes; activate records; deactivate closes the open episode and pauses auto mode;
cleanup unsubscribes; shutdown ends the process.
"""
from __future__ import annotations

import os

from il_ros.ros._rec_auto import AutoEpisodes
from il_ros.ros.lifecycle import end_after_shutdown, failed, SUCCESS


class RecorderLifecycle:
    """``on_configure`` ... ``on_shutdown`` of the recorder node (uses its attributes)."""

    def on_configure(self, state):
        """Create (if needed) and check the output folder, then subscribe to the topics."""
        out = self.param('output_dir')
        try:
            path = self._resolve(out)
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(f'{path} is not writable')
        except OSError as err:
            self._configure_failed = True
            return failed(self, 'configure', f'parameter output_dir={out!r}: {err}')
        self.state, self._configure_failed = 'inactive', False
        self.discover()
        self.get_logger().info(f'configured: output folder {path}')
        return SUCCESS

    def on_activate(self, state):
        """Accept ~/start_episode; in auto mode start (or resume) the episodes."""
        self.state = 'active'
        if self.param('auto_episodes') > 0:
            if self._auto is None:
                self._auto = self._diag.auto = AutoEpisodes(self, self._steady)
            else:
                self._auto.resume()
        self.get_logger().info('active: recording episodes')
        return SUCCESS

    def on_deactivate(self, state):
        """Close the open episode (finished normally: nothing is lost); pause auto mode."""
        self.state = 'inactive'
        if self._auto is not None:
            self._auto.pause()
        if self._episode is not None:
            try:
                self.stop_episode(None)
            except Exception as err:  # noqa: BLE001 - the transition still succeeds
                self.get_logger().error(f'closing the episode on deactivate failed: {err}')
        self.get_logger().info('inactive: not recording')
        return SUCCESS

    def on_cleanup(self, state):
        """Unsubscribe every topic and forget the latched messages."""
        for info in self.subscribed.values():
            self.destroy_subscription(info['sub'])
        self.subscribed.clear()
        self._latched.clear()
        self._skipped.clear()
        self.state = 'unconfigured'
        self.get_logger().info('cleaned up: no subscriptions')
        return SUCCESS

    def on_shutdown(self, state):
        """Close the open episode as deactivate does, then end the process.

        Exit code 0, or 1 when the last configure failed and none succeeded since.
        """
        if self.state == 'active':
            self.on_deactivate(state)
        code = 1 if self.state == 'unconfigured' and self._configure_failed else 0
        self.state = 'finalized'
        end_after_shutdown(self, lambda: self.done.done() or self.done.set_result(code))
        return SUCCESS
