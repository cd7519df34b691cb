"""The training loop on a small dataset of real scripted lift demos.

- a tiny run's loss falls, and it writes config.yaml, log.csv, curves.png, summary.json and
  loadable checkpoints;
- an interrupted run resumes from its saved step and ends with exactly the weights and
  optimizer state of an uninterrupted run (same seed, same thread count);
- the best checkpoint is the evaluation with the highest rollout success, ties going to the
  lower validation loss;
- configs validate (the shipped recipes and task overlays: test_train_config.py); the CLI
  trains and evaluates as a subprocess (cleanrl-style smoke test).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file
import torch

from il_ros.config import ConfigError
from il_ros.data.store import DatasetWriter, encode_labels
from il_ros.models import load_checkpoint
from il_ros.sim import make_env, make_expert
from il_ros.training import trainer as trainer_mod
from il_ros.training.config import (load_train_config, resolve_policy_config,
                                    TrainConfig)
from il_ros.training.trainer import train, TrainError

torch.set_num_threads(2)

TINY_ENCODER = {'name': 'conv4', 'channels': [8, 8, 8, 8], 'num_kp': 8, 'feat_dim': 16}
TINY = {'preset': 'none_mse', 'encoder': TINY_ENCODER,
        'proprio_encoder': {'hidden': 32, 'out_dim': 16}, 'crop': 28}
TINY_LSTM = {'preset': 'lstm_gmm', 'encoder': TINY_ENCODER,
             'proprio_encoder': {'hidden': 32, 'out_dim': 16},
             'core': {'hidden_size': 16, 'num_layers': 1}, 'head': {'num_modes': 2},
             'seq_len': 4, 'crop': 28}


def make_sim_dataset(path: Path, task: str = 'lift', episodes: int = 6,
                     size: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """Scripted-expert episodes written straight into a dataset (what convert produces)."""
    env = make_env(task, image_size=size)
    expert = make_expert(task, seed=seed)
    with DatasetWriter(path) as w:
        for k in range(episodes):
            obs = env.reset(seed=seed + k)
            expert.reset(env)
            frames = {'image/front': [], 'joint_pos': [], 'action': []}
            done = False
            while not done:
                a = expert.act(env)
                frames['image/front'].append(obs['image/front'])
                frames['joint_pos'].append(obs['joint_pos'].astype(np.float32))
                frames['action'].append(a.label.astype(np.float32))
                obs, _, done = env.step(a.executed)
            out = {k: np.stack(v) for k, v in frames.items()}
            n = len(out['action'])
            out['label'] = encode_labels(['demo'] * n)
            out['time'] = np.arange(n) * env.control_dt
            w.append_episode(out, {'task': task, 'joint_names': env.joint_names,
                                   'rate_hz': 1.0 / env.control_dt})
    env.close()
    return path


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_sim_dataset(tmp_path_factory.mktemp('ds') / 'lift')


def tiny_cfg(dataset, **fields) -> TrainConfig:
    base = dict(policy=TINY, dataset=str(dataset), batch_size=16, max_steps=40,
                max_minutes=None, warmup_steps=5, eval_every_minutes=None, log_every=5,
                val_batches=2, progress=False, lr=1e-3)
    return TrainConfig(**{**base, **fields})


def test_tiny_run_learns_and_writes_its_outputs(dataset, tmp_path):
    cfg = tiny_cfg(dataset, max_steps=80, eval_task='lift', eval_episodes=1,
                   eval_every_steps=40, eval_max_steps=30)
    seen = []
    s = train(cfg, tmp_path / 'run', on_checkpoint=seen.append)
    run = tmp_path / 'run'
    assert s['status'] == 'done' and s['step'] == 80 and s['samples_per_s'] > 0
    rows = [r for r in _csv(run / 'log.csv') if r['train_loss']]
    first, last = float(rows[0]['train_loss']), float(rows[-1]['train_loss'])
    assert last < 0.6 * first, f'loss did not fall: {first} -> {last}'
    evals = [r for r in _csv(run / 'log.csv') if r['val_loss']]
    assert [int(r['step']) for r in evals] == [40, 80]
    assert all(0 <= float(r['success_rate']) <= 1 for r in evals)
    assert (run / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    again = load_train_config(run / 'config.yaml')
    assert again == cfg
    assert seen and seen[-1] == s['best']['path'] and Path(seen[-1]).name == 'best'
    policy, extra = load_checkpoint(s['best']['path'])
    assert extra['step'] == s['best']['step'] and extra['evaluation']['success_rate'] in (0, 1)
    obs = {'image/front': np.zeros((32, 32, 3), np.uint8), 'joint_pos': np.zeros(7)}
    policy.reset()
    assert policy.act(obs).shape == (6,)
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['best']['step'] in (40, 80) and summary['train_samples'] > 0


def _csv(path):
    import csv
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def _weights(run: Path) -> dict:
    last = run / 'checkpoints' / 'last'
    return {f: load_file(str(last / f)) for f in ('model.safetensors', 'ema.safetensors',
                                                  'trainer_state.safetensors')}


def test_resume_gives_the_uninterrupted_result(dataset, tmp_path):
    cfg = tiny_cfg(dataset, policy=TINY_LSTM, max_steps=30, eval_every_steps=10)
    full = train(cfg, tmp_path / 'full')
    calls = iter(range(1000))
    stopped = train(cfg, tmp_path / 'cut', should_stop=lambda: next(calls) >= 13)
    assert stopped['status'] == 'stopped' and stopped['step'] == 13
    resumed = train(cfg, tmp_path / 'cut')
    assert resumed['resumed'] and resumed['status'] == 'done' and resumed['step'] == 30
    a, b = _weights(tmp_path / 'full'), _weights(tmp_path / 'cut')
    for f in a:
        for k in a[f]:
            if not k.startswith('rng/'):
                assert torch.equal(a[f][k], b[f][k]), f'{f}:{k} differs after resume'
    assert full['best']['val_loss'] == resumed['best']['val_loss']
    steps = [int(r['step']) for r in _csv(tmp_path / 'cut' / 'log.csv')]
    assert steps == sorted(steps) and steps[-1] == 30
    # A finished run is not trained again; a different config is refused, naming the field.
    assert train(cfg, tmp_path / 'cut')['step'] == 30
    with pytest.raises(TrainError, match='lr'):
        train(tiny_cfg(dataset, policy=TINY_LSTM, max_steps=30, lr=5e-4), tmp_path / 'cut')


def test_best_checkpoint_is_chosen_by_success_then_val_loss(dataset, tmp_path, monkeypatch):
    # Scripted evaluation outcomes (success, val loss) at steps 10, 20, 30, 40 (+ none at
    # the end: the last periodic evaluation is at the final step).
    outcomes = iter([(0.2, 0.9), (0.6, 0.8), (0.6, 0.5), (0.4, 0.1)])
    current = {}

    def val_loss(self):               # runs first at each evaluation
        current['s'], current['v'] = next(outcomes)
        return current['v']

    def rollouts(workers, policy, task, episodes, seed, progress, max_steps, robot=None):
        return {'success_rate': current['s'], 'episodes': episodes}
    monkeypatch.setattr(trainer_mod.Trainer, '_val_loss', val_loss)
    monkeypatch.setattr(trainer_mod, 'evaluate_with', rollouts)
    seen = []
    cfg = tiny_cfg(dataset, eval_task='lift', eval_every_steps=10)
    s = train(cfg, tmp_path / 'run', on_checkpoint=seen.append)
    assert [e['step'] for e in s['evals']] == [10, 20, 30, 40]
    assert s['best']['step'] == 30 and s['best']['success_rate'] == 0.6
    assert len(seen) == 3            # new bests at 10, 20, 30; not at 40 (lower success)
    _, extra = load_checkpoint(s['best']['path'])
    assert extra['step'] == 30
    marked = [int(r['step']) for r in _csv(tmp_path / 'run' / 'log.csv') if r['best']]
    assert marked == [10, 20, 30]


def test_config_rejects_impossible_combinations(dataset, tmp_path):
    with pytest.raises(ValueError, match='max_steps or max_minutes'):
        TrainConfig(max_steps=None, max_minutes=None)
    with pytest.raises(ValueError, match='set eval_task'):
        TrainConfig(select_by='success')
    with pytest.raises(ValueError, match='warmup_steps'):
        TrainConfig(max_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match='unknown label'):
        TrainConfig(label_weights={'expert': 2.0})
    with pytest.raises(ConfigError, match='unknown key'):
        load_train_config(None, ['learning_rate=1'])
    with pytest.raises(ConfigError, match='preset'):
        resolve_policy_config('no_such_preset')
    cfg = load_train_config(None, ['lr=1e-3', 'policy.head.num_modes=3'], max_steps=5,
                            warmup_steps=0)
    assert cfg.lr == 1e-3 and cfg.policy == {'preset': 'lstm_gmm', 'head': {'num_modes': 3}}
    assert resolve_policy_config(cfg.policy).head['num_modes'] == 3
    with pytest.raises(TrainError, match='batch_size'):
        train(tiny_cfg(dataset, batch_size=100000), tmp_path / 'run')


def test_cli_trains_and_evaluates_as_a_subprocess(dataset, tmp_path):
    run = tmp_path / 'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    tiny = json.dumps(TINY)
    out = subprocess.run(
        [sys.executable, '-m', 'il_ros.cli', 'train', '--config', 'demo', '--task', 'lift',
         '--dataset', str(dataset), '--out', str(run), '--max-steps', '20',
         '--set', f'policy={tiny}', '--set', 'batch_size=16', '--set', 'warmup_steps=2',
         '--set', 'eval_episodes=1', '--set', 'eval_task=lift', '--set', 'eval_max_steps=10',
         '--threads', '2'],
        capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'done: 20 steps' in out.stdout
    ev = subprocess.run(
        [sys.executable, '-m', 'il_ros.cli', 'eval', '--checkpoint',
         str(run / 'checkpoints' / 'best'), '--task', 'lift', '--episodes', '2',
         '--max-steps', '15', '--json'],
        capture_output=True, text=True, timeout=240, env=env)
    assert ev.returncode == 0, ev.stderr[-3000:]
    res = json.loads(ev.stdout)
    assert res['episodes'] == 2 and 0.0 <= res['success_rate'] <= 1.0
    assert res['step'] == 20 and sum(res['failures'].values()) + res['successes'] == 2
    bad = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'train', '--out',
                          str(tmp_path / 'x'), '--dataset', str(dataset), '--set', 'lr=-1'],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and 'lr must be > 0' in bad.stderr
