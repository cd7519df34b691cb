"""Run a node graph from config/graph.yaml as separate processes, without ``ros2 launch``.

Each node runs as ``python -m il_ros.ros.<executable> --ros-args --params-file ... -p ...``,
exactly the parameters ``ros2 launch`` would give it. Processes are stopped by pid; on Linux
each also gets SIGINT when the process that started it dies (:func:`spawn`), so a killed
``il-ros`` leaves no node running on its own.
"""
from __future__ import annotations

import ctypes
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from il_ros.config import GraphConfig, load_graph
from il_ros.graph_plan import NodePlan, plan_graph
from il_ros.render import gl_env
from il_ros.resources import share_dir

# The Fast DDS profile shipped in config/dds/ (docs/ros-network.md): a 32 MB shared-memory
# segment, so that best-effort 640x480 camera streams arrive between processes.
DDS_PROFILE = Path('config') / 'dds' / 'fastdds.xml'
# Fast DDS 3 (Kilted and later) reads the first name; Fast DDS 2 (Humble, Jazzy) the second.
# rmw_fastrtps on Fast DDS 3 still loads the second but warns in every node that it is
# deprecated, so it is only set where ROS_DISTRO names a Fast DDS 2 distribution.
DDS_PROFILE_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
_FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')


_PR_SET_PDEATHSIG = 1


def _prctl():
    """The C library's prctl, resolved in the parent (the child only calls it)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):      # not Linux / no libc symbol: no parent-death signal
        return None


_PRCTL = _prctl() if sys.platform.startswith('linux') else None


def spawn(cmd: list[str], log: Path, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``cmd`` in its own session, output to ``log``, SIGINT to it when we die.

    Its own session: a Ctrl-C in the terminal reaches it only through the caller, which
    stops it by pid. The parent-death signal (Linux ``PR_SET_PDEATHSIG``) is SIGINT, the
    signal a node shuts down on cleanly; it fires when the *thread* that started the child
    ends, so start graphs from a thread that outlives them (the main thread does).
    """
    parent = os.getpid()

    def die_with_parent():
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGINT))
            if os.getppid() != parent:        # the parent died before prctl took effect
                os._exit(130)

    with open(log, 'wb') as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=die_with_parent, **kw)


def dds_profile_path() -> Path:
    """Where the shipped Fast DDS profile is (``share/il_ros/config/dds/`` when installed)."""
    return share_dir() / DDS_PROFILE


def dds_profile_env(env) -> dict[str, str]:
    """The variables that apply the shipped DDS profile to processes started with ``env``.

    Empty when ``env`` already names a profile file under either variable: the user's own
    profile wins.
    """
    if any(env.get(name) for name in DDS_PROFILE_VARS):
        return {}
    path = str(dds_profile_path())
    out = {DDS_PROFILE_VARS[0]: path}
    if str(env.get('ROS_DISTRO', '')).lower() in _FAST_DDS_2_DISTROS:
        out[DDS_PROFILE_VARS[1]] = path
    return out


def ros_env(base: dict | None = None, isolate: bool = True) -> dict:
    """Environment for node processes.

    With ``isolate`` (sim graphs), a random ROS_DOMAIN_ID is chosen unless one is set, and
    discovery stays on localhost unless configured, so a sim run never meets other DDS
    programs on the machine.

    Always, unless ``base`` already names a Fast DDS profile file, the shipped DDS profile
    (``dds_profile_env``) is applied.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env.update(dds_profile_env(env))
    gl_env(env)
    env['PYTHONUNBUFFERED'] = '1'
    if isolate:
        env.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
        env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return env


def _param_text(value) -> str:
    """A parameter value as ``-p name:=value`` text (YAML, as ROS parses it).

    Text that YAML would read as something else (``''``, ``'3'``, ``'true'``) is quoted, so
    a string parameter stays a string; a float always has a decimal point (``4.0``).
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_param_text(v) for v in value) + ']'
    if isinstance(value, float):
        text = repr(value)
        return text if '.' in text or 'n' in text else text.replace('e', '.0e')
    if isinstance(value, str):
        try:
            plain = isinstance(yaml.safe_load(value), str) if value else False
        except yaml.YAMLError:
            plain = True
        return value if plain else "'" + value.replace("'", "''") + "'"
    return str(value)


def node_command(plan: NodePlan) -> list[str]:
    """The argv that runs one planned graph node (il_ros.graph_plan) with its parameters."""
    cmd = [sys.executable, '-m', f'il_ros.ros.{plan.executable}', '--ros-args',
           '-r', f'__node:={plan.name}']
    if plan.namespace:
        cmd += ['-r', f'__ns:={plan.namespace}']
    if plan.params_file:
        cmd += ['--params-file', str(plan.params_file)]
    for k, v in plan.params.items():
        cmd += ['-p', f'{k}:={_param_text(v)}']
    for src, dst in plan.remappings.items():
        cmd += ['-r', f'{src}:={dst}']
    return cmd


@dataclass
class Proc:
    """One node process of a graph, with its log file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 20) -> str:
        """Return the last ``n`` lines of the log (empty when unreadable)."""
        try:
            return '\n'.join(self.log.read_text(errors='replace').splitlines()[-n:])
        except OSError:
            return ''


class GraphRunner:
    """Start the nodes of one graph; stop them by pid. Use as a context manager."""

    def __init__(self, graph_name: str, values: dict, log_dir: Path,
                 extra_params: dict | None = None, env: dict | None = None,
                 graph: GraphConfig | None = None):
        """Plan the graph (il_ros.graph_plan.plan_graph; ConfigError when an argument is wrong).

        ``values``: graph arguments (text or typed; None: the default); ``extra_params``:
        ``{node: {param: value}}`` applied after the plan.
        """
        self.graph = graph or load_graph()
        if graph_name not in self.graph.graphs:
            raise KeyError(f'no graph {graph_name!r} in config/graph.yaml; '
                           f'have {sorted(self.graph.graphs)}')
        self.graph_name = graph_name
        self.values = {k: v for k, v in values.items() if v is not None}
        self.log_dir = Path(log_dir)
        self.extra = extra_params or {}
        self.plans = plan_graph(graph_name, self.values, self.graph, self.extra)
        self.env = env if env is not None else ros_env()
        self.procs: dict[str, Proc] = {}

    def commands(self, only: list[str] | None = None) -> dict[str, list[str]]:
        """``{node: argv}`` of the nodes :meth:`start` would start (``only`` these)."""
        return {n: node_command(p) for n, p in self.plans.items()
                if only is None or n in only}

    def start(self, only: list[str] | None = None) -> None:
        """Start the graph's nodes (``only`` these, when given), each logging to log_dir."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for node, cmd in self.commands(only).items():
            log = self.log_dir / f'{node}.log'
            self.procs[node] = Proc(node, spawn(cmd, log, self.env), log)

    def dead(self) -> list[Proc]:
        """Processes that have exited."""
        return [p for p in self.procs.values() if p.popen.poll() is not None]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every process (by pid), wait, then SIGKILL what is left."""
        stop_processes([p.popen for p in self.procs.values()], timeout)

    def __enter__(self):
        # The nodes run in their own sessions (so Ctrl-C reaches them only through us):
        # turn SIGTERM into SystemExit so `with` still stops them when we are terminated.
        self._old_term = signal.signal(signal.SIGTERM, _raise_system_exit)
        self.start()
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            signal.signal(signal.SIGTERM, self._old_term)


def stop_processes(popens, timeout: float = 10.0) -> None:
    """SIGINT each process (by pid), wait up to ``timeout`` in all, then SIGKILL the rest."""
    for p in popens:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in popens:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)
