"""The dataset check a training run starts with (il_ros.data.validate, il_ros.training.inputs).

- the writer records a sha256 checksum per episode file; a file changed after it was
  written is caught by it, even where the values look fine (an image chunk);
- each kind of bad episode is named (file, key, what) with and without checksums: a file
  that is not HDF5, a missing file, a missing key, a wrong shape, NaN, finite garbage
  (1e30, also when it was written that way and is in the stats), values outside the
  recorded bounds; a dataset written before checksums opens and says so once;
- a run stops before it writes anything (DatasetError, exit 2 from ``il-ros train``, one
  line) or, with ``skip_bad_episodes``, trains on the rest, names the skipped episodes
  and records them in summary.json, with stats over the good episodes only;
- a non-finite loss names the episodes of its batch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from il_ros.data.store import Dataset, DatasetWriter, file_checksum
from il_ros.data.validate import check_dataset
from il_ros.models.policy import Policy
from il_ros.training.inputs import open_checked_dataset, TrainInputError
from il_ros.training.trainer import DatasetError, train, TrainError
from test_store import make_episode, write
from test_training import make_sim_dataset, tiny_cfg

EP1 = 'episode 1 (episodes/ep_000001.h5)'


def legacy(path: Path) -> Path:
    """Drop the checksums from the manifest: a dataset written before they existed."""
    man = json.loads((path / 'manifest.json').read_text())
    for e in man['episodes']:
        e.pop('checksum')
    (path / 'manifest.json').write_text(json.dumps(man))
    return path


def set_value(path: Path, ep: int, key: str, index: tuple, value) -> None:
    with h5py.File(path / f'episodes/ep_{ep:06d}.h5', 'r+') as f:
        f[key][index] = value


def delete_key(path: Path, ep: int, key: str, replace=None) -> None:
    with h5py.File(path / f'episodes/ep_{ep:06d}.h5', 'r+') as f:
        del f[key]
        if replace is not None:
            f.create_dataset(key, data=replace)


@pytest.fixture
def synthetic(tmp_path):
    write(tmp_path / 'ds', [(0, 7), (1, 9), (2, 5)])
    return tmp_path / 'ds'


def test_the_writer_records_a_checksum_per_episode_file(synthetic):
    man = json.loads((synthetic / 'manifest.json').read_text())
    for e in man['episodes']:
        assert e['checksum'].startswith('sha256:')
        assert e['checksum'] == file_checksum(synthetic / e['file'])
    check = check_dataset(Dataset(synthetic))
    assert check.bad == [] and check.note is None and check.good == [0, 1, 2]


CORRUPTIONS = {
    'not HDF5': (lambda p: (p / 'episodes/ep_000001.h5').write_bytes(b'garbage' * 100),
                 None, 'cannot be opened as HDF5'),
    'missing file': (lambda p: (p / 'episodes/ep_000001.h5').unlink(), None,
                     'the file is missing'),
    'missing key': (lambda p: delete_key(p, 1, 'joint_pos'), 'joint_pos',
                    'missing from the file'),
    'wrong shape': (lambda p: delete_key(p, 1, 'action', np.zeros((9, 5), np.float32)),
                    'action', 'shape (9, 5), expected (9, 6)'),
    'nan': (lambda p: set_value(p, 1, 'action', (4, 2), np.nan), 'action',
            'non-finite value nan at frame 4, dim 2'),
    '1e30': (lambda p: set_value(p, 1, 'joint_pos', (3, 1), 1e30), 'joint_pos',
             'value 1e+30 at frame 3, dim 1 is beyond the sane magnitude 1e+06'),
    'out of bounds': (lambda p: set_value(p, 1, 'action', (2, 0), 40.0), 'action',
                      "value 40 at frame 2, dim 0 is outside the dataset's recorded range"),
}


@pytest.mark.parametrize('with_checksums', [True, False], ids=['checksums', 'legacy'])
@pytest.mark.parametrize('kind', list(CORRUPTIONS))
def test_each_bad_episode_is_named_with_its_key_and_problem(synthetic, kind, with_checksums):
    corrupt, key, what = CORRUPTIONS[kind]
    if not with_checksums:
        legacy(synthetic)
    corrupt(synthetic)
    check = check_dataset(Dataset(synthetic, check_files=False))
    assert [p.episode for p in check.bad] == [1] and check.good == [0, 2]
    problem = check.bad[0]
    assert problem.file == 'episodes/ep_000001.h5' and problem.key == key
    assert what in problem.what, problem
    assert str(problem).startswith(EP1 + (f': {key}: ' if key else ': '))
    changed = with_checksums and kind not in ('missing file',)
    assert ('checksum mismatch' in problem.what) == changed, problem
    assert (check.note is None) == with_checksums
    if not with_checksums:
        assert '3 of 3 episodes have no checksum' in check.note


def test_a_changed_image_byte_is_caught_by_the_checksum_only(synthetic):
    with h5py.File(synthetic / 'episodes/ep_000001.h5', 'r') as f:
        chunk = f['image/front'].id.get_chunk_info(3)
    with open(synthetic / 'episodes/ep_000001.h5', 'r+b') as f:
        f.seek(chunk.byte_offset + chunk.size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    bad = check_dataset(Dataset(synthetic)).bad
    assert len(bad) == 1 and bad[0].key is None and 'checksum mismatch' in bad[0].what
    assert check_dataset(Dataset(legacy(synthetic))).bad == []   # images: shape/dtype only


def test_garbage_written_at_conversion_is_named_and_left_out_of_the_stats(tmp_path):
    path = tmp_path / 'ds'
    with DatasetWriter(path) as w:
        for seed in range(3):
            ep = make_episode(seed, 6)
            if seed == 2:
                ep['action'][1, 4] = 1e30           # finite: the writer accepts it
            w.append_episode(ep, {})
    ds = Dataset(path)
    assert ds.stats["action"]["max"][4] > 1e29      # the stats were poisoned
    with pytest.raises(DatasetError, match=r'episode 2 \(episodes/ep_000002.h5\): action: '
                       r'value 1e\+30 at frame 1, dim 4 is beyond .*--skip-bad-episodes'):
        open_checked_dataset(path)
    said = []
    data = open_checked_dataset(path, skip_bad=True, say=said.append)
    assert data.good == [0, 1] and [p.episode for p in data.skipped] == [2]
    assert said == [f'{path}: skipping episode 2 (episodes/ep_000002.h5): action: value '
                    f'1e+30 at frame 1, dim 4 is beyond the sane magnitude 1e+06']
    good = np.concatenate([ds.read('action', e, 0, 6) for e in (0, 1)])
    assert np.array_equal(data.stats['action']['max'], good.max(0).astype(np.float64))


def test_several_bad_episodes_stop_with_one_line_naming_the_first(synthetic):
    set_value(synthetic, 0, 'action', (0, 0), np.nan)
    set_value(synthetic, 2, 'time', (1,), np.inf)
    with pytest.raises(DatasetError) as e:
        open_checked_dataset(synthetic)
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'{synthetic}: episode 0 (episodes/ep_000000')
    assert '(and 1 more bad episode: 2)' in msg
    with pytest.raises(DatasetError, match='every one of its 3 episodes is bad'):
        set_value(synthetic, 1, 'action', (0, 0), np.nan)
        open_checked_dataset(synthetic, skip_bad=True, say=lambda line: None)


@pytest.fixture(scope='module')
def sim_dataset(tmp_path_factory):
    return make_sim_dataset(tmp_path_factory.mktemp('ds') / 'lift', episodes=4)


@pytest.fixture
def bad_sim(sim_dataset, tmp_path):
    path = tmp_path / 'bad'
    shutil.copytree(sim_dataset, path)
    set_value(path, 1, 'action', (5, 2), np.nan)
    return path


def test_a_run_stops_before_writing_anything(bad_sim, tmp_path):
    with pytest.raises(DatasetError, match=EP1.replace('(', r'\(').replace(')', r'\)')
                       + ': action: non-finite value nan at frame 5, dim 2'):
        train(tiny_cfg(bad_sim, max_steps=6), tmp_path / 'run')
    assert not (tmp_path / 'run').exists()


def test_skipping_trains_on_the_rest_and_records_the_skipped(bad_sim, tmp_path):
    said = []
    s = train(tiny_cfg(bad_sim, max_steps=6, skip_bad_episodes=True, val_fraction=0.0,
                       select_by='last'),
              tmp_path / 'run', on_message=said.append)
    ds = Dataset(bad_sim)
    assert s['status'] == 'done' and s['train_samples'] == int(ds.episode_lengths.sum()
                                                               - ds.episode_lengths[1])
    assert len(said) == 1 and 'skipping ' + EP1 + ': action: non-finite' in said[0]
    saved = json.loads((tmp_path / 'run' / 'summary.json').read_text())['dataset_check']
    assert saved['episodes'] == 4 and saved['without_checksum'] == 0
    assert [(p['episode'], p['file'], p['key']) for p in saved['skipped']] == [
        (1, 'episodes/ep_000001.h5', 'action')]


def test_a_non_finite_loss_names_the_episodes_of_its_batch(sim_dataset, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(Policy, 'loss', lambda self, batch: torch.tensor(float('nan')))
    with pytest.raises(TrainError, match=r'loss is nan at step 0 .* on a batch from '
                       r'episodes \[[0-9, ]+\] of '):
        train(tiny_cfg(sim_dataset, max_steps=6), tmp_path / 'run')


def test_the_cli_exits_2_with_one_line_or_skips(bad_sim, tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    tiny = json.dumps(tiny_cfg(bad_sim).policy)
    base = [sys.executable, '-m', 'il_ros.cli', 'train', '--config', 'demo', '--task', 'lift',
            '--dataset', str(bad_sim), '--max-steps', '4', '--set', f'policy={tiny}',
            '--set', 'batch_size=16', '--set', 'warmup_steps=1', '--set', 'eval_task=null',
            '--set', 'val_fraction=0', '--threads', '2']
    out = subprocess.run(base + ['--out', str(tmp_path / 'a')], capture_output=True,
                         text=True, timeout=240, env=env)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in out.stderr, out.stderr
    assert lines[0].startswith(f'il-ros train: {bad_sim}: {EP1}: action: non-finite')
    assert lines[0].endswith('(--skip-bad-episodes, skip_bad_episodes: true)')
    ok = subprocess.run(base + ['--out', str(tmp_path / 'b'), '--skip-bad-episodes'],
                        capture_output=True, text=True, timeout=240, env=env)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert f'il-ros train: {bad_sim}: skipping {EP1}: action' in ok.stderr
    assert 'done: 4 steps' in ok.stdout


def test_relative_action_stats_cover_the_good_episodes_only(tmp_path):
    from il_ros.models.policy_config import RobotSpec
    path = tmp_path / 'ds'
    eps = write(path, [(0, 6), (1, 5), (2, 7)])
    set_value(path, 2, 'action', (1, 0), 1e30)
    data = open_checked_dataset(path, skip_bad=True, say=lambda line: None)
    spec = RobotSpec(joint_names=[f'q{k}' for k in range(9)],
                     action_names=['q2', 'q0', 'a2', 'a3', 'a4', 'g'], action_dim=6,
                     proprio_dim=9, cameras=[], image_size=(0, 0), control_rate_hz=20.0)
    st = data.relative_action_stats(spec, horizon=2)
    rel = []
    for ep in eps[:2]:
        a, q = ep['action'].astype(np.float64), ep['joint_pos'].astype(np.float64)
        for k in range(2):
            r = a[k:].copy()
            r[:, [0, 1]] -= q[:len(a) - k][:, [2, 0]]
            rel.append(r)
    rel = np.concatenate(rel)
    np.testing.assert_allclose(st['min'], rel.min(0))
    np.testing.assert_allclose(st['max'], rel.max(0))
    np.testing.assert_allclose(st['mean'], rel.mean(0))
    spec.action_names = [f'a{k}' for k in range(6)]
    with pytest.raises(TrainInputError, match=r'relative_actions needs actions named like '
                                           r'observed joints.*a0'):
        data.relative_action_stats(spec, horizon=2)
