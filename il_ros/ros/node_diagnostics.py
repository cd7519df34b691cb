"""What each long-running node reports on ``/diagnostics`` (see il_ros/ros/diagnostics.py).

One class per node, built by the node at the end of its constructor; each reads what the
node already tracks (the same figures as its JSON ``~/status`` or its log) and reports it
once a second. Counts "in the last period" are since the previous report. Every class takes
``clock`` (seconds, default ``time.monotonic``) and ``start`` (False: no timer; tests call
``diag.collect()``). The statuses, their levels and values are listed in docs/ros-network.md,
"Diagnostics".
"""
from __future__ import annotations

from itertools import islice
import os
from pathlib import Path
import shutil
import socket
import time

from il_ros import keys
from il_ros.control.telemetry import recent_median
from il_ros.ros.diagnostics import Deltas, Diagnostics, ERROR, OK, RateMeter, WARN

DISK_WARN_BYTES = 1 << 30
"""Free bytes below which the recorder's disk status warns (1 GiB: minutes of camera bags)."""
DISK_ERROR_BYTES = 100 << 20
"""Free bytes below which the recorder's disk status is an error (100 MiB)."""
QUEUE_WARN_FRACTION = 0.8
"""A writer queue this full warns before messages are dropped."""
QUIET_WARN_S = 5.0
"""Seconds without the input a node lives on (/sim/state, joint states) before it warns."""
RTF_WARN_FRACTION = 0.9
"""sim_robot warns when it runs slower than this fraction of its real_time_factor."""


def _round(value, digits: int = 2):
    return None if value is None else round(float(value), digits)


class RecorderDiagnostics:
    """``recorder: episode``, ``recorder: disk``, ``recorder: topics``.

    - episode: idle or the episode recording, the writer queue's depth and size, messages
      dropped because it was full (WARN), a queue at least :data:`QUEUE_WARN_FRACTION` full
      (WARN), a failed writer (ERROR); in auto mode the episodes recorded so far.
    - disk: free space where ``output_dir`` is (or would be created): WARN below
      :data:`DISK_WARN_BYTES`, ERROR below :data:`DISK_ERROR_BYTES`.
    - topics: per topic, the wall-clock message rate over the last period, the messages
      received and the seconds since the newest one. A configured topic that has sent
      nothing ``expected_topics_timeout_s`` after the start (silent) or nothing for that long
      (late) is a WARN naming it. Discovered topics (no ``topics`` parameter) come and go
      with their publishers and never warn.
    """

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the tasks on a :class:`Diagnostics` of ``node`` (hardware id: the host)."""
        self.node, self.clock = node, clock
        self.started = clock()
        self.meters: dict[str, RateMeter] = {}
        self.auto = None                    # the recorder's AutoEpisodes, in auto mode
        self.disk_warn_bytes, self.disk_error_bytes = DISK_WARN_BYTES, DISK_ERROR_BYTES
        self.diag = Diagnostics(node, socket.gethostname(), start=start)
        self.diag.add('episode', self.episode)
        self.diag.add('disk', self.disk)
        self.diag.add('topics', self.topics)

    def on_msg(self, topic: str) -> None:
        """Count one message received on ``topic`` (recording or not)."""
        meter = self.meters.get(topic)
        if meter is None:
            meter = self.meters[topic] = RateMeter(self.clock)
        meter.tick()

    def episode(self, status) -> None:
        """The episode being recorded and its writer queue."""
        node, ep = self.node, self.node.episode
        if self.auto is not None:
            status.add('auto_episodes', f'{self.auto.recorded}/{self.auto.total} '
                       f'({self.auto.state})')
        status.add('last_result', node.last_result or None)
        status.add('recording', ep is not None)
        if ep is None:
            status.summary(OK, 'idle')
            return
        depth, drops = ep.queue_depth(), sum(ep.drop_counts().values())
        status.add('episode', ep.name)
        status.add('messages', sum(ep.counts().values()))
        status.add('queue_depth', depth)
        status.add('queue_size', ep.queue_size)
        status.add('dropped', drops)
        if ep.error is not None:
            status.summary(ERROR, f'{ep.name}: writing failed: {ep.error}')
        elif drops:
            status.summary(WARN, f'{ep.name}: {drops} messages dropped (writer queue full, '
                           f'queue_size={ep.queue_size})')
        elif depth >= QUEUE_WARN_FRACTION * ep.queue_size:
            status.summary(WARN, f'{ep.name}: writer queue {depth}/{ep.queue_size} full')
        else:
            status.summary(OK, f'recording {ep.name}')

    def disk(self, status) -> None:
        """Free space on the file system of ``output_dir``."""
        path = Path(os.path.abspath(Path(self.node.param('output_dir')).expanduser()))
        while not path.exists() and path != path.parent:
            path = path.parent               # not created yet: the folder it would be in
        usage = shutil.disk_usage(path)
        free_gib = usage.free / (1 << 30)
        status.add('path', str(path))
        status.add('free_gib', round(free_gib, 2))
        status.add('free_percent',
                   round(100.0 * usage.free / usage.total, 1) if usage.total else None)
        text = f'{free_gib:.2f} GiB free in {path}'
        if usage.free < self.disk_error_bytes:
            status.summary(ERROR, f'disk nearly full: {text}')
        elif usage.free < self.disk_warn_bytes:
            status.summary(WARN, f'disk space low: {text}')
        else:
            status.summary(OK, text)

    def topics(self, status) -> None:
        """Per-topic rates; WARN for configured topics that are silent or late."""
        node = self.node
        configured = list(node.configured_topics)
        timeout = float(node.param('expected_topics_timeout_s'))
        up = self.clock() - self.started
        silent, late = [], []
        for topic in sorted(set(configured) | set(self.meters) | set(node.subscribed)):
            meter = self.meters.get(topic)
            rate = meter.rate() if meter is not None else None
            age = meter.age() if meter is not None else None
            status.add(f'{topic} rate_hz', _round(rate) or 0.0)
            status.add(f'{topic} messages', meter.count if meter is not None else 0)
            status.add(f'{topic} last_message_s', _round(age))
            if topic not in configured:
                continue
            if age is None and up > timeout:
                silent.append(topic)
            elif age is not None and age > timeout:
                late.append(f'{topic} ({age:.0f} s)')
        status.summary(OK, f'{len(self.meters)} topics received')
        if silent:
            status.merge(WARN, f'silent (no message yet): {", ".join(silent)}')
        if late:
            status.merge(WARN, f'late (no message for > {timeout:g} s): {", ".join(late)}')


class ControllerDiagnostics:
    """``controller: control`` (source, HOLD reasons, faults) and ``controller: timing``.

    - control: OK while the policy or the human drives; WARN while it HOLDs (the message
      names the reason); ERROR while a fault is latched or when the policy's inference (or
      the tick itself) failed in the last period. A refused checkpoint adds a WARN.
    - timing: tick latency (p50, max) and inference latency (p50) over the last period's
      ticks and plans, deadline misses, late plans, underruns; WARN when a deadline was
      missed in the last period.
    """

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the tasks (hardware id: the robot's name)."""
        self.node, self.clock = node, clock
        self.errors, self.holds, self.timing_counts = Deltas(), Deltas(), Deltas()
        self.diag = Diagnostics(node, node.robot.name, start=start)
        self.diag.add('control', self.control)
        self.diag.add('timing', self.timing)

    def control(self, status) -> None:
        """Who drives, why it HOLDs, faults and inference errors."""
        loop = self.node.loop
        d = self.errors({k: loop.counts[k] for k in ('worker_errors', 'tick_errors')})
        holds = {k: v for k, v in self.holds(dict(loop.telemetry.hold_reasons)).items() if v}
        status.add('enabled', loop.enabled)
        status.add('source', loop.last_source)
        status.add('reason', loop.last_reason)
        status.add('hold_reasons', holds)
        status.add('checkpoint', loop.policy_name)
        status.add('loading', loop.slot.loading if loop.slot is not None else None)
        status.add('fault', loop.fault['reason'] if loop.fault else None)
        status.add('takeover_latched', loop.arbiter.latched)
        for k in ('worker_errors', 'tick_errors', 'faults', 'refused', 'swaps', 'handovers'):
            status.add(k, loop.arbiter.handovers if k == 'handovers' else loop.counts[k])
        status.add('last_error', loop.last_error or None)
        if loop.fault:
            status.summary(ERROR, f'FAULT {loop.fault["reason"]}: {loop.fault["message"]} '
                           '(HOLD until ~/reset)')
        elif d['worker_errors'] or d['tick_errors']:
            what = []
            if d['worker_errors']:
                what.append(f'policy inference failed {d["worker_errors"]} times')
            if d['tick_errors']:
                what.append(f'{d["tick_errors"]} control ticks failed')
            status.summary(ERROR, f'{", ".join(what)} in the last period (HOLD)')
        elif loop.last_source == keys.SOURCE_HOLD:
            status.summary(WARN, f'HOLD: {loop.last_reason}')
        else:
            status.summary(OK, f'{loop.last_source} drives')
        if loop.last_error:
            status.merge(WARN, loop.last_error)

    def timing(self, status) -> None:
        """Latency and deadline misses over the last period."""
        loop = self.node.loop
        d = self.timing_counts({k: loop.counts[k] for k in (
            'ticks', 'missed_deadlines', 'late_plans', 'underruns')})
        n = d['ticks']
        recent = list(islice(reversed(loop.telemetry.latency_ms), n))
        status.add('rate_hz', loop.cfg.rate_hz)
        status.add('ticks', n)
        status.add('tick_latency_ms_p50', recent_median(loop.telemetry.latency_ms, n)
                   if n else None)
        status.add('tick_latency_ms_max', _round(max(recent)) if recent else None)
        status.add('inference_ms_p50', recent_median(loop.worker.plan_hist))
        status.add('missed_deadlines', d['missed_deadlines'])
        status.add('missed_deadlines_total', loop.counts['missed_deadlines'])
        status.add('late_plans', d['late_plans'])
        status.add('underruns', d['underruns'])
        status.add('dropped_actions', loop.queue.dropped)
        status.add('inference_backlog', loop.worker.backlog)
        if d['missed_deadlines']:
            status.summary(WARN, f'{d["missed_deadlines"]} of {n} ticks missed their '
                           f'deadline ({1e3 / loop.cfg.rate_hz:.0f} ms)')
        elif n == 0:
            status.summary(WARN, 'no control tick ran in the last period')
        else:
            status.summary(OK, f'{n} ticks, latency p50 '
                           f'{recent_median(loop.telemetry.latency_ms, n)} ms')


class SimRobotDiagnostics:
    """``sim_robot: simulation``: real-time factor, lag, commands.

    The measured real-time factor is sim seconds per wall second over the last period; the
    lag is how far the sim is behind its wall-clock target now (not in lockstep), and
    ``lag_dropped_s`` the sim time never simulated after stalls (the sim catches up at most
    0.25 s at once). WARN when lag was dropped in the last period, when it ran slower than
    :data:`RTF_WARN_FRACTION` of ``real_time_factor`` (not in lockstep, where that is a
    cap), or when commands were malformed.
    """

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the task (hardware id: the robot's name); ``clock``: the node's wall."""
        self.node, self.clock = node, clock
        self.sim = RateMeter(clock)
        self.last_sim_time = node.sim_time
        self.deltas = Deltas()
        self.deltas({'lag': node.lag_forgiven, 'bad': node.bad_commands})
        self.diag = Diagnostics(node, node.robot.name, start=start)
        self.diag.add('simulation', self.simulation)

    def simulation(self, status) -> None:
        """Real-time factor, lag and command counts."""
        n = self.node
        self.sim.tick(n.sim_time - self.last_sim_time)
        self.last_sim_time = n.sim_time
        rtf = self.sim.rate()
        d = self.deltas({'lag': n.lag_forgiven, 'bad': n.bad_commands})
        paced = n.rtf > 0 and not n.lockstep    # in lockstep the factor is only a cap
        lag = (max(0.0, n.sim_start + (self.clock() - n.wall_start) * n.rtf - n.sim_time)
               if paced else None)
        status.add('real_time_factor', _round(rtf, 3))
        status.add('real_time_factor_requested', n.rtf)
        status.add('lag_s', _round(lag, 3))
        status.add('lag_dropped_s', _round(n.lag_forgiven, 3))
        status.add('lockstep', n.lockstep)
        status.add('sim_time_s', _round(n.sim_time, 3))
        status.add('episode', n.episode)
        status.add('bad_commands', n.bad_commands)
        status.add('stale_commands', n.stale_commands)
        status.add('last_command_age_s', None if n.last_command_t is None
                   else _round(n.sim_time - n.last_command_t, 3))
        status.summary(OK, f'x{rtf:.2f} real time' if rtf is not None else 'starting')
        if d['lag'] > 0:
            status.merge(WARN, f'fell behind: {d["lag"]:.2f} s of sim time dropped in the '
                         'last period (overloaded machine?)')
        elif (not n.lockstep and rtf is not None and n.rtf > 0
              and rtf < RTF_WARN_FRACTION * n.rtf):
            status.merge(WARN, f'running at x{rtf:.2f} of x{n.rtf:g} real time')
        if d['bad']:
            status.merge(WARN, f'{d["bad"]} malformed commands ignored in the last period')


class TrainerDiagnostics:
    """``trainer: training``: state, step, steps per second, loss, success.

    ERROR when the run failed (the message is its one-line reason), WARN when it stopped
    early or has warnings (skipped dataset episodes), otherwise OK.
    """

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the task (hardware id: the host)."""
        self.node = node
        self.steps = RateMeter(clock)
        self.last_step = 0
        self.diag = Diagnostics(node, socket.gethostname(), start=start)
        self.diag.add('training', self.training)

    def training(self, status) -> None:
        """The run's state and progress (the ~/status figures)."""
        s = self.node.status
        step = int(s.get('step') or 0)
        self.steps.tick(max(0, step - self.last_step))   # a new run starts again at 0
        self.last_step = step
        rate = self.steps.rate()
        state = s['state']
        for k in ('state', 'step'):
            status.add(k, s[k])
        status.add('steps_per_s', _round(rate))
        for k in ('loss', 'success', 'best_success', 'eta_s', 'run_dir', 'best_checkpoint'):
            status.add(k, s.get(k))
        status.add('warnings', len(s.get('warnings') or []))
        if state == 'failed':
            status.summary(ERROR, f'failed: {s.get("message")}')
        elif state == 'stopped':
            status.summary(WARN, s.get('message') or 'stopped')
        elif state in ('starting', 'training'):
            status.summary(OK, f'{state}: step {step}'
                           + (f', {rate:.1f} steps/s' if rate else ''))
        else:
            status.summary(OK, s.get('message') or state)
        if s.get('warnings'):
            status.merge(WARN, f'{len(s["warnings"])} warnings, last: {s["warnings"][-1]}')


class SupervisorDiagnostics:
    """``supervisor: gate``: armed or not, in control, takeovers; WARN without /sim/state."""

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the task (hardware id: the robot's name)."""
        self.node, self.clock = node, clock
        self.started = clock()
        self.states = RateMeter(clock)
        self.last_steps = 0
        self.diag = Diagnostics(node, node.robot.name, start=start)
        self.diag.add('gate', self.gate)

    def gate(self, status) -> None:
        """The gate's state and counts (the ~/status figures)."""
        counts = self.node.sup.counts()
        if counts['steps'] > self.last_steps:
            self.states.tick(counts['steps'] - self.last_steps)
        self.last_steps = counts['steps']
        status.add('active', self.node.active)
        for k, v in counts.items():
            status.add(k, v)
        status.add('states_per_s', _round(self.states.rate()))
        for k, v in self.node.last.items():
            status.add(k, _round(v, 4) if isinstance(v, float) else v)
        if counts['in_control']:
            status.summary(OK, f'in control ({self.node.last.get("reason") or "takeover"})')
        else:
            status.summary(OK, 'armed' if self.node.active else 'disarmed')
        quiet = _quiet(self.states, self.clock() - self.started)
        if quiet:
            status.merge(WARN, f'no {self.node.resolve_topic_name(keys.TOPIC_SIM_STATE)} {quiet}')


class TeleopDiagnostics:
    """``teleop: input``: mode, commands sent and their rate, the deadman.

    WARN when the input it lives on is missing: no ``/sim/state`` answered for
    :data:`QUIET_WARN_S` (scripted), no joint state yet (human modes: input is ignored).
    """

    def __init__(self, node, clock=time.monotonic, start: bool = True):
        """Register the task (hardware id: the robot's name)."""
        self.node, self.clock = node, clock
        self.started = clock()
        self.commands = RateMeter(clock)
        self.diag = Diagnostics(node, node.robot.name, start=start)
        self.diag.add('input', self.input)

    def on_command(self) -> None:
        """Count one published command."""
        self.commands.tick()

    def input(self, status) -> None:
        """Mode, command rate, and the input it lives on."""
        n = self.node
        status.add('mode', n.mode)
        status.add('commands', self.commands.count)
        status.add('commands_per_s', _round(self.commands.rate()))
        if n.mode == 'scripted':
            status.add('episode', n.episode)
            status.summary(OK, f'scripted expert, episode {n.episode}')
            quiet = _quiet(self.commands, self.clock() - self.started)
            if quiet:
                status.merge(WARN, f'no {n.resolve_topic_name(keys.TOPIC_SIM_STATE)} answered '
                                   f'{quiet}')
            return
        held = bool(n.was_active)
        status.add('space', n.space)
        status.add('deadman_held', held)
        status.add('joint_state_received', n.latest_arm is not None)
        status.summary(OK, 'in control (deadman held)' if held else 'idle (deadman released)')
        if n.latest_arm is None:
            status.merge(WARN, f'no joint state on '
                         f'{n.resolve_topic_name(n.robot.joint_states.topic)} yet: input is '
                         'ignored')


def _quiet(meter: RateMeter, up_s: float) -> str:
    """Why ``meter``'s input counts as missing ('' when it does not)."""
    age = meter.age()
    if age is None:
        return f'yet ({up_s:.0f} s)' if up_s > QUIET_WARN_S else ''
    return f'for {age:.0f} s' if age > QUIET_WARN_S else ''
