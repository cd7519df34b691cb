"""Training throughput: the il_ros trainer against a plain PyTorch loop on the same model.

For each policy preset, in one process:

- ``plain``: the policy built by the trainer's own config path, batches gathered into RAM
  beforehand and cycled; the loop is ``loss -> zero_grad -> backward -> AdamW step``, with
  nothing else (no EMA, no clipping, no logging, no data loading);
- ``trainer``: ``il_ros.training.train`` on the same dataset and config (sampler, EMA,
  gradient clipping, LR schedule, log rows; no evaluation), its samples/s read from the
  log rows after a warm-up window.

The plain loop runs before and after the trainer and the two are averaged, so a change in
machine load during the run hits both sides alike. The dataset is synthetic (smooth images
with moving blobs, random-walk joints) and written through ``DatasetWriter``.

    python bench/train.py [--presets lstm_gmm none_mse diffusion] [--steps 20] [--threads 2] \
        [--devices cpu cuda]

With ``--nproc 2``, each preset is also trained as 2 DDP processes (torchrun, gloo) with
``threads / 2`` threads each, keyed ``PRESET/ddp2``: ``scaling_vs_1_process`` is its
samples/s over the single-process trainer's, ``ratio`` over the plain loop's (same run).

With ``--devices``, each preset is measured on each device (results keyed ``PRESET@DEVICE``
beyond the CPU): the plain loop then holds its batches on that device, and the trainer runs
with ``device=`` it (its batches come from the sampler through pinned memory).

Prints one JSON object; ``ratio`` = trainer / plain median samples/s per step (the target
is >= 0.8; medians, because other jobs on a shared machine make single steps spike), and
``ratio_mean`` the same from total time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from il_ros.data.sampler import WindowDataset  # noqa: E402
from il_ros.data.store import Dataset, DatasetWriter, encode_labels  # noqa: E402
from il_ros.training.config import TrainConfig  # noqa: E402
from il_ros.training.trainer import Trainer  # noqa: E402

JOINTS = ['base_yaw', 'shoulder', 'elbow', 'wrist_pitch', 'wrist_roll', 'finger_left',
          'finger_right']


def synthetic_dataset(path: Path, episodes: int = 12, length: int = 100,
                      size: int = 84) -> Path:
    """Write a sim-like dataset: smooth images with two moving blobs, random-walk joints."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    with DatasetWriter(path, compression=None) as w:
        for _ in range(episodes):
            centers = rng.uniform(0.2, 0.8, (2, 2)) + np.cumsum(
                rng.normal(0, 0.01, (length, 2, 2)), axis=0)              # (T, 2, 2)
            d = ((xx[None, None] - centers[..., 0, None, None]) ** 2
                 + (yy[None, None] - centers[..., 1, None, None]) ** 2)  # (T, 2, H, W)
            blobs = np.exp(-d / 0.004)                                   # (T, 2, H, W)
            img = np.stack([0.3 + 0.6 * blobs[:, 0], 0.3 + 0.6 * blobs[:, 1],
                            0.4 + 0.2 * yy[None].repeat(length, 0)], -1)  # (T, H, W, 3)
            joints = np.cumsum(rng.normal(0, 0.02, (length, 7)), 0).astype(np.float32)
            w.append_episode({
                'image/front': (img * 255).clip(0, 255).astype(np.uint8),
                'joint_pos': joints,
                'action': np.concatenate([joints[:, :5] + 0.05, (joints[:, 5:6] > 0)], 1
                                         ).astype(np.float32),
                'label': encode_labels(['demo'] * length),
                'time': np.arange(length) * 0.05},
                {'task': 'lift', 'joint_names': JOINTS, 'rate_hz': 20.0})
    return path


def plain_loop(trainer: Trainer, steps: int, warmup: int, batch_size: int,
               device: str = 'cpu') -> list[float]:
    """Step times (s) of loss/backward/step on the trainer's model config, data in memory.

    On a GPU the batches are already on it, and each step ends with a synchronize.
    """
    from il_ros.models import build_policy
    from il_ros.training.device import to_device
    torch.manual_seed(1)
    dev = torch.device(device)
    policy = build_policy(trainer.pcfg, trainer.spec, trainer.ds.stats).to(dev)
    data = WindowDataset(trainer.ds, **policy.sampler_spec())
    rng = np.random.default_rng(1)
    batches = [to_device(data.batch(rng.integers(0, len(data), batch_size)), dev)
               for _ in range(8)]
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-4)
    policy.train()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = policy.loss(batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    return times[warmup:]


def trainer_run(cfg: TrainConfig, out: Path, warmup: int) -> tuple[list[float], Trainer]:
    """Step times (s) of the il_ros trainer, from its per-step log rows after ``warmup``.

    A row's time covers the whole step: fetching the batch from the sampler, the loss,
    backward, clipping, the AdamW step and the EMA update.
    """
    trainer = Trainer(cfg, out)
    trainer.run()
    return step_times(out, cfg.batch_size, warmup), trainer


def ddp_run(cfg: TrainConfig, out: Path, warmup: int, nproc: int, threads: int) -> list[float]:
    """Step times (s) of the trainer as ``nproc`` DDP processes (torchrun, gloo on the CPU).

    Each process gets ``threads // nproc`` torch threads (at least 1), so the run uses the
    same cores as the single-process one; ``cfg.batch_size`` is the global batch.
    """
    from il_ros.training.config import save_train_config
    per = str(max(1, threads // nproc))
    config = out.with_suffix('.yaml')
    save_train_config(cfg, config)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           f'--nproc_per_node={nproc}', '-m', 'il_ros.train_cli', 'train', '--config',
           str(config), '--out', str(out), '--threads', per]
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, 'OMP_NUM_THREADS': per})
    if p.returncode != 0:
        raise SystemExit(f'bench/train.py: the {nproc}-process run failed: '
                         f'{(p.stderr.strip() or p.stdout.strip()).splitlines()[-1]}')
    return step_times(out, cfg.batch_size, warmup)


def step_times(out: Path, batch_size: int, warmup: int) -> list[float]:
    """Step times (s) from a run folder's per-step log rows after ``warmup``."""
    with open(out / 'log.csv', newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['samples_per_s']]
    return [batch_size / float(r['samples_per_s']) for r in rows if int(r['step']) > warmup]


def _rate(batch_size: int, times: list[float]) -> dict:
    return {'median': round(batch_size / float(np.median(times)), 1),
            'mean': round(batch_size * len(times) / float(np.sum(times)), 1)}


def _device_name(device: str) -> str:
    if device == 'cpu':
        return platform.processor() or platform.machine()
    return torch.cuda.get_device_name(torch.device(device))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--presets', nargs='+', default=['lstm_gmm', 'none_mse', 'diffusion'])
    ap.add_argument('--steps', type=int, default=20, help='measured steps per loop')
    ap.add_argument('--warmup', type=int, default=5, help='unmeasured first steps')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bf16', type=int, default=1, help='bf16 encoders (1) or fp32 (0)')
    ap.add_argument('--devices', nargs='+', default=['cpu'], help='cpu, cuda, cuda:N')
    ap.add_argument('--num-workers', type=int, nargs='+', default=[0],
                    help="the trainer's data-loader worker processes; several values: one "
                    'trainer run each (keys PRESET[@DEVICE]/wN beyond the first)')
    ap.add_argument('--nproc', type=int, nargs='+', default=[1],
                    help='also train on N DDP processes (torchrun, CPU only), threads/N '
                    'threads each (keys PRESET/ddpN); 1 is the single-process trainer')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix='il_ros_bench_train_'))
    ds_path = synthetic_dataset(tmp / 'dataset')
    ds = Dataset(ds_path)
    results = {}
    for name, device, workers in [(n, d, w) for n in args.presets for d in args.devices
                                  for w in args.num_workers]:
        key = (name if device == 'cpu' else f'{name}@{device}') + (
            f'/w{workers}' if workers != args.num_workers[0] else '')
        cfg = TrainConfig(policy=name, dataset=str(ds_path), batch_size=args.batch_size,
                          num_workers=workers, max_steps=args.warmup + args.steps,
                          max_minutes=None, warmup_steps=0, val_fraction=0.0,
                          eval_every_minutes=None, log_every=1, progress=False,
                          bf16=bool(args.bf16), seed=0, device=device)
        folder = key.replace('/', '_')
        probe = Trainer(cfg, tmp / f'probe_{folder}')
        bs = args.batch_size
        before = plain_loop(probe, args.steps, args.warmup, bs, device)
        trained, trainer = trainer_run(cfg, tmp / f'run_{folder}', args.warmup)
        after = plain_loop(probe, args.steps, args.warmup, bs, device)
        plain, mine = _rate(bs, before + after), _rate(bs, trained)
        results[key] = {
            'trainer_samples_per_s': mine, 'plain_samples_per_s': plain,
            'plain_before_after_median': [_rate(bs, before)['median'],
                                          _rate(bs, after)['median']],
            'ratio': round(mine['median'] / plain['median'], 3),
            'ratio_mean': round(mine['mean'] / plain['mean'], 3),
            'frames_per_sample': trainer.pcfg.window,
            'params_M': round(sum(p.numel() for p in trainer.policy.parameters()) / 1e6, 2),
            'ema': cfg.ema_decay > 0, 'grad_clip': cfg.grad_clip}
        print(f'{key}: trainer {mine} vs plain {plain} samples/s', file=sys.stderr,
              flush=True)
        for n in (n for n in args.nproc if n > 1 and device == 'cpu'):
            rate = _rate(bs, ddp_run(cfg, tmp / f'ddp{n}_{folder}', args.warmup, n,
                                     args.threads))
            results[f'{key}/ddp{n}'] = {
                'trainer_samples_per_s': rate, 'plain_samples_per_s': plain,
                'ratio': round(rate['median'] / plain['median'], 3),
                'scaling_vs_1_process': round(rate['median'] / mine['median'], 3),
                'processes': n, 'threads_per_process': max(1, args.threads // n)}
            print(f'{key}/ddp{n}: {rate} samples/s, {results[f"{key}/ddp{n}"]["ratio"]} '
                  'of the plain loop', file=sys.stderr, flush=True)
    print(json.dumps({
        'bench': 'train', 'torch': torch.__version__, 'threads': args.threads,
        'cpu_count': os.cpu_count(), 'machine': platform.machine(),
        'load_avg_1m': round(os.getloadavg()[0], 2), 'batch_size': args.batch_size,
        'bf16': bool(args.bf16), 'num_workers': args.num_workers,
        'devices': {d: _device_name(d) for d in args.devices},
        'dataset': {'episodes': ds.num_episodes, 'frames': int(ds.episode_lengths.sum()),
                    'image': list(ds.shapes['image/front'])},
        'steps': args.steps, 'results': results,
        'min_ratio': min(r['ratio'] for r in results.values())}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
