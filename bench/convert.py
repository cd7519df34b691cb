"""Conversion speed against rosbags' raw read-and-deserialize of the same bags (JSON out).

    .venv/bin/python bench/convert.py                  # synthetic 320x240 @ 30 Hz bags
    .venv/bin/python bench/convert.py --bags data/bags/lift   # bags you recorded

Baseline: rosbags AnyReader reading and deserializing every message of the bags (what any
conversion has to do at least). Measured: `il_ros.data.convert.convert` end to end (read,
validate, resample, decode/resize the used frames, write the HDF5 store). Both run in this
process, alternating, best of ``--repeat``. Acceptance: ratio (baseline time / convert time)
>= 0.5.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from rosbags.highlevel import AnyReader

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from il_ros.data.convert import convert, find_bags  # noqa: E402
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag  # noqa: E402
from il_ros.data.topic_map import ConvertConfig  # noqa: E402


def rosbags_baseline(bags: list[Path]) -> tuple[float, int, int]:
    """Seconds to read + deserialize every message; messages; bytes."""
    t0 = time.perf_counter()
    n = size = 0
    for bag in bags:
        with AnyReader([bag]) as r:
            for conn, _, raw in r.messages():
                r.deserialize(raw, conn.msgtype)
                n += 1
                size += len(raw)
    return time.perf_counter() - t0, n, size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--bags', help='folder of bags (default: synthetic bags in a temp dir)')
    ap.add_argument('--episodes', type=int, default=8, help='synthetic bags to write')
    ap.add_argument('--duration', type=float, default=10.0, help='s per synthetic bag')
    ap.add_argument('--repeat', type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix='il_ros_bench_convert_'))
    try:
        if args.bags:
            root = Path(args.bags)
            source = str(root)
        else:
            root = tmp / 'bags'
            for k in range(args.episodes):
                write_synthetic_bag(root / f'ep{k:03d}', SyntheticBagSpec(
                    duration=args.duration, camera_hz=30.0, image_hw=(240, 320),
                    joint_hz=100.0, action_hz=20.0, jitter=0.05, seed=k))
            source = f'synthetic: {args.episodes} x {args.duration}s, 320x240 rgb8 @ 30 Hz, ' \
                     'JointState @ 100 Hz, commands @ 20 Hz'
        bags, _ = find_bags([root])
        cfg = ConvertConfig()
        base_t, conv_t = [], []
        frames = 0
        for rep in range(args.repeat):
            t, n_msgs, n_bytes = rosbags_baseline(bags)
            base_t.append(t)
            out = tmp / f'ds{rep}'
            t0 = time.perf_counter()
            reports = convert(bags, out, cfg, progress=False)
            conv_t.append(time.perf_counter() - t0)
            frames = sum(r.frames for r in reports)
            shutil.rmtree(out)
        rejected = [r.reason for r in reports if r.status != 'converted']
        best_base, best_conv = min(base_t), min(conv_t)
        result = {
            'bench': 'convert', 'source': source, 'bags': len(bags), 'messages': n_msgs,
            'megabytes': round(n_bytes / 1e6, 1), 'frames_written': frames,
            'rejected': rejected,
            'rosbags_read_deserialize_s': round(best_base, 3),
            'rosbags_mb_per_s': round(n_bytes / 1e6 / best_base, 1),
            'convert_s': round(best_conv, 3),
            'convert_mb_per_s': round(n_bytes / 1e6 / best_conv, 1),
            'ratio_convert_over_rosbags_speed': round(best_base / best_conv, 3),
            'acceptance_ratio_ge_0.5': best_base / best_conv >= 0.5,
            'all_runs_s': {'rosbags': [round(x, 3) for x in base_t],
                           'convert': [round(x, 3) for x in conv_t]},
        }
        print(json.dumps(result, indent=1))
        return 0 if result['acceptance_ratio_ge_0.5'] and not rejected else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
