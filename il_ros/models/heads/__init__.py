"""Action heads: core features ``(N, F)`` -> action chunks ``(N, Tp, A)`` in normalized units.

Interface of a head (registered under kind ``'head'``; constructor deps ``in_dim``,
``action_dim``, ``horizon`` = Tp):

- ``loss(features (N, F), target_actions (N, Tp, A), mask (N, Tp) bool, weight (N,))``:
  a scalar; ``mask`` is True where a target counts (False: padding), ``weight`` scales each
  sample (label weights). See :func:`il_ros.models.heads.base.reduce_loss`.
- ``sample(features (N, F), generator=None) -> (N, Tp, A)``: the actions to execute;
  every random draw uses ``generator``.
"""
from il_ros.models.heads import diffusion, gaussian, gmm, mse  # noqa: F401 - registers them
