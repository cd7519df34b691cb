"""SimEnv: the task-independent part of a MuJoCo task (physics, commands, obs, state).

A task subclasses :class:`SimEnv`, names its parameter layout and fills in ``_sample``
(initial conditions from a seed), ``success``, ``failure`` and ``info``. The robot's facts
(scene file of the task, arm and finger joints, action order and limits, gripper mapping,
end-effector site, home pose) come from its description (il_ros/robot.py), so a task runs
on every robot whose YAML names a scene for it.

Units: joint positions in rad (arm) and m (fingers), time in s, Cartesian positions in m in
the world frame (table top at z = 0, arm base at the origin facing +x, +y on its left).
"""
from __future__ import annotations

import mujoco
import numpy as np

from il_ros.keys import image_key, OBS_JOINT_POS, OBS_JOINT_VEL
from il_ros.resources import sim_asset
from il_ros.robot import DEFAULT_ROBOT, load_robot, RobotDescription
from il_ros.sim.kinematics import ArmIK

# The default sim arm's names (config/robots/sim_arm.yaml), kept for old callers; code that
# may run on another robot reads ``env.robot`` / ``env.action_names`` instead.
ARM_JOINTS = ['base_yaw', 'shoulder', 'elbow', 'wrist_pitch', 'wrist_roll']
FINGER_JOINTS = ['finger_left', 'finger_right']
GRIPPER = 'gripper'
_HEADER = 2                  # episode_index, episode_time


def as_robot(robot: str | RobotDescription | None) -> RobotDescription:
    """A robot description from a name, a YAML path or a description (None: the default)."""
    if isinstance(robot, RobotDescription):
        return robot
    return load_robot(robot or DEFAULT_ROBOT)


def scene_of(robot: RobotDescription, task: str) -> str:
    """The MJCF scene of ``task`` for ``robot`` (ValueError naming its file and tasks)."""
    where = robot.source or robot.name
    if robot.sim is None:
        raise ValueError(f'{where}: robot {robot.name!r} has no sim section, so it has no '
                         f'MuJoCo scenes (task {task!r})')
    if task not in robot.sim.scenes:
        raise ValueError(f'{where}: sim.scenes has no task {task!r}; robot {robot.name!r} '
                         f'has tasks: {", ".join(robot.sim.scenes) or "none"}')
    return robot.sim.scenes[task]


class SimEnv:
    """One MuJoCo task: a table, the robot and the task's objects, at a fixed control rate.

    The action is ``action_names`` (the robot's, in its order): arm joint position targets
    (rad) and the gripper command in [0, 1] (0 open, 1 closed). Observations are the joint
    positions and velocities of ``joint_names`` and, when rendering, one RGB image per
    camera. ``robot`` is the :class:`~il_ros.robot.RobotDescription`.
    """

    task: str = ''
    episode_seconds: float = 10.0
    # The task's parameters, stored after qpos/qvel/ctrl in the state vector: (name, size).
    params: tuple[tuple[str, int], ...] = ()

    def __init__(self, *, robot: str | RobotDescription | None = DEFAULT_ROBOT,
                 cameras: tuple[str, ...] = ('front',),
                 image_size: tuple[int, int] = (84, 84), control_dt: float = 0.05,
                 render: bool = True, seed: int | None = None):
        self.robot = as_robot(robot)
        self.scene = scene_of(self.robot, self.task)
        self.model = mujoco.MjModel.from_xml_path(str(sim_asset(self.scene)))
        self.data = mujoco.MjData(self.model)
        m = self.model
        known = [m.camera(i).name for i in range(m.ncam)]
        cameras = tuple(cameras)
        for cam in cameras:
            if cam not in known:
                raise ValueError(f'unknown camera {cam!r}; this scene has {known}')
        if len(image_size) != 2 or min(int(v) for v in image_size) < 1:
            raise ValueError(f'image_size must be (H, W) with positive ints, got {image_size}')
        self.cameras = cameras
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.physics_dt = float(m.opt.timestep)
        ratio = float(control_dt) / self.physics_dt
        self._substeps = int(round(ratio))
        if self._substeps < 1 or abs(ratio - self._substeps) > 1e-6:
            raise ValueError(f'control_dt must be a positive multiple of the physics step '
                             f'{self.physics_dt} s, got {control_dt}')
        self.control_dt = self._substeps * self.physics_dt
        self.max_steps = int(np.ceil(self.episode_seconds / self.control_dt - 1e-9))
        self.render_enabled = bool(render)

        self._setup_robot()

        self._pvec = np.zeros(sum(size for _, size in self.params))
        self.p: dict[str, np.ndarray] = {}
        i = 0
        for name, size in self.params:
            self.p[name] = self._pvec[i:i + size]      # views: always assign in place
            i += size
        self.episode_index = -1
        self._seed_rng = np.random.default_rng(seed)
        self._renderer: mujoco.Renderer | None = None
        self.reset(seed)

    def _setup_robot(self) -> None:
        """Index the robot's joints, actuators and site in the model (errors name both)."""
        r, m = self.robot, self.model
        where = f'{r.source or r.name} with scene sim/{self.scene}'
        g = r.gripper
        self.joint_names = r.joint_names
        self.action_names = r.action_names
        self.arm_joints = r.arm_actions        # the non-gripper actions name model joints
        self.finger_joints = list(g.joints) if g else []
        self.finger_open = g.open if g else 0.0          # finger position at command 0, m
        known_j = {m.joint(i).name for i in range(m.njnt)}
        known_a = {m.actuator(i).name for i in range(m.nu)}
        for what, names, known in (('joint', self.joint_names + self.arm_joints
                                    + self.finger_joints, known_j),
                                   ('actuator', self.action_names, known_a)):
            missing = [n for n in names if n not in known]
            if missing:
                raise ValueError(f'{where}: the model has no {what} {missing}; it has '
                                 f'{sorted(known)}')
        self._qpos_idx, self._dof_idx = self._joint_index(self.joint_names)
        self._arm_qpos_idx, _ = self._joint_index(self.arm_joints)
        self._finger_qpos_idx, _ = self._joint_index(self.finger_joints)
        self.arm_action_idx = np.array([self.action_names.index(n) for n in self.arm_joints],
                                       dtype=int)        # arm joints in the action vector
        self.gripper_action_idx = self.action_names.index(g.action) if g else None
        self._act_idx = np.array([m.actuator(n).id for n in self.action_names])
        self.action_low = np.array(r.action_low, dtype=np.float64)
        self.action_high = np.array(r.action_high, dtype=np.float64)
        # the robot's hand-down home posture: the IK seed and its null-space posture
        self.home = np.array(r.sim.home if r.sim.home else [0.0] * len(self.arm_joints))
        self._named_cache: dict = {}
        try:
            self.ee_site = m.site(r.sim.ee_site).id
        except KeyError:
            raise ValueError(f'{where}: sim.ee_site {r.sim.ee_site!r} is not a site of the '
                             f'model') from None
        self.ik = ArmIK(m, self.arm_joints, site=r.sim.ee_site, home=self.home)

    def _joint_index(self, names) -> tuple[np.ndarray, np.ndarray]:
        m = self.model
        jids = [m.joint(n).id for n in names]
        return (np.array([m.jnt_qposadr[j] for j in jids], dtype=int),
                np.array([m.jnt_dofadr[j] for j in jids], dtype=int))

    def compose(self, arm: np.ndarray, gripper: float | None = None) -> np.ndarray:
        """The action vector (in ``action_names`` order) of arm targets and a gripper value."""
        a = np.empty(len(self.action_names))
        a[self.arm_action_idx] = arm
        if self.gripper_action_idx is not None:
            a[self.gripper_action_idx] = 0.0 if gripper is None else gripper
        return a

    # ---- episode ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict:
        """Start a new episode; the initial conditions are a function of ``seed`` alone.

        With ``seed=None`` the next seed comes from the generator seeded in ``make_env``.
        """
        if seed is None:
            seed = int(self._seed_rng.integers(2 ** 31 - 1))
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        self.episode_index += 1
        self._pvec[:] = 0.0
        q_arm, gripper = self._sample(rng)
        self.data.qpos[self._arm_qpos_idx] = q_arm
        if self.robot.gripper is not None:
            self.data.qpos[self._finger_qpos_idx] = self.robot.gripper.position(gripper)
        self.data.ctrl[self._act_idx] = self.compose(q_arm, gripper)
        self.data.time = 0.0
        self._apply_params()
        mujoco.mj_forward(self.model, self.data)
        self._after_control()
        return self.observe()

    def step(self, action) -> tuple[dict, bool, bool]:
        """Apply ``action`` for one ``control_dt``; returns (obs, success, done)."""
        self.set_command(action)
        self.step_physics(self._substeps)
        obs = self.observe()
        ok = self.success()
        done = ok or self.failure() is not None or self.steps >= self.max_steps
        return obs, ok, done

    def set_command(self, action) -> None:
        """Clamp ``action`` (A,) to the bounds and make it the actuator targets."""
        a = np.asarray(action, dtype=np.float64)
        n = len(self.action_names)
        if a.shape != (n,):
            raise ValueError(f'action must have shape ({n},) = {self.action_names}, '
                             f'got shape {a.shape}')
        if not np.all(np.isfinite(a)):
            raise ValueError(f'action must be finite, got {a}')
        self.data.ctrl[self._act_idx] = np.clip(a, self.action_low, self.action_high)

    def step_physics(self, n: int = 1) -> None:
        """Advance ``n`` physics steps (``physics_dt`` each) under the current command."""
        m, d = self.model, self.data
        for _ in range(int(n)):
            mujoco.mj_step(m, d)
            self._after_physics_step()
        mujoco.mj_forward(m, d)      # positions, sites and contacts of the new state
        self._after_control()

    @property
    def time(self) -> float:
        """Episode time, s."""
        return float(self.data.time)

    @property
    def steps(self) -> int:
        """Control steps taken in this episode (episode time / control_dt)."""
        return int(round(self.data.time / self.control_dt))

    # ---- observations ----------------------------------------------------------------------
    def observe(self, render: bool | None = None) -> dict:
        """Return the current observation; images only when ``render`` (default: env flag)."""
        obs = {OBS_JOINT_POS: self.data.qpos[self._qpos_idx].copy(),
               OBS_JOINT_VEL: self.data.qvel[self._dof_idx].copy()}
        if self.render_enabled if render is None else render:
            for cam in self.cameras:
                obs[image_key(cam)] = self.render(cam)
        return obs

    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB image from a camera of the scene, without shadows."""
        if self._renderer is None:
            h, w = self.image_size
            self._renderer = mujoco.Renderer(self.model, h, w)
        r = self._renderer
        try:
            r.update_scene(self.data, camera=camera)
        except ValueError as e:
            raise ValueError(f'cannot render camera {camera!r}: {e}') from e
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return r.render()

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity and effort of ``joint_names``.

        Effort is the generalized actuator force on each joint (Nm for the arm, N for the
        fingers), including the gravity compensation the actuators deliver.
        """
        d = self.data
        return (d.qpos[self._qpos_idx].copy(), d.qvel[self._dof_idx].copy(),
                d.qfrc_actuator[self._dof_idx].copy())

    def joint_positions(self, names) -> np.ndarray:
        """Positions of any joints of the model, by name (e.g. ``sim.published_joints``)."""
        return self.data.qpos[self._named(names)[0]].copy()

    def joint_velocities(self, names) -> np.ndarray:
        """Velocities of any (1-dof) joints of the model, by name."""
        return self.data.qvel[self._named(names)[1]].copy()

    def joint_efforts(self, names) -> np.ndarray:
        """Actuator generalized forces of any (1-dof) joints of the model, by name."""
        return self.data.qfrc_actuator[self._named(names)[1]].copy()

    def _named(self, names) -> tuple[np.ndarray, np.ndarray]:
        key, cache = tuple(names), self._named_cache
        if key not in cache:
            known = {self.model.joint(i).name for i in range(self.model.njnt)}
            missing = [n for n in key if n not in known]
            if missing:
                raise KeyError(f'sim/{self.scene} has no joint {missing}')
            cache[key] = self._joint_index(key)
        return cache[key]

    def ee_pos(self) -> np.ndarray:
        """World position of the end-effector site (between the finger pads), m."""
        return self.data.site_xpos[self.ee_site].copy()

    def gripper_opening(self) -> float:
        """Mean finger joint position, m (``robot.gripper`` closed .. open)."""
        return float(np.mean(self.data.qpos[self._finger_qpos_idx]))

    def arm_qpos(self) -> np.ndarray:
        """Return the current arm joint positions (rad)."""
        return self.data.qpos[self._arm_qpos_idx].copy()

    # ---- privileged state ------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Length of the vector from ``get_state``."""
        m = self.model
        return _HEADER + m.nq + m.nv + m.nu + self._pvec.size

    def get_state(self) -> np.ndarray:
        """Flat float64 state: [episode_index, time, qpos, qvel, ctrl, task params]."""
        d = self.data
        return np.concatenate([[float(self.episode_index), d.time], d.qpos, d.qvel, d.ctrl,
                               self._pvec])

    def set_state(self, state) -> None:
        """Restore a state from ``get_state`` (of this env or another env of the same task)."""
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (self.state_size,):
            raise ValueError(f'{self.task} state must have shape ({self.state_size},), '
                             f'got {s.shape}')
        m, d = self.model, self.data
        self.episode_index = int(round(s[0]))
        d.time = s[1]
        i = _HEADER
        for arr, n in ((d.qpos, m.nq), (d.qvel, m.nv), (d.ctrl, m.nu)):
            arr[:] = s[i:i + n]
            i += n
        d.act[:] = 0.0
        self._pvec[:] = s[i:]
        self._apply_params()
        mujoco.mj_forward(m, d)

    def close(self) -> None:
        """Free the renderer (the env stays usable without images)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- task hooks ------------------------------------------------------------------------
    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Set task params and object qpos from ``rng``; return (arm qpos, gripper 0..1)."""
        raise NotImplementedError

    def _apply_params(self) -> None:
        """Push the params into the model/data (mocap poses, marker colours)."""

    def _after_physics_step(self) -> None:
        """Run after every physics step (keep it cheap)."""

    def _after_control(self) -> None:
        """Run once the state is fresh after reset or a batch of physics steps."""

    def success(self) -> bool:
        """Whether the task is solved in the current state."""
        raise NotImplementedError

    def failure(self) -> str | None:
        """Why the episode has failed (e.g. 'collision'), or None."""
        return None

    @property
    def info(self) -> dict:
        """Task diagnostics: 'mode' (None unless the task is bimodal) and 'collision'."""
        return {'mode': None, 'collision': False}

    # ---- helpers for tasks -----------------------------------------------------------------
    def arm_pose_for(self, ee: np.ndarray, finger_dir: np.ndarray | None = None) -> np.ndarray:
        """Arm joint positions with the hand pointing down and the ``ee`` site at ``ee``.

        IK from the home posture with the first arm joint (a base yaw on every arm here)
        turned toward ``ee``.
        """
        q = np.zeros(self.model.nq)
        q[self._arm_qpos_idx] = self.home
        q[self._arm_qpos_idx[0]] = np.arctan2(ee[1], ee[0])
        for _ in range(3):
            q[self._arm_qpos_idx] = self.ik.solve(q, ee, finger_dir=finger_dir, iters=100,
                                                  tol=1e-7)
        return q[self._arm_qpos_idx].copy()

    def contacts_between(self, geoms_a, geoms_b) -> bool:
        """Whether any current contact pairs a geom of ``geoms_a`` with one of ``geoms_b``."""
        d = self.data
        if d.ncon == 0:
            return False
        g = d.contact.geom[:d.ncon]                  # (ncon, 2)
        a0, a1 = np.isin(g[:, 0], geoms_a), np.isin(g[:, 1], geoms_a)
        b0, b1 = np.isin(g[:, 0], geoms_b), np.isin(g[:, 1], geoms_b)
        return bool(np.any((a0 & b1) | (a1 & b0)))

    def geom_ids(self, *names: str) -> np.ndarray:
        """Ids of the named geoms."""
        return np.array([self.model.geom(n).id for n in names])
