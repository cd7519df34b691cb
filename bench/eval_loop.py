"""In-process evaluation through the control loop against the direct path; prints JSON.

One checkpoint, one task, the same seeds, evaluated in this process
(il_ros.training.evaluate) in each of ``--modes``: ``loop``, through the controller's
ControlLoop (the default, as deployed: safety filter, step limits, chunk guard, queue,
plan-ahead rule, a plan made ahead handed over at the next tick as by the node's worker
thread); ``inline``, the same loop with a plain InlineWorker (every plan handed over in the
tick that asked); ``direct``, ``policy.act`` unfiltered (``direct=True``). Reported per
mode: success, mean steps (of successes), the failures, the per-episode wall time (render
+ inference + physics + loop) and, through the loop, its safety and chunk-guard counters;
and the two-proportion z of each success against direct's (|z| < 2: within binomial
noise).

    .venv/bin/python bench/eval_loop.py --checkpoint RUN/checkpoints/best --task lift \
        [--episodes 50] [--seed 1000] [--threads 1] [--modes loop inline direct]

The same cost is what the trainer's periodic evaluation (eval_every_minutes) pays per
episode, since it calls ``evaluate`` the same way.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys


def _row(res: dict) -> dict:
    keep = ('success_rate', 'successes', 'episodes', 'mean_steps', 'mean_steps_success',
            'failures', 'act_ms', 'wall_s', 'cpu_s', 'loop', 'safety', 'chunks', 'faults',
            'hold_ticks', 'hold_reasons', 'ticks')
    out = {k: res[k] for k in keep if k in res}
    out['wall_s_per_episode'] = round(res['wall_s'] / res['episodes'], 3)
    if 'safety' in res:
        out['rate_limited_fraction'] = round(res['safety']['rate_limited'] / res['ticks'], 4)
    return out


def z_two_proportions(k1: int, k2: int, n: int) -> float | None:
    """The two-proportion z statistic of k1/n against k2/n (None when both are 0 or n)."""
    p = (k1 + k2) / (2 * n)
    se = math.sqrt(2 * p * (1 - p) / n)
    return None if se == 0 else round((k1 - k2) / n / se, 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--task', required=True)
    p.add_argument('--episodes', type=int, default=50)
    p.add_argument('--seed', type=int, default=1000)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--modes', nargs='+', default=['loop', 'direct'],
                   choices=['loop', 'inline', 'direct'])
    args = p.parse_args(argv)
    import torch

    from il_ros.control.worker import InlineWorker
    from il_ros.training.evaluate import evaluate_checkpoint
    torch.set_num_threads(args.threads)
    rows = {}
    for mode in args.modes:
        res = evaluate_checkpoint(args.checkpoint, args.task, episodes=args.episodes,
                                  seed=args.seed, progress=False, direct=mode == 'direct',
                                  worker=InlineWorker() if mode == 'inline' else None)
        rows[mode] = _row(res)
        print(json.dumps({mode: rows[mode]}), file=sys.stderr, flush=True)
    n = args.episodes
    out = {'checkpoint': args.checkpoint, 'task': args.task, 'episodes': n, 'seed': args.seed,
           'threads': args.threads, 'load_avg': os.getloadavg(), **rows}
    if 'direct' in rows:
        for mode in set(rows) - {'direct'}:
            out[f'success_z_{mode}_vs_direct'] = z_two_proportions(
                rows[mode]['successes'], rows['direct']['successes'], n)
            out[f'wall_ratio_{mode}_over_direct'] = round(
                rows[mode]['wall_s'] / rows['direct']['wall_s'], 3)
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
