"""The rounds of a DAgger run: which phase comes next, what it hands to whom, what is kept.

:class:`DaggerRun` owns the run folder (``state.json``, the dataset, the rounds' folders and
the report) and the order of the phases. The work that needs robots (or the sim and the ROS
graph) is done by three objects passed in, so that a test can hand in fakes:

- a :class:`Collector` records scripted demos and deploys a policy for a round's episodes;
- a :class:`Trainer` trains a policy on the aggregated dataset;
- an :class:`Evaluator` measures a round's policy.

il_ros/dagger/collect.py has the defaults (the ROS node graph, the in-process evaluation).
Round 0: ``data`` (demos or the initial dataset), ``train``, ``eval``. Round k >= 1:
``collect``, ``convert``, ``train``, ``eval``. Every finished phase is written to
``state.json`` (atomically) before the next starts, so a run that stops resumes there.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import shutil
import time
from typing import Callable, Iterator, Protocol, Sequence

from il_ros import keys
from il_ros.dagger.data import (added_data, append_jsonl, collect_summary, convert_bags,
                                dataset_frames, read_jsonl, set_aside_incomplete,
                                write_jsonl)
from il_ros.dagger.config import COLLECT_SEED, DaggerConfig, DaggerError, RESUME_FIELDS
from il_ros.dagger.report import write_report
from il_ros.fsio import atomic_write_json


@dataclass
class TrainRequest:
    """One round's training run, as the :class:`Trainer` receives it."""

    config: str
    """Training recipe (name under config/train/ or a YAML path)."""
    task: str
    """Task whose overlay (config/train/tasks/TASK.yaml) applies."""
    dataset: str
    """The aggregated dataset."""
    out_dir: str
    """Run folder (a run already there is resumed)."""
    overrides: list[str]
    """KEY=VALUE overrides: the round's (seed, weighting, label_weights, init_checkpoint),
    then the user's."""
    max_minutes: float | None = None
    """Budget in minutes (None: the recipe's)."""
    max_steps: int | None = None
    """Budget in gradient steps (None: the recipe's)."""
    threads: int = 2
    """torch threads."""


class Collector(Protocol):
    """Records scripted demos and deploys policies (il_ros.dagger.collect.RosGraph)."""

    def record_demos(self, bags: Path, episodes: int, first_seed: int, noise: float) -> None:
        """Record ``episodes`` scripted demos into ``bags``.

        Episode i uses env seed ``first_seed + i``; ``noise`` is the DART noise on the
        executed command. Raises DaggerError when the recording fails.
        """

    def deploy(self, checkpoint: str, bags: Path, seeds: Sequence[int],
               max_steps: int | None, supervise: bool) -> Iterator[dict]:
        """Run ``checkpoint`` for one episode per seed, recorded into ``bags``.

        Under the supervisor when ``supervise``; ``max_steps`` None: the task's limit.
        Yields each episode's result as it ends: seed, success, failure, steps, ticks,
        human_ticks, policy_ticks, takeovers, wall_s, bag.
        """


class Trainer(Protocol):
    """Trains a round's policy (il_ros.dagger.collect.RosGraph: the trainer node)."""

    def train(self, request: TrainRequest, progress: Callable[[dict], None]) -> dict:
        """Train as requested; return the run summary.

        ``progress`` gets status dicts (step, loss, success, eta_s) while it runs. The
        summary: step, train_s, samples_per_s, best, last, label_weights, label_counts,
        message. Raises DaggerError when training fails.
        """


class Evaluator(Protocol):
    """Measures a round's policy (il_ros.dagger.collect.InProcessEvaluator)."""

    def evaluate(self, checkpoint: str, task: str, episodes: int, seed: int,
                 max_steps: int | None) -> dict:
        """Success of ``checkpoint`` on ``episodes`` episodes from env seed ``seed``.

        An il_ros.training.evaluate result (success_rate, failures, mean_steps, ...).
        """


def say(text: str) -> None:
    """Print a progress line of the run, with the time."""
    print(f'[dagger {time.strftime("%H:%M:%S")}] {text}', flush=True)


class DaggerRun:
    """Runs (or resumes) the rounds of one :class:`DaggerConfig` (see the module doc)."""

    def __init__(self, cfg: DaggerConfig, collector: Collector, trainer: Trainer,
                 evaluator: Evaluator, log: Callable[[str], None] = say):
        self.cfg = cfg
        self.collector = collector
        self.trainer = trainer
        self.evaluator = evaluator
        self.say = log
        self.out = Path(cfg.out).resolve()
        self.dataset = self.out / 'dataset'
        self.state_file = self.out / 'state.json'
        self.state: dict = {}

    # ------------------------------------------------------------------ state
    def load_state(self) -> None:
        """Read ``state.json`` (refusing one with other settings) or start a new one."""
        cfg = self.cfg.to_dict()
        if self.state_file.is_file():
            self.state = json.loads(self.state_file.read_text())
            old = self.state['config']
            diff = [k for k in RESUME_FIELDS if old.get(k) != cfg.get(k)]
            if diff:
                raise DaggerError(
                    f'{self.out} holds a dagger run with other settings ('
                    + ', '.join(f'{k}: {old.get(k)!r} there, {cfg.get(k)!r} now' for k in diff)
                    + '); use another --out, or the same settings to resume')
            self.state['config'] = cfg
            self.say(f'resuming {self.out} (done: ' + ', '.join(
                f'round {k}: {"/".join(r["done"])}' for k, r in
                sorted(self.state['rounds'].items(), key=lambda kv: int(kv[0]))) + ')')
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            self.state = {'config': cfg, 'rounds': {}}
        self.save()

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        atomic_write_json(self.state_file, self.state)

    def round_state(self, k: int) -> dict:
        """The state of round ``k`` (created empty)."""
        return self.state['rounds'].setdefault(str(k), {'round': k, 'done': []})

    def finish(self, k: int, phase: str, **result) -> None:
        """Record ``phase`` of round ``k`` as done, with its results, in ``state.json``."""
        r = self.round_state(k)
        r.update(result)
        if phase not in r['done']:
            r['done'].append(phase)
        self.save()

    def round_dir(self, k: int) -> Path:
        """The folder of round ``k``."""
        return self.out / f'round_{k:02d}'

    # ------------------------------------------------------------------ the run
    def phases(self, k: int) -> tuple[tuple[str, Callable[[int], None]], ...]:
        """The phases of round ``k``, in order: (name, method)."""
        if k == 0:
            return (('data', self.initial_data), ('train', self.train),
                    ('eval', self.evaluate))
        return (('collect', self.collect), ('convert', self.convert),
                ('train', self.train), ('eval', self.evaluate))

    def run(self) -> dict:
        """Every round's phases not yet done; returns the report (also written to OUT)."""
        self.load_state()
        for k in range(self.cfg.rounds + 1):
            for name, phase in self.phases(k):
                if name not in self.round_state(k)['done']:
                    phase(k)
            self.write_report()
        return self.write_report()

    def write_report(self) -> dict:
        """Write OUT/report.json, report.md and report.png from the state; return the report."""
        return write_report(self.out, self.cfg, self.state)

    # ------------------------------------------------------------------ phases
    def initial_data(self, k: int) -> None:
        """Round 0's data: a copy of the initial dataset, or recorded and converted demos."""
        cfg = self.cfg
        if cfg.init_dataset:
            src = Path(cfg.init_dataset)
            if not (src / 'manifest.json').is_file():
                raise DaggerError(f'--init-dataset {src}: not a dataset (no manifest.json)')
            if self.dataset.exists():
                shutil.rmtree(self.dataset)        # a copy cut off before it was recorded
            self.say(f'round 0: copying the initial dataset {src} -> {self.dataset}')
            shutil.copytree(src, self.dataset)
            added = added_data(self.dataset, None, all_expert=True)
        else:
            bags = self.round_dir(0) / 'bags'
            self.record_demos(bags, cfg.demos, first_seed=0)
            convert_bags(bags, self.dataset, cfg, cfg.label_topic(0), self.say)
            added = added_data(self.dataset, bags, all_expert=True)
        self.finish(k, 'data', data=added)

    def collect(self, k: int) -> None:
        """Round k's episodes: scripted demos (dart, bc) or the deployed round k-1 policy."""
        cfg = self.cfg
        bags = self.round_dir(k) / 'bags'
        first = COLLECT_SEED + (k - 1) * cfg.episodes_per_round
        if cfg.method in ('dart', 'bc'):
            self.record_demos(bags, cfg.episodes_per_round, first_seed=first)
            self.finish(k, 'collect')
            return
        episodes = self.deploy(k, bags, first)
        self.finish(k, 'collect', collect=collect_summary(episodes))

    def convert(self, k: int) -> None:
        """Append round k's episodes to the dataset, labelled per method."""
        cfg = self.cfg
        bags = self.round_dir(k) / 'bags'
        convert_bags(bags, self.dataset, cfg, cfg.label_topic(k), self.say)
        all_expert = cfg.method in ('dart', 'bc', 'dagger')
        self.finish(k, 'convert', data=added_data(self.dataset, bags, all_expert))

    def train(self, k: int) -> None:
        """Train round k's policy on the dataset (warm start from round k-1's)."""
        cfg = self.cfg
        if k == 0 and cfg.init_checkpoint:
            ckpt = str(Path(cfg.init_checkpoint).resolve())
            self.finish(k, 'train', checkpoint=ckpt, train={'init_checkpoint': ckpt})
            return
        run_dir = self.round_dir(k) / 'train'
        prev = self.round_state(k - 1).get('checkpoint') if k > 0 else None
        overrides = [f'seed={cfg.seed}', f'weighting={cfg.weighting}',
                     f'label_weights={json.dumps(cfg.label_weights())}']
        if prev:
            overrides.append(f'init_checkpoint={prev}')
        request = TrainRequest(config=str(cfg.config), task=cfg.task,
                               dataset=str(self.dataset), out_dir=str(run_dir),
                               overrides=overrides + list(cfg.overrides),
                               max_minutes=cfg.max_minutes,
                               max_steps=(cfg.round_max_steps or cfg.max_steps) if prev
                               else cfg.max_steps, threads=cfg.threads)
        self.say(f'round {k}: training {cfg.config!r} for {cfg.task} (weighting '
                 f'{cfg.weighting}' + (f', warm start from round {k - 1}' if prev
                                       else ', from scratch')
                 + f') on {dataset_frames(self.dataset)} frames -> {run_dir}')
        last = [0.0]

        def progress(s: dict) -> None:
            if time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                self.say(f'  training: step {s.get("step")}, loss {s.get("loss")}, success '
                         f'{s.get("success")}, eta {s.get("eta_s")} s')
        t0 = time.monotonic()
        summary = self.trainer.train(request, progress)
        best = (summary.get('best') or {}).get('path') or summary['last']
        self.finish(k, 'train', checkpoint=best, train={
            'step': summary['step'], 'train_s': summary['train_s'],
            'wall_s': round(time.monotonic() - t0, 1), 'samples_per_s': summary['samples_per_s'],
            'label_weights': summary.get('label_weights'),
            'label_counts': summary.get('label_counts'), 'message': summary.get('message')})

    def evaluate(self, k: int) -> None:
        """Measure round k's policy alone (no supervisor); keep it in round_KK/eval.json."""
        cfg = self.cfg
        ckpt = self.round_state(k)['checkpoint']
        self.say(f'round {k}: evaluating {ckpt}, {cfg.eval_episodes} episodes from seed '
                 f'{keys.EVAL_SEED} (no supervisor)')
        res = self.evaluator.evaluate(ckpt, cfg.task, cfg.eval_episodes, keys.EVAL_SEED,
                                      cfg.max_episode_steps)
        self.round_dir(k).mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.round_dir(k) / 'eval.json', res, sync=False)
        self.say(f'round {k}: success {res["success_rate"]:.0%}, failures {res["failures"]}')
        self.finish(k, 'eval', eval={'success_rate': res['success_rate'],
                                     'failures': res['failures'],
                                     'mean_steps': res['mean_steps']})

    # ------------------------------------------------------------------ collection
    def record_demos(self, bags: Path, episodes: int, first_seed: int) -> None:
        """Record scripted demos until ``bags`` holds ``episodes`` complete ones.

        Episode i uses env seed ``first_seed + i``; an unfinished one is set aside and
        recorded again.
        """
        have = set_aside_incomplete(bags)
        if have >= episodes:
            return
        noise = self.cfg.demo_noise()
        self.say(f'recording {episodes - have} scripted {self.cfg.task} demos (DART noise '
                 f'{noise:g}) from seed {first_seed + have} -> {bags}')
        self.collector.record_demos(bags, episodes - have, first_seed + have, noise)

    def deploy(self, k: int, bags: Path, first_seed: int) -> list[dict]:
        """Deploy round k-1's policy for round k's episodes; return every episode's result.

        Resumes after the last complete episode; each is logged to round_KK/episodes.jsonl.
        """
        cfg = self.cfg
        log = self.round_dir(k) / 'episodes.jsonl'
        have = set_aside_incomplete(bags)
        logged = read_jsonl(log)
        if len(logged) < have:              # recorded but not logged: cannot be trusted
            raise DaggerError(f'{bags} holds {have} complete episodes but {log} lists '
                              f'{len(logged)}; delete {bags} to collect the round again')
        results = logged[:have]
        if len(logged) > have:              # logged, then set aside as unfinished
            write_jsonl(log, results)
        seeds = range(first_seed + have, first_seed + cfg.episodes_per_round)
        if not seeds:
            return results
        ckpt = self.round_state(k - 1)['checkpoint']
        supervise = cfg.method == 'hg-dagger'
        how = ('supervised: takeovers by the scripted supervisor' if supervise
               else 'unsupervised: the expert labels every state')
        self.say(f'round {k}: deploying {ckpt} for {len(seeds)} episodes ({how}, seeds from '
                 f'{seeds[0]})')
        bags.mkdir(parents=True, exist_ok=True)
        episodes = self.collector.deploy(ckpt, bags, seeds, cfg.max_episode_steps, supervise)
        for i, ep in enumerate(episodes, start=have):
            results.append(ep)
            append_jsonl(log, ep)
            self.say(f'  episode {i + 1}/{cfg.episodes_per_round} (seed {ep["seed"]}): '
                     f'{"success" if ep["success"] else ep["failure"]} in {ep["steps"]} steps, '
                     f'{ep["takeovers"]} takeovers, {ep["human_ticks"]}/{ep["ticks"]} ticks by '
                     f'the supervisor')
            if ep['ticks'] < 0.9 * ep['steps']:
                # The sim runs in real time and does not wait for the controller.
                self.say(f'  warning: the controller ticked {ep["ticks"]} times in '
                         f'{ep["steps"]} sim steps (the machine is overloaded?): stale '
                         'commands; conversion labels those ticks hold')
        return results
