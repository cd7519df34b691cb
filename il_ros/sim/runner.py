"""The episode runner: reset a sim env with a seed, step an act function, judge the episode.

The episode loop behind the scripted experts' measurement (:mod:`il_ros.sim.expert_eval`),
the demos of ``bench/dagger_experiment.py`` and ``il-ros eval --direct``; a policy evaluated
as deployed runs through the control loop instead (:mod:`il_ros.sim.loop_episode`), which
judges its episodes with :func:`judge` and :func:`episode_result` from here.
:func:`summarize_episodes` summarizes the episodes of any of them, and those that
``il-ros eval --transport ros`` runs over ROS 2.

An episode ends at the first of (checked in this order after every step):

- success: ``env.step`` reports it (``failure`` None);
- a task failure: ``env.failure()`` names it (e.g. ``'collision'`` on reach_around);
- the step limit: ``max_steps`` (at most the task's own limit) ran out: ``'timeout'``.

An act function that returns a non-finite action ends the episode before the env is stepped,
as a failure :data:`FAILURE_NONFINITE`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
import sys

import numpy as np

FAILURE_TIMEOUT = 'timeout'
"""Failure of an episode whose step limit ran out."""
FAILURE_NONFINITE = 'nonfinite_action'
"""Failure of an episode whose act function returned NaN or Inf."""
NO_MODE = 'none'
"""The mode of an episode on a task without modes (``env.info`` has none)."""


@dataclass
class EpisodeResult:
    """What happened in one episode."""

    seed: int
    """The env seed the episode was reset with."""
    success: bool
    steps: int
    """Control steps taken."""
    failure: str | None = None
    """None on success, else why it failed (a task failure, 'timeout', 'nonfinite_action',
    or through the control loop ``fault_<kind>``)."""
    mode: str = NO_MODE
    """The mode the episode ended in (e.g. reach_around's 'left'), or 'none'."""
    progress: int | None = None
    """Sub-goals reached on tasks that have them (path: waypoints in order), else None."""
    detail: str | None = None
    """Why a fault ended the episode (the control loop's message), else None."""

    def to_dict(self) -> dict:
        """Return the JSON-able form: seed, success, steps, failure, mode (and progress)."""
        out = {'seed': self.seed, 'success': self.success, 'steps': self.steps,
               'failure': self.failure, 'mode': self.mode}
        if self.progress is not None:
            out['progress'] = self.progress
        if self.detail is not None:
            out['detail'] = self.detail
        return out


def step_limit(env, max_steps: int | None = None) -> int:
    """Return the step limit of an episode: ``max_steps`` capped by the task's own limit."""
    return env.max_steps if max_steps is None else min(int(max_steps), env.max_steps)


def judge(env, steps: int, limit: int, success: bool | None = None
          ) -> tuple[bool, str | None] | None:
    """Return ``(success, failure)`` when the episode is over after ``steps`` steps, else None.

    ``success``: what ``env.step`` reported (default: ask ``env.success()``). Success wins over
    a failure; the limit is checked last (see the module doc).
    """
    if env.success() if success is None else success:
        return True, None
    failure = env.failure()
    if failure is not None:
        return False, failure
    if steps >= limit:
        return False, FAILURE_TIMEOUT
    return None


def episode_result(env, seed: int, success: bool, steps: int,
                   failure: str | None) -> EpisodeResult:
    """Return the result of the episode that ``env`` just ended (its mode and progress)."""
    info = env.info
    return EpisodeResult(seed=seed, success=bool(success), steps=int(steps), failure=failure,
                         mode=info.get('mode') or NO_MODE,
                         progress=int(info['progress']) if 'progress' in info else None)


def run_episode(env, act: Callable[[dict], np.ndarray], seed: int,
                max_steps: int | None = None,
                reset: Callable[[int], None] | None = None) -> EpisodeResult:
    """Run one episode of ``env`` from ``seed`` and judge it (see the module doc).

    Args:
        env: a :class:`~il_ros.sim.env.SimEnv`.
        act: observation dict -> (A,) action; called once per control step.
        seed: the env is reset with it.
        max_steps: step limit (default and cap: the task's ``env.max_steps``).
        reset: called with ``seed`` after the env reset and before the first ``act``, to
            reset whatever acts (a policy's history, an expert's plan).
    """
    obs = env.reset(seed=seed)
    if reset is not None:
        reset(seed)
    limit = step_limit(env, max_steps)
    steps, verdict = 0, None
    while verdict is None:
        action = np.asarray(act(obs), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(action)):
            verdict = False, FAILURE_NONFINITE
            break
        obs, ok, _ = env.step(action)
        steps += 1
        verdict = judge(env, steps, limit, ok)
    return episode_result(env, seed, verdict[0], steps, verdict[1])


def run_seeds(seeds: Iterable[int], run: Callable[[int], EpisodeResult],
              progress: str | None = None) -> list[EpisodeResult]:
    """Call ``run(seed)`` once per seed, in order; ``progress``: a tqdm bar's label.

    The bar shows the success rate so far.
    """
    seeds = list(seeds)
    bar = None
    if progress is not None:
        from tqdm import tqdm
        bar = tqdm(total=len(seeds), desc=progress, unit='ep', file=sys.stderr, leave=False)
    results: list[EpisodeResult] = []
    try:
        for seed in seeds:
            results.append(run(seed))
            if bar is not None:
                rate = sum(r.success for r in results) / len(results)
                bar.set_postfix(success=f'{rate:.2f}', refresh=False)
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return results


def run_episodes(env, act: Callable[[dict], np.ndarray], seeds: Iterable[int],
                 max_steps: int | None = None, reset: Callable[[int], None] | None = None,
                 progress: str | None = None) -> list[EpisodeResult]:
    """Run :func:`run_episode` once per seed, in order; ``progress``: a tqdm bar's label."""
    return run_seeds(seeds, lambda seed: run_episode(env, act, seed, max_steps, reset),
                     progress)


def summarize_episodes(task: str, seed: int, per_episode: list[dict], max_steps: int) -> dict:
    """Return the summary fields of a run of episodes.

    ``per_episode``: one :meth:`EpisodeResult.to_dict` per episode (any transport's).
    Returns 'task', 'episodes', 'seed' (the first), 'success_rate', 'successes',
    'mean_steps', 'mean_steps_success' (None without a success), 'max_steps', 'failures'
    ({reason: count}), 'failure_rates' ({reason: fraction}), 'modes' ({mode: count}),
    'modes_success', and on tasks with sub-goals 'mean_progress' (their mean: a graded
    measure where success is rare).
    """
    n = len(per_episode)
    prog = [e['progress'] for e in per_episode if e.get('progress') is not None]
    ok = [e for e in per_episode if e['success']]
    failures = Counter(e['failure'] for e in per_episode if not e['success'])
    return {
        'task': task, 'episodes': n, 'seed': seed,
        'success_rate': len(ok) / n, 'successes': len(ok),
        'mean_steps': float(np.mean([e['steps'] for e in per_episode])),
        'mean_steps_success': float(np.mean([e['steps'] for e in ok])) if ok else None,
        'max_steps': max_steps,
        'failures': dict(failures),
        'failure_rates': {r: c / n for r, c in failures.items()},
        'modes': dict(Counter(e['mode'] for e in per_episode)),
        'modes_success': dict(Counter(e['mode'] for e in ok)),
        **({'mean_progress': float(np.mean(prog))} if prog else {}),
    }
