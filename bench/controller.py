"""Control-loop speed of the controller node over ROS 2; prints JSON.

For each preset (default: lstm_gmm and diffusion, DDIM 10 steps, chunk Ta 8), a random-init
checkpoint for the sim arm (84x84 front camera, 7 joints, 6 actions, 20 Hz) is run by the
real controller process, enabled, fed by a separate sensor process (84x84 rgb8 images at
20 Hz, joint states at 50 Hz, sensor QoS) for ``--ticks`` policy ticks. The controller
writes every tick's timing (``stats_file``) when it is stopped; reported:

- ``step_ms``: p50/p99/max of the tick's latency, from the timer callback's start to the
  command's publication (for a Ta=1 policy this includes waiting for observe + plan);
- ``jitter_ms``: how late the timer callback started against its nominal tick time;
- ``missed_deadline_rate``: ticks whose command was published more than a period after the
  nominal tick time, or that had no policy action for their tick (underrun, stall);
- ``underruns``: POLICY ticks whose action queue had nothing for them once primed
  (``priming_ticks``, before the first chunk after a reset, are reported apart);
- ``plan_ms``: p50/p99 of the worker's observe + plan jobs.

    .venv/bin/python bench/controller.py [--ticks 5000] [--presets lstm_gmm diffusion] \
        [--baseline DIR] [--beside-train]

``--baseline DIR``: a checkout of another il_ros version (e.g. ``git worktree add DIR
<commit>``); each preset then runs DIR's controller and this one's alternately (baseline
first), so both see the same machine, and the JSON has a row per (tree, preset).
``--beside-train``: a training job (``bench/train.py``'s plain PyTorch loop on the diffusion
preset, 2 threads) runs through every measurement, as on a machine that trains while it
controls. 5000 ticks at 20 Hz take 250 s per row. The load average is recorded: the
machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np

HW = 84


def make_checkpoint(name: str, path: Path) -> str:
    """A random-init checkpoint of preset ``name`` for the sim arm (lift's RobotSpec)."""
    import torch

    from il_ros.models import build_policy, save_checkpoint
    from il_ros.models.presets import preset
    from il_ros.training.spec import sim_spec
    torch.manual_seed(0)
    spec = sim_spec('lift')
    a, j = spec.action_dim, spec.proprio_dim
    stats = {'action': {'min': [-0.5] * a, 'max': [0.5] * a, 'mean': [0.0] * a,
                        'std': [0.3] * a},
             'joint_pos': {'min': [-1.0] * j, 'max': [1.0] * j, 'mean': [0.0] * j,
                           'std': [0.5] * j},
             'image/front': {'mean': [0.5] * 3, 'std': [0.25] * 3}}
    policy = build_policy(preset(name), spec, stats)
    return str(save_checkpoint(policy, path))


def feeder() -> None:
    """Sensor process: 84x84 random images at 20 Hz and sim-arm joint states at 50 Hz."""
    from il_ros.ros.conversions import image_msg, joint_state_msg
    from il_ros.ros.node_utils import run, SENSOR_QOS
    from il_ros.robot import load_robot
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    class Feeder(Node):
        def __init__(self):
            super().__init__('bench_feeder')
            rng = np.random.default_rng(0)
            self.images = [rng.integers(0, 256, (HW, HW, 3), dtype=np.uint8) for _ in range(16)]
            self.i = 0
            self.img = self.create_publisher(Image, '/camera/front/image_raw', SENSOR_QOS)
            self.js = self.create_publisher(JointState, '/joint_states', SENSOR_QOS)
            self.names = load_robot('sim_arm').joint_names
            self.create_timer(1 / 20, self._image)
            self.create_timer(1 / 50, self._joints)

        def _now(self):
            return self.get_clock().now().nanoseconds * 1e-9

        def _image(self):
            self.i += 1
            self.img.publish(image_msg(self.images[self.i % 16], self._now(), 'bench'))

        def _joints(self):
            q = 0.1 * np.sin(self._now() + np.arange(7))
            self.js.publish(joint_state_msg(self.names, q, np.zeros(7), np.zeros(7),
                                            self._now()))
    run(Feeder)


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def bench_preset(name: str, ticks: int, tmp: Path, env: dict, nice: int = 0,
                 tree: str | None = None) -> dict:
    from il_ros.launcher import stop_processes
    from il_ros.ros.ros_eval import GraphClient
    ckpt = make_checkpoint(name, tmp / name)
    tag = f'{name}_{"baseline" if tree else "this"}'
    stats_file = tmp / f'{tag}_ticks.json'
    logs = {k: open(tmp / f'{tag}_{k}.log', 'wb') for k in ('feeder', 'controller')}
    ctl_env = dict(env)
    if tree:
        ctl_env['PYTHONPATH'] = os.pathsep.join([str(Path(tree).resolve()),
                                                 env.get('PYTHONPATH', '')])
    feed = subprocess.Popen([sys.executable, __file__, '--feeder'], env=env,
                            stdout=logs['feeder'], stderr=subprocess.STDOUT,
                            start_new_session=True)
    ctl = subprocess.Popen(
        [sys.executable, '-m', 'il_ros.ros.controller', '--ros-args', '-p',
         f'checkpoint:={ckpt}', '-p', 'enabled:=true', '-p', f'stats_file:={stats_file}',
         '-p', 'checkpoint_topic:=\'\'', '-p', f'nice:={nice}'], env=ctl_env,
        stdout=logs['controller'],
        stderr=subprocess.STDOUT, start_new_session=True)
    client = GraphClient('bench_controller', env)
    load = [os.getloadavg()[0]]
    try:
        def status(pred):
            def check():
                if ctl.poll() is not None:
                    raise RuntimeError(f'controller exited: see {tmp / f"{tag}_controller.log"}')
                return client.status is not None and pred(client.status)
            return check
        client.spin_until(status(lambda st: st['policy_ticks'] > 0), 180, 'the first policy tick')
        start = client.status['ticks']
        # Count ticks, not policy ticks: on an overloaded machine some ticks HOLD.
        client.spin_until(status(lambda st: st['ticks'] >= start + ticks + 10),
                          ticks / 20 + 120, f'{ticks} ticks')
        load.append(os.getloadavg()[0])
    finally:
        client.close()
        for p in (ctl, feed):                  # the controller first: it writes its stats
            stop_processes([p], timeout=20)
        for f in logs.values():
            f.close()
    data = json.loads(stats_file.read_text())
    rows = data['ticks']
    first = next(i for i, r in enumerate(rows) if r[3] == 'policy')
    rows = rows[first:first + ticks]                   # from the first policy action on
    period_ms = data['period_s'] * 1e3
    lat = np.array([r[2] for r in rows])
    jit = np.array([r[1] for r in rows])
    reasons = [r[4] for r in rows]
    missed = sum(1 for r in rows if r[4] in ('underrun', 'inference_backlog')
                 or r[1] + r[2] > period_ms)
    # Both stats formats: the loop's (summary, plan_ms) and the older node's (counts).
    plan = data.get('plan_ms') or []
    counts = data.get('counts') or data.get('summary', {}).get('counts', {})
    dropped = data.get('dropped_actions', data.get('summary', {}).get('dropped_actions'))
    return {
        'preset': name, 'tree': tree or 'this', 'ticks': len(rows),
        'rate_hz': 1e3 / period_ms,
        'step_ms': {'p50': pct(lat, 50), 'p99': pct(lat, 99), 'max': round(float(lat.max()), 3)},
        'jitter_ms': {'p50': pct(jit, 50), 'p99': pct(jit, 99), 'max': round(float(jit.max()), 3)},
        'missed_deadline_rate': round(missed / len(rows), 5), 'missed_deadlines': missed,
        'underruns': reasons.count('underrun'), 'priming_ticks': reasons.count('priming'),
        'policy_ticks': sum(1 for r in rows if r[3] == 'policy'),
        'hold_ticks': sum(1 for r in rows if r[3] == 'hold'),
        'plan_ms': {'p50': pct(plan, 50), 'p99': pct(plan, 99), 'n': len(plan)},
        'late_plans': counts.get('late_plans'),
        'dropped_actions': dropped,
        'loadavg': load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--ticks', type=int, default=5000)
    parser.add_argument('--presets', nargs='+', default=['lstm_gmm', 'diffusion'])
    parser.add_argument('--nice', type=int, default=0,
                        help='the controller\'s nice parameter (< 0: priority over other '
                             'jobs; needs root or CAP_SYS_NICE)')
    parser.add_argument('--baseline', metavar='DIR', help='another il_ros checkout to run '
                        'alternately with this one (see the module doc)')
    parser.add_argument('--beside-train', action='store_true',
                        help='run a training job beside every measurement')
    parser.add_argument('--feeder', action='store_true', help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.feeder:
        feeder()
        return
    from il_ros.launcher import ros_env
    env = ros_env()
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'RMW_IMPLEMENTATION')})
    out = {'bench': 'controller', 'ticks': args.ticks, 'cpus': os.cpu_count(),
           'torch_threads': 1, 'nice': args.nice, 'image': [HW, HW],
           'baseline': args.baseline, 'beside_train': args.beside_train, 'results': []}
    trees = [args.baseline, None] if args.baseline else [None]
    train = None
    with tempfile.TemporaryDirectory(prefix='il_ros_bench_ctl_') as tmp:
        if args.beside_train:
            train = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name('train.py')), '--presets',
                 'diffusion', '--steps', '1000000', '--threads', '2'],
                stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / 'train.log', 'wb'),
                start_new_session=True)
        try:
            for name in args.presets:
                for tree in trees:
                    if train is not None and train.poll() is not None:
                        raise RuntimeError(f'the training job exited ({train.returncode}); '
                                           f'see {Path(tmp) / "train.log"}')
                    row = bench_preset(name, args.ticks, Path(tmp), env, args.nice, tree)
                    out['results'].append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            if train is not None:
                from il_ros.launcher import stop_processes
                stop_processes([train], timeout=20)
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
