"""A training run in its own process, reporting over a queue (what the trainer node starts).

:func:`run_training` is the process entry point (``multiprocessing`` spawn context). It
puts ``(kind, payload)`` tuples on ``events``:

- ``('started', {'pid', 'run_dir'})`` once the process is up;
- ``('progress', dict)``: the trainer's progress dict (see ``Trainer``), at most
  ``PROGRESS_MIN_INTERVAL_S`` apart unless an evaluation result changed (a tiny model logs
  hundreds of steps a second, more than the node should have to read);
- ``('checkpoint', path)``: each new best checkpoint;
- ``('message', line)``: a warning of the run (a skipped episode, episodes without a
  checksum);
- ``('done', summary)`` or ``('error', {'error', 'traceback'})`` last. An error of the
  run's inputs or config (a bad dataset episode, a missing path: ``TrainInputError``,
  ``ConfigError``) is one line with ``traceback`` None; anything else carries its
  traceback.

``stop`` (a multiprocessing Event) asks the run to save its resumable state and return.
"""
from __future__ import annotations

import os
import time
import traceback

PROGRESS_MIN_INTERVAL_S = 0.1
"""Least time between two progress events that carry no new evaluation result."""


class ProgressThrottle:
    """Pass a progress dict on when enough time has passed or its evaluation changed.

    ``clock`` returns seconds (injected in tests).
    """

    KEYS = ('success_rate', 'best_success')

    def __init__(self, min_interval_s: float = PROGRESS_MIN_INTERVAL_S, clock=time.monotonic):
        """Nothing sent yet: the first call sends."""
        self.min_interval_s = float(min_interval_s)
        self.clock = clock
        self._last_t = None
        self._last_eval = None

    def __call__(self, progress: dict) -> bool:
        """Whether to send ``progress`` now (and, if so, remember it as the last sent)."""
        now = self.clock()
        evals = tuple(progress.get(k) for k in self.KEYS)
        if (self._last_t is not None and evals == self._last_eval
                and now - self._last_t < self.min_interval_s):
            return False
        self._last_t, self._last_eval = now, evals
        return True


def run_training(request: dict, events, stop) -> None:
    """Load the config named in ``request``, train, report on ``events``.

    ``request``: 'config' (path or name), 'overrides' (list of key=value), 'dataset',
    'out_dir', optional 'task' (the task overlay, config/train/tasks/), 'max_minutes',
    'max_steps', 'eval_task' (None: the config's),
    'threads' (torch threads, 0: default).
    """
    try:
        import torch

        from il_ros.training.config import load_train_config
        from il_ros.training.trainer import train
        if request.get('threads'):
            torch.set_num_threads(int(request['threads']))
        cfg = load_train_config(request.get('config'), request.get('overrides') or [],
                                task=request.get('task') or None,
                                dataset=request.get('dataset') or None,
                                max_minutes=request.get('max_minutes'),
                                max_steps=request.get('max_steps'),
                                eval_task=request.get('eval_task'), progress=False)
        events.put(('started', {'pid': os.getpid(), 'run_dir': str(request['out_dir'])}))
        throttle = ProgressThrottle()
        summary = train(cfg, request['out_dir'],
                        on_checkpoint=lambda p: events.put(('checkpoint', p)),
                        on_progress=lambda d: throttle(d) and events.put(('progress', d)),
                        should_stop=stop.is_set,
                        on_message=lambda line: events.put(('message', line)))
        events.put(('done', {k: v for k, v in summary.items() if k != 'evals'}))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then the process ends
        if _is_input_error(e):
            events.put(('error', {'error': str(e), 'traceback': None}))
        else:
            events.put(('error', {'error': f'{type(e).__name__}: {e}',
                                  'traceback': traceback.format_exc()}))


def _is_input_error(e: BaseException) -> bool:
    """Whether ``e`` is a bad config or input (said in one line), not a failure to debug."""
    try:
        from il_ros.config import ConfigError
        from il_ros.training.inputs import TrainInputError
    except ImportError:
        return False
    return isinstance(e, (ConfigError, TrainInputError))
