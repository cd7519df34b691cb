"""Measure a scripted expert in-process: success rate, episode length, failures, modes.

Usage::

    python -m il_ros.sim.expert_eval --task lift [--robot panda] --episodes 100 \
        [--noise 0.05] [--json]

Episode ``k`` uses env seed ``seed + k``; the expert is seeded once with ``seed`` (so its
mode draws, e.g. reach_around's shuffled left/right pairs, stay balanced over the run). A
run is reproducible as a whole. The episodes run and are judged in
:func:`il_ros.sim.runner.run_episodes`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from il_ros.robot import DEFAULT_ROBOT
from il_ros.sim.registry import make_env, make_expert, TASKS
from il_ros.sim.runner import run_episodes, summarize_episodes


def evaluate_expert(task: str, episodes: int = 100, noise: float = 0.0, seed: int = 0,
                    render: bool = False, progress: bool = False,
                    robot=DEFAULT_ROBOT) -> dict:
    """Run the expert of ``task`` for ``episodes`` episodes and summarize.

    Args:
        task: a name from ``TASKS``.
        episodes: number of episodes (> 0).
        noise: DART noise std in rad on the executed arm joint targets.
        seed: base seed; episode k resets the env with seed + k, the expert is seeded once.
        render: also render the camera images every step (to time the full loop).
        progress: show a tqdm progress bar on stderr.
        robot: the robot (a name, a YAML path or a description).

    Returns:
        A dict with 'task', 'robot', 'episodes', 'noise', 'seed', 'success_rate', 'successes',
        'mean_steps' (control steps per episode), 'mean_steps_success', 'max_steps',
        'failures' ({reason: count}; 'timeout' when the step limit ran out), 'modes'
        ({mode: count} over all episodes, None as 'none'), 'modes_success' and
        'wall_s'.
    """
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    env = make_env(task, robot, render=render)
    expert = make_expert(task, env.robot, noise=noise, seed=seed)
    t0 = time.perf_counter()
    try:
        results = run_episodes(env, lambda obs: expert.act(env).executed,
                               range(seed, seed + episodes), reset=lambda s: expert.reset(env),
                               progress=(f'{env.robot.name} {task} noise={noise}'
                                         if progress else None))
    finally:
        env.close()
    summary = summarize_episodes(task, seed, [r.to_dict() for r in results], env.max_steps)
    return {'task': task, 'robot': env.robot.name, 'episodes': episodes, 'noise': noise,
            'seed': seed,
            **{k: summary[k] for k in ('success_rate', 'successes', 'mean_steps',
                                       'mean_steps_success', 'max_steps', 'failures', 'modes',
                                       'modes_success')},
            'wall_s': round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints a summary (or JSON with --json)."""
    ap = argparse.ArgumentParser(prog='python -m il_ros.sim.expert_eval',
                                 description='Measure a scripted expert in simulation.')
    ap.add_argument('--task', required=True, choices=TASKS)
    ap.add_argument('--robot', default=DEFAULT_ROBOT,
                    help='robot name (config/robots) or YAML path (default %(default)s)')
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--noise', type=float, default=0.0,
                    help='DART noise std on the executed arm joint targets, rad')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--render', action='store_true', help='render images every step too')
    ap.add_argument('--json', action='store_true', help='print the result as JSON')
    args = ap.parse_args(argv)
    res = evaluate_expert(args.task, args.episodes, args.noise, args.seed, args.render,
                          progress=True, robot=args.robot)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['robot']} {res['task']}: success {res['success_rate']:.1%} over "
              f"{res['episodes']} "
              f"episodes (noise {res['noise']} rad), mean {res['mean_steps']:.1f} steps "
              f"of {res['max_steps']}, failures {res['failures'] or '-'}, "
              f"modes {res['modes']}, {res['wall_s']} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
