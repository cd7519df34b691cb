"""robomimic HDF5 export (il_ros.interop.robomimic), checked with h5py against the layout."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from il_ros.data.store import Dataset, DatasetWriter, encode_labels
from il_ros.interop.robomimic import (export_robomimic, RobomimicExportError,
                                      split_train_valid)

LENGTHS = (7, 5, 9, 6, 8)


def make_dataset(path, lengths=LENGTHS, seed=0):
    """Random episodes with two cameras, joints, velocities, labels and success."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(path) as w:
        for k, n in enumerate(lengths):
            labels = ['policy'] * n
            labels[n // 2:n // 2 + 2] = ['intervention', 'intervention']
            labels[n // 2 - 1] = 'pre_intervention'
            frames = {'image/front': rng.integers(0, 256, (n, 12, 16, 3), np.uint8),
                      'image/wrist': rng.integers(0, 256, (n, 12, 16, 3), np.uint8),
                      'joint_pos': rng.normal(size=(n, 4)).astype(np.float32),
                      'joint_vel': rng.normal(size=(n, 4)).astype(np.float32),
                      'action': rng.normal(size=(n, 3)).astype(np.float32),
                      'label': encode_labels(labels),
                      'time': np.arange(n) * 0.05}
            w.append_episode(frames, {'task': 'lift', 'success': k % 2 == 0,
                                      'joint_names': ['a', 'b', 'c', 'd'],
                                      'action_names': ['x', 'y', 'g'], 'rate_hz': 20.0})
    return path


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('rm') / 'ds')


def test_layout_attrs_and_values(dataset, tmp_path):
    out = tmp_path / 'sub' / 'lift.hdf5'
    r = export_robomimic(dataset, out, valid_fraction=0.4, progress=False)
    assert r['demos'] == 5 and r['frames'] == sum(LENGTHS)
    assert not list(out.parent.glob('.*.tmp'))
    ds = Dataset(dataset)
    with h5py.File(out, 'r') as f:
        assert sorted(f.keys()) == ['data', 'mask']
        data = f['data']
        assert sorted(data.keys()) == [f'demo_{i}' for i in range(5)]
        assert data.attrs['total'] == sum(LENGTHS)
        env = json.loads(data.attrs['env_args'])
        assert env['env_name'] == 'lift' and env['type'] == 2
        assert isinstance(env['env_kwargs'], dict)
        assert env['env_kwargs']['cameras'] == ['front', 'wrist']
        assert env['env_kwargs']['image_size'] == [12, 16]
        assert env['il_ros']['action_names'] == ['x', 'y', 'g']
        assert env['il_ros']['label_names'][2] == 'intervention'
        for i, n in enumerate(LENGTHS):
            g = data[f'demo_{i}']
            src = ds.episode(i)
            assert g.attrs['num_samples'] == n and g.attrs['il_ros_episode'] == i
            assert sorted(g['obs'].keys()) == ['front_image', 'joint_pos', 'joint_vel',
                                               'wrist_image']
            assert g['obs/front_image'].shape == (n, 12, 16, 3)
            assert g['obs/front_image'].dtype == np.uint8
            for key, name in (('image/front', 'front_image'), ('image/wrist', 'wrist_image'),
                              ('joint_pos', 'joint_pos'), ('joint_vel', 'joint_vel')):
                np.testing.assert_array_equal(g[f'obs/{name}'][()], src[key])
                nxt = g[f'next_obs/{name}'][()]
                np.testing.assert_array_equal(nxt[:-1], src[key][1:])
                np.testing.assert_array_equal(nxt[-1], src[key][-1])
            np.testing.assert_array_equal(g['actions'][()], src['action'])
            assert g['actions'].shape == (n, 3)
            np.testing.assert_array_equal(g['il_ros_labels'][()], src['label'])
            assert 2 in g['il_ros_labels'][()]          # the interventions travel
            assert json.loads(g['il_ros_labels'].attrs['label_names'])[2] == 'intervention'
            np.testing.assert_array_equal(g['il_ros_time'][()], src['time'])
            dones, rewards = g['dones'][()], g['rewards'][()]
            assert dones.shape == rewards.shape == (n,)
            assert dones[-1] == 1 and dones[:-1].sum() == 0
            assert rewards[-1] == (1.0 if i % 2 == 0 else 0.0) and rewards[:-1].sum() == 0
            assert g.attrs['il_ros_success'] == int(i % 2 == 0)
            assert json.loads(g.attrs['il_ros_meta'])['task'] == 'lift'
            assert 'states' not in g
        train = [s.decode() for s in f['mask/train'][()]]
        valid = [s.decode() for s in f['mask/valid'][()]]
        assert len(valid) == 2 and not set(train) & set(valid)
        assert sorted(train + valid) == sorted(data.keys())
    ds.close()
    assert r['train'] == train and r['valid'] == valid


def test_selected_episodes_split_is_deterministic(dataset, tmp_path):
    a = export_robomimic(dataset, tmp_path / 'a.hdf5', episodes=[3, 1], progress=False)
    b = export_robomimic(dataset, tmp_path / 'b.hdf5', episodes=[3, 1], progress=False)
    assert a['train'] == b['train'] and a['valid'] == b['valid'] == ['demo_1']
    with h5py.File(tmp_path / 'a.hdf5', 'r') as f:
        assert f['data'].attrs['total'] == LENGTHS[3] + LENGTHS[1]
        assert f['data/demo_0'].attrs['il_ros_episode'] == 3
        assert f['data/demo_1/actions'].shape == (LENGTHS[1], 3)


def test_split():
    for n in range(1, 40):
        for frac in (0.0, 0.1, 0.25, 0.5, 0.9):
            train, valid = split_train_valid(n, frac)
            assert sorted(train + valid) == list(range(n)) and not set(train) & set(valid)
            assert train, (n, frac)
            if frac == 0 or n == 1:
                assert not valid
            else:
                assert len(valid) == min(n - 1, max(1, round(frac * n)))


def test_overwrite_is_atomic(dataset, tmp_path):
    out = tmp_path / 'x.hdf5'
    export_robomimic(dataset, out, episodes=[0], progress=False)
    before = out.read_bytes()
    with pytest.raises(RobomimicExportError, match='episode 9 out of range'):
        export_robomimic(dataset, out, episodes=[0, 9], progress=False)
    assert out.read_bytes() == before


def test_bad_input(dataset, tmp_path):
    with pytest.raises(RobomimicExportError, match='no dataset here'):
        export_robomimic(tmp_path / 'nope', tmp_path / 'o.hdf5', progress=False)
    with pytest.raises(RobomimicExportError, match=r'episode 5 out of range.*5 episode'):
        export_robomimic(dataset, tmp_path / 'o.hdf5', episodes=[5], progress=False)
    with pytest.raises(RobomimicExportError, match='selected twice'):
        export_robomimic(dataset, tmp_path / 'o.hdf5', episodes=[1, 1], progress=False)
    with pytest.raises(RobomimicExportError, match='valid_fraction'):
        export_robomimic(dataset, tmp_path / 'o.hdf5', valid_fraction=1.0, progress=False)
    with pytest.raises(RobomimicExportError, match='is a folder'):
        export_robomimic(dataset, tmp_path, progress=False)
    assert not (tmp_path / 'o.hdf5').exists()


def test_the_cli_exports_and_refuses_in_one_line(dataset, tmp_path):
    from il_ros.cli import main
    out = tmp_path / 'lift.hdf5'
    assert main(['export', str(dataset), '--format', 'robomimic', '--out', str(out),
                 '--episodes', '0', '2', '--valid-fraction', '0.5']) == 0
    with h5py.File(out) as f:
        assert sorted(f['data']) == ['demo_0', 'demo_1'] and f['data'].attrs['total'] == 7 + 9
        assert [bytes(x) for x in f['mask/valid'][()]] == [b'demo_1']
    assert main(['export', str(tmp_path / 'nope'), '--format', 'robomimic',
                 '--out', str(tmp_path / 'o.hdf5')]) == 2
    assert not (tmp_path / 'o.hdf5').exists()
