"""Helpers of test_launch_real.py: ament prefixes, the processes of a launch, a graph probe.

- :func:`make_prefix`: an ament prefix holding one package and its executables;
- :func:`children`, :func:`in_session`, :func:`check_ended`: the processes ``ros2 launch``
  started (read from /proc, Linux), and the check that none is left after it ended;
- :class:`GraphProbe`: waits in one spin loop for topics to flow and nodes to answer
  their get_parameters service, so a test checks everything while the launch starts up.
"""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest


def make_prefix(prefix: Path, package: str, executables: dict[str, str]) -> Path:
    """An ament prefix: the index marker, share/<package>/, lib/<package>/<exe> scripts."""
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / package).touch()
    (prefix / 'share' / package).mkdir()
    lib = prefix / 'lib' / package
    lib.mkdir(parents=True)
    for exe, body in executables.items():
        (lib / exe).write_text(f'#!{sys.executable}\n{body}')
        (lib / exe).chmod(0o755)
    return prefix


def wait_for(pred, timeout: float, interval: float = 0.05, what=''):
    """conftest.wait_for, whose ``what`` may be a function (called when it fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    pytest.fail(f'timed out after {timeout:.0f}s waiting for '
                f'{what() if callable(what) else what}')


# ---- processes of a launch ------------------------------------------------------------

def proc_table() -> dict[int, tuple[int, int, list[str]]]:
    """``{pid: (ppid, session id, argv)}`` of every process (Linux /proc)."""
    out = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / 'stat').read_text()
            argv = (d / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        if fields[0] == 'Z':
            continue                                        # a zombie is gone already
        out[int(d.name)] = (int(fields[1]), int(fields[3]),
                            [a.decode(errors='replace') for a in argv if a])
    return out


def children(launch: subprocess.Popen) -> dict[int, str]:
    """``{pid: executable}`` of the processes the launch started (lib/<pkg>/<exe>)."""
    table = proc_table()
    kids, todo = {}, [launch.pid]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, argv) in table.items():
            if ppid == parent:
                todo.append(pid)
                exe = next((Path(a) for a in argv[:2] if Path(a).parent.parent.name == 'lib'),
                           None)
                if exe is not None:
                    kids[pid] = f'{exe.parent.name}/{exe.name}'
    return kids


def in_session(launch: subprocess.Popen) -> list:
    """Processes still in the launch's session (it was started as the session leader)."""
    return [(pid, argv) for pid, (_, sid, argv) in proc_table().items()
            if sid == launch.pid and pid != launch.pid]


def interrupt_and_check(procs, launch: subprocess.Popen, kids: dict[int, str]) -> str:
    """SIGINT the launch: it ends with 0, every node cleanly, and no process is left."""
    assert set(kids) <= {pid for pid, _ in in_session(launch)}  # what check_ended watches
    os.kill(launch.pid, signal.SIGINT)
    wait_for(lambda: launch.poll() is not None, 60, interval=0.2,
             what='ros2 launch to end after SIGINT')
    return check_ended(procs, launch, kids)


def check_ended(procs, launch, kids) -> str:
    """The ended launch exited 0, each of ``kids`` finished cleanly and is gone; its log."""
    log = procs.log(launch)
    assert launch.returncode == 0, log[-3000:]
    wait_for(lambda: not in_session(launch), 10, what=lambda: 'no process of the launch '
             f'left (still there: {in_session(launch)})')
    left = proc_table()
    assert not [pid for pid in kids if pid in left], (kids, left)
    assert 'process has died' not in log, log[-3000:]
    for pid in kids:
        assert f'process has finished cleanly [pid {pid}]' in log, (pid, kids, log[-3000:])
    return log


# ---- graph checks, all at once ---------------------------------------------------------

class GraphProbe:
    """Waits, in one spin loop, for topics to carry messages and nodes to answer params."""

    def __init__(self, node):
        self.node = node
        self.seen: dict[str, list] = {}
        self.params: dict[str, dict] = {}
        self._asks: dict[str, tuple] = {}

    def topic(self, name: str, msg_type, qos=None) -> None:
        from il_ros.ros.node_utils import SENSOR_QOS
        got = self.seen.setdefault(name, [])
        self.node.create_subscription(msg_type, name, got.append, qos or SENSOR_QOS)

    def ask(self, target: str, names: list[str]) -> None:
        from rcl_interfaces.srv import GetParameters
        client = self.node.create_client(GetParameters, f'/{target}/get_parameters')
        self._asks[target] = (client, names, None, 0.0)

    RESEND_S = 2.0
    """A request unanswered this long is sent again: a request sent right when the service
    is discovered can be answered before the server has matched the client's reply reader,
    and that reply is lost (DDS discovery is not symmetric)."""

    def _poll_params(self) -> bool:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        for target, (client, names, future, sent) in list(self._asks.items()):
            if target in self.params:
                continue
            if future is not None and future.done():
                self.params[target] = {n: (v.type, parameter_value_to_python(v))
                                       for n, v in zip(names, future.result().values)}
            elif (client.service_is_ready()
                  and (future is None or time.monotonic() - sent > self.RESEND_S)):
                self._asks[target] = (client, names, client.call_async(
                    GetParameters.Request(names=names)), time.monotonic())
        return len(self.params) == len(self._asks)

    def wait(self, proc, log, timeout: float, until=None, what: str = '') -> None:
        """Spin until every topic has a message, every node answered and ``until()``.

        Fails at once, with the tail of ``log()``, if ``proc`` (the launch) ends.
        """
        import rclpy

        def ready():
            rclpy.spin_once(self.node, timeout_sec=0.05)
            assert proc.poll() is None, log()[-3000:]
            return (self._poll_params() and all(self.seen.values())
                    and (until is None or until()))
        wait_for(ready, timeout, interval=0.0, what=lambda: f'{what}: topics without '
                 f'messages {[t for t, v in self.seen.items() if not v]}, nodes that did not '
                 f'answer {sorted(set(self._asks) - set(self.params))}')


def param_types():
    from rcl_interfaces.msg import ParameterType as T
    return T



def two_camera_checkpoint(path: Path) -> str:
    """A small random-init sim-arm policy that needs the front and the wrist camera."""
    import torch

    from il_ros.models import build_policy, save_checkpoint
    from il_ros.models.presets import preset
    from il_ros.training.spec import sim_spec
    torch.manual_seed(0)
    spec = sim_spec('lift')
    spec.cameras = ['front', 'wrist']
    cfg = preset('none_mse', encoder={'name': 'conv4', 'channels': [8, 8], 'strides': [2, 1],
                                      'num_kp': 4, 'feat_dim': 8},
                 proprio_encoder={'name': 'mlp', 'hidden': 16, 'out_dim': 8},
                 core={'name': 'none', 'hidden': [32]}, crop=None, cameras=spec.cameras)
    a, j = spec.action_dim, spec.proprio_dim
    stats = {'action': {'min': [-0.2] * a, 'max': [0.2] * a},
             'joint_pos': {'mean': [0.0] * j, 'std': [0.5] * j},
             **{f'image/{c}': {'mean': [0.5] * 3, 'std': [0.25] * 3} for c in spec.cameras}}
    return str(save_checkpoint(build_policy(cfg, spec, stats), path))


