"""Episode checks before training: a bad episode is named (file, key, what), not trained on.

:func:`check_dataset` looks at every episode of a :class:`~il_ros.data.store.Dataset`, in
two passes:

1. per file: it exists; when the manifest records a checksum, the file's bytes hash to it
   (the file was not changed or damaged after it was written; a mismatch is reported
   together with the first problem in the content, if any); it opens as HDF5; it holds
   every schema key with shape ``(T, *shape)`` and the schema's dtype, and the
   per-episode moments of every key that has stats. The values of every key that is not
   an image are read: floats must be finite, labels known codes, and no value may exceed
   ``max_abs`` in magnitude (the time key excepted: it holds clock seconds);
2. per value range: every such key lies within the dataset's recorded ``[min, max]``
   (merged from the stored moments of the episodes that passed pass 1), widened by
   ``tolerance`` of the range. A file edited after it was written keeps the moments of
   its original values, so values written into it later fall outside.

Images are checked for shape and dtype only: their bytes are covered by the checksum. An
episode written before checksums existed (no ``checksum`` in its manifest entry) gets
every check but the byte comparison; :attr:`DatasetCheck.note` says so once. The first
problem found in an episode is the one reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
from pathlib import Path
import time

import h5py
import numpy as np

from il_ros.data.store import (Dataset, episode_moments, file_checksum, is_image_key,
                               LABEL_KEY, merged_stats, TIME_KEY)

MAX_ABS = 1e6
"""Default sane magnitude of a recorded value (radians, metres, newtons, scaled actions)."""
TOLERANCE = 0.05
"""Default widening of the recorded ``[min, max]``, as a fraction of the range."""


@dataclass(frozen=True)
class EpisodeProblem:
    """What is wrong with one episode: its index, file (relative), key (None: the file)."""

    episode: int
    file: str
    key: str | None
    what: str

    def __str__(self) -> str:
        """``episode 3 (episodes/ep_000003.h5): action: non-finite value nan at ...``."""
        key = f': {self.key}' if self.key else ''
        return f'episode {self.episode} ({self.file}){key}: {self.what}'

    def to_dict(self) -> dict:
        """JSON-able form (for a run's summary)."""
        return {'episode': self.episode, 'file': self.file, 'key': self.key,
                'problem': self.what}


@dataclass
class DatasetCheck:
    """The result of :func:`check_dataset`."""

    path: Path
    episodes: list[int]
    """The episodes checked."""
    bad: list[EpisodeProblem] = field(default_factory=list)
    """One problem per bad episode, in episode order."""
    unchecksummed: int = 0
    """Checked episodes that have no recorded checksum (written before checksums)."""
    seconds: float = 0.0

    @property
    def good(self) -> list[int]:
        """The checked episodes with no problem, in order."""
        bad = {p.episode for p in self.bad}
        return [e for e in self.episodes if e not in bad]

    @property
    def note(self) -> str | None:
        """One line about episodes without a checksum, None when every one has one."""
        if not self.unchecksummed:
            return None
        return (f'{self.path}: {self.unchecksummed} of {len(self.episodes)} episodes have no '
                f'checksum (written before episode checksums were recorded): their values '
                f'were checked, their bytes could not be verified')

    def to_dict(self) -> dict:
        """JSON-able summary: counts, seconds, the bad episodes."""
        return {'episodes': len(self.episodes), 'bad': [p.to_dict() for p in self.bad],
                'without_checksum': self.unchecksummed, 'seconds': round(self.seconds, 3)}


def _where(index: tuple) -> str:
    """``at frame t`` or ``at frame t, dim (d...)`` for an index into a (T, ...) array."""
    t, rest = int(index[0]), tuple(int(i) for i in index[1:])
    if not rest:
        return f'at frame {t}'
    return f'at frame {t}, dim {rest[0] if len(rest) == 1 else rest}'


def _check_values(ds: Dataset, key: str, arr: np.ndarray, max_abs: float) -> str | None:
    if key == LABEL_KEY:
        bad = np.argwhere(arr >= len(ds.label_names))
        if bad.size:
            return (f'label code {arr[tuple(bad[0])]} {_where(bad[0])} is not one of the '
                    f'{len(ds.label_names)} labels')
        return None
    if arr.dtype.kind == 'f':
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            return f'non-finite value {arr[tuple(bad[0])]} {_where(bad[0])}'
    if key != TIME_KEY and max_abs and arr.dtype.kind in 'fiu':
        big = np.argwhere(np.abs(arr.astype(np.float64)) > max_abs)
        if big.size:
            return (f'value {float(arr[tuple(big[0])]):.4g} {_where(big[0])} is beyond the '
                    f'sane magnitude {max_abs:g}')
    return None


def _check_key(ds: Dataset, f: h5py.File, key: str, n: int, max_abs: float,
               moments: dict, ranges: dict) -> str | None:
    """Check one key of an open episode file; fill ``moments`` and ``ranges`` (value min/max)."""
    obj = f.get(key)
    if obj is None:
        return 'missing from the file'
    if not isinstance(obj, h5py.Dataset):
        return 'not an array in the file'
    want = (n, *ds.shapes[key])
    if obj.shape != want:
        return f'shape {obj.shape}, expected {want}'
    if obj.dtype != ds.dtypes[key]:
        return f'dtype {obj.dtype}, expected {ds.dtypes[key]}'
    if key in ds.stat_keys:
        try:
            moments.update(episode_moments(f, [key]))
        except (KeyError, OSError, TypeError, ValueError):
            return 'its stored moments (count, mean, m2, min, max) are missing'
    if is_image_key(key):
        return None
    try:
        arr = obj[()]
    except OSError as e:
        return f'cannot be read: {e}'
    problem = _check_values(ds, key, arr, max_abs)
    if problem is None and key in ds.stat_keys and arr.size:
        ranges[key] = (arr.min(0).astype(np.float64), arr.max(0).astype(np.float64))
    return problem


def _check_file(ds: Dataset, ep: int, max_abs: float, moments: dict,
                ranges: dict) -> tuple[str | None, str, str | None] | None:
    """Pass 1 for one episode: None, or (key or None, what is wrong, checksum mismatch).

    A checksum mismatch alone is ``(None, '', mismatch)``: pass 2 may find the key.
    """
    path = ds.episode_file(ep)
    if not path.is_file():
        return None, 'the file is missing', None
    recorded = ds.episode_checksum(ep)
    changed = None
    if recorded is not None:
        algorithm = recorded.partition(':')[0]
        if algorithm not in hashlib.algorithms_available:
            return None, f'checksum {recorded[:20]}... uses an unknown hash {algorithm!r}', None
        got = file_checksum(path, algorithm)
        if got != recorded:
            changed = (f'checksum mismatch: the file changed after it was written '
                       f'({got[:20]}..., recorded {recorded[:20]}...)')
    try:
        f = h5py.File(path, 'r')
    except OSError as e:
        return None, f'cannot be opened as HDF5: {e}', changed
    with f:
        n = int(ds.episode_lengths[ep])
        for key in ds.keys:
            problem = _check_key(ds, f, key, n, max_abs, moments, ranges)
            if problem is not None:
                return key, problem, changed
    return None if changed is None else (None, '', changed)


def _range_problem(ds: Dataset, ep: int, key: str, lo_hi: tuple, bounds: dict,
                   tolerance: float) -> str | None:
    lo, hi = np.asarray(bounds['min']), np.asarray(bounds['max'])
    margin = tolerance * (hi - lo) + 1e-6 * (1.0 + np.maximum(np.abs(lo), np.abs(hi)))
    below, above = lo_hi[0] < lo - margin, lo_hi[1] > hi + margin
    if not (below.any() or above.any()):
        return None
    with h5py.File(ds.episode_file(ep), 'r') as f:
        arr = f[key][()].astype(np.float64)
    outside = np.argwhere((arr < lo - margin) | (arr > hi + margin))[0]
    d = tuple(outside[1:])
    return (f'value {arr[tuple(outside)]:.4g} {_where(outside)} is outside the dataset\'s '
            f'recorded range [{float(lo[d]):.4g}, {float(hi[d]):.4g}] (tolerance '
            f'{tolerance:g} of the range)')


def check_dataset(ds: Dataset, episodes=None, tolerance: float = TOLERANCE,
                  max_abs: float = MAX_ABS) -> DatasetCheck:
    """Check ``episodes`` (default: all) of ``ds``; see the module doc for what is checked.

    Never raises for a bad episode: the problems are in :attr:`DatasetCheck.bad`.
    """
    t0 = time.perf_counter()
    eps = list(range(ds.num_episodes)) if episodes is None else [int(e) for e in episodes]
    check = DatasetCheck(ds.path, eps)
    moments: dict[int, dict] = {}           # episode -> key -> stored moments
    ranges: dict[int, dict] = {}            # episode -> key -> (min, max) of its values
    changed: dict[int, str] = {}            # episode -> checksum mismatch, nothing else yet
    for ep in eps:
        check.unchecksummed += ds.episode_checksum(ep) is None
        moments[ep], ranges[ep] = {}, {}
        problem = _check_file(ds, ep, max_abs, moments[ep], ranges[ep])
        if problem is None:
            continue
        key, what, mismatch = problem
        if what:
            check.bad.append(EpisodeProblem(ep, _rel(ds, ep), key,
                                            what + (f'; {mismatch}' if mismatch else '')))
            del moments[ep], ranges[ep]
        else:             # its stored moments are those of the values it was written with
            changed[ep] = mismatch
    bounds = merged_stats(moments.values())
    for ep, by_key in ranges.items():
        bad = None
        for key, lo_hi in by_key.items():
            what = (_range_problem(ds, ep, key, lo_hi, bounds[key], tolerance)
                    if key in bounds else None)
            if what is not None:
                bad = EpisodeProblem(ep, _rel(ds, ep), key, what + (
                    f'; {changed[ep]}' if ep in changed else ''))
                break
        if bad is None and ep in changed:
            bad = EpisodeProblem(ep, _rel(ds, ep), None, changed[ep])
        if bad is not None:
            check.bad.append(bad)
    check.bad.sort(key=lambda p: p.episode)
    check.seconds = time.perf_counter() - t0
    return check


def _rel(ds: Dataset, ep: int) -> str:
    return ds.episode_file(ep).relative_to(ds.path).as_posix()
