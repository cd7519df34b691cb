"""Training windows (il_ros.data.sampler): padding, weights, splits, DataLoader workers."""
import numpy as np
import pytest
from test_store import make_episode
import torch

from il_ros.data.sampler import make_loader, split_episodes, WindowDataset
from il_ros.data.store import Dataset, DatasetWriter
from il_ros.keys import LABEL_NAMES

LENGTHS = [5, 1, 20, 9]


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp('sampler') / 'ds'
    with DatasetWriter(path) as w:
        for i, n in enumerate(LENGTHS):
            w.append_episode(make_episode(i, n), {'source_id': f'bag{i}'})
    return Dataset(path)


def reference_item(ds: Dataset, ep: int, t: int, to: int, tp: int) -> dict:
    """Return the window spelled out frame by frame, independently of the sampler's index math."""
    e = ds.episode(ep)
    n = len(e['action'])
    obs_frames = [max(k, 0) for k in range(t - to + 1, t + 1)]
    act_frames = [min(k, n - 1) for k in range(t, t + tp)]
    return {'image/front': e['image/front'][obs_frames], 'joint_pos': e['joint_pos'][obs_frames],
            'action': e['action'][act_frames],
            'action_pad': np.array([k > n - 1 for k in range(t, t + tp)])}


@pytest.mark.parametrize('cache', ['all', 'lowdim'])
def test_windows_match_reference_and_pad_at_edges(store, cache):
    wd = WindowDataset(store, ['image/front', 'joint_pos'], obs_horizon=3, action_horizon=4,
                       cache=cache)
    assert wd.cache == cache and len(wd) == sum(LENGTHS)
    for i in range(len(wd)):
        ep, t = wd.episode_and_frame(i)
        item, ref = wd[i], reference_item(store, ep, t, 3, 4)
        for k in ('image/front', 'joint_pos'):
            assert np.array_equal(item['obs'][k].numpy(), ref[k]), (i, k)
        assert np.array_equal(item['action'].numpy(), ref['action'])
        assert np.array_equal(item['action_pad'].numpy(), ref['action_pad'])
    # Exact indices at the edges of episode 0 (length 5): joint_pos[:, 0] holds t.
    first = wd[0]
    assert first['obs']['joint_pos'][:, 0].tolist() == [0, 0, 0]
    assert wd[1]['obs']['joint_pos'][:, 0].tolist() == [0, 0, 1]
    assert wd[4]['obs']['joint_pos'][:, 0].tolist() == [2, 3, 4]
    assert wd[3]['action_pad'].tolist() == [False, False, True, True]
    act = store.episode(0)['action']
    assert np.array_equal(wd[3]['action'].numpy(), act[[3, 4, 4, 4]])
    single = wd[5]                                         # episode 1 has one frame
    assert wd.episode_and_frame(5) == (1, 0)
    assert single['action_pad'].tolist() == [False, True, True, True]
    assert single['obs']['image/front'].shape == (3, 12, 12, 3)
    assert single['obs']['image/front'].dtype == torch.uint8
    assert single['action'].dtype == torch.float32 and single['weight'].shape == ()


def test_batch_equals_items_and_episode_subset(store):
    wd = WindowDataset(store, ['joint_pos'], 2, 16, episodes=[3, 0])
    assert len(wd) == LENGTHS[3] + LENGTHS[0]
    assert {wd.episode_and_frame(i)[0] for i in range(len(wd))} == {0, 3}
    idx = [7, 0, 13, 2]
    b = wd[idx]
    for j, i in enumerate(idx):
        item = wd[i]
        assert torch.equal(b['obs']['joint_pos'][j], item['obs']['joint_pos'])
        assert torch.equal(b['action'][j], item['action'])
        assert torch.equal(b['action_pad'][j], item['action_pad'])
    with pytest.raises(IndexError):
        wd[len(wd)]
    with pytest.raises(IndexError):
        WindowDataset(store, ['joint_pos'], episodes=[4])
    with pytest.raises(KeyError, match=str(store.path)):
        WindowDataset(store, ['image/wrist'])


def test_label_weights(store):
    weights = {'demo': 1.0, 'intervention': 2.0, 'pre_intervention': 0.5}
    wd = WindowDataset(store, ['joint_pos'], label_weights=weights, default_weight=0.25)
    for i in range(len(wd)):
        ep, t = wd.episode_and_frame(i)
        name = LABEL_NAMES[store.read('label', ep, t, t + 1)[0]]
        expect = weights.get(name, 0.25)
        assert wd.sample_weights[i] == expect and wd[i]['weight'].item() == expect
    assert set(wd.sample_weights) == {1.0, 2.0, 0.5, 0.25}     # every label occurs
    only = WindowDataset(store, ['joint_pos'], label_weights={'intervention': 1.0},
                         default_weight=0.0)
    drawn = list(only.weighted_sampler(200, torch.Generator().manual_seed(0)))
    for i in drawn:
        ep, t = only.episode_and_frame(i)
        assert LABEL_NAMES[store.read('label', ep, t, t + 1)[0]] == 'intervention'
    assert np.all(WindowDataset(store, ['joint_pos']).sample_weights == 1.0)
    with pytest.raises(ValueError, match='teleop'):
        WindowDataset(store, ['joint_pos'], label_weights={'teleop': 1.0})
    with pytest.raises(ValueError, match='>= 0'):
        WindowDataset(store, ['joint_pos'], label_weights={'demo': -1.0})


def test_split_episodes_by_episode_deterministic():
    train, val = split_episodes(50, 0.2, seed=3)
    assert len(val) == 10 and len(train) == 40
    assert not set(train) & set(val) and sorted(train + val) == list(range(50))
    assert (train, val) == split_episodes(50, 0.2, seed=3)
    assert val != split_episodes(50, 0.2, seed=4)[1]
    assert split_episodes(1, 0.5, 0) == ([0], [])
    assert split_episodes(3, 0.01, 0)[1] != []                  # at least one val episode
    assert split_episodes(4, 0.0, 0) == ([0, 1, 2, 3], [])
    with pytest.raises(ValueError):
        split_episodes(4, 1.0, 0)


def _batches(loader):
    return [{'img': b['obs']['image/front'].clone(), 'jp': b['obs']['joint_pos'].clone(),
             'action': b['action'].clone(), 'pad': b['action_pad'].clone(),
             'weight': b['weight'].clone()} for b in loader]


@pytest.mark.parametrize('cache, batched', [('lowdim', True), ('all', False)])
def test_dataloader_two_workers_same_as_zero(store, cache, batched):
    wd = WindowDataset(store, ['image/front', 'joint_pos'], 2, 4, cache=cache,
                       label_weights={'intervention': 3.0})

    def loader(workers):
        gen = torch.Generator().manual_seed(7)
        if batched:
            return make_loader(wd, 8, num_workers=workers, generator=gen, drop_last=False)
        return torch.utils.data.DataLoader(wd, batch_size=8, shuffle=True, generator=gen,
                                           num_workers=workers)

    zero, two = _batches(loader(0)), _batches(loader(2))
    assert len(zero) == len(two) == -(-len(wd) // 8)
    for a, b in zip(zero, two):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    seen = torch.cat([b['jp'][:, -1, 0] for b in zero])        # frame t of every sample
    assert seen.numel() == len(wd)
    assert zero[0]['img'].shape[1:] == (2, 12, 12, 3) and zero[0]['img'].dtype == torch.uint8


@pytest.mark.parametrize('cache', ['all', 'lowdim'])
def test_obs_aligned_actions_give_the_action_at_every_obs_frame(store, cache):
    wd = WindowDataset(store, ['joint_pos'], obs_horizon=4, action_horizon=3, cache=cache,
                       obs_aligned_actions=True)
    plain = WindowDataset(store, ['joint_pos'], obs_horizon=4, action_horizon=3, cache=cache)
    assert 'action_seq' not in plain[0] and 'obs_pad' not in plain[0]
    for i in range(len(wd)):
        ep, t = wd.episode_and_frame(i)
        act = store.episode(ep)['action']
        frames = [max(k, 0) for k in range(t - 3, t + 1)]
        item = wd[i]
        assert np.array_equal(item['action_seq'].numpy(), act[frames]), i
        assert item['obs_pad'].tolist() == [k < 0 for k in range(t - 3, t + 1)], i
        assert torch.equal(item['action_seq'][-1], item['action'][0])    # both are action t
        assert torch.equal(item['action'], plain[i]['action'])
    assert wd[0]['obs_pad'].tolist() == [True, True, True, False]
    b = wd[[0, 6, 2]]
    assert b['action_seq'].shape == (3, 4, 6) and b['obs_pad'].shape == (3, 4)
    assert torch.equal(b['obs_pad'][1], wd[6]['obs_pad'])
    loader = make_loader(wd, 5, generator=torch.Generator().manual_seed(0))
    assert {'action_seq', 'obs_pad'} <= set(next(iter(loader)))
