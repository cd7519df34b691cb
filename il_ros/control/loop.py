"""The control loop: one tick of deployed behaviour, ROS-free, with an injected clock.

The controller node (il_ros/ros/controller.py), in-process evaluation
(il_ros/training/evaluate.py) and the DAgger experiment (bench/dagger_experiment.py) all run
this loop, so they share its safety filter, step limits, action queue and handover.
``tick(now, observation, human)`` does, in order (docs/controller.md, "The tick"):

1. swap in a checkpoint the :class:`~il_ros.control.slot.PolicySlot` finished loading;
2. gate the observation: one older than ``watchdog_periods`` is never given to the policy
   (HOLD ``stale``); while enabled, one older than ``fault_periods`` latches a fault;
3. the :class:`~il_ros.control.arbiter.TakeoverArbiter` picks HUMAN, POLICY or HOLD; every
   entry into POLICY resets and re-primes the policy;
4. POLICY: the worker observes the frame and, when fewer than ``plan_ahead`` actions are
   queued, plans a chunk; each chunk passes the :class:`~il_ros.control.chunk_guard.ChunkGuard`
   before it is queued (a NaN latches a fault; ``max_invalid_chunks`` rejected chunks in a
   row latch one too); a tick with nothing queued waits at most ``max_wait_fraction`` of a
   period for the worker, then HOLDs;
5. the command passes the :class:`~il_ros.control.safety.SafetyFilter` (disabled, stale,
   invalid -> HOLD; clamp; step limit).

A latched fault HOLDs (the policy and the human alike) until :meth:`ControlLoop.reset`; the
status says why. Times: ``now`` is the caller's clock (the node clock, or steps x period in
process); latencies use ``clock`` (``time.perf_counter`` unless injected).
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np

from il_ros import keys
from il_ros.control.arbiter import Source, TakeoverArbiter
from il_ros.control.chunk_guard import ChunkGuard
from il_ros.control.chunks import ActionQueue
from il_ros.control.loop_types import (ActPolicy, command_limits, HumanInput, LoopConfig,
                                       make_guard, Observation, TickResult)
from il_ros.control.safety import SafetyConfig, SafetyFilter, Status
from il_ros.control.slot import robot_limits
from il_ros.control.telemetry import recent_median, Telemetry
from il_ros.control.worker import InlineWorker

class ControlLoop:
    """One robot's control loop (see the module doc)."""

    def __init__(self, cfg: LoopConfig, worker=None, slot=None, limits=None, log=None,
                 clock=time.perf_counter):
        self.cfg, self.period, self.clock = cfg, 1.0 / cfg.rate_hz, clock
        self.worker = worker if worker is not None else InlineWorker(clock)
        self.slot, self.limits = slot, limits or robot_limits()
        self.log = log or logging.getLogger('il_ros.control')
        self.arbiter = TakeoverArbiter(cfg.takeover_timeout_s, cfg.human_command_timeout_s)
        self.queue = ActionQueue(self.period, cfg.ensemble_k or None)
        self.telemetry = Telemetry(self.period, cfg.keep_ticks)
        self.counts = self.telemetry.counts
        self.enabled = cfg.enabled
        self.safety: SafetyFilter | None = None
        self.guard: ChunkGuard | None = None
        self.action_names: list[str] = []
        self.joint_names: list[str] = []
        self.robot = None
        self.policy = self.policy_name = self.policy_mtime = None
        self.on_robot = None           # called with the RobotSpec when the first policy loads
        self.on_swap = None            # called with the Loaded after each swap
        self.fault: dict | None = None
        self.last_error = ''
        self.gen, self.k, self.t_origin = 0, -1, None
        self.last_source, self.last_reason = keys.SOURCE_HOLD, 'starting'
        self.source_since, self.swap_tick = 0, None
        self._warned: dict[str, float] = {}
        self.reset_seed: int | None = None
        self.on_refused = None         # called with the path of a checkpoint refused at load
        self._reset_state(need_reset=True)

    # ------------------------------------------------------------------ set-up
    def check_actions(self, action_names: list[str], joint_names: list[str]) -> None:
        """Raise Refused unless the loop can drive these command values."""
        command_limits(self.cfg, action_names, joint_names, self.limits)

    def configure(self, action_names: list[str], joint_names: list[str]) -> None:
        """Build the safety filter and chunk guard for this command layout (raises Refused)."""
        lower, upper, step = command_limits(self.cfg, action_names, joint_names, self.limits)
        self.action_names, self.joint_names = list(action_names), list(joint_names)
        self.safety = SafetyFilter(SafetyConfig(
            lower=lower, upper=upper, max_step=step, watchdog_periods=self.cfg.watchdog_periods,
            allow_unlimited=self.cfg.allow_unlimited_step), enabled=self.enabled)
        self.guard = make_guard(self.cfg, self.safety, self.action_names, self.period)
        if self.slot is not None:
            self.slot.configured = list(action_names)
        self.log.info(f'command values {self.action_names}, limits {lower} .. {upper}, step '
                      f'limits {step}, chunk guard {self.cfg.chunk_policy}')

    def set_step(self, max_step: list) -> list[float]:
        """Change the step limits at run time (raises StepLimitError; the old ones stay)."""
        step = command_limits(self.cfg, self.action_names, self.joint_names, self.limits,
                              list(max_step))[2]
        self.cfg.max_step = list(max_step)
        if self.safety is not None:
            self.safety.set_step(step)
            self.guard = make_guard(self.cfg, self.safety, self.action_names, self.period)
        return step

    def unlimited_step(self) -> list[str]:
        """Names of the command values without a step limit (``inf``)."""
        return [] if self.safety is None else [self.action_names[i]
                                               for i in self.safety.unlimited]

    def set_policy(self, policy, name: str | None = None) -> None:
        """Make ``policy`` the running one now (it is re-primed by the next POLICY ticks).

        The old policy's queued actions run until the new one's first chunk arrives.
        """
        if not hasattr(policy, 'plan'):
            policy = ActPolicy(policy)
        self.policy, self.policy_name = policy, name
        self.gen += 1
        self.inflight.clear()
        self.clear_on_chunk = True
        self.swap_tick = self.k

    def swap_in(self) -> None:
        """Swap in a checkpoint the slot has loaded (a node calls it before building a frame)."""
        if self.slot is None:
            return
        loaded, failed = self.slot.take()
        for path, message in failed:
            self.refuse(message + ('; the running policy keeps running' if self.policy
                                   else '; HOLD'))
            if self.on_refused is not None:
                self.on_refused(path)
        if loaded is None:
            return
        first = self.robot is None
        if first:
            from il_ros.models.policy_config import RobotSpec
            d = loaded.expect.to_dict()
            d['joint_names'] = loaded.expect.joint_names or loaded.policy.spec.joint_names
            d['action_names'] = loaded.expect.action_names or loaded.policy.spec.action_names
            self.robot = self.slot.robot = RobotSpec.from_dict(d)
            if self.safety is None:
                self.configure(list(self.robot.action_names), list(self.robot.joint_names))
            if self.on_robot is not None:
                self.on_robot(self.robot)
        old = self.policy_name
        self.set_policy(loaded.policy, loaded.path)
        self.policy_mtime = loaded.mtime
        self.counts['swaps'] += 1
        self.last_error = ''
        cfg = loaded.policy.cfg
        self.log.info(f'policy {"loaded" if first else "swapped"} ({loaded.origin}): '
                      f'{loaded.path} (step {loaded.extra.get("step")}, {cfg.head["name"]} '
                      f'head, Ta {cfg.action_exec}, loaded in {loaded.load_s:.1f}s)'
                      + (f', replacing {old}' if old else ''))
        if self.on_swap is not None:
            self.on_swap(loaded)

    def refuse(self, message: str) -> None:
        """Report a refused checkpoint (the running policy keeps running)."""
        self.counts['refused'] += 1
        self.last_error = message
        self.log.error(message)

    # ------------------------------------------------------------------ commands
    def enable(self, on: bool) -> None:
        """Enable (the policy re-primes, HOLD starts from the measured pose) or disable."""
        if on:
            self._rearm('enabled')
        if on and not self.enabled:
            self.need_reset = True
            if self.safety is not None:
                self.safety.reset(None)
        self.enabled = on
        if self.safety is not None:
            self.safety.enabled = on

    def reset(self) -> None:
        """The reset service: clear a latched fault and a lapsed takeover.

        The policy re-primes and the last command is forgotten.
        """
        if self.fault is not None:
            self.log.info(f'reset: the latched fault ({self.fault["reason"]}) is cleared')
        self.fault = None
        self._rearm('reset')
        self.need_reset = True
        self.invalid_streak = 0
        if self.safety is not None:
            self.safety.reset(None)
        self.counts['resets'] += 1

    def restart(self, seed: int | None = None) -> None:
        """Start a new episode: a fresh tick grid, arbiter and policy state.

        ``seed`` seeds the policy's next reset (in-process evaluation).
        """
        self.reset()
        self.arbiter = TakeoverArbiter(self.cfg.takeover_timeout_s,
                                       self.cfg.human_command_timeout_s)
        self.k, self.t_origin = -1, None
        self.gen += 1                  # results of jobs from before the restart are ignored
        self._reset_state(need_reset=True)
        self.reset_seed = seed

    def heartbeat(self, t: float, held: bool = True) -> None:
        """A deadman message received at ``t`` (see TakeoverArbiter.heartbeat)."""
        self.arbiter.heartbeat(t, held)

    def human_command(self, command, t: float) -> None:
        """The human's newest command, received at ``t``."""
        self.arbiter.human_command(np.asarray(command, float), t)

    def _rearm(self, why: str) -> None:
        if self.arbiter.latched:
            self.arbiter.rearm()
            self.log.info(f'{why}: the HOLD latched by lapsed heartbeats is cleared')

    def _latch(self, kind: str, message: str) -> None:
        if self.fault is None:
            self.fault = {'reason': kind, 'message': message, 'tick': self.k}
            self.counts['faults'] += 1
            self.log.error(f'FAULT {kind}: {message}. HOLD until ~/reset')
        self.need_reset = True

    def warn(self, key: str, message: str, every_s: float = 2.0) -> None:
        """Log a warning at most once every ``every_s`` seconds per ``key``."""
        t = self.clock()
        if t - self._warned.get(key, -1e9) >= every_s:
            self._warned[key] = t
            self.log.warning(message)

    # ------------------------------------------------------------------ the tick
    def _reset_state(self, need_reset: bool) -> None:
        self.queue.clear()
        self.inflight: set[int] = set()
        self.primed = self.clear_on_chunk = self.stalled = self._reset_next = False
        self.need_reset = need_reset
        self.invalid_streak = 0

    def _tick_index(self, now: float) -> int:
        if self.t_origin is None:
            self.t_origin = now
        k = max(self.k + 1, int(math.floor((now - self.t_origin) / self.period + 0.5)))
        if now < self.t_origin + k * self.period:
            self.t_origin = now - k * self.period   # anchor the grid at the earliest tick
        return k

    def _reset_policy(self) -> None:
        self.gen += 1
        self._reset_state(need_reset=False)
        self._reset_next = True

    def _plan_ahead(self) -> int:
        if self.cfg.plan_ahead > 0:
            return int(self.cfg.plan_ahead)
        recent = self.worker.plan_s[-20:]
        latency = max(recent) if recent else self.period
        return int(math.ceil(latency / self.period)) + 2

    def _ta(self) -> int:
        return int(getattr(getattr(self.policy, 'cfg', None), 'action_exec', 1))

    def _collect(self, k: int, obs: Observation) -> None:
        for gen, tick, chunk, err, _dt in self.worker.take():
            if gen != self.gen:
                continue
            self.inflight.discard(tick)
            if err is not None:
                self.counts['worker_errors'] += 1
                self.warn('worker', f'policy inference failed: {err}: HOLD, re-priming')
                self.need_reset = True
                self._invalid(f'inference failed: {err}')
                continue
            if chunk is None:
                continue
            ref = self.safety.last_sent if self.safety.last_sent is not None else obs.measured
            verdict = self.guard.check(chunk.reshape(len(chunk), -1)[:self._ta()], ref)
            if verdict.broken:
                self.warn(f'chunk_{verdict.broken[0]}', f'chunk planned at tick {tick}: '
                          f'{", ".join(verdict.broken)}: {verdict.detail}')
            if verdict.nonfinite:
                self._latch('nonfinite_chunk', f'the policy planned non-finite actions '
                            f'({verdict.detail})')
                continue
            if verdict.actions is None:
                self._invalid(verdict.detail)
                continue
            self.invalid_streak = 0
            if tick + len(verdict.actions) <= k:
                self.counts['late_plans'] += 1
            if self.clear_on_chunk:
                self.queue.clear()
                self.clear_on_chunk = False
            self.queue.add_chunk(verdict.actions, tick * self.period)
            self.primed = True

    def _invalid(self, detail: str) -> None:
        self.invalid_streak += 1
        if self.invalid_streak >= self.cfg.max_invalid_chunks:
            self._latch('invalid_chunks', f'{self.invalid_streak} invalid chunks in a row '
                        f'(the last: {detail})')

    def _policy_step(self, obs: Observation, k: int, t_cb: float):
        if self.need_reset:
            self._reset_policy()
        w = self.worker
        if w.backlog > self.cfg.max_backlog:
            self.stalled = True
        if self.stalled:
            if w.backlog == 0:
                self.stalled = False
                self._reset_policy()
                self.warn('stall_end', 'inference caught up: policy reset and re-primed')
            else:
                self.warn('stall', f'inference {w.backlog} ticks behind: HOLD')
                return None, 'inference_backlog'
        left = self.queue.remaining(k * self.period)
        plan = left < self._plan_ahead() and not any(p + self._ta() > k for p in self.inflight)
        reset, self._reset_next = self._reset_next, False
        if reset and self.reset_seed is not None:
            reset, self.reset_seed = self.reset_seed, None
        w.submit(self.gen, self.policy, obs.frame, k, plan, reset=reset)
        if plan:
            self.inflight.add(k)
        if left == 0 and self.inflight:
            w.wait(self.gen, min(self.inflight), t_cb + self.cfg.max_wait_fraction * self.period)
        self._collect(k, obs)
        if self.fault is not None:
            return None, f'fault_{self.fault["reason"]}'
        if not self.primed:
            self.counts['priming_ticks'] += 1
            return None, 'priming'
        action = self.queue.pop(k * self.period)
        if action is None:
            self.counts['underruns'] += 1
            return None, 'underrun'
        return action, 'ok'

    def tick(self, now: float, obs: Observation, human: HumanInput | None = None,
             started: float | None = None) -> TickResult:
        """Run one tick at ``now`` (see the module doc); never raises for a policy's fault.

        ``started``: when the caller's tick began on ``clock`` (the node's timer callback,
        before it built the observation); the tick latency is measured from it.
        """
        t_cb = self.clock() if started is None else started
        self.swap_in()                 # swap_tick: the last tick before the swap
        k = self._tick_index(now)
        jitter, self.k = now - (self.t_origin + k * self.period), k
        if self.safety is not None:
            self._collect(k, obs)
        if human is not None:
            if human.command is not None:
                self.human_command(human.command, now)
            if human.held is not None:
                self.heartbeat(now, human.held)
        age, invalid = obs.age_s, obs.invalid
        if obs.frame is not None and not age <= self.cfg.watchdog_periods * self.period:
            invalid = 'stale'
            self.warn('stale', f'newest observation {age * 1e3:.0f} ms old (watchdog '
                      f'{self.cfg.watchdog_periods:g} periods): HOLD')
        frame = obs.frame if invalid is None else None
        if (self.enabled and math.isfinite(age)
                and age > self.cfg.fault_periods * self.period):
            self._latch('watchdog', f'observations {age * 1e3:.0f} ms old while enabled '
                        f'(fault_periods {self.cfg.fault_periods:g})')
        ready = (self.enabled and self.policy is not None and frame is not None
                 and self.safety is not None)
        lapses = self.arbiter.lapses
        decision = self.arbiter.decide(now, ready and self.fault is None)
        if self.arbiter.lapses != lapses:
            self.log.warning(
                f'heartbeats on the intervention topic stopped {self.arbiter.timeout_s:g} s ago '
                'without a hand-back (Bool false): the teleop may have crashed. HOLD until '
                '~/enable or ~/reset')
        source = decision.source if self.fault is None else Source.HOLD
        command = None
        reason = decision.reason or invalid or ('disabled' if not self.enabled else 'no_policy')
        cmd_age = age if invalid in ('stale', 'frozen') else obs.measured_age_s
        if source is Source.POLICY:
            if decision.reset_policy:
                self.need_reset = True
            command, reason = self._policy_step(obs, k, t_cb)
            cmd_age = age
        elif source is Source.HUMAN:
            command, reason, cmd_age = decision.command, 'human', obs.measured_age_s
            self.need_reset = True       # the policy re-primes when control comes back
        if self.fault is not None:
            command, reason = None, f'fault_{self.fault["reason"]}'
        out, status = (self.safety(command, cmd_age, self.period, obs.measured)
                       if self.safety is not None else (None, Status.HOLD_INVALID))
        send = self.safety is not None and self.safety.sendable and out is not None
        if status.is_hold or source is Source.HOLD:
            src = keys.SOURCE_HOLD
            if status is Status.HOLD_DISABLED:
                reason = 'disabled'
            elif status is Status.HOLD_INVALID and command is not None:
                reason = 'invalid_command'
            elif status is Status.HOLD_STALE and (source is Source.HUMAN or (
                    invalid is None and decision.reason is None and self.fault is None)):
                reason = 'stale'
        else:
            src = source.value
        if send:
            self.counts['published'] += 1
        latency = self.clock() - t_cb
        missed = decision.source is Source.POLICY and self.fault is None and (
            reason in ('underrun', 'inference_backlog') or jitter + latency > self.period)
        if src != self.last_source:
            self.source_since = k
        self.last_source, self.last_reason = src, reason
        self.telemetry.record(k, src, reason, jitter, latency, t_cb, missed,
                              self.queue.remaining(k * self.period))
        return TickResult(k, out if send else None, src, reason, status)

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """The loop's state and counters for ``~/status`` (starts a new timing window)."""
        w = self.worker
        return {
            'enabled': self.enabled, 'source': self.last_source, 'reason': self.last_reason,
            'source_since_tick': self.source_since, 'swap_tick': self.swap_tick,
            'checkpoint': self.policy_name,
            'loading': self.slot.loading if self.slot is not None else None,
            'last_error': self.last_error, 'rate_hz': self.cfg.rate_hz, 'tick': self.k,
            'generation': self.gen, 'queued': self.queue.remaining(self.k * self.period),
            'dropped_actions': self.queue.dropped, 'backlog': w.backlog,
            'plan_ms_p50': recent_median(w.plan_hist),
            'window': self.telemetry.window(),
            'safety': dict(self.safety.counts) if self.safety is not None else {},
            'chunks': dict(self.guard.counts) if self.guard is not None else {},
            'fault': self.fault,
            'handovers': self.arbiter.handovers, 'takeover_latched': self.arbiter.latched,
            'takeover_lapses': self.arbiter.lapses, 'unlimited_step': self.unlimited_step(),
            **self.counts,
        }

    def summary(self) -> dict:
        """All-time telemetry (tick and plan latency percentiles, misses, HOLD reasons)."""
        return {**self.telemetry.summary(list(self.worker.plan_hist)),
                'counts': dict(self.counts),
                'safety': dict(self.safety.counts) if self.safety is not None else {},
                'chunks': dict(self.guard.counts) if self.guard is not None else {},
                'dropped_actions': self.queue.dropped}

    def close(self) -> None:
        """Stop the worker."""
        self.worker.stop()

