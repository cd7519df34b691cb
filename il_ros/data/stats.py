"""Dataset statistics and the normalizers built from them.

- Moments (count, mean, M2, min, max) are computed per episode when it is stored and merged
  in episode order (Chan et al.'s parallel update), so stats over all episodes never re-read
  old frames and are deterministic for the same episodes in the same order.
- :class:`Normalizer` maps a feature to a normalized range, with two modes:

  - ``'minmax'``: ``[min, max] -> [-1, 1]`` (diffusion-policy style, for actions);
  - ``'meanstd'``: ``(x - mean) / std``;
  - ``'identity'``: unchanged.

  Both are one affine map ``y = x * scale + offset``. A constant dimension (range or std
  below ``eps``) gets scale 1 and is only shifted (to 0), never blown up by a tiny divisor.
  It works on numpy arrays and torch tensors, broadcasting the parameters over the trailing
  dimensions. ``to_dict``/``from_dict`` give a JSON-able form for checkpoints (never
  pickle).
"""
from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-6                 # stored stats never have a std below this
MODES = ('minmax', 'meanstd', 'identity')
_STAT_BLOCK = 64                 # frames per block when computing moments


def moments(arr: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """count, mean, m2, min, max over the first axis of ``arr`` (T, ...).

    ``image``: ``(T, H, W, C)`` uint8, reduced per channel in [0, 1] units (pixel / 255),
    exactly, from a 256-bin histogram per channel (an order of magnitude faster than float
    passes over every pixel). Other arrays are computed in blocks of frames, so large
    episodes never need a float64 copy.
    """
    if image and arr.dtype == np.uint8:
        flat = arr.reshape(-1, arr.shape[-1])                    # (N, C)
        hist = np.stack([np.bincount(flat[:, c], minlength=256)
                         for c in range(flat.shape[1])]).astype(np.float64)  # (C, 256)
        v = np.arange(256) / 255.0
        n = hist.sum(1)                                          # (C,)
        mean = hist @ v / n
        m2 = (hist * (v[None, :] - mean[:, None]) ** 2).sum(1)
        seen = hist > 0
        return {'count': np.float64(n[0]), 'mean': mean, 'm2': m2,
                'min': v[seen.argmax(1)], 'max': v[255 - seen[:, ::-1].argmax(1)]}
    acc = None
    for lo in range(0, len(arr), _STAT_BLOCK):
        x = arr[lo:lo + _STAT_BLOCK].astype(np.float64)
        x = x.reshape(-1, x.shape[-1]) / 255.0 if image else x
        mean = x.mean(0)
        block = {'count': np.float64(len(x)), 'mean': mean, 'm2': ((x - mean) ** 2).sum(0),
                 'min': x.min(0), 'max': x.max(0)}
        acc = block if acc is None else merge_moments(acc, block)
    return acc


def chunk_offsets(action: np.ndarray, joint_pos: np.ndarray, action_idx, joint_idx,
                  horizon: int) -> np.ndarray:
    """Every action target a relative-action policy trains on, from one episode.

    ``action`` (T, A), ``joint_pos`` (T, J): for each frame t and each k < ``horizon``
    with t + k < T, ``action[t + k]`` with the ``action_idx`` entries minus
    ``joint_pos[t, joint_idx]`` (the joints measured when the chunk is planned). Returns
    (N, A) float64.
    """
    a = np.asarray(action, np.float64)
    q = np.asarray(joint_pos, np.float64)
    out = []
    for k in range(min(int(horizon), len(a))):
        rel = a[k:].copy()
        rel[:, action_idx] -= q[:len(a) - k][:, joint_idx]
        out.append(rel)
    return np.concatenate(out) if out else np.zeros((0, a.shape[-1]))


def merge_moments(a: dict, b: dict) -> dict:
    """Merge two moment sets (Chan et al.); the result depends on order only in rounding."""
    n = a['count'] + b['count']
    delta = b['mean'] - a['mean']
    return {'count': n, 'mean': a['mean'] + delta * (b['count'] / n),
            'm2': a['m2'] + b['m2'] + delta ** 2 * (a['count'] * b['count'] / n),
            'min': np.minimum(a['min'], b['min']), 'max': np.maximum(a['max'], b['max'])}


def stats_from_moments(m: dict) -> dict[str, np.ndarray]:
    """min, max, mean, std (population, floored at STD_FLOOR) from merged moments."""
    std = np.maximum(np.sqrt(np.maximum(m['m2'], 0.0) / m['count']), STD_FLOOR)
    return {'min': np.asarray(m['min'], np.float64), 'max': np.asarray(m['max'], np.float64),
            'mean': np.asarray(m['mean'], np.float64), 'std': np.asarray(std, np.float64)}


def stats_to_json(stats: dict) -> dict:
    """``{key: {stat: array}}`` -> nested lists (exact: floats keep their repr)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def stats_from_json(obj: dict) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`stats_to_json` (float64 arrays)."""
    return {k: {s: np.asarray(v, dtype=np.float64) for s, v in d.items()}
            for k, d in obj.items()}


class Normalizer:
    """Affine normalizer ``y = x * scale + offset`` built from dataset stats."""

    def __init__(self, scale, offset, mode: str = 'identity'):
        """Use :meth:`from_stats` or :meth:`from_dict`; parameters are float arrays."""
        if mode not in MODES:
            raise ValueError(f'normalizer mode {mode!r} unknown; use one of {MODES}')
        self.mode = mode
        self.scale = np.asarray(scale, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        if self.scale.shape != self.offset.shape:
            raise ValueError(f'scale {self.scale.shape} and offset {self.offset.shape} differ')
        if not (np.isfinite(self.scale).all() and np.isfinite(self.offset).all()
                and (self.scale != 0).all()):
            raise ValueError('normalizer parameters must be finite with non-zero scale')

    @classmethod
    def from_stats(cls, stats: dict, mode: str = 'minmax', eps: float = 1e-4) -> Normalizer:
        """Build from one key's stats (min/max/mean/std).

        Dimensions whose range (minmax) or std (meanstd) is below ``eps`` are constant:
        scale 1, shifted to 0.
        """
        if mode == 'minmax':
            lo = np.asarray(stats['min'], np.float64)
            rng = np.asarray(stats['max'], np.float64) - lo
            const = rng < eps
            scale = np.where(const, 1.0, 2.0 / np.where(const, 1.0, rng))
            offset = np.where(const, -lo, -1.0 - scale * lo)
        elif mode == 'meanstd':
            mean = np.asarray(stats['mean'], np.float64)
            std = np.asarray(stats['std'], np.float64)
            scale = np.where(std < eps, 1.0, 1.0 / np.maximum(std, eps))
            offset = -mean * scale
        elif mode == 'identity':
            shape = np.shape(stats.get('mean', stats.get('min', 0.0)))
            scale, offset = np.ones(shape), np.zeros(shape)
        else:
            raise ValueError(f'normalizer mode {mode!r} unknown; use one of {MODES}')
        return cls(scale, offset, mode)

    def _params(self, x):
        if isinstance(x, np.ndarray) or np.isscalar(x):
            dtype = x.dtype if isinstance(x, np.ndarray) and x.dtype.kind == 'f' \
                else np.float32
            return self.scale.astype(dtype), self.offset.astype(dtype)
        import torch
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return (torch.as_tensor(self.scale, dtype=dtype, device=x.device),
                torch.as_tensor(self.offset, dtype=dtype, device=x.device))

    def normalize(self, x):
        """``(..., *shape)`` array or tensor -> normalized, same type and float dtype."""
        scale, offset = self._params(x)
        return x * scale + offset

    def unnormalize(self, y):
        """Inverse of :meth:`normalize`."""
        scale, offset = self._params(y)
        return (y - offset) / scale

    def channels_first(self) -> Normalizer:
        """Return this normalizer for ``(..., C, H, W)`` images (params (C, 1, 1))."""
        shape = self.scale.shape + (1, 1)
        return Normalizer(self.scale.reshape(shape), self.offset.reshape(shape), self.mode)

    def to_dict(self) -> dict:
        """JSON-able form (lists of floats)."""
        return {'mode': self.mode, 'shape': list(self.scale.shape),
                'scale': self.scale.ravel().tolist(), 'offset': self.offset.ravel().tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed dict."""
        try:
            shape = tuple(int(s) for s in d['shape'])
            scale = np.asarray(d['scale'], np.float64).reshape(shape)
            offset = np.asarray(d['offset'], np.float64).reshape(shape)
            return cls(scale, offset, d['mode'])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f'not a normalizer dict: {e!r}') from None

    def __repr__(self) -> str:
        return f'Normalizer({self.mode!r}, shape={self.scale.shape})'


def normalizers_from_stats(stats: dict, modes: dict[str, str],
                           eps: float = 1e-4) -> dict[str, Normalizer]:
    """One normalizer per key in ``modes`` (key -> mode); a missing key raises KeyError."""
    missing = sorted(set(modes) - set(stats))
    if missing:
        raise KeyError(f'no stats for {missing}; stats have {sorted(stats)}')
    return {k: Normalizer.from_stats(stats[k], m, eps) for k, m in modes.items()}
