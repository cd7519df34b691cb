"""``il-ros dagger`` end to end over real ROS 2 processes, at toy scale.

Round 0 is given (a dataset of scripted path demos and a policy trained on it for 2 steps);
round 1 deploys that policy through the ``dagger`` graph with the scripted supervisor,
records, converts and appends the episodes, retrains through the trainer node (warm start,
IWR weights), hot-loads the result into the running controller and evaluates it. The
training config is the test's own YAML with the path task's overlay and the run's --set
overrides on top.
"""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip('rclpy')

SIZE = 48
CONFIG = {'policy': {'preset': 'none_mse',
                     'encoder': {'name': 'conv4', 'channels': [8, 8, 8, 8], 'num_kp': 8,
                                 'feat_dim': 16},
                     'proprio_encoder': {'hidden': 32, 'out_dim': 16}, 'crop': SIZE - 4},
          'batch_size': 16, 'max_steps': 3, 'max_minutes': None, 'warmup_steps': 1,
          'eval_every_minutes': None, 'val_fraction': 0.0, 'progress': False}


def demo_dataset(path: Path, episodes: int = 2) -> Path:
    from il_ros.data.store import DatasetWriter, encode_labels
    from il_ros.sim import make_env, make_expert
    env = make_env('path', image_size=(SIZE, SIZE))
    expert = make_expert('path', seed=0)
    with DatasetWriter(path) as w:
        for k in range(episodes):
            obs = env.reset(seed=k)
            expert.reset(env, seed=k)
            fr = {'image/front': [], 'joint_pos': [], 'action': []}
            done = False
            while not done:
                a = expert.act(env).label
                fr['image/front'].append(obs['image/front'])
                fr['joint_pos'].append(obs['joint_pos'].astype(np.float32))
                fr['action'].append(a.astype(np.float32))
                obs, _, done = env.step(a)
            out = {key: np.stack(v) for key, v in fr.items()}
            n = len(out['action'])
            out['label'] = encode_labels(['demo'] * n)
            out['time'] = np.arange(n) * env.control_dt
            w.append_episode(out, {'task': 'path', 'joint_names': env.joint_names,
                                   'rate_hz': 20.0, 'source_bag': f'demo_{k}'})
    env.close()
    return path


def test_one_round_through_the_graph(tmp_path):
    from il_ros.data.store import Dataset, decode_labels
    from il_ros.training.config import load_train_config
    from il_ros.training.trainer import train
    ds = demo_dataset(tmp_path / 'demos')
    cfg_file = tmp_path / 'tiny.yaml'
    cfg_file.write_text(yaml.safe_dump(CONFIG))
    # round 0 resolved as the run resolves it: the path overlay (an L1 mse head), front only
    round0 = train(load_train_config(cfg_file, ['policy.cameras=[front]'], task='path',
                                     dataset=str(ds), max_steps=2), tmp_path / 'round0')
    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'il_ros.dagger', '--task', 'path', '--rounds', '1',
           '--episodes-per-round', '2', '--init-dataset', str(ds), '--init-checkpoint',
           round0['last'], '--config', str(cfg_file), '--weighting', 'iwr',
           '--eval-episodes', '1', '--episode-steps', '40', '--image-size', str(SIZE),
           str(SIZE), '--threads', '1', '--out', str(out),
           '--gate', 'min_takeover_steps=4', '--gate', 'release_steps=2',
           # the path overlay adds the wrist camera; the demos here have the front one only
           '--set', 'policy.cameras=[front]']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    log = res.stdout[-4000:] + res.stderr[-4000:]
    assert res.returncode == 0, log
    report = json.loads((out / 'report.json').read_text())
    r0, r1 = report['rounds']
    assert r0['episodes_added'] == 2 and r1['done'] == ['collect', 'convert', 'train', 'eval']
    episodes = [json.loads(x) for x in (out / 'round_01' / 'episodes.jsonl').read_text()
                .splitlines()]
    assert [e['seed'] for e in episodes] == [3000, 3001]
    assert sum(e['takeovers'] for e in episodes) >= 1, episodes
    # the round's episodes were appended, labelled from the control source
    data = Dataset(out / 'dataset')
    assert data.num_episodes == 2 + r1['episodes_added'] and r1['episodes_added'] >= 1
    labels = [lab for i in range(2, data.num_episodes)
              for lab in decode_labels(data.read('label', i, 0, data.episode_lengths[i]))]
    assert 'intervention' in labels
    assert r1['expert_labelled_steps'] - r0['expert_labelled_steps'] == \
        labels.count('intervention')
    # retrained from round 0's policy with IWR weights, and hot-loaded into the controller
    summary = json.loads((out / 'round_01' / 'train' / 'summary.json').read_text())
    assert summary['status'] == 'done' and summary['label_weights']['hold'] == 0.0
    assert summary['label_weights']['intervention'] > summary['label_weights']['policy']
    saved = yaml.safe_load((out / 'round_01' / 'train' / 'config.yaml').read_text())
    assert saved['init_checkpoint'] == str(Path(round0['last']).resolve())
    assert saved['weighting'] == 'iwr' and saved['eval_task'] == 'path'   # the task overlay
    assert saved['policy']['cameras'] == ['front'] and saved['batch_size'] == 16
    ctl = (out / 'logs' / 'controller.log').read_text()
    assert 'round_01/train/checkpoints/best' in ctl and 'swapped' in ctl, ctl[-2000:]
    assert (out / 'round_01' / 'eval.json').is_file() and r1['success_rate'] is not None
