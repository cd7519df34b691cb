"""Arm kinematics on a scratch ``MjData``: end-effector pose and damped-least-squares IK.

The experts plan in Cartesian space and turn each Cartesian set-point into joint position
targets with :class:`ArmIK`. It works on its own copy of the data, so calling it never
disturbs the simulation, and its result depends only on the joint positions it is given.
"""
from __future__ import annotations

import mujoco
import numpy as np

DOWN = np.array([0.0, 0.0, -1.0])


def cartesian_step(current: np.ndarray, goal: np.ndarray, max_step: float) -> np.ndarray:
    """Return the point at most ``max_step`` from ``current`` on the line to ``goal``."""
    delta = goal - current
    dist = float(np.linalg.norm(delta))
    if dist <= max_step:
        return goal.copy()
    return current + delta * (max_step / dist)


class ArmIK:
    """Damped-least-squares IK for the ``ee`` site over the arm joints, any arm.

    The task is the site position plus its orientation: the hand axis (site z) points along
    ``approach`` (default straight down) and, when a finger direction is given, the finger
    axis (site y) lies along it. Joint limits are enforced by clamping after every iteration.
    The Jacobians are MuJoCo's (``mj_jacSite``), so it works for any chain of the model.

    On a redundant arm (more than 6 joints) a posture term moves the joints toward ``home``
    within the task's null space, ``(I - J+ J) * posture_gain * (home - q)``, so the free
    degree of freedom (the Panda's elbow) stays near a comfortable pose and away from its
    limits instead of drifting.
    """

    def __init__(self, model: mujoco.MjModel, arm_joints: list[str], site: str = 'ee',
                 damping: float = 0.03, rot_weight: float = 0.2,
                 home: np.ndarray | None = None, posture_gain: float = 0.2):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = model.site(site).id
        jids = [model.joint(n).id for n in arm_joints]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in jids])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in jids])
        self.low = model.jnt_range[jids, 0].copy()
        self.high = model.jnt_range[jids, 1].copy()
        self.damping = damping
        self.rot_weight = rot_weight
        self.home = None if home is None else np.asarray(home, dtype=np.float64).copy()
        # a null space exists only beyond the 6 task dimensions
        self.posture_gain = float(posture_gain) if len(jids) > 6 and home is not None else 0.0
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _load(self, qpos: np.ndarray) -> None:
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def site_pose(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation matrix (3, 3) for the full ``qpos``."""
        self._load(qpos)
        return (self.data.site_xpos[self.site_id].copy(),
                self.data.site_xmat[self.site_id].reshape(3, 3).copy())

    def solve(self, qpos: np.ndarray, target: np.ndarray, approach: np.ndarray = DOWN,
              finger_dir: np.ndarray | None = None, iters: int = 30,
              tol: float = 1e-4) -> np.ndarray:
        """Arm joint positions that put the site at ``target``, starting from ``qpos``.

        Args:
            qpos: the full ``qpos`` of the model (only the arm joints are changed).
            target: (3,) world position of the ``ee`` site, m.
            approach: (3,) unit vector the hand axis should point along.
            finger_dir: (3,) horizontal unit vector for the finger axis, or None to leave
                the wrist roll free (it then stays where it is).
            iters: iteration cap; tol: stop when the weighted error norm falls below it.

        Returns:
            (n_arm,) joint positions within the joint limits.
        """
        q = np.array(qpos, dtype=np.float64)
        q_arm = q[self.qpos_idx]
        w = self.rot_weight
        for _ in range(iters):
            q[self.qpos_idx] = q_arm
            self._load(q)
            pos = self.data.site_xpos[self.site_id]
            rot = self.data.site_xmat[self.site_id].reshape(3, 3)
            err_rot = np.cross(rot[:, 2], approach)
            if finger_dir is not None:
                y = rot[:, 1]
                # the gripper is symmetric: aim the finger axis at the nearer of +/- finger_dir
                f = finger_dir if float(np.dot(y, finger_dir)) >= 0.0 else -finger_dir
                err_rot = err_rot + np.cross(y, f)
            err = np.concatenate([target - pos, w * err_rot])      # (6,)
            if float(np.linalg.norm(err)) < tol:
                break
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
            jac = np.vstack([self._jacp[:, self.dof_idx],
                             w * self._jacr[:, self.dof_idx]])     # (6, n_arm)
            if finger_dir is None:
                # roll is free: project the rotation rows onto the plane normal to the
                # approach axis, so turning about that axis costs nothing
                jac[3:] -= np.outer(w * approach, approach @ self._jacr[:, self.dof_idx])
            lam = self.damping ** 2
            if self.posture_gain:
                inv = np.linalg.inv(jac @ jac.T + lam * np.eye(6))
                null = np.eye(len(q_arm)) - jac.T @ inv @ jac
                dq = jac.T @ (inv @ err) + null @ (self.posture_gain * (self.home - q_arm))
            else:
                dq = jac.T @ np.linalg.solve(jac @ jac.T + lam * np.eye(6), err)
            q_arm = np.clip(q_arm + dq, self.low, self.high)
        return q_arm
