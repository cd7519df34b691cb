"""Rollouts split over worker processes: the same episodes as :func:`evaluate`, sooner.

:func:`evaluate_in_workers` writes the policy to a temporary checkpoint, splits the seeds
into contiguous blocks, and runs each block in its own process (``python -m
il_ros.training.parallel_eval``, a plain subprocess: it also works from a daemonic process
such as the trainer node's worker, and shares no MuJoCo, EGL or torch state), one torch
thread each, through :func:`evaluate` with the same arguments. Every episode resets the
policy with its own seed, so a block gives what the same episodes give in one process; the
blocks' results are merged into one :func:`evaluate` result: the summary recomputed over all
episodes, the control loop's counters summed, ``act_ms`` and ``tick_ms`` averaged over
ticks, ``cpu_s`` summed over the workers, ``wall_s`` the wall time of the whole call,
``workers`` the processes used. A worker that fails raises RuntimeError with its last
lines of output.

Worth it where there are cores to spare (a GPU machine's 16 cores while the GPU trains):
each worker pays a few seconds to start (import torch and MuJoCo, load the checkpoint).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import pickle
import subprocess
import sys
import tempfile
import time

from il_ros.sim.runner import summarize_episodes

_MEAN_BY_TICKS = ('act_ms', 'tick_ms')


def split_seeds(seed: int, episodes: int, workers: int) -> list[tuple[int, int]]:
    """``(first seed, episodes)`` of each block: contiguous, sizes differing by at most one."""
    n = max(1, min(int(workers), episodes))
    base, extra = divmod(episodes, n)
    blocks, start = [], seed
    for k in range(n):
        size = base + (k < extra)
        blocks.append((start, size))
        start += size
    return blocks


def _block(folder: str, task: str, seed: int, episodes: int) -> dict:
    """One worker's episodes (runs in the worker process)."""
    import torch

    from il_ros.models import load_checkpoint
    from il_ros.training.evaluate import evaluate
    torch.set_num_threads(1)
    kwargs = pickle.loads((Path(folder) / 'kwargs.pkl').read_bytes())   # our own file
    policy, _ = load_checkpoint(Path(folder) / 'policy')
    return evaluate(policy, task, episodes, seed=seed, progress=False, **kwargs)


def _merge(a, b):
    """Counters of two blocks added (nested dicts key by key); anything else: the first."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return a + b
    return a if a is not None else b


def merge_results(task: str, seed: int, parts: list[dict]) -> dict:
    """One :func:`evaluate` result from the results of consecutive seed blocks."""
    per_episode = [e for p in parts for e in p['per_episode']]
    out = {}
    skip = {'per_episode', *_MEAN_BY_TICKS, 'wall_s'}
    for p in parts:
        for k, v in p.items():
            if k not in skip:
                out[k] = _merge(out[k], v) if k in out else v
    ticks = [p.get('ticks') or sum(e['steps'] for e in p['per_episode']) for p in parts]
    for k in _MEAN_BY_TICKS:
        vals = [(p[k], t) for p, t in zip(parts, ticks) if p.get(k) is not None]
        if vals:
            out[k] = round(sum(v * t for v, t in vals) / max(1, sum(t for _, t in vals)), 3)
    out.update(summarize_episodes(task, seed, per_episode, parts[0]['max_steps']))
    out['per_episode'] = per_episode
    return out


def evaluate_in_workers(policy, task: str, episodes: int, seed: int, workers: int,
                        **kwargs) -> dict:
    """:func:`evaluate` of ``policy`` with its seeds split over ``workers`` processes.

    ``kwargs``: :func:`evaluate`'s settings (``max_steps``, ``robot``, ``direct``...), all
    picklable; ``env`` and ``worker`` (objects of this process) are refused. ``progress``
    is ignored (the workers run without bars).
    """
    from il_ros.models import save_checkpoint
    for own in ('env', 'worker'):
        if kwargs.get(own) is not None:
            raise ValueError(f'evaluate_in_workers: {own} is an object of this process; '
                             'run with workers=1 to pass one')
    kwargs.pop('progress', None)
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    blocks = split_seeds(seed, episodes, workers)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='il_ros_eval_') as tmp:
        tmp = Path(tmp)
        save_checkpoint(policy, tmp / 'policy')
        (tmp / 'kwargs.pkl').write_bytes(pickle.dumps(kwargs))
        parts = _run_blocks(tmp, task, blocks)
    res = merge_results(task, seed, parts)
    res['wall_s'] = round(time.perf_counter() - t0, 2)
    res['workers'] = len(blocks)
    return res


def _run_blocks(tmp: Path, task: str, blocks: list[tuple[int, int]]) -> list[dict]:
    """Start a worker per block, wait for all, return their results in block order."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    procs = []
    try:
        for k, (s, n) in enumerate(blocks):
            log = open(tmp / f'block{k}.log', 'wb')
            procs.append(subprocess.Popen(
                [sys.executable, '-m', 'il_ros.training.parallel_eval', str(tmp), task, str(s),
                 str(n), str(tmp / f'block{k}.json')],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env))
            log.close()
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for k, code in enumerate(codes):
        if code != 0:
            tail = (tmp / f'block{k}.log').read_text(errors='replace').splitlines()[-12:]
            raise RuntimeError(f'evaluation worker {k} (seeds {blocks[k][0]}..'
                               f'{sum(blocks[k]) - 1}) exited with code {code}:\n'
                               + '\n'.join(tail))
    return [json.loads((tmp / f'block{k}.json').read_text()) for k in range(len(blocks))]


def evaluate_with(workers: int, policy, task: str, episodes: int, seed: int, **kwargs) -> dict:
    """:func:`evaluate` in this process (``workers`` <= 1) or :func:`evaluate_in_workers`."""
    if workers <= 1:
        from il_ros.training.evaluate import evaluate
        return evaluate(policy, task, episodes, seed=seed, **kwargs)
    return evaluate_in_workers(policy, task, episodes, seed, workers, **kwargs)


if __name__ == '__main__':      # a worker: FOLDER TASK SEED EPISODES OUT_JSON
    _folder, _task, _seed, _n, _out = sys.argv[1:]
    Path(_out).write_text(json.dumps(_block(_folder, _task, int(_seed), int(_n))))
