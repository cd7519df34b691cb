"""The policy slot: check a checkpoint against the robot and load it in the background.

The control loop swaps a loaded checkpoint in at a tick boundary. ROS-free.

A checkpoint is refused (:class:`Refused`, whose message names the fields) before any
weights are read when its description does not fit the robot: the robot spec (joint and
action names, cameras, image size, control rate), proprio keys the controller cannot read,
or command values without joint limits. The weights are then loaded in a daemon thread and
warmed up once (a fresh model's first call is slow); a checkpoint whose warm-up actions are
not finite is refused there. The running policy keeps running through every refusal.
The weights load on the CPU and move to the slot's ``device`` (the controller node's
``device`` parameter, default the CPU) before the warm-up, so the warm-up runs where the
policy will.

The robot is the robot description's (:class:`RobotOverrides`: its joint and action names
and cameras, the control rate); the first checkpoint that loads fixes the rest (image size,
cameras when none are set), and every later one must fit it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import threading
import time
from typing import Callable

import numpy as np

from il_ros import checkpoint_meta, keys

SUPPORTED_PROPRIO = (keys.OBS_JOINT_POS, keys.OBS_JOINT_VEL)
"""Proprio keys the controller reads from the joint states."""


class Refused(ValueError):
    """A checkpoint that cannot drive this robot (the message names the reason)."""


@dataclass
class RobotOverrides:
    """What the robot description and the operator say of the robot.

    Empty fields come from the first checkpoint.
    """

    rate_hz: float = 20.0
    joint_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    robot: object = None
    """The RobotDescription: a checkpoint needing a camera it lacks is refused."""


@dataclass
class Loaded:
    """A checkpoint loaded and warmed up, waiting for the tick boundary."""

    policy: object
    path: str
    expect: object           # the RobotSpec it was checked against
    extra: dict
    load_s: float
    origin: str
    mtime: int | None


def config_mtime(path) -> int | None:
    """Modification time (ns) of a checkpoint's description, or None."""
    try:
        return checkpoint_meta.checkpoint_config_file(path).stat().st_mtime_ns
    except OSError:
        return None


def read_meta(path) -> dict:
    """Return the JSON description of a checkpoint (no weights; raises Refused)."""
    try:
        meta = checkpoint_meta.read_checkpoint_meta(path)
    except (OSError, ValueError) as e:
        raise Refused(str(e)) from None
    if not isinstance(meta['config'].get('proprio_keys'), list):
        raise Refused(f'{checkpoint_meta.checkpoint_config_file(path)}: invalid checkpoint '
                      f'description: no proprio_keys list in its config')
    return meta


class PolicySlot:
    """Checks and loads checkpoints for one robot (see the module doc).

    ``check_actions(action_names, joint_names)`` raises :class:`Refused` when the loop could
    not drive these command values (no joint limits, a bad step limit); it is skipped once
    the loop's safety filter exists (``configured`` names its command values).

    ``device``: where the loaded policies run (auto, cpu, cuda or cuda:N); a bad name or a
    GPU that is not there raises ValueError (naming ``device``) here, at start-up.
    """

    def __init__(self, robot: RobotOverrides, check_actions: Callable[[list, list], None],
                 use_ema: bool = True, log=None, device: str = 'cpu'):
        from il_ros.training.device import resolve_device
        self.device = resolve_device(device)
        self.over = robot
        self.check_actions = check_actions
        self.use_ema = use_ema
        self.log = log
        self.robot = None                 # RobotSpec, fixed by the first swap
        self.configured: list[str] | None = None
        self.loading: str | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._pending: Loaded | None = None
        self._failed: list[tuple[str, str]] = []      # (path, message) of background refusals

    def expect(self, meta: dict):
        """The RobotSpec a checkpoint with this description must fit."""
        from il_ros.models.policy_config import RobotSpec
        if self.robot is not None:
            return self.robot
        d = RobotSpec.from_dict(meta['spec']).to_dict()
        d.update(control_rate_hz=self.over.rate_hz)
        for name in ('joint_names', 'action_names', 'cameras'):
            if getattr(self.over, name):
                d[name] = list(getattr(self.over, name))
        if self.configured is not None:
            d['action_names'] = list(self.configured)
            d['action_dim'] = len(self.configured)
        return RobotSpec.from_dict(d)

    def check(self, path: str):
        """Refuse (raise Refused) a checkpoint that does not fit; return the expected spec."""
        from il_ros.models.policy_config import RobotSpec
        meta = read_meta(path)
        try:
            spec = RobotSpec.from_dict(meta['spec'])
            expect = self.expect(meta)
        except (TypeError, ValueError) as e:
            raise Refused(f'{path}: invalid robot spec in the checkpoint: {e}') from None
        diff = spec.mismatches(expect)
        if self.over.robot is not None:
            try:
                self.over.robot.check_cameras(expect.cameras, f'checkpoint {path}')
            except ValueError as e:
                raise Refused(str(e)) from None
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
        if self.robot is None and self.configured is None:
            actions = expect.action_names or spec.action_names
            self.check_actions(list(actions), list(joints))
        return expect

    def request(self, path: str, origin: str) -> str:
        """Check ``path`` now (raises Refused) and load it in a background thread.

        Returns the resolved path. A newer request supersedes one still loading.
        """
        path = str(Path(path).expanduser().resolve())
        mtime = config_mtime(path)
        expect = self.check(path)
        with self._lock:
            self._seq += 1
            seq = self._seq
            self.loading = path
        threading.Thread(target=self._load, args=(path, expect, seq, origin, mtime),
                         name='il_ros-load', daemon=True).start()
        return path

    def load_now(self, path: str, origin: str = 'direct') -> Loaded:
        """Check and load ``path`` in the caller (raises Refused); for in-process use."""
        path = str(Path(path).expanduser().resolve())
        return self._load_weights(path, self.check(path), origin, config_mtime(path))

    def _load_weights(self, path, expect, origin, mtime) -> Loaded:
        from il_ros.models import load_checkpoint
        t0 = time.perf_counter()
        policy, extra = load_checkpoint(path, expect=expect, use_ema=self.use_ema)
        policy.to(self.device)                  # CPU weights; a no-op on the CPU
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
        return Loaded(policy, path, expect, extra, time.perf_counter() - t0, origin, mtime)

    def _load(self, path: str, expect, seq: int, origin: str, mtime) -> None:
        try:
            loaded = self._load_weights(path, expect, origin, mtime)
        except Exception as e:  # noqa: BLE001 - refused; the running policy keeps running
            why = str(e) if isinstance(e, Refused) else f'{type(e).__name__}: {e}'
            with self._lock:
                if seq == self._seq:
                    self.loading = None
                self._failed.append((path, f'{path}: refused at load ({why})'))
            return
        with self._lock:
            if seq == self._seq:
                self._pending = loaded          # else a newer request superseded this one

    def take(self) -> tuple[Loaded | None, list[tuple[str, str]]]:
        """At a tick boundary: the loaded checkpoint (or None) and the background refusals."""
        with self._lock:
            pending, self._pending = self._pending, None
            failed, self._failed = self._failed, []
            if pending is not None:
                self.loading = None
        return pending, failed


def robot_limits(robot=None) -> Callable:
    """``limits(action_names)`` of a robot description (None: the default robot).

    Returns (lower, upper, max_step) of the robot's actions; raises Refused naming the robot
    file when ``action_names`` are not its actions.
    """
    from il_ros.robot import load_robot
    robot = robot if robot is not None else load_robot()

    def limits(action_names):
        if list(action_names) != robot.action_names:
            raise Refused(f'{robot.source or robot.name}: actions: the command values '
                          f'{list(action_names)} are not this robot\'s actions '
                          f'{robot.action_names}')
        return robot.action_low, robot.action_high, robot.max_step
    return limits
