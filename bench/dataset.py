"""Is the data path fast enough to never starve training? Prints JSON.

Builds a synthetic store (100 episodes x 150 frames, 84x84 RGB, joint_pos 9, action 6) in a
temp dir, then measures in one run:

- loader: samples/s through ``make_loader`` (batch 64, To=2, Tp=16, shuffled) including the
  batch augmentation (random crop 84->76 + color jitter, in the main process), for
  num_workers 0/1/2 and both cache modes ('all': frames in RAM; 'lowdim': images read from
  HDF5 per sample), and a plain ``DataLoader(batch_size=64)`` with default collate;
- train: one training step of ResNet-18 (GroupNorm) + MLP head, MSE, AdamW on the same batch
  shape ((64, 2, 3, 76, 76) images: both history frames go through the encoder), 2 threads,
  fp32 and bf16 autocast + channels_last.

``loader_over_train`` = best loader samples/s / best train samples/s; acceptance >= 5.

Usage: ``python bench/dataset.py [--episodes 100] [--frames 150] [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from il_ros.data.augment import ImageAugment  # noqa: E402
from il_ros.data.sampler import make_loader, WindowDataset  # noqa: E402
from il_ros.data.store import DatasetWriter, encode_labels  # noqa: E402
from il_ros.models.resnet import ResNet18  # noqa: E402

TO, TP, BATCH, CROP = 2, 16, 64, 76


def synth_episode(seed: int, frames: int) -> dict[str, np.ndarray]:
    """Sim-like frames: a smooth background and a moving box, with mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:84, 0:84]
    bg = np.stack([80 + 0.5 * yy, 90 + 0.3 * xx, 100 + 0.2 * (xx + yy)], -1)   # (H, W, 3)
    img = np.repeat(bg[None], frames, 0)                                       # (T, H, W, 3)
    pos = (rng.uniform(5, 65, 2) + np.cumsum(rng.normal(0, 0.5, (frames, 2)), 0)
           ).clip(0, 74).astype(int)
    for t, (y, x) in enumerate(pos):
        img[t, y:y + 10, x:x + 10] = (200, 40, 40)
    img = (img + rng.normal(0, 2.0, img.shape)).clip(0, 255).astype(np.uint8)
    labels = np.array(['demo'] * frames, dtype=object)
    labels[frames // 2:frames // 2 + 10] = 'intervention'
    return {'image/front': img,
            'joint_pos': rng.normal(size=(frames, 9)).astype(np.float32),
            'action': rng.normal(size=(frames, 6)).astype(np.float32),
            'label': encode_labels(labels), 'time': np.arange(frames) / 10.0}


def build_store(path: Path, episodes: int, frames: int) -> float:
    """Write the synthetic store; returns seconds taken."""
    t0 = time.perf_counter()
    with DatasetWriter(path) as w:
        for i in range(episodes):
            w.append_episode(synth_episode(i, frames), {'source_id': f'synthetic{i}'})
    return time.perf_counter() - t0


def loader_rate(path: Path, cache: str, workers: int, seconds: float,
                collate: bool = False) -> float:
    """Samples/s of DataLoader + batch augmentation, after the first batch.

    ``collate``: a plain ``DataLoader(batch_size=64)`` (per-sample items, default collate)
    instead of :func:`make_loader`'s whole-batch fetch.
    """
    ds = WindowDataset(str(path), ['image/front', 'joint_pos'], TO, TP, cache=cache,
                       label_weights={'intervention': 2.0})
    gen = torch.Generator().manual_seed(0)
    if collate:
        dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True,
                                         num_workers=workers, generator=gen,
                                         persistent_workers=workers > 0)
    else:
        dl = make_loader(ds, BATCH, num_workers=workers, generator=gen)
    aug, gen = ImageAugment(CROP), torch.Generator().manual_seed(0)
    n, t0 = 0, None
    for batch in dl:
        images = aug(batch['obs']['image/front'], train=True, generator=gen)  # (B, T, 3, h, w)
        assert images.shape == (BATCH, TO, 3, CROP, CROP)
        if t0 is None:
            t0 = time.perf_counter()
            continue
        n += BATCH
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


class BenchPolicy(nn.Module):
    """ResNet-18 (GroupNorm) per history frame + joint_pos -> MLP -> Tp x 6 actions."""

    def __init__(self):
        """No pretrained weights: random init, as the speed does not depend on them."""
        super().__init__()
        self.encoder = ResNet18(norm='group', num_classes=None)
        self.head = nn.Sequential(nn.Linear(TO * (512 + 9), 512), nn.ReLU(),
                                  nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, TP * 6))

    def forward(self, images: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, To, 3, h, w), (B, To, 9) -> (B, Tp, 6)."""
        b = images.shape[0]
        feats = self.encoder(images.flatten(0, 1)).view(b, TO, -1)              # (B, To, 512)
        x = torch.cat([feats, joints], -1).flatten(1)                          # (B, To*521)
        return self.head(x).view(b, TP, 6)


def train_rate(bf16: bool, steps: int) -> float:
    """Samples/s of full training steps on random data of the benchmark's batch shape."""
    torch.manual_seed(0)
    model = BenchPolicy()
    images = torch.rand(BATCH, TO, 3, CROP, CROP)
    joints, target = torch.randn(BATCH, TO, 9), torch.randn(BATCH, TP, 6)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def step():
        x = images
        if bf16:
            x = images.flatten(0, 1).contiguous(memory_format=torch.channels_last
                                                ).view_as(images)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.mse_loss(model(x, joints).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()                                                                  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--frames', type=int, default=150)
    ap.add_argument('--seconds', type=float, default=4.0, help='per loader configuration')
    ap.add_argument('--steps', type=int, default=6, help='timed training steps per mode')
    ap.add_argument('--quick', action='store_true', help='20 episodes, 1 s, 2 steps')
    args = ap.parse_args()
    if args.quick:
        args.episodes, args.seconds, args.steps = 20, 1.0, 2
    torch.set_num_threads(2)
    base = Path(tempfile.mkdtemp(prefix='il_ros_bench_dataset_'))
    out = {'episodes': args.episodes, 'frames': args.frames, 'batch': BATCH, 'To': TO,
           'Tp': TP, 'crop': CROP, 'threads': torch.get_num_threads(),
           'cpu_count': os.cpu_count()}
    try:
        path = base / 'ds'
        out['build_s'] = build_store(path, args.episodes, args.frames)
        out['store_mb'] = sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) / 1e6
        loader = {}
        for cache in ('all', 'lowdim'):
            for workers in (0, 1, 2):
                loader[f'{cache}_w{workers}'] = loader_rate(path, cache, workers, args.seconds)
                print(f'loader {cache} w{workers}: {loader[f"{cache}_w{workers}"]:.0f}/s',
                      file=sys.stderr, flush=True)
        for workers in (0, 2):
            loader[f'all_w{workers}_default_collate'] = loader_rate(
                path, 'all', workers, args.seconds, collate=True)
        out['loader_samples_s'] = loader
        train = {'fp32': train_rate(False, args.steps),
                 'bf16_channels_last': train_rate(True, args.steps)}
        out['train_samples_s'] = train
        best_loader = max(loader, key=loader.get)
        best_train = max(train, key=train.get)
        out['best'] = {'loader': best_loader, 'train': best_train}
        out['loader_over_train'] = loader[best_loader] / train[best_train]
        out['loader_w0_all_over_train'] = loader['all_w0'] / train[best_train]
        out['acceptance_5x'] = out['loader_over_train'] >= 5.0
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
