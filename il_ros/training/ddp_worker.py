"""A trainer-node run on several processes: torchrun, DDP, and rank 0's events relayed.

:func:`run_ddp` is what :func:`il_ros.training.worker.run_training` calls when the request's
``nproc`` is above 1 (after loading the request's config and checking that its
``batch_size`` divides by N, so that a bad config is one line before any rank starts: were
a rank to fail on it, torchrun could end rank 0 before it sent its 'error'). In the worker
process it

1. opens a ``multiprocessing.connection.Listener`` on 127.0.0.1 (a free port, a random
   authentication key) and names both to the ranks (``IL_ROS_DDP_EVENTS``,
   ``IL_ROS_DDP_KEY``);
2. starts ``torchrun --standalone --nproc_per_node N -m il_ros.training.worker REQUEST``
   (:func:`il_ros.train_cli.torchrun_command`) in a session of its own, its output
   appended to ``out_dir/torchrun.log``;
3. passes each ``(kind, payload)`` that rank 0 sends on to the node's queue unchanged, and
   sends rank 0 ``'stop'`` once the node's ``stop`` Event is set (or the worker gets
   SIGINT). DistTrainer broadcasts rank 0's stop decision, so every rank saves and returns
   together;
4. when torchrun exits without rank 0's 'done' or 'error', reports an 'error' naming the
   exit code, the failing rank and torchrun.log, with that rank's last lines as its
   traceback. SIGTERM to the worker ends torchrun (and so its ranks) too.

Each rank (:func:`il_ros.training.worker.run_rank`) loads the request's config as one
process does; rank 0 connects to the listener (:class:`RankLink`), reports through the same
hooks as one process, and stops when the worker says 'stop' or its connection ends (the
worker is gone: the run saves and ends rather than train unwatched). An input error
(ConfigError, TrainInputError) comes back as one line, as from one process. Threads per
rank: the request's ``threads``, else the machine's cores split between the ranks.
"""
from __future__ import annotations

import json
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
import os
from pathlib import Path
import re
import signal
import subprocess
import tempfile
import threading
import time

ENV_ADDRESS = 'IL_ROS_DDP_EVENTS'
"""host:port of the worker's listener, for rank 0."""
ENV_KEY = 'IL_ROS_DDP_KEY'
"""The listener's authentication key (hex)."""
LOG_NAME = 'torchrun.log'
"""torchrun's output (every rank's, prefixed ``[default<rank>]:``), in the run folder."""
TAIL_LINES = 30
"""Lines of the failing rank's output an 'error' carries."""


def rank_threads(request: dict, nproc: int) -> int:
    """The torch threads of each rank: the request's ``threads``, else the cores split N ways."""
    return int(request.get('threads') or 0) or max(1, (os.cpu_count() or 1) // nproc)


# -- the worker process ----------------------------------------------------------------------
def run_ddp(request: dict, send, stop) -> None:
    """Run ``request`` as a DDP run of ``request['nproc']`` ranks; ``send`` rank 0's events.

    Raises what keeps the run from starting (TrainInputError for a bad run folder); a run
    that starts ends with rank 0's 'done' or 'error', or the 'error' of :func:`failure`.
    """
    from il_ros.train_cli import torchrun_command
    from il_ros.training.inputs import check_run_dir, TrainInputError
    nproc = int(request['nproc'])
    out = check_run_dir(request['out_dir'])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainInputError(f'run folder {out}: {e.strerror or e}') from None
    threads = rank_threads(request, nproc)
    key = os.urandom(32)
    log_path = out / LOG_NAME
    with Listener(('127.0.0.1', 0), authkey=key) as listener, \
            tempfile.TemporaryDirectory(prefix='il_ros_torchrun_') as logs, \
            open(log_path, 'ab') as log:
        start = log.tell()
        log.write(f'=== {time.strftime("%Y-%m-%d %H:%M:%S")} il_ros trainer: {nproc} '
                  f'processes, {threads} threads each ===\n'.encode())
        log.flush()
        host, port = listener.address
        env = {**os.environ, ENV_ADDRESS: f'{host}:{port}', ENV_KEY: key.hex(),
               'OMP_NUM_THREADS': str(threads)}
        cmd = torchrun_command(nproc, '-m', 'il_ros.training.worker',
                               json.dumps({**request, 'threads': threads}), log_dir=logs)
        relay = _Relay(listener, send)
        relay.start()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        code = _supervise(proc, relay, stop)
        if not relay.closed.wait(1.0) and relay.conn is not None:
            relay.closed.wait(10.0)              # rank 0 has exited: its last events follow
    if not relay.ended:
        send(('error', failure(code, log_path, start, nproc)))


class _Relay(threading.Thread):
    """Accepts rank 0's connection and puts what it sends on the node's queue."""

    def __init__(self, listener, send):
        super().__init__(name='il_ros-ddp-relay', daemon=True)
        self.listener, self.send = listener, send
        self.conn = None
        self.ended = False                 # rank 0 sent its 'done' or 'error'
        self.closed = threading.Event()    # rank 0's connection has ended

    def run(self):
        while self.conn is None:
            try:
                self.conn = self.listener.accept()
            except (AuthenticationError, EOFError, ConnectionError):
                continue                   # not rank 0 (a wrong key, a dropped handshake)
            except OSError:
                return                     # the listener is closed
        try:
            while True:
                event = self.conn.recv()
                self.ended = self.ended or event[0] in ('done', 'error')
                self.send(event)
        except (EOFError, OSError):
            pass
        finally:
            self.closed.set()


def _supervise(proc: subprocess.Popen, relay: _Relay, stop) -> int:
    """Wait for torchrun; pass a stop (``stop``, or SIGINT) on to rank 0; SIGTERM ends it."""
    asked = threading.Event()

    def _on_term(signum, frame):
        proc.terminate()                   # torchrun ends its ranks

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, h) for s, h in (
            (signal.SIGINT, lambda *a: asked.set()), (signal.SIGTERM, _on_term))}
    try:
        sent = False
        while True:
            try:
                return proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
            if not sent and (stop.is_set() or asked.is_set()) and relay.conn is not None:
                try:
                    relay.conn.send('stop')
                except OSError:
                    pass
                sent = True
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def failure(code: int, log_path: Path, start: int, nproc: int) -> dict:
    """The 'error' payload of a torchrun that exited with ``code`` and no result.

    ``start``: the offset in ``log_path`` where this launch's output begins.
    """
    with open(log_path, 'rb') as f:
        f.seek(max(start, os.path.getsize(log_path) - 1_000_000))
        text = f.read().decode(errors='replace')
    rank, lines = failing_rank_lines(text)
    who = f'rank {rank} failed' if rank is not None else 'no rank named as failing'
    return {'error': f'the {nproc}-process DDP run ended without a result: torchrun exited '
                     f'with code {code} ({who}); its output: {log_path}',
            'traceback': '\n'.join(lines[-TAIL_LINES:])}


def failing_rank_lines(text: str) -> tuple[int | None, list[str]]:
    """The rank torchrun names as the root cause in ``text``, and that rank's output lines.

    Without a named rank (or lines of it): None and the last lines of ``text``.
    """
    causes = re.findall(r'Root Cause[^\n]*\n(?:[^\n]*\n){0,4}?\s*rank\s*:\s*(\d+)'
                        r'\s*\(local_rank:\s*(\d+)\)', text)
    all_lines = text.splitlines()
    if causes:
        rank, local = (int(v) for v in causes[-1])
        prefix = f'[default{local}]:'
        lines = [ln[len(prefix):] for ln in all_lines if ln.startswith(prefix)]
        return rank, (lines or all_lines)[-TAIL_LINES:]
    return None, all_lines[-TAIL_LINES:]


# -- rank 0 (started by torchrun) -----------------------------------------------------------
class RankLink:
    """Rank 0's connection to the worker: events out, 'stop' in."""

    def __init__(self, conn):
        self.conn, self.stop = conn, False

    @classmethod
    def connect(cls) -> RankLink | None:
        """Connect to the worker named in the environment (None when run without one)."""
        if ENV_ADDRESS not in os.environ:
            return None
        host, port = os.environ[ENV_ADDRESS].rsplit(':', 1)
        return cls(Client((host, int(port)), authkey=bytes.fromhex(os.environ[ENV_KEY])))

    def send(self, event) -> None:
        """Send one event; a lost worker makes the run stop (and save)."""
        if self.conn is None:
            return
        try:
            self.conn.send(event)
        except OSError:
            self._lost()

    def should_stop(self) -> bool:
        """Whether the worker said 'stop' (or is gone)."""
        try:
            while not self.stop and self.conn is not None and self.conn.poll():
                self.stop = self.conn.recv() == 'stop'
        except (EOFError, OSError):
            self._lost()
        return self.stop

    def _lost(self) -> None:
        self.conn, self.stop = None, True
