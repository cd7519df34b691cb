"""Training recipes, task overlays and the success table's rows (il_ros/training/config.py).

- every row of bench/success_table.yaml and every recipe x task combination loads and
  validates, down to the PolicyConfig;
- an overlay's ``heads.<head>`` part applies only to that head (the head after ``--set``)
  and ``recipes.<name>`` only to that recipe; ``--set`` and keyword fields win over both;
- without a task a shipped recipe gets its eval_task's overlay, other files load as they are;
- unknown recipes and tasks, and the retired ``{task}_{history}_{head}`` names, fail with a
  message naming what to use;
- named rows resolve to the values the published results were trained with.
"""
from __future__ import annotations

import os
from pathlib import Path
import shlex
import subprocess
import sys

import pytest

from il_ros.config import ConfigError
from il_ros.models import registry
from il_ros.training.config import load_train_config, resolve_policy_config
from il_ros.training.recipes import (recipe_dir, recipe_names, retired_config_hint,
                                     task_names)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'bench'))
import success_table  # noqa: E402 - bench/ is not a package

ROWS = success_table.load_rows()
RECIPES = ('mse_chunk', 'lstm_gmm', 'diffusion', 'lstm_gmm_resnet', 'demo', 'demo_panda')
TASKS = ('lift', 'reach_around', 'path')


def resolved(config, overrides=(), task=None, **fields):
    cfg = load_train_config(config, list(overrides), task=task, **fields)
    return cfg, resolve_policy_config(cfg.policy)


def test_the_shipped_recipes_and_tasks_are_the_decided_ones():
    assert sorted(recipe_names()) == sorted(RECIPES)
    assert sorted(task_names()) == sorted(TASKS)


@pytest.mark.parametrize('rid', list(ROWS))
def test_every_bench_row_loads_and_validates(rid):
    row = ROWS[rid]
    cfg, pcfg = resolved(row['recipe'], row['set'], row['task'])
    assert cfg.eval_task == row['task'] and cfg.eval_seed == 2000
    core, head = success_table.row_kind(row)
    assert (core, head) == (pcfg.core['name'], pcfg.head['name'])
    if not row['variant']:  # matrix ids are TASK_HISTORY_HEAD
        assert rid == f"{row['task']}_{core}_{head}"
        assert pcfg.encoder['name'] == 'conv4'


@pytest.mark.parametrize('task', [None, *TASKS])
@pytest.mark.parametrize('recipe', RECIPES)
def test_every_recipe_loads_with_every_task(recipe, task):
    cfg, pcfg = resolved(recipe, task=task)
    if task is not None:
        assert cfg.eval_task == task
        assert pcfg.cameras == (['front'] if task == 'reach_around' else ['front', 'wrist'])
    # A recipe's own path gives the same config as its name.
    assert load_train_config(recipe_dir() / f'{recipe}.yaml', task=task) == cfg


def test_overlays_name_their_task_and_known_heads_and_recipes():
    import yaml
    for task in TASKS:
        overlay = yaml.safe_load((recipe_dir() / 'tasks' / f'{task}.yaml').read_text())
        assert overlay['eval_task'] == task
        assert set(overlay.get('heads') or {}) <= set(registry.names('head'))
        assert set(overlay.get('recipes') or {}) <= set(RECIPES)


def test_the_overlay_head_part_applies_only_to_its_head():
    lift_gmm = {'num_modes': 2, 'binary_dims': [-1], 'sticky': False}
    for recipe, sets in [('lstm_gmm', []), ('lstm_gmm_resnet', []),
                         ('mse_chunk', ['policy.preset=none_gmm'])]:
        _, pcfg = resolved(recipe, sets, 'lift')
        assert {k: pcfg.head[k] for k in lift_gmm} == lift_gmm, recipe
        _, other = resolved(recipe, sets, 'reach_around')     # no gmm part there
        assert other.head['num_modes'] == 5 and other.head['sticky'] is True
    for recipe, sets in [('mse_chunk', []), ('diffusion', []), ('demo', []),
                         ('lstm_gmm', ['policy.preset=lstm_mse'])]:
        cfg, pcfg = resolved(recipe, sets, 'lift')
        assert pcfg.head['name'] != 'gmm' and 'num_modes' not in pcfg.head
        assert 'head' not in cfg.policy, recipe


def test_path_trains_mse_heads_with_l1_and_leaves_the_others_alone():
    assert resolved('mse_chunk', [], 'path')[1].head['loss'] == 'l1'
    assert resolved('mse_chunk', ['policy.head.loss=mse'], 'path')[1].head['loss'] == 'mse'
    assert resolved('mse_chunk', [], 'lift')[1].head['loss'] == 'mse'
    assert 'loss' not in resolved('mse_chunk', ['policy.preset=none_gmm'], 'path')[1].head


def test_the_overlay_recipe_part_applies_only_to_its_recipe():
    assert load_train_config('lstm_gmm', task='lift').max_steps == 2000
    assert load_train_config('lstm_gmm', task='reach_around').max_steps == 1000
    assert load_train_config('lstm_gmm').max_steps == 1000
    assert load_train_config('lstm_gmm_resnet', task='lift').max_steps == 3000
    assert load_train_config('mse_chunk', ['policy.preset=none_gmm'], task='lift').max_steps \
        == 1000


def test_overrides_and_fields_apply_last():
    cfg, pcfg = resolved('lstm_gmm', ['max_steps=300', 'policy.head.num_modes=3',
                                      'policy.cameras=[wrist]'], 'lift')
    assert cfg.max_steps == 300 and pcfg.head['num_modes'] == 3
    assert pcfg.head['binary_dims'] == [-1] and pcfg.cameras == ['wrist']
    cfg = load_train_config('lstm_gmm', ['max_steps=300'], task='lift', max_steps=170,
                            eval_task='path', dataset=None)
    assert cfg.max_steps == 170 and cfg.eval_task == 'path' and cfg.dataset is None


def test_without_a_task_only_a_shipped_recipe_gets_its_eval_task_overlay(tmp_path):
    # demo names lift: the overlay applies and changes nothing of make demo's config.
    demo = load_train_config('demo')
    assert demo == load_train_config('demo', task='lift')
    assert demo.policy == {'preset': 'none_mse_chunk', 'cameras': ['front', 'wrist'],
                           'encoder': {'name': 'conv4', 'channels': [16, 32, 32, 32]},
                           'action_horizon': 8, 'action_exec': 4}
    assert (demo.max_steps, demo.max_minutes, demo.eval_task, demo.eval_every_steps,
            demo.eval_every_minutes, demo.eval_episodes, demo.eval_seed, demo.batch_size) \
        == (1500, 8, 'lift', 500, None, 20, 2000, 64)
    # The task-free recipes get no overlay: no rollouts, the preset's cameras.
    cfg, pcfg = resolved('lstm_gmm')
    assert cfg.eval_task is None and pcfg.cameras == ['front'] and pcfg.head['num_modes'] == 5
    # Any other file (a run's config.yaml, your own) loads as it is.
    own = tmp_path / 'own.yaml'
    own.write_text('policy: {preset: lstm_gmm}\neval_task: lift\n')
    assert load_train_config(own).policy == {'preset': 'lstm_gmm'}
    assert load_train_config(own, task='lift').policy['cameras'] == ['front', 'wrist']


def test_unknown_recipes_tasks_and_retired_names_say_what_to_use(tmp_path):
    with pytest.raises(ConfigError, match='recipe of .*demo, demo_panda, diffusion, lstm_gmm, '
                                          'lstm_gmm_resnet, mse_chunk'):
        load_train_config('no_such_recipe')
    with pytest.raises(ConfigError, match='task of .*lift, path, reach_around'):
        load_train_config('mse_chunk', task='moon')
    with pytest.raises(ConfigError, match='use --config lstm_gmm --task lift .*'
                                          'bench/success_table.yaml'):
        load_train_config('lift_lstm_gmm')
    with pytest.raises(ConfigError, match='use --config lstm_gmm_resnet --task lift'):
        load_train_config('config/train/lift_lstm_gmm_resnet.yaml')
    with pytest.raises(ConfigError, match='is a task overlay, not a recipe: use --task lift'):
        load_train_config(recipe_dir() / 'tasks' / 'lift.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('heads: {gmm: {policy: {head: {name: mse}}}}\n')
    with pytest.raises(ConfigError, match='does not choose the preset or the head'):
        load_train_config('mse_chunk', task=bad)
    bad.write_text('policy: {cameras: [front]}\nlearning_rate: 1\n')
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) \['learning_rate'\]"):
        load_train_config('mse_chunk', task=bad)


@pytest.mark.parametrize('rid', [r for r in ROWS if not ROWS[r]['variant']])
def test_a_retired_name_suggests_exactly_its_bench_row(rid):
    cli = ' '.join(shlex.quote(a) for a in success_table.train_args(ROWS[rid]))
    assert f'use {cli} (' in retired_config_hint(rid)


def test_named_rows_resolve_to_the_published_settings():
    cfg, pcfg = resolved('lstm_gmm', task='lift')
    assert success_table.row_config(ROWS['lift_lstm_gmm']) == cfg
    assert (pcfg.head['num_modes'], pcfg.head['binary_dims'], pcfg.head['sticky']) \
        == (2, [-1], False)
    assert (cfg.max_steps, cfg.batch_size, pcfg.cameras, pcfg.core['name']) \
        == (2000, 16, ['front', 'wrist'], 'lstm')
    assert (pcfg.action_horizon, pcfg.action_exec, pcfg.seq_len) == (8, 4, 10)
    cfg = success_table.row_config(ROWS['lift_none_gmm'])
    pcfg = resolve_policy_config(cfg.policy)
    assert (cfg.max_steps, cfg.batch_size, pcfg.core['name'], pcfg.head['num_modes']) \
        == (1000, 64, 'none', 2)
    cfg = success_table.row_config(ROWS['reach_around_none_diffusion'])
    pcfg = resolve_policy_config(cfg.policy)
    assert (pcfg.cameras, pcfg.head['prediction_type'], pcfg.obs_horizon, cfg.max_steps,
            cfg.eval_every_steps) == (['front'], 'sample', 2, 2000, 1000)
    cfg = success_table.row_config(ROWS['path_lstm_diffusion'])
    pcfg = resolve_policy_config(cfg.policy)
    assert (pcfg.core['name'], pcfg.obs_horizon, cfg.batch_size, pcfg.cameras) \
        == ('lstm', 1, 16, ['front', 'wrist'])
    cfg = success_table.row_config(ROWS['lift_lstm_gmm_resnet_dart'])
    pcfg = resolve_policy_config(cfg.policy)
    assert ROWS['lift_lstm_gmm_resnet_dart']['dataset'] == 'lift_dart'
    assert (pcfg.encoder['name'], cfg.max_steps, cfg.eval_episodes, pcfg.head['num_modes']) \
        == ('resnet18', 3000, 20, 2)


def test_the_bench_selects_rows_by_id_and_filters(capsys):
    assert success_table.main(['--list', '--tasks', 'lift', '--heads', 'gmm']) == 0
    listed = [line.split(':')[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ['lift_none_gmm', 'lift_lstm_gmm']
    assert success_table.main(['--list', '--rows', 'lift_lstm_gmm_resnet_dart']) == 0
    assert capsys.readouterr().out.startswith(
        'lift_lstm_gmm_resnet_dart: il-ros train --config lstm_gmm_resnet --task lift '
        '--dataset data/datasets/lift_dart')
    assert success_table.main(['--list', '--rows', 'lift_lstm_gmm_k9']) == 2
    assert 'unknown row' in capsys.readouterr().err


def test_the_cli_names_the_replacement_of_a_retired_config(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    out = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'train', '--config',
                          'reach_around_none_gmm', '--out', str(tmp_path / 'run')],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    assert ('use --config mse_chunk --task reach_around --set policy.preset=none_gmm'
            in out.stderr)
    out = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'train', '--config', 'lstm_gmm',
                          '--task', 'moon', '--out', str(tmp_path / 'run')],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and 'lift, path, reach_around' in out.stderr
    assert not (tmp_path / 'run').exists()
