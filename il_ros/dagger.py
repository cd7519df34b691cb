r"""``il-ros dagger``: rounds of deploy -> record -> convert + aggregate -> retrain -> hot-reload.

    il-ros dagger --task path --rounds 4 --episodes-per-round 10 --out runs/dagger/path \
        [--method hg-dagger|dagger|dart|bc] [--weighting uniform|iwr|sirius] [--demos 20]

Round 0 is behavioral cloning on the initial data: ``--demos`` scripted demonstrations
recorded through the ``record`` graph (or ``--init-dataset``), trained from scratch (or
``--init-checkpoint``). Each round k >= 1 then, by ``--method``:

- ``hg-dagger`` (default): deploys the round k-1 policy through the ``dagger`` node graph
  (sim_robot in real time, controller, supervisor, recorder, trainer); the scripted
  supervisor takes over through the controller's takeover channel when the run goes wrong
  and hands back once it recovered; whole episodes are recorded with
  ``/il/control_source``. Expert-labelled steps: the intervention frames.
- ``dagger``: deploys the policy alone (supervisor disarmed); every visited state is
  labelled by the scripted expert (the supervisor publishes the expert's action for every
  ``/sim/state`` on ``/il/expert/label``, which becomes the action label). Expert-labelled
  steps: every frame.
- ``dart``: records ``--episodes-per-round`` more scripted demos with DART noise on the
  executed command (clean labels); ``bc``: the same without noise. Expert-labelled steps:
  every frame.

then converts the round's bags and appends them to ``OUT/dataset`` (D <- D u D_round;
bags already converted are skipped by content), retrains through the trainer node's
``~/train`` with the training config (``--config``), ``weighting`` and a warm start from the
round k-1 policy (``init_checkpoint``), hot-reloads the new best checkpoint into the running
controller, and evaluates it in-process on seeds EVAL_SEED.. (no supervisor).

Frame weights (``--weighting``, TrainConfig.weighting; HOLD frames always get 0): for
``hg-dagger``, ``uniform`` is HG-DAgger proper (train on the demos and the interventions
only: policy and pre-intervention frames get weight 0); ``iwr`` and ``sirius`` use every
frame, reweighted. ``--set label_weights=...`` replaces these defaults.

Layout of OUT::

    state.json                 the configuration and every finished phase (resume point)
    dataset/                   the aggregated dataset
    round_00/bags/ (demos), round_KK/bags/ (the round's episodes + episodes.jsonl)
    round_KK/train/            the training run (checkpoints/best is the round's policy)
    round_KK/eval.json         the in-process evaluation
    report.json, report.md, logs/

Resume: run the same command again. Finished phases are skipped; a round's collection goes
on from its last complete episode (an episode cut off mid-way is moved to
``round_KK/interrupted/``); conversion skips converted bags; training resumes its run
folder. ``--rounds`` may grow between runs; the other settings must match.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from il_ros import keys
from il_ros.data.episodes import episode_status, STATUS_COMPLETE

METHODS = ('hg-dagger', 'dagger', 'dart', 'bc')
WEIGHTINGS = ('uniform', 'iwr', 'sirius')
COLLECT_SEED = 3000
"""Round episodes use env seeds from here (demos: 0..; evaluation: 1000..; selection
rollouts of the shipped configs: 2000..). Episode i of round k: COLLECT_SEED + (k-1) N + i."""
DEMO_LABEL_TOPIC = keys.TOPIC_TELEOP_COMMAND
EXPERT_LABEL_TOPIC = '/il/expert/label'
PHASES = ('data', 'collect', 'convert', 'train', 'eval')
STALE_ACTION_HOLD = 4.0
"""Conversion of a round: a tick whose label (command) is older than this many periods is
labelled hold instead of rejecting the episode (strict ``il-ros convert`` rejects there)."""
_MUST_MATCH = ('task', 'method', 'weighting', 'episodes_per_round', 'demos', 'init_dataset',
               'init_checkpoint', 'config', 'noise', 'cameras', 'image_size', 'rate_hz',
               'seed', 'overrides', 'pre_intervention', 'max_episode_steps')


class DaggerError(RuntimeError):
    """The run cannot go on; the message says why."""


@dataclass
class DaggerConfig:
    """One ``il-ros dagger`` run (see the module doc)."""

    task: str
    out: str
    rounds: int = 3
    episodes_per_round: int = 10
    method: str = 'hg-dagger'
    weighting: str = 'uniform'
    demos: int = 20
    """Scripted demos recorded for round 0 (ignored with init_dataset)."""
    init_dataset: str | None = None
    """A converted dataset to start from (copied into OUT/dataset)."""
    init_checkpoint: str | None = None
    """Round 0's policy (skips round 0's training)."""
    config: str | None = None
    """Training config (path or name under config/train/); default ``<task>_none_mse``."""
    max_minutes: float | None = None
    """Training budget per round (None: the config's)."""
    max_steps: int | None = None
    """Training steps per round (None: the config's)."""
    eval_episodes: int = 20
    noise: float = 0.05
    """DART noise (rad) for ``--method dart`` (round 0's demos included)."""
    cameras: tuple[str, ...] = ('front',)
    image_size: tuple[int, int] = (84, 84)
    rate_hz: float = 20.0
    rtf: float = 4.0
    """Real-time factor for recording scripted demos (deployment runs in real time)."""
    seed: int = 0
    """Training seed (TrainConfig.seed)."""
    overrides: list[str] = field(default_factory=list)
    """Training config overrides, KEY=VALUE."""
    pre_intervention: int = 10
    """Policy frames before a takeover labelled pre_intervention."""
    max_episode_steps: int | None = None
    """Control steps per deployed episode (None: the task's limit)."""
    threads: int = 2
    """torch threads for training and evaluation."""
    supervisor: dict = field(default_factory=dict)
    """Supervisor node parameters (gate thresholds: config/supervisor.yaml)."""

    def __post_init__(self):
        from il_ros.sim.registry import TASKS
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r}; valid tasks: {", ".join(TASKS)}')
        if self.method not in METHODS:
            raise ValueError(f'method must be one of {METHODS}, got {self.method!r}')
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f'weighting must be one of {WEIGHTINGS}, got {self.weighting!r}')
        if self.rounds < 0 or self.episodes_per_round < 1:
            raise ValueError(f'need rounds >= 0 and episodes_per_round >= 1, got '
                             f'{self.rounds}, {self.episodes_per_round}')
        if self.init_dataset is None and self.demos < 1:
            raise ValueError('round 0 needs data: --demos N (>= 1) or --init-dataset')
        self.cameras = tuple(self.cameras)
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.config is None:
            self.config = f'{self.task}_none_mse'

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _say(text: str) -> None:
    print(f'[dagger {time.strftime("%H:%M:%S")}] {text}', flush=True)


class DaggerRun:
    """Runs (or resumes) the rounds of one :class:`DaggerConfig` (see the module doc)."""

    def __init__(self, cfg: DaggerConfig):
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()
        self.dataset = self.out / 'dataset'
        self.state_file = self.out / 'state.json'
        self.state: dict = {}
        self.runner = None
        self.driver = None
        self.graph_nodes: set[str] = set()
        self.next_seed: int | None = None
        self.env = None

    # ------------------------------------------------------------------ state
    def _load_state(self) -> None:
        cfg = self.cfg.to_dict()
        if self.state_file.is_file():
            self.state = json.loads(self.state_file.read_text())
            old = self.state['config']
            diff = [k for k in _MUST_MATCH if old.get(k) != cfg.get(k)]
            if diff:
                raise DaggerError(
                    f'{self.out} holds a dagger run with other settings ('
                    + ', '.join(f'{k}: {old.get(k)!r} there, {cfg.get(k)!r} now' for k in diff)
                    + '); use another --out, or the same settings to resume')
            self.state['config'] = cfg
            _say(f'resuming {self.out} (done: ' + ', '.join(
                f'round {k}: {"/".join(r["done"])}' for k, r in
                sorted(self.state['rounds'].items(), key=lambda kv: int(kv[0]))) + ')')
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            self.state = {'config': cfg, 'rounds': {}}
        self._save()

    def _save(self) -> None:
        tmp = self.state_file.with_suffix('.tmp')
        tmp.write_text(json.dumps(self.state, indent=1, default=str))
        os.replace(tmp, self.state_file)

    def _round(self, k: int) -> dict:
        return self.state['rounds'].setdefault(str(k), {'round': k, 'done': []})

    def _done(self, k: int, phase: str, **result) -> None:
        r = self._round(k)
        r.update(result)
        if phase not in r['done']:
            r['done'].append(phase)
        self._save()

    def round_dir(self, k: int) -> Path:
        return self.out / f'round_{k:02d}'

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Every round's phases not yet done; returns the report (also written to OUT)."""
        import torch
        torch.set_num_threads(max(1, self.cfg.threads))
        self._load_state()
        try:
            for k in range(self.cfg.rounds + 1):
                phases = ('data', 'train', 'eval') if k == 0 else PHASES[1:]
                for phase in phases:
                    if phase not in self._round(k)['done']:
                        getattr(self, f'_phase_{phase}')(k)
                self._write_report()
        finally:
            self._close_graph()
        return self._write_report()

    # ------------------------------------------------------------------ phases
    def _phase_data(self, k: int) -> None:
        cfg = self.cfg
        if cfg.init_dataset:
            src = Path(cfg.init_dataset)
            if not (src / 'manifest.json').is_file():
                raise DaggerError(f'--init-dataset {src}: not a dataset (no manifest.json)')
            if self.dataset.exists():
                shutil.rmtree(self.dataset)        # a copy cut off before it was recorded
            _say(f'round 0: copying the initial dataset {src} -> {self.dataset}')
            shutil.copytree(src, self.dataset)
        else:
            bags = self.round_dir(0) / 'bags'
            noise = cfg.noise if cfg.method == 'dart' else 0.0
            self._record_demos(bags, cfg.demos, first_seed=0, noise=noise)
            self._convert(bags, DEMO_LABEL_TOPIC)
        self._done(k, 'data', **self._new_data(k, demos=True))

    def _phase_collect(self, k: int) -> None:
        cfg = self.cfg
        bags = self.round_dir(k) / 'bags'
        first = COLLECT_SEED + (k - 1) * cfg.episodes_per_round
        if cfg.method in ('dart', 'bc'):
            noise = cfg.noise if cfg.method == 'dart' else 0.0
            self._record_demos(bags, cfg.episodes_per_round, first_seed=first, noise=noise)
            self._done(k, 'collect')
            return
        episodes = self._deploy(k, bags, first)
        n = len(episodes)
        self._done(k, 'collect', collect={
            'episodes': n, 'success_rate': sum(e['success'] for e in episodes) / n,
            'human_ticks': sum(e['human_ticks'] for e in episodes),
            'ticks': sum(e['ticks'] for e in episodes),
            'takeovers': sum(e['takeovers'] for e in episodes),
            'intervention_rate': (sum(e['human_ticks'] for e in episodes)
                                  / max(1, sum(e['ticks'] for e in episodes))),
            'failures': {f: sum(e['failure'] == f for e in episodes)
                         for f in sorted({e['failure'] for e in episodes if e['failure']})}})

    def _phase_convert(self, k: int) -> None:
        topic = {'hg-dagger': keys.TOPIC_COMMAND, 'dagger': EXPERT_LABEL_TOPIC}.get(
            self.cfg.method, DEMO_LABEL_TOPIC)
        self._convert(self.round_dir(k) / 'bags', topic)
        self._done(k, 'convert', **self._new_data(k, demos=self.cfg.method in ('dart', 'bc')))

    def _phase_train(self, k: int) -> None:
        cfg = self.cfg
        if k == 0 and cfg.init_checkpoint:
            ckpt = str(Path(cfg.init_checkpoint).resolve())
            self._done(k, 'train', checkpoint=ckpt, train={'init_checkpoint': ckpt})
            return
        run_dir = self.round_dir(k) / 'train'
        prev = self._round(k - 1).get('checkpoint') if k > 0 else None
        overrides = [f'seed={cfg.seed}', f'weighting={cfg.weighting}',
                     f'label_weights={json.dumps(self.label_weights())}']
        if prev:
            overrides.append(f'init_checkpoint={prev}')
        overrides += list(cfg.overrides)
        _say(f'round {k}: training {cfg.config!r} (weighting {cfg.weighting}'
             + (f', warm start from round {k - 1}' if prev else ', from scratch')
             + f') on {self._frames()} frames through the trainer node -> {run_dir}')
        driver = self._graph({'trainer'})
        params = {'config': str(cfg.config), 'dataset': str(self.dataset),
                  'out_dir': str(run_dir), 'max_minutes': float(cfg.max_minutes or 0.0),
                  'max_steps': int(cfg.max_steps or 0), 'overrides': overrides,
                  'threads': int(cfg.threads)}
        last = [0.0]

        def progress(s):
            if time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                _say(f'  training: step {s.get("step")}, loss {s.get("loss")}, success '
                     f'{s.get("success")}, eta {s.get("eta_s")} s')
        t0 = time.monotonic()
        status = driver.train(params, progress=progress)
        summary = json.loads((run_dir / 'summary.json').read_text())
        best = (summary.get('best') or {}).get('path') or summary['last']
        self._done(k, 'train', checkpoint=best, train={
            'step': summary['step'], 'train_s': summary['train_s'],
            'wall_s': round(time.monotonic() - t0, 1), 'samples_per_s': summary['samples_per_s'],
            'label_weights': summary.get('label_weights'),
            'label_counts': summary.get('label_counts'), 'message': status.get('message')})
        if 'controller' in self.graph_nodes:
            _say(f'round {k}: hot-loading {best} into the controller')
            driver.load_checkpoint(best)

    def _phase_eval(self, k: int) -> None:
        from il_ros.training.evaluate import evaluate_checkpoint
        cfg = self.cfg
        ckpt = self._round(k)['checkpoint']
        _say(f'round {k}: evaluating {ckpt} in-process, {cfg.eval_episodes} episodes from '
             f'seed {keys.EVAL_SEED} (no supervisor)')
        res = evaluate_checkpoint(ckpt, cfg.task, episodes=cfg.eval_episodes,
                                  seed=keys.EVAL_SEED, progress=False,
                                  max_steps=cfg.max_episode_steps)
        (self.round_dir(k)).mkdir(parents=True, exist_ok=True)
        (self.round_dir(k) / 'eval.json').write_text(json.dumps(res, indent=1, default=str))
        _say(f'round {k}: success {res["success_rate"]:.0%}, failures {res["failures"]}')
        self._done(k, 'eval', eval={'success_rate': res['success_rate'],
                                    'failures': res['failures'],
                                    'mean_steps': res['mean_steps']})

    # ------------------------------------------------------------------ pieces
    def label_weights(self) -> dict:
        """Per-label weights handed to training (see the module doc)."""
        for item in self.cfg.overrides:
            if item.split('=', 1)[0].strip() == 'label_weights':
                return {}            # the user's own (their override comes last)
        if self.cfg.method == 'hg-dagger' and self.cfg.weighting == 'uniform':
            return {'policy': 0.0, 'pre_intervention': 0.0, 'hold': 0.0}
        return {'hold': 0.0}

    def _record_demos(self, bags: Path, episodes: int, first_seed: int, noise: float) -> None:
        """Record scripted demos (the ``record`` graph) until ``bags`` holds ``episodes``
        complete ones; episode i uses env seed ``first_seed + i``."""
        self._close_graph()            # one sim per ROS domain
        have = _set_aside_incomplete(bags)
        if have >= episodes:
            return
        _say(f'recording {episodes - have} scripted {self.cfg.task} demos (DART noise '
             f'{noise:g}) from seed {first_seed + have} -> {bags}')
        cmd = [sys.executable, '-m', 'il_ros.cli', 'record', '--task', self.cfg.task,
               '--episodes', str(episodes - have), '--out', str(bags), '--rtf',
               str(self.cfg.rtf), '--noise', str(noise), '--seed', str(first_seed + have),
               '--cameras', *self.cfg.cameras]
        res = subprocess.run(cmd, env=self._env())
        if res.returncode != 0:
            raise DaggerError(f'recording demos failed (exit {res.returncode}): '
                              f'{" ".join(cmd)}')

    def _convert(self, bags: Path, action_topic: str) -> None:
        from il_ros.data.convert import convert, format_reports
        cfg = self.convert_config(action_topic)
        reports = convert([bags], self.dataset, cfg, progress=False)
        rejected = [r for r in reports if r.status == 'rejected']
        n = {s: sum(r.status == s for r in reports) for s in ('converted', 'skipped')}
        _say(f'converted {bags}: {n["converted"]} new episodes, {n["skipped"]} already in '
             f'the dataset, {len(rejected)} rejected')
        held = [r for r in reports if r.status == 'converted' and r.stale_hold]
        if held:
            _say(f'  {sum(r.stale_hold for r in held)} frames of {len(held)} episodes '
                 f'labelled hold: their command was more than {STALE_ACTION_HOLD:g} periods '
                 f'old (a starved controller or recorder)')
        if rejected:
            print(format_reports(rejected), flush=True)

    def convert_config(self, action_topic: str):
        """How the round's bags are converted (action label topic per method)."""
        from il_ros.data.topic_map import ActionRole, ConvertConfig, TopicMap
        c = self.cfg
        topics = TopicMap(cameras={cam: keys.camera_topic(cam) for cam in c.cameras},
                          action=ActionRole(topic=action_topic))
        # On a loaded machine a starved controller (or recorder: the label is timed by
        # receive time) leaves the label stream quiet for a few periods while the robot
        # keeps its last command. Those ticks have no label of their own: they are labelled
        # hold (weight 0 in training) where strict conversion would reject the whole
        # episode, and the intervention frames around them are kept. An observation stream
        # (header-stamped by the sim) still rejects above 10 periods.
        return ConvertConfig(topics=topics, rate_hz=c.rate_hz, image_size=c.image_size,
                             pre_intervention_frames=c.pre_intervention, stale_reject=10.0,
                             stale_action_hold=STALE_ACTION_HOLD)

    def _new_data(self, k: int, demos: bool) -> dict:
        """Episodes, frames and expert-labelled frames that round ``k`` added."""
        from il_ros.data.store import Dataset, decode_labels, LABEL_KEY
        ds = Dataset(self.dataset)
        root = str((self.round_dir(k) / 'bags').resolve())
        eps = [i for i in range(ds.num_episodes)
               if k == 0 and self.cfg.init_dataset
               or str(ds.meta(i).get('source_bag', '')).startswith(root + os.sep)]
        counts: dict[str, int] = {}
        for i in eps:
            n = int(ds.episode_lengths[i])
            labels = (decode_labels(ds.read(LABEL_KEY, i, 0, n)) if LABEL_KEY in ds.shapes
                      else [keys.SOURCE_DEMO] * n)
            for lab in labels:
                counts[lab] = counts.get(lab, 0) + 1
        frames = sum(counts.values())
        if demos or self.cfg.method == 'dagger':
            labelled = frames
        else:
            labelled = counts.get(keys.SOURCE_INTERVENTION, 0)
        return {'data': {'episodes': len(eps), 'frames': frames, 'labels': counts,
                         'expert_labelled': labelled,
                         'dataset_episodes': ds.num_episodes}}

    def _frames(self) -> int:
        from il_ros.data.store import Dataset
        return int(Dataset(self.dataset).episode_lengths.sum())

    def _env(self) -> dict:
        from il_ros.launcher import ros_env
        if self.env is None:
            self.env = ros_env()            # one random ROS domain for the whole run
        return self.env

    def _graph(self, need: set[str], first_seed: int | None = None):
        """The ``dagger`` graph with at least the nodes ``need`` (sim episodes continuing
        at ``first_seed`` when given); restarted when the running one does not fit."""
        from il_ros.ros.dagger_driver import start_sim_graph
        fits = (self.driver is not None and need <= self.graph_nodes
                and (first_seed is None or 'sim_robot' not in self.graph_nodes
                     or first_seed == self.next_seed))
        if fits:
            return self.driver
        self._close_graph()
        sim = 'sim_robot' in need
        nodes = (['sim_robot', 'controller', 'supervisor', 'recorder', 'trainer'] if sim
                 else ['trainer'])
        first = first_seed if first_seed is not None else 1
        _say(f'starting the dagger graph ({", ".join(nodes)}; logs in {self.out / "logs"})')
        self.runner, self.driver = start_sim_graph(
            self.cfg.task, self.out / 'logs', self.out / 'bags_unused', first, self.cfg.cameras,
            self.cfg.image_size, self.cfg.rate_hz, nodes=nodes,
            supervisor_params=self.cfg.supervisor, env=self._env())
        self.graph_nodes = set(nodes)
        self.next_seed = first if sim else None
        return self.driver

    def _close_graph(self) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            finally:
                self.driver = None
                if self.runner is not None:
                    self.runner.stop()
                self.runner = None
                self.graph_nodes = set()

    def _deploy(self, k: int, bags: Path, first_seed: int) -> list[dict]:
        """Run the round's episodes through the graph (resuming after the last complete
        one); returns every episode's result."""
        cfg = self.cfg
        log = self.round_dir(k) / 'episodes.jsonl'
        have = _set_aside_incomplete(bags)
        results = _read_jsonl(log)[:have]
        if len(results) != have:            # recorded but not logged: cannot be trusted
            raise DaggerError(f'{bags} holds {have} complete episodes but {log} lists '
                              f'{len(results)}; delete {bags} to collect the round again')
        ckpt = self._round(k - 1)['checkpoint']
        supervise = cfg.method == 'hg-dagger'
        limit = cfg.max_episode_steps or _task_steps(cfg.task, cfg.rate_hz)
        driver = None
        if have < cfg.episodes_per_round:
            _say(f'round {k}: deploying {ckpt} for {cfg.episodes_per_round - have} episodes '
                 f'({"supervised: takeovers by the scripted supervisor" if supervise else "unsupervised: the expert labels every state"}'
                 f', seeds from {first_seed + have})')
            driver = self._graph({'sim_robot', 'trainer'}, first_seed + have)
            driver.set_params('recorder', {'output_dir': str(bags)})
            if driver.status is None or driver.status.get('checkpoint') != ckpt:
                driver.load_checkpoint(ckpt)
        for i in range(have, cfg.episodes_per_round):
            seed = first_seed + i
            ep = driver.run_episode(seed, limit, supervise=supervise)
            self.next_seed = seed + 1
            results.append(ep)
            with open(log, 'a') as fh:
                fh.write(json.dumps(ep) + '\n')
            _say(f'  episode {i + 1}/{cfg.episodes_per_round} (seed {seed}): '
                 f'{"success" if ep["success"] else ep["failure"]} in {ep["steps"]} steps, '
                 f'{ep["takeovers"]} takeovers, {ep["human_ticks"]}/{ep["ticks"]} ticks by '
                 f'the supervisor')
            if ep['ticks'] < 0.9 * ep['steps']:
                # The sim runs in real time and does not wait for the controller.
                _say(f'  warning: the controller ticked {ep["ticks"]} times in {ep["steps"]} '
                     'sim steps (the machine is overloaded?): stale commands; conversion '
                     'labels those ticks hold')
        return results

    # ------------------------------------------------------------------ report
    def _write_report(self) -> dict:
        cfg = self.cfg
        rows, labelled = [], 0
        for k in range(cfg.rounds + 1):
            r = self.state['rounds'].get(str(k))
            if not r:
                break
            data = r.get('data') or {}
            labelled += data.get('expert_labelled', 0)
            col = r.get('collect') or {}
            rows.append({'round': k, 'done': r['done'],
                         'episodes_added': data.get('episodes'),
                         'frames_added': data.get('frames'),
                         'expert_labelled_steps': labelled,
                         'dataset_episodes': data.get('dataset_episodes'),
                         'success_rate': (r.get('eval') or {}).get('success_rate'),
                         'collect_success_rate': col.get('success_rate'),
                         'intervention_rate': col.get('intervention_rate'),
                         'takeovers_per_episode': (col['takeovers'] / col['episodes']
                                                   if col else None),
                         'train_steps': (r.get('train') or {}).get('step'),
                         'checkpoint': r.get('checkpoint')})
        report = {'config': cfg.to_dict(), 'rounds': rows}
        (self.out / 'report.json').write_text(json.dumps(report, indent=1, default=str))
        pct = lambda v: '-' if v is None else f'{v:.0%}'  # noqa: E731
        lines = [f'# il-ros dagger: {cfg.task}, {cfg.method}, weighting {cfg.weighting}', '',
                 f'{cfg.episodes_per_round} episodes per round; success: in-process, '
                 f'{cfg.eval_episodes} episodes from seed {keys.EVAL_SEED}, no supervisor.', '',
                 '| round | episodes added | expert-labelled steps (total) | success | '
                 'collection success | intervention rate | takeovers/episode |',
                 '|---|---|---|---|---|---|---|']
        for r in rows:
            tpe = r['takeovers_per_episode']
            added = '-' if r['episodes_added'] is None else r['episodes_added']
            lines.append(f"| {r['round']} | {added} | "
                         f"{r['expert_labelled_steps']} | {pct(r['success_rate'])} | "
                         f"{pct(r['collect_success_rate'])} | {pct(r['intervention_rate'])} | "
                         f"{'-' if tpe is None else f'{tpe:.1f}'} |")
        (self.out / 'report.md').write_text('\n'.join(lines) + '\n')
        return report


def _task_steps(task: str, rate_hz: float) -> int:
    from il_ros.sim.registry import make_env
    env = make_env(task, render=False, control_dt=1.0 / rate_hz)
    try:
        return env.max_steps
    finally:
        env.close()


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _set_aside_incomplete(bags: Path) -> int:
    """Move episodes the recorder did not finish into ``interrupted/`` beside ``bags`` (never
    converted); returns the number of complete ones."""
    if not bags.is_dir():
        return 0
    n = 0
    for meta in sorted(bags.glob('episode_*.json')):
        if episode_status(meta) == STATUS_COMPLETE:
            n += 1
            continue
        aside = bags.parent / 'interrupted'
        aside.mkdir(exist_ok=True)
        for p in (meta, meta.with_suffix('')):
            if p.exists():
                p.rename(aside / f'{p.name}.{int(time.time())}')
    return n


# ---------------------------------------------------------------------- command line
def add_dagger_parser(subparsers) -> None:
    """Add ``dagger`` to an argparse subparsers object (il_ros.cli)."""
    p = subparsers.add_parser('dagger', help='HG-DAgger rounds through the ROS node graph '
                              '(deploy with the scripted supervisor, record, aggregate, '
                              'retrain, hot-reload); DAgger / DART / BC baselines',
                              description=__doc__.split('\n\n')[0])
    p.add_argument('--task', required=True, help='sim task: lift, reach_around, path')
    p.add_argument('--rounds', type=int, default=3, help='rounds after round 0 (BC)')
    p.add_argument('--episodes-per-round', type=int, default=10)
    p.add_argument('--method', choices=METHODS, default='hg-dagger')
    p.add_argument('--weighting', choices=WEIGHTINGS, default='uniform')
    p.add_argument('--out', help='run folder (default runs/dagger/TASK_METHOD_WEIGHTING)')
    p.add_argument('--demos', type=int, default=20, help='scripted demos for round 0')
    p.add_argument('--init-dataset', help='start from this converted dataset instead')
    p.add_argument('--init-checkpoint', help='round 0 policy (skips its training)')
    p.add_argument('--config', help='training config (default TASK_none_mse)')
    p.add_argument('--max-minutes', type=float, help='training budget per round')
    p.add_argument('--max-steps', type=int, help='training steps per round')
    p.add_argument('--eval-episodes', type=int, default=20)
    p.add_argument('--noise', type=float, default=0.05, help='DART noise (rad), --method dart')
    p.add_argument('--cameras', nargs='+', default=['front'])
    p.add_argument('--image-size', type=int, nargs=2, default=[84, 84], metavar=('H', 'W'))
    p.add_argument('--rtf', type=float, default=4.0, help='real-time factor of demo recording')
    p.add_argument('--seed', type=int, default=0, help='training seed')
    p.add_argument('--episode-steps', type=int, help='control steps per deployed episode')
    p.add_argument('--pre-intervention', type=int, default=10)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='training config override (repeatable)')
    p.add_argument('--gate', action='append', default=[], metavar='PARAM=VALUE',
                   help='supervisor parameter, e.g. deviation_m=0.03 (config/supervisor.yaml)')
    p.set_defaults(func=_cmd_dagger)


def _cmd_dagger(args) -> int:
    import yaml
    gate = {}
    for item in args.gate:
        k, sep, v = item.partition('=')
        if not sep:
            print(f'il-ros dagger: --gate wants PARAM=VALUE, got {item!r}', file=sys.stderr)
            return 2
        gate[k.strip()] = yaml.safe_load(v)
    out = args.out or f'runs/dagger/{args.task}_{args.method}_{args.weighting}'
    try:
        cfg = DaggerConfig(
            task=args.task, out=out, rounds=args.rounds,
            episodes_per_round=args.episodes_per_round, method=args.method,
            weighting=args.weighting, demos=args.demos, init_dataset=args.init_dataset,
            init_checkpoint=args.init_checkpoint, config=args.config,
            max_minutes=args.max_minutes, max_steps=args.max_steps,
            eval_episodes=args.eval_episodes, noise=args.noise, cameras=tuple(args.cameras),
            image_size=tuple(args.image_size), rtf=args.rtf, seed=args.seed,
            overrides=list(args.set), pre_intervention=args.pre_intervention,
            max_episode_steps=args.episode_steps, threads=args.threads, supervisor=gate)
    except ValueError as e:
        print(f'il-ros dagger: {e}', file=sys.stderr)
        return 2
    try:
        report = DaggerRun(cfg).run()
    except DaggerError as e:
        print(f'il-ros dagger: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'\nil-ros dagger: interrupted; run the same command to resume ({out})',
              file=sys.stderr)
        return 130
    print((Path(out) / 'report.md').read_text())
    return 0 if report['rounds'] else 1


def main(argv=None) -> int:
    """Standalone entry: ``python -m il_ros.dagger --task ...``."""
    import argparse
    parser = argparse.ArgumentParser(prog='il-ros')
    sub = parser.add_subparsers(dest='cmd', required=True)
    add_dagger_parser(sub)
    args = parser.parse_args(['dagger', *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
