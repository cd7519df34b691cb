"""Where training computes (TrainConfig.device, il_ros.training.device).

- ``auto`` is the CPU here (no CUDA), ``cpu``/``cuda``/``cuda:N`` are the names, anything
  else or a GPU that is not there is refused naming ``device``; the summary says where the
  run trained, and ``device`` may change when a run resumes;
- batches move to the device whole (nested dicts), and rollouts get a CPU copy of a GPU
  policy;
- on a CUDA machine (skipped elsewhere, with the reason): a tiny run trains on the GPU with
  in-training rollouts in the sim, writes CPU checkpoints that load and act on the CPU
  like the GPU weights, and resumes on the CPU.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from il_ros.config import ConfigError
from il_ros.models import load_checkpoint
from il_ros.training import device as dv
from il_ros.training.config import load_train_config, TrainConfig
from il_ros.training.trainer import train, Trainer, TrainInputError

from test_training import make_sim_dataset, tiny_cfg  # noqa: I100

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason='needs a CUDA GPU (PyTorch sees none here)')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_sim_dataset(tmp_path_factory.mktemp('ds') / 'lift', episodes=4)


def test_device_names(monkeypatch):
    for good in ('auto', 'cpu', 'cuda', 'cuda:0', 'cuda:12'):
        dv.check_device_name(good)
        TrainConfig(dataset='x', device=good)
    for bad in ('gpu', 'cuda:', 'CPU', 'cuda:x', 'mps', 3, None):
        with pytest.raises(ValueError, match='device must be auto, cpu, cuda or cuda:N'):
            TrainConfig(dataset='x', device=bad)
    with pytest.raises(ConfigError, match="device must be"):
        load_train_config('mse_chunk', ['device=tpu'], task='lift')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert dv.resolve_device('auto') == dv.resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='device cuda: PyTorch sees no CUDA GPU'):
        dv.resolve_device('cuda')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert dv.resolve_device('auto') == torch.device('cuda')
    assert dv.resolve_device('cuda:1') == torch.device('cuda:1')
    with pytest.raises(ValueError, match=r'device cuda:2: this machine has 2 CUDA GPU\(s\), '
                                         r'cuda:0..cuda:1'):
        dv.resolve_device('cuda:2')


def test_batches_move_whole_and_rollouts_get_a_cpu_policy():
    batch = {'obs': {'image/front': torch.zeros(2, 3, dtype=torch.uint8)},
             'action': torch.ones(2, 4), 'pair': [torch.zeros(1), 'x'], 'n': 3}
    out = dv.to_device(batch, torch.device('cpu'))
    assert out['obs']['image/front'].dtype == torch.uint8 and out['n'] == 3
    assert out['pair'][1] == 'x' and torch.equal(out['action'], batch['action'])
    net = torch.nn.Linear(2, 2)
    assert dv.on_cpu(net) is net                     # already there: no copy
    assert dv.on_cpu(torch.nn.ReLU()).__class__ is torch.nn.ReLU   # no parameters


def test_a_cpu_run_says_where_it_trained_and_refuses_a_missing_gpu(dataset, tmp_path):
    s = train(tiny_cfg(dataset, max_steps=4, warmup_steps=1, device='cpu'), tmp_path / 'run')
    assert s['status'] == 'done' and s['device'] == 'cpu'
    if not torch.cuda.is_available():
        with pytest.raises(TrainInputError, match='device cuda:0: PyTorch sees no CUDA GPU'):
            Trainer(tiny_cfg(dataset, device='cuda:0'), tmp_path / 'gpu')
    # device is a budget field: the run resumes elsewhere (here: 'auto')
    s = train(tiny_cfg(dataset, max_steps=6, warmup_steps=1, device='auto'), tmp_path / 'run')
    assert s['step'] == 6 and s['resumed']


@CUDA
def test_trains_on_the_gpu_and_deploys_on_the_cpu(dataset, tmp_path):
    cfg = tiny_cfg(dataset, max_steps=40, device='cuda', eval_task='lift', eval_episodes=1,
                   eval_every_steps=20, eval_max_steps=20)
    s = train(cfg, tmp_path / 'run')
    assert s['status'] == 'done' and s['device'].startswith('cuda')
    assert all(e['val_loss'] is not None and e['success_rate'] is not None for e in s['evals'])
    # the checkpoint holds CPU tensors and acts on the CPU as the GPU weights do
    cpu, _ = load_checkpoint(s['last'])
    assert all(p.device.type == 'cpu' for p in cpu.parameters())
    gpu, _ = load_checkpoint(s['last'])
    gpu.to('cuda')
    obs = {'image/front': np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8),
           'joint_pos': np.zeros(7)}
    cpu.reset(seed=0)
    a = cpu.act(obs)
    back = dv.on_cpu(gpu)
    assert back is not gpu and next(back.parameters()).device.type == 'cpu'
    back.reset(seed=0)
    np.testing.assert_allclose(back.act(obs), a, rtol=0, atol=1e-6)
    # a GPU batch's loss matches the CPU's within bf16 autocast's rounding
    t = Trainer(cfg, tmp_path / 'probe')
    t._build()
    batch = t.train_set.batch(np.arange(8))
    cpu.train(False)
    gpu.train(False)
    with torch.no_grad():
        lc = float(cpu.loss(batch))
        lg = float(gpu.loss(dv.to_device(batch, torch.device('cuda'))))
    assert abs(lg - lc) <= 0.05 * abs(lc) + 1e-3, (lg, lc)
    # and the run resumes on the CPU
    s2 = train(tiny_cfg(dataset, max_steps=44, device='cpu', eval_task='lift',
                        eval_episodes=1, eval_every_steps=20, eval_max_steps=20),
               tmp_path / 'run')
    assert s2['resumed'] and s2['step'] == 44 and s2['device'] == 'cpu'
    assert json.loads((tmp_path / 'run' / 'summary.json').read_text())['device'] == 'cpu'
