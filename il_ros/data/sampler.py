"""Training windows over a dataset store: a ``torch.utils.data.Dataset`` and episode splits.

Sample ``i`` is frame ``t`` of one episode (every frame of every selected episode is one
sample). Its item is::

    {'obs': {key: (To, ...)},   # frames t-To+1 .. t; before the episode start the first
                                # frame is repeated
     'action': (Tp, A),         # actions t .. t+Tp-1; past the end the last one is repeated
     'action_pad': (Tp,) bool,  # True where the action was padded (past the episode end,
                                # or with chunk_by_source past a change of control)
     'weight': () float32}      # label_weights[label at t]

With ``obs_aligned_actions=True`` (history cores that predict at every obs frame, e.g. an
LSTM trained on ``seq_len`` windows) the item also has::

     'action_seq': (To, A),     # the action at each obs frame t-To+1 .. t (frame 0's
                                # action before the episode start)
     'obs_pad': (To,) bool      # True where the obs frame was padded (before the start)

Images stay ``(To, H, W, 3)`` uint8; float conversion, cropping and jitter run on the batch
(il_ros.data.augment). Data access (``cache``):

- ``'all'``: every needed key of the selected episodes is loaded into RAM once, in the
  parent process, so forked DataLoader workers share it copy-on-write;
- ``'lowdim'``: non-image keys in RAM, images read from the HDF5 files per sample
  (files opened lazily in each worker process);
- ``'auto'`` (default): ``'all'`` when the images fit in ``max_cache_bytes``, else
  ``'lowdim'``. See docs/dataset.md for the measured speeds of both.

``chunk_by_source``: a chunk also ends where control changes hands within an episode, as
the frame labels tell it: expert actions (demo, intervention), the policy's own (policy,
pre_intervention) and hold. A correction's chunk then holds the person's actions only, not
the policy's after the hand-back, and is padded and masked like an episode end.

Weights: ``weight`` is meant for the loss; :attr:`WindowDataset.sample_weights` (the same
numbers, one per sample) is for ``WeightedRandomSampler``. Use one of the two, not both,
or the label weighting is applied twice.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from il_ros import keys
from il_ros.data.store import Dataset, is_image_key, LABEL_KEY
from il_ros.keys import LABEL_NAMES

CACHE_MODES = ('auto', 'all', 'lowdim')
SOURCE_OF_LABEL = {keys.SOURCE_DEMO: 0, keys.SOURCE_INTERVENTION: 0, keys.SOURCE_POLICY: 1,
                   keys.SOURCE_PRE_INTERVENTION: 1, keys.SOURCE_HOLD: 2}
"""Who produced a frame's action, by label: an expert, the policy, or nobody (hold)."""


def split_episodes(n: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split episode indices ``0..n-1`` into sorted (train, val) lists, by episode.

    Deterministic for the same ``(n, val_fraction, seed)``. The validation set gets
    ``round(n * val_fraction)`` episodes, at least one when ``val_fraction > 0`` and
    ``n > 1``, and never all of them.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    if n < 0:
        raise ValueError(f'n must be >= 0, got {n}')
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def _unbatch(b: dict, j: int) -> dict:
    return {k: ({kk: vv[j] for kk, vv in v.items()} if k == 'obs' else v[j])
            for k, v in b.items()}


class WindowDataset(torch.utils.data.Dataset):
    """Observation/action windows of a dataset, padded at episode edges (see module doc)."""

    def __init__(self, dataset: Dataset | str, obs_keys: list[str], obs_horizon: int = 2,
                 action_horizon: int = 16, episodes: list[int] | None = None,
                 label_weights: dict[str, float] | None = None, action_key: str = keys.ACTION,
                 cache: str = 'auto', max_cache_bytes: int = 4 << 30,
                 default_weight: float = 1.0, obs_aligned_actions: bool = False,
                 chunk_by_source: bool = False):
        """Index every frame of ``episodes`` (default: all) of ``dataset``.

        ``label_weights``: label name -> weight; labels not named get ``default_weight``.
        ``obs_aligned_actions``: add 'action_seq' and 'obs_pad' (see module doc).
        ``chunk_by_source``: end chunks where control changes hands (see module doc).
        """
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        ds = self.dataset
        if obs_horizon < 1 or action_horizon < 1:
            raise ValueError(f'horizons must be >= 1, got To={obs_horizon} '
                             f'Tp={action_horizon}')
        missing = [k for k in [*obs_keys, action_key] if k not in ds.shapes]
        if missing:
            raise KeyError(f'{missing} not in dataset {ds.path} (keys: {ds.keys})')
        if cache not in CACHE_MODES:
            raise ValueError(f'cache must be one of {CACHE_MODES}, got {cache!r}')
        self.obs_keys, self.action_key = list(obs_keys), action_key
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.obs_aligned_actions = bool(obs_aligned_actions)
        eps = np.arange(ds.num_episodes) if episodes is None else np.asarray(episodes, int)
        if eps.size and (eps.min() < 0 or eps.max() >= ds.num_episodes):
            raise IndexError(f'episodes must be in [0, {ds.num_episodes}); got {eps.tolist()}')
        self.episodes = eps
        lengths = ds.episode_lengths[eps]
        self._len_of = lengths                                 # (E,)
        self._base = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (E,)
        self._pos = np.repeat(np.arange(eps.size), lengths)    # (N,) position in eps
        self._t = (np.arange(int(lengths.sum())) - np.repeat(self._base, lengths))  # (N,)
        image_bytes = sum(int(np.prod(ds.shapes[k])) * int(lengths.sum())
                          for k in self.obs_keys if is_image_key(k))
        if cache == 'auto':
            cache = 'all' if image_bytes <= max_cache_bytes else 'lowdim'
        self.cache = cache
        ram_keys = [k for k in dict.fromkeys([*self.obs_keys, action_key])
                    if cache == 'all' or not is_image_key(k)]
        self._ram = {k: self._load(k) for k in ram_keys}
        labels = None                                          # (N,) label ids, read once
        if LABEL_KEY in ds.shapes and (label_weights or chunk_by_source):
            labels = self._ram[LABEL_KEY] if LABEL_KEY in self._ram else self._load(LABEL_KEY)
        self.sample_weights = self._weights(label_weights, default_weight, labels)  # (N,)
        self._chunk_last = (self._source_ends(labels) if chunk_by_source
                            and labels is not None else None)         # (N,) or None

    def _load(self, key: str) -> np.ndarray:
        ds = self.dataset
        out = np.empty((int(self._len_of.sum()),) + ds.shapes[key], ds.dtypes[key])
        for pos, ep in enumerate(self.episodes):
            lo = self._base[pos]
            out[lo:lo + self._len_of[pos]] = ds.read(key, int(ep), 0, int(self._len_of[pos]))
        return out

    def _source_ends(self, labels: np.ndarray) -> np.ndarray:
        """Per sample: the in-episode index of the last frame of its run of one source."""
        source = np.array([SOURCE_OF_LABEL[name] for name in LABEL_NAMES])[labels]  # (N,)
        n = len(self)
        end = np.zeros(n, bool)
        end[:-1] = source[1:] != source[:-1]
        end[np.cumsum(self._len_of) - 1] = True                # every episode's last frame
        ends = np.flatnonzero(end)
        return ends[np.searchsorted(ends, np.arange(n))] - np.repeat(self._base, self._len_of)

    def _weights(self, label_weights, default_weight, labels) -> np.ndarray:
        n = len(self)
        if not label_weights:
            return np.full(n, float(default_weight))
        unknown = sorted(set(label_weights) - set(LABEL_NAMES))
        if unknown:
            raise ValueError(f'label_weights names unknown label(s) {unknown}; '
                             f'labels are {list(LABEL_NAMES)}')
        bad = {k: v for k, v in label_weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f'label weights must be finite and >= 0, got {bad}')
        if LABEL_KEY not in self.dataset.shapes:
            raise KeyError(f'label_weights need a {LABEL_KEY!r} key; dataset '
                           f'{self.dataset.path} has {self.dataset.keys}')
        table = np.array([label_weights.get(name, default_weight) for name in LABEL_NAMES],
                         dtype=np.float64)
        return table[labels]

    def __len__(self) -> int:
        return int(self._t.size)

    def _frames(self, key: str, pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Frames ``idx`` (B, K), already clipped to their episodes ``pos`` (B,)."""
        if key in self._ram:
            return self._ram[key][self._base[pos][:, None] + idx]            # (B, K, ...)
        out = np.empty(idx.shape + self.dataset.shapes[key], self.dataset.dtypes[key])
        for j, (p, row) in enumerate(zip(pos.tolist(), idx)):
            lo, hi = int(row.min()), int(row.max()) + 1
            out[j] = self.dataset.read(key, int(self.episodes[p]), lo, hi)[row - lo]
        return out

    def batch(self, indices) -> dict:
        """Return the windows of samples ``indices``, stacked.

        obs (B, To, ...), action (B, Tp, A), action_pad (B, Tp), weight (B,) (and
        action_seq (B, To, A), obs_pad (B, To) with obs_aligned_actions); one vectorized
        gather per key.
        """
        i = np.asarray(indices, dtype=np.int64).reshape(-1)
        if i.size and (i.min() < -len(self) or i.max() >= len(self)):
            raise IndexError(f'sample index out of range [0, {len(self)})')
        pos, t = self._pos[i], self._t[i]                                     # (B,), (B,)
        last = (self._len_of[pos] - 1)[:, None]                               # (B, 1)
        obs_raw = t[:, None] + np.arange(1 - self.obs_horizon, 1)            # (B, To)
        obs_idx = np.clip(obs_raw, 0, last)                                   # (B, To)
        act_raw = t[:, None] + np.arange(self.action_horizon)                 # (B, Tp)
        act_last = last if self._chunk_last is None else self._chunk_last[i][:, None]
        out = {'obs': {k: torch.from_numpy(self._frames(k, pos, obs_idx))
                       for k in self.obs_keys},
               'action': torch.from_numpy(self._frames(self.action_key, pos,
                                                       np.minimum(act_raw, act_last))),
               'action_pad': torch.from_numpy(act_raw > act_last),
               'weight': torch.from_numpy(self.sample_weights[i].astype(np.float32))}
        if self.obs_aligned_actions:
            out['action_seq'] = torch.from_numpy(self._frames(self.action_key, pos, obs_idx))
            out['obs_pad'] = torch.from_numpy(obs_raw < 0)                    # (B, To)
        return out

    def __getitem__(self, i) -> dict:
        """Return the window of sample ``i`` (see module doc).

        A list of indices gives :meth:`batch` (what :func:`make_loader`'s batch sampler
        asks for).
        """
        if isinstance(i, (list, tuple, np.ndarray, torch.Tensor)):
            return self.batch(i)
        return _unbatch(self.batch([i]), 0)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Batched fetch used by DataLoader: one gather, then per-sample views to collate."""
        b = self.batch(indices)
        return [_unbatch(b, j) for j in range(len(indices))]

    def episode_and_frame(self, i: int) -> tuple[int, int]:
        """Return (episode index in the store, frame t) of sample ``i``."""
        return int(self.episodes[self._pos[i]]), int(self._t[i])

    def weighted_sampler(self, num_samples: int | None = None,
                         generator: torch.Generator | None = None):
        """Return a ``WeightedRandomSampler`` drawing samples by :attr:`sample_weights`."""
        return torch.utils.data.WeightedRandomSampler(
            torch.as_tensor(self.sample_weights, dtype=torch.double),
            num_samples or len(self), replacement=True, generator=generator)


def make_loader(dataset: WindowDataset, batch_size: int, shuffle: bool = True,
                drop_last: bool = True, num_workers: int = 0,
                generator: torch.Generator | None = None,
                sampler: torch.utils.data.Sampler | None = None,
                **kwargs) -> torch.utils.data.DataLoader:
    """Return a DataLoader whose workers build whole batches (``WindowDataset.batch``).

    One vectorized gather per key and no per-sample collate: several times faster than
    ``DataLoader(dataset, batch_size=...)`` (which also works, through ``__getitems__``).
    ``sampler`` (e.g. :meth:`WindowDataset.weighted_sampler`) replaces the shuffle. The
    batch order depends only on ``generator``, not on ``num_workers``.
    """
    if sampler is None:
        sampler = (torch.utils.data.RandomSampler(dataset, generator=generator) if shuffle
                   else torch.utils.data.SequentialSampler(dataset))
    batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last)
    kwargs.setdefault('persistent_workers', num_workers > 0)
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=batches,
                                       num_workers=num_workers, **kwargs)
