r"""How far off the cube can a robot's lift grasp be and still succeed? Prints JSON.

The scripted lift expert is told a cube position offset by ``--offsets`` (m) in a random
direction drawn per episode (every step of the episode sees the same offset), and may
descend at full speed at any offset (its robot's descent rule replaced by a threshold at
``--descend-off``); noise-free.
Its success at each offset is the grasp's lateral tolerance, the error a policy may make
before the grasp fails (docs/experiments/panda-lift.md).

    python bench/lift_grasp_tolerance.py --robot panda --offsets 0 0.02 0.03 0.04 \
        --episodes 20
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def success_at(robot: str, offset: float, episodes: int, descend_off: float,
               seed: int = 0) -> float:
    """Expert success over ``episodes`` with a cube position ``offset`` m off (see above)."""
    from il_ros.sim import lift, make_env, make_expert
    from il_ros.sim.runner import run_episodes
    layouts = dict(lift.LAYOUTS)
    base = lift.layout_for(robot)
    lift.LAYOUTS[robot] = base._replace(descend=(descend_off, descend_off))   # a threshold
    env = make_env('lift', robot, render=False)
    expert = make_expert('lift', robot, seed=seed)
    rng = np.random.default_rng(seed)
    bias = np.zeros(3)
    true_cube = env.cube_pos
    plan = expert._plan

    def biased_plan(e):
        e.cube_pos = lambda: true_cube() + bias      # what the expert is told, this step
        try:
            return plan(e)
        finally:
            del e.cube_pos

    def reset(_seed):
        a = rng.uniform(0.0, 2 * np.pi)
        bias[:] = (offset * np.cos(a), offset * np.sin(a), 0.0)
        expert.reset(env)

    expert._plan = biased_plan
    try:
        results = run_episodes(env, lambda obs: expert.act(env).executed,
                               range(seed, seed + episodes), reset=reset)
    finally:
        env.close()
        lift.LAYOUTS.clear()
        lift.LAYOUTS.update(layouts)
    return float(np.mean([r.success for r in results]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--robot', default='panda')
    p.add_argument('--offsets', type=float, nargs='+', default=[0.0, 0.02, 0.03, 0.04])
    p.add_argument('--episodes', type=int, default=20)
    p.add_argument('--descend-off', type=float, default=0.06,
                   help='descend from the pre-grasp height up to this xy error (m)')
    args = p.parse_args(argv)
    rows = [{'offset_m': o, 'success_rate': success_at(args.robot, o, args.episodes,
                                                        max(args.descend_off, o + 0.01))}
            for o in args.offsets]
    print(json.dumps({'robot': args.robot, 'episodes': args.episodes, 'rows': rows}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
