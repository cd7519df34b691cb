"""The RobotSpec of a dataset or of a sim robot: what a checkpoint is trained for.

A checkpoint stores its RobotSpec (joint and action names, dimensions, cameras, image size,
control rate) and the robot description of its dataset (``extra['robot']``); loading it
with ``expect=`` refuses a policy trained for another robot and names the fields that
differ. Robot facts come from the robot descriptions (il_ros.robot), never from the sim.
"""
from __future__ import annotations

from il_ros import keys
from il_ros.data.store import Dataset
from il_ros.robot import DEFAULT_ROBOT, load_robot, RobotDescription


def dataset_robot(ds: Dataset) -> RobotDescription | None:
    """The robot description the dataset was converted with (its first episode's), or None."""
    if ds.num_episodes == 0:
        return None
    d = ds.meta(0).get('robot')
    return RobotDescription.from_dict(d, f'{ds.path}: episode 0 robot') if d else None


def checkpoint_robot(extra: dict | None) -> RobotDescription | None:
    """The robot description a checkpoint carries (its ``extra['robot']``), or None."""
    d = (extra or {}).get('robot')
    return RobotDescription.from_dict(d, 'checkpoint robot') if d else None


def robot_of_checkpoint(path) -> RobotDescription:
    """The robot description a checkpoint carries; the default robot for one without."""
    from il_ros.checkpoint_meta import read_checkpoint_meta
    robot = checkpoint_robot(read_checkpoint_meta(path).get('extra'))
    return robot if robot is not None else load_robot(DEFAULT_ROBOT)


def robot_argument(robot: RobotDescription, folder) -> str:
    """Return a ``robot`` parameter value for the nodes.

    The shipped name when the description is the shipped one, else the path of a YAML of
    it written into ``folder``.
    """
    from pathlib import Path

    from il_ros.config import ConfigError, save_yaml
    from il_ros.robot import robot_names
    if robot.name in robot_names():
        try:
            if load_robot(robot.name).to_dict() == robot.to_dict():
                return robot.name
        except ConfigError:
            pass
    path = Path(folder) / f'robot_{robot.name}.yaml'
    save_yaml(robot.to_dict(), path)
    return str(path)


def spec_from_dataset(ds: Dataset, pcfg, task: str | None = None):
    """Return the RobotSpec of policy config ``pcfg`` trained on dataset ``ds``.

    Shapes and the control rate come from the dataset; joint and action names from its
    episode meta (the robot description it was converted with). A dataset converted without
    one, recorded on a sim task (``task``, else its meta's task) with the default robot's
    dimensions, gets the default robot's names; else the names stay empty ("unknown",
    matching any names).
    """
    from il_ros.models.policy_config import RobotSpec
    if ds.num_episodes == 0:
        raise ValueError(f'{ds.path}: the dataset has no episodes')
    meta = ds.meta(0)
    action_dim = int(ds.shapes[keys.ACTION][0]) if keys.ACTION in ds.shapes else -1
    joints, actions = meta.get('joint_names'), meta.get('action_names')
    if not actions and (task or meta.get('task')):
        default = load_robot(DEFAULT_ROBOT)
        if len(default.action_names) == action_dim:
            actions, joints = default.action_names, joints or default.joint_names
    return RobotSpec.from_dataset(ds, cameras=list(pcfg.cameras),
                                  proprio_keys=list(pcfg.proprio_keys),
                                  action_names=actions or None, joint_names=joints or None)


def sim_spec(task: str, like=None, robot=None):
    """Return the RobotSpec the sim ``robot`` (default: the default robot) offers to ``like``.

    The robot description fixes the joint and action names. The sim renders any of the
    robot's cameras, fitted to any image size, and steps at any whole number of physics
    steps, so cameras, image size and control rate are taken from ``like`` when the sim can
    provide them (else the robot's first camera or control rate, which then shows up as the
    mismatch).
    """
    from il_ros.models.policy_config import RobotSpec
    from il_ros.sim.registry import physics_dt, TASKS
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
    robot = robot if isinstance(robot, RobotDescription) else load_robot(robot)
    joints, actions = robot.joint_names, robot.action_names
    cameras, size, rate, proprio = robot.camera_names[:1], (84, 84), robot.control_rate_hz, \
        len(joints)
    if like is not None:
        if set(like.cameras) <= set(robot.camera_names):
            cameras = list(like.cameras)
        if all(int(s) > 0 for s in like.image_size):
            size = tuple(like.image_size)
        if _steps_evenly(like.control_rate_hz, physics_dt(task, robot)):
            rate = like.control_rate_hz     # else the robot's rate shows up as the mismatch
        if like.proprio_dim % len(joints) == 0 and 0 < like.proprio_dim <= 2 * len(joints):
            proprio = like.proprio_dim      # joint_pos, or joint_pos + joint_vel
    return RobotSpec(joint_names=joints, action_names=actions, action_dim=len(actions),
                     proprio_dim=proprio, cameras=cameras, image_size=size,
                     control_rate_hz=rate)


def _steps_evenly(hz: float, physics_dt: float) -> bool:
    """Tell whether a control period of ``1 / hz`` is a whole number of physics steps."""
    if not hz > 0:
        return False
    ratio = 1.0 / (hz * physics_dt)
    return round(ratio) >= 1 and abs(ratio - round(ratio)) < 1e-6
