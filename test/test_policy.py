"""The Policy (il_ros.models.policy) and its checkpoints, on a small synthetic dataset."""
import json
import pickle

import numpy as np
import pytest
from test_models import TINY
from test_store import make_episode
import torch

from il_ros.data.sampler import WindowDataset
from il_ros.data.store import Dataset, DatasetWriter
from il_ros.models import (build_policy, CheckpointMismatch, load_checkpoint, PolicyConfig,
                           preset, preset_names, RobotSpec, save_checkpoint)
from il_ros.models import registry
from il_ros.models.policy_config import image_encoders

torch.set_num_threads(1)          # tiny models: a 2nd thread only adds barriers
HW, CROP = 24, 20
LENGTHS = [30, 12, 25]


@pytest.fixture(scope='module')
def ds(tmp_path_factory):
    path = tmp_path_factory.mktemp('policy') / 'ds'
    with DatasetWriter(path) as w:
        for i, n in enumerate(LENGTHS):
            ep = make_episode(i, n, hw=HW)
            ep['action'] = ep['action'] * 3.0 + 10.0               # raw units far from [-1, 1]
            w.append_episode(ep, {'source_id': f'bag{i}', 'rate_hz': 20.0,
                                  'joint_names': [f'j{k}' for k in range(9)]})
    return Dataset(path)


@pytest.fixture(scope='module')
def spec(ds):
    return RobotSpec.from_dataset(ds, ['front'], ['joint_pos'],
                                  action_names=[f'a{k}' for k in range(6)])


def tiny_cfg(name: str = 'none_mse', **overrides) -> PolicyConfig:
    """Return a preset shrunk to test size (components from test_models.TINY)."""
    base = preset(name)
    kw = {}
    for k in ('encoder', 'proprio_encoder', 'core', 'head'):
        over = overrides.pop(k, {})
        comp = over.get('name', getattr(base, k)['name'])
        kw[k] = {'name': comp, **TINY.get(comp, {}), **over}
    if base.head['name'] == 'diffusion':
        overrides.setdefault('action_horizon', 8)
        overrides.setdefault('action_exec', 4)
    if base.sequence_core:
        overrides.setdefault('seq_len', 4)
    return preset(name, crop=CROP, **kw, **overrides)


def make(ds, spec, cfg, seed=0):
    torch.manual_seed(seed)
    policy = build_policy(cfg, spec, ds.stats)
    return policy, WindowDataset(ds, **policy.sampler_spec())


def obs_at(ds, ep, t):
    e = ds.episode(ep, ['image/front', 'joint_pos'])
    return {'image/front': e['image/front'][t], 'joint_pos': e['joint_pos'][t].astype(np.float64)}


def train(policy, batch, steps, lr=3e-3):
    opt = torch.optim.AdamW(policy.parameters(), lr)
    policy.train()
    for _ in range(steps):
        loss = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()


def seeded_loss(policy, batch):
    torch.manual_seed(123)                    # same crops, jitter, diffusion noise each time
    with torch.no_grad():
        return policy.loss(batch).item()


def combos():
    """Every preset, plus every image encoder and core x head pair no preset covers."""
    out = [(p, {}) for p in preset_names()]
    cfgs = [preset(p) for p in preset_names()]
    out += [('none_mse', {'encoder': {'name': e}}) for e in image_encoders()
            if all(c.encoder['name'] != e for c in cfgs)]
    out += [('conv4_mse', {'core': {'name': c}, 'head': {'name': h}})
            for c in registry.names('core') for h in registry.names('head')
            if all((x.core['name'], x.head['name']) != (c, h) for x in cfgs)]
    return out


def _cfg_from_combo(name, over):
    kw = {}
    core = over.get('core', preset(name).core)['name']
    if registry.lookup('core', core).sequence:
        kw['obs_horizon'] = 1
    if over.get('head', {}).get('name') == 'diffusion':
        kw.update(action_horizon=4, action_exec=2)
    return tiny_cfg(name, **over, **kw)


@pytest.mark.parametrize('name, over', combos(),
                         ids=[f'{p}-' + '-'.join(v['name'] for v in o.values())
                              for p, o in combos()])
def test_train_act_save_load(ds, spec, tmp_path, name, over):
    cfg = _cfg_from_combo(name, over)
    policy, wd = make(ds, spec, cfg)
    batch = wd.batch(np.arange(0, len(wd), 7))
    before = seeded_loss(policy, batch)
    train(policy, batch, 25)
    after = seeded_loss(policy, batch)
    fall = 0.1 if cfg.head['name'] == 'diffusion' else 0.2    # eps-loss falls slower
    assert after < before - fall * abs(before), (before, after)
    policy.reset(seed=5)
    obs = [obs_at(ds, 0, t) for t in range(6)]
    acts = [policy.act(o) for o in obs]
    assert all(a.shape == (6,) and a.dtype == np.float64 and np.isfinite(a).all() for a in acts)
    chunk = policy.act_chunk(obs[0])
    assert chunk.shape == (cfg.action_exec, 6)
    path = save_checkpoint(policy, tmp_path / 'ckpt', extra={'step': 40})
    loaded, extra = load_checkpoint(path, expect=spec)
    assert extra == {'step': 40} and not loaded.training
    assert loaded.cfg == policy.cfg and loaded.spec == policy.spec
    loaded.reset(seed=5)
    again = [loaded.act(o) for o in obs]
    for a, b in zip(acts, again):
        np.testing.assert_array_equal(a, b)


def test_sampler_spec_and_config_checks():
    assert tiny_cfg('lstm_gmm').window == 4
    lstm = preset('lstm_gmm')
    assert (lstm.obs_horizon, lstm.seq_len, lstm.core['hidden_size'],
            lstm.core['num_layers'], lstm.head['num_modes']) == (1, 10, 400, 2, 5)
    dif = preset('diffusion')
    assert (dif.obs_horizon, dif.action_exec, dif.action_horizon) == (2, 8, 16)
    assert dif.head['num_inference_steps'] == 10
    with pytest.raises(ValueError, match='obs_horizon=1'):
        preset('lstm_gmm', obs_horizon=2)
    with pytest.raises(ValueError, match='action_exec 9 > action_horizon 8'):
        preset('none_mse', action_horizon=8, action_exec=9)
    with pytest.raises(ValueError, match='action_horizon 10 must be divisible by 4'):
        preset('diffusion', action_horizon=10)
    with pytest.raises(ValueError, match=r"'lstm2' is not registered.*'lstm'"):
        preset('none_mse', core={'name': 'lstm2'})
    with pytest.raises(ValueError, match='not an image encoder'):
        preset('none_mse', encoder={'name': 'mlp'})
    with pytest.raises(ValueError, match='normalize_action'):
        preset('none_mse', normalize_action='zscore')
    with pytest.raises(ValueError, match='unknown'):
        preset('no_such_preset')
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['horizon'\]"):
        PolicyConfig.from_dict({'horizon': 3})
    assert preset('lstm_gmm', head={'num_modes': 3}).head['sample_mode'] == 'mode_mean'
    cfg = preset('diffusion')
    assert PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_spec_from_dataset(ds, spec):
    assert spec.action_dim == 6 and spec.proprio_dim == 9 and spec.image_size == (HW, HW)
    assert spec.control_rate_hz == 20.0 and spec.joint_names == [f'j{k}' for k in range(9)]
    assert spec.mismatches(RobotSpec.from_dict(spec.to_dict())) == []


def test_act_unnormalizes_and_validates_observations(ds, spec):
    policy, _ = make(ds, spec, tiny_cfg('none_mse'))
    last = policy.head.net[-1]
    with torch.no_grad():                           # normalized output 0 -> mid-range action
        last.weight.zero_()
        last.bias.zero_()
    a = policy.act(obs_at(ds, 1, 3))
    st = ds.stats['action']
    np.testing.assert_allclose(a, (st['min'] + st['max']) / 2, rtol=1e-5)
    assert a.mean() > 5                                       # raw units (actions ~ 10)
    bad = obs_at(ds, 1, 3)
    bad['image/front'] = bad['image/front'][:-1]
    with pytest.raises(ValueError, match=r'image/front.*\(23, 24, 3\)'):
        policy.act(bad)
    with pytest.raises(ValueError, match='joint_pos'):
        policy.act({**obs_at(ds, 1, 3), 'joint_pos': np.zeros(7)})
    with pytest.raises(KeyError, match='joint_pos'):
        policy.act({'image/front': obs_at(ds, 1, 3)['image/front']})


def test_receding_horizon_replans_every_action_exec_steps(ds, spec):
    policy, _ = make(ds, spec, tiny_cfg('diffusion'))           # Tp=8, Ta=4
    calls = []
    sample = policy.head.sample
    policy.head.sample = lambda f, generator=None: calls.append(1) or sample(f, generator)
    obs = [obs_at(ds, 2, t) for t in range(9)]
    policy.reset(seed=3)
    acts = np.stack([policy.act(o) for o in obs])
    assert len(calls) == 3                                      # steps 0, 4, 8
    policy.reset(seed=3)
    first = policy.act_chunk(obs[0])
    np.testing.assert_array_equal(first, acts[:4])              # the chunk act executed
    policy.reset(seed=4)
    assert not np.allclose(policy.act_chunk(obs[0]), first)     # another seed, another draw
    policy.reset(seed=0)
    policy.act_chunk(obs[0])
    x = policy.act_chunk(obs[1], generator=torch.Generator().manual_seed(9))
    policy.reset(seed=1)
    policy.act_chunk(obs[0])
    y = policy.act_chunk(obs[1], generator=torch.Generator().manual_seed(9))
    np.testing.assert_array_equal(x, y)                         # generator decides the noise


def test_observe_every_tick_then_plan_equals_act_chunk(ds, spec):
    """A controller feeds every tick and plans sometimes: the chunk equals act_chunk's."""
    for name in ('diffusion', 'lstm_gmm'):
        policy, _ = make(ds, spec, tiny_cfg(name))
        obs = [obs_at(ds, 1, t) for t in range(3)]  # within one LSTM seq_len window (4)
        policy.reset(seed=5)
        with pytest.raises(RuntimeError, match='before any observe'):
            policy.plan()
        for o in obs:
            policy.observe(o)
        planned = policy.plan()
        policy.reset(seed=5)
        for o in obs[:-1]:
            policy.observe(o)
        np.testing.assert_array_equal(planned, policy.act_chunk(obs[-1]))
        policy.reset(seed=5)
        policy.observe(obs[-1])                                  # a different history
        assert not np.array_equal(planned, policy.plan())


def test_lstm_act_matches_the_training_forward(ds, spec):
    """Stepping with carried state reproduces the seq_len window; the state restarts after."""
    policy, wd = make(ds, spec, tiny_cfg('lstm_mse', seq_len=4))
    train(policy, wd.batch(np.arange(0, len(wd), 3)), 5)
    policy.eval()
    obs = [obs_at(ds, 0, t) for t in range(5)]
    policy.reset()
    acts = np.stack([policy.act(o) for o in obs])               # (5, A)
    batch = wd.batch([3])                                       # episode 0, frames 0..3
    assert not batch['obs_pad'].any()
    with torch.no_grad():
        feats = policy.encoder(policy._images(batch['obs'], False),
                               policy._proprio(batch['obs']))
        out = policy.head.sample(policy.core(feats)[0])          # (T, 1, A)
        ref = policy.normalizers['action'].unnormalize(out[:, 0].double()).numpy()
    np.testing.assert_allclose(acts[:4], ref, rtol=1e-4, atol=1e-4)
    policy.reset()
    assert np.allclose(policy.act(obs[4]), acts[4], atol=1e-5)  # step 5 started a new window


def test_frame_stack_act_matches_the_training_forward(ds, spec):
    """The act history (padded at the start, each frame encoded once) = the sampler window."""
    policy, wd = make(ds, spec, tiny_cfg('none_mse', obs_horizon=3, bf16=False,
                                         channels_last=False))
    policy.eval()
    policy.reset()
    acts = np.stack([policy.act(obs_at(ds, 0, t)) for t in range(5)])
    batch = wd.batch(np.arange(5))                          # episode 0, frames 0..4
    with torch.no_grad():
        feats = policy.encoder(policy._images(batch['obs'], False),
                               policy._proprio(batch['obs']))    # (5, To, D)
        out = policy.head.sample(policy.core(feats)[:, 0])       # (5, 1, A)
        ref = policy.normalizers['action'].unnormalize(out[:, 0].double()).numpy()
    np.testing.assert_allclose(acts, ref, rtol=1e-5, atol=1e-5)


def test_loss_masks_padding_and_scales_with_weight(ds, spec):
    policy, wd = make(ds, spec, tiny_cfg('lstm_mse', seq_len=4, action_horizon=3))
    policy.eval()                                               # center crop, no jitter
    n0 = LENGTHS[0]
    batch = wd.batch([0, 1, n0 - 1, n0 + 5])         # padded at the start / the end
    assert batch['obs_pad'][0].sum() == 3 and batch['action_pad'][2].sum() == 2

    def loss(b):
        with torch.no_grad():
            return policy.loss(b).item()
    base = loss(batch)
    changed = {**batch, 'action': batch['action'].clone(),
               'action_seq': batch['action_seq'].clone()}
    changed['action'][batch['action_pad']] += 50.0
    changed['action_seq'][batch['obs_pad']] -= 50.0
    assert loss(changed) == pytest.approx(base, rel=1e-6)
    changed['action_seq'][3, 0] += 50.0                         # a valid step's target
    assert loss(changed) > base * 1.5
    assert loss({**batch, 'weight': torch.zeros(4)}) == 0.0
    assert loss({**batch, 'weight': torch.full((4,), 2.0)}) == pytest.approx(2 * base, 1e-5)
    plain = WindowDataset(ds, **{**policy.sampler_spec(), 'obs_aligned_actions': False})
    with pytest.raises(ValueError, match='obs_aligned_actions=True'):
        policy.loss(plain.batch([0]))


def test_bf16_channels_last_switch(ds, spec):
    assert preset('none_mse').bf16 and preset('diffusion').channels_last   # preset default
    fp32, wd = make(ds, spec, tiny_cfg('none_mse', bf16=False, channels_last=False))
    fast, _ = make(ds, spec, tiny_cfg('none_mse', bf16=True, channels_last=True))
    assert not PolicyConfig().bf16 and not fp32.encoder.bf16 and fast.encoder.bf16
    fast.load_state_dict(fp32.state_dict())
    batch = wd.batch(np.arange(8))
    fp32.eval()
    fast.eval()
    with torch.no_grad():
        assert fast.loss(batch).item() == pytest.approx(fp32.loss(batch).item(), rel=0.05)
    o = obs_at(ds, 0, 4)
    np.testing.assert_allclose(fast.act(o), fp32.act(o), rtol=0.02, atol=0.05)
    train(fast, batch, 3)
    assert np.isfinite(fast.act(o)).all()


def test_checkpoint_mismatch_is_refused_naming_the_fields(ds, spec, tmp_path):
    policy, _ = make(ds, spec, tiny_cfg('none_mse'))
    path = save_checkpoint(policy, tmp_path / 'ck')
    other = RobotSpec.from_dict({**spec.to_dict(), 'action_dim': 7,
                                 'action_names': [f'a{k}' for k in range(7)],
                                 'cameras': ['front', 'wrist']})
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(path, expect=other)
    msg = str(err.value)
    assert 'action_dim 6 != 7' in msg and "cameras ['front'] != ['front', 'wrist']" in msg
    assert 'action_names' in msg and 'proprio_dim' not in msg
    with pytest.raises(CheckpointMismatch, match=r'image_size \(24, 24\) != \(84, 84\)'):
        load_checkpoint(path, expect=RobotSpec.from_dict({**spec.to_dict(),
                                                          'image_size': [84, 84]}))
    unnamed = RobotSpec.from_dict({**spec.to_dict(), 'joint_names': [], 'action_names': []})
    assert load_checkpoint(path, expect=unnamed)[0] is not None   # unknown names match
    meta = json.loads((path / 'policy.json').read_text())          # weights of another shape
    meta['config']['head']['hidden'] = [7]
    (path / 'policy.json').write_text(json.dumps(meta))
    with pytest.raises(CheckpointMismatch, match='weights do not fit'):
        load_checkpoint(path)


def test_old_diffusion_checkpoints_keep_the_noise_target(ds, spec, tmp_path):
    """A diffusion checkpoint from before ``prediction_type`` loads as 'epsilon'.

    It regressed the noise; the default, 'sample', would sample garbage from it.
    """
    policy, _ = make(ds, spec, tiny_cfg('diffusion'))
    assert policy.cfg.head['prediction_type'] == 'sample'
    path = save_checkpoint(policy, tmp_path / 'ck')
    meta = json.loads((path / 'policy.json').read_text())
    del meta['config']['head']['prediction_type']
    (path / 'policy.json').write_text(json.dumps(meta))
    old, _ = load_checkpoint(path)
    assert old.cfg.head['prediction_type'] == 'epsilon'
    assert old.head.cfg.prediction_type == 'epsilon'


def test_ema_weights_are_loaded_when_present(ds, spec, tmp_path):
    policy, _ = make(ds, spec, tiny_cfg('none_mse'))
    ema = {k: v + 0.5 if v.is_floating_point() else v for k, v in policy.state_dict().items()}
    path = save_checkpoint(policy, tmp_path / 'ck', ema_state=ema)
    o = obs_at(ds, 0, 2)
    with_ema, _ = load_checkpoint(path)
    raw, _ = load_checkpoint(path, use_ema=False)
    np.testing.assert_array_equal(raw.act(o), policy.act(o))
    assert torch.equal(with_ema.head.net[-1].bias, ema['head.net.0.bias'])
    save_checkpoint(policy, path)                                   # re-save without EMA
    assert not (path / 'ema.safetensors').exists()


class Payload:
    """Unpickling this object opens (creates) the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickle_payloads_are_never_loaded(ds, spec, tmp_path):
    canary = tmp_path / 'canary'
    pickle.loads(pickle.dumps(Payload(canary)))                     # the payload is live
    assert canary.exists()
    marker = tmp_path / 'pwned'
    evil = pickle.dumps({'head.net.0.weight': Payload(marker)})
    policy, _ = make(ds, spec, tiny_cfg('none_mse'))
    path = save_checkpoint(policy, tmp_path / 'ck')
    (path / 'model.safetensors').write_bytes(evil)                  # pickle instead of weights
    with pytest.raises(ValueError, match='not a safetensors file'):
        load_checkpoint(path)
    torch.save({'x': Payload(marker)}, path / 'model.pt')           # pickle beside the config
    (path / 'model.safetensors').unlink()
    with pytest.raises(ValueError, match=r"\['model.pt'\]: pickle files are never loaded"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match='never loaded'):
        load_checkpoint(path / 'model.pt')                          # a pickle file itself
    assert not marker.exists()


# ------------------------------------------------------------------ relative actions
REL_NAMES = ['j3', 'x', 'j0', 'j5', 'j1', 'gripper']      # 4 joint actions, out of order


def _relative(ds, cfg):
    from il_ros.data.stats import chunk_offsets, merge_moments, moments, stats_from_moments
    spec = RobotSpec.from_dataset(ds, ['front'], ['joint_pos'], action_names=REL_NAMES)
    a_idx, q_idx = spec.joint_actions()
    assert (a_idx, q_idx) == ([0, 2, 3, 4], [3, 0, 5, 1])
    acc = None
    for ep in range(ds.num_episodes):
        d = ds.episode(ep, ['action', 'joint_pos'])
        m = moments(chunk_offsets(d['action'], d['joint_pos'], a_idx, q_idx,
                                  cfg.action_horizon))
        acc = m if acc is None else merge_moments(acc, m)
    torch.manual_seed(0)
    policy = build_policy(cfg, spec, {**ds.stats, 'action': stats_from_moments(acc)})
    return policy, WindowDataset(ds, **policy.sampler_spec()), spec


def test_chunk_offsets_subtract_the_joints_measured_when_planning():
    from il_ros.data.stats import chunk_offsets
    a = np.arange(12, dtype=np.float64).reshape(4, 3)            # (T=4, A=3)
    q = 100 + np.arange(8, dtype=np.float64).reshape(4, 2)       # (T=4, J=2)
    out = chunk_offsets(a, q, [2, 0], [0, 1], horizon=2)
    want = [a[t + k] - [q[t, 1], 0, q[t, 0]] for k in range(2) for t in range(4 - k)]
    np.testing.assert_array_equal(out, want)
    assert chunk_offsets(a, q, [2], [0], horizon=9).shape == (10, 3)   # only real frames


@pytest.mark.parametrize('name', ['none_mse_chunk', 'lstm_mse'])
def test_relative_actions_train_on_offsets_and_act_absolute(ds, name):
    cfg = tiny_cfg(name, relative_actions=True, **({'action_horizon': 3, 'action_exec': 3}
                                                   if name == 'lstm_mse' else {}))
    policy, wd, spec = _relative(ds, cfg)
    a_idx, q_idx = spec.joint_actions()
    norm = policy.normalizers['action']
    batch = wd.batch(np.arange(0, len(wd), 5))
    seen = {}
    policy.head.loss = lambda f, target, mask, w: seen.update(target=target) or target.sum()
    policy.loss(batch)
    q, tp = batch['obs']['joint_pos'].double(), cfg.action_horizon
    if name == 'none_mse_chunk':                # the chunk is relative to the last obs frame
        want = batch['action'].double().clone()
        want[..., a_idx] -= q[:, -1, None][..., q_idx]
    else:                                       # each frame's chunk relative to that frame
        stream = torch.cat([batch['action_seq'], batch['action'][:, 1:]], 1).double()
        want = stream.unfold(1, tp, 1).permute(0, 1, 3, 2).clone()
        want[..., a_idx] -= q[:, :, None][..., q_idx]
        want = want.reshape(-1, tp, want.shape[-1])
    torch.testing.assert_close(seen['target'].double(), norm.normalize(want), rtol=1e-5,
                               atol=1e-5)
    # acting: the head's normalized output is an offset from the joints observed now
    out = torch.linspace(-0.5, 0.5, tp * 6).reshape(1, tp, 6)
    policy.head.sample = lambda f, generator=None, **kw: out.clone()
    offset = norm.unnormalize(out[0].double()).numpy()
    for t in (2, 7):
        policy.reset()
        o = obs_at(ds, 0, t)
        got = policy.act_chunk(o)
        want = offset[:cfg.action_exec].copy()
        want[:, a_idx] += o['joint_pos'][q_idx]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_relative_actions_checkpoint_round_trip_and_errors(ds, tmp_path):
    cfg = tiny_cfg('none_gmm', relative_actions=True)
    policy, wd, spec = _relative(ds, cfg)
    train(policy, wd.batch(np.arange(0, len(wd), 5)), 3)
    obs = [obs_at(ds, 1, t) for t in range(4)]
    policy.reset(seed=1)
    acts = [policy.act(o) for o in obs]
    loaded, _ = load_checkpoint(save_checkpoint(policy, tmp_path / 'ckpt'), expect=spec)
    assert loaded.cfg.relative_actions
    loaded.reset(seed=1)
    for a, o in zip(acts, obs):
        np.testing.assert_array_equal(a, loaded.act(o))
    with pytest.raises(ValueError, match="relative_actions needs 'joint_pos'"):
        tiny_cfg('none_mse', relative_actions=True, proprio_keys=[])
    other = RobotSpec.from_dataset(ds, ['front'], ['joint_pos'],
                                   action_names=[f'a{k}' for k in range(6)])
    with pytest.raises(ValueError, match=r'actions named like observed joints.*a0'):
        build_policy(cfg, other, ds.stats)
