"""Interrupted episodes at conversion, and bad paths of convert, bag-info, inspect, bag-recover.

An ``incomplete`` episode (recorder shut down mid-episode) and a ``recording`` leftover are
skipped with a line naming them, or (incomplete only) converted and labelled with
``--keep-incomplete``. Every bad path is one line on stderr and exit code 2.
"""
from __future__ import annotations

import json
import subprocess
import sys

from il_ros.data.store import Dataset
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag

CLI = [sys.executable, '-m', 'il_ros.cli']


def _episode(bags, i, status, **meta):
    bag = write_synthetic_bag(bags / f'episode_{i:04d}', SyntheticBagSpec(seed=i))
    bag.with_suffix('.json').write_text(json.dumps({'status': status, 'success': True,
                                                    'warnings': [], 'error': None, **meta}))
    return bag


def _cli(*args, timeout=300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _one_line_error(res, *words):
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(lines) == 1 and 'Traceback' not in res.stderr, res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_interrupted_episodes_are_skipped_unless_kept(tmp_path):
    bags = tmp_path / 'bags'
    _episode(bags, 0, 'complete')
    _episode(bags, 1, 'incomplete',
             warnings=['the recorder was shut down during the episode'])
    _episode(bags, 2, 'recording')                  # a leftover whose bag happens to be whole
    res = _cli('convert', str(bags), '--out', str(tmp_path / 'ds'))
    assert res.returncode == 0, res.stdout + res.stderr       # skipped is not rejected
    lines = {ln.split()[1]: ln for ln in res.stdout.splitlines() if ln.startswith(
        ('converted', 'skipped', 'rejected'))}
    assert lines['episode_0000'].startswith('converted')
    assert lines['episode_0001'].startswith('skipped')
    assert 'incomplete episode (the recorder was shut down during the episode)' in lines[
        'episode_0001'] and '--keep-incomplete' in lines['episode_0001']
    assert lines['episode_0002'].startswith('skipped') and 'partial episode' in lines[
        'episode_0002']
    assert Dataset(tmp_path / 'ds').num_episodes == 1

    res = _cli('convert', str(bags), '--out', str(tmp_path / 'ds2'), '--keep-incomplete')
    assert res.returncode == 0, res.stdout + res.stderr
    assert '-> episode 1, success=True (incomplete)' in res.stdout
    report = {r['bag'].rsplit('/', 1)[1]: r for r in json.loads(
        (tmp_path / 'ds2' / 'conversion_report.json').read_text())['runs'][-1]['episodes']}
    kept = report['episode_0001']
    assert kept['status'] == 'converted' and kept['episode_status'] == 'incomplete'
    assert any(w.startswith('converted an incomplete episode (--keep-incomplete): the '
                            'recorder was shut down') for w in kept['warnings'])
    assert report['episode_0002']['status'] == 'skipped'      # never converted
    ds = Dataset(tmp_path / 'ds2')
    assert ds.num_episodes == 2
    assert [ds.meta(i)['episode_status'] for i in range(2)] == ['complete', 'incomplete']


def test_convert_out_is_a_file(tmp_path):
    _episode(tmp_path / 'bags', 0, 'complete')
    out = tmp_path / 'not_a_folder'
    out.write_text('x')
    _one_line_error(_cli('convert', str(tmp_path / 'bags'), '--out', str(out)),
                    'il-ros convert:', str(out))
    _one_line_error(_cli('convert', str(tmp_path / 'bags'), '--out', str(out / 'ds')),
                    'il-ros convert:')


def test_bad_paths_of_bag_info_inspect_and_bag_recover(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('x')
    _one_line_error(_cli('bag-info', str(text)), 'il-ros bag-info:', str(text))
    _one_line_error(_cli('bag-info', str(tmp_path / 'nope')), 'il-ros bag-info:')
    _one_line_error(_cli('inspect', str(tmp_path / 'nope')), 'il-ros inspect:')
    _one_line_error(_cli('inspect', str(text)), 'il-ros inspect:')
    _one_line_error(_cli('bag-recover', str(tmp_path / 'nope')), 'il-ros bag-recover:')
    sqlite = write_synthetic_bag(tmp_path / 'sq', SyntheticBagSpec(storage='sqlite3'))
    res = _cli('bag-recover', str(sqlite))
    assert res.returncode == 1 and 'sqlite3 bags commit only when the episode stops' in \
        res.stderr, res.stderr
