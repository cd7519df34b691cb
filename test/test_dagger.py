"""``il-ros dagger`` bookkeeping, with fakes for the ROS graph.

DaggerRun gets a fake collector that writes synthetic bags and a fake trainer and evaluator
(the conversion, the dataset and the state machine are the real ones):

- each round appends only its own new episodes to the aggregated dataset (re-converting a
  round adds nothing);
- an interrupted run (cut off mid-collection, with a half-written episode) resumes: finished
  rounds are not collected, converted or trained again, the half-written episode is set
  aside, and the collection goes on at the next seed;
- every round warm-starts from the previous round's policy with the chosen weighting, and
  the expert-labelled steps are counted per method;
- a run folder with other settings is refused;
- a hole in /il/command inside an intervention (a starved controller or recorder) labels
  those ticks hold instead of losing the episode;
- bench/dagger_experiment.py's policy_episode runs the controller's ControlLoop in process:
  the supervisor takes over and hands back through the loop's arbiter (the policy is reset
  at each hand-back) and the frames hold the filtered command.
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


class FakeCollector:
    """Stands in for the ROS graph: demos and deployed episodes become synthetic bags."""

    def __init__(self, interrupt_at_seed=None, action_gap=None):
        self.interrupt_at_seed = interrupt_at_seed
        self.action_gap = action_gap
        self.seeds, self.demo_seeds, self.checkpoints = [], [], []

    def record_demos(self, bags, episodes, first_seed, noise):
        for i in range(episodes):
            self.demo_seeds.append(first_seed + i)
            _bag(bags, dg.DEMO_LABEL_TOPIC, first_seed + i)

    def deploy(self, checkpoint, bags, seeds, max_steps, supervise):
        self.checkpoints.append(checkpoint)
        for seed in seeds:
            if seed == self.interrupt_at_seed:
                _bag(bags, '/il/command', seed, SOURCES, status='recording')  # cut off
                raise KeyboardInterrupt
            self.seeds.append(seed)
            name = _bag(bags, '/il/command', seed, SOURCES, action_gap=self.action_gap)
            yield {'seed': seed, 'success': False, 'failure': 'timeout', 'steps': max_steps,
                   'ticks': 60, 'human_ticks': 10, 'policy_ticks': 50, 'takeovers': 1,
                   'wall_s': 0.0, 'bag': name}


class FakeTrainer:
    """Training writes nothing; it answers with a summary naming the run's checkpoints."""

    def __init__(self):
        self.requests = []

    def train(self, request, progress):
        self.requests.append(request)
        progress({'step': 1, 'loss': 1.0, 'success': None, 'eta_s': 1})
        run = Path(request.out_dir)
        return {'step': 5, 'train_s': 0.1, 'samples_per_s': 1.0, 'last': str(run / 'last'),
                'best': {'path': str(run / 'best')}, 'message': 'fake'}


class FakeEvaluator:
    def __init__(self):
        self.calls = []

    def evaluate(self, checkpoint, task, episodes, seed, max_steps):
        self.calls.append((checkpoint, episodes, seed))
        return {'success_rate': 0.5, 'failures': {'off_path': 1}, 'mean_steps': 10.0}


def config(out, **kw):
    base = dict(task='path', out=str(out), rounds=2, episodes_per_round=2, demos=2,
                cameras=('front',), image_size=(32, 32), pre_intervention=PRE,
                max_episode_steps=30)
    return dg.DaggerConfig(**{**base, **kw})


def dagger_run(cfg, collector=None, trainer=None, evaluator=None):
    """A DaggerRun over fakes (quiet)."""
    return dg.DaggerRun(cfg, collector or FakeCollector(), trainer or FakeTrainer(),
                        evaluator or FakeEvaluator(), log=lambda text: None)


def _episodes_by_round(out: Path) -> dict:
    ds = Dataset(out / 'dataset')
    rounds = {}
    for i in range(ds.num_episodes):
        r = Path(ds.meta(i)['source_bag']).parent.parent.name
        rounds.setdefault(r, []).append(i)
    return rounds


def _overrides(request) -> dict:
    return dict(o.split('=', 1) for o in request.overrides)


def test_interrupted_run_resumes_and_rounds_add_only_their_episodes(tmp_path):
    out = tmp_path / 'run'
    first, trainer1 = FakeCollector(interrupt_at_seed=dg.COLLECT_SEED + 3), FakeTrainer()
    with pytest.raises(KeyboardInterrupt):                       # round 2, episode 2
        dagger_run(config(out), first, trainer1).run()
    assert first.demo_seeds == [0, 1]
    assert first.seeds == [dg.COLLECT_SEED, dg.COLLECT_SEED + 1, dg.COLLECT_SEED + 2]
    assert len(trainer1.requests) == 2                           # rounds 0 and 1
    state = json.loads((out / 'state.json').read_text())
    assert state['rounds']['1']['done'] == ['collect', 'convert', 'train', 'eval']
    assert state['rounds'].get('2', {}).get('done', []) == []

    again, trainer2 = FakeCollector(), FakeTrainer()
    report = dagger_run(config(out), again, trainer2).run()
    assert again.demo_seeds == [], 'round 0 is not recorded again'
    assert again.seeds == [dg.COLLECT_SEED + 3], 'resumed at the interrupted episode'
    assert [Path(r.out_dir).parent.name for r in trainer2.requests] == ['round_02']
    bags2 = out / 'round_02' / 'bags'
    assert len(list(bags2.glob('episode_*.json'))) == 2
    assert len(list((out / 'round_02' / 'interrupted').glob('episode_*.json.*'))) == 1
    episodes = [json.loads(x) for x in (out / 'round_02' / 'episodes.jsonl').read_text()
                .splitlines()]
    assert [e['seed'] for e in episodes] == [dg.COLLECT_SEED + 2, dg.COLLECT_SEED + 3]

    # every round added exactly its own episodes, none twice
    by_round = _episodes_by_round(out)
    assert {r: len(v) for r, v in by_round.items()} == {
        'round_00': 2, 'round_01': 2, 'round_02': 2}
    run = dagger_run(config(out))
    run.load_state()
    run.convert(1)                                         # converting again adds nothing
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
    assert json.loads((out / 'report.json').read_text())['rounds'] == rows

    # labels from the control source, pre_intervention before each takeover
    ds = Dataset(out / 'dataset')
    ep = by_round['round_01'][0]
    labels = decode_labels(ds.read('label', ep, 0, ds.episode_lengths[ep]))
    t = labels.index('intervention')
    assert labels[t - PRE:t] == ['pre_intervention'] * PRE and 'policy' not in labels[t - PRE:t]

    # each round deploys the previous round's policy, warm-starts from it, HG-DAgger weights
    best = [str(out / f'round_{k:02d}' / 'train' / 'best') for k in (0, 1)]
    assert first.checkpoints == best and again.checkpoints == best[1:]
    requests = trainer1.requests + trainer2.requests
    assert 'init_checkpoint' not in _overrides(requests[0])
    for k in (1, 2):
        o = _overrides(requests[k])
        assert o['init_checkpoint'] == best[k - 1] and o['weighting'] == 'uniform'
        assert json.loads(o['label_weights']) == {'policy': 0.0, 'pre_intervention': 0.0,
                                                  'hold': 0.0}
        assert requests[k].config == dg.DEFAULT_RECIPE and requests[k].task == 'path'
        assert requests[k].dataset == str(out / 'dataset')


def test_round_0_trains_max_steps_and_later_rounds_round_max_steps(tmp_path):
    trainer = FakeTrainer()
    dagger_run(config(tmp_path / 'a', max_steps=7, round_max_steps=3), trainer=trainer).run()
    assert [r.max_steps for r in trainer.requests] == [7, 3, 3]
    trainer = FakeTrainer()
    dagger_run(config(tmp_path / 'b', max_steps=7), trainer=trainer).run()
    assert [r.max_steps for r in trainer.requests] == [7, 7, 7]


def test_dagger_counts_every_visited_state(tmp_path):
    out = tmp_path / 'run'
    trainer = FakeTrainer()
    report = dagger_run(config(out, method='dagger', rounds=1, weighting='iwr'),
                        trainer=trainer).run()
    rows = report['rounds']
    added = rows[1]['expert_labelled_steps'] - rows[0]['expert_labelled_steps']
    assert added == Dataset(out / 'dataset').episode_lengths[2:].sum()
    assert json.loads(_overrides(trainer.requests[1])['label_weights']) == {'hold': 0.0}


def test_dart_rounds_record_noisy_demos_from_the_collect_seeds(tmp_path):
    out = tmp_path / 'run'
    collector, evaluator = FakeCollector(), FakeEvaluator()
    report = dagger_run(config(out, method='dart', rounds=2), collector,
                        evaluator=evaluator).run()
    c = dg.COLLECT_SEED
    assert collector.demo_seeds == [0, 1, c, c + 1, c + 2, c + 3]
    assert collector.checkpoints == [], 'dart deploys no policy'
    rows = report['rounds']
    for k in (1, 2):           # every frame of a demo is expert-labelled
        assert rows[k]['expert_labelled_steps'] - rows[k - 1]['expert_labelled_steps'] \
            == rows[k]['frames_added'] > 0
    assert [call[2] for call in evaluator.calls] == [1000, 1000, 1000]
    assert json.loads((out / 'round_02' / 'eval.json').read_text())['success_rate'] == 0.5


def test_other_settings_are_refused_more_rounds_are_not(tmp_path):
    out = tmp_path / 'run'
    dagger_run(config(out, rounds=0)).run()
    with pytest.raises(dg.DaggerError, match='weighting'):
        dagger_run(config(out, rounds=0, weighting='iwr')).run()
    report = dagger_run(config(out, rounds=1)).run()
    assert [r['round'] for r in report['rounds']] == [0, 1]


def test_a_command_gap_in_an_intervention_keeps_the_episode(tmp_path):
    # 0.6 s (12 periods) without /il/command or /il/control_source from 1.2 s, inside the
    # intervention (1.0 .. 1.5 s). Strict conversion (or stale_reject 10) rejects that.
    out = tmp_path / 'run'
    report = dagger_run(config(out, rounds=1), FakeCollector(action_gap=(1.2, 1.8))).run()
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


def test_every_field_is_documented_and_is_a_flag_with_the_dataclass_default():
    import argparse
    import dataclasses

    from il_ros.dagger.cli import add_dagger_parser, config_from_args
    from il_ros.dagger.config import field_docs
    fields = {f.name: f for f in dataclasses.fields(dg.DaggerConfig)}
    docs = field_docs(dg.DaggerConfig)
    assert set(docs) == set(fields) and all(len(d) > 10 for d in docs.values())
    parser = argparse.ArgumentParser()
    add_dagger_parser(parser.add_subparsers(dest='cmd'))

    def parse(*argv):
        return config_from_args(parser.parse_args(['dagger', *argv]))
    # no flag given: every field keeps the dataclass default
    assert parse('--task', 'path', '--cameras', 'front') == dg.DaggerConfig(
        task='path', cameras=('front',))
    # the flags `il-ros dagger` has always had, each landing in its field
    cfg = parse('--task', 'lift', '--rounds', '1', '--episodes-per-round', '2', '--method',
                'dagger', '--weighting', 'iwr', '--out', 'o', '--demos', '3', '--init-dataset',
                'd', '--init-checkpoint', 'c', '--config', 'x.yaml', '--max-minutes', '1.5',
                '--max-steps', '7', '--round-max-steps', '5', '--eval-episodes', '4',
                '--noise', '0.1', '--cameras', 'front', 'wrist', '--image-size', '48', '64',
                '--rtf', '2', '--seed', '5',
                '--episode-steps', '40', '--pre-intervention', '3', '--threads', '1',
                '--set', 'lr=1e-3', '--set', 'batch_size=8', '--gate', 'deviation_m=0.03',
                '--gate', 'release_steps=2')
    assert cfg == dg.DaggerConfig(
        task='lift', rounds=1, episodes_per_round=2, method='dagger', weighting='iwr',
        out='o', demos=3, init_dataset='d', init_checkpoint='c', config='x.yaml',
        max_minutes=1.5, max_steps=7, round_max_steps=5, eval_episodes=4, noise=0.1,
        cameras=('front', 'wrist'), image_size=(48, 64), rtf=2.0, seed=5,
        max_episode_steps=40, pre_intervention=3,
        threads=1, overrides=['lr=1e-3', 'batch_size=8'],
        supervisor={'deviation_m': 0.03, 'release_steps': 2})
    assert cfg.out == 'o'
    assert parse('--task', 'path', '--cameras', 'front', '--method', 'bc').out == \
        'runs/dagger/path_bc_uniform'
    with pytest.raises(ValueError, match='--gate wants PARAM=VALUE'):
        parse('--task', 'path', '--cameras', 'front', '--gate', 'deviation_m')


@pytest.mark.parametrize('bad, message', [
    ({'task': 'fly'}, 'valid tasks: lift, reach_around, path'),
    ({'method': 'hg'}, 'method must be one of hg-dagger'),
    ({'demos': 0}, 'round 0 needs data: demos >= 1'),
    ({'episodes_per_round': 0}, 'episodes_per_round must be >= 1'),
    ({'max_minutes': 0}, 'max_minutes must be > 0 (or unset'),
    ({'image_size': (4, 4)}, 'image_size must be'),
    ({'overrides': ['lr']}, 'overrides are KEY=VALUE'),
])
def test_invalid_settings_say_what_to_change(bad, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        dg.DaggerConfig(**{'task': 'path', 'cameras': ('front',), **bad})


def test_the_trainer_node_gets_the_recipe_with_the_task_overlay(tmp_path):
    # Needs load_train_config(..., task=) and config/train/mse_chunk.yaml + tasks/ (recipes).
    from il_ros.dagger.collect import resolve_recipe
    from il_ros.training.config import load_train_config
    request = dg.TrainRequest(config=dg.DEFAULT_RECIPE, task='lift', dataset='d',
                              out_dir=str(tmp_path / 'round_01' / 'train'),
                              overrides=['weighting=iwr', 'policy.cameras=[front]'],
                              max_steps=700)
    path = resolve_recipe(request, tmp_path / 'round_01' / 'train_recipe.yaml')
    direct = load_train_config(dg.DEFAULT_RECIPE, request.overrides, task='lift',
                               dataset='d', max_steps=700)
    # what the trainer node builds from the file, the overrides and the budget
    node = load_train_config(path, request.overrides, dataset='d', max_steps=700)
    assert node == direct and node.eval_task == 'lift' and node.weighting == 'iwr'
    with pytest.raises(dg.DaggerError, match='training config'):
        resolve_recipe(dg.TrainRequest(**{**vars(request), 'overrides': ['nope=1']}), path)


class _DriftingExpert:
    """The lift expert, then 0.4 rad off in base_yaw from its 9th action after each reset."""

    def __init__(self, env):
        from il_ros.sim import make_expert
        self.env, self.expert, self.resets, self.n = env, make_expert('lift', seed=0), 0, 0

    def reset(self, seed=None):
        self.resets += 1
        self.n = 0
        self.expert.reset(self.env)

    def act(self, obs):
        self.n += 1
        a = self.expert.act(self.env).executed.copy()
        if self.n > 8:
            a[0] += 0.4
        return a


def test_the_experiment_hands_over_and_back_through_the_control_loop():
    import sys

    import numpy as np

    from il_ros.sim import make_env
    from il_ros.sim.loop_episode import SimLoop
    from il_ros.sim.supervisor import Supervisor
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
    import dagger_experiment as dx   # bench/ is not a package
    env = make_env('lift', render=False)
    policy = _DriftingExpert(env)
    loop = SimLoop(env, policy)
    sup = Supervisor('lift', seed=0)
    try:
        frames, st = dx.policy_episode(loop, sup, 20000, supervise=True)
        labels = list(frames['label'])
        assert st['takeovers'] >= 1 and st['human_steps'] == labels.count('intervention')
        stats = loop.stats()
        assert stats['human_ticks'] == st['human_steps'] and stats['faults'] == 0
        assert policy.resets == 1 + st['takeovers']       # reset at each hand-back
        after = labels[labels.index('intervention'):]
        assert {'policy', 'pre_intervention'} & set(after)     # the policy drove again
        arm = frames['action'][:, :5].astype(float)
        assert np.abs(np.diff(arm, axis=0)).max() <= 0.1 + 1e-5   # the filtered command
        assert stats['safety']['rate_limited'] > 0
        policy.resets = 0
        frames, st = dx.policy_episode(loop, sup, 20001, supervise=False)   # DAgger
        assert 'intervention' not in list(frames['label']) and st['human_steps'] == 0
        assert policy.resets == 1
    finally:
        loop.close()
        sup.close()
        env.close()
