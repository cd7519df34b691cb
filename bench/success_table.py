"""The success table: train and evaluate every task x history x head config, in the sim.

For each ``config/train/{task}_{core}_{head}.yaml`` asked for, it runs

    il-ros train --config {task}_{core}_{head} --dataset DATA/{task} --out OUT/{name}
    il-ros eval --checkpoint OUT/{name}/checkpoints/best --task {task} --episodes 50 --json

as child processes and records the success rate, failure reasons (collisions on
reach_around), modes, the training steps and the CPU seconds each child used (from
``os.wait4``, so runs in parallel are counted apart). Checkpoints are selected during
training by rollouts on seeds the final evaluation does not use (the configs set
``eval_seed: 2000``; the table's 50 episodes use seeds 1000-1049).

Results are appended to ``OUT/results.json`` as each run ends (a rerun skips runs already
there), and ``OUT/table.md`` is rewritten each time. Runs take minutes each; this is a
measurement, not a test:

    python bench/success_table.py --out runs/table --parallel 2 --threads 1
    python bench/success_table.py --tasks reach_around --heads mse gmm diffusion

Prints the final JSON list on stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
TASKS = ('lift', 'reach_around', 'path')
CORES = ('none', 'lstm')
HEADS = ('mse', 'gmm', 'diffusion')


def _run(cmd: list[str], log: Path, threads: int) -> tuple[int, float, float]:
    """Run ``cmd`` with stdout+stderr to ``log``; return (rc, cpu_s, wall_s)."""
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    t0 = time.perf_counter()
    with open(log, 'ab') as f:
        f.write(f'$ {" ".join(cmd)}\n'.encode())
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime, time.perf_counter() - t0


def run_one(task: str, core: str, head: str, args) -> dict:
    """Train + evaluate one config; return its row."""
    name = f'{task}_{core}_{head}'
    run_dir = Path(args.out) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / 'table.log'
    il_ros = [sys.executable, '-m', 'il_ros.cli']
    train = [*il_ros, 'train', '--config', name, '--dataset', str(Path(args.data) / task),
             '--out', str(run_dir), '--threads', str(args.threads), '--set', 'progress=false']
    if args.max_minutes:
        train += ['--max-minutes', str(args.max_minutes)]
    row = {'name': name, 'task': task, 'core': core, 'head': head}
    summary = run_dir / 'summary.json'
    old = args.previous.get(name)
    if name in args.reeval and old and summary.is_file():
        row.update({k: old[k] for k in ('train_rc', 'train_cpu_s', 'train_wall_s') if k in old})
        row['reevaluated'] = True
    else:
        rc, cpu_train, wall_train = _run(train, log, args.threads)
        row.update(train_rc=rc, train_cpu_s=round(cpu_train, 1),
                   train_wall_s=round(wall_train, 1))
    rc = row.get('train_rc', 0)
    if rc != 0 or not summary.is_file():
        row['error'] = f'training failed (rc {rc}); see {log}'
        return row
    s = json.loads(summary.read_text())
    row.update(steps=s.get('step'), train_s=s.get('train_s'),
               samples_per_s=s.get('samples_per_s'),
               best_step=(s.get('best') or {}).get('step'),
               encoder=_encoder(run_dir))
    ckpt = run_dir / 'checkpoints' / 'best'
    out = run_dir / 'eval.json'
    ev = [*il_ros, 'eval', '--checkpoint', str(ckpt), '--task', task, '--episodes',
          str(args.episodes), '--json', '--threads', str(args.threads)]
    t0 = time.perf_counter()
    env = {**os.environ, 'OMP_NUM_THREADS': str(args.threads)}
    with open(log, 'ab') as f:
        p = subprocess.run(ev, stdout=subprocess.PIPE, stderr=f, env=env, cwd=ROOT)
    if p.returncode != 0:
        row['error'] = f'eval failed (rc {p.returncode}); see {log}'
        return row
    out.write_bytes(p.stdout)
    r = json.loads(p.stdout)
    row.update(success_rate=r['success_rate'], episodes=r['episodes'], seed=r['seed'],
               failures=r['failures'], failure_rates=r['failure_rates'], modes=r['modes'],
               modes_success=r['modes_success'], mean_steps=r['mean_steps'],
               act_ms=r['act_ms'], eval_wall_s=round(time.perf_counter() - t0, 1))
    return row


def _encoder(run_dir: Path) -> str | None:
    try:
        import yaml
        cfg = yaml.safe_load((run_dir / 'config.yaml').read_text())
        pol = cfg.get('policy')
        if isinstance(pol, dict):
            enc = pol.get('encoder') or {}
            cams = pol.get('cameras')
            return f"{enc.get('name', 'resnet18')}" + (f" {'+'.join(cams)}" if cams else '')
        return None
    except (OSError, ValueError, AttributeError):
        return None


def write_table(rows: list[dict], path: Path) -> None:
    """A markdown table of the rows."""
    lines = ['| task | history | head | success (50 ep) | failures | encoder, cameras | '
             'steps | train min | CPU min (train) |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in sorted(rows, key=lambda r: (TASKS.index(r['task']), CORES.index(r['core']),
                                         HEADS.index(r['head']))):
        if 'success_rate' not in r:
            lines.append(f"| {r['task']} | {r['core']} | {r['head']} | error | "
                         f"{r.get('error', '')} | | | | |")
            continue
        fails = ', '.join(f'{k} {v}' for k, v in sorted(r['failures'].items())) or '-'
        lines.append(f"| {r['task']} | {r['core']} | {r['head']} | "
                     f"{r['success_rate']:.0%} | {fails} | {r.get('encoder') or ''} | "
                     f"{r.get('steps')} | {(r.get('train_s') or 0) / 60:.1f} | "
                     f"{r['train_cpu_s'] / 60:.1f} |")
    path.write_text('\n'.join(lines) + '\n')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='runs/table', help='folder of the runs and results')
    ap.add_argument('--data', default='data/datasets', help='folder holding DATA/<task>')
    ap.add_argument('--tasks', nargs='+', default=list(TASKS), choices=TASKS)
    ap.add_argument('--cores', nargs='+', default=list(CORES), choices=CORES)
    ap.add_argument('--heads', nargs='+', default=list(HEADS), choices=HEADS)
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--max-minutes', type=float, default=None,
                    help='override every config\'s training budget')
    ap.add_argument('--parallel', type=int, default=1, help='runs at once')
    ap.add_argument('--threads', type=int, default=2, help='torch threads per run')
    ap.add_argument('--reeval', nargs='+', default=[], metavar='NAME',
                    help='evaluate these finished runs again (after a change to acting) '
                         'without retraining; their CPU time is kept')
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / 'results.json'
    rows = json.loads(results_file.read_text()) if results_file.is_file() else []
    args.previous = {r['name']: r for r in rows}
    done = {r['name'] for r in rows if 'success_rate' in r} - set(args.reeval)
    rows = [r for r in rows if r['name'] in done]
    todo = [c for c in itertools.product(args.tasks, args.cores, args.heads)
            if f'{c[0]}_{c[1]}_{c[2]}' not in done]
    missing = [f'{t}_{c}_{h}' for t, c, h in todo
               if not (ROOT / 'config' / 'train' / f'{t}_{c}_{h}.yaml').is_file()]
    if missing:
        print(f'no config/train/<name>.yaml for {missing}', file=sys.stderr)
        return 2
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = {pool.submit(run_one, *c, args): c for c in todo}
        for fut in futures:
            row = fut.result()
            rows.append(row)
            results_file.write_text(json.dumps(rows, indent=1))
            write_table(rows, out / 'table.md')
            print(f"{row['name']}: {row.get('success_rate', row.get('error'))}",
                  file=sys.stderr, flush=True)
    write_table(rows, out / 'table.md')
    print(json.dumps(rows, indent=1))
    return 0 if all('success_rate' in r for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
