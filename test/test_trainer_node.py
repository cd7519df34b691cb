"""The trainer node as a real process over DDS.

A ``~/train`` call starts a tiny run in the node's worker process; a second call while it
runs is refused; ``~/status`` reports the run (state, step, loss) until it is done, and
``~/checkpoint`` carries the path of a loadable best checkpoint. A bad dataset episode fails
the run with one line naming it in the status (no traceback in the log), and skipping it
trains on the rest, listing it in the status warnings. ``out_dir`` cannot leave the output
root: setting it outside is refused, and a ``~/train`` call whose folder resolves outside
(through a symbolic link) is refused naming the path and the root, unless the node was
started with ``allow_any_output_dir``. ``~/cancel`` stops a run, which the same ``~/train``
call resumes. A worker that reports faster than the node reads cannot keep the node from
answering: progress events are throttled and each status tick handles a bounded number.
With ``nproc:=2`` the node trains one DDP run on two processes through torchrun (gloo):
rank 0's status and checkpoints come through, ``~/cancel`` stops every rank and the same
call resumes; a bad input still fails in one line, and a rank that dies fails the run naming
that rank and ``torchrun.log``.
"""
from __future__ import annotations

import json
from pathlib import Path
import queue
import shutil
from types import SimpleNamespace
import time

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip('rclpy')
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from conftest import wait_for  # noqa: E402
from test_dataset_check import set_value  # noqa: E402
from test_training import make_sim_dataset, TINY  # noqa: E402


@pytest.fixture
def node(ros_node):
    return ros_node


def _call(node, client, timeout=20.0, resend_s=None, status=None):
    """Call a Trigger service; with ``resend_s``, a request unanswered that long is sent again.

    For ``~/cancel`` (sending it twice asks the same): a CI run once saw it go unanswered
    for 20 s during training with no sign of the request in the node's log, as
    test/launch_probe.py saw parameter requests lost. A node that serves nothing still
    fails here; the first request's answer wins when several come. ``status``: the node's
    status list, whose growth meanwhile the failure reports (did its executor run?).
    """
    seen = len(status) if status is not None else 0
    futs = [client.call_async(Trigger.Request())]
    start = time.monotonic()
    while not any(f.done() for f in futs) and time.monotonic() < start + timeout:
        rclpy.spin_once(node, timeout_sec=0.05)
        if resend_s and time.monotonic() > start + resend_s * len(futs):
            futs.append(client.call_async(Trigger.Request()))
    done = [f for f in futs if f.done()]
    assert done, (f'no answer from {client.srv_name} within {timeout} s ({len(futs)} requests)'
                  + (f'; {len(status) - seen} status messages meanwhile, the last '
                     f'{status[-1:]}' if status is not None else ''))
    return done[0].result()


def test_progress_events_are_throttled_unless_an_evaluation_changed():
    from il_ros.training.worker import ProgressThrottle
    now = [0.0]
    throttle = ProgressThrottle(0.1, clock=lambda: now[0])
    sent = []
    for step in range(100):                 # 100 log rows within 0.099 s: one goes out
        now[0] = step * 0.001
        sent += [step] if throttle({'step': step, 'success_rate': None}) else []
    assert sent == [0]
    assert throttle({'step': 100, 'success_rate': 0.5})    # a new evaluation goes at once
    assert not throttle({'step': 101, 'success_rate': 0.5})
    now[0] = 0.2
    assert throttle({'step': 102, 'success_rate': 0.5})    # and time lets the next one go


def test_a_status_tick_handles_a_bounded_number_of_worker_events():
    from il_ros.ros.trainer import DRAIN_LIMIT, Trainer
    events = queue.Queue()
    for step in range(DRAIN_LIMIT + 500):
        events.put(('progress', {'step': step}))
    handled = []
    fake = SimpleNamespace(events=events, _handle=lambda kind, payload: handled.append(payload))
    Trainer._drain(fake, DRAIN_LIMIT)
    assert len(handled) == DRAIN_LIMIT and events.qsize() == 500
    Trainer._drain(fake)                     # unbounded: everything (the worker has ended)
    assert len(handled) == DRAIN_LIMIT + 500 and events.empty()


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


def _set(node, name: str, value, timeout=20.0):
    """Set one parameter of /trainer; returns the SetParametersResult."""
    client = node.create_client(SetParameters, '/trainer/set_parameters')
    wait_for(client.service_is_ready, 30, what='/trainer/set_parameters')
    fut = client.call_async(SetParameters.Request(
        parameters=[Parameter(name, value=value).to_parameter_msg()]))
    end = time.monotonic() + timeout
    while not fut.done() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    assert fut.done(), 'no answer from /trainer/set_parameters'
    return fut.result().results[0]


class TrainerProcess:
    """A trainer node process, its status messages and a ~/train client."""

    def __init__(self, procs, node, *params: str):
        args = ['--ros-args', '-p', 'status_rate_hz:=10.0', '-p', 'threads:=2']
        for p in params:
            args += ['-p', p]
        self.procs, self.node = procs, node
        self.p = procs.python('il_ros.ros.trainer', *args, name='trainer')
        self.status = []
        node.create_subscription(String, '/trainer/status',
                                 lambda m: self.status.append(json.loads(m.data)), 10)
        self.client = node.create_client(Trigger, '/trainer/train')
        wait_for(lambda: self.client.service_is_ready() or self.p.poll() is not None, 30,
                 what='the /trainer/train service')
        assert self.p.poll() is None, procs.log(self.p)
        self.spin_until(lambda: self.status, 10, 'a status')

    def spin_until(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            rclpy.spin_once(self.node, timeout_sec=0.05)
            assert self.p.poll() is None, self.procs.log(self.p)
        assert pred(), f'timed out waiting for {what}; last status {self.status[-1:]}'

    def train_until_end(self, timeout=120):
        """Call ~/train; wait for the run's final status and return it."""
        n = len(self.status)
        answer = _call(self.node, self.client)
        assert answer.success, answer.message
        self.spin_until(lambda: any(s['state'] == 'starting' for s in self.status[n:])
                        and self.status[-1]['state'] in ('done', 'failed'), timeout,
                        'the run to end')
        return self.status[-1]


def test_a_bad_episode_fails_the_run_in_one_line_and_skipping_trains(procs, node, tmp_path):
    dataset = tmp_path / 'ds'
    shutil.copytree(make_sim_dataset(tmp_path / 'clean', episodes=3), dataset)
    set_value(dataset, 1, 'action', (2, 0), np.nan)
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'policy': TINY, 'batch_size': 16, 'max_steps': 4, 'max_minutes': None,
        'warmup_steps': 1, 'eval_task': None, 'val_fraction': 0.0, 'log_every': 2}))
    out = tmp_path / 'runs' / 'run'
    trainer = TrainerProcess(procs, node, f'config:={config}', f'dataset:={dataset}',
                             f'out_dir:={out}')
    failed = trainer.train_until_end()
    assert failed['state'] == 'failed', failed
    assert failed['message'].startswith(f'{dataset}: episode 1 (episodes/ep_000001.h5): '
                                        f'action: non-finite value nan at frame 2, dim 0')
    assert '--skip-bad-episodes' in failed['message'] and '\n' not in failed['message']
    log = procs.log(trainer.p)
    assert 'training failed: ' + failed['message'] in log and 'Traceback' not in log, log
    assert not out.exists()
    assert _set(node, 'overrides', ['skip_bad_episodes=true']).successful
    done = trainer.train_until_end()
    assert done['state'] == 'done' and done['step'] == 4, done
    assert len(done['warnings']) == 1 and 'skipping episode 1 (episodes/ep_000001.h5): ' \
        'action' in done['warnings'][0]
    summary = json.loads((out / 'summary.json').read_text())
    assert [p['episode'] for p in summary['dataset_check']['skipped']] == [1]


def test_out_dir_cannot_leave_the_output_root(procs, node, tmp_path):
    root = tmp_path / 'runs'
    root.mkdir()
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    trainer = TrainerProcess(procs, node, f'out_dir:={root / "first"}')
    # a parameter change outside the root is refused, naming the path and the root
    refused = _set(node, 'out_dir', '/etc')
    assert not refused.successful
    assert 'out_dir /etc is outside the output root ' + str(root) in refused.reason
    assert not _set(node, 'output_root', '/').successful             # read-only
    assert not _set(node, 'allow_any_output_dir', True).successful   # read-only
    # a folder inside the root that turns out to lead outside is refused by ~/train
    assert _set(node, 'out_dir', str(root / 'link')).successful
    (root / 'link').symlink_to(outside)
    answer = _call(node, trainer.client)
    assert not answer.success
    assert answer.message == (f'refused: out_dir {outside} is outside the output root {root} '
                              f'(set output_root or allow_any_output_dir:=true at start-up '
                              f'to write elsewhere)')
    assert trainer.status[-1]['state'] == 'idle' and not list(outside.iterdir())


def test_allow_any_output_dir_lets_out_dir_anywhere(procs, node, tmp_path):
    TrainerProcess(procs, node, f'out_dir:={tmp_path / "runs" / "first"}',
                   f'output_root:={tmp_path / "runs"}', 'allow_any_output_dir:=true')
    assert _set(node, 'out_dir', str(tmp_path / 'elsewhere')).successful
    assert not _set(node, 'threads', -1).successful


def _endless_run(tmp_path, **fields):
    """A 3-episode dataset, a tiny config of 100000 steps (``fields`` over it), the run folder."""
    dataset = make_sim_dataset(tmp_path / 'ds', episodes=3)
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'policy': TINY, 'max_steps': 100000, 'max_minutes': None, 'warmup_steps': 1,
        'eval_task': None, **fields}))
    return dataset, config, tmp_path / 'runs' / 'run'


def _wait_stopped(trainer, out, what) -> dict:
    """Spin until the run ends; assert it stopped early with ``last`` saved in ``out``."""
    trainer.spin_until(lambda: trainer.status[-1]['state'] in ('stopped', 'done', 'failed'), 60,
                       what)
    stopped = trainer.status[-1]
    assert stopped['state'] == 'stopped' and 0 < stopped['step'] < 100000, stopped
    assert (out / 'checkpoints' / 'last').is_dir()
    return stopped


def test_cancel_stops_the_run_resumably_and_the_same_call_resumes_it(procs, node, tmp_path):
    dataset, config, out = _endless_run(tmp_path, batch_size=16, val_fraction=0.0, log_every=2)
    trainer = TrainerProcess(procs, node, f'config:={config}', f'dataset:={dataset}',
                             f'out_dir:={out}', 'threads:=1')
    cancel = node.create_client(Trigger, '/trainer/cancel')
    wait_for(cancel.service_is_ready, 10, what='the /trainer/cancel service')
    idle = _call(node, cancel, resend_s=5.0)
    assert not idle.success and idle.message == 'no training run in progress (state idle)'

    assert _call(node, trainer.client).success
    trainer.spin_until(lambda: trainer.status[-1]['state'] == 'training'
                       and trainer.status[-1]['step'] > 0, 60, 'training steps')
    answer = _call(node, cancel, resend_s=5.0, status=trainer.status)
    assert answer.success and answer.message.startswith(f'stopping the run in {out} at step ')
    stopped = _wait_stopped(trainer, out, 'the run to stop')
    assert not _call(node, cancel, resend_s=5.0).success

    # The same call (same out_dir) resumes from the saved step; a budget a few steps on ends it.
    assert _set(node, 'max_steps', stopped['step'] + 3).successful
    done = trainer.train_until_end()
    assert done['state'] == 'done' and done['step'] == stopped['step'] + 3, done
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['resumed'] and summary['session_steps'] == 3, summary


# -- nproc > 1: one DDP run on two processes through torchrun ------------------------------

def test_nproc_2_trains_one_ddp_run_that_cancel_stops_and_the_call_resumes(procs, node,
                                                                          tmp_path):
    dataset, config, out = _endless_run(tmp_path, batch_size=8, val_fraction=0.25, log_every=1)
    trainer = TrainerProcess(procs, node, f'config:={config}', f'dataset:={dataset}',
                             f'out_dir:={out}', 'nproc:=2', 'threads:=1')
    paths = []
    node.create_subscription(String, '/trainer/checkpoint', lambda m: paths.append(m.data), 10)
    cancel = node.create_client(Trigger, '/trainer/cancel')
    wait_for(cancel.service_is_ready, 10, what='the /trainer/cancel service')

    assert _call(node, trainer.client).success
    trainer.spin_until(lambda: trainer.status[-1]['state'] == 'training'
                       and trainer.status[-1]['step'] > 0, 60, 'DDP training steps')
    assert trainer.status[-1]['message'].startswith('2 processes (DDP), rank 0 pid ')
    assert _call(node, cancel, resend_s=5.0).success
    stopped = _wait_stopped(trainer, out, 'the DDP run to stop')

    assert _set(node, 'max_steps', stopped['step'] + 3).successful
    done = trainer.train_until_end(timeout=90)
    assert done['state'] == 'done' and done['step'] == stopped['step'] + 3, done
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['resumed'], summary
    assert summary['session_steps'] == 3, summary
    assert sorted(p.name for p in (out / 'checkpoints').iterdir()) == ['best', 'last']
    trainer.spin_until(lambda: paths, 5, 'a checkpoint path')
    assert paths[-1] == done['best_checkpoint'] == str(out / 'checkpoints' / 'best')
    assert (out / 'torchrun.log').read_text().count('il_ros trainer: 2 processes') == 2


def _ddp_run(tmp_path, batch_size: int, on_event=lambda kind, payload: None) -> list:
    """run_training with nproc 2 in a spawned process; its events up to the last."""
    import multiprocessing as mp

    from il_ros.training.worker import run_training
    config = tmp_path / 'c.yaml'
    config.write_text(yaml.safe_dump({
        'policy': TINY, 'batch_size': batch_size, 'max_steps': 100000, 'max_minutes': None,
        'warmup_steps': 1, 'eval_task': None, 'val_fraction': 0.0, 'log_every': 1}))
    dataset = make_sim_dataset(tmp_path / 'ds', episodes=2)
    request = {'config': str(config), 'dataset': str(dataset),
               'out_dir': str(tmp_path / 'run'), 'overrides': [], 'threads': 1, 'nproc': 2}
    ctx = mp.get_context('spawn')
    events, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=run_training, args=(request, events, stop), daemon=True)
    proc.start()
    seen = []
    try:
        while not seen or seen[-1][0] not in ('done', 'error'):
            seen.append(events.get(timeout=90))
            on_event(*seen[-1])
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    return seen


def test_a_ddp_input_error_comes_back_as_one_line(tmp_path):
    kind, payload = _ddp_run(tmp_path, batch_size=7)[-1]
    assert kind == 'error' and payload['traceback'] is None, payload
    assert payload['error'] == 'batch_size 7 does not divide by the 2 processes; use a ' \
                               'multiple of 2'
    assert not (tmp_path / 'run' / 'torchrun.log').exists()     # refused before torchrun


def test_a_dead_rank_fails_the_ddp_run_naming_it_and_torchrun_log(tmp_path):
    import os
    import signal

    def kill_rank0(kind, payload):
        if kind == 'started':
            os.kill(payload['pid'], signal.SIGKILL)     # rank 0 (started by this test's run)
    kind, payload = _ddp_run(tmp_path, batch_size=8, on_event=kill_rank0)[-1]
    assert kind == 'error', payload
    assert payload['error'].startswith('the 2-process DDP run ended without a result: '
                                       'torchrun exited with code 1 (rank 0 failed); its '
                                       f'output: {tmp_path / "run" / "torchrun.log"}'), payload
    assert 'Signal 9 (SIGKILL)' in payload['traceback'], payload      # torchrun's account


def test_the_failing_rank_lines_come_from_torchruns_root_cause():
    from il_ros.training.ddp_worker import failing_rank_lines
    text = '\n'.join(['[default0]:step 1', '[default1]:Traceback (most recent call last):',
                      '[default1]:RuntimeError: boom', 'Failures:', '[1]:', '  rank      : 0 '
                      '(local_rank: 0)', 'Root Cause (first observed failure):', '[0]:',
                      '  time      : now', '  host      : localhost',
                      '  rank      : 1 (local_rank: 1)', '  exitcode  : 1 (pid: 7)'])
    assert failing_rank_lines(text) == (1, ['Traceback (most recent call last):',
                                            'RuntimeError: boom'])
    assert failing_rank_lines('a\nb') == (None, ['a', 'b'])
