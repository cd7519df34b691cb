"""Drive the ``dagger`` node graph from this process.

Supervised, recorded episodes; hot reloads; training through the trainer node (used by
il_ros/dagger/collect.py and the tests).

The graph (config/graph.yaml ``dagger``) runs as separate processes: sim_robot (real time),
controller, supervisor, recorder and trainer. :class:`DaggerDriver` is an rclpy node in
this process (``ros_eval.GraphClient``) that, per episode:

1. disarms the supervisor and disables the controller; calls ``/sim/reset`` and waits for
   the new episode's ``/sim/state``;
2. ``/recorder/start_episode``; ``/controller/reset``; arms the supervisor (unless the
   episode is unsupervised) and ``/controller/enable``;
3. mirrors every ``/sim/state`` into a non-rendering env and ends the episode on success,
   on the task's failure or at the step limit, counting the ticks ``/il/control_source``
   reports as ``intervention`` (the expert-labelled steps) and the takeovers;
4. disarms the supervisor, disables the controller, ``/recorder/stop_episode`` (success).
"""
from __future__ import annotations

from collections import deque
import json
import time

import numpy as np

from il_ros import keys
from il_ros.ros.ros_eval import GraphClient
from il_ros.sim.runner import judge


class DaggerDriver(GraphClient):
    """The in-process client of a running ``dagger`` graph (see the module doc)."""

    def __init__(self, env: dict, runner, task: str, control_rate_hz: float,
                 cameras=('front',), robot=None):
        super().__init__('il_ros_dagger', env, runner)
        from std_msgs.msg import Float64MultiArray, String

        from il_ros.ros.node_utils import STATE_QOS
        from il_ros.sim.registry import make_env
        self.task = task
        self.rate = float(control_rate_hz)
        self.mirror = make_env(task, robot=robot, render=False, cameras=tuple(cameras),
                               control_dt=1.0 / self.rate)
        self.states: deque = deque(maxlen=1000)
        self.episode_index: int | None = None
        self.sources: list[str] = []
        self.trainer_status: dict | None = None
        self.supervisor_status: dict | None = None
        self.node.create_subscription(Float64MultiArray, keys.TOPIC_SIM_STATE, self._on_state,
                                      STATE_QOS)
        self.node.create_subscription(String, keys.TOPIC_CONTROL_SOURCE,
                                      lambda m: self.sources.append(m.data), STATE_QOS)
        self.node.create_subscription(String, 'trainer/status', self._on_trainer, STATE_QOS)
        self.node.create_subscription(String, 'supervisor/status', self._on_supervisor,
                                      STATE_QOS)

    # ------------------------------------------------------------------ callbacks
    def _on_state(self, msg) -> None:
        self.states.append(np.asarray(msg.data, np.float64))
        self.episode_index = int(msg.data[0])

    def _on_trainer(self, msg) -> None:
        self.trainer_status = json.loads(msg.data)

    def _on_supervisor(self, msg) -> None:
        self.supervisor_status = json.loads(msg.data)

    # ------------------------------------------------------------------ services
    def _set_bool(self, name: str, on: bool) -> str:
        from std_srvs.srv import SetBool
        ans = self.call(SetBool, name, SetBool.Request(data=on))
        if not ans.success:
            raise RuntimeError(f'{name} {on}: {ans.message}')
        return ans.message

    def _trigger(self, name: str) -> str:
        from std_srvs.srv import Trigger
        ans = self.call(Trigger, name, Trigger.Request())
        if not ans.success:
            raise RuntimeError(f'{name}: {ans.message}')
        return ans.message

    def set_params(self, node: str, params: dict, timeout: float = 30.0) -> None:
        """Set parameters of ``node`` through its ``set_parameters`` service."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in params.items()])
        ans = self.call(SetParameters, f'/{node}/set_parameters', req, timeout)
        bad = [f'{k}: {r.reason}' for k, r in zip(params, ans.results) if not r.successful]
        if bad:
            raise RuntimeError(f'/{node} refused parameters: {"; ".join(bad)}')

    # ------------------------------------------------------------------ the graph
    def wait_ready(self, checkpoint: str | None, timeout: float = 180.0) -> None:
        """Wait for the sim's state and (when given) the controller running ``checkpoint``."""
        self.spin_until(lambda: self.states, timeout, f'{keys.TOPIC_SIM_STATE} from sim_robot')
        if checkpoint:
            self.wait_checkpoint(checkpoint, timeout)

    def wait_checkpoint(self, checkpoint: str, timeout: float = 180.0,
                        after_swaps: int = -1) -> None:
        """Wait until the controller runs ``checkpoint`` after more than ``after_swaps`` swaps.

        Raises RuntimeError when the controller refused it.
        """
        def loaded():
            s = self.status
            if s is None:
                return False
            if s.get('last_error') and checkpoint in s['last_error']:
                raise RuntimeError(f'the controller refused {checkpoint}: {s["last_error"]}')
            return (s['checkpoint'] == checkpoint and not s['loading']
                    and s.get('swaps', 0) > after_swaps)
        self.spin_until(loaded, timeout, f'the controller to load {checkpoint} (status: '
                        f'{self.status})')

    def load_checkpoint(self, checkpoint: str, timeout: float = 180.0) -> None:
        """Hot-load ``checkpoint`` into the running controller and wait until it runs.

        The controller's ``checkpoint`` parameter is set.
        """
        self.spin_until(lambda: self.status is not None, timeout, 'a controller status')
        swaps = self.status.get('swaps', 0)
        self.set_params('controller', {'checkpoint': checkpoint})
        self.wait_checkpoint(checkpoint, timeout, after_swaps=swaps)

    def run_episode(self, seed: int, max_steps: int, supervise: bool = True,
                    record: bool = True, timeout_factor: float = 2.0) -> dict:
        """One episode (see the module doc); ``seed`` is what the sim must report."""
        self._set_bool('supervisor/enable', False)
        self._set_bool('controller/enable', False)
        prev = self.episode_index
        msg = self._trigger(keys.SERVICE_SIM_RESET)
        if not msg.endswith(f'seed {seed}'):
            raise RuntimeError(f'sim/reset answered {msg!r}; expected seed {seed}')

        def new_episode():
            while self.states and int(self.states[0][0]) == prev:
                self.states.popleft()
            return bool(self.states)
        self.spin_until(new_episode, 30, "the new episode's /sim/state")
        if record:
            self._trigger('recorder/start_episode')
        self._trigger('controller/reset')
        if supervise:
            self._set_bool('supervisor/enable', True)
        self.sources.clear()
        self._set_bool('controller/enable', True)
        t0 = time.monotonic()
        deadline = t0 + max_steps / self.rate * timeout_factor + 30
        verdict = None
        while verdict is None:
            self.spin_until(lambda: self.states, max(1.0, deadline - time.monotonic()),
                            f'sim/state of the episode with seed {seed}')
            self.mirror.set_state(self.states.popleft())
            steps = self.mirror.steps
            verdict = judge(self.mirror, steps, max_steps)
        ok, failure = verdict
        self._set_bool('supervisor/enable', False)
        self._set_bool('controller/enable', False)
        stopped = ''
        if record:
            from std_srvs.srv import SetBool
            ans = self.call(SetBool, 'recorder/stop_episode', SetBool.Request(data=ok))
            stopped = ans.message
            if not ans.success:
                raise RuntimeError(f'recorder/stop_episode: {ans.message}')
        src = list(self.sources)
        human = sum(s == keys.SOURCE_INTERVENTION for s in src)
        takeovers = sum(1 for a, b in zip([''] + src, src)
                        if b == keys.SOURCE_INTERVENTION and a != b)
        return {'seed': seed, 'success': ok, 'failure': None if ok else failure,
                'steps': int(steps), 'ticks': len(src), 'human_ticks': human,
                'policy_ticks': sum(s == keys.SOURCE_POLICY for s in src),
                'takeovers': takeovers, 'wall_s': round(time.monotonic() - t0, 2),
                'bag': stopped.split(' ', 1)[0] if stopped else None}

    def train(self, params: dict, timeout: float = 3600.0, progress=None) -> dict:
        """Set the trainer's parameters, call ``/trainer/train``, wait for the run to end.

        Returns the final trainer status; raises RuntimeError when the run failed.
        """
        self.set_params('trainer', params)
        seq, started = [None], [False]
        self.spin_until(lambda: self.trainer_status is not None, 60, 'a /trainer/status')
        before = self.trainer_status.get('run_dir')
        self._trigger('trainer/train')
        self.trainer_status = None

        def done():
            s = self.trainer_status
            if s is None:
                return False
            if s['state'] in ('starting', 'training') or s.get('run_dir') != before:
                started[0] = True       # a 'done' of the previous run may still be in flight
            if progress is not None and s.get('step') != seq[0]:
                seq[0] = s.get('step')
                progress(s)
            return started[0] and s['state'] in ('done', 'stopped', 'failed')
        self.spin_until(done, timeout, 'the training run to finish')
        s = self.trainer_status
        if s['state'] != 'done':
            raise RuntimeError(f'training {s["state"]}: {s["message"]}')
        return s

    def close(self) -> None:
        """Close the mirror env and the client node."""
        try:
            self.mirror.close()
        finally:
            super().close()


RECORD_TOPICS = [keys.TOPIC_CONTROL_SOURCE, keys.TOPIC_TELEOP_COMMAND, keys.TOPIC_INTERVENTION,
                 'il/expert/label',
                 keys.TOPIC_SIM_STATE, keys.TOPIC_SIM_SUCCESS]
"""What a supervised sim episode records, besides the robot's cameras, joint states and
command topic."""


def start_sim_graph(task: str, log_dir, bags_dir, first_seed: int, cameras=('front',),
                    robot=None, rate_hz: float = 20.0, checkpoint: str | None = None,
                    with_trainer: bool = True, nodes: list[str] | None = None,
                    supervisor_params: dict | None = None,
                    controller_params: dict | None = None, trainer_params: dict | None = None,
                    env: dict | None = None, startup_timeout: float = 180.0):
    """Start the ``dagger`` graph for a sim task (no teleop) and connect a driver.

    ``nodes`` (default: sim_robot, controller, supervisor, recorder and, ``with_trainer``,
    trainer) picks the graph members to run, e.g. ``['trainer']`` to train only.
    The sim's first :meth:`DaggerDriver.run_episode` gets env seed ``first_seed`` (the sim
    starts at ``first_seed - 1``, an episode that is never used). Returns (runner, driver);
    close the driver, then stop the runner.
    """
    from pathlib import Path

    from il_ros.launcher import GraphRunner, ros_env
    from il_ros.robot import load_robot
    from il_ros.training.spec import robot_argument
    cams = list(cameras)
    robot = robot if robot is not None and not isinstance(robot, str) else load_robot(robot)
    robot.check_cameras(cams, 'the DAgger run')
    values = {'task': task, 'seed': str(first_seed - 1), 'rtf': '1.0',
              'cameras': '[' + ','.join(cams) + ']', 'out': str(Path(bags_dir).resolve()),
              'enabled': 'false', 'checkpoint': str(checkpoint) if checkpoint else "''",
              'robot': robot_argument(robot, log_dir)}
    topics = [robot.camera(c).topic for c in cams] + [robot.joint_states.topic,
                                                      robot.command.topic] + RECORD_TOPICS
    extra = {
        'sim_robot': {'state_rate_hz': rate_hz},
        'controller': {'rate_hz': rate_hz, 'status_rate_hz': 5.0, **(controller_params or {})},
        'supervisor': {'seed': first_seed - 1, **(supervisor_params or {})},
        'recorder': {'use_sim_time': True, 'task': task,
                     'topics': topics,
                     # the rounds move output_dir to <run>/round_k/bags beside bags_dir
                     'output_root': str(Path(bags_dir).resolve().parent)},
        'trainer': {'status_rate_hz': 2.0, **(trainer_params or {})},
    }
    if nodes is None:
        nodes = ['sim_robot', 'controller', 'supervisor', 'recorder'] + (
            ['trainer'] if with_trainer else [])
    runner = GraphRunner('dagger', values, Path(log_dir), extra_params=extra,
                         env=env or ros_env())
    runner.start(only=nodes)
    driver = None
    try:
        driver = DaggerDriver(runner.env, runner, task, rate_hz, cams, robot)
        if 'sim_robot' in nodes:
            driver.wait_ready(str(checkpoint) if checkpoint else None, startup_timeout)
        if 'supervisor' in nodes:
            driver.spin_until(lambda: driver.supervisor_status is not None, startup_timeout,
                              'a /supervisor/status')
        if 'trainer' in nodes:
            driver.spin_until(lambda: driver.trainer_status is not None, startup_timeout,
                              'a /trainer/status')
    except BaseException:
        if driver is not None:
            driver.close()
        runner.stop()
        raise
    return runner, driver
