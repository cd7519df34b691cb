"""The training dataset store: one HDF5 file per episode plus a JSON manifest.

Layout of a dataset folder (see docs/dataset.md for the zarr-vs-HDF5 measurements)::

    manifest.json            format, schema (per-frame shape and dtype of every key), label
                             codes, the committed episodes (file, length, source_id, meta,
                             checksum) and the normalization stats
    episodes/ep_000000.h5    one HDF5 file per episode: a dataset per key ('image/front' is
                             group 'image', dataset 'front'); images chunked one frame per
                             chunk; per-episode moments as attributes of each dataset

Design decisions:

- **Crash safety by construction.** An episode is written to ``ep_N.h5.tmp``, fsynced and
  renamed; only then is the manifest rewritten (temp file + ``os.replace``). A writer killed
  at any point leaves every committed episode untouched (old files are never opened for
  writing) and at worst an orphan file that the next append overwrites.
- **Determinism.** Arrays are stored as given (no conversion timestamps; HDF5 object time
  tracking off), and stats are merged from per-episode moments in episode order, so the
  same episodes appended in the same order give byte-identical arrays and stats.
- **Append only.** ``append_episode`` never rewrites old episodes; ``close`` merges the
  per-episode moments stored in each file into the stats (no old frames are re-read).
- **Strict schema.** The first episode fixes the keys, per-frame shapes and dtypes; later
  episodes must match. Images are ``(T, H, W, 3)`` uint8; float arrays must be finite.
- **Checksums.** Each committed episode's manifest entry holds ``checksum``:
  ``'sha256:<hex>'`` of the file's bytes (:func:`file_checksum`), so a file changed or
  damaged after it was written is detected (il_ros.data.validate checks it before
  training). Episodes written before checksums existed have none and still open. sha256
  because it is the fastest of hashlib's hashes on CPUs with SHA instructions (x86 SHA-NI,
  ARMv8 crypto): 0.83 GB/s here against 0.47 GB/s for blake2b, 4% of the write time
  (bench/dataset_check.py, docs/training.md).
- **Readers** open files lazily and per process (safe across DataLoader worker forks).
"""
from __future__ import annotations

from collections import OrderedDict
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from il_ros import keys
from il_ros.fsio import atomic_write_json, fsync_dir
from il_ros.data.stats import (merge_moments, moments, stats_from_json, stats_from_moments,
                               stats_to_json)

FORMAT = 'il_ros.dataset/1'
MANIFEST = 'manifest.json'
EPISODE_DIR = 'episodes'
LABEL_KEY = 'label'              # (T,) uint8 codes of keys.LABEL_NAMES
TIME_KEY = 'time'                # (T,) float64 seconds of each control tick
LABEL_CODES = {name: code for code, name in enumerate(keys.LABEL_NAMES)}
IMAGE_COMPRESSION = 'lzf'        # default; fast to read, ~2x on clean sim renders
_MAX_OPEN_FILES = 128            # per-process LRU of open episode files
CHECKSUM_ALGO = 'sha256'         # see "Checksums" above; a checksum names its algorithm


class StoreError(RuntimeError):
    """A dataset path is missing, corrupt, or an episode does not fit the schema."""


def is_image_key(key: str) -> bool:
    """Return whether ``key`` is a camera key ('image/<cam>')."""
    return key.startswith(keys.OBS_IMAGE_PREFIX)


def encode_labels(labels) -> np.ndarray:
    """Label names (sequence of str) -> ``(T,)`` uint8 codes; unknown names raise."""
    names = list(labels)
    bad = sorted(set(names) - set(LABEL_CODES))
    if bad:
        raise ValueError(f'unknown label(s) {bad}; known: {list(keys.LABEL_NAMES)}')
    return np.array([LABEL_CODES[n] for n in names], dtype=np.uint8)


def decode_labels(codes: np.ndarray) -> list[str]:
    """``(T,)`` uint8 codes -> label names."""
    return [keys.LABEL_NAMES[int(c)] for c in codes]


def file_checksum(path, algorithm: str = CHECKSUM_ALGO) -> str:
    """Return ``'<algorithm>:<hex>'`` of the bytes of the file at ``path`` (a hashlib name)."""
    with open(path, 'rb') as f:
        digest = hashlib.file_digest(f, algorithm)
    return f'{algorithm}:{digest.hexdigest()}'


def _read_manifest(path: Path) -> dict:
    man = path / MANIFEST
    if path.exists() and not path.is_dir():
        raise StoreError(f'{path}: not a dataset (a file, not a dataset folder)')
    if not path.is_dir():
        raise StoreError(f'{path}: no dataset here (folder does not exist)')
    if not man.is_file():
        raise StoreError(f'{path}: not an il_ros dataset (no {MANIFEST})')
    try:
        data = json.loads(man.read_text())
    except ValueError as e:
        raise StoreError(f'{man}: corrupt manifest: {e}') from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise StoreError(f'{man}: not an il_ros dataset manifest (format '
                         f'{data.get("format") if isinstance(data, dict) else None!r}, '
                         f'expected {FORMAT!r})')
    return data


def stat_keys(schema: dict) -> list[str]:
    """Keys of ``schema`` (manifest form) that have stats: numeric, all but the label."""
    return [k for k in sorted(schema) if k != LABEL_KEY
            and np.dtype(schema[k]['dtype']).kind in 'fiub']


class _EpisodeFiles:
    """Read access to committed episode files; lazily opened, per process, LRU-capped."""

    def __init__(self, root: Path, files: list[str]):
        self.root, self.files = root, files
        self._open: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    def get(self, ep: int) -> h5py.File:
        if self._pid != os.getpid():      # forked: the parent's handles are not ours
            self._open, self._pid = OrderedDict(), os.getpid()
        f = self._open.get(ep)
        if f is None:
            path = self.root / self.files[ep]
            try:
                f = h5py.File(path, 'r')
            except OSError as e:
                raise StoreError(f'{path}: cannot open episode {ep}: {e}') from None
            self._open[ep] = f
            if len(self._open) > _MAX_OPEN_FILES:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(ep)
        return f

    def close(self) -> None:
        if self._pid == os.getpid():
            for f in self._open.values():
                f.close()
        self._open = OrderedDict()

    def __getstate__(self):
        return {'root': self.root, 'files': self.files}

    def __setstate__(self, state):
        self.__init__(state['root'], state['files'])


def episode_moments(f: h5py.File, names: list[str]) -> dict[str, dict]:
    """The per-episode moments (count, mean, m2, min, max) stored with each key of ``names``."""
    return {k: {s: np.asarray(f[k].attrs[s], dtype=np.float64)
                for s in ('count', 'mean', 'm2', 'min', 'max')} for k in names}


def merged_stats(moments_per_episode) -> dict:
    """Stats (il_ros.data.stats) from per-episode moments, merged in the order given."""
    acc: dict[str, dict] = {}
    for ep_moments in moments_per_episode:
        for k, m in ep_moments.items():
            acc[k] = m if k not in acc else merge_moments(acc[k], m)
    return {k: stats_from_moments(m) for k, m in acc.items()}


def _merged_stats(files: _EpisodeFiles, episodes, schema: dict) -> dict:
    keys_ = stat_keys(schema)
    return merged_stats(episode_moments(files.get(ep), keys_) for ep in episodes)


class DatasetWriter:
    """Create a dataset folder or open one for appending episodes.

    Only one writer may hold a dataset at a time (an advisory lock, released when the
    process ends, however it ends). Use as a context manager or call :meth:`close`, which
    stores the normalization stats over all episodes.
    """

    def __init__(self, path, create: bool = True, compression: str | None = IMAGE_COMPRESSION):
        """Open ``path`` for appending; create it when ``create`` and it does not exist.

        ``compression`` applies to image keys: 'lzf' (default), 'gzip' or None.
        """
        import fcntl
        self.path = Path(path)
        self.compression = compression
        if (self.path / MANIFEST).exists() or not create:
            self._man = _read_manifest(self.path)
        else:
            if self.path.exists() and not self.path.is_dir():
                raise StoreError(f'{self.path}: exists and is not a folder')
            (self.path / EPISODE_DIR).mkdir(parents=True, exist_ok=True)
            self._man = {'format': FORMAT, 'schema': {}, 'episodes': [], 'stats': {},
                         'stats_episodes': 0, 'label_names': list(keys.LABEL_NAMES)}
        self._lock = open(self.path / '.writer.lock', 'w')  # noqa: SIM115 - held until close
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f'{self.path}: another DatasetWriter has it open') from None
        if not (self.path / MANIFEST).exists():
            atomic_write_json(self.path / MANIFEST, self._man, sort_keys=True)
        self._sources = {e.get('source_id') for e in self._man['episodes']} - {None}
        self._files = _EpisodeFiles(self.path, [e['file'] for e in self._man['episodes']])
        self._closed = False

    @property
    def num_episodes(self) -> int:
        """Episodes committed so far."""
        return len(self._man['episodes'])

    def has_source(self, source_id: str) -> bool:
        """Return whether an episode with ``meta['source_id'] == source_id`` is stored."""
        return source_id in self._sources

    def append_episode(self, frames: dict[str, np.ndarray], meta: dict) -> int:
        """Validate and store one episode; returns its index.

        ``frames``: key -> ``(T, ...)`` array, the same T for all keys (see keys.py;
        'label' holds LABEL_CODES, 'time' seconds). ``meta``: a JSON-able dict; its
        'source_id', when given, must be new (see :meth:`has_source`).
        """
        if self._closed:
            raise StoreError(f'{self.path}: writer is closed')
        frames, schema = self._validate(frames)
        try:
            meta_text = json.dumps(meta, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f'episode meta is not JSON-able: {e}') from None
        sid = meta.get('source_id')
        if sid is not None and sid in self._sources:
            raise StoreError(f'{self.path}: source_id {sid!r} is already in the dataset '
                             f'(check has_source() first)')
        idx = self.num_episodes
        rel = f'{EPISODE_DIR}/ep_{idx:06d}.h5'
        final = self.path / rel
        tmp = final.with_name(final.name + '.tmp')
        length = len(next(iter(frames.values())))
        with h5py.File(tmp, 'w', track_order=True) as f:
            f.attrs['length'] = length
            f.attrs['meta'] = meta_text
            for key in sorted(frames):
                arr = frames[key]
                image = is_image_key(key)
                d = f.create_dataset(key, data=arr, track_times=False,
                                     chunks=(1,) + arr.shape[1:] if image else None,
                                     compression=self.compression if image else None)
                if key in stat_keys(schema):
                    for s, v in moments(arr, image).items():
                        d.attrs[s] = v
        with open(tmp, 'rb+') as fh:
            os.fsync(fh.fileno())
        checksum = file_checksum(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        self._man['schema'] = schema
        self._man['episodes'].append({'file': rel, 'length': length, 'source_id': sid,
                                      'meta': json.loads(meta_text), 'checksum': checksum})
        atomic_write_json(self.path / MANIFEST, self._man, sort_keys=True)
        self._files.files.append(rel)
        if sid is not None:
            self._sources.add(sid)
        return idx

    def _validate(self, frames: dict) -> tuple[dict[str, np.ndarray], dict]:
        if not isinstance(frames, dict) or not frames:
            raise ValueError('frames must be a non-empty dict of key -> (T, ...) array')
        out = {str(k): np.ascontiguousarray(v) for k, v in frames.items()}
        lengths = {k: (v.shape[0] if v.ndim else None) for k, v in out.items()}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ValueError(f'every key needs the same number of frames T; got {lengths}')
        if next(iter(lengths.values())) < 1:
            raise ValueError('an episode needs at least one frame')
        for k, v in out.items():
            if is_image_key(k) and (v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] != 3):
                raise ValueError(f'{k}: images must be (T, H, W, 3) uint8, got '
                                 f'{v.shape} {v.dtype}')
            if k == LABEL_KEY and (v.dtype != np.uint8 or v.ndim != 1
                                   or (v.size and v.max() >= len(keys.LABEL_NAMES))):
                raise ValueError(f'{k}: must be (T,) uint8 codes < {len(keys.LABEL_NAMES)} '
                                 f'(use encode_labels)')
            if v.dtype.kind == 'f' and not np.isfinite(v).all():
                bad = np.argwhere(~np.isfinite(v))[0]
                raise ValueError(f'{k}: non-finite value at frame {bad[0]}')
            if v.dtype.kind not in 'fiub':
                raise ValueError(f'{k}: dtype {v.dtype} is not numeric')
        schema = {k: {'shape': list(v.shape[1:]), 'dtype': v.dtype.str} for k, v in out.items()}
        if self._man['schema'] and schema != self._man['schema']:
            old = self._man['schema']
            diff = sorted(k for k in set(old) | set(schema) if old.get(k) != schema.get(k))
            raise StoreError(f'{self.path}: episode does not match the dataset schema for '
                             + ', '.join(f'{k} (dataset {old.get(k)}, got {schema.get(k)})'
                                         for k in diff))
        return out, schema

    def close(self) -> None:
        """Recompute the stats over all episodes, store them, release the dataset."""
        if self._closed:
            return
        try:
            n = self.num_episodes
            if self._man['stats_episodes'] != n:
                stats = _merged_stats(self._files, range(n), self._man['schema'])
                self._man['stats'] = stats_to_json(stats)
                self._man['stats_episodes'] = n
                atomic_write_json(self.path / MANIFEST, self._man, sort_keys=True)
        finally:
            self._files.close()
            self._lock.close()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Dataset:
    """Read-only view of a dataset folder.

    Attributes: ``num_episodes``, ``episode_lengths`` (int64), ``episode_starts`` (offset of
    each episode in the concatenated frames), ``keys``, ``shapes`` / ``dtypes`` (per frame),
    ``stats`` (per non-label key: min, max, mean, std; images per channel, in [0, 1] units),
    ``stat_keys`` (the keys that have stats).
    """

    def __init__(self, path, check_files: bool = True):
        """Open ``path``; raises StoreError naming the path when it is missing or corrupt.

        ``check_files``: also raise when an episode file is missing (False leaves that to
        the reader, e.g. il_ros.data.validate, which names and can skip such episodes).
        """
        self.path = Path(path)
        man = _read_manifest(self.path)
        try:
            eps = man['episodes']
            schema = man['schema']
            self.episode_lengths = np.array([int(e['length']) for e in eps], dtype=np.int64)
            files = [str(e['file']) for e in eps]
            self.keys = sorted(schema)
            self.shapes = {k: tuple(int(d) for d in schema[k]['shape']) for k in self.keys}
            self.dtypes = {k: np.dtype(schema[k]['dtype']) for k in self.keys}
            self.stat_keys = stat_keys(schema)
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f'{self.path / MANIFEST}: corrupt manifest: {e!r}') from None
        for rel in files if check_files else ():
            if not (self.path / rel).is_file():
                raise StoreError(f'{self.path}: episode file {rel} is missing')
        self._man = man
        self.num_episodes = len(eps)
        self.episode_starts = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]
                                             ).astype(np.int64)
        self.label_names = tuple(man.get('label_names', keys.LABEL_NAMES))
        self._files = _EpisodeFiles(self.path, files)
        self._stats = None

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Return the normalization stats.

        Recomputed from the per-episode moments when a writer did not close (the
        manifest's stats then cover fewer episodes).
        """
        if self._stats is None:
            if self._man.get('stats_episodes') == self.num_episodes:
                self._stats = stats_from_json(self._man['stats'])
            else:
                self._stats = _merged_stats(self._files, range(self.num_episodes),
                                            self._man['schema'])
        return self._stats

    def stats_over(self, episodes) -> dict[str, dict[str, np.ndarray]]:
        """The stats of ``episodes`` only (merged from their stored moments, in order)."""
        return _merged_stats(self._files, [int(e) for e in episodes], self._man['schema'])

    def episode_file(self, i: int) -> Path:
        """Path of episode ``i``'s HDF5 file."""
        return self.path / self._files.files[i]

    def episode_checksum(self, i: int) -> str | None:
        """Episode ``i``'s recorded checksum (``'blake2b:<hex>'``), None if it has none."""
        value = self._man['episodes'][i].get('checksum')
        return value if isinstance(value, str) else None

    def __len__(self) -> int:
        return self.num_episodes

    def read(self, key: str, ep: int, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of ``key`` in episode ``ep`` (bounds-checked)."""
        if key not in self.shapes:
            raise KeyError(f'{key!r} not in dataset {self.path} (keys: {self.keys})')
        if not 0 <= ep < self.num_episodes:
            raise IndexError(f'episode {ep} out of range [0, {self.num_episodes})')
        n = int(self.episode_lengths[ep])
        if not 0 <= start <= stop <= n:
            raise IndexError(f'frames {start}:{stop} out of range for episode {ep} '
                             f'of length {n}')
        f = self._files.get(ep)
        try:
            return f[key][start:stop]
        except (KeyError, OSError) as e:
            raise StoreError(f'{self.path / self._files.files[ep]}: cannot read {key}: '
                             f'{e}') from None

    def episode(self, i: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Every frame of episode ``i`` (only ``keys`` when given)."""
        n = int(self.episode_lengths[i]) if 0 <= i < self.num_episodes else 0
        return {k: self.read(k, i, 0, n) for k in (keys or self.keys)}

    def meta(self, i: int) -> dict:
        """Return a copy of the episode's meta dict, as given to append_episode."""
        return json.loads(json.dumps(self._man['episodes'][i]['meta']))

    def close(self) -> None:
        """Close open episode files (reads reopen them)."""
        self._files.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
