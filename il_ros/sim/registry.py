"""The task registry: names, ``make_env`` and ``make_expert``."""
from __future__ import annotations

from il_ros.robot import DEFAULT_ROBOT, RobotDescription
from il_ros.sim.env import as_robot, scene_of, SimEnv
from il_ros.sim.expert import Expert
from il_ros.sim.lift import LiftEnv, LiftExpert
from il_ros.sim.path import PathEnv, PathExpert
from il_ros.sim.reach_around import ReachAroundEnv, ReachAroundExpert

_ENVS: dict[str, type[SimEnv]] = {
    'lift': LiftEnv, 'reach_around': ReachAroundEnv, 'path': PathEnv}
_EXPERTS: dict[str, type[Expert]] = {
    'lift': LiftExpert, 'reach_around': ReachAroundExpert, 'path': PathExpert}
TASKS: tuple[str, ...] = tuple(_ENVS)


def _check(task: str) -> None:
    if task not in _ENVS:
        raise ValueError(f'unknown task {task!r}; valid tasks: {", ".join(TASKS)}')


def robot_tasks(robot: str | RobotDescription | None = DEFAULT_ROBOT) -> tuple[str, ...]:
    """The tasks ``robot`` has a scene for, in ``TASKS`` order."""
    r = as_robot(robot)
    return tuple(t for t in TASKS if r.sim is not None and t in r.sim.scenes)


def make_env(task: str, robot: str | RobotDescription | None = DEFAULT_ROBOT, *,
             cameras=('front',), image_size=(84, 84), control_dt: float = 0.05,
             render: bool = True, seed: int | None = None) -> SimEnv:
    """Make a ready (already reset) env of ``task`` on ``robot`` (name, YAML or description)."""
    _check(task)
    return _ENVS[task](robot=robot, cameras=tuple(cameras), image_size=tuple(image_size),
                       control_dt=control_dt, render=render, seed=seed)


def make_expert(task: str, robot: str | RobotDescription | None = DEFAULT_ROBOT, *,
                noise: float = 0.0, seed: int | None = None) -> Expert:
    """Make the scripted expert of ``task`` for ``robot`` (``noise``: DART std, rad)."""
    _check(task)
    r = as_robot(robot)
    scene_of(r, task)            # the same clear error as make_env for a task it lacks
    return _EXPERTS[task](noise=noise, seed=seed, robot=r)


def physics_dt(task: str, robot: str | RobotDescription | None = DEFAULT_ROBOT) -> float:
    """The physics step (s) of ``robot``'s scene for ``task``: control rates must divide it."""
    import mujoco

    from il_ros.resources import sim_asset
    _check(task)
    return float(mujoco.MjModel.from_xml_path(
        str(sim_asset(scene_of(as_robot(robot), task)))).opt.timestep)
