"""Action heads: core features ``(N, F)`` -> action chunks ``(N, Tp, A)`` in normalized units.

Interface of a head (registered under kind ``'head'``; constructor deps ``in_dim``,
``action_dim``, ``horizon`` = Tp):

- ``loss(features (N, F), target_actions (N, Tp, A), mask (N, Tp) bool, weight (N,))``:
  a scalar; ``mask`` is True where a target counts (False: padding), ``weight`` scales each
  sample (label weights). See :func:`il_ros.models.heads.base.reduce_loss`.
- ``sample(features (N, F), generator=None) -> (N, Tp, A)``: the actions to execute, on
  the features' device; every random draw uses ``generator``, on the generator's own device
  (the policy's is a CPU one), moved to the features' device (``base.randn``, ``rand``,
  ``multinomial``): a seed gives the same draws on the CPU and on a GPU.
"""
from il_ros.models.heads import diffusion, gaussian, gmm, mse  # noqa: F401 - registers them
