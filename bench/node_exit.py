"""How long each node process takes to end after SIGINT; prints JSON.

Each node (default: every node of config/graph.yaml) is started alone as ``python -m
il_ros.ros.<node>`` with its default parameters, given ``--settle`` seconds, sent SIGINT and
timed until its process has exited, ``--runs`` times. ``ros2 launch`` sends SIGTERM to a
node still running 5 s after SIGINT and reports it as died, so a node near that bound fails
a launch's clean shutdown on a busy machine. ``--tree DIR`` runs another checkout's nodes
(e.g. a ``git archive`` of an older commit), to compare. The load average is recorded: the
machine may be shared.

    .venv/bin/python bench/node_exit.py [--nodes controller sim_robot] [--runs 3] [--tree DIR]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parent.parent


def exit_time(node: str, tree: Path, settle: float, env: dict) -> dict:
    """Start one node, SIGINT it after ``settle`` s; its exit code and seconds to exit."""
    p = subprocess.Popen([sys.executable, '-m', f'il_ros.ros.{node}'], cwd=str(tree),
                         env={**env, 'PYTHONPATH': str(tree)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(settle)
    if p.poll() is not None:
        return {'code': p.returncode, 'exit_s': None, 'note': 'ended before SIGINT'}
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return {'code': None, 'exit_s': None, 'note': 'still running 60 s after SIGINT'}
    return {'code': p.returncode, 'exit_s': round(time.monotonic() - t0, 3)}


def main(argv=None) -> int:
    """Run the measurement and print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nodes', nargs='+', default=None)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--settle', type=float, default=15.0,
                    help='seconds from the start to SIGINT (the node must be up by then)')
    ap.add_argument('--tree', type=Path, default=REPO)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.tree))
    from il_ros.config import load_graph
    nodes = args.nodes or sorted({s.executable for s in load_graph().nodes.values()})
    tmp = tempfile.mkdtemp(prefix='node_exit_')
    env = {**os.environ, 'ROS_DOMAIN_ID': str(random.SystemRandom().randint(101, 200)),
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'ROS_LOG_DIR': tmp,
           'ROS_HOME': tmp}
    rows = []
    for node in nodes:
        runs = [exit_time(node, args.tree.resolve(), args.settle, env) for _ in range(args.runs)]
        times = [r['exit_s'] for r in runs if r['exit_s'] is not None]
        rows.append({'node': node, 'runs': runs, 'max_exit_s': max(times, default=None)})
    print(json.dumps({'tree': str(args.tree.resolve()), 'settle_s': args.settle,
                      'loadavg': os.getloadavg(), 'nodes': rows}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
