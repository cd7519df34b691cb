r"""Where does a lift policy's hand end up when it fails? Prints JSON.

Runs a checkpoint through the in-process control loop (as ``il-ros eval`` does, on the
robot the checkpoint carries) and records per episode, from the sim's privileged state:
the hand's xy distance to the cube and its height above the cube's centre (closest, lowest
and at the end), the finger opening, whether both fingers touch the cube, and how far the
cube started from the hand. A timeout says only that time ran out; these say whether the
hand hovered beside the cube, closed too high, or never went to it
(docs/experiments/panda-lift.md).

    python bench/lift_failure_sites.py runs/demo_panda/train/checkpoints/best \
        --episodes 30 [--seed 1000]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def failure_sites(checkpoint: str, episodes: int, seed: int) -> dict:
    """The per-episode sites (see the module doc) and a summary of successes and failures."""
    from il_ros.training.evaluate import evaluate_checkpoint
    res = evaluate_checkpoint(checkpoint, 'lift', episodes, seed, run=_sites, progress=False)
    rows = res['per_episode']

    def span(key, ok):
        v = [r[key] for r in rows if r['success'] == ok]
        return [min(v), max(v)] if v else None
    summary = {ok_name: {'episodes': sum(r['success'] == ok for r in rows),
                         **{k: span(k, ok) for k in ('start_xy_cm', 'min_xy_cm', 'min_dz_cm',
                                                     'end_dz_cm', 'end_opening_cm')}}
               for ok_name, ok in (('successes', True), ('failures', False))}
    return {'checkpoint': checkpoint, 'step': res['step'], 'robot': res['robot'],
            'seed': seed, 'episodes': episodes,
            'success_rate': sum(r['success'] for r in rows) / len(rows), **summary,
            'per_episode': rows}


def _sites(policy, task, episodes, seed, robot, **_) -> dict:
    """The ``run`` of evaluate_checkpoint: the loaded policy's episodes, with their sites."""
    import torch
    from il_ros.sim.loop_episode import SimLoop
    from il_ros.sim.registry import make_env
    from il_ros.training.evaluate import _env_args
    policy.eval()
    env = make_env(task, render=True, robot=robot, **_env_args(policy, None, None, None, robot))
    runner = SimLoop(env, policy, None, name='failure_sites')
    rows = []

    def offsets():
        d = env.ee_pos() - env.cube_pos()
        return float(np.linalg.norm(d[:2])), float(d[2])

    try:
        with torch.no_grad():
            for s in range(seed, seed + episodes):
                track = []
                env.reset(seed=s)               # the start, before the episode's own reset
                start_xy = offsets()[0]
                res = runner.run_episode(
                    s, on_tick=lambda obs, tick: track.append(offsets()))
                xy, dz = np.array(track).T
                end_xy, end_dz = offsets()
                rows.append({'seed': s, 'success': res.success, 'steps': res.steps,
                             'failure': res.failure, 'start_xy_cm': round(100 * start_xy, 2),
                             'min_xy_cm': round(100 * xy.min(), 2),
                             'min_dz_cm': round(100 * dz.min(), 2),
                             'end_xy_cm': round(100 * end_xy, 2),
                             'end_dz_cm': round(100 * end_dz, 2),
                             'end_opening_cm': round(100 * env.gripper_opening(), 2),
                             'grasped': bool(env.grasped())})
    finally:
        runner.close()
        env.close()
    return {'robot': getattr(robot, 'name', robot), 'per_episode': rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('checkpoint', help='a lift checkpoint (a sim robot the package knows)')
    p.add_argument('--episodes', type=int, default=30)
    p.add_argument('--seed', type=int, default=1000, help='episode k uses seed + k')
    a = p.parse_args(argv)
    json.dump(failure_sites(a.checkpoint, a.episodes, a.seed), sys.stdout, indent=1)
    print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
