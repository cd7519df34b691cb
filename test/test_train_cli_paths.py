"""``il-ros train`` and ``il-ros eval`` with bad paths and numbers: one line, exit 2.

Each case runs the commands' parser entry (il_ros.train_cli.main) in this process; one runs
``il-ros`` as a subprocess, to show that no traceback reaches the terminal.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import tiny_sim_checkpoint
from il_ros import train_cli


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp('paths')
    (root / 'a_file').write_text('not a folder')
    (root / 'empty').mkdir()
    return {'file': root / 'a_file', 'empty': root / 'empty', 'root': root,
            'ckpt': tiny_sim_checkpoint(root / 'ckpt')}


TRAIN = [
    (['--dataset', '/nope'], '/nope: no dataset here (folder does not exist)'),
    (['--dataset', '{file}'], '{file}: not a dataset (a file, not a dataset folder)'),
    (['--dataset', '{empty}'], '{empty}: not an il_ros dataset (no manifest.json)'),
    ([], 'no dataset: pass --dataset'),
    (['--dataset', '/nope', '--out', '{file}'],
     'run folder {file} exists and is not a folder; choose another --out'),
    (['--dataset', '/nope', '--out', '{file}/run'], 'run folder {file}/run: {file} is not a '
     'folder'),
    (['--config', '/nope.yaml', '--dataset', '/nope'], "training config '/nope.yaml' not found"),
    (['--dataset', '/nope', '--set', 'init_checkpoint=/nope'],
     'init_checkpoint /nope: no such folder'),
    (['--dataset', '/nope', '--threads', '0'], '--threads must be >= 1, got 0'),
    (['--dataset', '/nope', '--max-steps', '0'], 'max_steps must be a positive integer'),
]
EVAL = [
    (['--checkpoint', '/nope'], '/nope: no checkpoint here'),
    (['--checkpoint', '{file}'], '{file}: no checkpoint here'),
    (['--checkpoint', '{empty}'], '{empty}: no checkpoint here'),
    (['--checkpoint', '{ckpt}', '--task', 'nope'], "unknown task 'nope'"),
    (['--checkpoint', '{ckpt}', '--episodes', '0'], 'episodes must be >= 1, got 0'),
    (['--checkpoint', '{ckpt}', '--max-steps', '0'], '--max-steps must be >= 1, got 0'),
    (['--checkpoint', '{ckpt}', '--seed', '-1'], '--seed must be >= 0, got -1'),
    (['--checkpoint', '{ckpt}', '--threads', '-2'], '--threads must be >= 1, got -2'),
]


def _run(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = train_cli.main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize('args,message', TRAIN, ids=[' '.join(a) or 'none' for a, _ in TRAIN])
def test_train_bad_paths_give_one_line_and_exit_2(args, message, paths, capsys):
    args = [a.format(**paths) for a in args]
    if '--out' not in args:
        args += ['--out', str(paths['root'] / 'run')]
    code, lines = _run(['train', *args], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith('il-ros train: ') and message.format(**paths) in lines[0], lines
    assert not (paths['root'] / 'run').exists()


@pytest.mark.parametrize('args,message', EVAL, ids=[' '.join(a) for a, _ in EVAL])
def test_eval_bad_paths_give_one_line_and_exit_2(args, message, paths, capsys):
    args = [a.format(**paths) for a in args]
    if '--task' not in args:
        args += ['--task', 'lift']
    code, lines = _run(['eval', *args], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith('il-ros eval: ') and message.format(**paths) in lines[0], lines


def test_the_command_prints_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'train', '--dataset', '/nope',
                          '--out', str(tmp_path / 'run')], capture_output=True, text=True,
                         timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 2
    assert out.stderr == 'il-ros train: /nope: no dataset here (folder does not exist)\n'
