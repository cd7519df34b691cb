"""Intervention weighting (uniform / IWR / Sirius) and warm starts (init_checkpoint).

- scheme_weights: IWR gives the intervention frames and the rest equal total weight
  (max_share 0.5, the paper's rule), or the bounded share max_share of it, never less than
  uniform; Sirius also downweights pre_intervention frames, label_weights multiply in, the
  total weight is preserved, nothing to balance means uniform;
- bounded so, a round's few corrections that disagree with the demos cannot move an L1 head
  (path's) off the demos' action: why IWR and Sirius no longer collapse;
- the trainer hands those weights to every training sample (batch['weight']), and never
  draws a sample whose weight is 0 (it would only dilute the batch's loss);
- with chunks_within_control a chunk's targets end where control changed hands (a
  correction's chunk holds no policy action from after the hand-back);
- init_checkpoint starts a run from another run's EMA weights and normalizers, and refuses
  a checkpoint with another policy config.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fit_head
from il_ros.data.store import DatasetWriter, encode_labels
from il_ros.keys import LABEL_NAMES
from il_ros.models import load_checkpoint
from il_ros.training.config import TrainConfig
from il_ros.training.trainer import train, Trainer, TrainError
from il_ros.training.weighting import DEFAULT_MAX_SHARE, group_shares, label_counts, \
    scheme_weights

torch.set_num_threads(2)

COUNTS = {'demo': 600, 'policy': 300, 'intervention': 50, 'pre_intervention': 40, 'hold': 10}
NO_HOLD = {'hold': 0.0}


def _mass(w, counts=COUNTS):
    return sum(w[k] * counts[k] for k in counts)


def test_uniform_is_the_label_weights():
    assert scheme_weights('uniform', COUNTS) == {k: 1.0 for k in LABEL_NAMES}
    w = scheme_weights('uniform', COUNTS, NO_HOLD)
    assert w['hold'] == 0.0 and w['intervention'] == 1.0


def test_iwr_balances_interventions_against_the_rest():
    w = scheme_weights('iwr', COUNTS, NO_HOLD, max_share=0.5)
    share = group_shares(w, COUNTS)
    assert share['intervention'] == pytest.approx(0.5)
    assert share['demo'] + share['policy'] + share['pre_intervention'] == pytest.approx(0.5)
    assert w['hold'] == 0.0
    assert w['demo'] == w['policy'] == w['pre_intervention']          # the rest is uniform
    assert w['intervention'] == pytest.approx(w['demo'] * 940 / 50)   # n_rest / n_int
    assert _mass(w) == pytest.approx(_mass(scheme_weights('uniform', COUNTS, NO_HOLD)))


def test_sirius_also_downweights_pre_intervention():
    w = scheme_weights('sirius', COUNTS, NO_HOLD, pre_intervention_weight=0.1, max_share=0.5)
    share = group_shares(w, COUNTS)
    assert share['intervention'] == pytest.approx(0.5)
    assert w['pre_intervention'] == pytest.approx(0.1 * w['policy'])
    assert w['demo'] == w['policy'] and w['intervention'] > w['demo'] > w['pre_intervention']
    assert _mass(w) == pytest.approx(_mass(scheme_weights('uniform', COUNTS, NO_HOLD)))
    assert scheme_weights('sirius', COUNTS, pre_intervention_weight=0.0)[
        'pre_intervention'] == 0.0


def test_label_weights_multiply_in():
    w = scheme_weights('iwr', COUNTS, {'hold': 0.0, 'demo': 2.0}, max_share=0.5)
    assert w['demo'] == pytest.approx(2 * w['policy'])
    assert group_shares(w, COUNTS)['intervention'] == pytest.approx(0.5)


@pytest.mark.parametrize('scheme', ['iwr', 'sirius'])
def test_the_intervention_share_is_bounded(scheme):
    """A few corrections get max_share of the loss, not half; never less than uniform."""
    uniform_mass = _mass(scheme_weights('uniform', COUNTS, NO_HOLD))
    w = scheme_weights(scheme, COUNTS, NO_HOLD)                      # the default bound
    assert group_shares(w, COUNTS)['intervention'] == pytest.approx(DEFAULT_MAX_SHARE)
    assert DEFAULT_MAX_SHARE == TrainConfig(dataset='x').max_intervention_share < 0.5
    assert w['demo'] == w['policy'] < w['intervention']
    assert _mass(w) == pytest.approx(uniform_mass)
    w = scheme_weights(scheme, COUNTS, NO_HOLD, max_share=0.1)
    assert group_shares(w, COUNTS)['intervention'] == pytest.approx(0.1)
    # corrections already over the bound keep their uniform share (weight 1 each) ...
    many = {'demo': 300, 'intervention': 200}
    assert scheme_weights(scheme, many, max_share=0.25)['intervention'] == pytest.approx(1.0)
    # ... and over half, IWR's balance brings them down to half
    most = {'demo': 100, 'intervention': 300}
    assert group_shares(scheme_weights(scheme, most, max_share=0.25), most)[
        'intervention'] == pytest.approx(0.5)
    for bad in (0.0, 0.6, float('nan')):
        with pytest.raises(ValueError, match='max_intervention_share must be in'):
            scheme_weights(scheme, COUNTS, max_share=bad)
        with pytest.raises(ValueError, match='max_intervention_share must be in'):
            TrainConfig(dataset='x', max_intervention_share=bad)


@pytest.mark.parametrize('scheme', ['iwr', 'sirius'])
def test_bounded_corrections_that_disagree_with_the_demos_leave_an_l1_head_where_they_are(
        scheme):
    """Why IWR and Sirius no longer collapse on path (docs/experiments/hg-dagger.md).

    One state, a round's frames in the proportions of a path round (demo 43, policy 17,
    pre_intervention 2, intervention 3): every frame's target is 0 there but the
    corrections', which is 1 (a person's label may disagree with the demos nearby). With
    the scheme's default weights the corrections carry a quarter of the loss: a
    squared-error head moves a quarter of the way to them, an L1 head (path's, from the
    task overlay) stays at the demos' action, as it does with uniform weights.
    """
    from il_ros.models import registry
    counts = {'demo': 43, 'policy': 17, 'pre_intervention': 2, 'intervention': 3}
    labels = [name for name, n in counts.items() for _ in range(n)]
    target = torch.tensor([float(lab == 'intervention') for lab in labels]).reshape(-1, 1, 1)
    feats, mask = torch.ones(len(labels), 4), torch.ones(len(labels), 1, dtype=torch.bool)

    def fit(loss, weights):
        torch.manual_seed(0)
        head = registry.build('head', {'name': 'mse', 'loss': loss}, in_dim=4,
                              action_dim=1, horizon=1)
        w = torch.tensor([weights[lab] for lab in labels])
        fit_head(head, feats, target, mask, 300, weight=w)
        with torch.no_grad():
            return head.sample(feats[:1]).item()

    w = scheme_weights(scheme, counts)
    assert group_shares(w, counts)['intervention'] == pytest.approx(DEFAULT_MAX_SHARE)
    assert fit('mse', w) == pytest.approx(DEFAULT_MAX_SHARE, abs=0.05)
    assert abs(fit('l1', w)) < 0.05
    assert abs(fit('l1', scheme_weights('uniform', counts))) < 0.05


def test_nothing_to_balance_is_uniform():
    only_demos = {'demo': 100}
    assert scheme_weights('iwr', only_demos) == scheme_weights('uniform', only_demos)
    s = scheme_weights('sirius', {'demo': 10, 'pre_intervention': 10}, None, 0.5)
    assert s['pre_intervention'] == 0.5 and s['demo'] == 1.0
    with pytest.raises(ValueError, match='weighting must be one of'):
        scheme_weights('nope', COUNTS)
    with pytest.raises(ValueError, match='weighting must be one of'):
        TrainConfig(dataset='x', weighting='nope')


# ---- through the trainer -------------------------------------------------------------------
TINY = {'preset': 'none_mse', 'encoder': {'name': 'conv4', 'channels': [8, 8, 8, 8],
                                          'num_kp': 8, 'feat_dim': 16},
        'proprio_encoder': {'hidden': 32, 'out_dim': 16}, 'crop': 28}
PATTERN = ['demo'] * 10 + ['policy'] * 14 + ['pre_intervention'] * 4 + \
    ['intervention'] * 6 + ['hold'] * 2 + ['policy'] * 4


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    """Four 40-frame episodes of random frames with a fixed label pattern."""
    path = tmp_path_factory.mktemp('ds') / 'labelled'
    rng = np.random.default_rng(0)
    with DatasetWriter(path) as w:
        for k in range(4):
            n = len(PATTERN)
            w.append_episode({
                'image/front': rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8),
                'joint_pos': rng.normal(size=(n, 7)).astype(np.float32),
                'action': rng.normal(size=(n, 6)).astype(np.float32),
                'label': encode_labels(PATTERN), 'time': np.arange(n) * 0.05},
                {'task': 'lift', 'rate_hz': 20.0})
    return path


def cfg(dataset, **fields):
    base = dict(policy=TINY, dataset=str(dataset), batch_size=8, max_steps=6,
                max_minutes=None, warmup_steps=1, eval_every_minutes=None, val_fraction=0.0,
                progress=False, label_weights={'hold': 0.0})
    return TrainConfig(**{**base, **fields})


@pytest.mark.parametrize('scheme,share', [('uniform', None), ('iwr', None), ('sirius', None),
                                          ('iwr', 0.5)])
def test_trainer_gives_every_sample_its_scheme_weight(labelled, tmp_path, scheme, share):
    fields = {} if share is None else {'max_intervention_share': share}
    t = Trainer(cfg(labelled, weighting=scheme, **fields), tmp_path / 'run')
    t._build()
    counts = label_counts(t.ds, range(4))
    assert counts == {k: 4 * PATTERN.count(k) for k in LABEL_NAMES}
    share = share or DEFAULT_MAX_SHARE
    want = scheme_weights(scheme, counts, {'hold': 0.0}, 0.1, share)
    labels = np.tile(encode_labels(PATTERN), 4)
    expect = np.array([want[LABEL_NAMES[c]] for c in labels])
    np.testing.assert_allclose(t.train_set.sample_weights, expect)
    batch = t.train_set.batch(np.arange(len(PATTERN)))
    np.testing.assert_allclose(batch['weight'].numpy(), expect[:len(PATTERN)], rtol=1e-6)
    if scheme != 'uniform':
        mass = t.train_set.sample_weights
        inter = labels == encode_labels(['intervention'])[0]
        assert mass[inter].sum() == pytest.approx(share * mass.sum())   # 6 of 38: 16%


def test_warm_start_from_another_run(labelled, tmp_path):
    first = train(cfg(labelled, max_steps=4), tmp_path / 'a')
    ckpt = first['last']
    warm = Trainer(cfg(labelled, init_checkpoint=ckpt, weighting='iwr'), tmp_path / 'b')
    warm._build()
    ref, _ = load_checkpoint(ckpt, use_ema=True)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(warm.policy.state_dict()[k].cpu(), v, msg=k)
        torch.testing.assert_close(warm.ema.shadow.state_dict()[k].cpu(), v, msg=k)
    assert warm.policy.training
    assert warm.policy.normalizers.keys() == ref.normalizers.keys()
    s = train(cfg(labelled, init_checkpoint=ckpt, weighting='iwr'), tmp_path / 'b2')
    assert s['status'] == 'done' and s['label_weights']['intervention'] > 1.0
    other = dict(TINY, proprio_encoder={'hidden': 16, 'out_dim': 16})
    with pytest.raises(TrainError, match='policy config differs'):
        Trainer(cfg(labelled, policy=other, init_checkpoint=ckpt), tmp_path / 'c')._build()


# ---- what the weights and labels do to the batches -----------------------------------------
def test_chunks_end_where_control_changes_hands(labelled):
    from il_ros.data.sampler import WindowDataset
    spec = dict(obs_keys=['joint_pos'], obs_horizon=1, action_horizon=8)
    by_source = WindowDataset(labelled, episodes=[0], chunk_by_source=True, **spec)
    plain = WindowDataset(labelled, episodes=[0], **spec)
    actions = by_source.dataset.read('action', 0, 0, len(PATTERN))
    # PATTERN: demo 0-9, policy 10-23, pre_intervention 24-27, intervention 28-33,
    # hold 34-35, policy 36-39: runs of one source end at 9, 27, 33, 35 and 39
    ends = {5: 9, 10: 27, 20: 27, 28: 33, 30: 33, 34: 35, 36: 39}
    for t, end in ends.items():
        b = by_source.batch([t])
        n_valid = min(end - t + 1, 8)
        pad = b['action_pad'][0].numpy()
        assert not pad[:n_valid].any() and pad[n_valid:].all(), t
        want = actions[np.minimum(t + np.arange(8), end)]
        np.testing.assert_array_equal(b['action'][0].numpy(), want)
    b = plain.batch([30])            # without: the correction's chunk runs into the hold
    assert not b['action_pad'][0].numpy().any()


def test_zero_weight_frames_are_never_drawn(labelled, tmp_path):
    t = Trainer(cfg(labelled, label_weights={'policy': 0.0, 'pre_intervention': 0.0,
                                             'hold': 0.0}), tmp_path / 'run')
    t._build()
    w = t.train_set.sample_weights
    drawn = np.concatenate([t.sampler.batch(b) for b in range(12)])
    assert len(drawn) == 12 * 8 and (w[drawn] > 0).all()
    assert set(drawn) <= set(np.flatnonzero(w > 0)) and len(set(drawn)) > 8
    assert t.sampler.batch(3) == t.sampler.batch(3)            # a function of the step
    everything = Trainer(cfg(labelled, label_weights=None), tmp_path / 'all')
    everything._build()
    assert everything.sampler.indices is None and everything.sampler.n == 4 * len(PATTERN)
    with pytest.raises(TrainError, match='24 training samples with a weight above 0 '
                                         r'\(of 160\) are fewer than batch_size 32'):
        Trainer(cfg(labelled, batch_size=32, label_weights={
            'demo': 0.0, 'policy': 0.0, 'pre_intervention': 0.0, 'hold': 0.0}),
            tmp_path / 'few')._build()
