"""``il-ros dagger`` bookkeeping, with the ROS graph replaced by a fake driver that writes
synthetic bags (the conversion, the dataset and the state machine are the real ones):

- each round appends only its own new episodes to the aggregated dataset (re-converting a
  round adds nothing);
- an interrupted run (cut off mid-collection, with a half-written episode) resumes: finished
  rounds are not collected, converted or trained again, the half-written episode is set
  aside, and the collection goes on at the next seed;
- every round warm-starts from the previous round's policy with the chosen weighting, and
  the expert-labelled steps are counted per method;
- a run folder with other settings is refused;
- a hole in /il/command inside an intervention (a starved controller or recorder) labels
  those ticks hold instead of losing the episode.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from il_ros import dagger as dg
from il_ros.data.store import Dataset, decode_labels
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag

SOURCES = ((0.0, 'policy'), (1.0, 'intervention'), (1.5, 'policy'))
PRE = 5
FRAMES_PER_EPISODE = 60          # 3 s at 20 Hz
INTERVENTION_FRAMES = 10         # 1.0 .. 1.5 s


def _bag(folder: Path, action_topic: str, seed: int, sources=(), status='complete',
         action_gap=None):
    folder.mkdir(parents=True, exist_ok=True)
    from il_ros.data.episode_writer import next_episode_index
    name = f'episode_{next_episode_index(folder):04d}'
    write_synthetic_bag(folder / name, SyntheticBagSpec(
        action_topic=action_topic, action_dim=6, control_source=sources, seed=seed,
        start=1000.0 + seed, image_hw=(32, 32), action_gap=action_gap))
    (folder / f'{name}.json').write_text(json.dumps(
        {'status': status, 'success': False, 'task': 'path'}))
    return name


class FakeDriver:
    """Stands in for DaggerDriver: episodes become synthetic bags, training a summary."""

    def __init__(self, interrupt_at_seed=None, action_gap=None):
        self.interrupt_at_seed = interrupt_at_seed
        self.action_gap = action_gap
        self.status = None
        self.out = None
        self.seeds, self.trained = [], []

    def set_params(self, node, params):
        assert node == 'recorder'
        self.out = Path(params['output_dir'])

    def load_checkpoint(self, ckpt):
        self.status = {'checkpoint': ckpt}

    def run_episode(self, seed, limit, supervise=True):
        assert self.status is not None, 'the round policy was not loaded'
        if seed == self.interrupt_at_seed:
            _bag(self.out, '/il/command', seed, SOURCES, status='recording')  # cut off
            raise KeyboardInterrupt
        self.seeds.append(seed)
        name = _bag(self.out, '/il/command', seed, SOURCES, action_gap=self.action_gap)
        return {'seed': seed, 'success': False, 'failure': 'timeout', 'steps': limit,
                'ticks': 60, 'human_ticks': 10, 'policy_ticks': 50, 'takeovers': 1,
                'wall_s': 0.0, 'bag': name}

    def train(self, params, progress=None):
        run = Path(params['out_dir'])
        run.mkdir(parents=True, exist_ok=True)
        self.trained.append(params)
        summary = {'step': 5, 'train_s': 0.1, 'samples_per_s': 1.0, 'last': str(run / 'last'),
                   'best': {'path': str(run / 'best')}}
        (run / 'summary.json').write_text(json.dumps(summary))
        return {'state': 'done', 'message': 'fake'}

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    holder = {'driver': FakeDriver()}

    def graph(self, need, first_seed=None):
        self.driver = holder['driver']
        self.graph_nodes = {'sim_robot', 'controller', 'supervisor', 'recorder', 'trainer'}
        return self.driver

    def demos(self, bags, episodes, first_seed, noise):
        have = dg._set_aside_incomplete(bags)
        for i in range(have, episodes):
            _bag(bags, dg.DEMO_LABEL_TOPIC, first_seed + i)

    def evaluate_checkpoint(ckpt, task, episodes, **kw):
        return {'success_rate': 0.5, 'failures': {'off_path': 1}, 'mean_steps': 10.0}

    monkeypatch.setattr(dg.DaggerRun, '_graph', graph)
    monkeypatch.setattr(dg.DaggerRun, '_record_demos', demos)
    monkeypatch.setattr('il_ros.training.evaluate.evaluate_checkpoint', evaluate_checkpoint)
    return holder


def config(out, **kw):
    base = dict(task='path', out=str(out), rounds=2, episodes_per_round=2, demos=2,
                image_size=(32, 32), pre_intervention=PRE, max_episode_steps=30,
                config='path_none_mse')
    return dg.DaggerConfig(**{**base, **kw})


def _episodes_by_round(out: Path) -> dict:
    ds = Dataset(out / 'dataset')
    rounds = {}
    for i in range(ds.num_episodes):
        r = Path(ds.meta(i)['source_bag']).parent.parent.name
        rounds.setdefault(r, []).append(i)
    return rounds


def test_interrupted_run_resumes_and_rounds_add_only_their_episodes(tmp_path, fake):
    out = tmp_path / 'run'
    fake['driver'] = FakeDriver(interrupt_at_seed=dg.COLLECT_SEED + 3)   # round 2, ep 2
    with pytest.raises(KeyboardInterrupt):
        dg.DaggerRun(config(out)).run()
    first = fake['driver']
    assert first.seeds == [dg.COLLECT_SEED, dg.COLLECT_SEED + 1, dg.COLLECT_SEED + 2]
    assert len(first.trained) == 2                                   # rounds 0 and 1
    state = json.loads((out / 'state.json').read_text())
    assert state['rounds']['1']['done'] == ['collect', 'convert', 'train', 'eval']
    assert state['rounds'].get('2', {}).get('done', []) == []

    fake['driver'] = again = FakeDriver()
    report = dg.DaggerRun(config(out)).run()
    assert again.seeds == [dg.COLLECT_SEED + 3], 'resumed at the interrupted episode'
    assert [Path(p['out_dir']).parent.name for p in again.trained] == ['round_02']
    bags2 = out / 'round_02' / 'bags'
    assert len(list(bags2.glob('episode_*.json'))) == 2
    assert len(list((out / 'round_02' / 'interrupted').glob('episode_*.json.*'))) == 1

    # every round added exactly its own episodes, none twice
    by_round = _episodes_by_round(out)
    assert {r: len(v) for r, v in by_round.items()} == {
        'round_00': 2, 'round_01': 2, 'round_02': 2}
    run = dg.DaggerRun(config(out))
    run._load_state()
    run._phase_convert(1)                                  # converting again adds nothing
    assert Dataset(out / 'dataset').num_episodes == 6
    assert run.state['rounds']['1']['data']['episodes'] == 2

    # the report: expert-labelled steps = demo frames + intervention frames
    rows = report['rounds']
    assert [r['round'] for r in rows] == [0, 1, 2]
    demo_frames = rows[0]['expert_labelled_steps']
    assert demo_frames >= 2 * (FRAMES_PER_EPISODE - 2)
    for k in (1, 2):
        assert rows[k]['expert_labelled_steps'] - rows[k - 1]['expert_labelled_steps'] \
            == pytest.approx(2 * INTERVENTION_FRAMES, abs=2)
        assert rows[k]['intervention_rate'] == pytest.approx(10 / 60)
        assert rows[k]['success_rate'] == 0.5 and rows[k]['episodes_added'] == 2
    assert (out / 'report.md').read_text().count('\n| ') == 4

    # labels from the control source, pre_intervention before each takeover
    ds = Dataset(out / 'dataset')
    ep = by_round['round_01'][0]
    labels = decode_labels(ds.read('label', ep, 0, ds.episode_lengths[ep]))
    t = labels.index('intervention')
    assert labels[t - PRE:t] == ['pre_intervention'] * PRE and 'policy' not in labels[t - PRE:t]

    # warm starts and the HG-DAgger weights
    trained = first.trained + again.trained
    assert not any(o.startswith('init_checkpoint=') for o in trained[0]['overrides'])
    for k in (1, 2):
        prev = str(out / f'round_{k - 1:02d}' / 'train' / 'best')
        assert f'init_checkpoint={prev}' in trained[k]['overrides']
        assert 'weighting=uniform' in trained[k]['overrides']
        lw = next(o for o in trained[k]['overrides'] if o.startswith('label_weights='))
        assert json.loads(lw.split('=', 1)[1]) == {'policy': 0.0, 'pre_intervention': 0.0,
                                                   'hold': 0.0}


def test_dagger_counts_every_visited_state(tmp_path, fake):
    out = tmp_path / 'run'
    report = dg.DaggerRun(config(out, method='dagger', rounds=1, weighting='iwr')).run()
    rows = report['rounds']
    added = rows[1]['expert_labelled_steps'] - rows[0]['expert_labelled_steps']
    assert added == Dataset(out / 'dataset').episode_lengths[2:].sum()
    lw = next(o for o in fake['driver'].trained[1]['overrides']
              if o.startswith('label_weights='))
    assert json.loads(lw.split('=', 1)[1]) == {'hold': 0.0}


def test_other_settings_are_refused_more_rounds_are_not(tmp_path, fake):
    out = tmp_path / 'run'
    dg.DaggerRun(config(out, rounds=0)).run()
    with pytest.raises(dg.DaggerError, match='weighting'):
        dg.DaggerRun(config(out, rounds=0, weighting='iwr')).run()
    report = dg.DaggerRun(config(out, rounds=1)).run()
    assert [r['round'] for r in report['rounds']] == [0, 1]


def test_a_command_gap_in_an_intervention_keeps_the_episode(tmp_path, fake):
    # 0.6 s (12 periods) without /il/command or /il/control_source from 1.2 s, inside the
    # intervention (1.0 .. 1.5 s). Strict conversion (or stale_reject 10) rejects that.
    fake['driver'] = FakeDriver(action_gap=(1.2, 1.8))
    out = tmp_path / 'run'
    report = dg.DaggerRun(config(out, rounds=1)).run()
    eps = _episodes_by_round(out).get('round_01', [])
    assert len(eps) == 2, 'no round episode is rejected'
    ds = Dataset(out / 'dataset')
    for ep in eps:
        labels = decode_labels(ds.read('label', ep, 0, ds.episode_lengths[ep]))
        held = [i for i, x in enumerate(labels) if x == 'hold']
        assert 6 <= len(held) <= 10 and held == list(range(held[0], held[-1] + 1))
        assert labels[held[0] - 1] == 'intervention' and labels[held[-1] + 1] == 'policy'
        assert labels.count('pre_intervention') == PRE, 'the hole is not a second takeover'
        assert ds.meta(ep)['stale_hold_frames'] == len(held)
    added = report['rounds'][1]['expert_labelled_steps'] - \
        report['rounds'][0]['expert_labelled_steps']
    assert 0 < added < 2 * INTERVENTION_FRAMES
