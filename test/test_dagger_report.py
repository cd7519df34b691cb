"""The per-round report of ``il-ros dagger``: report.json, report.md and report.png.

A state dict is built the way il_ros/dagger/rounds.py fills ``state['rounds'][k]`` (data,
collect from the real ``collect_summary``, train, eval, checkpoint) and written with
``write_report``:

- every round's row has its success, intervention rate, takeovers per episode and the
  labelled steps, added and in total; the markdown table shows them and links the plot;
- report.png is a real PNG of a sensible size, drawn again after every round;
- a round still in progress (no evaluation yet) and round 0 alone leave the missing values
  out of the plot instead of drawing them as 0;
- a plot that cannot be written costs a warning, not the JSON or the markdown.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
import struct

import pytest

from il_ros.dagger import DaggerConfig
from il_ros.dagger.data import collect_summary
from il_ros.dagger.report import plot_series, write_report

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
GREEN = (0x2c / 255, 0xa0 / 255, 0x2c / 255)     # tab:green, the evaluation success line
LINK = '![success, intervention rate and takeovers per round](report.png)'


def config(out: Path, **kw) -> DaggerConfig:
    return DaggerConfig(**{'task': 'path', 'out': str(out), 'rounds': 2,
                           'episodes_per_round': 4, 'demos': 20, 'eval_episodes': 20,
                           'cameras': ('front',), **kw})


def round0(success=0.15) -> dict:
    r = {'round': 0, 'done': ['data', 'train'],
         'data': {'episodes': 20, 'frames': 4579, 'labels': {'demo': 4579},
                  'expert_labelled': 4579, 'dataset_episodes': 20},
         'checkpoint': 'round_00/train/best.pt',
         'train': {'step': 1000, 'train_s': 120.0}}
    if success is not None:
        r['done'].append('eval')
        r['eval'] = {'success_rate': success, 'failures': {}, 'mean_steps': 120.0}
    return r


def episode(success: bool, ticks: int, human: int, takeovers: int) -> dict:
    """One deployed episode's result, as DaggerDriver.run_episode reports it."""
    return {'seed': 3000, 'success': success, 'failure': None if success else 'off_path',
            'steps': ticks, 'ticks': ticks, 'human_ticks': human,
            'policy_ticks': ticks - human, 'takeovers': takeovers, 'wall_s': 10.0,
            'bag': 'episode_0000'}


def round_k(k: int, episodes: list[dict], labelled: int | None, success: float | None):
    """Round k >= 1 after collect, and after convert/train/eval unless ``labelled`` is None."""
    r = {'round': k, 'done': ['collect'], 'collect': collect_summary(episodes)}
    if labelled is None:
        return r
    r['done'] += ['convert', 'train', 'eval']
    r['data'] = {'episodes': len(episodes), 'frames': sum(e['ticks'] for e in episodes),
                 'labels': {}, 'expert_labelled': labelled,
                 'dataset_episodes': 20 + k * len(episodes)}
    r['checkpoint'] = f'round_{k:02d}/train/best.pt'
    r['train'] = {'step': 1000 * (k + 1), 'train_s': 100.0}
    r['eval'] = {'success_rate': success, 'failures': {}, 'mean_steps': 100.0}
    return r


def two_rounds() -> dict:
    return {'rounds': {
        '0': round0(),
        '1': round_k(1, [episode(True, 100, 20, 2), episode(False, 100, 10, 1),
                         episode(True, 100, 0, 0), episode(False, 100, 30, 3)], 60, 0.6),
        '2': round_k(2, [episode(True, 100, 4, 1), episode(True, 100, 0, 0),
                         episode(True, 100, 8, 1), episode(True, 100, 4, 0)], 16, 0.85)}}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f'{path} is not a PNG'
    assert data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


def green_pixels(path: Path) -> int:
    """Pixels of the evaluation success colour in the image."""
    import matplotlib.image
    import numpy as np
    img = matplotlib.image.imread(path)[..., :3]
    return int((np.abs(img - np.array(GREEN)).max(axis=-1) < 0.03).sum())


def table(md: str) -> list[list[str]]:
    """The cells of the markdown table's rows (header and separator left out)."""
    rows = [line for line in md.splitlines() if line.startswith('| ')]
    return [[c.strip() for c in line.strip('|').split('|')] for line in rows[1:]]


def test_rounds_in_json_markdown_and_plot(tmp_path):
    cfg = config(tmp_path)
    report = write_report(tmp_path, cfg, two_rounds())
    rows = json.loads((tmp_path / 'report.json').read_text())['rounds']
    assert rows == report['rounds']
    assert [r['round'] for r in rows] == [0, 1, 2]
    assert [r['expert_labelled_added'] for r in rows] == [4579, 60, 16]
    assert [r['expert_labelled_steps'] for r in rows] == [4579, 4639, 4655]
    assert [r['success_rate'] for r in rows] == [0.15, 0.6, 0.85]
    assert [r['collect_success_rate'] for r in rows] == [None, 0.5, 1.0]
    assert [r['intervention_rate'] for r in rows] == [None, 0.15, 0.04]
    assert [r['takeovers_per_episode'] for r in rows] == [None, 1.5, 0.5]

    md = (tmp_path / 'report.md').read_text()
    header = next(line for line in md.splitlines() if line.startswith('| round'))
    assert 'labelled steps added' in header and 'takeovers/episode' in header
    assert table(md) == [
        ['0', '20', '4579', '4579', '15%', '-', '-', '-'],
        ['1', '4', '60', '4639', '60%', '50%', '15%', '1.5'],
        ['2', '4', '16', '4655', '85%', '100%', '4%', '0.5']]
    assert LINK in md

    png = tmp_path / 'report.png'
    w, h = png_size(png)
    assert 400 <= w <= 2000 and 200 <= h <= 1200, (w, h)
    assert 10_000 < png.stat().st_size < 1_000_000
    assert green_pixels(png) > 50, 'the evaluation success is drawn'
    assert not list(tmp_path.glob('.*tmp*')), 'no temp file left behind'

    series = plot_series(rows)
    assert series['success'] == [(4579, 0.15, 0), (4639, 0.6, 1), (4655, 0.85, 2)]
    assert series['collect_success'] == [(4639, 0.5, 1), (4655, 1.0, 2)]
    assert series['intervention_rate'] == [(1, 0.15), (2, 0.04)]
    assert series['takeovers_per_episode'] == [(1, 1.5), (2, 0.5)]


def test_plot_is_rewritten_after_every_round(tmp_path):
    cfg = config(tmp_path)
    state = {'rounds': {'0': round0()}}
    write_report(tmp_path, cfg, state)
    first = (tmp_path / 'report.png').read_bytes()
    state = two_rounds()
    write_report(tmp_path, cfg, state)
    assert (tmp_path / 'report.png').read_bytes() != first
    assert len(table((tmp_path / 'report.md').read_text())) == 3


def test_round_in_progress_leaves_its_missing_values_out(tmp_path):
    cfg = config(tmp_path)
    state = two_rounds()
    state['rounds']['2'] = round_k(2, [episode(True, 100, 10, 1), episode(False, 50, 0, 0)],
                                   None, None)              # collected, not converted yet
    rows = write_report(tmp_path, cfg, state)['rounds']
    assert rows[2]['success_rate'] is None and rows[2]['expert_labelled_added'] is None
    assert rows[2]['expert_labelled_steps'] == rows[1]['expert_labelled_steps']
    assert rows[2]['intervention_rate'] == pytest.approx(10 / 150)
    assert rows[2]['takeovers_per_episode'] == 0.5
    assert table((tmp_path / 'report.md').read_text())[2] == \
        ['2', '-', '-', '4639', '-', '50%', '7%', '0.5']
    series = plot_series(rows)
    assert [p[2] for p in series['success']] == [0, 1]
    assert [p[2] for p in series['collect_success']] == [1, 2]
    assert [p[0] for p in series['intervention_rate']] == [1, 2]
    png_size(tmp_path / 'report.png')


def test_round_zero_only(tmp_path):
    cfg = config(tmp_path, rounds=0)
    rows = write_report(tmp_path, cfg, {'rounds': {'0': round0(success=None)}})['rounds']
    assert len(rows) == 1 and rows[0]['success_rate'] is None
    series = plot_series(rows)
    assert all(not points for points in series.values())
    png = tmp_path / 'report.png'
    png_size(png)
    assert green_pixels(png) == 0, 'a success not measured yet is not drawn (as 0 or at all)'
    assert table((tmp_path / 'report.md').read_text()) == [
        ['0', '20', '4579', '4579', '-', '-', '-', '-']]

    write_report(tmp_path, cfg, {'rounds': {'0': round0(success=0.4)}})
    assert plot_series(json.loads((tmp_path / 'report.json').read_text())['rounds'])[
        'success'] == [(4579, 0.4, 0)]
    assert green_pixels(png) > 50


def test_a_plot_that_fails_keeps_the_report(tmp_path, caplog):
    """report.png cannot replace a folder of that name: JSON and markdown are written."""
    (tmp_path / 'report.png').mkdir()
    (tmp_path / 'report.png' / 'keep').write_text('x')
    with caplog.at_level(logging.WARNING, logger='il_ros.dagger.report'):
        write_report(tmp_path, config(tmp_path), two_rounds())
    assert len(json.loads((tmp_path / 'report.json').read_text())['rounds']) == 3
    md = (tmp_path / 'report.md').read_text()
    assert len(table(md)) == 3
    assert 'report.png' not in md, 'no link to a plot that is not there'
    assert any('could not write the plot' in r.getMessage() and 'report.png' in r.getMessage()
               for r in caplog.records)
    assert not list(tmp_path.glob('.*tmp*')), 'the temp file is removed'
