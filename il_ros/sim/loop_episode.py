"""Sim episodes driven through the deployed control loop, in process (ROS-free).

:class:`SimLoop` runs a policy on a :class:`~il_ros.sim.env.SimEnv` through the same
:class:`~il_ros.control.loop.ControlLoop` the controller node runs, so in-process evaluation
(:mod:`il_ros.training.evaluate`) and the DAgger experiment (``bench/dagger_experiment.py``)
get the node's safety filter, step limits, chunk guard, action queue, plan-ahead rule and
takeover arbiter. What differs from the node is only the transport and the clock:

- the loop is enabled, at the env's control rate, with the node's defaults
  (:class:`~il_ros.control.loop_types.LoopConfig`) unless a config is given; its limits are
  the env's ``action_low``/``action_high``;
- its worker is a :class:`NextTickWorker`: an inline worker (deterministic, the same on any
  machine) whose plans arrive when the node's worker thread's do. A plan made ahead (the
  queue still had actions) is collected at the next tick, so, as on the node, a chunk
  planned ahead runs from its second action. A plain
  :class:`~il_ros.control.worker.InlineWorker` (``worker=InlineWorker()``) hands every plan
  over in the tick that asked for it and runs chunks from their first action: with the
  auto plan-ahead rule (replan when fewer than 3 actions are queued) a Ta = 4 policy then
  executes actions 0-1 of each chunk where the node executes 1-2, and the demo's lift
  checkpoint succeeded in 37 of 50 episodes instead of the node's 45 (46 with this worker;
  docs/benchmarks.md);
- the policy sees the env's cameras as the controller sees the robot's
  (:class:`~il_ros.sim.camera_feed.CameraFeed`): each frame sent through its camera's
  encoding (JPEG included), fitted to the checkpoint's image size with its preprocessing,
  and repeated while a camera slower than the loop has no new sample;
- tick ``k`` of an episode runs at ``now = k * control_dt`` with observations of age 0; the
  measured positions are the env's joint positions mapped by name into command order (NaN
  for a value no joint measures: the gripper), as the node maps a JointState;
- every episode starts with ``loop.restart(seed)``: a fresh tick grid and arbiter, the
  safety filter's last command forgotten, the policy reset with ``seed``.

Each tick's command steps the env. A HOLD tick steps it with the HOLD command (the last
command sent); a tick that publishes nothing keeps the env's current actuator targets for
one control period, as the sim robot holds its last command.

An episode ends as :func:`~il_ros.sim.runner.run_episode`'s do (success, a task failure,
the step limit), or at the tick where the loop latches a fault: a failure named
``fault_<kind>`` (``fault_nonfinite_chunk`` for a NaN from the policy,
``fault_invalid_chunks`` after repeated rejected chunks or inference errors), since a
latched loop HOLDs until a reset that an episode never gets. The env is not stepped on
that tick.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import logging

import numpy as np

from il_ros.control.loop import ControlLoop
from il_ros.control.slot import robot_limits
from il_ros.control.loop_types import HumanInput, LoopConfig, Observation, TickResult
from il_ros.control.worker import InlineWorker
from il_ros.sim.camera_feed import CameraFeed
from il_ros.sim.runner import episode_result, EpisodeResult, judge, step_limit

FAULT_PREFIX = 'fault_'
"""Failures of episodes ended by a latched fault: ``fault_<kind>``."""

_LOG = logging.getLogger('il_ros.sim.loop')
_LOG.addHandler(logging.NullHandler())   # the counters are in the result; a caller may log


class NextTickWorker(InlineWorker):
    """An :class:`InlineWorker` whose plans arrive when a fast thread worker's do.

    Each job still runs at once, in the caller. A plan the loop waits for (its queue ran
    empty) is collected in the tick that asked for it; a plan it does not wait for (planned
    ahead, the queue still had actions) is collected at the next tick, as the node's
    :class:`~il_ros.control.worker.ThreadWorker` plan is: it finishes within the period but
    after that tick took its results, so the node executes the chunk from its second action.
    """

    def __init__(self):
        super().__init__()
        self._next: list[tuple] = []

    def submit(self, gen: int, policy, obs: dict | None, tick: int, plan: bool,
               reset=False) -> None:
        """Run the job now; its result is held back until waited for or the next tick."""
        n = len(self._done)
        super().submit(gen, policy, obs, tick, plan, reset)
        self._next += self._done[n:]
        del self._done[n:]

    def wait(self, gen: int, tick: int, deadline: float) -> None:
        """Release the held results now (the loop waits: the job is done by then)."""
        self._done += self._next
        self._next = []

    def take(self) -> list[tuple]:
        """Results released so far; held ones are released for the next call."""
        out = super().take()
        self._done, self._next = self._next, []
        return out

    def drain(self) -> None:
        """Drop every result, released or held (a new episode starts)."""
        self._done, self._next = [], []


def sim_loop_config(env, **settings) -> LoopConfig:
    """The loop's settings for ``env``: enabled, at its control rate, otherwise defaults."""
    return LoopConfig(**{'enabled': True, 'rate_hz': 1.0 / env.control_dt, **settings})


class SimLoop:
    """A :class:`ControlLoop` driving one sim env in process (see the module doc).

    Args:
        env: the :class:`~il_ros.sim.env.SimEnv` to run in (left open).
        policy: a Policy (``reset``/``observe``/``plan``) or anything with ``reset`` and
            ``act(obs)`` (wrapped with Ta = 1, as the loop does).
        cfg: loop settings (default :func:`sim_loop_config`); must be enabled at the env's
            rate.
        name: the policy's name in the loop's status.
        log: the loop's logger (default ``il_ros.sim.loop``, silent unless configured).
        worker: the inference worker (default :class:`NextTickWorker`).
        feed: what the policy sees of the env's cameras (default
            :meth:`CameraFeed.of(env, policy) <il_ros.sim.camera_feed.CameraFeed.of>`: the
            controller's view of the robot's cameras, fitted with the policy's preprocessing).
    """

    def __init__(self, env, policy, cfg: LoopConfig | None = None, name: str | None = None,
                 log: logging.Logger | None = None, worker=None, feed: CameraFeed | None = None):
        cfg = cfg if cfg is not None else sim_loop_config(env)
        if not cfg.enabled or abs(cfg.rate_hz * env.control_dt - 1.0) > 1e-9:
            raise ValueError(f'the loop must be enabled at the env rate {1 / env.control_dt:g} '
                             f'Hz, got enabled={cfg.enabled}, rate_hz={cfg.rate_hz:g}')
        self.env = env
        self.feed = feed if feed is not None else CameraFeed.of(env, policy)
        # the robot description's limits and step limits, as the controller node uses
        self.loop = ControlLoop(cfg, worker=worker if worker is not None else NextTickWorker(),
                                limits=robot_limits(env.robot), log=log or _LOG)
        self.loop.configure(list(env.action_names), list(env.joint_names))
        self.loop.set_policy(policy, name)
        self._substeps = max(1, int(round(env.control_dt / env.physics_dt)))
        self.fault_reasons: Counter = Counter()
        self.handovers = 0

    def measured(self) -> np.ndarray:
        """The env's joint positions in command order (NaN where no joint measures one)."""
        pos = self.env.joint_state()[0]
        index = {n: i for i, n in enumerate(self.env.joint_names)}
        return np.array([pos[index[n]] if n in index else np.nan
                         for n in self.env.action_names], np.float64)

    def run_episode(self, seed: int, max_steps: int | None = None,
                    human: Callable[[dict], HumanInput | None] | None = None,
                    on_tick: Callable[[dict, TickResult], None] | None = None
                    ) -> EpisodeResult:
        """Run one episode from ``seed`` through the loop and judge it (see the module doc).

        ``human(obs)``: the human's input for the tick about to run (None: nothing).
        ``on_tick(obs, result)``: called after every tick that stepped the env, with the
        observation the tick acted on (its images as the policy saw them: :attr:`feed`) and
        what the loop decided.
        """
        env, loop, feed = self.env, self.loop, self.feed
        feed.reset()
        obs = feed(env.reset(seed=seed), 0.0)
        getattr(loop.worker, 'drain', loop.worker.take)()   # no plan of the last episode
        loop.restart(seed)
        limit = step_limit(env, max_steps)
        steps, verdict, detail = 0, None, None
        while verdict is None:
            h = human(obs) if human is not None else None
            res = loop.tick(steps * env.control_dt,
                            Observation(frame=obs, age_s=0.0, measured=self.measured(),
                                        measured_age_s=0.0), h)
            if loop.fault is not None:
                kind = loop.fault['reason']
                self.fault_reasons[kind] += 1
                verdict, detail = (False, FAULT_PREFIX + kind), loop.fault['message']
                break
            if res.command is not None:
                nxt, ok, _ = env.step(res.command)
            else:                                   # nothing published: targets unchanged
                env.step_physics(self._substeps)
                nxt, ok = env.observe(), env.success()
            if on_tick is not None:
                on_tick(obs, res)
            steps += 1
            obs = feed(nxt, steps * env.control_dt)
            verdict = judge(env, steps, limit, ok)
        self.handovers += loop.arbiter.handovers     # restart() makes a new arbiter
        out = episode_result(env, seed, verdict[0], steps, verdict[1])
        out.detail = detail
        return out

    def stats(self) -> dict:
        """The loop's counters since it was made (JSON-able).

        'ticks', 'policy_ticks', 'human_ticks', 'hold_ticks', 'hold_reasons' ({reason:
        ticks}), 'safety' (the filter's statuses: ok, clamped, rate_limited, hold_*),
        'chunks' (the chunk guard: checked, clamped, truncated, rejected, and the rules
        broken), 'faults' (latched faults), 'fault_reasons', 'underruns', 'worker_errors',
        'handovers' (arbiter source changes) and 'tick_ms' (mean loop time per tick).
        """
        loop = self.loop
        c, tel = loop.counts, loop.telemetry
        lat = np.asarray(tel.latency_ms, float)
        return {'ticks': c['ticks'], 'policy_ticks': c['policy_ticks'],
                'human_ticks': c['human_ticks'], 'hold_ticks': c['hold_ticks'],
                'hold_reasons': dict(tel.hold_reasons), 'safety': dict(loop.safety.counts),
                'chunks': dict(loop.guard.counts), 'faults': c['faults'],
                'fault_reasons': dict(self.fault_reasons), 'underruns': c['underruns'],
                'worker_errors': c['worker_errors'], 'handovers': self.handovers,
                'tick_ms': round(float(lat.mean()), 3) if lat.size else None}

    def close(self) -> None:
        """Stop the loop's worker (the env stays open)."""
        self.loop.close()
