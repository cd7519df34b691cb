"""bench/peers.py without its heavy dependencies (no lerobot, no training).

The observation -> lerobot batch conversion, the CPU budget's evaluation marks and summary,
the table, and the errors of its arguments. The bench itself (lerobot in a scratch venv,
minutes of training) is a measurement, not a test.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
import peers  # noqa: E402  (bench/ is not a package)


def test_obs_to_batch_is_lerobots_layout():
    rng = np.random.default_rng(0)
    obs = {'joint_pos': rng.normal(size=7), 'image/front': rng.integers(0, 256, (84, 84, 3),
                                                                        dtype=np.uint8),
           'image/wrist': rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)}
    batch = peers.obs_to_batch(obs)
    assert sorted(batch) == ['observation.images.front', 'observation.images.wrist',
                             'observation.state']
    state = batch['observation.state']
    assert state.shape == (1, 7) and state.dtype == torch.float32
    assert np.allclose(state[0].numpy(), obs['joint_pos'].astype(np.float32))
    for cam in ('front', 'wrist'):
        img = batch[f'observation.images.{cam}']
        assert img.shape == (1, 3, 84, 84) and img.dtype == torch.float32
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        # channel c of pixel (y, x) is the HWC image's [y, x, c] / 255
        assert np.allclose(img[0].permute(1, 2, 0).numpy() * 255.0, obs[f'image/{cam}'],
                           atol=1e-3)


def test_budget_marks_evaluations_and_summary():
    successes = iter([0.5, 0.8, 0.7, 0.9])
    b = peers.Budget(10.0, 4.0, lambda: {'success_rate': next(successes)})
    assert b.marks == [1.0, 2.0, 4.0, 8.0, 10.0]
    model = torch.nn.Linear(2, 1)
    b.cpu = 30.0
    b.after_step(8, model)                      # before the first mark: no evaluation
    assert b.evals == []
    for cpu in (61.0, 130.0, 250.0):            # marks 1, 2 and 4 passed
        b.cpu = cpu
        with torch.no_grad():
            model.weight.fill_(cpu)
        b.after_step(8, model)
    assert [e['success'] for e in b.evals] == [0.5, 0.8, 0.7]
    assert float(b.best_state['weight'][0, 0]) == 130.0       # the best so far, a copy
    b.cpu = 600.0
    assert b.done
    b.after_step(8, model, force=True)
    s = b.summary()
    assert s['steps'] == 5 and s['samples'] == 40 and s['best_select'] == 0.9
    assert s['cpu_min_to_80'] == round(130.0 / 60, 2) and s['cpu_min_to_90'] == 10.0
    assert s['samples_per_cpu_s'] == round(40 / 600.0, 1)


def test_table_reports_a_failed_method():
    ok = {'params_M': 0.24, 'samples_per_cpu_s': 160.0, 'steps': 1500, 'train_cpu_min': 9.8,
          'cpu_min_to_80': 2.1, 'cpu_min_to_90': None, 'best_select': 0.8,
          'final_success': 0.86, 'final_episodes': 50, 'act_ms_p50': 0.3, 'act_ms_p99': 9.0,
          'plan_ms_p50': 2.9}
    md = peers._table({'il_ros': ok, 'act': {'error': 'train: ImportError: x'}}, 10)
    lines = md.splitlines()
    assert len(lines) == 4 and all(line.count('|') == 11 for line in lines)
    assert '| 2.1 | not reached (best 80%) | 80% of 10 | 86% of 50 |' in lines[2]
    assert 'failed: train: ImportError: x' in lines[3]


def test_bad_arguments_and_a_missing_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        peers.main(['--budget-min', '0'])
    assert e.value.code == 2
    assert '--budget-min' in capsys.readouterr().err
    rc = peers.main(['--dataset', str(tmp_path), '--out', str(tmp_path / 'out'),
                     '--methods', 'il_ros'])
    assert rc == 2
    assert f'--dataset {tmp_path}: not an il_ros dataset' in capsys.readouterr().err
