"""Rollouts split over worker processes (il_ros.training.parallel_eval).

- seeds split into contiguous blocks whose sizes differ by at most one;
- the blocks' counters merge (sums, nested dicts, tick-weighted means);
- real worker processes give the same episodes as one process, and a training run with
  ``eval_workers=2`` evaluates through them; objects of this process are refused.
"""
from __future__ import annotations

import pytest

from il_ros.models import load_checkpoint
from il_ros.training.evaluate import evaluate
from il_ros.training.parallel_eval import (evaluate_in_workers, evaluate_with, merge_results,
                                           split_seeds)
from il_ros.training.trainer import train

from test_training import make_sim_dataset, tiny_cfg  # noqa: I100


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp('pe')
    ds = make_sim_dataset(root / 'lift', episodes=3)
    s = train(tiny_cfg(ds, max_steps=4, warmup_steps=1, device='cpu', eval_task='lift',
                       eval_episodes=3, eval_every_steps=4, eval_max_steps=6,
                       eval_workers=2), root / 'run')
    return ds, s


def test_seed_blocks():
    assert split_seeds(1000, 5, 2) == [(1000, 3), (1003, 2)]
    assert split_seeds(0, 2, 8) == [(0, 1), (1, 1)]
    assert split_seeds(7, 4, 1) == [(7, 4)]
    blocks = split_seeds(1000, 50, 15)
    assert sum(n for _, n in blocks) == 50 and {n for _, n in blocks} == {3, 4}
    assert [s for s, _ in blocks] == sorted(s for s, _ in blocks)


def _part(seed, successes, ticks, act_ms):
    per = [{'seed': seed + k, 'success': ok, 'steps': 10, 'failure': None if ok else 'timeout',
            'mode': None} for k, ok in enumerate(successes)]
    return {'task': 'lift', 'max_steps': 10, 'per_episode': per, 'loop': True,
            'ticks': ticks, 'act_ms': act_ms, 'safety': {'ok': ticks, 'clamped': 1},
            'chunks': {'checked': 3}, 'faults': 0, 'cpu_s': 1.5, 'wall_s': 9.0}


def test_blocks_merge_into_one_result():
    res = merge_results('lift', 1000, [_part(1000, [True, False], 20, 2.0),
                                       _part(1002, [True], 10, 5.0)])
    assert res['episodes'] == 3 and res['successes'] == 2 and res['seed'] == 1000
    assert [e['seed'] for e in res['per_episode']] == [1000, 1001, 1002]
    assert res['ticks'] == 30 and res['safety'] == {'ok': 30, 'clamped': 2}
    assert res['chunks'] == {'checked': 6} and res['cpu_s'] == 3.0 and res['loop'] is True
    assert res['act_ms'] == pytest.approx(3.0)          # (2*20 + 5*10) / 30
    assert res['failures'] == {'timeout': 1}


def test_workers_give_the_episodes_of_one_process(run):
    ds, s = run
    policy, _ = load_checkpoint(s['last'])
    one = evaluate(policy, 'lift', 3, seed=1000, progress=False, max_steps=6)
    two = evaluate_in_workers(policy, 'lift', 3, 1000, 2, max_steps=6)
    assert two['workers'] == 2 and two['episodes'] == 3
    strip = [{k: e[k] for k in ('seed', 'success', 'steps', 'failure')}
             for e in one['per_episode']]
    assert [{k: e[k] for k in ('seed', 'success', 'steps', 'failure')}
            for e in two['per_episode']] == strip
    assert two['ticks'] == one['ticks'] and two['success_rate'] == one['success_rate']
    assert evaluate_with(1, policy, 'lift', 1, 1000, progress=False, max_steps=6)['episodes'] == 1
    with pytest.raises(ValueError, match='env is an object of this process'):
        evaluate_in_workers(policy, 'lift', 2, 1000, 2, env=object())


def test_a_training_run_evaluates_in_workers(run):
    _, s = run
    assert s['status'] == 'done' and s['evals'][-1]['success_rate'] is not None
    assert s['evals'][-1]['step'] == 4


def test_eval_cli_splits_episodes_over_workers(run, capsys):
    import json

    from il_ros.train_cli import main
    _, s = run
    base = ['eval', '--checkpoint', s['last'], '--task', 'lift', '--episodes', '3',
            '--max-steps', '6', '--json']
    assert main(base + ['--workers', '2']) == 0
    res = json.loads(capsys.readouterr().out)
    assert res['workers'] == 2 and res['episodes'] == 3 and res['device'] == 'cpu'
    assert main(base + ['--workers', '0']) == 2
    assert '--workers must be >= 1, got 0' in capsys.readouterr().err
    assert main(base + ['--workers', '2', '--device', 'auto']) == 2
    assert '--workers is for --transport inproc on the CPU' in capsys.readouterr().err


def _in_daemon(checkpoint, out):
    from il_ros.models import load_checkpoint as load
    policy, _ = load(checkpoint)
    out.put(evaluate_in_workers(policy, 'lift', 2, 1000, 2, max_steps=6)['episodes'])


def test_workers_start_from_a_daemonic_process_and_report_a_failure(run):
    # the trainer node's worker is a daemonic process: multiprocessing could not start
    # children there, plain subprocesses can
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    out = ctx.Queue()
    p = ctx.Process(target=_in_daemon, args=(run[1]['last'], out), daemon=True)
    p.start()
    try:
        assert out.get(timeout=120) == 2
    finally:
        p.join(30)
    policy, _ = load_checkpoint(run[1]['last'])
    with pytest.raises(RuntimeError, match=r'evaluation worker 0 \(seeds 1000..1000\) exited'):
        evaluate_in_workers(policy, 'lift', 2, 1000, 2, max_steps=6, robot='no_such_robot')
