"""The RobotSpec of a dataset or of a sim task: what a checkpoint is trained for.

A checkpoint stores its RobotSpec (joint and action names, dimensions, cameras, image size,
control rate); loading it with ``expect=`` refuses a policy trained for another robot and
names the fields that differ.
"""
from __future__ import annotations

from il_ros import keys
from il_ros.data.store import Dataset


def dataset_task(ds: Dataset) -> str | None:
    """Return the sim task the dataset's first episode was recorded on (its meta), or None."""
    from il_ros.sim.registry import TASKS
    if ds.num_episodes == 0:
        return None
    task = ds.meta(0).get('task')
    return task if task in TASKS else None


def sim_names(task: str | None) -> tuple[list[str], list[str]]:
    """(joint_names, action_names) of the sim robot; empty lists when ``task`` is None."""
    if task is None:
        return [], []
    from il_ros.sim.env import ARM_JOINTS, FINGER_JOINTS, GRIPPER
    return ARM_JOINTS + FINGER_JOINTS, ARM_JOINTS + [GRIPPER]


def spec_from_dataset(ds: Dataset, pcfg, task: str | None = None):
    """Return the RobotSpec of policy config ``pcfg`` trained on dataset ``ds``.

    Shapes and the control rate come from the dataset; joint names from its episode meta.
    Action names are not recorded in a dataset: they are the sim robot's when the dataset
    was recorded on a sim task (``task``, else the meta's task) and the dimension matches,
    else left empty ("unknown", matching any names).
    """
    from il_ros.models.policy_config import RobotSpec
    if ds.num_episodes == 0:
        raise ValueError(f'{ds.path}: the dataset has no episodes')
    joints, actions = sim_names(task or dataset_task(ds))
    meta = ds.meta(0)
    action_dim = int(ds.shapes[keys.ACTION][0]) if keys.ACTION in ds.shapes else -1
    action_names = meta.get('action_names') or (
        actions if len(actions) == action_dim else None)
    return RobotSpec.from_dataset(ds, cameras=list(pcfg.cameras),
                                  proprio_keys=list(pcfg.proprio_keys),
                                  action_names=action_names,
                                  joint_names=meta.get('joint_names') or joints or None)


def sim_spec(task: str, like=None):
    """Return the RobotSpec the sim robot of ``task`` offers to a checkpoint like ``like``.

    The sim fixes the joint and action names and dimensions. It renders any of its cameras
    at any size and steps at any multiple of its physics step, so cameras, image size and
    control rate are taken from ``like`` when the sim can provide them (and left at the
    sim's defaults, which then show up as the mismatch, when it cannot).
    """
    from il_ros.models.policy_config import RobotSpec
    from il_ros.sim.registry import TASKS
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
    joints, actions = sim_names(task)
    cameras, size, rate, proprio = ['front'], (84, 84), 20.0, len(joints)
    if like is not None:
        if set(like.cameras) <= set(SIM_CAMERAS):
            cameras = list(like.cameras)
        if all(int(s) > 0 for s in like.image_size):
            size = tuple(like.image_size)
        if _valid_rate(like.control_rate_hz):
            rate = like.control_rate_hz
        if like.proprio_dim % len(joints) == 0 and 0 < like.proprio_dim <= 2 * len(joints):
            proprio = like.proprio_dim      # joint_pos, or joint_pos + joint_vel
    return RobotSpec(joint_names=joints, action_names=actions, action_dim=len(actions),
                     proprio_dim=proprio, cameras=cameras, image_size=size,
                     control_rate_hz=rate)


SIM_CAMERAS = ('front', 'wrist')
"""Cameras every sim scene has (docs/sim.md)."""
_PHYSICS_DT = 0.002


def _valid_rate(hz: float) -> bool:
    ratio = 1.0 / (hz * _PHYSICS_DT)
    return hz > 0 and round(ratio) >= 1 and abs(ratio - round(ratio)) < 1e-6
