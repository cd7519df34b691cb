"""Training on two processes with DDP through torchrun (gloo, CPU).

A 2-rank run: both ranks end with identical weights, one run folder is written once (one
``last`` checkpoint, one log row per logged step, summary.json with world_size 2), and
resuming continues from the saved step. With augmentation off, 2 ranks at the global batch
give the weights a single process gives (up to float reduction order): the global-batch rule.
``il-ros train --nproc 2`` starts the same through torchrun.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
import torch
import yaml

from il_ros import cli
from il_ros.models import load_checkpoint
from test_training import make_sim_dataset, TINY

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason='this PyTorch has no torch.distributed')
REPO = Path(__file__).resolve().parents[1]
PLAIN = {**TINY, 'crop': None, 'color_jitter': 0.0}        # no random augmentation


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_sim_dataset(tmp_path_factory.mktemp('ddp') / 'ds', episodes=3)


def config(tmp_path, steps, policy=TINY, name='c.yaml', **fields):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        'policy': policy, 'batch_size': 8, 'max_steps': steps, 'max_minutes': None,
        'warmup_steps': 2, 'eval_task': None, 'val_fraction': 0.25, 'log_every': 1,
        'progress': False, **fields}))
    return path


def torchrun(*args, timeout=180, ok=True):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                        '--nproc_per_node=2', *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=REPO)
    if ok:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def ranks(out):
    return [json.loads((out / f'rank{r}.json').read_text()) for r in (0, 1)]


def test_two_ranks_train_one_run_with_identical_weights_and_resume(dataset, tmp_path):
    out = tmp_path / 'run'
    torchrun(REPO / 'test' / 'ddp_probe.py', config(tmp_path, 6), dataset, out)
    r0, r1 = ranks(out)
    assert r0['step'] == r1['step'] == 6 and r0['status'] == r1['status'] == 'done'
    assert r0['digest'] == r1['digest'] and r0['ema_digest'] == r1['ema_digest']
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['step'] == 6
    assert sorted(p.name for p in (out / 'checkpoints').iterdir()) == ['best', 'last']
    rows = [r for r in csv.DictReader(open(out / 'log.csv')) if r['train_loss']]
    assert [int(r['step']) for r in rows] == [1, 2, 3, 4, 5, 6]        # rank 0 alone logs

    torchrun(REPO / 'test' / 'ddp_probe.py', config(tmp_path, 9, name='c9.yaml'), dataset, out)
    r0, r1 = ranks(out)
    assert r0['step'] == r1['step'] == 9 and r0['digest'] == r1['digest']
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['resumed'] and summary['session_steps'] == 3, summary


def test_two_ranks_at_the_global_batch_match_one_process(dataset, tmp_path):
    from il_ros.training.config import load_train_config
    from il_ros.training.trainer import train
    # float32: on a CPU with native bfloat16 the encoders autocast, and two half batches
    # round differently from one whole batch (6e-4 apart after 5 steps on such a machine)
    cfg_path = config(tmp_path, 5, policy=PLAIN, bf16=False)
    torchrun(REPO / 'test' / 'ddp_probe.py', cfg_path, dataset, tmp_path / 'ddp')
    train(load_train_config(cfg_path, progress=False), tmp_path / 'one', dataset)
    ddp, _ = load_checkpoint(tmp_path / 'ddp' / 'checkpoints' / 'last', use_ema=False)
    one, _ = load_checkpoint(tmp_path / 'one' / 'checkpoints' / 'last', use_ema=False)
    a, b = ddp.state_dict(), one.state_dict()
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-4, worst


def test_il_ros_train_nproc_runs_torchrun(dataset, tmp_path, capfd):
    out = tmp_path / 'cli'
    code = cli.main(['train', '--config', str(config(tmp_path, 3)), '--dataset', str(dataset),
                     '--out', str(out), '--nproc', '2', '--threads', '1'])
    assert code == 0, capfd.readouterr().err[-3000:]
    assert '2 processes (torchrun, DDP)' in capfd.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['step'] == 3


def test_a_batch_that_does_not_split_is_refused(dataset, tmp_path):
    path = tmp_path / 'odd.yaml'
    path.write_text(yaml.safe_dump({'policy': TINY, 'batch_size': 7, 'max_steps': 20,
                                    'warmup_steps': 2, 'eval_task': None, 'progress': False}))
    p = torchrun('-m', 'il_ros.train_cli', 'train', '--config', path, '--dataset', dataset,
                 '--out', tmp_path / 'odd', timeout=120, ok=False)
    assert p.returncode != 0
    assert 'batch_size 7 does not divide by the 2 processes' in p.stderr
