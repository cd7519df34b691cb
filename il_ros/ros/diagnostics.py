"""``/diagnostics``: each long-running node's health as ``diagnostic_msgs/DiagnosticArray``.

ROS tools read this topic (``ros2 topic echo /diagnostics``, rqt_runtime_monitor,
diagnostic_aggregator); the nodes' JSON ``~/status`` topics stay, for scripts. The ROS
package ``diagnostic_updater`` is not published on PyPI (only its messages are, as
``ros-diagnostic-msgs``), so this module is the small part of it il_ros needs:

- :class:`Diagnostics`, a node's updater: ``add(what, task)`` registers a task; every
  ``period_s`` of wall time (a steady-clock timer: a paused ``/clock`` does not stop it) each
  ``task(status)`` fills in one :class:`Status`, and one DiagnosticArray with a
  DiagnosticStatus per task goes out on ``/diagnostics``. A status is named
  ``<node name>: <what>`` (``robot1/sim_robot: <what>`` in a namespace) and carries the
  node's ``hardware_id``, as diagnostic_updater names them. A task that raises reports
  ERROR naming the exception; the others still report.
- :class:`Status`: a level (OK, WARN, ERROR; STALE is the aggregator's word for a status that
  stopped arriving) with a message, and key/value pairs.
- :class:`RateMeter` (events per second, age of the newest event) and :class:`Deltas`
  (how much counters grew since the last report), both on an injected clock or without one,
  so nodes compute windowed figures the same way and tests drive them without waiting.
"""
from __future__ import annotations

import json
import math
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

from il_ros.ros.node_utils import STATE_QOS

OK, WARN, ERROR, STALE = 0, 1, 2, 3
"""The levels of ``diagnostic_msgs/DiagnosticStatus``, as ints (the message holds a byte)."""
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}
TOPIC = '/diagnostics'
PERIOD_S = 1.0
"""Seconds between two DiagnosticArrays (diagnostic_updater's default rate, 1 Hz)."""


def fmt(value) -> str:
    """A value as the text of a KeyValue: 4 significant digits, ``-`` for None."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return f'{value:.4g}' if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, sort_keys=isinstance(value, dict))
    return str(value)


class Status:
    """What one task reports: a level with a message, and key/value pairs (in order)."""

    def __init__(self):
        """Start at OK with no message and no values."""
        self.level = OK
        self.message = ''
        self.values: dict[str, str] = {}

    def summary(self, level: int, message: str) -> None:
        """Set the level and the message."""
        self.level, self.message = int(level), message

    def merge(self, level: int, message: str) -> None:
        """Keep the worse level; join the messages of the worst level (mergeSummary's rule)."""
        level = int(level)
        if level > self.level or not self.message:
            self.level, self.message = max(level, self.level), message
        elif level == self.level > OK and message:
            self.message = f'{self.message}; {message}'

    def add(self, key: str, value) -> None:
        """Add (or replace) the value ``key``, formatted by :func:`fmt`."""
        self.values[str(key)] = fmt(value)

    def to_msg(self, name: str, hardware_id: str) -> DiagnosticStatus:
        """The DiagnosticStatus message of this status."""
        return DiagnosticStatus(
            level=bytes([self.level]), name=name, message=self.message,
            hardware_id=hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in self.values.items()])


class RateMeter:
    """Counts events; ``rate()`` is events per second since the previous ``rate()`` call.

    ``clock`` returns seconds (default: ``time.monotonic``). ``age()`` is the time since the
    newest event (None before the first one).
    """

    def __init__(self, clock=time.monotonic):
        """Start the first window now."""
        self.clock = clock
        self.count = 0
        self.last: float | None = None
        self._since = clock()
        self._n = 0

    def tick(self, n: float = 1) -> None:
        """Count ``n`` events (a sim-time step or a number of training steps count too)."""
        self.count += n
        self._n += n
        self.last = self.clock()

    def rate(self) -> float | None:
        """Events per second since the previous call (None for an empty window)."""
        now = self.clock()
        dt, n = now - self._since, self._n
        self._since, self._n = now, 0
        return n / dt if dt > 0 else None

    def age(self) -> float | None:
        """Seconds since the newest event, or None when there was none."""
        return None if self.last is None else self.clock() - self.last


class Deltas:
    """How much each counter grew since the previous call."""

    def __init__(self):
        """No previous values: the first call reports the counters themselves."""
        self._last: dict = {}

    def __call__(self, counts: dict) -> dict:
        """``{key: counts[key] - previous}`` for every key of ``counts`` (non-zero or not)."""
        out = {k: v - self._last.get(k, 0) for k, v in counts.items()}
        self._last = dict(counts)
        return out


class Diagnostics:
    """A node's diagnostic updater (see the module docstring).

    ``node``'s name prefixes each status (with its namespace: ``robot1/sim_robot``, so that
    two namespaced robots' statuses on the global /diagnostics differ); ``hardware_id``
    names the device it is about (the robot, or the host for nodes that serve no robot).
    ``start=False`` creates no timer: the owner calls :meth:`publish` (tests call
    :meth:`collect`).
    """

    def __init__(self, node, hardware_id: str, period_s: float = PERIOD_S,
                 start: bool = True):
        """Create the ``/diagnostics`` publisher and, with ``start``, its steady timer."""
        self.node = node
        self.prefix = node.get_fully_qualified_name().lstrip('/')
        self.hardware_id = hardware_id
        self.tasks: list[tuple[str, object]] = []
        self.pub = node.create_publisher(DiagnosticArray, TOPIC, STATE_QOS)
        self.timer = None
        if start:
            self.timer = node.create_timer(period_s, self.publish,
                                           clock=Clock(clock_type=ClockType.STEADY_TIME))

    def add(self, what: str, task) -> None:
        """Register ``task(status)``, reported as ``<node name>: <what>``."""
        self.tasks.append((what, task))

    def collect(self) -> DiagnosticArray:
        """Run every task and return the DiagnosticArray (stamped with the node clock)."""
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        for what, task in self.tasks:
            status = Status()
            try:
                task(status)
            except Exception as err:  # noqa: BLE001 - a broken task reports, never stops
                status.summary(ERROR, f'diagnostic task failed: {type(err).__name__}: {err}')
            arr.status.append(status.to_msg(f'{self.prefix}: {what}', self.hardware_id))
        return arr

    def publish(self) -> None:
        """Collect and publish one DiagnosticArray."""
        self.pub.publish(self.collect())


def level_of(msg_level) -> int:
    """The int level of a received DiagnosticStatus (its ``level`` is a byte)."""
    return msg_level[0] if isinstance(msg_level, (bytes, bytearray)) else int(msg_level)
