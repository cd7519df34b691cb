"""History cores: per-frame features ``(B, T, D)`` -> features for the action head.

Interface of a core (registered under kind ``'core'``):

- ``sequence``: False -> ``forward`` gives one output per window ``(B, 1, F)`` (frame
  stacking over ``obs_horizon`` frames); True -> one output per step ``(B, T, F)`` (trained
  on ``seq_len`` windows with a prediction per step, stateful at act time);
- ``forward(x (B, T, D)) -> (B, T_out, F)`` for training (zero initial state);
- ``step(x (B, T, D)) -> (B, F)`` at act time: a frame stack reads the whole history, a
  sequence core feeds only the newest frame and carries its state;
- ``reset()`` clears any carried state; ``out_dim`` is F.
"""
from il_ros.models.cores import frame_stack, lstm  # noqa: F401 - registers them
