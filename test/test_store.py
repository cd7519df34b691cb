"""The episode store (il_ros.data.store) and its stats/normalizers (il_ros.data.stats)."""
import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from il_ros.data.stats import Normalizer, normalizers_from_stats, STD_FLOOR
from il_ros.keys import LABEL_NAMES
from il_ros.data.store import (Dataset, DatasetWriter, decode_labels, encode_labels,
                               LABEL_CODES, StoreError)


def make_episode(seed: int, length: int, hw: int = 12) -> dict[str, np.ndarray]:
    """A small synthetic episode with every standard key; frame t of joint_pos[:, 0] is t."""
    rng = np.random.default_rng(seed)
    jp = rng.normal(size=(length, 9)).astype(np.float32)
    jp[:, 0] = np.arange(length)
    jp[:, 8] = 0.25                                        # a constant dimension
    labels = rng.choice(LABEL_NAMES[:4], size=length)
    return {'image/front': rng.integers(0, 256, (length, hw, hw, 3), dtype=np.uint8),
            'joint_pos': jp,
            'action': rng.normal(size=(length, 6)).astype(np.float32),
            'label': encode_labels(labels),
            'time': np.arange(length) * 0.1 + seed}


def write(path, specs, **kw):
    """Write episodes (seed, length) to ``path``; returns the frames written."""
    eps = [make_episode(s, n) for s, n in specs]
    with DatasetWriter(path, **kw) as w:
        for (s, _), ep in zip(specs, eps):
            w.append_episode(ep, {'source_id': f'bag{s}', 'success': s % 2 == 0, 'task': 't'})
    return eps


def file_hashes(path):
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob('*.h5'))}


def array_hash(ds: Dataset) -> str:
    h = hashlib.sha256()
    for i in range(ds.num_episodes):
        for k, v in ds.episode(i).items():
            h.update(k.encode() + v.tobytes() + str(v.dtype).encode())
    for k, d in sorted(ds.stats.items()):
        for s, v in sorted(d.items()):
            h.update(k.encode() + s.encode() + v.tobytes())
    return h.hexdigest()


def test_round_trip_exact(tmp_path):
    eps = write(tmp_path / 'ds', [(0, 7), (1, 1), (2, 13)])
    ds = Dataset(tmp_path / 'ds')
    assert ds.num_episodes == 3
    assert ds.episode_lengths.tolist() == [7, 1, 13]
    assert ds.episode_starts.tolist() == [0, 7, 8]
    assert ds.keys == sorted(eps[0])
    assert ds.shapes['image/front'] == (12, 12, 3) and ds.shapes['label'] == ()
    assert ds.dtypes['time'] == np.float64 and ds.dtypes['joint_pos'] == np.float32
    for i, ep in enumerate(eps):
        got = ds.episode(i)
        for k, v in ep.items():
            assert got[k].dtype == v.dtype and np.array_equal(got[k], v), (i, k)
        assert ds.meta(i) == {'source_id': f'bag{i}', 'success': i % 2 == 0, 'task': 't'}
    assert np.array_equal(ds.read('joint_pos', 2, 4, 6), eps[2]['joint_pos'][4:6])
    assert ds.read('action', 2, 5, 5).shape == (0, 6)
    with pytest.raises(IndexError):
        ds.read('action', 0, 5, 8)
    with pytest.raises(KeyError):
        ds.read('nope', 0, 0, 1)


def test_append_keeps_old_episodes_byte_identical(tmp_path):
    path = tmp_path / 'ds'
    eps = write(path, [(0, 5), (1, 6)])
    before = file_hashes(path)
    with DatasetWriter(path, create=False) as w:
        assert w.has_source('bag0') and not w.has_source('bag7')
        assert w.append_episode(make_episode(7, 4), {'source_id': 'bag7'}) == 2
        with pytest.raises(StoreError, match='already in the dataset'):
            w.append_episode(make_episode(0, 5), {'source_id': 'bag0'})
    after = file_hashes(path)
    assert {k: after[k] for k in before} == before and len(after) == 3
    ds = Dataset(path)
    assert ds.num_episodes == 3
    assert np.array_equal(ds.episode(1)['image/front'], eps[1]['image/front'])


def test_same_input_gives_identical_dataset(tmp_path):
    specs = [(3, 9), (4, 5), (5, 11)]
    write(tmp_path / 'a', specs)
    write(tmp_path / 'b', specs)
    write(tmp_path / 'c', specs[::-1])
    a, b, c = (Dataset(tmp_path / n) for n in 'abc')
    assert array_hash(a) == array_hash(b)
    assert file_hashes(tmp_path / 'a') == file_hashes(tmp_path / 'b')
    assert (tmp_path / 'a/manifest.json').read_bytes() == (tmp_path / 'b/manifest.json'
                                                           ).read_bytes()
    assert array_hash(a) != array_hash(c)       # the hash does see the order


def test_stats_match_numpy(tmp_path):
    eps = write(tmp_path / 'ds', [(0, 70), (1, 3), (2, 130)])   # spans moment blocks
    st = Dataset(tmp_path / 'ds').stats
    assert 'label' not in st and {'joint_pos', 'action', 'time', 'image/front'} <= set(st)
    for k in ('joint_pos', 'action', 'time'):
        x = np.concatenate([e[k] for e in eps]).astype(np.float64)
        np.testing.assert_allclose(st[k]['mean'], x.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st[k]['std'], np.maximum(x.std(0), STD_FLOOR), rtol=1e-9)
        assert np.array_equal(st[k]['min'], x.min(0))
        assert np.array_equal(st[k]['max'], x.max(0))
    assert st['joint_pos']['std'][8] == STD_FLOOR           # constant dim: floored
    px = np.concatenate([e['image/front'] for e in eps]).reshape(-1, 3) / 255.0
    assert st['image/front']['mean'].shape == (3,)
    np.testing.assert_allclose(st['image/front']['mean'], px.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st['image/front']['std'], px.std(0), rtol=1e-9)


@pytest.mark.parametrize('bad, match', [
    ({'image/front': np.zeros((3, 4, 4, 3), np.float32)}, 'uint8'),
    ({'joint_pos': np.full((3, 9), np.nan, np.float32)}, 'non-finite'),
    ({'action': np.zeros((4, 6), np.float32)}, 'same number of frames'),
    ({'label': np.full(3, 9, np.uint8)}, 'codes'),
    ({'action': np.zeros((3, 5), np.float32)}, 'schema'),
    ({'extra': np.zeros(3, np.float32)}, 'schema'),
])
def test_invalid_episodes_rejected(tmp_path, bad, match):
    with DatasetWriter(tmp_path / 'ds') as w:
        w.append_episode(make_episode(0, 3), {})
        with pytest.raises((ValueError, StoreError), match=match):
            w.append_episode({**make_episode(1, 3), **bad}, {})
        with pytest.raises(ValueError, match='JSON'):
            w.append_episode(make_episode(1, 3), {'x': object()})
        assert w.num_episodes == 1


def test_missing_and_corrupt_paths_name_the_path(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(StoreError, match=str(missing)):
        Dataset(missing)
    with pytest.raises(StoreError, match=str(missing)):
        DatasetWriter(missing, create=False)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(StoreError, match=str(tmp_path / 'empty')):
        Dataset(tmp_path / 'empty')
    path = tmp_path / 'ds'
    write(path, [(0, 4), (1, 4)])
    (path / 'manifest.json').write_text('{"format": "il_ros.data')
    with pytest.raises(StoreError, match='corrupt manifest'):
        Dataset(path)
    write(tmp_path / 'ds2', [(0, 4), (1, 4)])
    (tmp_path / 'ds2/episodes/ep_000001.h5').unlink()
    with pytest.raises(StoreError, match='ep_000001.h5 is missing'):
        Dataset(tmp_path / 'ds2')
    write(tmp_path / 'ds3', [(0, 4)])
    (tmp_path / 'ds3/episodes/ep_000000.h5').write_bytes(b'garbage')
    with pytest.raises(StoreError, match='ep_000000.h5'):
        Dataset(tmp_path / 'ds3').read('action', 0, 0, 1)


def test_one_writer_at_a_time(tmp_path):
    with DatasetWriter(tmp_path / 'ds'):
        with pytest.raises(StoreError, match='another DatasetWriter'):
            DatasetWriter(tmp_path / 'ds')
    DatasetWriter(tmp_path / 'ds').close()      # released on close


KILL_CHILD = textwrap.dedent("""
    import os, signal, sys
    import h5py
    sys.path.insert(0, {test_dir!r})
    from test_store import make_episode
    from il_ros.data import store
    w = store.DatasetWriter({path!r}, create=False)
    if {where!r} == 'mid_write':
        real = h5py.Group.create_dataset
        def dying(self, name, **kw):
            if name == 'image/front':
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, name, **kw)
        h5py.Group.create_dataset = dying
    else:
        store.atomic_write_json = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    w.append_episode(make_episode(9, 6), {{'source_id': 'bag9'}})
""")


@pytest.mark.parametrize('where', ['mid_write', 'before_manifest'])
def test_killed_append_leaves_old_episodes_intact(tmp_path, where):
    path = tmp_path / 'ds'
    eps = write(path, [(0, 5), (1, 6)])
    before = file_hashes(path)
    code = KILL_CHILD.format(test_dir=str(__import__('pathlib').Path(__file__).parent),
                             path=str(path), where=where)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=120)
    assert out.returncode == -9, out.stderr.decode()
    ds = Dataset(path)
    assert ds.num_episodes == 2
    assert {k: v for k, v in file_hashes(path).items() if k in before} == before
    for i in range(2):
        assert np.array_equal(ds.episode(i)['image/front'], eps[i]['image/front'])
    with DatasetWriter(path) as w:           # the store accepts appends after the crash
        assert not w.has_source('bag9')
        assert w.append_episode(make_episode(9, 6), {'source_id': 'bag9'}) == 2
    assert np.array_equal(Dataset(path).episode(2)['action'], make_episode(9, 6)['action'])


def test_stats_of_an_unclosed_writer_are_recomputed(tmp_path):
    path = tmp_path / 'ds'
    eps = write(path, [(0, 5)])
    w = DatasetWriter(path)
    w.append_episode(make_episode(1, 8), {})
    x = np.concatenate([eps[0]['action'], make_episode(1, 8)['action']]).astype(np.float64)
    np.testing.assert_allclose(Dataset(path).stats['action']['mean'], x.mean(0), rtol=1e-12)
    w.close()


def test_labels_encode_decode():
    names = ['demo', 'intervention', 'pre_intervention', 'hold', 'policy']
    codes = encode_labels(names)
    assert codes.dtype == np.uint8 and decode_labels(codes) == names
    assert LABEL_CODES['demo'] == 0 and len(set(LABEL_CODES.values())) == 5
    with pytest.raises(ValueError, match='teleop'):
        encode_labels(['demo', 'teleop'])


def test_normalizer_minmax_meanstd_constant_dims_and_json():
    x = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [4.0, 5.0, 2.0]])
    st = {'min': x.min(0), 'max': x.max(0), 'mean': x.mean(0),
          'std': np.maximum(x.std(0), STD_FLOOR)}
    mm = Normalizer.from_stats(st, 'minmax')
    y = mm.normalize(x)
    np.testing.assert_allclose(y[:, 0], [-1, 0, 1])
    np.testing.assert_allclose(y[:, 2], [-1, 1, 0])
    assert np.all(y[:, 1] == 0)                              # constant dim: shifted, finite
    np.testing.assert_allclose(mm.unnormalize(y), x)
    ms = Normalizer.from_stats(st, 'meanstd')
    z = ms.normalize(x)
    np.testing.assert_allclose(z[:, [0, 2]].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, [0, 2]].std(0), 1)
    assert np.all(z[:, 1] == 0)
    back = Normalizer.from_dict(json.loads(json.dumps(ms.to_dict())))
    np.testing.assert_array_equal(back.normalize(x), z)
    t = torch.tensor(x, dtype=torch.float32)
    assert torch.allclose(mm.normalize(t), torch.tensor(y, dtype=torch.float32))
    assert mm.normalize(t).dtype == torch.float32
    with pytest.raises(ValueError):
        Normalizer.from_dict({'mode': 'minmax', 'shape': [2], 'scale': [1.0]})
    with pytest.raises(ValueError, match='mode'):
        Normalizer.from_stats(st, 'zscore')


def test_normalizers_from_dataset_stats(tmp_path):
    write(tmp_path / 'ds', [(0, 20), (1, 20)])
    ds = Dataset(tmp_path / 'ds')
    norms = normalizers_from_stats(ds.stats, {'action': 'minmax', 'image/front': 'meanstd'})
    a = np.concatenate([ds.episode(i)['action'] for i in range(2)])
    y = norms['action'].normalize(a)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    img = torch.rand(2, 3, 4, 4)                             # (B, C, H, W) in [0, 1]
    out = norms['image/front'].channels_first().normalize(img)
    mean = torch.tensor(ds.stats['image/front']['mean'], dtype=torch.float32)
    std = torch.tensor(ds.stats['image/front']['std'], dtype=torch.float32)
    assert torch.allclose(out, (img - mean[:, None, None]) / std[:, None, None], atol=1e-6)
    with pytest.raises(KeyError, match='no stats'):
        normalizers_from_stats(ds.stats, {'label': 'minmax'})
