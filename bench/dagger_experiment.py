r"""Success against expert-labelled steps of BC, DART, DAgger and HG-DAgger in the sim.

Methods: BC, BC+DART, DAgger and HG-DAgger (uniform, IWR, Sirius weighting), and a control
arm that trains as much with no new data, on a sim task, over seeds. Prints JSON; writes a
PNG and a markdown table (95% confidence intervals over seeds, and each method's gain over
BC at the same number of expert-labelled steps, paired by seed).

    python bench/dagger_experiment.py --task path --seeds 0 1 2 --out runs/dagger_exp \
        [--methods bc control dart dagger hg-uniform hg-iwr hg-sirius] [--demos 10] \
        [--rounds 3] [--episodes-per-round 5] [--train-steps 400] [--eval-episodes 20]

The loop is il-ros dagger's, run in one process so that a grid of methods x seeds fits on
a CPU: the same scripted supervisor (il_ros.sim.supervisor.Supervisor, default gate), the
controller's own control loop (il_ros.control.loop.ControlLoop, through
il_ros.sim.loop_episode.SimLoop: the node's default safety filter, step limits, chunk guard
and queue, and its takeover arbiter, which resets the policy whenever control comes back to
it; the supervisor's takeover is a heartbeat with its label as the human command, its
hand-back an explicit release), the same frame labels (il_ros.data.convert.label_frames, 10
pre-intervention frames), the same dataset store, trainer (weighting, init_checkpoint warm
starts from the previous round) and in-process evaluation (through the same loop). Only the
transport differs: no DDS, no real-time pacing.

Per seed, round 0 is BC on ``--demos`` scripted demos (DART: demos with ``--noise`` on the
executed command, clean labels). Each round then adds ``--episodes-per-round`` episodes:

- ``bc`` / ``dart``: more (noisy) scripted demos; every frame is expert-labelled;
- ``control``: no new data; the round trains as many steps from the same warm start, so a
  method's gain over it is the data's, not the extra training's;
- ``dagger``: the policy runs alone; the expert labels every visited state (all frames);
- ``hg-*``: the policy runs under the supervisor; only the takeover ticks are
  expert-labelled. ``hg-uniform`` trains on demos + interventions (HG-DAgger);
  ``hg-iwr`` / ``hg-sirius`` on every frame with IWR / Sirius weights.

Training: ``--train-steps`` gradient steps per round (round 0 from scratch, later rounds
warm-started), the config's policy (``--config``, default the ``mse_chunk`` recipe with the
task's overlay). Success: the round's policy alone, in-process, ``--eval-episodes`` episodes
from seed 1000; with ``--eval-rounds last`` only round 0 and the last round are evaluated
(the rounds between train and collect as before, their success left out: evaluating a policy
changes nothing that later rounds use).
``results.json`` is rewritten after every run, and runs already in it are skipped. Round 0
depends only on the seed's demos, so every method but ``dart`` shares one round-0 training.
To use both cores, run one process per seed (``--out DIR/sS``) and combine them with
``--merge DIR/s0 DIR/s1 ... --out DIR/all`` (docs/dagger.md has the measured run).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

from il_ros import keys

METHODS = ('bc', 'control', 'dart', 'dagger', 'hg-uniform', 'hg-iwr', 'hg-sirius')
DEMO_SEED, COLLECT_SEED = 10000, 20000
"""Seed s draws demos from DEMO_SEED + 1000 s and round episodes from COLLECT_SEED + 1000 s;
evaluation uses 1000.. (keys.EVAL_SEED) for every run."""
PRE = 10


def _frames(obs_list, actions, labels, dt):
    n = len(actions)
    images = [k for k in obs_list[0] if k.startswith(keys.image_key(''))]
    return {**{k: np.stack([o[k] for o in obs_list]) for k in images},
            keys.OBS_JOINT_POS: np.stack([o[keys.OBS_JOINT_POS] for o in obs_list]
                                         ).astype(np.float32),
            keys.ACTION: np.stack(actions).astype(np.float32),
            'label': list(labels), 'time': np.arange(n) * dt}


def demo_episode(env, expert, seed: int, noise: float) -> dict:
    """One scripted demo: frames with clean labels (executed with DART noise)."""
    from il_ros.sim.runner import run_episode
    o, a = [], []

    def act(obs):
        action = expert.act(env)
        o.append(obs)
        a.append(action.label)
        return action.executed

    expert.noise = noise
    run_episode(env, act, seed, reset=lambda s: expert.reset(env, seed=s))
    return _frames(o, a, ['demo'] * len(a), env.control_dt)


def supervisor_input(sup, env, last: dict, supervise: bool):
    """The human input the scripted supervisor gives the loop for the tick about to run.

    As the supervisor node publishes it: while in control its label as the command with a
    heartbeat (HumanInput(held=True, command=label)), at its hand-back HumanInput(held=False),
    otherwise nothing. ``last['executed']``: the command the robot ran at the previous tick.
    Returns (HumanInput or None, the supervisor's step).
    """
    from il_ros.control.loop_types import HumanInput
    step = sup.step(env.get_state(), last['executed'])
    if not supervise:
        return None, step
    if step.in_control:
        return HumanInput(held=True, command=step.label), step
    if step.event == 'release':
        return HumanInput(held=False), step
    return None, step


def policy_episode(loop, sup, seed: int, supervise: bool,
                   drop_takeover_first: bool = False) -> tuple[dict, dict]:
    """Run the policy through the control loop (under the supervisor when ``supervise``).

    ``loop``: an il_ros.sim.loop_episode.SimLoop of the policy on the env: the controller's
    safety filter, step limits, chunk guard, queue and takeover arbiter (the policy is reset
    when control comes back to it). Frames carry the executed (filtered) command and the
    control source the loop reports, or with ``supervise`` False the expert's label of every
    state (DAgger); labels follow the control source as the converter makes them.
    ``drop_takeover_first``: the first frame of each takeover (where the command jumps from
    the policy's to the supervisor's) is labelled ``hold``, which training weighs 0.
    """
    from il_ros.data.convert import label_frames
    env = loop.env
    o, acts, sources = [], [], []
    last = {'executed': None, 'label': None}
    sup.reset()
    sup.arm(supervise)

    def human(obs):
        h, step = supervisor_input(sup, env, last, supervise)
        last['label'] = step.label
        return h

    def on_tick(obs, res):
        executed = res.command if res.command is not None else last['executed']
        if executed is None:
            return                                 # nothing sent yet: no frame to record
        o.append(obs)
        acts.append(executed if supervise else last['label'])
        sources.append(res.source)
        last['executed'] = executed

    res = loop.run_episode(seed, human=human, on_tick=on_tick)
    labels = label_frames(sources, len(sources), PRE, [])
    if drop_takeover_first:
        inter = keys.SOURCE_INTERVENTION
        labels = [keys.SOURCE_HOLD if lab == inter and (t == 0 or labels[t - 1] != inter)
                  else lab for t, lab in enumerate(labels)]
    human_steps = sum(s == keys.SOURCE_INTERVENTION for s in sources)
    return (_frames(o, acts, labels, env.control_dt),
            {'seed': seed, 'success': res.success, 'failure': res.failure,
             'steps': len(sources), 'human_steps': human_steps,
             'takeovers': sup.episode_takeovers})


def append(ds_path: Path, episodes: list[dict], task: str, names) -> None:
    from il_ros.data.store import DatasetWriter, encode_labels
    with DatasetWriter(ds_path) as w:
        for ep in episodes:
            fr = dict(ep)
            fr['label'] = encode_labels(fr['label'])
            w.append_episode(fr, {'task': task, 'joint_names': names, 'rate_hz': 20.0})


def load_cfg(args, over=(), **kw):
    from il_ros.training.config import load_train_config
    return load_train_config(args.config or 'mse_chunk', list(over), task=args.task, **kw)


def train_round(args, ds: Path, out: Path, init: str | None, method: str, seed: int) -> str:
    from il_ros.training.trainer import train
    weighting = {'hg-iwr': 'iwr', 'hg-sirius': 'sirius'}.get(method, 'uniform')
    lw = ({'policy': 0.0, 'pre_intervention': 0.0, 'hold': 0.0} if method == 'hg-uniform'
          else {'hold': 0.0})
    over = [f'seed={seed}', f'weighting={weighting}', f'label_weights={json.dumps(lw)}',
            'eval_task=null', 'val_fraction=0.0', 'select_by=last', 'progress=false',
            'eval_every_minutes=null', 'max_minutes=null',
            f'warmup_steps={min(50, args.train_steps // 4)}']
    if init:
        over.append(f'init_checkpoint={init}')
        over += args.round_set
    steps = args.train_steps if init is None else (args.round_steps or args.train_steps)
    cfg = load_cfg(args, over, dataset=str(ds), max_steps=steps)
    return train(cfg, out)['last']


def run_one(args, method: str, seed: int, root: Path, demo_cache: dict) -> dict:
    import torch

    from il_ros.models import load_checkpoint
    from il_ros.sim import make_env, make_expert
    from il_ros.sim.loop_episode import SimLoop
    from il_ros.sim.supervisor import Supervisor
    from il_ros.training.evaluate import evaluate
    torch.manual_seed(seed)
    run = root / f'{method}_s{seed}'
    if run.exists():
        import shutil
        shutil.rmtree(run)
    ds = run / 'dataset'
    from il_ros.training.config import resolve_policy_config
    cameras = resolve_policy_config(load_cfg(args).policy).cameras
    env = make_env(args.task, cameras=cameras)
    expert = make_expert(args.task, seed=seed)
    names = env.joint_names
    noise = args.noise if method == 'dart' else 0.0
    key = (seed, noise)
    if key not in demo_cache:
        demo_cache[key] = [demo_episode(env, expert, DEMO_SEED + 1000 * seed + i, noise)
                           for i in range(args.demos)]
    demos = demo_cache[key]
    append(ds, demos, args.task, names)
    labelled = sum(len(d['label']) for d in demos)
    sup = Supervisor(args.task, seed=seed)
    rounds, ckpt = [], None
    # Round 0 is plain BC on the seed's demos for every method with the same demos (all but
    # dart): trained once, its checkpoint and result reused (keyed by what makes it).
    config = Path(args.config or 'mse_chunk').stem
    shared = root / f'round0_s{seed}_n{noise:g}_d{args.demos}_t{args.train_steps}_{config}'
    for k in range(args.rounds + 1):
        t0 = time.monotonic()
        info = {'round': k}
        if k > 0:
            first = COLLECT_SEED + 1000 * seed + (k - 1) * args.episodes_per_round
            eps, stats = [], []
            if method == 'control':
                pass                                # the same training, no new data
            elif method in ('bc', 'dart'):
                for i in range(args.episodes_per_round):
                    eps.append(demo_episode(env, expert, first + i, noise))
                labelled += sum(len(e['label']) for e in eps)
            else:
                policy, _ = load_checkpoint(ckpt)
                loop = SimLoop(env, policy, name=ckpt)
                for i in range(args.episodes_per_round):
                    fr, st = policy_episode(loop, sup, first + i, supervise=method != 'dagger',
                                            drop_takeover_first=args.drop_takeover_first)
                    eps.append(fr)
                    stats.append(st)
                loop_stats = loop.stats()
                loop.close()
                if method == 'dagger':
                    labelled += sum(len(e['label']) for e in eps)
                else:
                    labelled += sum(s['human_steps'] for s in stats)
                n = sum(s['steps'] for s in stats)
                info['collect'] = {
                    'success_rate': float(np.mean([s['success'] for s in stats])),
                    'intervention_rate': sum(s['human_steps'] for s in stats) / max(1, n),
                    'takeovers': sum(s['takeovers'] for s in stats), 'steps': n,
                    'rate_limited': loop_stats['safety']['rate_limited'],
                    'hold_ticks': loop_stats['hold_ticks'], 'faults': loop_stats['faults']}
            if eps:
                append(ds, eps, args.task, names)
        res_file = shared / 'eval.json'
        if k == 0 and res_file.is_file():
            res = json.loads(res_file.read_text())
            ckpt = res.pop('checkpoint')
        else:
            out = shared if k == 0 else run / f'round_{k}'
            ckpt = train_round(args, ds, out, ckpt, method, seed)
            if args.eval_rounds == 'all' or k in (0, args.rounds):
                policy, _ = load_checkpoint(ckpt)
                res = evaluate(policy, args.task, args.eval_episodes, seed=keys.EVAL_SEED,
                               progress=False, env=env)
                res.pop('per_episode', None)
                if k == 0:
                    res_file.write_text(json.dumps({'checkpoint': ckpt, **res}))
            else:
                res = {'success_rate': None, 'mean_progress': None, 'failures': None}
        info.update(expert_labelled=labelled, success_rate=res['success_rate'],
                    mean_progress=res.get('mean_progress'), failures=res['failures'],
                    wall_s=round(time.monotonic() - t0, 1))
        rounds.append(info)
        print(json.dumps({'method': method, 'seed': seed, **info}), file=sys.stderr,
              flush=True)
    env.close()
    sup.close()
    return {'method': method, 'seed': seed, 'rounds': rounds}


def _curve(runs: list[dict], key: str, n: int) -> np.ndarray:
    """(seeds, rounds) of one round field; NaN where a run lacks it."""
    return np.array([[np.nan if r['rounds'][k].get(key) is None else r['rounds'][k][key]
                      for k in range(n)] for r in runs], dtype=float)


T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t, 97.5% quantile, for 1..10 degrees of freedom (1.96 beyond)."""


def ci95(values) -> float:
    """Half-width of the 95% confidence interval of the mean of ``values`` (t over seeds).

    Each value is one seed's rate over its evaluation episodes, so the interval holds both
    the seed-to-seed spread and the evaluation's binomial noise. NaN with fewer than 2.
    """
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if len(v) < 2:
        return float('nan')
    t = T975[len(v) - 2] if len(v) - 1 <= len(T975) else 1.96
    return float(t * v.std(ddof=1) / np.sqrt(len(v)))


def gain_over(results: list[dict], method: str, base: str = 'bc') -> list[dict]:
    """Per round: ``method``'s success minus ``base``'s at the same expert-labelled steps.

    Paired by seed: ``base``'s success at the method's label count is interpolated along
    that seed's ``base`` curve (success against labelled steps; held at its ends). Returns
    one dict per round with the mean gain and its 95% interval over the paired seeds.
    """
    by_seed = {r['seed']: r for r in results if r['method'] == base}
    runs = [r for r in results if r['method'] == method and r['seed'] in by_seed]
    if not runs:
        return []
    out = []
    for k in range(min(len(r['rounds']) for r in runs)):
        gains, labels = [], []
        for r in runs:
            b = [e for e in by_seed[r['seed']]['rounds'] if e['success_rate'] is not None]
            x = [e['expert_labelled'] for e in b]
            y = [e['success_rate'] for e in b]
            lab = r['rounds'][k]['expert_labelled']
            if r['rounds'][k]['success_rate'] is None or not b:
                continue                            # a round left unevaluated
            gains.append(r['rounds'][k]['success_rate'] - float(np.interp(lab, x, y)))
            labels.append(lab)
        if gains:
            out.append({'round': k, 'seeds': len(gains),
                        'expert_labelled': float(np.mean(labels)),
                        'gain': float(np.mean(gains)), 'ci95': ci95(gains)})
    return out


def gain_over_control(results: list[dict], method: str, base: str = 'control') -> list[dict]:
    """Per round: ``method``'s success minus ``base``'s at the same round and seed.

    Both trained as many steps from the same warm start, so with ``base`` the control arm
    (no new data) the difference is what the round's data did. Mean and 95% interval over
    the paired seeds; rounds left unevaluated (``--eval-rounds last``) are left out.
    """
    by_seed = {r['seed']: r['rounds'] for r in results if r['method'] == base}
    runs = [r for r in results if r['method'] == method and r['seed'] in by_seed]
    out = []
    for k in range(min((min(len(r['rounds']), len(by_seed[r['seed']])) for r in runs),
                       default=0)):
        pairs = [(r['rounds'][k]['success_rate'], by_seed[r['seed']][k]['success_rate'])
                 for r in runs]
        d = [a - b for a, b in pairs if a is not None and b is not None]
        if d:                                       # else a round left unevaluated
            out.append({'round': k, 'seeds': len(d), 'gain': float(np.mean(d)),
                        'ci95': ci95(d)})
    return out


def plot(results: list[dict], path: Path, task: str) -> None:
    """Plot success (and mean progress, on tasks with sub-goals) against labelled steps.

    One line per method: the mean over seeds, with its 95% confidence interval over seeds
    as error bars.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    graded = any(r['rounds'][0].get('mean_progress') is not None for r in results)
    fig, axes = plt.subplots(1, 2 if graded else 1, figsize=(12 if graded else 7, 4.2),
                             squeeze=False)
    for method in METHODS:
        runs = [r for r in results if r['method'] == method]
        if not runs:
            continue
        n = min(len(r['rounds']) for r in runs)
        x = _curve(runs, 'expert_labelled', n).mean(0)
        panels = [('success_rate', 100.0)] + ([('mean_progress', 1.0)] if graded else [])
        for ax, (key, scale) in zip(axes[0], panels):
            y = scale * _curve(runs, key, n)
            ax.errorbar(x, np.nanmean(y, 0), yerr=[ci95(y[:, k]) for k in range(n)],
                        marker='o', capsize=3, label=f'{method} ({len(runs)} seeds)')
    axes[0, 0].set_ylabel('success (%)')
    if graded:
        axes[0, 1].set_ylabel('waypoints reached (mean, of 5)')
    for ax in axes[0]:
        ax.set_xlabel('expert-labelled steps')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f'{task}: the policy alone after each round vs expert-labelled steps '
                 f'(mean, 95% CI over seeds)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: list[dict]) -> str:
    """Markdown: per method and round, the mean labelled steps and success and progress.

    Means ± 95% CI over seeds, and the gain over BC at equal labels (paired by seed).
    """
    lines = ['| method | seeds | round | expert-labelled steps | success (mean ± 95% CI) | '
             'gain over BC at equal labels (± 95% CI) | gain over control, same training '
             '(± 95% CI) | waypoints reached (mean ± 95% CI) | intervention rate |',
             '|---|---|---|---|---|---|---|---|---|']
    for method in METHODS:
        runs = [r for r in results if r['method'] == method]
        if not runs:
            continue
        n = min(len(r['rounds']) for r in runs)
        lab = _curve(runs, 'expert_labelled', n).mean(0)
        s = 100 * _curve(runs, 'success_rate', n)
        p = _curve(runs, 'mean_progress', n)
        gains = {g['round']: g for g in gain_over(results, method)} if method != 'bc' else {}
        over_c = ({g['round']: g for g in gain_over_control(results, method)}
                  if method != 'control' else {})
        for k in range(n):
            ir = [r['rounds'][k].get('collect', {}).get('intervention_rate') for r in runs]
            ir = [v for v in ir if v is not None]
            prog = ('-' if np.isnan(p[:, k]).all()
                    else f'{np.nanmean(p[:, k]):.2f} ± {ci95(p[:, k]):.2f}')
            g = gains.get(k)
            gain = ('-' if g is None or k == 0
                    else f'{100 * g["gain"]:+.0f} ± {100 * g["ci95"]:.0f}')
            c = over_c.get(k)
            gain_c = ('-' if c is None or k == 0
                      else f'{100 * c["gain"]:+.0f} ± {100 * c["ci95"]:.0f}')
            n_s = int((~np.isnan(s[:, k])).sum())   # seeds that evaluated this round
            succ = ('-' if n_s == 0 else f'{np.nanmean(s[:, k]):.0f}%' if n_s == 1
                    else f'{np.nanmean(s[:, k]):.0f} ± {ci95(s[:, k]):.0f}%')
            lines.append(f'| {method} | {n_s} | {k} | {lab[k]:.0f} | '
                         f'{succ} | {gain} | {gain_c} | '
                         f'{prog} | '
                         + (f'{100 * np.mean(ir):.0f}%' if ir else '-') + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--task', default='path')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    p.add_argument('--demos', type=int, default=10)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--episodes-per-round', type=int, default=5)
    p.add_argument('--train-steps', type=int, default=400, help='round 0 (from scratch)')
    p.add_argument('--round-steps', type=int, help='later rounds (warm-started); default '
                   '--train-steps')
    p.add_argument('--eval-episodes', type=int, default=20)
    p.add_argument('--eval-rounds', choices=('all', 'last'), default='all',
                   help='evaluate every round, or only round 0 and the last (their success '
                   'is then left out of the rounds between)')
    p.add_argument('--noise', type=float, default=0.02, help='DART noise (rad); path fails '
                   'often above 0.03 (README)')
    p.add_argument('--config', help='training recipe (default mse_chunk, with the task overlay)')
    p.add_argument('--round-set', nargs='+', default=[], metavar='KEY=VALUE',
                   help='training overrides for rounds 1.. only (e.g. '
                   'max_intervention_share=0.5); round 0, BC on the demos, stays shared')
    p.add_argument('--drop-takeover-first', action='store_true', help='label the first frame '
                   'of each takeover hold (weight 0): the command jumps there')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default='runs/dagger_exp')
    p.add_argument('--merge', nargs='+', metavar='DIR', help='run nothing: plot and tabulate '
                   'the results.json of these folders (e.g. one per seed, run in parallel) '
                   'into --out')
    args = p.parse_args(argv)
    if args.merge:
        results = [r for d in args.merge
                   for r in json.loads((Path(d) / 'results.json').read_text())['runs']]
        root = Path(args.out)
        root.mkdir(parents=True, exist_ok=True)
        plot(results, root / 'success_vs_labels.png', args.task)
        (root / 'table.md').write_text(table(results) + '\n')
        (root / 'results.json').write_text(json.dumps({'merged': args.merge,
                                                       'runs': results}, indent=1))
        print(table(results))
        return 0
    import torch
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    res_file = root / 'results.json'
    results = json.loads(res_file.read_text())['runs'] if res_file.is_file() else []
    done = {(r['method'], r['seed']) for r in results}
    cache: dict = {}
    t0 = time.monotonic()
    for seed in args.seeds:
        for method in args.methods:
            if (method, seed) in done:
                continue
            results.append(run_one(args, method, seed, root, cache))
            res_file.write_text(json.dumps({'args': vars(args), 'runs': results}, indent=1))
    plot(results, root / 'success_vs_labels.png', args.task)
    (root / 'table.md').write_text(table(results) + '\n')
    print(json.dumps({'args': vars(args), 'wall_s': round(time.monotonic() - t0, 1),
                      'table': table(results).splitlines(), 'runs': results}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
