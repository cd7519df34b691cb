"""trainer: train a policy on request, in a worker process, and announce its checkpoints.

- ``~/train`` (std_srvs/Trigger) starts a run with the current parameters (read at each
  call, so ``config``, ``dataset`` or ``out_dir`` can change between runs). The run goes to
  a separate process (multiprocessing spawn context: no forked DDS state, no threads shared
  with the executor), so the executor never blocks. A call while a run is in progress is
  refused, naming the run.
- ``~/cancel`` (std_srvs/Trigger) stops the run in progress: the worker saves its resumable
  state at the next step and the status turns ``stopped``; the same ``~/train`` call (same
  ``out_dir``) resumes it. With no run in progress it answers success false. Together with
  ``~/status`` (feedback) this is what an action's feedback and cancel would give; why
  ``~/train`` is not an action is in docs/ros-workspace.md.
- Output root: ``out_dir`` must lie inside ``output_root`` (read-only; '' = the parent
  folder of the start-up ``out_dir``) unless ``allow_any_output_dir`` (read-only) is true.
  Setting ``out_dir`` outside it is refused, and so is a ``~/train`` call whose ``out_dir``
  resolves (symbolic links followed) outside it: success false, the message naming the
  path and the root. Anyone on the ROS domain can set parameters; the root bounds where
  they can make the node write.
- ``nproc`` (default 1): more than 1 trains the run on that many processes with DDP
  (torchrun ``--standalone``; il_ros/training/ddp_worker.py). The worker starts torchrun and
  relays rank 0's events, so ``~/status``, ``~/checkpoint``, ``~/cancel`` and resuming are
  as with one process; ``threads`` is then per process (0: the cores split between them).
  torchrun's output is appended to ``out_dir/torchrun.log``, which a failure names along
  with the failing rank's last lines.
- ``~/status`` (std_msgs/String, JSON) is published at ``status_rate_hz``: state (idle,
  starting, training, done, stopped, failed), step, loss, success, best_success, eta_s,
  run_dir, best_checkpoint, message, warnings (the run's warnings, e.g. skipped dataset
  episodes). A run whose inputs are bad (a bad dataset episode, a missing path) fails with
  its one-line reason as the message.
- ``~/checkpoint`` (std_msgs/String, transient local: a late subscriber gets the newest)
  carries the path of each new best checkpoint.

On shutdown a running worker is asked to stop; it saves its resumable state first, so the
same ``~/train`` call (same ``out_dir``) resumes it.
"""
from __future__ import annotations

import itertools
import json
import multiprocessing as mp
from pathlib import Path
import queue

from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from il_ros.ros.node_diagnostics import TrainerDiagnostics
from il_ros.ros.node_utils import declare, run, STATE_QOS

DRAIN_LIMIT = 1000
"""Most worker events one status tick handles (the rest wait for the next tick)."""

CHECKPOINT_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
"""Latched: a controller that starts later still receives the newest checkpoint path."""


class Trainer(Node):
    """The trainer node (see the module docstring)."""

    def __init__(self):
        super().__init__('trainer')
        p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        p('config', 'demo', 'Training config: a YAML path, or a name under config/train/.')
        p('task', '', 'Task overlay under config/train/tasks/ (empty: none, or the '
          'overlay of the recipe\'s eval_task).')
        p('dataset', '', 'Dataset folder to train on (empty: the config\'s dataset).')
        p('out_dir', 'runs/trainer', 'Run folder; a run already there is resumed.')
        p('max_minutes', 0.0, 'Training budget in minutes (0: the config\'s).', min=0.0)
        p('max_steps', 0, 'Training budget in gradient steps (0: the config\'s).', min=0)
        p('eval_task', '', 'Sim task for periodic rollouts (empty: the config\'s).')
        p('overrides', [], 'Config overrides, KEY=VALUE (YAML values), e.g. [lr=1e-3].',
          array_type='string')
        p('threads', 0, 'torch CPU threads of the worker, of each process with nproc > 1 '
          '(0: torch\'s default; with nproc > 1 the cores split between the processes).',
          min=0)
        p('nproc', 1, 'Processes of a run: more than 1 trains one run with DDP through '
          'torchrun (rank 0 reports; its output in out_dir/torchrun.log).', min=1)
        rate = p('status_rate_hz', 1.0, 'Rate of ~/status messages.', read_only=True,
                 min=0.0, min_exclusive=True)
        root = p('output_root', '', 'Folder every out_dir must lie in (\'\': the parent '
                 'folder of the start-up out_dir).', read_only=True)
        self.allow_any = p('allow_any_output_dir', False, 'Accept an out_dir outside '
                           'output_root.', read_only=True)
        start = Path(self.get_parameter('out_dir').value or '.').resolve()
        self.output_root = Path(root).resolve() if root else start.parent
        if not (self.allow_any or start.is_relative_to(self.output_root)):
            self.get_logger().warning(f'out_dir {start} is outside output_root '
                                      f'{self.output_root}: ~/train refuses it until '
                                      f'out_dir is set inside the root')
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pub_status = self.create_publisher(String, '~/status', STATE_QOS)
        self.pub_ckpt = self.create_publisher(String, '~/checkpoint', CHECKPOINT_QOS)
        self.create_service(Trigger, '~/train', self._on_train)
        self.create_service(Trigger, '~/cancel', self._on_cancel)
        self._ctx = mp.get_context('spawn')
        self.proc = None
        self.events = None
        self.stop = None
        self.status = {'state': 'idle', 'step': 0, 'loss': None, 'success': None,
                       'best_success': None, 'eta_s': None, 'run_dir': None,
                       'best_checkpoint': None, 'message': '', 'warnings': []}
        self.create_timer(1.0 / rate, self._tick)
        self.diagnostics = TrainerDiagnostics(self)        # /diagnostics, once a second
        self.get_logger().info(
            'ready: call ~/train to start a run; run folders: '
            + ('anywhere (allow_any_output_dir)' if self.allow_any
               else f'inside {self.output_root}'))

    # -- the output root ---------------------------------------------------------------------
    def outside_root(self, out_dir: str) -> str | None:
        """Return why ``out_dir`` is refused (outside the output root), or None."""
        path = Path(out_dir or '.').resolve()
        if self.allow_any or path.is_relative_to(self.output_root):
            return None
        return (f'out_dir {path} is outside the output root {self.output_root} (set '
                f'output_root or allow_any_output_dir:=true at start-up to write elsewhere)')

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            why = None
            if param.name == 'out_dir':
                why = self.outside_root(str(param.value))
            if why is not None:
                self.get_logger().warning(f'refused: {why}')
                return SetParametersResult(successful=False, reason=why)
        return SetParametersResult(successful=True)

    # -- service -----------------------------------------------------------------------------
    def _request(self) -> dict:
        def g(name):
            try:
                return self.get_parameter(name).value
            except ParameterUninitializedException:   # an empty string array
                return []
        return {'config': g('config'), 'task': g('task') or None,
                'dataset': g('dataset') or None,
                'out_dir': str(Path(g('out_dir')).resolve()),
                'max_minutes': g('max_minutes') or None, 'max_steps': g('max_steps') or None,
                'eval_task': g('eval_task') or None, 'overrides': [o for o in g('overrides') if o],
                'threads': g('threads'), 'nproc': g('nproc')}

    def _on_train(self, request, response):
        if self.busy:
            response.success = False
            response.message = (
                f'a training run is already in progress (pid {self.proc.pid}, run dir '
                f'{self.status["run_dir"]}, step {self.status["step"]}); wait for it to finish')
            return response
        try:
            req = self._request()
            why = self.outside_root(req['out_dir'])
            if why is not None:
                response.success, response.message = False, f'refused: {why}'
                self.get_logger().warning(response.message)
                return response
            from il_ros.training.worker import run_training
            self.events, self.stop = self._ctx.Queue(), self._ctx.Event()
            self.proc = self._ctx.Process(target=run_training,
                                          args=(req, self.events, self.stop),
                                          name='il_ros-train', daemon=True)
            self.proc.start()
        except Exception as e:  # noqa: BLE001 - answered, the node keeps serving
            response.success = False
            response.message = f'cannot start a training run: {type(e).__name__}: {e}'
            self.get_logger().error(response.message)
            return response
        self.status.update(state='starting', step=0, loss=None, success=None,
                           best_success=None, eta_s=None, run_dir=req['out_dir'],
                           best_checkpoint=None, message=f'config {req["config"]}',
                           warnings=[])
        response.success = True
        response.message = f'training started (pid {self.proc.pid}) in {req["out_dir"]}'
        self.get_logger().info(response.message)
        return response

    def _on_cancel(self, request, response):
        if not self.busy:
            response.success = False
            response.message = f'no training run in progress (state {self.status["state"]})'
            return response
        self.stop.set()
        response.success = True
        response.message = (f'stopping the run in {self.status["run_dir"]} at step '
                            f'{self.status["step"]}; it saves a resumable state, and the same '
                            f'~/train call resumes it')
        self.status['message'] = 'cancel requested'
        self.get_logger().info(response.message)
        return response

    @property
    def busy(self) -> bool:
        """Whether a run is in progress (a worker that reported its result may still exit)."""
        return (self.proc is not None and self.proc.is_alive()
                and self.status['state'] in ('starting', 'training'))

    # -- worker events -----------------------------------------------------------------------
    def _tick(self) -> None:
        self._drain(DRAIN_LIMIT)
        if (self.proc is not None and not self.proc.is_alive()
                and self.status['state'] in ('starting', 'training')):
            self._drain()
            if self.status['state'] in ('starting', 'training'):
                self.status.update(state='failed', message=f'worker exited with code '
                                   f'{self.proc.exitcode} without a result')
        self.pub_status.publish(String(data=json.dumps(self.status)))

    def _drain(self, limit: int | None = None) -> None:
        """Handle the worker's queued events, at most ``limit`` of them (None: all).

        The timer's drain is bounded so that a worker reporting faster than this process
        reads can never keep the executor from serving ``~/cancel`` and ``~/train``.
        """
        if self.events is None:
            return
        for _ in (range(limit) if limit is not None else itertools.count()):
            try:
                kind, payload = self.events.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            self._handle(kind, payload)

    def _handle(self, kind: str, payload) -> None:
        s = self.status
        if kind == 'progress':
            s.update(state='training', step=payload['step'], loss=payload['loss'],
                     success=payload['success_rate'], best_success=payload['best_success'],
                     eta_s=payload['eta_s'])
        elif kind == 'checkpoint':
            s['best_checkpoint'] = payload
            self.pub_ckpt.publish(String(data=payload))
            self.get_logger().info(f'new best checkpoint: {payload}')
        elif kind == 'done':
            best = payload.get('best') or {}
            s.update(state='done' if payload['status'] == 'done' else 'stopped',
                     step=payload['step'], eta_s=0.0, best_success=best.get('success_rate'),
                     message=f'{payload["status"]}: {payload["step"]} steps, '
                             f'{payload["samples_per_s"]} samples/s')
            self.get_logger().info(s['message'])
        elif kind == 'error':       # a bad input comes without a traceback: one line
            s.update(state='failed', message=payload['error'])
            self.get_logger().error(
                f'training failed: {payload["traceback"] or payload["error"]}')
        elif kind == 'message':
            s['warnings'] = (s['warnings'] + [payload])[-20:]
            self.get_logger().warning(payload)
        elif kind == 'started':
            n = payload.get('world_size', 1)
            s['message'] = (f'{n} processes (DDP), rank 0 pid {payload["pid"]}' if n > 1
                            else f'worker pid {payload["pid"]}')

    def destroy_node(self):
        """Stop a running training worker (it saves a resumable state), then destroy the node."""
        if self.proc is not None and self.proc.is_alive():
            self.get_logger().info('stopping the training worker (it saves a resumable state)')
            self.stop.set()
            for _ in range(60):       # keep draining: a child with queued events cannot exit
                self.proc.join(0.5)
                self._drain()
                if not self.proc.is_alive():
                    break
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5.0)
        return super().destroy_node()


def main(args=None):
    """Run the trainer node."""
    run(Trainer, args)


if __name__ == '__main__':
    main()
