"""Compare zarr (v3) and HDF5 as the episode store; prints JSON.

The access pattern is the training sampler's: many random To=2-frame image windows plus
16-frame action windows, from several worker processes. Each layout is written the way
``il_ros.data.store`` would write it (one group per episode, the episode count committed
last), then measured for:

- append speed (MB/s of raw frames),
- random window reads/s from 1 and 2 reader processes,
- size on disk,
- robustness: a writer SIGKILLed in the middle of an append must leave every earlier episode
  readable and byte-identical.

Usage: ``python bench/store.py [--episodes 50] [--frames 150] [--seconds 4]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from pathlib import Path
import shutil
import signal
import sys
import tempfile
import time

import numpy as np

H = W = 84


def synth_episode(seed: int, frames: int, noise: float = 2.0) -> dict[str, np.ndarray]:
    """Make a sim-like episode: background, two moving boxes, ``noise`` (std) sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    bg = np.stack([80 + 0.5 * yy, 90 + 0.3 * xx, 100 + 0.2 * (xx + yy)], -1)  # (H, W, 3)
    img = np.empty((frames, H, W, 3), np.uint8)
    pos = rng.uniform(10, 70, size=(2, 2))
    vel = rng.normal(0, 0.5, size=(2, 2))
    for t in range(frames):
        f = bg.copy()
        for k, col in enumerate(((200, 40, 40), (40, 200, 60))):
            y, x = (pos[k] + vel[k] * t).clip(0, 74).astype(int)
            f[y:y + 10, x:x + 10] = col
        f += rng.normal(0, noise, size=f.shape) if noise else 0
        img[t] = f.clip(0, 255)
    return {'image/front': img,
            'joint_pos': rng.normal(size=(frames, 9)).astype(np.float32),
            'action': rng.normal(size=(frames, 6)).astype(np.float32)}


# ----------------------------------------------------------------- layouts
class ZarrLayout:
    """One zarr v3 group per episode; images sharded per episode, one inner chunk per frame."""

    def __init__(self, compressor: str = 'zstd'):
        self.compressor = compressor
        self.name = f'zarr_shard_{compressor}'

    def _compressors(self):
        import zarr.codecs as zc
        if self.compressor == 'none':
            return None
        if self.compressor == 'lz4':
            return zc.BloscCodec(cname='lz4', clevel=5, shuffle='bitshuffle')
        return zc.ZstdCodec(level=3)

    def open_write(self, path):
        import zarr
        self.root = zarr.open_group(str(path), mode='a')
        if 'num_episodes' not in self.root.attrs:
            self.root.attrs['num_episodes'] = 0
        return self

    def append(self, ep: dict, slow_kill_at: int | None = None):
        import zarr
        n = int(self.root.attrs['num_episodes'])
        g = self.root.require_group(f'ep_{n:06d}')
        for key, arr in ep.items():
            img = arr.ndim == 4
            a = zarr.create_array(g.store, name=f'{g.path}/{key}', shape=arr.shape,
                                  dtype=arr.dtype, overwrite=True,
                                  chunks=(1,) + arr.shape[1:] if img else arr.shape,
                                  shards=arr.shape if img else None,
                                  compressors=self._compressors())
            if slow_kill_at is not None and img:
                a[:slow_kill_at] = arr[:slow_kill_at]
                os.kill(os.getpid(), signal.SIGKILL)
            a[:] = arr
        self.root.attrs['num_episodes'] = n + 1

    def close(self):
        pass

    def close_read(self):
        pass

    def open_read(self, path):
        import zarr
        root = zarr.open_group(str(path), mode='r')
        n = int(root.attrs['num_episodes'])
        self.arrays = [{k: root[f'ep_{i:06d}/{k}'] for k in ('image/front', 'joint_pos',
                                                             'action')} for i in range(n)]
        return n

    def read(self, ep, key, lo, hi):
        return self.arrays[ep][key][lo:hi]


class Hdf5Layout:
    """One HDF5 file, one group per episode, images chunked one frame per chunk."""

    def __init__(self, compression: str | None = None):
        self.compression = compression
        self.name = f'hdf5_file_{compression or "none"}'

    def open_write(self, path):
        import h5py
        self.f = h5py.File(str(path) + '.h5', 'a')
        self.f.attrs.setdefault('num_episodes', 0)
        return self

    def _write_group(self, g, ep, slow_kill_at):
        for key, arr in ep.items():
            img = arr.ndim == 4
            if key in g:
                del g[key]
            d = g.create_dataset(key, shape=arr.shape, dtype=arr.dtype,
                                 chunks=(1,) + arr.shape[1:] if img else None,
                                 compression=self.compression if img else None)
            if slow_kill_at is not None and img:
                d[:slow_kill_at] = arr[:slow_kill_at]
                os.kill(os.getpid(), signal.SIGKILL)
            d[:] = arr

    def append(self, ep: dict, slow_kill_at: int | None = None):
        n = int(self.f.attrs['num_episodes'])
        self._write_group(self.f.require_group(f'ep_{n:06d}'), ep, slow_kill_at)
        self.f.attrs['num_episodes'] = n + 1
        self.f.flush()

    def close(self):
        self.f.close()

    def open_read(self, path):
        import h5py
        self.f = h5py.File(str(path) + '.h5', 'r')
        n = int(self.f.attrs['num_episodes'])
        self.arrays = [{k: self.f[f'ep_{i:06d}/{k}'] for k in ('image/front', 'joint_pos',
                                                               'action')} for i in range(n)]
        return n

    def read(self, ep, key, lo, hi):
        return self.arrays[ep][key][lo:hi]

    def close_read(self):
        self.f.close()


class Hdf5EpisodeFiles(Hdf5Layout):
    """One HDF5 file per episode, written under a temp name and renamed.

    A JSON manifest (replaced atomically) lists the committed episodes.
    """

    def __init__(self, compression: str | None = None):
        super().__init__(compression)
        self.name = f'hdf5_per_episode_{compression or "none"}'

    def open_write(self, path):
        self.dir = Path(path)
        self.dir.mkdir(parents=True, exist_ok=True)
        man = self.dir / 'manifest.json'
        self.n = json.loads(man.read_text())['num_episodes'] if man.exists() else 0
        return self

    def append(self, ep: dict, slow_kill_at: int | None = None):
        import h5py
        tmp = self.dir / f'ep_{self.n:06d}.h5.tmp'
        with h5py.File(tmp, 'w') as f:
            self._write_group(f, ep, slow_kill_at)
        os.replace(tmp, self.dir / f'ep_{self.n:06d}.h5')
        self.n += 1
        (self.dir / 'manifest.tmp').write_text(json.dumps({'num_episodes': self.n}))
        os.replace(self.dir / 'manifest.tmp', self.dir / 'manifest.json')

    def close(self):
        pass

    def open_read(self, path):
        import h5py
        n = json.loads((Path(path) / 'manifest.json').read_text())['num_episodes']
        self.files = [h5py.File(Path(path) / f'ep_{i:06d}.h5', 'r') for i in range(n)]
        self.arrays = [{k: f[k] for k in ('image/front', 'joint_pos', 'action')}
                       for f in self.files]
        return n

    def close_read(self):
        for f in self.files:
            f.close()


LAYOUTS = {'zarr_shard_zstd': lambda: ZarrLayout('zstd'),
           'zarr_shard_lz4': lambda: ZarrLayout('lz4'),
           'zarr_shard_none': lambda: ZarrLayout('none'),
           'hdf5_file_none': lambda: Hdf5Layout(None),
           'hdf5_file_lzf': lambda: Hdf5Layout('lzf'),
           'hdf5_per_episode_none': Hdf5EpisodeFiles,
           'hdf5_per_episode_lzf': lambda: Hdf5EpisodeFiles('lzf')}


# ----------------------------------------------------------------- measurements
def _reader(name, path, frames, seconds, seed, out):
    lay = LAYOUTS[name]()
    n = lay.open_read(path)
    rng = np.random.default_rng(seed)
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ep = int(rng.integers(n))
        t = int(rng.integers(1, frames - 16))
        lay.read(ep, 'image/front', t - 1, t + 1)
        lay.read(ep, 'joint_pos', t - 1, t + 1)
        lay.read(ep, 'action', t, t + 16)
        count += 1
    out.put(count / (time.perf_counter() - t0))
    lay.close_read()


def read_rate(name, path, frames, seconds, workers) -> float:
    """Windows/s summed over ``workers`` reader processes (forked after nothing is open)."""
    ctx = mp.get_context('fork')
    q = ctx.Queue()
    ps = [ctx.Process(target=_reader, args=(name, path, frames, seconds, i, q))
          for i in range(workers)]
    for p in ps:
        p.start()
    rates = [q.get() for _ in ps]
    for p in ps:
        p.join()
    return float(sum(rates))


def _kill_child(name, path, episodes, frames):
    lay = LAYOUTS[name]().open_write(path)
    for i in range(episodes):
        lay.append(synth_episode(i, frames))
    lay.close()
    lay = LAYOUTS[name]().open_write(path)
    lay.append(synth_episode(999, frames), slow_kill_at=frames // 2)


def _append_forever(name, path, eps, start):
    lay = LAYOUTS[name]().open_write(path)
    i = start
    while True:
        lay.append(eps[i % len(eps)])
        i += 1


def _check(name, path, eps, frames) -> int:
    """Count committed episodes; raise when the store is unreadable or an episode differs."""
    lay = LAYOUTS[name]()
    n = lay.open_read(path)
    try:
        for i in range(n):
            for k, v in eps[i % len(eps)].items():
                if not np.array_equal(lay.read(i, k, 0, frames), v):
                    raise ValueError(f'episode {i} key {k} differs')
    finally:
        lay.close_read()
    return n


def robustness(name, base, frames, episodes=4, trials=6) -> dict:
    """SIGKILL a writer mid-append; check earlier episodes survive byte-identical.

    Once at a fixed point, then at random times while it appends continuously.
    """
    path = base / f'kill_{name}'
    ctx = mp.get_context('fork')
    p = ctx.Process(target=_kill_child, args=(name, path, episodes, frames))
    p.start()
    p.join()
    eps = [synth_episode(i, frames) for i in range(episodes)]
    res = {'fixed_kill': 'ok', 'random_kills_ok': 0, 'random_kills': trials}
    try:
        assert _check(name, path, eps, frames) == episodes
    except Exception as e:  # noqa: BLE001 - the failure is the measurement
        res['fixed_kill'] = f'{type(e).__name__}: {e}'[:160]
    path = base / f'rkill_{name}'
    rng = np.random.default_rng(0)
    n = 0
    for _ in range(trials):
        p = ctx.Process(target=_append_forever, args=(name, path, eps, n))
        p.start()
        time.sleep(float(rng.uniform(0.05, 0.6)))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        try:
            n = _check(name, path, eps, frames)
            res['random_kills_ok'] += 1
        except Exception as e:  # noqa: BLE001
            res['random_kill_error'] = f'{type(e).__name__}: {e}'[:160]
            break
    return res


def du(path: Path) -> int:
    """Bytes on disk of a file or folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--frames', type=int, default=150)
    ap.add_argument('--seconds', type=float, default=4.0)
    ap.add_argument('--layouts', default=','.join(LAYOUTS))
    ap.add_argument('--noise', type=float, default=2.0,
                    help='image noise std (0: like a sim render)')
    args = ap.parse_args()
    eps = [synth_episode(i, args.frames, args.noise) for i in range(args.episodes)]
    raw = sum(v.nbytes for e in eps for v in e.values())
    base = Path(tempfile.mkdtemp(prefix='il_ros_bench_store_'))
    out = {'episodes': args.episodes, 'frames': args.frames, 'noise': args.noise,
           'raw_mb': raw / 1e6, 'cpu_count': os.cpu_count(), 'layouts': {}}
    try:
        for name in args.layouts.split(','):
            path = base / name
            lay = LAYOUTS[name]().open_write(path)
            t0 = time.perf_counter()
            for e in eps:
                lay.append(e)
            lay.close()
            dt = time.perf_counter() - t0
            disk = du(Path(str(path) + '.h5') if name.startswith('hdf5_file') else path)
            r = {'append_mb_s': raw / 1e6 / dt, 'append_ms_per_episode': 1e3 * dt / len(eps),
                 'size_mb': disk / 1e6, 'ratio': raw / disk}
            for w in (1, 2):
                r[f'windows_s_{w}proc'] = read_rate(name, path, args.frames, args.seconds, w)
            r['robustness'] = robustness(name, base, args.frames)
            out['layouts'][name] = r
            print(name, json.dumps(r), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
