"""The success table: train and evaluate its rows (bench/success_table.yaml) in the sim.

Each row of bench/success_table.yaml names a task, a recipe (config/train/), --set overrides
and optionally a dataset; for each row asked for, this runs

    il-ros train --config RECIPE --task TASK --dataset DATA/DATASET --out OUT/ID --set ...
    il-ros eval --checkpoint OUT/ID/checkpoints/best --task TASK --episodes 50 --json

as child processes and records the success rate, failure reasons (collisions on
reach_around), modes, the training steps and the CPU seconds each child used (from
``os.wait4``, so runs in parallel are counted apart). Checkpoints are selected during
training by rollouts on seeds the final evaluation does not use (the recipes set
``eval_seed: 2000``; the table's 50 episodes use seeds 1000-1049).

Results are appended to ``OUT/results.json`` as each run ends (a rerun skips runs already
there), and ``OUT/table.md`` is rewritten each time. Runs take minutes each; this is a
measurement, not a test:

    python bench/success_table.py --out runs/table --parallel 2 --threads 1   # the matrix
    python bench/success_table.py --tasks reach_around --heads mse gmm diffusion
    python bench/success_table.py --rows lift_lstm_gmm lift_lstm_gmm_resnet_dart
    python bench/success_table.py --list        # every row and its train command

Prints the final JSON list on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shlex
import subprocess
import sys
import time

import yaml

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / 'bench' / 'success_table.yaml'
TASKS = ('lift', 'reach_around', 'path')
CORES = ('none', 'lstm')
HEADS = ('mse', 'gmm', 'diffusion')
ROW_KEYS = ('task', 'recipe', 'set', 'dataset', 'note')


def load_rows(path: Path = TABLE) -> dict[str, dict]:
    """Read the rows by id, matrix first: {task, recipe, set, dataset, note, variant}."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(raw) - {'matrix', 'variants'})
    if unknown:
        raise ValueError(f'{path}: unknown section(s) {unknown}; use matrix and variants')
    rows = {}
    for section in ('matrix', 'variants'):
        for rid, row in (raw.get(section) or {}).items():
            bad = sorted(set(row) - set(ROW_KEYS))
            if bad or not {'task', 'recipe'} <= set(row):
                raise ValueError(f'{path}: row {rid}: needs task and recipe, may have '
                                 f'{ROW_KEYS}; got {sorted(row)}')
            if rid in rows:
                raise ValueError(f'{path}: row id {rid} appears twice')
            rows[rid] = {'task': row['task'], 'recipe': row['recipe'],
                         'set': [str(s) for s in row.get('set') or []],
                         'dataset': row.get('dataset') or row['task'],
                         'note': row.get('note'), 'variant': section == 'variants'}
    return rows


def row_config(row: dict):
    """Return the row's TrainConfig (what ``il-ros train`` builds from its arguments)."""
    from il_ros.training.config import load_train_config
    return load_train_config(row['recipe'], row['set'], task=row['task'])


def row_kind(row: dict) -> tuple[str, str]:
    """Return (history, head) of a row: the names of its policy's core and head."""
    from il_ros.training.config import resolve_policy_config
    pcfg = resolve_policy_config(row_config(row).policy)
    return pcfg.core['name'], pcfg.head['name']


def train_args(row: dict) -> list[str]:
    """Return the row's ``il-ros train`` arguments (without --dataset and --out)."""
    return ['--config', row['recipe'], '--task', row['task'],
            *(a for s in row['set'] for a in ('--set', s))]


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


def run_one(name: str, spec: dict, args) -> dict:
    """Train + evaluate one row of the table; return its result."""
    task = spec['task']
    run_dir = Path(args.out) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / 'table.log'
    il_ros = [sys.executable, '-m', 'il_ros.cli']
    train = [*il_ros, 'train', *train_args(spec), '--dataset',
             str(Path(args.data) / spec['dataset']), '--out', str(run_dir), '--threads',
             str(args.threads), '--set', 'progress=false']
    if args.max_minutes:
        train += ['--max-minutes', str(args.max_minutes)]
    row = {'name': name, 'task': task, 'core': spec['core'], 'head': spec['head'],
           'recipe': spec['recipe'], 'set': spec['set'], 'dataset': spec['dataset']}
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


def write_table(rows: list[dict], path: Path, order: list[str]) -> None:
    """Write a markdown table of the results, in the order of the table's rows."""
    lines = ['| row | task | history | head | success (50 ep) | failures | encoder, cameras | '
             'steps | train min | CPU min (train) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    rank = {rid: k for k, rid in enumerate(order)}
    for r in sorted(rows, key=lambda r: rank.get(r['name'], len(rank))):
        first = f"| {r['name']} | {r['task']} | {r.get('core')} | {r.get('head')} |"
        if 'success_rate' not in r:
            lines.append(f"{first} error | {r.get('error', '')} | | | | |")
            continue
        fails = ', '.join(f'{k} {v}' for k, v in sorted(r['failures'].items())) or '-'
        lines.append(f"{first} {r['success_rate']:.0%} | {fails} | {r.get('encoder') or ''} | "
                     f"{r.get('steps')} | {(r.get('train_s') or 0) / 60:.1f} | "
                     f"{r['train_cpu_s'] / 60:.1f} |")
    path.write_text('\n'.join(lines) + '\n')


def select(table: dict[str, dict], args) -> dict[str, dict]:
    """Return the rows asked for, each with its history and head resolved.

    --rows (default: the matrix), filtered by --tasks/--cores/--heads; unknown ids raise
    ValueError.
    """
    unknown = [r for r in args.rows or [] if r not in table]
    if unknown:
        raise ValueError(f'unknown row(s) {unknown}; rows: {", ".join(table)}')
    ids = args.rows or [rid for rid, row in table.items() if not row['variant']]
    chosen = {}
    for rid in ids:
        row = dict(table[rid])
        row['core'], row['head'] = row_kind(row)
        if ((args.tasks is None or row['task'] in args.tasks)
                and (args.cores is None or row['core'] in args.cores)
                and (args.heads is None or row['head'] in args.heads)):
            chosen[rid] = row
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='runs/table', help='folder of the runs and results')
    ap.add_argument('--data', default='data/datasets', help='folder holding DATA/<dataset>')
    ap.add_argument('--rows', nargs='+', metavar='ID',
                    help='row ids of bench/success_table.yaml (default: the matrix)')
    ap.add_argument('--tasks', nargs='+', choices=TASKS, help='only rows on these tasks')
    ap.add_argument('--cores', nargs='+', choices=CORES, help='only rows with this history')
    ap.add_argument('--heads', nargs='+', choices=HEADS, help='only rows with these heads')
    ap.add_argument('--list', action='store_true',
                    help='print the chosen rows and their train commands, run nothing')
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--max-minutes', type=float, default=None,
                    help='override every config\'s training budget')
    ap.add_argument('--parallel', type=int, default=1, help='runs at once')
    ap.add_argument('--threads', type=int, default=2, help='torch threads per run')
    ap.add_argument('--reeval', nargs='+', default=[], metavar='NAME',
                    help='evaluate these finished runs again (after a change to acting) '
                         'without retraining; their CPU time is kept')
    args = ap.parse_args(argv)
    table = load_rows()
    try:
        chosen = select(table, args)
    except ValueError as e:  # an unknown row id, or a row whose config does not load
        print(f'success_table: {e}', file=sys.stderr)
        return 2
    if args.list:
        for rid, row in chosen.items():
            cmd = ' '.join(shlex.quote(a) for a in train_args(row))
            print(f"{rid}: il-ros train {cmd} --dataset {Path(args.data) / row['dataset']}"
                  f"{'  # ' + row['note'] if row['note'] else ''}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / 'results.json'
    rows = json.loads(results_file.read_text()) if results_file.is_file() else []
    args.previous = {r['name']: r for r in rows}
    done = {r['name'] for r in rows if 'success_rate' in r} - set(args.reeval)
    rows = [r for r in rows if r['name'] in done]
    todo = [rid for rid in chosen if rid not in done]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = {pool.submit(run_one, rid, chosen[rid], args): rid for rid in todo}
        for fut in futures:
            row = fut.result()
            rows.append(row)
            results_file.write_text(json.dumps(rows, indent=1))
            write_table(rows, out / 'table.md', list(table))
            print(f"{row['name']}: {row.get('success_rate', row.get('error'))}",
                  file=sys.stderr, flush=True)
    write_table(rows, out / 'table.md', list(table))
    print(json.dumps(rows, indent=1))
    return 0 if all('success_rate' in r for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
