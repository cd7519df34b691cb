"""The control loop's timing and safety behaviour, exactly, with a fake clock (no ROS, no DDS).

Each test drives :class:`il_ros.control.loop.ControlLoop` tick by tick at t = k * period and
checks what each tick publishes: the watchdog, takeover within one period, the lapse of
silent heartbeats, hot swaps without a gap, NaN to a latched fault, chunk rejection,
truncation and clamping, latch and reset, stale observations never reaching the policy, and
the telemetry (deadline misses, HOLD reasons).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from il_ros.control.loop import ControlLoop
from il_ros.control.loop_types import HumanInput, LoopConfig, Observation
from il_ros.control.safety import Status

P = 0.0625
"""The control period (16 Hz): a power of two, so tick times are exact."""
NAMES, JOINTS = ['a', 'b', 'g'], ['a', 'b']
HOME = np.array([0.0, 0.0, np.nan])       # the gripper value 'g' is measured by no joint


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Scripted:
    """A policy whose chunks come from ``make(n_observed)``; counts what it was given."""

    def __init__(self, make, ta=1, latency=0.0, clock=None):
        self.make, self.latency, self.clock = make, latency, clock
        self.cfg = type('Cfg', (), {'action_exec': ta})()
        self.seen, self.resets, self.plans = [], 0, 0

    def reset(self, seed=None):
        self.resets += 1

    def observe(self, obs):
        self.seen.append(obs['t'])

    def plan(self):
        self.plans += 1
        if self.clock is not None:
            self.clock.t += self.latency
        return np.atleast_2d(self.make(len(self.seen)))


def const(*values, n=1):
    return lambda _n: np.tile(np.array(values, float), (n, 1))


class DelayedWorker:
    """Finishes each job ``delay`` ticks after it was submitted (``advance`` per tick)."""

    def __init__(self, delay):
        self.delay, self.jobs, self.done = delay, [], []
        self.backlog, self.plan_s, self.plan_hist = 0, [], []

    def submit(self, gen, policy, obs, tick, plan, reset=False):
        if reset is not False:
            policy.reset()
        if obs is not None:
            policy.observe(obs)
        chunk = np.asarray(policy.plan(), float) if plan else None
        if plan:
            self.jobs.append((tick + self.delay, (gen, tick, chunk, None, 0.0)))

    def advance(self, k):
        self.done += [job for due, job in self.jobs if due <= k]
        self.jobs = [(due, job) for due, job in self.jobs if due > k]

    def take(self):
        out, self.done = self.done, []
        return out

    def wait(self, gen, tick, deadline):
        pass

    def stop(self):
        pass


def make_loop(policy=None, clock=None, worker=None, **cfg):
    cfg.setdefault('enabled', True)
    cfg.setdefault('rate_hz', 1 / P)
    loop = ControlLoop(LoopConfig(**cfg), worker=worker,
                       limits=lambda names: ([-1.0, -1.0, 0.0], [1.0, 1.0, 1.0]),
                       clock=clock or Clock())
    loop.configure(NAMES, JOINTS)
    if policy is not None:
        loop.set_policy(policy, 'p')
    return loop


def obs(k, age=0.0, measured=HOME, invalid=None):
    frame = None if invalid else {'t': k}
    return Observation(frame=frame, age_s=age, invalid=invalid, measured=measured,
                       measured_age_s=min(age, 0.0) if math.isfinite(age) else age)


def run(loop, ticks, first=0, **kw):
    """Tick ``ticks`` times from tick ``first``; kw: per-tick callables of k."""
    out = []
    for k in range(first, first + ticks):
        age = kw['age'](k) if 'age' in kw else 0.0
        human = kw['human'](k) if 'human' in kw else None
        if 'worker' in kw:
            kw['worker'].advance(k)
        out.append(loop.tick(k * P, obs(k, age), human))
    return out


def test_policy_drives_and_a_stale_observation_never_reaches_it():
    pol = Scripted(const(0.05, 0.0, 0.5))
    loop = make_loop(pol, watchdog_periods=3.0)
    r = run(loop, 3)
    assert [x.source for x in r] == ['policy'] * 3 and pol.seen == [0, 1, 2]
    # The newest observation is exactly 3 periods old: still fresh; a hair older: stale.
    r = loop.tick(3 * P, obs(3, age=3 * P))
    assert r.source == 'policy' and pol.seen[-1] == 3
    r = loop.tick(4 * P, obs(4, age=3 * P + 1e-9))
    assert (r.source, r.reason, r.safety) == ('hold', 'stale', Status.HOLD_STALE)
    assert pol.seen[-1] == 3, 'a stale frame was given to the policy'
    assert np.allclose(r.command, [0.05, 0.0, 0.5])          # HOLD repeats the last command
    r = loop.tick(5 * P, obs(5))                              # fresh again: re-primed
    assert r.source == 'policy' and pol.resets >= 1 and pol.seen[-1] == 5


def test_takeover_within_one_period_then_hand_back_resets_the_policy():
    pol = Scripted(const(0.0, 0.0, 0.5))
    loop = make_loop(pol)
    run(loop, 3)
    resets = pol.resets
    human = np.array([0.05, -0.05, 1.0])
    r = loop.tick(3 * P, obs(3), HumanInput(held=True, command=human))
    assert (r.source, r.reason) == ('intervention', 'human') and np.allclose(r.command, human)
    r = loop.tick(4 * P, obs(4), HumanInput(held=True, command=human))
    assert r.source == 'intervention'
    r = loop.tick(5 * P, obs(5), HumanInput(held=False))      # the explicit hand-back
    assert r.source == 'policy' and pol.resets == resets + 1  # re-primed at once
    assert loop.arbiter.handovers == 3


def test_silent_heartbeats_lapse_into_a_latched_hold_until_enable_or_reset():
    pol = Scripted(const(0.0, 0.0, 0.5))
    loop = make_loop(pol, takeover_timeout_s=6 * P, human_command_timeout_s=4 * P)
    human = np.array([0.05, 0.05, 0.0])
    run(loop, 2, human=lambda k: HumanInput(held=True, command=human))   # ticks 0 and 1
    # The last heartbeat and command came at tick 1: the command is fresh through tick 5,
    # the claim holds through tick 7 and lapses at tick 8.
    r = run(loop, 6, first=2)
    assert [x.source for x in r[:4]] == ['intervention'] * 4
    assert (r[4].source, r[4].reason) == ('hold', 'human_command_stale')   # tick 6
    assert (r[5].source, r[5].reason) == ('hold', 'human_command_stale')   # tick 7
    r = run(loop, 20, first=8)
    assert {(x.source, x.reason) for x in r} == {('hold', 'takeover_lapsed')}
    assert all(np.allclose(x.command, r[0].command) for x in r)   # frozen where it was
    loop.reset()
    assert loop.tick(28 * P, obs(28)).source == 'policy'


def test_hot_swap_has_no_gap_the_old_queue_bridges_the_new_plan():
    w = DelayedWorker(delay=2)
    old = Scripted(const(0.1, 0.0, 0.5, n=8), ta=8)
    loop = make_loop(old, worker=w, plan_ahead=3)
    r = run(loop, 12, worker=w)
    assert [x.reason for x in r[:2]] == ['priming'] * 2 and {x.source for x in r[2:]} == {
        'policy'}
    new = Scripted(const(0.2, 0.0, 0.5, n=8), ta=8)
    loop.set_policy(new, 'q')
    r = run(loop, 10, first=12, worker=w)
    assert {x.source for x in r} == {'policy'}, [x.reason for x in r]   # no HOLD, no gap
    cmds = [round(float(x.command[0]), 3) for x in r]
    assert cmds[0] == 0.1 and cmds[-1] == 0.2                 # old actions, then the new
    assert loop.counts['underruns'] == 0


def test_a_late_plan_underruns_and_counts_a_missed_deadline():
    clock = Clock()
    # Chunks of 4 that take a tick to plan, replanned only when the queue is empty: the
    # chunk planned at tick 0 covers ticks 0-3 (tick 0's action arrives late and is dropped);
    # tick 4 has nothing: an underrun, a missed deadline.
    w = DelayedWorker(delay=1)
    loop = make_loop(Scripted(const(0.0, 0.0, 0.5, n=4), ta=4), clock=clock, worker=w,
                     plan_ahead=1)
    r = run(loop, 6, worker=w)
    assert [x.reason for x in r] == ['priming', 'ok', 'ok', 'ok', 'underrun', 'ok']
    assert loop.counts['missed_deadlines'] == 1 and loop.counts['priming_ticks'] == 1
    assert loop.queue.dropped == 2 and loop.counts['late_plans'] == 0
    pol = Scripted(const(0.0, 0.0, 0.5), latency=0.0, clock=clock)
    # A tick that takes longer than a period misses its deadline even with an action.
    pol.latency = P + 0.01
    loop2 = make_loop(pol, clock=clock)
    loop2.tick(0.0, obs(0))
    assert loop2.counts['missed_deadlines'] == 1
    s = loop2.summary()
    assert s['missed_deadline_rate'] == 1.0
    assert s['tick_latency_ms']['max'] == pytest.approx((P + 0.01) * 1e3)


def test_nan_from_the_policy_latches_a_fault_until_reset_and_blocks_the_human():
    bad = {'on': False}
    pol = Scripted(lambda n: [np.nan, 0, 0] if bad['on'] else [0.05, 0.0, 0.5])
    loop = make_loop(pol)
    run(loop, 3)
    bad['on'] = True
    r = run(loop, 5, first=3)
    assert {(x.source, x.reason) for x in r} == {('hold', 'fault_nonfinite_chunk')}
    assert all(np.allclose(x.command, [0.05, 0.0, 0.5]) for x in r)   # the last good one
    assert loop.status()['fault']['reason'] == 'nonfinite_chunk'
    bad['on'] = False                        # the policy recovers; the latch does not
    human = np.array([0.1, 0.0, 0.0])
    r = run(loop, 5, first=8, human=lambda k: HumanInput(held=True, command=human))
    assert {x.source for x in r} == {'hold'} and loop.fault is not None
    assert loop.enable(True) is None and loop.fault is not None       # enable: still latched
    loop.tick(13 * P, obs(13), HumanInput(held=False))
    loop.reset()
    r = loop.tick(14 * P, obs(14))
    assert r.source == 'policy' and loop.fault is None and loop.counts['faults'] == 1


def test_a_jumping_chunk_is_rejected_then_latched_truncated_or_clamped():
    far = Scripted(const(0.9, 0.0, 0.5))                   # 0.9 rad from the pose at 0
    loop = make_loop(far, chunk_policy='reject', chunk_max_jump=[0.5], max_invalid_chunks=3)
    r = run(loop, 5)
    assert all(x.source == 'hold' for x in r)
    assert [x.reason for x in r] == ['priming'] * 2 + ['fault_invalid_chunks'] * 3
    assert not any(x.command is not None and abs(x.command[0]) > 0.1 for x in r)
    assert loop.guard.counts['jump'] == 3 and loop.guard.counts['rejected'] == 3
    # truncate: a chunk that is smooth for 3 actions then jumps keeps the 3.
    chunk = np.array([[0.0, 0, 0.5], [0.05, 0, 0.5], [0.1, 0, 0.5], [0.9, 0, 0.5]])
    loop = make_loop(Scripted(lambda n: chunk, ta=4), chunk_policy='truncate', plan_ahead=1,
                     chunk_max_velocity=[2.0])
    r = run(loop, 3)
    assert [round(float(x.command[0]), 2) for x in r] == [0.0, 0.05, 0.1]
    assert loop.guard.counts['truncated'] >= 1 and loop.fault is None
    # clamp: the same chunk is slewed at chunk_max_velocity * period = 0.125 per action.
    loop = make_loop(Scripted(lambda n: chunk, ta=4), chunk_policy='clamp', plan_ahead=1,
                     chunk_max_velocity=[2.0], max_step=[1.0])
    r = run(loop, 4)
    assert [round(float(x.command[0]), 3) for x in r] == [0.0, 0.05, 0.1, 0.225]


def test_watchdog_fault_latches_only_while_enabled():
    pol = Scripted(const(0.0, 0.0, 0.5))
    loop = make_loop(pol, fault_periods=10.0)
    run(loop, 2)
    r = run(loop, 12, first=2, age=lambda k: (k - 1) * P)       # the streams stopped at k=1
    assert [x.reason for x in r[:4]] == ['ok', 'ok', 'ok', 'stale']   # ages 1, 2, 3, 4 P
    assert [x.reason for x in r[9:]] == ['stale', 'fault_watchdog', 'fault_watchdog']
    assert r[-1].reason == 'fault_watchdog' and loop.fault['reason'] == 'watchdog'
    assert loop.tick(14 * P, obs(14)).reason == 'fault_watchdog'   # fresh data: still latched
    loop.reset()
    assert loop.tick(15 * P, obs(15)).source == 'policy'
    off = make_loop(pol, fault_periods=10.0, enabled=False)
    run(off, 30, age=lambda k: k * P)
    assert off.fault is None


def test_disabled_publishes_nothing_and_hold_reasons_are_summarised():
    loop = make_loop(Scripted(const(0.0, 0.0, 0.5)), enabled=False)
    r = run(loop, 4)
    assert all(x.command is None and x.reason == 'disabled' for x in r)
    loop.enable(True)
    run(loop, 2, first=4)
    loop.tick(6 * P, obs(6, invalid='no_image', age=math.inf))
    s = loop.summary()
    assert s['hold_reasons'] == {'disabled': 4, 'no_image': 1}
    assert s['counts']['policy_ticks'] == 2 and s['counts']['published'] == 3
