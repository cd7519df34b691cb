"""Batch-1 ``act`` latency of the default policies, with a plain-PyTorch baseline; prints JSON.

For each preset (default sizes: 84x84 front camera, crop 76, joint_pos (7,), action (6,),
2 torch threads, random init, synthetic observations):

- ``act``: per-call latency of ``Policy.act`` over ``--steps`` control ticks (for a chunked
  head most calls only pop the queue, so see ``replan`` too);
- ``replan``: latency of ``Policy.act_chunk`` (a full encode -> core -> head pass, what a
  replanning tick costs, the worst case of ``act``);
- ``plain_torch``: the same modules called directly on prepared tensors under
  ``torch.inference_mode`` (no obs validation, normalization, history or queue), i.e.
  what the Policy wrapper adds on top of the forward pass;
- ``stock_torch``: ``plain_torch`` with stock PyTorch layers where il_ros replaces them for
  speed: ``nn.LSTM`` for the LSTM step and ``nn.Conv1d.forward`` in the UNet.

Each is reported as p50/p99 in ms, for fp32 and for ``bf16 + channels_last`` (encoders
only), with 2 torch threads and with 1 (``--threads``). The load average before and after
is recorded: on a shared machine, 2 threads wait in OpenMP barriers whenever another
process holds a core (docs/models.md).

    .venv/bin/python bench/infer.py [--steps 200] [--threads 2 1] [--presets ...]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from il_ros.data.stats import Normalizer
from il_ros.models import assemble_policy, preset, RobotSpec
from il_ros.models.heads import unet1d

H = W = 84
SPEC = RobotSpec(joint_names=[f'j{i}' for i in range(7)],
                 action_names=[f'a{i}' for i in range(6)], action_dim=6, proprio_dim=7,
                 cameras=['front'], image_size=(H, W), control_rate_hz=20.0)


def normalizers() -> dict[str, Normalizer]:
    """Return plausible fixed normalizers, like those build_policy derives from a dataset."""
    return {'action': Normalizer(np.full(6, 0.5), np.zeros(6), 'minmax'),
            'joint_pos': Normalizer(np.full(7, 2.0), np.zeros(7), 'meanstd'),
            'image/front': Normalizer(np.full(3, 4.0), np.full(3, -2.0), 'meanstd')}


def percentiles(times: list[float]) -> dict:
    """Return min/p50/p99 in ms of ``times`` (seconds)."""
    ms = np.asarray(times) * 1e3
    return {'min_ms': round(float(ms.min()), 3), 'p50_ms': round(float(np.percentile(ms, 50)), 3),
            'p99_ms': round(float(np.percentile(ms, 99)), 3), 'n': len(ms)}


def timed(fn, n: int, warmup: int = 10) -> list[float]:
    """Call ``fn`` ``warmup`` times, then return the durations of ``n`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_policy(name: str, fast: bool, steps: int, rng: np.random.Generator) -> dict:
    """Measure act, replan and the two baselines for one preset."""
    cfg = preset(name, bf16=fast, channels_last=fast)
    torch.manual_seed(0)
    policy = assemble_policy(cfg, SPEC, normalizers(), load_weights=False).eval()
    obs = [{'image/front': rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            'joint_pos': rng.normal(size=7)} for _ in range(16)]
    it = iter(range(10 ** 9))
    policy.reset(seed=0)
    act = timed(lambda: policy.act(obs[next(it) % 16]), steps)
    policy.reset(seed=0)
    n_replan = max(20, steps // max(cfg.action_exec, 1) if cfg.action_exec > 1 else steps // 4)
    replan = timed(lambda: policy.act_chunk(obs[next(it) % 16]), n_replan)

    # Plain PyTorch: the same modules on ready tensors (To frames, already cropped).
    crop = cfg.crop
    img = torch.rand(1, cfg.obs_horizon, 3, crop, crop)
    prop = torch.randn(1, cfg.obs_horizon, 7)
    gen = torch.Generator().manual_seed(0)

    def plain():
        with torch.inference_mode():
            feats = policy.encoder({'front': img}, prop)            # (1, To, D)
            f = policy.core.step(feats)                             # (1, F)
            return policy.head.sample(f, generator=gen)             # (1, Tp, A)
    policy.core.reset()
    base = timed(plain, n_replan)

    def stock():
        with torch.inference_mode():
            feats = policy.encoder({'front': img}, prop)            # (1, To, D)
            if policy.core.sequence:
                f = policy.core.lstm(feats[:, -1:], state)[0][:, 0]  # nn.LSTM, one step
            else:
                f = policy.core.step(feats)
            return policy.head.sample(f, generator=gen)
    state = None
    fast_conv = unet1d.Conv1d.forward
    unet1d.Conv1d.forward = torch.nn.Conv1d.forward                 # PyTorch's own kernel
    try:
        ref = timed(stock, n_replan)
    finally:
        unet1d.Conv1d.forward = fast_conv
    return {'act': percentiles(act), 'replan': percentiles(replan),
            'plain_torch': percentiles(base), 'stock_torch': percentiles(ref)}


def describe(name: str) -> dict:
    """Return the sizes and horizons of a preset."""
    cfg = preset(name)
    torch.manual_seed(0)
    p = assemble_policy(cfg, SPEC, normalizers(), load_weights=False)
    count = {part: sum(x.numel() for x in getattr(p, part).parameters())
             for part in ('encoder', 'core', 'head')}
    return {'encoder': cfg.encoder['name'], 'core': cfg.core['name'],
            'head': cfg.head['name'], 'To': cfg.obs_horizon, 'Tp': cfg.action_horizon,
            'Ta': cfg.action_exec, 'params_M': {k: round(v / 1e6, 3) for k, v in count.items()},
            **({'ddim_steps': cfg.head['num_inference_steps']}
               if cfg.head['name'] == 'diffusion' else {})}


def main() -> None:
    """Run every preset at every thread count and print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=200, help='act calls per measurement')
    ap.add_argument('--presets', nargs='+', default=['lstm_gmm', 'none_mse', 'diffusion'])
    ap.add_argument('--threads', type=int, nargs='+', default=[2, 1])
    args = ap.parse_args()
    out = {'torch': torch.__version__, 'machine': platform.machine(), 'cpus': os.cpu_count(),
           'image': [H, W], 'loadavg_before': os.getloadavg()[0],
           'models': {name: describe(name) for name in args.presets}, 'results': {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        res = out['results'][f'threads_{threads}'] = {}
        for name in args.presets:
            rng = np.random.default_rng(0)
            res[name] = {'fp32': bench_policy(name, False, args.steps, rng),
                         'bf16_channels_last': bench_policy(name, True, args.steps, rng)}
    out['loadavg_after'] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
