"""Test isolation shared by every test.

- A random ROS_DOMAIN_ID (1-100) and localhost-only discovery for the whole run, so tests
  never talk to other DDS programs on the machine. Under pytest-xdist (``-n N``) each worker
  takes the next domain after the run's, so workers never share one either.
- ``make test`` runs on several workers (pytest-xdist, ``--dist loadgroup``). The modules of
  ``REALTIME`` run a ROS graph in real time and judge its timing (rates, stale streams,
  deadman lapses), those of ``CPU_BOUND`` keep the cores busy (training, colcon builds).
  Both are marked ``realtime`` and kept on one worker, one at a time, so a timing test only
  ever shares the machine with light tests.
- ROS_HOME, torch and Mesa caches point into a temp dir of the run, and so does TMPDIR for
  the processes the tests start (launch_ros leaves a ``launch_params_*`` file per node in
  it). The folder is removed when the run passes, and kept, with its ROS logs, when not.
- ``procs``: start node processes; each is stopped by its pid when the test ends.
- ``ros_node``: an rclpy node in the test process (a probe: publishes, subscribes, calls).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from il_ros.render import setup_headless_gl

_RUN_TMP = Path(tempfile.mkdtemp(prefix='il_ros_test_'))
# The controller picks the run's domain; xdist workers inherit it and add their index.
os.environ.setdefault('IL_ROS_TEST_DOMAIN', str(random.SystemRandom().randint(1, 100)))
_WORKER = os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
os.environ['ROS_DOMAIN_ID'] = str(
    (int(os.environ['IL_ROS_TEST_DOMAIN']) + int(_WORKER.removeprefix('gw')) - 1) % 100 + 1)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ['ROS_HOME'] = str(_RUN_TMP / 'ros_home')
os.environ['ROS_LOG_DIR'] = str(_RUN_TMP / 'ros_log')
os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(_RUN_TMP / 'inductor')
os.environ['MPLCONFIGDIR'] = str(_RUN_TMP / 'mpl')
os.environ['XDG_CACHE_HOME'] = str(_RUN_TMP / 'cache')
(_RUN_TMP / 'tmp').mkdir()
os.environ['TMPDIR'] = str(_RUN_TMP / 'tmp')    # children's temp files (this process's are
                                                 # already placed: tempfile read TMPDIR above)
setup_headless_gl()
os.environ['PYTHONUNBUFFERED'] = '1'

REPO = Path(__file__).resolve().parent.parent

REALTIME = {
    'test_record_graph.py',        # scripted episodes at 1x: exact rates, no gaps
    'test_recorder.py',            # topic rates, auto episodes, SIGKILL mid-episode
    'test_recorder_faults.py',     # episodes recorded through full disks and restarts
    'test_dagger_record.py',       # a takeover episode that must convert (stale streams)
    'test_dagger_graph.py',        # a DAgger round through the whole graph
    'test_controller_safety.py',   # takeover lapses and watchdogs in wall time
    'test_convert_roundtrip.py',   # record -> convert, ticks on the exact grid
    'test_launch_real.py',         # ros2 launch record episodes:=2 and the dagger graph
    'test_demo.py',                # il-ros demo, made small
    'test_teleop_node.py',         # deadman heartbeats at 20 Hz, a 0.3-1 s deadman
    'test_handover.py',            # a 1 s joystick takeover through the graph; the ramp back
}
CPU_BOUND = {
    'test_trainer_node.py', 'test_training.py', 'test_policy.py', 'test_models.py',
    'test_dataset_check.py', 'test_colcon.py', 'test_resnet.py',
    'test_interop_lerobot.py',     # AV1 encoding on every core
    'test_harness.py',             # a pytest run on two workers
    'test_distributed.py',         # two training processes (torchrun)
}


GROUPED = REALTIME | CPU_BOUND


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in GROUPED:
            item.add_marker(pytest.mark.realtime)


def pytest_sessionfinish(session, exitstatus):
    """Remove this process's run folder when the run passed (kept for a failure's ROS logs)."""
    if exitstatus == 0:
        shutil.rmtree(_RUN_TMP, ignore_errors=True)


def _realtime_scope(nodeid: str) -> str | None:
    """'realtime' for a test of a REALTIME or CPU_BOUND module, else None."""
    return 'realtime' if nodeid.split('::')[0].rsplit('/', 1)[-1] in GROUPED else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the realtime modules as one group, run on one worker.

    xdist's own loadgroup reads ``xdist_group`` marks from node ids it rewrites, which
    pytest 9.2 no longer lets it do: the group silently fell apart. This groups by module name.

    It also mends what pytest-xdist 3.8.0 does when a worker crashes (a segfault in a test's
    teardown, say): its loadgroup scheduler put all of the dead worker's work back on the
    queue, finished modules included, and a worker given a finished module has nothing to
    run and never asks for more, so the run never ended (pytest-xdist#1323, #1327, #1378).
    Here only the tests that did not run go back, less the one it crashed on (already
    reported failed; run again, it may take the next worker down too), and a worker is told
    that no more work will come as soon as the queue is empty.
    """
    if config.getvalue('dist') != 'loadgroup':
        return None
    from xdist.scheduler import LoadGroupScheduling

    class RealtimeGroup(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _realtime_scope(nodeid) or super()._split_scope(nodeid)

        def remove_node(self, node) -> str | None:
            workload = self.assigned_work.pop(node)
            left = [(scope, nodeid) for scope, unit in workload.items()
                    for nodeid, done in unit.items() if not done]
            if not left:
                return None
            crashed = left[0][1]                # a worker runs its tests in the order given
            for scope, nodeid in left[1:]:
                self.workqueue.setdefault(scope, {})[nodeid] = False
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

        def _reschedule(self, node) -> None:
            super()._reschedule(node)
            # a worker runs a test once it holds the next one, or has been told there is none
            if not self.workqueue and not node.shutting_down:
                node.shutdown()

    return RealtimeGroup(config, log)


class ProcessGroup:
    """Processes started by one test; ``stop_all`` ends each by pid (SIGINT, then SIGKILL)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        """Start ``args`` (a list; no shell) in its own session, logging to ``<name>.log``."""
        from il_ros.launcher import spawn       # SIGINT to it if this test process dies
        log = self.log_dir / f'{name}.log'
        p = spawn(args, log, {**os.environ, **(env or {})}, cwd=str(REPO))
        self.procs.append((p, log))
        return p

    def python(self, module: str, *args: str, name: str | None = None,
               env: dict | None = None) -> subprocess.Popen:
        """Start ``python -m module args...``."""
        return self.start([sys.executable, '-m', module, *args],
                          name or module.rsplit('.', 1)[-1], env)

    def log(self, p: subprocess.Popen) -> str:
        """The output a process wrote so far."""
        for q, log in self.procs:
            if q is p:
                return log.read_text(errors='replace')
        raise KeyError(p.pid)

    def stop(self, p: subprocess.Popen, timeout: float = 10.0) -> int:
        """SIGINT ``p`` (by pid), wait, then SIGKILL; returns its exit code."""
        if p.poll() is None:
            os.kill(p.pid, signal.SIGINT)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        return p.returncode

    def stop_all(self):
        for p, _ in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def procs(tmp_path):
    group = ProcessGroup(tmp_path)
    yield group
    group.stop_all()


@pytest.fixture(scope='module')
def client_node(request):
    """An rclpy node shared by a module's tests; rclpy is shut down after the module."""
    import rclpy
    rclpy.init()
    node = rclpy.create_node(f'client_{request.module.__name__}'[:60])
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


@pytest.fixture
def ros_node(request):
    """An rclpy node for the test itself; rclpy is shut down after the test."""
    import rclpy
    rclpy.init()
    node = rclpy.create_node(f'probe_{request.node.name}'.replace('[', '_').replace(']', '')
                             .replace('-', '_')[:60])
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def call_service(node, srv, name: str, request, timeout: float = 30.0):
    """Call service ``name`` of type ``srv`` from ``node`` and return the answer.

    Fails the test naming the service when it does not appear or answer within ``timeout``.
    """
    import rclpy
    client = node.create_client(srv, name)
    try:
        assert client.wait_for_service(timeout), f'{name} not available'
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        assert future.done(), f'{name} did not answer'
        return future.result()
    finally:
        node.destroy_client(client)


def wait_for(pred, timeout: float, interval: float = 0.05, what: str = 'condition'):
    """Poll ``pred`` until it returns truthy; fail the test naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    pytest.fail(f'timed out after {timeout:.0f}s waiting for {what}')


def fit_head(head, feats, target, mask, steps, lr=1e-2, weight=None):
    """``head`` trained ``steps`` Adam steps on one fixed batch (per-sample ``weight``: 1)."""
    import torch
    opt = torch.optim.Adam(head.parameters(), lr)
    w = torch.ones(len(feats)) if weight is None else weight
    for _ in range(steps):
        loss = head.loss(feats, target, mask, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


def tiny_sim_checkpoint(path, task: str = 'lift', image_size=(48, 48), action_min=None,
                        action_max=None) -> str:
    """Save a small random-init policy for the sim arm of ``task`` and return its folder.

    Its actions span ``action_min..action_max`` (default -0.2..0.2 for every value): the
    action normalizer maps the network's output range onto it.
    """
    import torch

    from il_ros.models import build_policy, save_checkpoint
    from il_ros.models.presets import preset
    from il_ros.training.spec import sim_spec
    torch.manual_seed(0)
    spec = sim_spec(task)
    spec.image_size = tuple(image_size)
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1],
                                      'num_kp': 4, 'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]}, crop=None)
    a, j = spec.action_dim, spec.proprio_dim
    lo = [-0.2] * a if action_min is None else [float(v) for v in action_min]
    hi = [0.2] * a if action_max is None else [float(v) for v in action_max]
    stats = {'action': {'min': lo, 'max': hi},
             'joint_pos': {'mean': [0.0] * j, 'std': [0.5] * j},
             'image/front': {'mean': [0.5] * 3, 'std': [0.25] * 3}}
    return str(save_checkpoint(build_policy(cfg, spec, stats), path))
