"""Success of a task's scripted expert on a robot, in-process; prints JSON.

    .venv/bin/python bench/expert_success.py --robot panda --task lift --episodes 100 \
        [--noise 0.0] [--seed 0]

Episode k resets the env with seed ``seed + k``; the expert is seeded once with ``seed``
(il_ros.sim.expert_eval.evaluate_expert). Reported: the robot, task, success rate and
count, mean control steps (all episodes and successes only), the failures by reason, the
wall time and the wall time per episode (physics + IK, no rendering).
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the expert and print one JSON object."""
    from il_ros.robot import DEFAULT_ROBOT
    from il_ros.sim import TASKS
    from il_ros.sim.expert_eval import evaluate_expert
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--robot', default=DEFAULT_ROBOT, help='robot name or YAML path')
    ap.add_argument('--task', default='lift', choices=TASKS)
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--noise', type=float, default=0.0, help='DART noise std, rad')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)
    res = evaluate_expert(args.task, args.episodes, args.noise, args.seed, robot=args.robot)
    res['wall_s_per_episode'] = round(res['wall_s'] / res['episodes'], 3)
    print(json.dumps(res))
    return 0


if __name__ == '__main__':
    sys.exit(main())
