"""controller: run a policy checkpoint at a fixed rate, behind a safety filter and an arbiter.

The arbiter hands control to a person who takes over (docs/controller.md).

Every tick (a timer at ``rate_hz``, 20 Hz by default):

1. a checkpoint that finished loading in the background is swapped in (tick boundary);
2. the observation is built from the newest camera images and joint state (joints mapped by
   name into the checkpoint's order); a missing, wrong-sized, non-colour, non-finite or
   stale stream (by receive time, or a header stamp that stopped advancing), or a joint
   state naming a joint twice, makes it invalid (HOLD, with a throttled warning naming the
   topic);
3. the arbiter picks the source (il_ros.control.arbiter): HUMAN while deadman heartbeats
   arrive on the intervention topic and the human's command is fresh; HOLD while they
   arrive without one, and (latched until ~/enable or ~/reset) after heartbeats that
   stopped without a hand-back; else POLICY when enabled with a policy and a valid
   observation, else HOLD. Every entry into POLICY resets the policy (history, LSTM state,
   chunk queue), so it is re-primed from the current observations;
4. POLICY: the observation goes to the inference worker (a plain thread, never the
   executor), which calls ``policy.observe`` every tick and ``policy.plan`` when the action
   queue runs low; a chunk's actions are keyed by tick and the late ones dropped. When the
   queue has no action for this tick the tick waits for the worker at most
   ``max_wait_fraction`` of a period, then HOLDs;
5. the command (policy's, human's, or none) passes the safety filter (disabled -> nothing,
   stale -> HOLD, NaN/Inf/size -> HOLD, clamp, step limit) and is published through the
   command adapter; ``/il/control_source`` says policy / intervention / hold.

Checkpoints load from the ``checkpoint`` parameter (set it at run time to hot-load), the
``~/load_checkpoint`` Trigger (reloads the ``checkpoint`` parameter's path) and the trainer's
latched ``checkpoint_topic``. A checkpoint that does not fit the robot is refused at once
(the service answers false naming the fields, a parameter set is rejected), one whose
warm-up actions are not finite is refused when loaded, and the running policy keeps
running; the ``checkpoint`` parameter always names the running checkpoint.

Parameters are checked at start-up (one line and exit code 2 for a bad value); the step
limits are > 0, or ``inf`` only with ``allow_unlimited_step`` (docs/controller.md).
"""
from __future__ import annotations

from collections import defaultdict, deque
import json
import math
import os
from pathlib import Path
import queue
import threading
import time
import traceback

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter as RclParameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from il_ros import checkpoint_meta, keys
from il_ros.control.arbiter import Source, TakeoverArbiter
from il_ros.control.chunks import ActionQueue
from il_ros.control.safety import (check_limit_settings, check_step_settings, SafetyConfig,
                                   SafetyFilter, SettingError, Status, step_limits,
                                   StepLimitError)
from il_ros.control.streams import duplicate_names, image_format_problem, StreamClock
from il_ros.render import setup_headless_gl
from il_ros.ros.command_adapters import ADAPTERS, make_adapter
from il_ros.ros.conversions import array_from_msg, image_to_rgb
from il_ros.ros.node_utils import (COMMAND_QOS, declare, ParameterError, run, SENSOR_QOS,
                                   STATE_QOS)

CHECKPOINT_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
"""The trainer's ~/checkpoint is latched: a controller started later still gets the newest."""

SUPPORTED_PROPRIO = (keys.OBS_JOINT_POS, keys.OBS_JOINT_VEL)
STEP_PARAMS = ('max_step', 'max_step_other', 'max_step_per_value')
RUNTIME_PARAMS = ('checkpoint', 'enabled', 'use_sim_time', *STEP_PARAMS)
"""Parameters that may change while the node runs; the others are read at start-up."""
JS = ' joint_states'
"""Key of the joint states in Controller.clocks (no camera name starts with a space)."""
MAX_BACKLOG = 10
"""Inference jobs waiting in the worker beyond which the policy is stalled (HOLD, reset)."""


class Refused(ValueError):
    """A checkpoint that cannot drive this robot (message names the reason)."""


def _read_meta(path) -> dict:
    """Return the JSON description of a checkpoint (no weights; fast, for early refusal)."""
    try:
        meta = checkpoint_meta.read_checkpoint_meta(path)
    except (OSError, ValueError) as e:
        raise Refused(str(e)) from None
    if not isinstance(meta['config'].get('proprio_keys'), list):
        raise Refused(f'{checkpoint_meta.checkpoint_config_file(path)}: invalid checkpoint '
                      f'description: no proprio_keys list in its config')
    return meta


def _stamp_ns(msg) -> int:
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


def _mtime(path) -> float | None:
    try:
        return checkpoint_meta.checkpoint_config_file(path).stat().st_mtime_ns
    except OSError:
        return None


def sim_limits(action_names: list[str]) -> tuple[list[float], list[float]] | None:
    """Joint limits of the sim arm when ``action_names`` are its actions, else None."""
    from il_ros.sim.env import ARM_JOINTS, GRIPPER
    if list(action_names) != ARM_JOINTS + [GRIPPER]:
        return None
    from il_ros.sim import make_env
    env = make_env('lift', render=False)
    try:
        return env.action_low.tolist(), env.action_high.tolist()
    finally:
        env.close()


class PolicyWorker:
    """Runs ``policy.reset/observe/plan`` in one plain thread, in submission order.

    The executor thread submits one job per POLICY tick and never runs torch itself. A job
    observes its tick's frame (so the history and an LSTM advance one frame per tick) and,
    when asked, plans a chunk whose first action is meant for that tick.
    """

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._cv = threading.Condition()
        self._done: list[tuple] = []       # (gen, tick, chunk | None, error | None, seconds)
        self.backlog = 0
        self.plan_s: list[float] = []      # recent plan-job durations (observe + plan)
        self.plan_hist: deque = deque(maxlen=100_000)   # all of them, for stats_file
        self._thread = threading.Thread(target=self._loop, name='il_ros-policy', daemon=True)
        self._thread.start()

    def submit(self, gen: int, policy, obs: dict | None, tick: int, plan: bool,
               reset: bool = False) -> None:
        """Queue a job: reset, observe ``obs`` for ``tick``, and plan when ``plan``."""
        with self._cv:
            self.backlog += 1
        self._jobs.put((gen, policy, obs, tick, plan, reset))

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            gen, policy, obs, tick, plan, reset = job
            t0 = time.perf_counter()
            chunk = err = None
            try:
                if reset:
                    policy.reset()
                if obs is not None:
                    policy.observe(obs)
                if plan:
                    chunk = np.asarray(policy.plan(), np.float64)
            except Exception as e:  # noqa: BLE001 - reported to the tick, which HOLDs
                err = f'{type(e).__name__}: {e}'
            dt = time.perf_counter() - t0
            with self._cv:
                self.backlog -= 1
                if plan or err:
                    self._done.append((gen, tick, chunk, err, dt))
                    if plan and err is None:
                        self.plan_s = (self.plan_s + [dt])[-50:]
                        self.plan_hist.append(round(dt * 1e3, 3))
                self._cv.notify_all()

    def take(self) -> list[tuple]:
        """Finished plans (and errors) since the last call."""
        with self._cv:
            out, self._done = self._done, []
        return out

    def wait(self, gen: int, tick: int, deadline: float) -> None:
        """Block until a result of ``gen`` for ``tick`` or later is done, or ``deadline``.

        ``deadline`` is a time.perf_counter value.
        """
        with self._cv:
            while not any(g == gen and t >= tick for g, t, *_ in self._done):
                left = deadline - time.perf_counter()
                if left <= 0:
                    return
                self._cv.wait(left)

    def stop(self) -> None:
        """Stop the worker thread after the queued jobs (waits up to 5 s)."""
        self._jobs.put(None)
        self._thread.join(timeout=5.0)


class Controller(Node):
    """The controller node (see the module docstring)."""

    def __init__(self):
        super().__init__('controller')
        p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        p('checkpoint', '', 'Policy checkpoint folder. Empty: start without a policy (HOLD). '
          'Setting it at run time hot-loads the checkpoint (refused, with the reason, when '
          'it does not fit the robot); ~/load_checkpoint reloads it.')
        self.use_ema = p('use_ema', True, 'Load the EMA weights when the checkpoint has them.')
        self.rate = p('rate_hz', 20.0, 'Control rate (Hz); a checkpoint trained at another '
                      'rate is refused.', min=0.0, min_exclusive=True)
        self.enabled = p('enabled', False, 'Start enabled. Disabled: nothing is published on '
                         'the command topic at all. Toggle with ~/enable (SetBool).')
        self.joint_names_param = p(
            'joint_names', [], 'Joint names the policy reads from the joint states, in its '
            'order; empty: the checkpoint\'s.', array_type='string')
        self.action_names_param = p(
            'action_names', [], 'Command value names, in the policy\'s action order; empty: '
            'the checkpoint\'s.', array_type='string')
        self.lower_param = p('joint_lower', [], 'Lower limit of each command value (action '
                             'order); empty: the sim arm\'s limits when the action names are '
                             'the sim arm\'s, else required.', array_type='double')
        self.upper_param = p('joint_upper', [], 'Upper limit of each command value (see '
                             'joint_lower).', array_type='double')
        self.allow_unlimited = p('allow_unlimited_step', False, 'Accept .inf step limits '
                                 '(no step limit; only the joint limits clamp); logged as a '
                                 'warning and listed in ~/status. Never 0, negative or NaN.')
        self.max_step = p('max_step', 0.1, 'Largest change per tick of each command value '
                          'that is a measured joint (rad or m); > 0, or .inf with '
                          'allow_unlimited_step.')
        self.max_step_other = p('max_step_other', 1.0, 'Largest change per tick of command '
                                'values that are not joints in the joint states (e.g. a '
                                'gripper command in [0, 1]); > 0, or .inf with '
                                'allow_unlimited_step.')
        self.max_step_values = p('max_step_per_value', [], 'Per command value (action order) '
                                 'step limits; overrides max_step and max_step_other.',
                                 array_type='double')
        self.watchdog_periods = p('watchdog_periods', 3.0, 'Observations (any camera or the '
                                  'joint states) older than this many periods -> HOLD; a '
                                  'stream whose header stamp stops advancing counts as old.',
                                  min=1.0)
        takeover = p('takeover_timeout_s', 0.5, 'Heartbeats that stop this long without a '
                     'hand-back (Bool false) lapse into a latched HOLD (until ~/enable or '
                     '~/reset).', min=0.0, min_exclusive=True)
        human_timeout = p('human_command_timeout_s', 0.25, 'A human command older than this '
                          'is never executed (HOLD while the human holds control).', min=0.0,
                          min_exclusive=True)
        self.ensemble_k = p('ensemble_k', 0.0, 'Temporal ensembling of overlapping chunks, '
                            'older predictions weighted exp(-k * age); 0: off (receding '
                            'horizon: a newer chunk replaces the older one).', min=0.0)
        self.plan_ahead_param = p('plan_ahead', 0, 'Plan a new chunk when fewer than this '
                                  'many actions are queued; 0: auto (from the measured plan '
                                  'latency: the worst of the last 20 plans in ticks, + 2).',
                                  min=0)
        self.max_wait = p('max_wait_fraction', 0.6, 'A tick with no queued action waits at '
                          'most this fraction of a period for the worker, then HOLDs.',
                          min=0.0, max=1.0)
        self.adapter_kind = p('command_adapter', 'float64_multi_array',
                              f'Command message: one of {ADAPTERS} (twist_stamped is not '
                              'implemented).')
        self.command_topic = p('command_topic', keys.TOPIC_COMMAND, 'Robot command topic.')
        self.cameras_param = p('cameras', [], 'Cameras the policy reads; empty: the '
                               'checkpoint\'s.', array_type='string')
        self.camera_topics_param = p(
            'camera_topics', [], 'CAMERA=TOPIC pairs; a camera not listed uses '
            '/camera/<camera>/image_raw. A topic ending in /compressed is read as '
            'CompressedImage.', array_type='string')
        self.js_topic = p('joint_states_topic', keys.TOPIC_JOINT_STATES,
                          'sensor_msgs/JointState of the robot.')
        intervention_topic = p('intervention_topic', keys.TOPIC_INTERVENTION,
                               'Deadman heartbeats (Bool: True holds human control, False '
                               'releases it at once).')
        human_topic = p('human_command_topic', keys.TOPIC_TELEOP_COMMAND,
                        'Human command (Float64MultiArray, action order) used while human '
                        'control holds.')
        source_topic = p('control_source_topic', keys.TOPIC_CONTROL_SOURCE,
                         'Control source (policy / intervention / hold), every tick.')
        ckpt_topic = p('checkpoint_topic', '/trainer/checkpoint', 'Latched String topic with '
                       'checkpoint paths to hot-load (the trainer\'s ~/checkpoint); empty: '
                       'none.')
        status_rate = p('status_rate_hz', 1.0, 'Rate of ~/status (String, JSON).', min=0.0,
                        min_exclusive=True)
        self.stats_file = p('stats_file', '', 'Write per-tick timings (JSON) here on shutdown '
                            '(bench/controller.py); empty: do not.')
        threads = p('torch_threads', 1, 'torch CPU threads (1: measured best for batch-1 '
                    'control on a shared machine).', min=1)
        nice = p('nice', 0, 'Change the process\'s CPU priority by this much (os.nice) at '
                 'start-up; < 0 puts the control loop ahead of training jobs on a shared '
                 'machine (needs CAP_SYS_NICE or root).', min=-20, max=19)
        self._check_start_up()
        self.period = 1.0 / self.rate
        if nice:
            try:
                os.nice(int(nice))
            except OSError as e:
                self.get_logger().warning(f'nice {nice}: {e} (needs CAP_SYS_NICE); running at '
                                          'the default priority')
        import torch

        import il_ros.models.checkpoint  # noqa: F401 - imported now, not by the first hot load
        torch.set_num_threads(max(1, int(threads)))

        self.log = self.get_logger()
        self.lock = threading.Lock()           # guards _pending / _load_seq with the loaders
        self.worker = PolicyWorker()
        self.arbiter = TakeoverArbiter(timeout_s=takeover, command_timeout_s=human_timeout)
        self.queue = ActionQueue(self.period, self.ensemble_k or None)
        self.policy = None
        self.policy_path = None
        self.policy_mtime = None               # of its policy.json when it was loaded
        self.gen = 0
        self.robot = None                      # RobotSpec the policies must fit, set at 1st load
        self.safety: SafetyFilter | None = None
        self.adapter = None
        self.pub_cmd = None
        self.images: dict[str, tuple] = {}     # camera -> (msg, receive time)
        self.clocks = defaultdict(StreamClock)  # camera (or JS) -> newest new sample
        self.encodings: dict[str, str] = {}    # camera -> encoding of its last good image
        self._rgb: dict[str, tuple] = {}       # camera -> (msg, rgb) conversion cache
        self.js = None                         # (msg, receive time)
        self.camera_topics: dict[str, str] = {}
        self.primed = False
        self.inflight: set[int] = set()
        self.need_reset = True                 # reset + re-prime at the next POLICY tick
        self._reset_next = False               # the next worker job resets the policy first
        self.clear_on_chunk = False
        self.stalled = False
        self._pending = None                   # loaded policy waiting for the tick boundary
        self._failed = None                    # path whose background load failed
        self._echo = False                     # the node itself sets `checkpoint` (no load)
        self._load_seq = 0
        self.loading = None
        self.last_error = ''
        self._warned: dict[str, float] = {}
        self.k = -1
        self.t_origin = None
        self.last_source = keys.SOURCE_HOLD
        self.last_reason = 'starting'
        self.source_since = 0                  # tick at which the current source began
        self.swap_tick = None                  # tick of the last checkpoint swap
        self.counts = {'ticks': 0, 'policy_ticks': 0, 'human_ticks': 0, 'hold_ticks': 0,
                       'published': 0, 'underruns': 0, 'priming_ticks': 0, 'late_plans': 0,
                       'missed_deadlines': 0, 'swaps': 0, 'refused': 0, 'resets': 0,
                       'worker_errors': 0, 'tick_errors': 0}
        self.ticks_log: list[tuple] = []       # (tick, jitter_ms, latency_ms, source, reason)
        self._win = {'lat': [], 'gap': [], 'last_start': None}
        self.status_seq = 0

        self.pub_source = self.create_publisher(String, source_topic, STATE_QOS)
        self.pub_status = self.create_publisher(String, '~/status', STATE_QOS)
        self.create_subscription(JointState, self.js_topic, self._on_joints, SENSOR_QOS)
        self.create_subscription(Bool, intervention_topic, self._on_intervention, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, human_topic, self._on_human, COMMAND_QOS)
        if ckpt_topic:
            self.create_subscription(String, ckpt_topic, self._on_checkpoint_topic,
                                     CHECKPOINT_QOS)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(Trigger, '~/load_checkpoint', self._on_load_service)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.cameras_param:
            self._subscribe_cameras(self.cameras_param)
        if self.action_names_param and (self.lower_param or sim_limits(
                self.action_names_param)):
            # The robot's command layout is known: human takeover works before any policy.
            self._setup_safety(self.action_names_param, self.joint_names_param)
        self.create_timer(self.period, self._tick)
        self.create_timer(1.0 / status_rate, self._publish_status)
        path = self.get_parameter('checkpoint').value
        if path:
            try:
                self._request_load(path, 'parameter')
            except Refused as e:
                self._refuse(str(e))
                self._sync_checkpoint_param(str(Path(path).expanduser().resolve()))
        self.log.info(f'{self.rate:g} Hz, {"enabled" if self.enabled else "disabled"}, '
                      f'adapter {self.adapter_kind} on {self.command_topic}, checkpoint '
                      f'{path or "(none: HOLD until one is loaded)"}')

    # ------------------------------------------------------------------ robot set-up
    def _check_start_up(self) -> None:
        """Refuse parameters the node cannot run with (ParameterError: one line, exit 2)."""
        kind = self.adapter_kind
        if kind == 'twist_stamped':
            raise ParameterError(f'parameter command_adapter={kind!r}: not implemented (a '
                                 'joint-position policy gives no Cartesian velocity); use '
                                 'one of float64_multi_array, joint_trajectory, joint_state')
        if kind not in ADAPTERS:
            raise ParameterError(f'parameter command_adapter={kind!r}: must be one of '
                                 f'{list(ADAPTERS[:3])}')
        try:
            check_limit_settings(self.lower_param, self.upper_param, self.action_names_param)
            unlimited = check_step_settings(self.max_step, self.max_step_other,
                                            self.max_step_values, self.allow_unlimited,
                                            self.action_names_param)
        except SettingError as e:
            raise ParameterError(f'parameter {e}') from None
        bad = [s for s in self.camera_topics_param if '=' not in s]
        if bad:
            raise ParameterError(f'parameter camera_topics={list(self.camera_topics_param)!r}:'
                                 f' entries must be CAMERA=TOPIC ({bad[0]!r} is not)')
        if unlimited:
            self.get_logger().warning(
                f'allow_unlimited_step: {", ".join(unlimited)} = inf: NO STEP LIMIT on the '
                'command values it applies to (only the joint limits clamp them)')

    def _subscribe_cameras(self, cameras: list[str]) -> None:
        pairs = dict(s.split('=', 1) for s in self.camera_topics_param if '=' in s)
        for cam in cameras:
            if cam in self.camera_topics:
                continue
            topic = pairs.get(cam, keys.camera_topic(cam))
            self.camera_topics[cam] = topic
            cls = CompressedImage if topic.rstrip('/').endswith('compressed') else Image
            self.create_subscription(cls, topic, lambda m, c=cam: self._on_image(c, m),
                                     SENSOR_QOS)

    def _limits(self, action_names: list[str]) -> tuple[list[float], list[float]]:
        if self.lower_param or self.upper_param:
            if not (len(self.lower_param) == len(self.upper_param) == len(action_names)):
                raise Refused(f'joint_lower ({len(self.lower_param)}) and joint_upper '
                              f'({len(self.upper_param)}) need one value per command value '
                              f'({len(action_names)}: {action_names})')
            return list(self.lower_param), list(self.upper_param)
        limits = sim_limits(action_names)
        if limits is None:
            raise Refused(f'no joint limits for the command values {action_names}: set the '
                          'joint_lower and joint_upper parameters')
        return limits

    def _setup_safety(self, action_names: list[str], joint_names: list[str]) -> None:
        lower, upper = self._limits(action_names)
        step = self._step_limits(action_names, joint_names)
        cfg = SafetyConfig(lower=lower, upper=upper, max_step=step,
                           watchdog_periods=self.watchdog_periods,
                           allow_unlimited=self.allow_unlimited)
        self.safety = SafetyFilter(cfg, enabled=self.enabled)
        self.action_names = list(action_names)
        self.step_joint_names = list(joint_names)
        self.adapter = make_adapter(self.adapter_kind, self.action_names, self.period)
        self.pub_cmd = self.create_publisher(self.adapter.msg_type, self.command_topic,
                                             COMMAND_QOS)
        self.log.info(f'command values {self.action_names}, limits {lower} .. {upper}, step '
                      f'limits {cfg.max_step}')
        self._warn_unlimited()

    def _step_limits(self, action_names, joint_names, **override) -> list[float]:
        """Step limit per command value from the parameters (``override``: new values)."""
        v = {'max_step': self.max_step, 'max_step_other': self.max_step_other,
             'max_step_per_value': self.max_step_values, **override}
        try:
            return step_limits(action_names, joint_names, v['max_step'], v['max_step_other'],
                               v['max_step_per_value'], self.allow_unlimited)
        except StepLimitError as e:
            raise Refused(f'parameter {e}') from None

    def _warn_unlimited(self) -> None:
        off = self.unlimited_step()
        if off:
            self.log.warning(f'NO STEP LIMIT on {off} (allow_unlimited_step: inf step '
                             'limits; only the joint limits clamp them)')

    def unlimited_step(self) -> list[str]:
        """Names of the command values without a step limit (``inf``)."""
        if self.safety is None:
            return []
        return [self.action_names[i] for i in self.safety.unlimited]

    # ------------------------------------------------------------------ checkpoints
    def _expect(self, meta: dict):
        """The RobotSpec a checkpoint with this description must fit."""
        from il_ros.models.policy_config import RobotSpec
        if self.robot is not None:
            return self.robot
        spec = RobotSpec.from_dict(meta['spec'])
        d = spec.to_dict()
        d.update(control_rate_hz=self.rate)
        for field, param in (('joint_names', self.joint_names_param),
                             ('action_names', self.action_names_param),
                             ('cameras', self.cameras_param)):
            if param:
                d[field] = list(param)
        if self.safety is not None:
            d['action_names'] = self.action_names
            d['action_dim'] = len(self.action_names)
        return RobotSpec.from_dict(d)

    def _check(self, path: str):
        """Refuse (raise Refused) a checkpoint that does not fit; return the expected spec."""
        from il_ros.models.policy_config import RobotSpec
        meta = _read_meta(path)
        try:
            spec = RobotSpec.from_dict(meta['spec'])
            expect = self._expect(meta)
        except (TypeError, ValueError) as e:
            raise Refused(f'{path}: invalid robot spec in the checkpoint: {e}') from None
        diff = spec.mismatches(expect)
        if diff:
            raise Refused(f'{path} does not fit this robot (checkpoint != robot): '
                          + '; '.join(diff))
        proprio = list(meta['config']['proprio_keys'])
        unknown = [k for k in proprio if k not in SUPPORTED_PROPRIO]
        if unknown:
            raise Refused(f'{path}: proprio keys {unknown} are not supported (the controller '
                          f'reads {list(SUPPORTED_PROPRIO)} from the joint states)')
        joints = expect.joint_names or spec.joint_names
        if proprio and not joints:
            raise Refused(f'{path}: the checkpoint names no joints; set the joint_names '
                          'parameter (the joint-state order the policy was trained on)')
        if proprio and len(joints) * len(proprio) != spec.proprio_dim:
            raise Refused(f'{path}: {len(joints)} joint names x {proprio} != proprio_dim '
                          f'{spec.proprio_dim}')
        if self.robot is None:
            actions = expect.action_names or spec.action_names
            if self.safety is None:
                if not actions and (self.lower_param or self.adapter_kind !=
                                    'float64_multi_array'):
                    raise Refused(f'{path}: the checkpoint names no action values; set the '
                                  'action_names parameter')
                self._limits(actions)   # raises Refused when no limits are known
                self._step_limits(actions, joints)
        return expect

    def _request_load(self, path: str, origin: str) -> str:
        """Check ``path`` now (raises Refused) and load it in a background thread."""
        path = str(Path(path).expanduser().resolve())
        mtime = _mtime(path)
        expect = self._check(path)
        with self.lock:
            self._load_seq += 1
            seq = self._load_seq
            self.loading = path
        threading.Thread(target=self._load, args=(path, expect, seq, origin, mtime),
                         name='il_ros-load', daemon=True).start()
        return path

    def _load(self, path: str, expect, seq: int, origin: str, mtime) -> None:
        """Load in the background, warm up once, and hand over to the tick.

        The warm-up call matters: the first call of a fresh model is slow. It is also the
        last check: a checkpoint whose warm-up actions are not finite (NaN weights) is
        refused, and the running policy keeps running.
        """
        from il_ros.models import load_checkpoint
        try:
            t0 = time.perf_counter()
            policy, extra = load_checkpoint(path, expect=expect, use_ema=self.use_ema)
            spec = policy.spec
            warm = {keys.image_key(c): np.zeros((*spec.image_size, 3), np.uint8)
                    for c in spec.cameras}
            for k in policy.cfg.proprio_keys:
                warm[k] = np.zeros(len(expect.joint_names or spec.joint_names))
            policy.reset()
            policy.observe(warm)
            chunk = np.asarray(policy.plan(), np.float64)
            policy.reset()
            if not np.all(np.isfinite(chunk)):
                raise Refused(f'its warm-up actions are not finite ({chunk.ravel()[:4]}...): '
                              'NaN or Inf weights or normalizer statistics?')
            dt = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - refused; the running policy keeps running
            why = str(e) if isinstance(e, Refused) else f'{type(e).__name__}: {e}'
            with self.lock:
                if seq == self._load_seq:
                    self.loading = None
                    self._failed = path       # the tick sets the parameter back
            self._refuse(f'{path}: refused at load ({why}); '
                         f'{"the running policy keeps running" if self.policy else "HOLD"}')
            return
        with self.lock:
            if seq != self._load_seq:
                return                            # a newer request superseded this one
            self._pending = (policy, path, expect, extra, dt, origin, mtime)

    def _refuse(self, message: str) -> None:
        self.counts['refused'] += 1
        self.last_error = message
        self.log.error(message)

    def _swap_in(self) -> None:
        """At a tick boundary: make a loaded checkpoint the running one."""
        with self.lock:
            pending, self._pending = self._pending, None
            failed, self._failed = self._failed, None
            if pending is not None:
                self.loading = None
        if failed is not None and pending is None:
            self._sync_checkpoint_param(failed)
        if pending is None:
            return
        policy, path, expect, extra, dt, origin, self.policy_mtime = pending
        first = self.robot is None
        if first:
            from il_ros.models.policy_config import RobotSpec
            d = expect.to_dict()
            d['joint_names'] = expect.joint_names or policy.spec.joint_names
            d['action_names'] = expect.action_names or policy.spec.action_names
            self.robot = RobotSpec.from_dict(d)
            self.joint_names = list(self.robot.joint_names)
            self.proprio = list(policy.cfg.proprio_keys)
            if self.safety is None:
                self._setup_safety(self.robot.action_names or
                                   [f'a{i}' for i in range(self.robot.action_dim)],
                                   self.joint_names)
            self._subscribe_cameras(list(self.robot.cameras))
        self.proprio = list(policy.cfg.proprio_keys)
        old = self.policy_path
        self.policy, self.policy_path = policy, path
        # The fresh policy (already reset) is primed by the next POLICY ticks; the old one's
        # queued actions run until its first chunk arrives, so the loop never stalls.
        self.gen += 1
        self.inflight.clear()
        self.clear_on_chunk = True
        self.counts['swaps'] += 1
        self.swap_tick = self.k
        self.last_error = ''
        self._sync_checkpoint_param(None)
        self.log.info(f'policy {"loaded" if first else "swapped"} ({origin}): {path} (step '
                      f'{extra.get("step")}, {policy.cfg.head["name"]} head, Ta '
                      f'{policy.cfg.action_exec}, loaded in {dt:.1f}s)'
                      + (f', replacing {old}' if old else ''))

    # ------------------------------------------------------------------ callbacks
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, cam: str, msg) -> None:
        t = self._now()
        self.images[cam] = (msg, t)
        self.clocks[cam].update(t, _stamp_ns(msg))

    def _on_joints(self, msg: JointState) -> None:
        t = self._now()
        self.js = (msg, t)
        self.clocks[JS].update(t, _stamp_ns(msg))

    def _on_intervention(self, msg: Bool) -> None:
        self.arbiter.heartbeat(self._now(), bool(msg.data))

    def _on_human(self, msg: Float64MultiArray) -> None:
        self.arbiter.human_command(array_from_msg(msg), self._now())

    def _on_checkpoint_topic(self, msg: String) -> None:
        # The trainer re-uses one folder (checkpoints/best) for each new best: the same path
        # with a newer policy.json is a new checkpoint.
        if not msg.data or (str(Path(msg.data).resolve()) == self.policy_path
                            and _mtime(msg.data) == self.policy_mtime):
            return
        try:
            self._request_load(msg.data, 'checkpoint topic')
        except Refused as e:
            self._refuse(str(e))

    def _on_load_service(self, request, response):
        path = self.get_parameter('checkpoint').value
        if not path:
            response.success = False
            response.message = 'the checkpoint parameter is empty: set it to a checkpoint folder'
            return response
        try:
            path = self._request_load(path, '~/load_checkpoint')
        except Refused as e:
            self._refuse(str(e))
            response.success, response.message = False, str(e)
            return response
        response.success = True
        response.message = (f'loading {path} in the background; it takes over at a tick '
                            'boundary (see ~/status)')
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        if self._echo:
            return SetParametersResult(successful=True)    # _sync_checkpoint_param
        for prm in params:
            if prm.name not in RUNTIME_PARAMS:
                return SetParametersResult(successful=False, reason=(
                    f'{prm.name} is read at start-up; only {RUNTIME_PARAMS} change at run '
                    'time'))
        steps = {prm.name: (list(prm.value) if prm.name == 'max_step_per_value'
                            else prm.value) for prm in params if prm.name in STEP_PARAMS}
        new_step = None
        if steps:
            v = {'max_step': self.max_step, 'max_step_other': self.max_step_other,
                 'max_step_per_value': self.max_step_values, **steps}
            try:
                check_step_settings(v['max_step'], v['max_step_other'],
                                    v['max_step_per_value'], self.allow_unlimited)
                if self.safety is not None:
                    new_step = self._step_limits(self.action_names, self.step_joint_names,
                                                 **steps)
            except (StepLimitError, Refused) as e:
                reason = str(e) if isinstance(e, Refused) else f'parameter {e}'
                self.log.error(f'refused: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        for prm in params:
            if prm.name == 'checkpoint' and prm.value:
                try:
                    self._request_load(prm.value, 'parameter')
                except Refused as e:
                    self._refuse(str(e))
                    return SetParametersResult(successful=False, reason=str(e))
            elif prm.name == 'enabled':
                self._set_enabled(bool(prm.value))
        if steps:
            self.max_step = steps.get('max_step', self.max_step)
            self.max_step_other = steps.get('max_step_other', self.max_step_other)
            self.max_step_values = steps.get('max_step_per_value', self.max_step_values)
            if new_step is not None:
                self.safety.set_step(new_step)
                self.log.info(f'step limits {new_step}')
                self._warn_unlimited()
        return SetParametersResult(successful=True)

    def _sync_checkpoint_param(self, failed: str | None) -> None:
        """Make the ``checkpoint`` parameter name the running checkpoint ('' for none).

        After a swap it names the running one (also after a load from the trainer topic or
        ~/load_checkpoint); after the background load of the path it names failed, it goes
        back. Runs in the executor (the tick), never in a loader thread.
        """
        value = self.get_parameter('checkpoint').value
        current = str(Path(value).expanduser().resolve()) if value else ''
        running = self.policy_path or ''
        if (failed is not None and current != failed) or current == running:
            return
        self._echo = True
        try:
            self.set_parameters([RclParameter('checkpoint', value=running)])
        finally:
            self._echo = False
        self.log.info(f'parameter checkpoint={running!r}: the running checkpoint'
                      + (f' ({failed} was refused)' if failed else ''))

    def _set_enabled(self, on: bool) -> None:
        if on:
            self._rearm('enabled')
        if on and not self.enabled:
            self.need_reset = True
            if self.safety is not None:
                self.safety.reset(None)  # HOLD/step limit start from the measured pose
        self.enabled = on
        if self.safety is not None:
            self.safety.enabled = on
        self.log.info('enabled' if on else 'disabled: nothing is published on '
                      f'{self.command_topic}')

    def _on_enable(self, request, response):
        self._set_enabled(bool(request.data))
        response.success = True
        response.message = 'enabled' if self.enabled else 'disabled'
        if self.enabled and self.policy is None:
            response.message += (' (no policy loaded: HOLD until one is'
                                  + (f'; loading {self.loading})' if self.loading else ')'))
        return response

    def _rearm(self, why: str) -> None:
        if self.arbiter.latched:
            self.arbiter.rearm()
            self.log.info(f'{why}: the HOLD latched by lapsed heartbeats is cleared')

    def _on_reset(self, request, response):
        self._rearm('~/reset')
        self.need_reset = True
        if self.safety is not None:
            self.safety.reset(None)
        self.counts['resets'] += 1
        response.success = True
        response.message = 'the policy is reset and re-primed at the next policy tick'
        return response

    # ------------------------------------------------------------------ observation
    def _warn(self, key: str, message: str, every_s: float = 2.0) -> None:
        t = time.monotonic()
        if t - self._warned.get(key, -1e9) >= every_s:
            self._warned[key] = t
            self.log.warning(message)

    def _joint_values(self, msg: JointState, names: list[str], field: str) -> np.ndarray | None:
        values = getattr(msg, field)
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in names if n not in index]
        if missing or len(values) < len(msg.name):
            self._warn(f'js_{field}', f'{self.js_topic}: no {field} for joints '
                       f'{missing or names} (has {list(msg.name)} with {len(values)} '
                       f'{field} values): HOLD')
            return None
        out = np.array([values[index[n]] for n in names], np.float64)
        if not np.all(np.isfinite(out)):
            self._warn(f'js_nan_{field}', f'{self.js_topic}: non-finite {field} {out.tolist()} '
                       f'for {names}: HOLD')
            return None
        return out

    def _observation(self, now: float) -> tuple[dict | None, float, str | None]:
        """(obs or None, age of the stalest stream in s, reason when None)."""
        if self.robot is None:
            return None, math.inf, 'no_policy'
        ages, obs = [], {}
        if self.js is None:
            self._warn('js_none', f'no joint state on {self.js_topic} yet: HOLD', 5.0)
            return None, math.inf, 'no_joint_states'
        for cam, topic in self.camera_topics.items():
            entry = self.images.get(cam)
            if entry is None:
                self._warn(f'img_none_{cam}', f'no image on {topic} yet: HOLD', 5.0)
                return None, math.inf, 'no_image'
            rgb = self._rgb_of(cam, topic, entry[0])
            if rgb is None:
                return None, math.inf, 'bad_image'
            obs[keys.image_key(cam)] = rgb
            ages.append(self.clocks[cam].age(now))
        msg = self.js[0]
        ages.append(self.clocks[JS].age(now))
        dup = duplicate_names(msg.name)
        if dup:
            self._warn('js_dup', f'{self.js_topic}: joints {dup} are named more than once in '
                       f'one message ({list(msg.name)}): HOLD')
            return None, max(ages), 'bad_joint_states'
        fields = {keys.OBS_JOINT_POS: 'position', keys.OBS_JOINT_VEL: 'velocity'}
        for k in self.proprio:
            v = self._joint_values(msg, self.joint_names, fields[k])
            if v is None:
                return None, max(ages), 'bad_joint_states'
            obs[k] = v
        age = max(ages)
        limit = self.watchdog_periods * self.period
        if not age <= limit:
            i = ages.index(age)
            key, topic = [*self.camera_topics.items(), (JS, self.js_topic)][i]
            clock = self.clocks[key]
            if clock.frozen(now, limit):
                self._warn(f'frozen_{key}', f'{topic}: messages arrive but their header stamp '
                           f'has not advanced for {age * 1e3:.0f} ms (frozen at '
                           f'{clock.stamp_ns * 1e-9:.3f} s; watchdog '
                           f'{self.watchdog_periods:g} periods): HOLD')
                return None, age, 'frozen'
            self._warn('stale', f'{topic}: newest message {age * 1e3:.0f} ms old (watchdog '
                       f'{self.watchdog_periods:g} periods): HOLD')
            return None, age, 'stale'
        return obs, age, None

    def _rgb_of(self, cam: str, topic: str, msg) -> np.ndarray | None:
        """The RGB image of ``msg``, or None (HOLD) with a warning naming the topic."""
        cached = self._rgb.get(cam)
        if cached is not None and cached[0] is msg:
            return cached[1]
        want = tuple(self.robot.image_size)
        if isinstance(msg, Image):
            problem = image_format_problem(msg.encoding, msg.width, msg.height, want)
            if problem:
                self._warn(f'img_bad_{cam}:{problem}', f'{topic}: {problem}: HOLD')
                return None
            old = self.encodings.get(cam)
            if old is not None and old != msg.encoding:
                self.log.warning(f'{topic}: encoding changed from {old} to {msg.encoding} '
                                 '(converted to RGB)')
            self.encodings[cam] = msg.encoding
        try:
            rgb = image_to_rgb(msg)
        except ValueError as e:
            self._warn(f'img_bad_{cam}', f'{topic}: {e}: HOLD')
            return None
        if rgb.shape[:2] != want:
            self._warn(f'img_bad_{cam}', f'{topic}: image is {rgb.shape[1]}x{rgb.shape[0]}, '
                       f'the policy needs {want[1]}x{want[0]} (WxH): HOLD')
            return None
        if not rgb.flags.writeable:
            rgb = rgb.copy()        # torch wants writable arrays
        self._rgb[cam] = (msg, rgb)
        return rgb

    def _measured(self) -> tuple[np.ndarray | None, float]:
        """Return the measured positions in command order, and the joint state's age.

        A value that no joint measures is NaN. A joint state that names a joint twice
        measures nothing (None, inf: a human command then HOLDs as stale).
        """
        if self.js is None or self.safety is None:
            return None, math.inf
        msg = self.js[0]
        if duplicate_names(msg.name):
            return None, math.inf
        index = {n: i for i, n in enumerate(msg.name)}
        pos = msg.position
        out = np.array([pos[index[n]] if n in index and index[n] < len(pos) else np.nan
                        for n in self.action_names], np.float64)
        return out, self.clocks[JS].age(self._now())

    # ------------------------------------------------------------------ the tick
    def _tick_index(self, now: float) -> int:
        if self.t_origin is None:
            self.t_origin = now
        k = max(self.k + 1, int(math.floor((now - self.t_origin) / self.period + 0.5)))
        if now < self.t_origin + k * self.period:
            # The timer runs on its own phase: anchor the tick grid at the earliest callback
            # seen, so the jitter measures lateness only.
            self.t_origin = now - k * self.period
        return k

    def _reset_policy(self) -> None:
        self.gen += 1
        self.queue.clear()
        self.inflight.clear()
        self.primed = False
        self.clear_on_chunk = False
        self.need_reset = False
        self._reset_next = True

    def _plan_ahead(self) -> int:
        if self.plan_ahead_param > 0:
            return int(self.plan_ahead_param)
        recent = self.worker.plan_s[-20:]
        latency = max(recent) if recent else self.period
        return int(math.ceil(latency / self.period)) + 2

    def _collect(self, k: int) -> None:
        ta = self.policy.cfg.action_exec if self.policy is not None else 1
        for gen, tick, chunk, err, dt in self.worker.take():
            if gen != self.gen:
                continue
            self.inflight.discard(tick)
            if err is not None:
                self.counts['worker_errors'] += 1
                self._warn('worker', f'policy inference failed: {err}: HOLD, re-priming')
                self.need_reset = True
                continue
            if chunk is None:
                continue
            if tick + len(chunk) <= k:
                self.counts['late_plans'] += 1
            if self.clear_on_chunk:
                self.queue.clear()
                self.clear_on_chunk = False
            self.queue.add_chunk(chunk[:ta], tick * self.period)
            self.primed = True

    def _policy_step(self, obs: dict, k: int, t_cb: float) -> tuple[np.ndarray | None, str]:
        if self.need_reset:
            self._reset_policy()
        if self.worker.backlog > MAX_BACKLOG:
            self.stalled = True
        if self.stalled:
            if self.worker.backlog == 0:
                self.stalled = False
                self._reset_policy()
                self._warn('stall_end', 'inference caught up: policy reset and re-primed')
            else:
                self._warn('stall', f'inference {self.worker.backlog} ticks behind: HOLD')
                return None, 'inference_backlog'
        t = k * self.period
        ta = self.policy.cfg.action_exec
        left = self.queue.remaining(t)
        plan = left < self._plan_ahead() and not any(p + ta > k for p in self.inflight)
        reset, self._reset_next = self._reset_next, False
        self.worker.submit(self.gen, self.policy, obs, k, plan, reset=reset)
        if plan:
            self.inflight.add(k)
        if left == 0 and self.inflight:
            self.worker.wait(self.gen, min(self.inflight),
                             t_cb + self.max_wait * self.period)
            self._collect(k)
        if not self.primed:
            self.counts['priming_ticks'] += 1
            return None, 'priming'
        action = self.queue.pop(t)
        if action is None:
            self.counts['underruns'] += 1
            return None, 'underrun'
        return action, 'ok'

    def _tick(self) -> None:
        t_cb = time.perf_counter()
        try:
            self._tick_body(t_cb)
        except Exception:  # noqa: BLE001 - a bug must not stop the loop: HOLD, loudly
            self.counts['tick_errors'] += 1
            self._warn('tick', f'control tick failed, nothing sent:\n{traceback.format_exc()}')
            self.pub_source.publish(String(data=keys.SOURCE_HOLD))

    def _tick_body(self, t_cb: float) -> None:
        now = self._now()
        k = self._tick_index(now)
        jitter = now - (self.t_origin + k * self.period)
        self.k = k
        self._swap_in()
        self._collect(k)
        obs, age, why = self._observation(now)
        ready = self.enabled and self.policy is not None and obs is not None
        lapses = self.arbiter.lapses
        decision = self.arbiter.decide(now, ready)
        if self.arbiter.lapses != lapses:
            self.log.warning(
                f'heartbeats on the intervention topic stopped {self.arbiter.timeout_s:g} s ago '
                'without a hand-back (Bool false): the teleop may have crashed. HOLD until '
                '~/enable or ~/reset')
        measured, js_age = self._measured()
        command, reason = None, why or ('disabled' if not self.enabled else 'no_policy')
        if decision.reason is not None:
            reason = decision.reason
        if decision.source is Source.POLICY:
            if decision.reset_policy:
                self.need_reset = True
            command, reason = self._policy_step(obs, k, t_cb)
            cmd_age = age
        elif decision.source is Source.HUMAN:
            command, reason, cmd_age = decision.command, 'human', js_age
            self.need_reset = True       # the policy re-primes when control comes back
        else:
            cmd_age = age if why in ('stale', 'frozen') else js_age
        out, status = (self.safety(command, cmd_age, self.period, measured)
                       if self.safety is not None else (None, Status.HOLD_INVALID))
        if self.safety is not None and self.safety.sendable and out is not None:
            self.pub_cmd.publish(self.adapter(out, now))
            self.counts['published'] += 1
        if status.is_hold or decision.source is Source.HOLD:
            source = keys.SOURCE_HOLD
            if status is Status.HOLD_DISABLED:
                reason = 'disabled'
            elif status is Status.HOLD_INVALID and command is not None:
                reason = 'invalid_command'
            elif status is Status.HOLD_STALE and (decision.source is Source.HUMAN or (
                    why is None and decision.reason is None)):
                reason = 'stale'        # else the observation's or the arbiter's reason
        else:
            source = decision.source.value
        self.pub_source.publish(String(data=source))
        latency = time.perf_counter() - t_cb
        self._account(k, source, reason, jitter, latency, t_cb, decision.source)

    def _account(self, k, source, reason, jitter, latency, t_cb, decided) -> None:
        c = self.counts
        c['ticks'] += 1
        c[{keys.SOURCE_POLICY: 'policy_ticks', keys.SOURCE_INTERVENTION: 'human_ticks'}.get(
            source, 'hold_ticks')] += 1
        if decided is Source.POLICY and (reason in ('underrun', 'inference_backlog')
                                         or jitter + latency > self.period):
            c['missed_deadlines'] += 1
        if source != self.last_source:
            self.source_since = k
        self.last_source, self.last_reason = source, reason
        w = self._win
        if w['last_start'] is not None:
            w['gap'].append(t_cb - w['last_start'])
        w['last_start'] = t_cb
        w['lat'].append(latency)
        if self.stats_file:
            self.ticks_log.append((k, round(jitter * 1e3, 3), round(latency * 1e3, 3), source,
                                   reason))

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """Return the ~/status message: counters, timings of the last window, state."""
        w = self._win
        lat = np.asarray(w['lat']) * 1e3
        gaps = np.asarray(w['gap']) * 1e3
        s = {
            'seq': self.status_seq, 'enabled': self.enabled, 'source': self.last_source,
            'reason': self.last_reason, 'source_since_tick': self.source_since,
            'swap_tick': self.swap_tick, 'checkpoint': self.policy_path, 'loading': self.loading,
            'last_error': self.last_error, 'rate_hz': self.rate, 'tick': self.k,
            'generation': self.gen, 'queued': self.queue.remaining(self.k * self.period),
            'dropped_actions': self.queue.dropped, 'backlog': self.worker.backlog,
            'plan_ms_p50': (round(float(np.median(self.worker.plan_s)) * 1e3, 2)
                            if self.worker.plan_s else None),
            'window': {'ticks': int(lat.size),
                       'latency_ms_p50': round(float(np.median(lat)), 2) if lat.size else None,
                       'latency_ms_max': round(float(lat.max()), 2) if lat.size else None,
                       'gap_ms_max': round(float(gaps.max()), 2) if gaps.size else None},
            'safety': dict(self.safety.counts) if self.safety is not None else {},
            'handovers': self.arbiter.handovers, 'takeover_latched': self.arbiter.latched,
            'takeover_lapses': self.arbiter.lapses, 'unlimited_step': self.unlimited_step(),
            **self.counts,
        }
        return s

    def _publish_status(self) -> None:
        self.status_seq += 1
        self.pub_status.publish(String(data=json.dumps(self.status())))
        self._win['lat'], self._win['gap'] = [], []

    def destroy_node(self):
        """Stop the worker and write ``stats_file`` (if set), then destroy the node.

        Also called on a node whose construction failed (rclpy's shutdown destroys every
        node of the context): only what was built is cleaned up.
        """
        if getattr(self, 'worker', None) is None:
            return super().destroy_node()
        self.worker.stop()
        if self.stats_file:
            try:
                Path(self.stats_file).write_text(json.dumps({
                    'period_s': self.period, 'counts': self.counts,
                    'safety': dict(self.safety.counts) if self.safety else {},
                    'dropped_actions': self.queue.dropped,
                    'plan_ms': list(self.worker.plan_hist),
                    'columns': ['tick', 'jitter_ms', 'latency_ms', 'source', 'reason'],
                    'ticks': self.ticks_log}))
            except OSError as e:
                self.log.error(f'cannot write stats_file {self.stats_file}: {e}')
        return super().destroy_node()


def main(args=None):
    """Run the controller node."""
    setup_headless_gl()
    run(Controller, args)


if __name__ == '__main__':
    main()
