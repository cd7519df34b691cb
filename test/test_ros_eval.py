"""``il-ros eval --transport ros``: rollouts through sim_robot + controller processes.

A tiny random-init checkpoint for the sim arm runs two short lift episodes in real time:
the result has evaluate()'s shape, the episodes use seeds EVAL_SEED + k, each runs to the
step limit under the policy (no underruns), and a checkpoint for another robot is refused
before any process starts.
"""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')

from il_ros.keys import EVAL_SEED  # noqa: E402
from il_ros.models.policy import CheckpointMismatch  # noqa: E402


def sim_checkpoint(path, image_size=(84, 84)):
    import torch

    from il_ros.models.policy import build_policy, save_checkpoint
    from il_ros.models.presets import preset
    from il_ros.training.spec import sim_spec
    torch.manual_seed(0)
    spec = sim_spec('lift')
    spec.image_size = tuple(image_size)
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1],
                                      'num_kp': 4, 'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]}, crop=None)
    a, j = spec.action_dim, spec.proprio_dim
    stats = {'action': {'min': [-0.2] * a, 'max': [0.2] * a},
             'joint_pos': {'mean': [0.0] * j, 'std': [0.5] * j},
             'image/front': {'mean': [0.5] * 3, 'std': [0.25] * 3}}
    return str(save_checkpoint(build_policy(cfg, spec, stats), path))


def test_ros_eval_bookkeeping(tmp_path):
    from il_ros.ros.ros_eval import evaluate_ros
    ckpt = sim_checkpoint(tmp_path / 'ckpt', image_size=(48, 48))
    res = evaluate_ros(ckpt, 'lift', episodes=2, max_steps=12, progress=False,
                       log_dir=tmp_path / 'logs')
    assert res['transport'] == 'ros' and res['episodes'] == 2 and res['max_steps'] == 12
    assert [e['seed'] for e in res['per_episode']] == [EVAL_SEED, EVAL_SEED + 1]
    assert res['success_rate'] == 0.0 and res['failures'] == {'timeout': 2}
    assert all(e['steps'] == 12 for e in res['per_episode'])
    for key in ('successes', 'mean_steps', 'failure_rates', 'modes', 'act_ms', 'cpu_s',
                'wall_s'):
        assert key in res
    ctl = res['controller']
    assert ctl['policy_ticks'] >= 16 and ctl['underruns'] == 0 and ctl['tick_errors'] == 0
    assert res['act_ms'] > 0


def test_ros_eval_refuses_another_robot_before_starting(tmp_path):
    from il_ros.ros.ros_eval import evaluate_ros
    ckpt = sim_checkpoint(tmp_path / 'ckpt')
    import json
    from pathlib import Path
    meta = json.loads((Path(ckpt) / 'policy.json').read_text())
    meta['spec']['control_rate_hz'] = 7.0                # no integer number of physics steps
    (Path(ckpt) / 'policy.json').write_text(json.dumps(meta))
    with pytest.raises(CheckpointMismatch, match='control_rate_hz 7.0 != 20.0'):
        evaluate_ros(ckpt, 'lift', episodes=1, progress=False, log_dir=tmp_path / 'logs')
    assert not (tmp_path / 'logs').exists()
