"""Per-label sample weights for learning from interventions (TrainConfig.weighting).

Frames carry a label (demo, policy, intervention, pre_intervention, hold; see
il_ros.data.convert). A scheme turns the label counts of the training episodes into one
weight per label, which the sampler gives every frame (``batch['weight']``, used by the
loss):

- ``uniform``: every label 1 (times ``label_weights``).
- ``iwr`` (Intervention Weighted Regression, Mandlekar et al. 2020): the intervention
  frames are upweighted so that they carry a share ``s`` of the total weight and the other
  frames ``1 - s``: ``w_int = s N / n_int``, ``w_rest = (1 - s) N / n_rest``. The paper's
  rule is ``s = 1/2`` however few the interventions are; here ``s`` is bounded by
  ``max_share`` (TrainConfig.max_intervention_share): ``s = clip(n_int / N, max_share,
  1/2)``. With a round's few hundred corrective frames against thousands of demo frames,
  half the loss on them made the policy overfit to the odd states where takeovers happen
  and collapse (docs/experiments/hg-dagger.md); ``max_share = 0.5`` is the paper's rule.
  Corrections keep at least their uniform share up to half, and never carry more.
- ``sirius`` (Liu et al. 2022): as ``iwr``, and the pre-intervention frames (what the policy
  did just before a person had to take over: likely bad actions) are downweighted by
  ``pre_intervention_weight`` within the rest.

``label_weights`` (TrainConfig) multiply into every scheme: ``{hold: 0}`` drops the HOLD
frames (the arm standing still while the controller primed) before the balancing. ``N``
and the counts are weighted by them, so the total weight of the training set stays
``sum_l label_weight_l * n_l``: the loss scale does not change with the scheme. A scheme
that has nothing to balance (no intervention frames, or nothing else) is uniform.
"""
from __future__ import annotations

import math

import numpy as np

from il_ros import keys
from il_ros.data.store import LABEL_KEY
from il_ros.keys import LABEL_NAMES

SCHEMES = ('uniform', 'iwr', 'sirius')
MAX_SHARE = 0.5
"""IWR's balance: the intervention frames never carry more than half the total weight."""
DEFAULT_MAX_SHARE = 0.25
"""TrainConfig.max_intervention_share's default (docs/experiments/hg-dagger.md)."""


def label_counts(dataset, episodes) -> dict[str, int]:
    """Frames per label over ``episodes`` of a dataset store (all labels, zeros included)."""
    counts = np.zeros(len(LABEL_NAMES), np.int64)
    if LABEL_KEY in dataset.shapes:
        for ep in episodes:
            n = int(dataset.episode_lengths[ep])
            counts += np.bincount(dataset.read(LABEL_KEY, int(ep), 0, n),
                                  minlength=len(LABEL_NAMES))[:len(LABEL_NAMES)]
    else:                       # no labels stored: every frame is a demonstration
        counts[LABEL_NAMES.index(keys.SOURCE_DEMO)] = sum(
            int(dataset.episode_lengths[ep]) for ep in episodes)
    return {name: int(c) for name, c in zip(LABEL_NAMES, counts)}


def check_max_share(max_share) -> None:
    """ValueError naming ``max_intervention_share`` unless it is in (0, MAX_SHARE]."""
    if not (isinstance(max_share, (int, float)) and 0 < max_share <= MAX_SHARE):
        raise ValueError(f'max_intervention_share must be in (0, {MAX_SHARE}], '
                         f'got {max_share!r}')


def scheme_weights(scheme: str, counts: dict[str, int],
                   label_weights: dict[str, float] | None = None,
                   pre_intervention_weight: float = 0.1,
                   max_share: float = DEFAULT_MAX_SHARE) -> dict[str, float]:
    """Weight per label (every label named) for ``scheme`` given the label ``counts``.

    ``max_share``: the most of the total weight that upweighting may give the intervention
    frames (``iwr`` / ``sirius``; in (0, 0.5], 0.5 being the papers' equal split).
    """
    if scheme not in SCHEMES:
        raise ValueError(f'weighting must be one of {SCHEMES}, got {scheme!r}')
    if not (math.isfinite(pre_intervention_weight) and pre_intervention_weight >= 0):
        raise ValueError(f'pre_intervention_weight must be finite and >= 0, '
                         f'got {pre_intervention_weight}')
    check_max_share(max_share)
    base = {name: float((label_weights or {}).get(name, 1.0)) for name in LABEL_NAMES}
    if scheme == 'uniform':
        return base
    inter = keys.SOURCE_INTERVENTION
    rel = dict(base)
    if scheme == 'sirius':
        rel[keys.SOURCE_PRE_INTERVENTION] *= pre_intervention_weight
    total = sum(base[name] * counts.get(name, 0) for name in LABEL_NAMES)
    n_int = rel[inter] * counts.get(inter, 0)
    n_rest = sum(rel[name] * counts.get(name, 0) for name in LABEL_NAMES if name != inter)
    if n_int <= 0 or n_rest <= 0:
        return rel if scheme == 'sirius' else base
    share = min(max(n_int / (n_int + n_rest), max_share), MAX_SHARE)
    out = {}
    for name in LABEL_NAMES:
        mass = share * total / n_int if name == inter else (1.0 - share) * total / n_rest
        out[name] = rel[name] * mass
    return out


def group_shares(weights: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    """Fraction of the total weight that each label carries (for reports and tests)."""
    mass = {name: weights[name] * counts.get(name, 0) for name in weights}
    total = sum(mass.values())
    return {name: (m / total if total > 0 else 0.0) for name, m in mass.items()}
