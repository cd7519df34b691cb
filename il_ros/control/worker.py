"""Inference workers: where ``policy.reset/observe/plan`` run for the control loop (ROS-free).

A job observes one tick's frame (so a history and an LSTM advance one frame per tick) and,
when asked, plans a chunk whose first action is meant for that tick. Jobs run in submission
order. Two workers share one interface (:class:`ControlLoop <il_ros.control.loop.ControlLoop>`
uses either):

- :class:`ThreadWorker`: one plain thread, for a node whose executor must never run torch;
  results arrive later and the loop waits for them at most part of a period;
- :class:`InlineWorker`: runs each job at once in the caller, for in-process evaluation and
  deterministic tests (a plan is ready in the tick that asked for it).

A finished job is ``(gen, tick, chunk | None, error | None, seconds)``; ``gen`` is the
loop's policy generation, so results of a policy that was reset or swapped are ignored.
"""
from __future__ import annotations

from collections import deque
import queue
import threading
import time

import numpy as np


def _run_job(policy, obs, plan: bool, reset, clock) -> tuple:
    """Reset (``reset``: False, True or a seed), observe and plan; (chunk, error, seconds)."""
    t0 = clock()
    chunk = err = None
    try:
        if reset is not False:
            if reset is True:
                policy.reset()
            else:
                try:
                    policy.reset(seed=reset)
                except TypeError:
                    policy.reset()
        if obs is not None:
            policy.observe(obs)
        if plan:
            chunk = np.asarray(policy.plan(), np.float64)
    except Exception as e:  # noqa: BLE001 - reported to the tick, which HOLDs
        err = f'{type(e).__name__}: {e}'
    return chunk, err, clock() - t0


class _Results:
    """Finished jobs and plan timings, shared by both workers."""

    def __init__(self):
        self._cv = threading.Condition()
        self._done: list[tuple] = []
        self.backlog = 0
        self.plan_s: list[float] = []        # recent plan durations: the auto plan-ahead rule
        self.plan_hist: deque = deque(maxlen=100_000)   # every plan's ms, for telemetry

    def _finish(self, gen, tick, plan, chunk, err, dt, timed: bool) -> None:
        with self._cv:
            self.backlog -= 1
            if plan or err:
                self._done.append((gen, tick, chunk, err, dt))
                if plan and err is None:
                    if timed:
                        self.plan_s = (self.plan_s + [dt])[-50:]
                    self.plan_hist.append(round(dt * 1e3, 3))
            self._cv.notify_all()

    def take(self) -> list[tuple]:
        """Finished plans (and errors) since the last call."""
        with self._cv:
            out, self._done = self._done, []
        return out


class ThreadWorker(_Results):
    """Runs the jobs in one plain daemon thread (see the module doc)."""

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name='il_ros-policy', daemon=True)
        self._thread.start()

    def submit(self, gen: int, policy, obs: dict | None, tick: int, plan: bool,
               reset=False) -> None:
        """Queue a job: reset (False, True, or a seed), observe ``obs``, plan when ``plan``."""
        with self._cv:
            self.backlog += 1
        self._jobs.put((gen, policy, obs, tick, plan, reset))

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            gen, policy, obs, tick, plan, reset = job
            chunk, err, dt = _run_job(policy, obs, plan, reset, self.clock)
            self._finish(gen, tick, plan, chunk, err, dt, timed=True)

    def wait(self, gen: int, tick: int, deadline: float) -> None:
        """Block until a result of ``gen`` for ``tick`` or later is done, or ``deadline``.

        ``deadline`` is a value of this worker's clock.
        """
        with self._cv:
            while not any(g == gen and t >= tick for g, t, *_ in self._done):
                left = deadline - self.clock()
                if left <= 0:
                    return
                self._cv.wait(left)

    def stop(self) -> None:
        """Stop the thread after the queued jobs (waits up to 5 s)."""
        self._jobs.put(None)
        self._thread.join(timeout=5.0)


class InlineWorker(_Results):
    """Runs every job at once, in the caller (see the module doc).

    Its plans take no ticks, so the automatic plan-ahead rule sees no measured latency
    (``plan_s`` stays empty) and the loop behaves the same on any machine.
    """

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.clock = clock

    def submit(self, gen: int, policy, obs: dict | None, tick: int, plan: bool,
               reset=False) -> None:
        """Run the job now (see :meth:`ThreadWorker.submit`)."""
        with self._cv:
            self.backlog += 1
        chunk, err, dt = _run_job(policy, obs, plan, reset, self.clock)
        self._finish(gen, tick, plan, chunk, err, dt, timed=False)

    def wait(self, gen: int, tick: int, deadline: float) -> None:
        """Return at once: every submitted job is done."""

    def stop(self) -> None:
        """Nothing to stop."""
