"""Peers on the same data: il_ros's ``demo`` recipe, LeRobot's ACT and Diffusion Policy.

    python bench/peers.py [--methods il_ros act diffusion] [--budget-min 20] [--eval-every 4]
        [--select-episodes 10] [--eval-episodes 50] [--dataset DIR] [--out runs/peers]
        [--venv /tmp/il_ros_peers_venv] [--json OUT.json]

With the project's Python: records ``--demos`` DART lift demos in process (or ``--dataset``),
exports them (``il-ros export --format lerobot``) and imports that back, so every method sees
the same decoded frames; makes the peers' venv (``--venv``; Python 3.11, torch 2.14.1 and
torchvision 0.29.1 from this machine's disk, torchcodec 0.14.0, lerobot 0.4.4 ``--no-deps``,
bench/peers.txt; il_ros on PYTHONPATH; HF_HUB_OFFLINE=1); trains all at once, a process and a
torch thread each, for ``--budget-min`` minutes of training CPU time (batch fetch + step): il_ros
with its trainer, a peer as lerobot_train does. Rollouts on seeds 2000.. at 1, 2, 4, then every
``--eval-every`` CPU minutes keep the best weights and date the first 80% and 90%; then batch-1
act latency, one method at a time, and ``--eval-episodes`` on seeds 1000... Every rollout is
``il_ros.training.evaluate.evaluate`` (lift, sim_arm, the controller's loop); a peer acts via
:class:`LeRobotActor`; :data:`CHANGES`: what differs from lerobot's defaults, and why. See
docs/benchmarks.md ("Peers on the same data"). Prints JSON (also ``--json``), writes
``OUT/table.md``; exit 1 when a method failed (error in the JSON), 2 when a step cannot run.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REQS = ROOT / 'bench' / 'peers.txt'
TORCH = ['torch==2.14.1', 'torchvision==0.29.1']
CODEC, LEROBOT = 'torchcodec==0.14.0', 'lerobot==0.4.4'
METHODS, CAMERAS = ('il_ros', 'act', 'diffusion'), ('front', 'wrist')
TASK, SELECT_SEED, EVAL_SEED, REPO_ID = 'lift', 2000, 1000, 'local/il_ros_peers'
BATCH = 8                 # lerobot_train's default batch size, both peers
SCHEDULE_STEPS = 1000     # Diffusion's cosine LR schedule (warmup 500, its preset) spans these
CHANGES = {                 # field: (value, why), over lerobot 0.4.4's defaults
    'act': {'pretrained_backbone_weights': (None, 'ImageNet weights would be downloaded'),
            'chunk_size': (16, '100 = 5 s at 20 Hz, longer than a lift episode (~55 ticks)'),
            'n_action_steps': (8, 'half the chunk, as lerobot suggests (100 / 50)'),
            'dim_model': (256, 'with dim_feedforward 1024 (for 512 / 3200): half the step'),
            'dim_feedforward': (1024, 'see dim_model'),
            'optimizer_lr': (1e-4, '1e-5 fine-tunes a pretrained backbone over 100k+ steps'),
            'optimizer_lr_backbone': (1e-4, 'the backbone learns from scratch too')},
    'diffusion': {'down_dims': ((64, 128, 256), "the 263M UNet takes ~1 s a plan here; 5.4M, "
                                "as il_ros's diffusion head (5.3M)"),
                  'crop_shape': ((76, 76), "84x84 inputs: the paper's random 76x76 crop"),
                  'noise_scheduler_type': ('DDIM', '10 sampling steps, not 100: ~150 ms a plan'),
                  'num_inference_steps': (10, "as il_ros's diffusion head (DDIM-10)")}}


class BenchError(RuntimeError):
    """A step of the bench cannot run (not a method failing)."""


def _say(text: str) -> None:
    print(f'[peers {time.strftime("%H:%M:%S")}] {text}', file=sys.stderr, flush=True)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    _say('$ ' + ' '.join(str(c) for c in cmd))
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip() or 'no output').splitlines()[-1]
        raise BenchError(f'{" ".join(str(c) for c in cmd[:5])} ... exit {p.returncode}: {tail}')
    return p


def record_demos(path: Path, episodes: int, noise: float) -> None:
    """Scripted lift demos from seeds 0.., DART ``noise`` executed, clean labels, as a dataset."""
    sys.path.insert(0, str(ROOT / 'bench'))
    from dagger_experiment import demo_episode       # the in-process recorder of the benches
    from il_ros.data.store import DatasetWriter, encode_labels
    from il_ros.images import Preprocess
    from il_ros.sim import make_env, make_expert
    env = make_env(TASK, cameras=CAMERAS, image_size=(84, 84))
    expert = make_expert(TASK, noise=noise, seed=0)
    with DatasetWriter(path) as w:
        for seed in range(episodes):
            frames = demo_episode(env, expert, seed, noise)
            w.append_episode({**frames, 'label': encode_labels(frames['label'])}, {
                'task': TASK, 'joint_names': list(env.joint_names),
                'action_names': list(env.action_names), 'rate_hz': 1.0 / env.control_dt,
                'success': bool(env.success()), 'robot': env.robot.to_dict(),
                'preprocess': Preprocess(size=(84, 84)).to_dict(), 'dart_noise': noise})
    env.close()


def setup_venv(venv: Path, python: str = 'python3.11') -> dict:
    """Create or reuse the peers' scratch venv (see the module doc); say what it holds."""
    plan = {'python': python, 'torch': TORCH, 'codec': CODEC, 'lerobot': LEROBOT,
            'requirements': REQS.read_text()}
    marker, py = venv / '.il_ros_peers_plan.json', venv / 'bin' / 'python'
    if marker.is_file() and json.loads(marker.read_text()) == plan and py.exists():
        _say(f'reusing {venv} (its install plan is unchanged)')
    else:
        if shutil.which(python) is None:
            raise BenchError(f'{python}: no such interpreter (the peers venv needs it)')
        if not py.exists():
            _run([python, '-m', 'venv', venv])
        (cons := venv / 'il_ros_constraints.txt').write_text('\n'.join(TORCH) + '\n')
        pip = ['nice', '-n', '10', py, '-m', 'pip', 'install', '-q']
        for args in (TORCH, ['-c', cons, CODEC], ['--no-deps', LEROBOT], ['-c', cons, '-r', REQS]):
            _run([*pip, *args])
        marker.write_text(json.dumps(plan))
    if subprocess.run([str(py), '-c', 'import torchcodec.decoders'], capture_output=True
                      ).returncode:
        raise BenchError("torchcodec in the peers venv cannot load FFmpeg's libraries: apt-get "
                         'install libavcodec59 libavformat59 libavutil57 libswscale6')
    return {'venv': str(venv), **{k: v for k, v in plan.items() if k != 'requirements'}}


def obs_to_batch(obs: dict, cameras=CAMERAS) -> dict:
    """One il_ros observation -> lerobot's batch of one: float CHW images in [0, 1], state."""
    batch = {'observation.state': torch.from_numpy(np.asarray(obs['joint_pos'], np.float32))[None]}
    for cam in cameras:
        img = torch.from_numpy(np.ascontiguousarray(obs[f'image/{cam}']))
        batch[f'observation.images.{cam}'] = img.permute(2, 0, 1)[None].float().div_(255.0)
    return batch


class LeRobotActor:
    """A lerobot policy behind il_ros's evaluation: ``reset(seed)`` and ``act(obs) -> (A,)``."""

    def __init__(self, policy, pre, post):
        self.policy, self.pre, self.post = policy.eval(), pre, post

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()         # its queues; torch's seed draws the diffusion noise
        if seed is not None:
            torch.manual_seed(int(seed))

    def act(self, obs: dict) -> np.ndarray:
        with torch.inference_mode():
            action = self.post(self.policy.select_action(self.pre(obs_to_batch(obs))))
        return action.reshape(-1).double().numpy()


def peer_setup(method: str, export: Path):
    """Return (config, policy, preprocessor, postprocessor, dataset metadata) of a peer."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_policy_config, make_pre_post_processors
    meta = LeRobotDatasetMetadata(REPO_ID, root=export)
    cfg = make_policy_config(method, device='cpu', push_to_hub=False,
                             **{k: v for k, (v, _) in CHANGES[method].items()})
    shapes = {k: tuple(meta.features[k]['shape']) for k in
              ['observation.state', *(f'observation.images.{c}' for c in CAMERAS)]}
    cfg.input_features = {k: PolicyFeature(FeatureType.VISUAL, (v[2], v[0], v[1])) if len(v) == 3
                          else PolicyFeature(FeatureType.STATE, v) for k, v in shapes.items()}
    policy = make_policy(cfg, ds_meta=meta)
    return (cfg, policy, *make_pre_post_processors(cfg, dataset_stats=meta.stats), meta)


class Budget:
    """Training CPU time and samples; selection evaluations at CPU-minute marks."""

    def __init__(self, minutes: float, every: float, evaluate_fn):
        self.limit, self.cpu, self.steps, self.samples = 60.0 * minutes, 0.0, 0, 0
        marks = [1.0, 2.0, 4.0, *np.arange(4.0 + every, minutes, every), minutes]
        self.marks = sorted({round(float(m), 3) for m in marks if m <= minutes})
        self.evaluate_fn, self.evals, self.best_state = evaluate_fn, [], None

    done = property(lambda self: self.cpu >= self.limit, doc='The CPU budget is spent.')

    def step(self, fn, *args):
        """Call ``fn(*args)``, adding its process CPU time to the training time."""
        t, out = time.process_time(), fn(*args)
        self.cpu += time.process_time() - t
        return out

    def after_step(self, batch_size: int, model, force: bool = False) -> None:
        """Count a step; evaluate when a mark is passed or ``force`` (keep the best weights)."""
        self.steps, self.samples = self.steps + 1, self.samples + batch_size
        if not (force or (self.marks and self.cpu >= 60.0 * self.marks[0])):
            return
        self.marks = [m for m in self.marks if 60.0 * m > self.cpu]
        c0 = time.process_time()
        e = {'step': self.steps, 'samples': self.samples, 'cpu_min': round(self.cpu / 60, 2),
             'success': self.evaluate_fn()['success_rate'],
             'eval_cpu_s': round(time.process_time() - c0, 1)}
        if not self.evals or e['success'] >= max(x['success'] for x in self.evals):
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            e['best'] = True
        self.evals.append(e)
        _say(f'{e}')

    def summary(self) -> dict:
        """JSON-able: steps, samples, CPU, samples/s, evals, first CPU minute at 80% / 90%."""
        first = lambda p: next((e['cpu_min'] for e in self.evals  # noqa: E731
                                if e['success'] >= p / 100 - 1e-9), None)
        return {'steps': self.steps, 'samples': self.samples, 'train_cpu_min': round(
            self.cpu / 60, 2), 'samples_per_cpu_s': round(self.samples / max(self.cpu, 1e-9), 1),
            'evals': self.evals, 'best_select': max(e['success'] for e in self.evals),
            'cpu_min_to_80': first(80), 'cpu_min_to_90': first(90)}


def _select(policy, n: int) -> dict:
    from il_ros.training.evaluate import evaluate
    from il_ros.training.state import rng_fork
    with rng_fork(SELECT_SEED):       # the training's random streams stay as they were
        return evaluate(policy, TASK, n, seed=SELECT_SEED, progress=False, cameras=CAMERAS)


def train_il_ros(c: dict, out: Path) -> dict:
    """The ``demo`` recipe with il_ros's trainer; a Budget (CPU) is its cap and its evaluator."""
    from il_ros.models import save_checkpoint
    from il_ros.training.config import load_train_config
    from il_ros.training.trainer import Trainer
    cfg = replace(load_train_config('demo', task=TASK, dataset=c['dataset']), device='cpu',
                  max_minutes=None, eval_task=None, eval_every_steps=None, eval_every_minutes=None,
                  progress=False)

    class Timed(Trainer):
        def _build(self):
            super()._build()
            self.loader = (budget.step(next, it) for it in [iter(self.loader)]
                           for _ in iter(int, 1))

        def _train_step(self, batch):
            r = budget.step(super()._train_step, batch)
            budget.after_step(cfg.batch_size, self.eval_policy,
                              force=self.step >= cfg.max_steps or budget.done)
            return r
    trainer = Timed(cfg, out / 'run', should_stop=lambda: budget.done)
    budget = Budget(c['budget_min'], c['every'], lambda: _select(trainer.eval_policy,
                                                                 c['select']))
    trainer.run()
    (model := trainer.eval_policy).load_state_dict(budget.best_state)
    save_checkpoint(model, out / 'best', extra={'bench': 'peers'})
    return {**budget.summary(), 'batch_size': cfg.batch_size, 'max_steps': cfg.max_steps,
            'params_M': round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}


def train_peer(method: str, c: dict, out: Path) -> dict:
    """Train a lerobot policy as lerobot_train does, timed and evaluated by a Budget."""
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.sampler import EpisodeAwareSampler
    from safetensors.torch import save_file
    cfg, policy, pre, post, meta = peer_setup(method, Path(c['export']))
    ds = LeRobotDataset(REPO_ID, root=c['export'],
                        delta_timestamps=resolve_delta_timestamps(cfg, meta))
    sampler = EpisodeAwareSampler(meta.episodes['dataset_from_index'],
                                  meta.episodes['dataset_to_index'], shuffle=True,
                                  drop_n_last_frames=getattr(cfg, 'drop_n_last_frames', 0))
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, sampler=sampler, drop_last=True)
    opt_cfg, sched_cfg = cfg.get_optimizer_preset(), cfg.get_scheduler_preset()
    opt = opt_cfg.build(policy.get_optim_params())
    sched = sched_cfg.build(opt, SCHEDULE_STEPS) if sched_cfg else None
    budget = Budget(c['budget_min'], c['every'],
                    lambda: _select(LeRobotActor(policy, pre, post), c['select']))
    last = SCHEDULE_STEPS if sched else float('inf')

    def update(batch):
        loss, _ = policy.forward(pre(batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), opt_cfg.grad_clip_norm)
        opt.step()
        opt.zero_grad()
        if sched:
            sched.step()

    it = iter(loader)
    while not budget.done and budget.steps < last:
        policy.train()
        if (batch := budget.step(next, it, None)) is None:      # a new epoch
            it = iter(loader)
            continue
        budget.step(update, batch)
        budget.after_step(BATCH, policy, force=budget.done or budget.steps + 1 >= last)
    save_file(budget.best_state, str(out / 'best.safetensors'))
    return {**budget.summary(), 'batch_size': BATCH, 'schedule_steps': sched and last,
            'params_M': round(sum(p.numel() for p in policy.parameters()) / 1e6, 2)}


def latency(actor, obs_list: list, calls: int = 200, plans: int = 40) -> dict:
    """Batch-1 act latency (ms): every tick of 4 episodes of 50, and a plan after a reset."""
    ticks, fresh = [], []
    for i in range(calls + plans):
        if i % 50 == 0 or i >= calls:
            actor.reset(seed=i)
        t = time.perf_counter()
        actor.act(obs_list[i % len(obs_list)])
        (ticks if i < calls else fresh).append(1e3 * (time.perf_counter() - t))
    return {f'{name}_ms_p{p}': round(float(np.percentile(xs, p)), 2) for p in (50, 99)
            for name, xs in (('act', ticks), ('plan', fresh))}


def child_main(argv: list[str]) -> int:
    """``--child METHOD STAGE CONF``: train, time or evaluate one method; DIR/STAGE.json."""
    from il_ros.sim import make_env
    from il_ros.training.evaluate import evaluate
    method, stage, c = argv[1], argv[2], json.loads(argv[3])
    torch.manual_seed(0)              # one torch thread: OMP_NUM_THREADS=1 (see main)
    out = Path(c['dir'])
    if stage == 'train':
        res = train_il_ros(c, out) if method == 'il_ros' else train_peer(method, c, out)
    elif method == 'il_ros':
        from il_ros.models import load_checkpoint
        actor = load_checkpoint(out / 'best')[0]
    else:
        from safetensors.torch import load_file
        _, policy, pre, post, _ = peer_setup(method, Path(c['export']))
        policy.load_state_dict(load_file(str(out / 'best.safetensors')))
        actor = LeRobotActor(policy, pre, post)
    if stage == 'latency':
        env = make_env(TASK, cameras=CAMERAS, image_size=(84, 84))
        obs = [env.reset(seed=EVAL_SEED + k) for k in range(5)]
        env.close()
        res = {**latency(actor, obs), 'latency_load_avg_1m': round(os.getloadavg()[0], 2)}
    elif stage == 'final':
        r = evaluate(actor, TASK, c['eval'], seed=EVAL_SEED, progress=False, cameras=CAMERAS)
        res = {'final_success': r['success_rate'], 'final_episodes': r['episodes'],
               'failures': r['failures'], 'final_eval_wall_s': r['wall_s'],
               'per_episode': [[e['seed'], e['success'], e['steps']] for e in r['per_episode']]}
    (out / f'{stage}.json').write_text(json.dumps(res, indent=1))
    return 0


def _children(jobs: list[tuple], env: dict) -> dict:
    procs, out = {}, {}                       # (method, stage, conf, python), all at once
    for method, stage, conf, py in jobs:
        log, done = (Path(conf['dir']) / f'{stage}.{x}' for x in ('log', 'json'))
        with open(log, 'ab') as f:
            procs[method] = (subprocess.Popen(
                [str(py), __file__, '--child', method, stage, json.dumps(conf)], stdout=f,
                stderr=subprocess.STDOUT, cwd=ROOT, env=env), time.monotonic(), done, log, stage)
    for method, (p, t0, done, log, stage) in procs.items():
        _, status, ru = os.wait4(p.pid, 0)
        out[method] = res = {f'{stage}_process_cpu_min': round((ru.ru_utime + ru.ru_stime) / 60,
                                                               2),
                             f'{stage}_wall_min': round((time.monotonic() - t0) / 60, 2)}
        if os.waitstatus_to_exitcode(status) == 0 and done.is_file():
            res.update(json.loads(done.read_text()))
        else:
            lines = log.read_text().strip().splitlines() or ['no output']
            res['error'] = f'{stage}: ' + next((x for x in reversed(lines) if 'Error' in x),
                                               lines[-1]) + f' (log: {log})'
        _say(f'{method} {stage}: ' + res.get('error', 'done'))
    return out


def _table(results: dict, select: int) -> str:
    pct = lambda x: '-' if x is None else f'{100 * x:.0f}%'  # noqa: E731
    rows = ['| method | params | samples/s (1 core) | trained (steps, CPU min) | CPU min to 80% '
            '| to 90% | best selection | final success | act p50 / p99 ms | plan p50 ms |',
            '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|']
    for m, r in results.items():
        miss, g = f'not reached (best {pct(r.get("best_select"))})', r.get
        rows.append(f'| {m} | failed: {r["error"]} |' + ' |' * 8 if 'steps' not in r else
                    f'| {m} | {r["params_M"]}M | {r["samples_per_cpu_s"]} | {r["steps"]}, '
                    f'{r["train_cpu_min"]} | {g("cpu_min_to_80") or miss} | '
                    f'{g("cpu_min_to_90") or miss} | {pct(r["best_select"])} of {select} | '
                    f'{pct(g("final_success"))} of {g("final_episodes", "-")} | '
                    f'{g("act_ms_p50", "-")} / {g("act_ms_p99", "-")} | {g("plan_ms_p50", "-")} |')
    return '\n'.join(rows) + '\n'


def _prepare(args, out: Path) -> tuple[Path, Path, Path]:
    dataset = args.dataset or out / 'dataset'  # made when missing, as are the two below
    if args.dataset and not (dataset / 'manifest.json').is_file():
        raise BenchError(f'--dataset {dataset}: not an il_ros dataset (no manifest.json)')
    export, back = out / 'lerobot', out / 'dataset_from_lerobot'
    for path, cmd in ((dataset, None), (export, ['export', dataset]), (back, ['import', export])):
        if not path.exists():
            shutil.rmtree(tmp := path.with_name(path.name + '.tmp'), ignore_errors=True)
            if cmd is None:
                _say(f'recording {args.demos} scripted {TASK} demos (DART {args.noise} rad)')
                record_demos(tmp, args.demos, args.noise)
            else:
                _run([sys.executable, '-m', 'il_ros.cli', *cmd, '--format', 'lerobot', '--out',
                      tmp], cwd=ROOT)
            tmp.rename(path)
    return dataset, export, back


def main(argv=None) -> int:
    """Run the bench (or, with ``--child``, one stage of one method); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['--child']:
        return child_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    ap.add_argument('--budget-min', type=float, default=20.0,
                    help='training CPU minutes per method (evaluations excluded)')
    ap.add_argument('--eval-every', type=float, default=4.0,
                    help='CPU minutes between selection evaluations after 1, 2 and 4')
    ap.add_argument('--select-episodes', type=int, default=10, help='seeds 2000..')
    ap.add_argument('--eval-episodes', type=int, default=50, help='seeds 1000..')
    ap.add_argument('--demos', type=int, default=100)
    ap.add_argument('--noise', type=float, default=0.03, help='DART noise of the demos, rad')
    ap.add_argument('--dataset', type=Path, help='an il_ros dataset (default: record one)')
    ap.add_argument('--out', type=Path, default=ROOT / 'runs' / 'peers')
    ap.add_argument('--venv', type=Path, default=Path('/tmp/il_ros_peers_venv'))
    ap.add_argument('--json', type=Path, help='also write the JSON here')
    args = ap.parse_args(argv)
    if min(args.budget_min, args.eval_every, args.select_episodes, args.eval_episodes,
           args.demos) <= 0:
        ap.error('--budget-min, --eval-every, --*-episodes and --demos must be > 0')
    out, t0 = args.out.resolve(), time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    summary = {'bench': 'peers', 'date': time.strftime('%Y-%m-%d'), 'cpu_count': os.cpu_count(),
               'settings': {k: str(v) for k, v in vars(args).items()}, 'peer_batch': BATCH,
               'diffusion_schedule_steps': SCHEDULE_STEPS, 'changes_from_lerobot_defaults': {
                   m: {k: [str(v), why] for k, (v, why) in d.items()} for m, d in CHANGES.items()}}
    try:
        dataset, export, back = _prepare(args, out)
        if set(args.methods) - {'il_ros'}:
            summary['venv'] = setup_venv(args.venv)
    except BenchError as e:
        print(f'peers: {e}', file=sys.stderr)
        return 2
    summary.update(dataset=str(dataset), export=str(export), il_ros_dataset=str(back),
                   prepare_min=round((time.monotonic() - t0) / 60, 2))
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1',
           'HF_DATASETS_OFFLINE': '1', 'HF_HOME': str(out / 'hf_home'), 'PYTHONPATH': str(ROOT)}
    py = {m: sys.executable if m == 'il_ros' else args.venv / 'bin' / 'python' for m in METHODS}
    conf = {'dataset': str(back), 'export': str(export), 'budget_min': args.budget_min,
            'every': args.eval_every, 'select': args.select_episodes, 'eval': args.eval_episodes}
    jobs = lambda stage, ms: [(m, stage, {**conf, 'dir': str(out / m)}, py[m]) for m in ms]  # noqa: E731
    for m in args.methods:
        shutil.rmtree(out / m, ignore_errors=True)
        (out / m).mkdir()                    # a rerun trains again; the data above is reused
    _say(f'training {", ".join(args.methods)} at once, {args.budget_min:g} CPU min each')
    results = _children(jobs('train', args.methods), env)
    ok = [m for m in args.methods if 'error' not in results[m]]
    for stage, groups in (('latency', [[m] for m in ok]), ('final', [ok])):
        for ms in groups:            # latency: one method at a time; final: all at once
            for m, r in _children(jobs(stage, ms), env).items():
                results[m].update(r)
    summary['results'], summary['wall_min'] = results, round((time.monotonic() - t0) / 60, 2)
    (out / 'table.md').write_text(md := _table(results, args.select_episodes))
    print(md, file=sys.stderr)
    print(text := json.dumps(summary, indent=1, default=str))
    if args.json:
        args.json.write_text(text + '\n')
    return 1 if any('error' in r for r in results.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
