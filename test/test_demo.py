"""`il-ros demo` end to end, made small.

2 recorded episodes, 20 training steps, 1 episode deployed through the controller node over
ROS 2. It checks the plumbing and the report; the success of the full demo is measured by
`make demo` (README).
"""
import json
import subprocess
import sys

import pytest
import yaml


@pytest.mark.timeout(420)
def test_demo_runs_the_whole_loop(tmp_path):
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text(yaml.safe_dump({
        'policy': {'preset': 'none_mse_chunk', 'cameras': ['front', 'wrist'],
                   'encoder': {'name': 'conv4', 'channels': [8, 8, 8, 8]},
                   'action_horizon': 4, 'action_exec': 2},
        'batch_size': 8, 'max_steps': 20, 'max_minutes': None, 'warmup_steps': 5,
        'eval_task': 'lift', 'eval_episodes': 1, 'eval_every_minutes': None,
        'eval_max_steps': 10, 'progress': False}))
    out = tmp_path / 'demo'
    p = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'demo', '--out', str(out),
                        '--episodes', '2', '--config', str(cfg), '--eval-episodes', '1',
                        '--threads', '1'], capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for k in range(1, 7):
        assert f'[demo {k}/6]' in p.stdout
    rep = json.loads((out / 'report.json').read_text())
    assert rep['episodes_recorded'] == 2 and rep['train']['step'] == 20
    # the success rates are the share of successful episodes in the per-episode outcomes, on
    # the same seeds over ROS 2 and in-process
    for where in ('ros', 'inproc'):
        eps = rep[f'episodes_{where}']
        assert len(eps) == rep[where]['episodes'] == rep['eval_episodes'] == 1
        wins = sum(e['success'] is True for e in eps)
        assert rep[f'success_{where}'] == wins / len(eps) == rep[where]['success_rate']
        assert rep[where]['successes'] == wins
        assert all(e['success'] or e['failure'] for e in eps), eps
    assert [e['seed'] for e in rep['episodes_ros']] == [e['seed'] for e in rep['episodes_inproc']]
    assert rep['ros']['controller']['policy_ticks'] > 0     # the policy drove the sim robot
    assert (out / 'success.png').stat().st_size > 1000
    md = (out / 'report.md').read_text()
    assert (f"Success through the controller node over ROS 2: **{rep['success_ros']:.0%}**"
            in md) and f"in-process {rep['success_inproc']:.0%} on the same seeds" in md
    assert f"success {rep['success_ros']:.0%} through the controller node" in p.stdout
    assert (out / 'dataset' / 'inspect' / 'contact_sheet.png').is_file()
    assert (out / 'train' / 'curves.png').is_file()
