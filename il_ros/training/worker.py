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
With ``request['nproc']`` > 1 the run is a DDP run under torchrun and the events are rank
0's, relayed unchanged (il_ros/training/ddp_worker.py); each rank is this module run as
``python -m il_ros.training.worker REQUEST_JSON`` (:func:`run_rank`).
"""
from __future__ import annotations

import json
import os
import sys
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
    'threads' (torch threads, 0: default), 'nproc' (processes; more than 1 trains with DDP
    through torchrun and relays rank 0's events: il_ros/training/ddp_worker.py).
    """
    try:
        nproc = int(request.get('nproc') or 1)
        if nproc > 1:
            from il_ros.training.ddp_worker import run_ddp
            from il_ros.training.distributed import check_batch_divides
            check_batch_divides(load_request_config({**request, 'threads': 0}).batch_size,
                                nproc)             # here: one line, before any rank starts
            run_ddp(request, events.put, stop)
            return
        cfg = load_request_config(request)
        events.put(('started', {'pid': os.getpid(), 'run_dir': str(request['out_dir'])}))
        from il_ros.training.trainer import train
        report_training(train, cfg, request['out_dir'], events.put, stop.is_set)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then the process ends
        events.put(error_event(e))


def load_request_config(request: dict):
    """Set the torch threads of ``request``; return its TrainConfig (keys: ``run_training``)."""
    import torch

    from il_ros.training.config import load_train_config
    if request.get('threads'):
        torch.set_num_threads(int(request['threads']))
    return load_train_config(request.get('config'), request.get('overrides') or [],
                             task=request.get('task') or None,
                             dataset=request.get('dataset') or None,
                             max_minutes=request.get('max_minutes'),
                             max_steps=request.get('max_steps'),
                             eval_task=request.get('eval_task'), progress=False)


def report_training(train, cfg, out_dir, send, should_stop) -> dict:
    """``train(cfg, out_dir, **hooks)`` with hooks that ``send`` the events; then 'done'."""
    throttle = ProgressThrottle()
    summary = train(cfg, out_dir,
                    on_checkpoint=lambda p: send(('checkpoint', p)),
                    on_progress=lambda d: throttle(d) and send(('progress', d)),
                    should_stop=should_stop,
                    on_message=lambda line: send(('message', line)))
    send(('done', {k: v for k, v in summary.items() if k != 'evals'}))
    return summary


def error_event(e: BaseException) -> tuple[str, dict]:
    """The 'error' event of ``e``: one line for a bad input, else with the traceback.

    Called inside the ``except`` block that caught ``e`` (the traceback is the current one).
    """
    if _is_input_error(e):
        return 'error', {'error': str(e), 'traceback': None}
    return 'error', {'error': f'{type(e).__name__}: {e}', 'traceback': traceback.format_exc()}


def _is_input_error(e: BaseException) -> bool:
    """Whether ``e`` is a bad config or input (said in one line), not a failure to debug."""
    try:
        from il_ros.config import ConfigError
        from il_ros.training.inputs import TrainInputError
    except ImportError:
        return False
    return isinstance(e, (ConfigError, TrainInputError))


def run_rank(request: dict) -> int:
    """One rank of a DDP run that :func:`run_training` started through torchrun.

    Every rank loads ``request``'s config as one process does and trains through
    il_ros.training.distributed; rank 0 reports the events of :func:`run_training` to the
    worker over its connection (il_ros/training/ddp_worker.py) and stops when told.
    Returns the exit code: 0, 2 for a bad input, 1 for any other error.
    """
    from il_ros.training.ddp_worker import RankLink
    rank = int(os.environ.get('RANK', '0'))
    link = RankLink.connect() if rank == 0 else None
    send = link.send if link is not None else (lambda event: None)
    try:
        cfg = load_request_config(request)
        from il_ros.training.distributed import train, world_size
        send(('started', {'pid': os.getpid(), 'run_dir': str(request['out_dir']),
                          'world_size': world_size()}))
        report_training(train, cfg, request['out_dir'], send,
                        link.should_stop if link is not None else None)
    except BaseException as e:  # noqa: BLE001 - reported to the worker, then the rank ends
        kind, payload = error_event(e)
        send((kind, payload))
        print(f'il_ros DDP rank {rank}: {payload["traceback"] or payload["error"]}',
              file=sys.stderr, flush=True)
        return 2 if payload['traceback'] is None else 1
    return 0


if __name__ == '__main__':          # a rank: python -m il_ros.training.worker REQUEST_JSON
    sys.exit(run_rank(json.loads(sys.argv[1])))
