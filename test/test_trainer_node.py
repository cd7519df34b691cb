"""The trainer node as a real process over DDS.

A ``~/train`` call starts a tiny run in the node's worker process; a second call while it
runs is refused; ``~/status`` reports the run (state, step, loss) until it is done, and
``~/checkpoint`` carries the path of a loadable best checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
import time

import pytest
import yaml

rclpy = pytest.importorskip('rclpy')
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from conftest import wait_for  # noqa: E402
from test_training import make_sim_dataset, TINY  # noqa: E402


@pytest.fixture
def node(ros_node):
    return ros_node


def _call(node, client, timeout=20.0):
    fut = client.call_async(Trigger.Request())
    end = time.monotonic() + timeout
    while not fut.done() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert fut.done(), 'no answer from ~/train'
    return fut.result()


def test_train_service_runs_reports_and_refuses_a_second_run(procs, node, tmp_path):
    dataset = make_sim_dataset(tmp_path / 'ds', episodes=4)
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'policy': TINY, 'batch_size': 16, 'max_steps': 30, 'max_minutes': None,
        'warmup_steps': 2, 'eval_task': 'lift', 'eval_every_steps': 15,
        'eval_episodes': 1, 'eval_max_steps': 10, 'log_every': 5}))
    out = tmp_path / 'run'
    p = procs.python('il_ros.ros.trainer', '--ros-args', '-p', f'config:={config}',
                     '-p', f'dataset:={dataset}', '-p', f'out_dir:={out}',
                     '-p', 'status_rate_hz:=10.0', '-p', 'threads:=2', name='trainer')
    status, paths = [], []
    node.create_subscription(String, '/trainer/status',
                             lambda m: status.append(json.loads(m.data)), 10)
    node.create_subscription(String, '/trainer/checkpoint', lambda m: paths.append(m.data), 10)
    client = node.create_client(Trigger, '/trainer/train')
    wait_for(lambda: client.service_is_ready() or p.poll() is not None, 30,
             what='the /trainer/train service')
    assert p.poll() is None, procs.log(p)

    def spin_until(pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            rclpy.spin_once(node, timeout_sec=0.05)
            assert p.poll() is None, procs.log(p)
        assert pred(), f'timed out waiting for {what}; last status {status[-1:]}'

    spin_until(lambda: status and status[-1]['state'] == 'idle', 10, 'an idle status')
    first = _call(node, client)
    assert first.success, first.message
    second = _call(node, client)
    assert not second.success and 'already in progress' in second.message
    spin_until(lambda: status[-1]['state'] in ('done', 'failed'), 150, 'the run to finish')
    assert status[-1]['state'] == 'done', status[-1]['message'] + procs.log(p)[-3000:]
    assert status[-1]['step'] == 30
    steps = [s['step'] for s in status if s['state'] == 'training']
    assert steps and steps == sorted(steps) and 0 < steps[0] < 30
    assert any(s['loss'] is not None and s['eta_s'] is not None for s in status)
    spin_until(lambda: paths, 5, 'a checkpoint path')
    best = Path(paths[-1])
    assert best == out / 'checkpoints' / 'best' and (best / 'policy.json').is_file()
    assert status[-1]['best_checkpoint'] == str(best)
    # Once done, a new call starts a worker again; the finished run is reported done at once.
    again = _call(node, client)
    assert again.success, again.message
    n = len(status)
    spin_until(lambda: any(s['state'] == 'starting' for s in status[n:]), 5, 'a new run')
    spin_until(lambda: status[-1]['state'] == 'done', 60, 'the second call to finish')
    assert status[-1]['step'] == 30
