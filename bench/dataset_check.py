"""Cost of the per-episode checksum and of the dataset check a training run starts with.

    python bench/dataset_check.py [--episodes 100] [--frames 200]

Writes a dataset of ``--episodes`` sim-like episodes (two 84x84 cameras, front and wrist,
from bench/store.py's synthetic renderer; 9 joint values, 7 actions, labels, time) with
``il_ros.data.store.DatasetWriter``, which hashes every episode file (sha256) into the
manifest, then measures:

- ``write_s``: the whole write (compression, fsync, checksum);
- ``hash_s``: sha256 over every episode file again (warm page cache: the hash alone, what
  the writer adds per episode and the check spends verifying), with blake2b, sha1 and
  (zlib) crc32 over the same files for comparison;
- ``check_s``: ``il_ros.data.validate.check_dataset`` (checksums, keys and shapes, every
  non-image value), warm cache, and ``check_no_checksum_s`` without the checksums (what a
  dataset written before them costs).

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time
import zlib

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / 'bench')]

from il_ros.data.store import Dataset, DatasetWriter, encode_labels, file_checksum  # noqa: E402
from il_ros.data.validate import check_dataset  # noqa: E402
from store import synth_episode  # noqa: E402


def episode(seed: int, frames: int) -> dict[str, np.ndarray]:
    """Two sim-like cameras plus low-dimensional keys."""
    front, wrist = synth_episode(seed, frames), synth_episode(10_000 + seed, frames)
    rng = np.random.default_rng(seed)
    return {'image/front': front['image/front'], 'image/wrist': wrist['image/front'],
            'joint_pos': rng.normal(size=(frames, 9)).astype(np.float32),
            'action': rng.normal(size=(frames, 7)).astype(np.float32),
            'label': encode_labels(['demo'] * frames),
            'time': np.arange(frames) * 0.05}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--frames', type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix='il_ros_bench_check_') as tmp:
        path = Path(tmp) / 'ds'
        eps = [episode(s, args.frames) for s in range(args.episodes)]
        t0 = time.perf_counter()
        with DatasetWriter(path) as w:
            for k, ep in enumerate(eps):
                w.append_episode(ep, {'task': 'lift', 'rate_hz': 20.0, 'source_id': f'b{k}'})
        write_s = time.perf_counter() - t0
        files = sorted((path / 'episodes').glob('*.h5'))
        mb = sum(f.stat().st_size for f in files) / 1e6
        hashes = {name: _timed(lambda: [file_checksum(f, name) for f in files])
                  for name in ('sha256', 'blake2b', 'sha1')}
        hashes['crc32'] = _timed(lambda: [zlib.crc32(f.read_bytes()) for f in files])
        ds = Dataset(path)
        check_dataset(ds)                                        # warm the cache
        check = check_dataset(ds)
        man = json.loads((path / 'manifest.json').read_text())
        for e in man['episodes']:
            e.pop('checksum')
        (path / 'manifest.json').write_text(json.dumps(man))
        legacy = check_dataset(Dataset(path))
        assert not check.bad and not legacy.bad and legacy.unchecksummed == args.episodes
    print(json.dumps({
        'episodes': args.episodes, 'frames': args.frames, 'cameras': '2 x 84x84 rgb8',
        'dataset_mb': round(mb, 1), 'write_s': round(write_s, 2),
        'hash_s': {k: round(v, 3) for k, v in hashes.items()},
        'mb_per_s': {k: round(mb / v) for k, v in hashes.items()},
        'hash_share_of_write': round(hashes['sha256'] / write_s, 3),
        'check_s': round(check.seconds, 3),
        'check_no_checksum_s': round(legacy.seconds, 3)}))


if __name__ == '__main__':
    main()
