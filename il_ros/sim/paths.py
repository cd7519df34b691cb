"""Polyline geometry for the path-following experts and checks (numpy only)."""
from __future__ import annotations

import numpy as np


class Polyline:
    """A piecewise-linear curve through ``points`` (N, D), parametrized by arc length."""

    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, dtype=np.float64)           # (N, D)
        if self.points.ndim != 2 or len(self.points) < 2:
            raise ValueError(f'a polyline needs (N>=2, D) points, got {self.points.shape}')
        seg = np.diff(self.points, axis=0)                              # (N-1, D)
        self._seg = seg
        self._seg_len = np.linalg.norm(seg, axis=1)                     # (N-1,)
        self.cum = np.concatenate([[0.0], np.cumsum(self._seg_len)])    # (N,)
        self.length = float(self.cum[-1])

    def nearest(self, p: np.ndarray, start: int = 0, stop: int | None = None
                ) -> tuple[float, float]:
        """(distance, arc length) of the point of segments ``start..stop-1`` nearest ``p``."""
        stop = len(self._seg) if stop is None else min(stop, len(self._seg))
        a = self.points[start:stop]                                     # (S, D)
        seg, ln = self._seg[start:stop], self._seg_len[start:stop]
        t = np.einsum('ij,ij->i', p - a, seg) / np.maximum(ln ** 2, 1e-12)
        t = np.clip(t, 0.0, 1.0)
        d = np.linalg.norm(a + t[:, None] * seg - p, axis=1)
        i = int(np.argmin(d))
        return float(d[i]), float(self.cum[start + i] + t[i] * ln[i])

    def at(self, s: float) -> np.ndarray:
        """Return the point at arc length ``s`` (clamped to the ends)."""
        s = min(max(s, 0.0), self.length)
        i = int(np.searchsorted(self.cum, s, side='right') - 1)
        i = min(i, len(self._seg) - 1)
        t = (s - self.cum[i]) / max(self._seg_len[i], 1e-12)
        return self.points[i] + t * self._seg[i]

    def resample(self, n: int) -> np.ndarray:
        """(n, D) points evenly spaced in arc length, ends included."""
        return np.array([self.at(s) for s in np.linspace(0.0, self.length, n)])


def catmull_rom(points: np.ndarray, samples: int = 16, alpha: float = 0.5) -> np.ndarray:
    """Sample a (centripetal by default) Catmull-Rom spline through ``points`` (N, D).

    Returns ((N-1) * samples + 1, D) points; the curve passes through every input point,
    which sit at rows ``k * samples``.
    """
    p = np.asarray(points, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])           # (N+2, D)
    out = []
    for k in range(len(p) - 1):
        p0, p1, p2, p3 = ext[k:k + 4]
        t0 = 0.0
        t1 = t0 + np.linalg.norm(p1 - p0) ** alpha
        t2 = t1 + np.linalg.norm(p2 - p1) ** alpha
        t3 = t2 + np.linalg.norm(p3 - p2) ** alpha
        for t in np.linspace(t1, t2, samples, endpoint=False):
            a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
            a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
            a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
            b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
            b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
            out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    out.append(p[-1])
    return np.array(out)
