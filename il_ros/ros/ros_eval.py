"""Evaluation over ROS 2: roll a checkpoint out through the real node graph, in real time.

``il-ros eval --transport ros`` runs ``sim_robot`` (real time, not lockstep) and the
``controller`` (loading the checkpoint) as separate processes from the ``deploy`` graph of
config/graph.yaml, plus a driver node in this process. Per episode the driver:

1. disables the controller, calls ``/sim/reset`` and waits for the new episode's
   ``/sim/state``;
2. calls ``/controller/reset`` (policy history, LSTM state and action queue cleared) and
   ``/controller/enable``;
3. mirrors each ``/sim/state`` into a non-rendering env of the task (``env.set_state``, as
   the scripted teleop does) and stops the episode on success, on the task's failure
   (collision on reach_around, leaving the corridor on path) or at the step limit, counted
   in sim control steps since the reset;
4. disables the controller.

Seeds: episode k uses env seed ``seed + k`` like the in-process :func:`evaluate` (the sim's
``seed`` parameter is ``seed - 1``: its start-up episode is never used, the first reset
starts episode 1 = ``seed``). The result has the shape of :func:`evaluate`'s, plus
``transport``, ``controller`` (its counters: underruns, holds, missed deadlines, safety
statuses) and ``reset_s`` (mean time from reset to enabled, during which the arm holds its
start pose; those steps count towards the limit).
"""
from __future__ import annotations

from collections import deque
import json
import os
from pathlib import Path
import resource
import sys
import tempfile
import time

from il_ros import keys
from il_ros.checkpoint_meta import read_checkpoint_meta


class NodeDied(RuntimeError):
    """A node of the graph exited; the message holds the end of its log."""


def _ros_modules():
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    return rclpy, SingleThreadedExecutor


class GraphClient:
    """An rclpy node in this process, in its own context, on the graph's ROS domain."""

    def __init__(self, name: str, env: dict, runner=None):
        for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION'):
            if k in env:
                os.environ[k] = env[k]
        rclpy, Executor = _ros_modules()
        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        domain = env.get('ROS_DOMAIN_ID')
        rclpy.init(context=self.ctx, domain_id=int(domain) if domain else None)
        # in the graph's namespace, so that the graph's relative names resolve as theirs
        ns = next((p.namespace for p in getattr(runner, 'plans', {}).values()), '')
        self.node = rclpy.create_node(name, context=self.ctx, namespace=ns or None)
        self.executor = Executor(context=self.ctx)
        self.executor.add_node(self.node)
        self.runner = runner
        self.status: dict | None = None
        self._clients: dict = {}
        from std_msgs.msg import String

        from il_ros.ros.node_utils import STATE_QOS
        self.node.create_subscription(String, 'controller/status', self._on_status, STATE_QOS)

    def _on_status(self, msg) -> None:
        self.status = json.loads(msg.data)

    def check_alive(self) -> None:
        """Raise NodeDied when a node of the graph has exited."""
        if self.runner is None:
            return
        dead = self.runner.dead()
        if dead:
            p = dead[0]
            raise NodeDied(f'node {p.name} exited with code {p.popen.returncode}; last lines '
                           f'of {p.log}:\n{p.tail()}')

    def spin_until(self, pred, timeout: float, what: str):
        """Spin until ``pred()`` is truthy and return it; TimeoutError naming ``what``."""
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > end:
                raise TimeoutError(f'timed out after {timeout:.0f}s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.01)
            self.check_alive()

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """Call the service ``name`` once it is ready, and return its answer."""
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        client = self._clients[name]
        self.spin_until(client.service_is_ready, timeout, f'service {name}')
        fut = client.call_async(request)
        self.spin_until(fut.done, timeout, f'an answer from {name}')
        return fut.result()

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.rclpy.try_shutdown(context=self.ctx)


def _check_fits(checkpoint, task: str, robot):
    """The checkpoint's RobotSpec and the sim's; CheckpointMismatch when they differ."""
    from il_ros.models import CheckpointMismatch
    from il_ros.training.evaluate import checkpoint_spec
    from il_ros.training.spec import sim_spec
    spec = checkpoint_spec(checkpoint)
    expect = sim_spec(task, like=spec, robot=robot)
    diff = spec.mismatches(expect)
    if diff:
        raise CheckpointMismatch(f'{checkpoint} does not fit the {task} sim robot (checkpoint '
                                 f'!= robot): ' + '; '.join(diff))
    return spec


def evaluate_ros(checkpoint, task: str, episodes: int = 50, seed: int = keys.EVAL_SEED,
                 max_steps: int | None = None, use_ema: bool = True, progress: bool = True,
                 log_dir=None, startup_timeout: float = 120.0,
                 controller_params: dict | None = None) -> dict:
    """Run ``episodes`` episodes of ``task`` through sim_robot + controller (see module doc).

    Raises CheckpointMismatch when the checkpoint is for another robot, NodeDied when a node
    exits, TimeoutError when the graph does not come up or an episode stalls.
    """
    from std_srvs.srv import SetBool, Trigger  # noqa: F401 - fails early without ROS

    from il_ros.launcher import GraphRunner, ros_env
    from il_ros.sim.registry import make_env, TASKS
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    if seed < 1:
        raise ValueError(f'--transport ros needs seed >= 1 (the sim starts at seed - 1), got '
                         f'{seed}')
    from il_ros.training.spec import robot_argument, robot_of_checkpoint
    checkpoint = str(Path(checkpoint).resolve())
    robot = robot_of_checkpoint(checkpoint)
    spec = _check_fits(checkpoint, task, robot)
    rate = spec.control_rate_hz
    mirror = make_env(task, robot=robot, render=False, cameras=tuple(spec.cameras),
                      control_dt=1.0 / rate)
    limit = mirror.max_steps if max_steps is None else min(int(max_steps), mirror.max_steps)
    log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix='il_ros_eval_'))
    values = {'task': task, 'seed': str(seed - 1), 'rtf': '1.0', 'checkpoint': checkpoint,
              'enabled': 'false', 'cameras': '[' + ','.join(spec.cameras) + ']',
              'robot': robot_argument(robot, log_dir)}
    extra = {'sim_robot': {'state_rate_hz': rate},
             'controller': {'rate_hz': rate, 'use_ema': use_ema, 'status_rate_hz': 5.0,
                            'checkpoint_topic': "''", **(controller_params or {})}}
    runner = GraphRunner('deploy', values, log_dir, extra_params=extra, env=ros_env())
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pcpu0, wall0 = time.process_time(), time.perf_counter()
    runner.start(only=['sim_robot', 'controller'])
    client = None
    try:
        client = GraphClient('il_ros_eval', runner.env, runner)
        res = _drive(client, mirror, checkpoint, task, episodes, seed, limit, rate,
                     startup_timeout, progress)
    finally:
        if client is not None:
            client.close()
        runner.stop()
        mirror.close()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res['cpu_s'] = round(time.process_time() - pcpu0 + (cpu1.ru_utime - cpu0.ru_utime)
                         + (cpu1.ru_stime - cpu0.ru_stime), 2)
    res['wall_s'] = round(time.perf_counter() - wall0, 2)
    res['logs'] = str(log_dir)
    meta = read_checkpoint_meta(checkpoint)
    res['step'] = (meta.get('extra') or {}).get('step')
    res['weights'] = 'ema' if use_ema else 'raw'
    return res


def _drive(client: GraphClient, mirror, checkpoint: str, task: str, episodes: int, seed: int,
           limit: int, rate: float, startup_timeout: float, progress: bool) -> dict:
    import numpy as np
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from il_ros.ros.node_utils import STATE_QOS
    from il_ros.sim.runner import episode_result, judge, summarize_episodes
    states: deque = deque(maxlen=1000)
    episode_index = [None]               # state[0] of the newest /sim/state

    def on_state(msg):
        states.append(np.asarray(msg.data, np.float64))
        episode_index[0] = int(msg.data[0])
    client.node.create_subscription(Float64MultiArray, keys.TOPIC_SIM_STATE, on_state,
                                    STATE_QOS)
    client.spin_until(lambda: client.status is not None and client.status['checkpoint'] ==
                      checkpoint and not client.status['loading'], startup_timeout,
                      f'the controller to load {checkpoint} (status: {client.status})')
    client.spin_until(lambda: states, startup_timeout, f'{keys.TOPIC_SIM_STATE} from sim_robot')

    def enable(on: bool) -> None:
        ans = client.call(SetBool, 'controller/enable', SetBool.Request(data=on))
        if not ans.success:
            raise RuntimeError(f'controller/enable {on}: {ans.message}')

    per_episode = []
    reset_s = []
    bar, it = None, range(episodes)
    if progress:
        from tqdm import tqdm
        bar = tqdm(it, desc=f'eval {task} (ros)', unit='ep', file=sys.stderr, leave=False)
        it = bar
    successes = 0
    period = 1.0 / rate
    for k in it:
        enable(False)
        prev = episode_index[0]
        t_reset = time.monotonic()
        ans = client.call(Trigger, keys.SERVICE_SIM_RESET, Trigger.Request())
        want_seed = seed + k
        if not ans.success or not ans.message.endswith(f'seed {want_seed}'):
            raise RuntimeError(f'sim/reset answered {ans.message!r}; expected seed '
                               f'{want_seed}')

        def new_episode():
            while states and int(states[0][0]) == prev:
                states.popleft()
            return bool(states)
        client.spin_until(new_episode, 30, 'the new episode\'s /sim/state')
        ans = client.call(Trigger, 'controller/reset', Trigger.Request())
        enable(True)
        reset_s.append(time.monotonic() - t_reset)
        verdict, steps = None, 0
        deadline = time.monotonic() + limit * period * 2 + 30
        while verdict is None:
            client.spin_until(lambda: states, max(1.0, deadline - time.monotonic()),
                              f'sim/state of episode {k}')
            mirror.set_state(states.popleft())
            steps = mirror.steps
            verdict = judge(mirror, steps, limit)
        enable(False)
        result = episode_result(mirror, want_seed, verdict[0], steps, verdict[1])
        successes += result.success
        per_episode.append(result.to_dict())
        if bar is not None:
            bar.set_postfix(success=f'{successes / (k + 1):.2f}', refresh=False)
    client.spin_until(lambda: client.status and client.status['seq'] > 0, 5, 'a status')
    end = time.monotonic() + 0.5                 # one more status with the final counters
    seq = client.status['seq']
    client.spin_until(lambda: client.status['seq'] > seq or time.monotonic() > end, 5,
                      'a final status')
    st = client.status
    counters = ('ticks', 'policy_ticks', 'human_ticks', 'hold_ticks', 'underruns',
                'priming_ticks', 'missed_deadlines', 'late_plans', 'worker_errors',
                'tick_errors')
    return {
        **summarize_episodes(task, seed, per_episode, limit),
        'act_ms': float(st.get('plan_ms_p50') or 0.0),
        'per_episode': per_episode,
        'transport': 'ros', 'checkpoint': checkpoint,
        'reset_s': round(float(np.mean(reset_s)), 3),
        'controller': {**{c: st.get(c) for c in counters}, 'safety': st.get('safety'),
                       'dropped_actions': st.get('dropped_actions')},
    }
